"""The Alertpkt rows of ``ingest bench`` and the whole run: every receiver
measured round by round, then the optional latency, loss, Unified2 and EVE
rows, and the report (see ``ingest.bench`` for what is measured)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, gen
from .common import (
    DEFAULT_PEERS,
    FINAL_STATS,
    PACKAGE_ROOT,
    STATS_INTERVAL,
    BenchError,
    LineClock,
    Setup,
    paired_range,
    pin_self,
    pinned_exec,
    placement_cpus,
    placement_label,
    proc_cpu,
    proc_hwm_kb,
    sigterm_as_exception,
    teardown,
    wait4,
    wait_for_socket,
)
from .eve import format_eve, run_eve
from .latency import run_latency, run_loss
from .multisocket import MS_RECEIVERS, format_multisocket, run_multisocket
from .multisocket import goals as multisocket_goals
from .nats import format_nats, run_nats
from .nats import goals as nats_goals
from .postgresql import format_postgresql, run_postgresql
from .postgresql import goals as postgresql_goals
from .unified2 import goals as unified2_goals
from .unified2 import run_unified2

RECEIVERS = ("recv_count", "naive_recv", "ingest-null", "ingest-sqlite")
LABELS = {
    "recv_count": "(a) C recvmmsg, count only",
    "naive_recv": "(b) Python recv + struct",
    "ingest-null": "(c) ingest listen null:",
    "ingest-sqlite": "(d) ingest listen sqlite:",
    # (c) with the metrics endpoint on: its per-batch hooks (top rings, event-id
    # gaps, histograms) are the whole difference; not in RECEIVERS (name it)
    "ingest-null-metrics": "(c') null: --metrics",
    # (c) with the previous reader (a Python thread calling recvmmsg, which
    # re-takes the GIL per batch): before/after the C reader thread in one run
    "ingest-null-py": "(c'') null:, Python reader",
}
#: environment of a receiver beyond the run's own
RECEIVER_ENV = {"ingest-null": {"INGEST_NATIVE_READER": "1"}, "ingest-null-py": {"INGEST_NATIVE_READER": "0"}}

# ---- one measurement -------------------------------------------------------

@dataclass
class Run:
    receiver: str
    sent: int
    received: int
    send_s: float  # the sender's own elapsed time
    e2e_s: float  # first send -> receiver had every alert (exited)
    cpu_s: float  # receiver CPU (user + sys) while the alerts flowed
    maxrss_kb: int
    detail: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.received / self.e2e_s if self.e2e_s > 0 else 0.0

    @property
    def send_rate(self) -> float:
        return self.sent / self.send_s if self.send_s > 0 else 0.0

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_s / self.received * 1e6 if self.received else float("nan")


def _command(s: Setup, receiver: str, sock: str, sink: str | None = None,
             extra_args: tuple[str, ...] = ()) -> list[str]:
    listen_opt = "--barnyard2" if s.kind.startswith("barnyard2") else "--snort"
    if receiver == "recv_count":
        assert s.recv_count is not None
        return [str(s.recv_count), sock, str(s.count)]
    if receiver == "naive_recv":
        assert s.naive_recv is not None
        return [sys.executable, str(s.naive_recv), sock, str(s.count)]
    if sink is None:
        sink = "null:" if receiver.startswith("ingest-null") else f"sqlite:{s.workdir / 'alerts.db'}"
    return [sys.executable, "-m", "ingest", "listen", listen_opt, sock, "--sink", sink,
            "--stats-interval", str(STATS_INTERVAL),
            "--dead-letter", str(s.workdir / "deadletter.bin"), *extra_args,
            *(["--metrics", "0"] if receiver == "ingest-null-metrics" else [])]


def measure(s: Setup, receiver: str, sink: str | None = None, extra_args: tuple[str, ...] = ()) -> Run:
    """Start receiver, send s.count alerts into it, and account for it
    (``sink``: another sink URL for an ingest receiver, the NATS rows;
    ``extra_args``: more ``ingest listen`` options, e.g. an allow-list)."""
    sock = str(s.workdir / "alert.sock")
    for leftover in ("alert.sock", "alerts.db", "alerts.db-wal", "alerts.db-shm",
                     "deadletter.bin"):
        with contextlib.suppress(FileNotFoundError):
            (s.workdir / leftover).unlink()
    is_ingest = receiver.startswith("ingest")
    out_path = s.workdir / "stdout"
    snd_cpus, rcv_cpus = placement_cpus(s.placement)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(_command(s, receiver, sock, sink, extra_args), stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=s.workdir,
                                env=s.env | RECEIVER_ENV.get(receiver, {}),
                                preexec_fn=pinned_exec(rcv_cpus),
                                start_new_session=True)  # our signals, not the terminal's
    assert proc.stderr is not None
    clock = LineClock(proc.stderr, s.count)
    sender: gen.Sender | None = None
    worker: threading.Thread | None = None
    sent_all = threading.Event()
    hwm = [0]
    cpu_flow: float | None = None
    try:
        wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)  # let start-up work after bind() finish before the CPU snapshot
        cpu0 = proc_cpu(proc.pid)
        sender = gen.sender_for(s.kind, sock, s.templates, mode=s.mode)
        box: list = []

        def work(sender: gen.Sender = sender) -> None:
            try:
                pin_self(snd_cpus)  # this thread only: the sender's placement
                box.append(sender.run(s.count, time_limit=s.time_limit))
            finally:
                sent_all.set()

        worker = threading.Thread(target=work, name="bench-sender", daemon=True)
        t0 = time.monotonic()
        worker.start()
        while not sent_all.wait(0.02):  # an Event, not join(): robust to Ctrl-C
            hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
        if not box:
            raise BenchError("the sender failed")
        res: gen.SendResult = box[0]
        if res.interrupted:
            raise KeyboardInterrupt
        if res.errors or res.sent != s.count:
            wait4(proc, 1.0)
            why = (f"; {receiver} had exited ({proc.returncode}): {clock.text()[-2000:]}"
                   if proc.returncode is not None else "")
            raise BenchError(f"sender: sent {res.sent} of {s.count}, errors {res.errors} "
                             f"({res.last_error or 'time limit'}){why}")
        if is_ingest:
            # Wait (bounded) until it reports everything dispatched, then stop
            # it: SIGTERM drains what is queued, flushes the sinks, exits.
            deadline = time.monotonic() + s.time_limit
            while clock.done_at is None and proc.poll() is None and time.monotonic() < deadline:
                hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
                time.sleep(0.005)
            if clock.done_at is not None and proc.poll() is None:
                # CPU while the alerts flowed: up to the moment ingest said it
                # had dispatched them all, not its shutdown (sink close, final
                # checkpoint), which a long-running listener pays once.
                cpu_flow = proc_cpu(proc.pid) - cpu0
            proc.send_signal(signal.SIGTERM)
        ru = wait4(proc, max(30.0, s.time_limit), hwm)
        t_exit = time.monotonic()
        if ru is None:
            raise BenchError(f"{receiver} did not finish within the time limit")
        err_text = clock.text()
        if proc.returncode != 0:
            raise BenchError(f"{receiver} exited {proc.returncode}: {err_text[-2000:]}")
        cpu = ru.ru_utime + ru.ru_stime - cpu0 if cpu_flow is None else cpu_flow
        detail: dict = {}
        t_done = t_exit
        if is_ingest:
            m = FINAL_STATS.search(err_text)
            if not m:
                raise BenchError(f"{receiver}: no final stats line on stderr")
            detail = json.loads(m.group(1))
            received = int(detail.get("received", 0))
            dispatched = sum(detail.get("dispatched", {}).values())
            if dispatched != s.count:
                raise BenchError(f"{receiver}: dispatched {dispatched} of {s.count}")
            if clock.done_at is not None:
                t_done = clock.done_at
            detail["completion"] = "stats line" if clock.done_at is not None else "exit"
            detail["shutdown_s"] = t_exit - t_done
            if receiver == "ingest-sqlite":
                with contextlib.closing(sqlite3.connect(s.workdir / "alerts.db")) as db:
                    rows = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
                if rows != s.count:
                    raise BenchError(f"{receiver}: {rows} rows stored of {s.count}")
                detail["rows"] = rows
        else:
            detail = json.loads(out_path.read_text())
            detail["completion"] = "exit"
            received = int(detail["received"])
            # the peers measure their own peak exactly (getrusage in-process)
            hwm[0] = int(detail.get("maxrss_kb", hwm[0]))
        if received != s.count:
            raise BenchError(f"{receiver}: received {received} of {s.count}")
        return Run(receiver, res.sent, received, res.elapsed, t_done - t0, cpu, hwm[0], detail)
    finally:
        teardown(sender, sent_all if worker is not None else None, proc, sock)
        proc.stderr.close()


# ---- the decoder alone -----------------------------------------------------

def decoder_rate(kind: str = "snort", *, nslots: int = 256, seconds: float = 0.5,
                 repeat: int = 5, seed: int = 1) -> dict:
    """Alerts/s of ingest_alertpkt_decode over nslots slots already in memory
    (one core, best of repeat), and of the Python SlotDecoder.decode wrapper
    that also builds the batch's string table."""
    from .. import alertpkt
    from ..native import ffi, lib

    templates, _ = gen.build_templates(kind, min(nslots, 256), seed)
    dec = alertpkt.SlotDecoder(nslots)
    tlen = templates.shape[1]
    for i in range(nslots):
        dec.slots[i, :tlen] = templates[i % len(templates)]
        dec.lens[i] = tlen
    out = np.empty(nslots, dtype=alertpkt.B.ALERT_DTYPE)
    c_out = ffi.from_buffer("struct ingest_alert[]", out, require_writable=True)
    c_slots = ffi.from_buffer("uint8_t[]", dec.buf)
    c_lens = ffi.from_buffer("uint32_t[]", dec.lens)
    c_flags = ffi.from_buffer("uint8_t[]", dec.flags)
    slot_of = ffi.new("uint32_t[]", nslots)
    status = ffi.new("uint8_t[]", nslots)
    msg_key = ffi.new("uint64_t[]", nslots)  # as the runtime calls it: with message keys
    msg_first = ffi.new("uint32_t[]", nslots)

    def c_once() -> None:
        k = lib.ingest_alertpkt_decode(c_slots, dec.slot_size, nslots, c_lens, c_flags,
                                       c_out, nslots, slot_of, status, msg_key, msg_first)
        if k != nslots:
            raise BenchError(f"decoder produced {k} of {nslots} alerts")

    def py_once() -> None:
        r = dec.decode(nslots)
        if len(r.batch) != nslots:
            raise BenchError("SlotDecoder lost alerts")

    def best(fn) -> float:
        top = 0.0
        for _ in range(repeat):
            n, t0 = 0, time.perf_counter()
            while (dt := time.perf_counter() - t0) < seconds:
                fn()
                n += nslots
            top = max(top, n / dt)
        return top

    return {"kind": kind, "nslots": nslots, "c_alerts_per_s": best(c_once),
            "python_alerts_per_s": best(py_once)}


# ---- the whole run ---------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def machine() -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "net.unix.max_dgram_qlen": _read("/proc/sys/net/unix/max_dgram_qlen"),
        "net.core.wmem_default": _read("/proc/sys/net/core/wmem_default"),
        "net.core.rmem_max": _read("/proc/sys/net/core/rmem_max"),
    }


def versions(gcc: str | None) -> dict:
    import cffi

    v = {"ingest": __version__, "python": platform.python_version(), "numpy": np.__version__,
         "cffi": cffi.__version__, "sqlite": sqlite3.sqlite_version}
    with contextlib.suppress(ImportError):
        import uvloop
        v["uvloop"] = uvloop.__version__
    if gcc:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            v["gcc"] = subprocess.run([gcc, "-dumpfullversion"], capture_output=True,
                                      text=True, timeout=10).stdout.strip()
    # the commit only from a source checkout: an installed package inside some
    # other repository must not report that repository's commit
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if not (PACKAGE_ROOT / "pyproject.toml").is_file():
            raise OSError("not a source checkout")
        r = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            v["git"] = r.stdout.strip()
    return v


def run_bench(*, kind: str = "snort", count: int = 200_000, repeat: int = 3,
              receivers: tuple[str, ...] = RECEIVERS, mode: str | None = None,
              time_limit: float = 60.0, peers_dir: Path = DEFAULT_PEERS, seed: int = 1,
              decoder: bool = True, decoder_repeat: int = 5, latency=None, loss=None,
              unified2_alerts: int = 0, eve_records: int = 0, nats_alerts: int = 0,
              nats_latency: tuple[tuple[float, ...], float] = ((1000.0, 10000.0), 5.0),
              postgresql_alerts: int = 0, postgresql_repeat: int | None = None,
              postgresql_latency: tuple[tuple[float, ...], float] | None = None, progress=None,
              placement: str = "unpinned", multisocket_sockets: tuple[int, ...] = (),
              multisocket_alerts: int = 20_000,
              multisocket_receivers: tuple[str, ...] = MS_RECEIVERS,
              multisocket_repeat: int | None = None) -> dict:
    """Measure every receiver `repeat` times (interleaved) and return the report.

    latency (a latency.LatencyPlan), loss (a LossPlan) and
    unified2_alerts > 0, eve_records > 0 and nats_alerts > 0 (with the
    NATS latency rows at nats_latency = (rates, seconds)) and
    postgresql_alerts > 0 (collector -> PostgreSQL, postgresql_repeat
    rounds, default repeat; its latency rows at postgresql_latency, default
    nats_latency) and multisocket_sockets (N sockets into one ingest
    against N bare receivers, multisocket_alerts per socket) add those
    measurements; None / 0 / () skips them."""
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    wanted = set(receivers) | set(latency.receivers if latency else ()) | set(
        loss.receivers if loss else ())
    need_peers = {"recv_count", "naive_recv"} & wanted
    if need_peers and not peers_dir.is_dir():
        raise BenchError(f"peer sources not found in {peers_dir} (they ship with the package: "
                         "reinstall it, or pass --peers DIR)")
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        with sigterm_as_exception():
            recv_count = None
            if "recv_count" in wanted or multisocket_sockets:
                if gcc is None:
                    raise BenchError("no C compiler (gcc) to build the recv_count peer")
                recv_count = workdir / "recv_count"
                subprocess.run([gcc, "-O2", "-o", str(recv_count),
                                str(peers_dir / "recv_count.c")], check=True, timeout=120)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            templates, _ = gen.build_templates(kind, 256, seed)
            s = Setup(workdir, recv_count, peers_dir / "naive_recv.py", env, kind, count, mode,
                      time_limit, templates, placement)
            runs: dict[str, list[Run]] = {r: [] for r in receivers}
            for rep in range(repeat):
                for receiver in receivers:
                    r = measure(s, receiver)
                    runs[receiver].append(r)
                    if progress:
                        progress(f"round {rep + 1}/{repeat} {receiver:14s} {r.rate:10,.0f} alerts/s"
                                 f"  {r.cpu_per_million:6.2f} CPU s/M  "
                                 f"{r.maxrss_kb / 1024:6.1f} MiB")
            extra: dict[str, Any] = {}
            if latency is not None:
                extra["latency"] = run_latency(s, latency, progress)
            if loss is not None:
                extra["loss"] = run_loss(s, loss, progress)
            if unified2_alerts > 0:
                extra["unified2"] = run_unified2(
                    workdir, env, alerts=unified2_alerts, repeat=repeat, time_limit=time_limit,
                    seed=seed, progress=progress, placement=placement)
            if eve_records > 0:
                extra["eve"] = run_eve(
                    workdir, env, count=eve_records, repeat=repeat, time_limit=time_limit,
                    seed=seed, progress=progress, placement=placement)
            if multisocket_sockets:
                assert recv_count is not None
                extra["multisocket"] = run_multisocket(
                    workdir, env, recv_count, sockets=multisocket_sockets, count=multisocket_alerts,
                    repeat=multisocket_repeat or repeat, receivers=multisocket_receivers, time_limit=time_limit, seed=seed,
                    progress=progress, placement=placement)
            if nats_alerts > 0:
                extra["nats"] = run_nats(s, count=nats_alerts, repeat=repeat, measure=measure,
                                         latency_rates=nats_latency[0], latency_seconds=nats_latency[1],
                                         seed=seed, progress=progress)
            if postgresql_alerts > 0:
                pg_lat = postgresql_latency or nats_latency
                extra["postgresql"] = run_postgresql(s, alerts=postgresql_alerts,
                                                     repeat=postgresql_repeat or repeat,
                                                     latency_rates=pg_lat[0], latency_seconds=pg_lat[1],
                                                     seed=seed, progress=progress)
            dec = decoder_rate(kind, seed=seed, repeat=decoder_repeat) if decoder else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = _report(kind, count, repeat, mode, runs, dec, gcc, placement) | extra
    report["goals"] = goals(report)
    return report


#: issue 10's goals for the Alertpkt rows (paired with the bare C receiver (a))
GOAL_NULL_VS_A = 0.90  # 1 socket, null:
GOAL_CPU_VS_A = 1.2  # CPU per alert, null:
GOAL_STORED_VS_A = 0.90  # stored alerts/s, sqlite:
GOAL_EVE_STREAM_VS_FEVER = 3.0
GOAL_EVE_DGRAM_VS_BARE = 0.6


def _fmt_pr(r: dict, k: str) -> str:
    lo, hi = r.get(f"{k}_range", [r[k], r[k]])
    return f"{r[k]:.2f} paired ({lo:.2f}-{hi:.2f})"


def issue10_goals(rep: dict) -> list[tuple[str, bool, str]]:
    """Issue 10's goals for the rows this run measured (Alertpkt, EVE)."""
    out: list[tuple[str, bool, str]] = []
    by = {r["receiver"]: r for r in rep.get("rows", [])}
    where = rep.get("placement", "unpinned")
    null, sql = by.get("ingest-null"), by.get("ingest-sqlite")

    def has(r: dict | None, k: str) -> bool:
        return r is not None and k in r and r[k] == r[k]  # present, not NaN

    if has(null, "paired_rate_vs_a"):
        assert null is not None
        out.append((f"1 socket: (c) null: >= {GOAL_NULL_VS_A} of the bare C receiver (a) [{where}]",
                    null["paired_rate_vs_a"] >= GOAL_NULL_VS_A, _fmt_pr(null, "paired_rate_vs_a")))
    if has(null, "paired_cpu_vs_a"):
        assert null is not None
        out.append((f"CPU per alert of (c) null: <= {GOAL_CPU_VS_A}x (a)'s",
                    null["paired_cpu_vs_a"] <= GOAL_CPU_VS_A, _fmt_pr(null, "paired_cpu_vs_a")))
    if has(sql, "paired_rate_vs_a"):
        assert sql is not None
        out.append((f"(d) sqlite: stored alerts/s >= {GOAL_STORED_VS_A} of (a) [{where}]",
                    sql["paired_rate_vs_a"] >= GOAL_STORED_VS_A, _fmt_pr(sql, "paired_rate_vs_a")))
    eve = rep.get("eve") or {}
    for r in eve.get("rows", []):
        if r.get("receiver") == "ingest-eve-stream" and has(r, "paired_rate_vs_peer"):
            out.append((f"EVE unix_stream >= {GOAL_EVE_STREAM_VS_FEVER}x FEVER (lossless, timed to its "
                        f"last record; one send per record) [{eve.get('placement', where)}]",
                        r["paired_rate_vs_peer"] >= GOAL_EVE_STREAM_VS_FEVER,
                        _fmt_pr(r, "paired_rate_vs_peer")))
        if r.get("receiver") == "ingest-eve-dgram" and has(r, "paired_rate_vs_bare"):
            out.append((f"EVE unix_dgram >= {GOAL_EVE_DGRAM_VS_BARE} of the bare C receiver [{eve.get('placement', where)}]",
                        r["paired_rate_vs_bare"] >= GOAL_EVE_DGRAM_VS_BARE, _fmt_pr(r, "paired_rate_vs_bare")))
    return out


def goals(rep: dict) -> list[dict[str, Any]]:
    """Every goal set for a row this run measured: met or not, and what was
    measured (issue 8: sensor -> JetStream, collector -> PostgreSQL, socket
    -> committed PostgreSQL row; issue 10: the Alertpkt and EVE rows against
    their limit peers; Unified2 against py-idstools)."""
    out: list[tuple[int, str, bool, str]] = []
    if rep.get("nats"):
        out += [(8, *g) for g in nats_goals(rep["nats"])]
    if rep.get("postgresql"):
        out += [(8, *g) for g in postgresql_goals(rep["postgresql"])]
    out += [(10, *g) for g in issue10_goals(rep)]
    if rep.get("multisocket"):
        out += [(10, *g) for g in multisocket_goals(rep["multisocket"])]
    if rep.get("unified2"):
        out += [(10, *g) for g in unified2_goals(rep["unified2"])]
    return [{"issue": i, "goal": g, "met": bool(met), "measured": m} for i, g, met, m in out]


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]  # NaN-free
    return float(np.median(xs)) if xs else float("nan")


def _report(kind: str, count: int, repeat: int, mode: str | None, runs: dict[str, list[Run]],
            dec: dict | None, gcc: str | None, placement: str = "unpinned") -> dict:
    """Per receiver: medians over the rounds, and every ratio paired (the
    median over rounds of the ratio within a round, with its range).  No
    ratio is taken between best-of-N figures: each receiver's luckiest run
    (placement, the machine's other load) was picked independently, which
    once showed ingest at 1.18x the bare C receiver.  ``best_alerts_per_s``
    is kept in the JSON, labelled, for the curious."""
    rows: list[dict[str, Any]] = []
    where = placement_label(placement)
    for receiver, rs in runs.items():
        row: dict[str, Any] = {
            "receiver": receiver,
            "label": LABELS[receiver],
            "alerts": count,
            "placement": where,
            "alerts_per_s": _median([r.rate for r in rs]),
            "best_alerts_per_s": max(r.rate for r in rs),
            "sender_alerts_per_s": _median([r.send_rate for r in rs]),
            "cpu_s_per_million": _median([r.cpu_per_million for r in rs]),
            "peak_rss_mib": max(r.maxrss_kb for r in rs) / 1024,
            "runs": [asdict(r) | {"alerts_per_s": r.rate, "cpu_s_per_million": r.cpu_per_million}
                     for r in rs],
        }
        shut = [r.detail["shutdown_s"] for r in rs if "shutdown_s" in r.detail]
        if shut:  # stop signal -> exit: drain, sink close, checkpoint; not in the rate
            row["shutdown_s"] = _median(shut)
        if receiver == "ingest-sqlite":  # the rate is of alerts committed to the store
            row["stored_alerts_per_s"] = row["alerts_per_s"]
        rows.append(row)
    for r in rows:
        mine = runs[r["receiver"]]
        for peer, tag in (("recv_count", "a"), ("naive_recv", "b"), ("ingest-null", "c")):
            if peer in runs:
                theirs = runs[peer]
                med, lo, hi = paired_range((x.rate, y.rate) for x, y in zip(mine, theirs, strict=True))
                r[f"paired_rate_vs_{tag}"] = med
                r[f"paired_rate_vs_{tag}_range"] = [lo, hi]
                med, lo, hi = paired_range((x.cpu_per_million, y.cpu_per_million)
                                           for x, y in zip(mine, theirs, strict=True))
                r[f"paired_cpu_vs_{tag}"] = med
                r[f"paired_cpu_vs_{tag}_range"] = [lo, hi]
    return {
        "benchmark": "alertpkt-e2e",
        "kind": kind,
        "datagram_bytes": gen.KINDS[kind][1],
        "send_mode": mode or gen.KINDS[kind][2],
        "alerts_per_run": count,
        "repeat": repeat,
        "placement": where,
        "machine": machine(),
        "versions": versions(gcc),
        "rows": rows,
        "decoder": dec,
        "eve": eve_status(),
    }


def _pr(r: dict, k: str, width: int = 17) -> str:
    """A paired ratio with its range: '0.82 (0.71-0.93)'."""
    if k not in r or r[k] != r[k]:
        return f"{'-':>{width}s}"
    lo, hi = r.get(f"{k}_range", [r[k], r[k]])
    return f"{r[k]:.2f} ({lo:.2f}-{hi:.2f})".rjust(width)


def format_report(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        f"ingest bench: {rep['kind']} Alertpkt ({rep['datagram_bytes']} B), sender mode "
        f"{rep['send_mode']}, {rep['alerts_per_run']:,} alerts per run, {rep['repeat']} round(s) "
        f"interleaved",
        f"machine: {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}, "
        f"net.unix.max_dgram_qlen={m['net.unix.max_dgram_qlen']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()),
        f"CPU placement of every row below: {rep.get('placement', 'unpinned')}",
        "",
        "rates and CPU: medians over the rounds; ratios: paired (median over rounds of the ratio "
        "within a round, range)",
        f"{'receiver':28s} {'alerts/s':>10s} {'rate/(a)':>17s} {'CPU s/M':>8s} {'CPU/(a)':>17s} "
        f"{'CPU/(b)':>17s} {'sender/s':>10s} {'stop s':>7s} {'RSS MiB':>8s}",
    ]
    for r in rep["rows"]:
        stop = f"{r['shutdown_s']:7.2f}" if "shutdown_s" in r else f"{'-':>7s}"
        lines.append(
            f"{r['label']:28s} {r['alerts_per_s']:10,.0f} {_pr(r, 'paired_rate_vs_a')} "
            f"{r['cpu_s_per_million']:8.2f} {_pr(r, 'paired_cpu_vs_a')} {_pr(r, 'paired_cpu_vs_b')} "
            f"{r['sender_alerts_per_s']:10,.0f} {stop} {r['peak_rss_mib']:8.1f}")
    lines.append("(d) sqlite: alerts/s counts alerts committed to the store (its stats line), from the "
                 "first send; 'stop s' is the shutdown after that (drain, close, checkpoint), not in the rate")
    for r in rep["rows"]:
        if r["receiver"] == "ingest-null-metrics" and "paired_rate_vs_c" in r:
            lines += ["", f"--metrics on vs off (paired, median of rounds): rate {r['paired_rate_vs_c']:.3f}, "
                          f"CPU per alert {r['paired_cpu_vs_c']:.3f}"]
    lines += _format_extra(rep)
    d = rep.get("decoder")
    if d:
        lines += ["", f"batch decoder alone ({d['nslots']} slots in memory, one core): "
                      f"C {d['c_alerts_per_s'] / 1e6:,.2f} M alerts/s; with the Python wrapper "
                      f"and string table {d['python_alerts_per_s'] / 1e6:,.2f} M alerts/s"]
    return "\n".join(lines)


def eve_status() -> dict:
    """What the EVE rows say when they were not measured (--no-eve)."""
    why = "not measured in this run (--no-eve)"
    return {"unix_stream vs FEVER": why, "unix_dgram vs Python json.loads": why}


def _range(xs: list[float] | None) -> str:
    return f"{min(xs):5.2f}-{max(xs):5.2f}".rjust(12) if xs else f"{'-':>12s}"


def _format_extra(rep: dict) -> list[str]:
    lines: list[str] = []
    lat = rep.get("latency")
    if lat:
        rows = lat["rows"]
        floor = {r["rate"]: r for r in rows if r["receiver"] == "recv_count"}
        lines += ["", f"end-to-end latency (send -> the sink has it; peers: on receipt), "
                      f"{rep['kind']} sender paced, ms; median over {lat.get('repeat', 1)} "
                      "round(s) of each round's p50 / p99, max of all:",
                  f"{'receiver':36s} {'rate/s':>8s} {'alerts':>7s} {'p50':>8s} {'p99':>8s} "
                  f"{'max':>8s} {'p99-(a)':>8s}"]
        for r in rows:
            a = floor.get(r["rate"])
            d = f"{r['p99_ms'] - a['p99_ms']:8.3f}" if a else f"{'-':>8s}"
            lines.append(f"{r['label']:36s} {r['rate']:8,.0f} {r['alerts']:7d} "
                         f"{r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} {d}")
    loss = rep.get("loss")
    if loss:
        lines += ["", f"loss under Suricata live-mode semantics (non-blocking send; a send that "
                      f"would block is dropped and counted by the sender), paced, "
                      f"{loss['seconds']:g} s per row, {loss.get('repeat', 1)} round(s) "
                      "(counts summed, loss % the median, range over rounds):",
                  f"{'datagram':>8s} {'max_dgram_qlen':14s} {'offered/s':>10s} {'receiver':28s} "
                  f"{'sent':>8s} {'dropped':>8s} {'loss %':>7s} {'range %':>12s} "
                  f"{'received':>9s}"]
        for r in loss["rows"]:
            q = f"{r['qlen']}" + (" (default)" if r["qlen"] == loss["default_qlen"] else "")
            lines.append(f"{r['datagram_bytes']:6d} B {q:14s} {r['offered_rate']:10,.0f} "
                         f"{r['label']:28s} {r['sent']:8d} {r['dropped']:8d} "
                         f"{r['loss_pct']:7.2f} {_range(r.get('loss_pct_runs'))} "
                         f"{r['received']:9d}")
        lines.append(f"tuned max_dgram_qlen: {loss['tuned_note']}")
    u2 = rep.get("unified2")
    if u2:
        lines += ["", f"Unified2 spool file ({u2['alerts']:,} events with packets, "
                      f"{u2['file_bytes'] / 1e6:.1f} MB; py-idstools {u2['idstools']}), "
                      f"{u2['repeat']} round(s) interleaved, medians, ratios paired (range); "
                      f"placement: {u2.get('placement', 'unpinned')}:",
                  f"{'reader':36s} {'events/s':>11s} {'CPU s/M':>8s} {'RSS MiB':>8s} "
                  f"{'rate/(b)':>17s} {'CPU/(b)':>17s}"]
        for r in u2["rows"]:
            lines.append(f"{r['label']:36s} {r['events_per_s']:11,.0f} "
                         f"{r['cpu_s_per_million']:8.2f} {r['peak_rss_mib']:8.1f} "
                         f"{_pr(r, 'paired_rate_vs_b')} {_pr(r, 'paired_cpu_vs_b')}")
    if rep.get("multisocket"):
        lines += format_multisocket(rep["multisocket"])
    eve = rep.get("eve")
    if eve and "rows" in eve:
        lines += format_eve(eve)
    elif eve:
        lines += [""] + [f"EVE {k}: {v}" for k, v in eve.items()]
    if rep.get("nats"):
        lines += format_nats(rep["nats"])
    if rep.get("postgresql"):
        lines += format_postgresql(rep["postgresql"])
    for issue in sorted({g.get("issue", 8) for g in rep.get("goals", [])}):
        lines += ["", f"goals (issue {issue}; on this machine, in this run):"]
        lines += [f"  {'met    ' if g['met'] else 'NOT met'}  {g['goal']}: {g['measured']}"
                  for g in rep["goals"] if g.get("issue", 8) == issue]
    return lines


