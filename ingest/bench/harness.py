"""``ingest bench``: the Alertpkt input end to end on this machine, peers side by side.

One run measures, interleaved round by round so machine noise hits all of them
alike, the C sender (csrc/gen.c) pushing Snort ``Alertpkt`` datagrams with
one blocking ``sendto`` each (as Snort does) into:

(a) ``recv_count``: a C ``recvmmsg`` receiver that only counts (the physical
    limit; benchmarks/peers/recv_count.c, compiled with gcc at run time),
(b) ``naive_recv.py``: plain Python ``socket.recv`` + ``struct`` decoding
    (benchmarks/peers/naive_recv.py),
(c) ``ingest listen --sink null:`` and (d) ``--sink sqlite:DB``,
each receiver a child process on a unix socket this harness created in its
own temporary directory.  It also times the batch decoder alone on slots
already in memory.

Per receiver and run: alerts/s from the first send until the receiver had
every alert (for ingest: until it exited after draining and flushing on
SIGTERM, so its shutdown counts against it), the sender's own rate (how long
Snort's packet thread would be held), the receiver's CPU seconds per million
alerts (its user+system time while the alerts flowed: from just before the
first alert until the peers exit on their count, or until ingest reports every
alert dispatched, so neither interpreter start-up nor ingest's one-time
shutdown is counted), and its peak RSS.  Each
metric is the best of ``--repeat`` runs; ratios are against (a) and (b).

It also measures the EVE socket inputs against FEVER (``unix_stream``) and a
plain-Python ``json.loads`` receiver (``unix_dgram``): ingest/bench_eve.py.

Everything is bounded (``--count``, ``--time-limit`` per run) and cleaned up
(processes, sockets, temporary files), also on Ctrl-C or SIGTERM.

Example::

    ingest bench --quick
    ingest bench --count 200000 --repeat 5 --json > bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import sqlite3
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, gen

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PEERS = Path(__file__).resolve().parent / "peers"
RECEIVERS = ("recv_count", "naive_recv", "ingest-null", "ingest-sqlite")
LABELS = {
    "recv_count": "(a) C recvmmsg, count only",
    "naive_recv": "(b) Python recv + struct",
    "ingest-null": "(c) ingest listen null:",
    "ingest-sqlite": "(d) ingest listen sqlite:",
}
_FINAL = re.compile(r"^ingest: final stats (\{.*\})\s*$", re.M)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: ingest listen's stats period: the resolution of its completion time
STATS_INTERVAL = 0.05


class BenchError(RuntimeError):
    """A measurement could not be made (a receiver failed, lost alerts, ...)."""


class _Interrupted(BaseException):
    """SIGTERM, turned into an exception so every cleanup block runs."""


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


def _proc_cpu(pid: int) -> float:
    """user + system seconds of every thread of pid so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def _proc_hwm_kb(pid: int) -> int:
    """Peak RSS of pid's current image (VmHWM), 0 if it is gone.

    ru_maxrss from wait4 cannot be used for a child we fork+exec: Linux carries
    the pre-exec high-water mark (this harness's own RSS) over the exec."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _wait4(proc: subprocess.Popen, timeout: float,
           watch: list[int] | None = None) -> resource.struct_rusage | None:
    """Reap proc and return its rusage, or None if it is still running after
    timeout.  While waiting, keep watch[0] at the child's highest VmHWM."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        if watch is not None and polls % 10 == 0:
            watch[0] = max(watch[0], _proc_hwm_kb(proc.pid))
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped (Popen.poll): nothing to account
            return None if proc.returncode is None else _NO_RUSAGE
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ru
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)
        polls += 1


class _LineClock:
    """Reads a child's stderr on a thread and notes when each line arrived, so
    the moment ingest reports it has dispatched everything is known to within
    one stats interval (without counting its shutdown)."""

    _STATS = re.compile(r"^ingest: stats .*\bdispatched=(\S+)")

    def __init__(self, stream, target: int) -> None:
        self.lines: list[str] = []
        self.done_at: float | None = None
        self.target = target
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            m = self._STATS.match(line)
            if m and self.done_at is None:
                try:
                    total = sum(int(v.rsplit(":", 1)[1]) for v in m.group(1).split(","))
                except (IndexError, ValueError):
                    continue
                if total >= self.target:
                    self.done_at = time.monotonic()

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


_NO_RUSAGE = resource.struct_rusage((0.0,) * 16)


def _stop(proc: subprocess.Popen) -> None:
    """Make sure proc is gone: SIGTERM, then SIGKILL."""
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        if _wait4(proc, grace) is not None:
            return


def _teardown(sender, done: threading.Event | None, proc: subprocess.Popen, sock: str) -> None:
    """End one measured run whatever happened: stop the sender and wait for
    its thread, make sure the receiver is gone, remove its socket."""
    if sender is not None:
        sender.stop()
    if done is not None:
        done.wait(10)
    _stop(proc)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)


def _wait_for_socket(path: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return
        if proc.poll() is not None:
            raise BenchError(f"receiver exited ({proc.returncode}) before binding {path}")
        time.sleep(0.005)
    raise BenchError(f"receiver did not bind {path} within {timeout:.0f} s")


@dataclass
class Setup:
    workdir: Path
    recv_count: Path | None
    naive_recv: Path | None
    env: dict[str, str]
    kind: str
    count: int
    mode: str | None
    time_limit: float
    templates: np.ndarray


def _command(s: Setup, receiver: str, sock: str) -> list[str]:
    listen_opt = "--barnyard2" if s.kind.startswith("barnyard2") else "--snort"
    if receiver == "recv_count":
        assert s.recv_count is not None
        return [str(s.recv_count), sock, str(s.count)]
    if receiver == "naive_recv":
        assert s.naive_recv is not None
        return [sys.executable, str(s.naive_recv), sock, str(s.count)]
    sink = "null:" if receiver == "ingest-null" else f"sqlite:{s.workdir / 'alerts.db'}"
    return [sys.executable, "-m", "ingest", "listen", listen_opt, sock, "--sink", sink,
            "--stats-interval", str(STATS_INTERVAL),
            "--dead-letter", str(s.workdir / "deadletter.bin")]


def measure(s: Setup, receiver: str) -> Run:
    """Start receiver, send s.count alerts into it, and account for it."""
    sock = str(s.workdir / "alert.sock")
    for leftover in ("alert.sock", "alerts.db", "alerts.db-wal", "alerts.db-shm",
                     "deadletter.bin"):
        with contextlib.suppress(FileNotFoundError):
            (s.workdir / leftover).unlink()
    is_ingest = receiver.startswith("ingest")
    out_path = s.workdir / "stdout"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(_command(s, receiver, sock), stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=s.workdir, env=s.env,
                                start_new_session=True)  # our signals, not the terminal's
    assert proc.stderr is not None
    clock = _LineClock(proc.stderr, s.count)
    sender: gen.Sender | None = None
    worker: threading.Thread | None = None
    sent_all = threading.Event()
    hwm = [0]
    cpu_flow: float | None = None
    try:
        _wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)  # let start-up work after bind() finish before the CPU snapshot
        cpu0 = _proc_cpu(proc.pid)
        sender = gen.sender_for(s.kind, sock, s.templates, mode=s.mode)
        box: list = []

        def work(sender: gen.Sender = sender) -> None:
            try:
                box.append(sender.run(s.count, time_limit=s.time_limit))
            finally:
                sent_all.set()

        worker = threading.Thread(target=work, name="bench-sender", daemon=True)
        t0 = time.monotonic()
        worker.start()
        while not sent_all.wait(0.02):  # an Event, not join(): robust to Ctrl-C
            hwm[0] = max(hwm[0], _proc_hwm_kb(proc.pid))
        if not box:
            raise BenchError("the sender failed")
        res: gen.SendResult = box[0]
        if res.interrupted:
            raise KeyboardInterrupt
        if res.errors or res.sent != s.count:
            _wait4(proc, 1.0)
            why = (f"; {receiver} had exited ({proc.returncode}): {clock.text()[-2000:]}"
                   if proc.returncode is not None else "")
            raise BenchError(f"sender: sent {res.sent} of {s.count}, errors {res.errors} "
                             f"({res.last_error or 'time limit'}){why}")
        if is_ingest:
            # Wait (bounded) until it reports everything dispatched, then stop
            # it: SIGTERM drains what is queued, flushes the sinks, exits.
            deadline = time.monotonic() + s.time_limit
            while clock.done_at is None and proc.poll() is None and time.monotonic() < deadline:
                hwm[0] = max(hwm[0], _proc_hwm_kb(proc.pid))
                time.sleep(0.005)
            if clock.done_at is not None and proc.poll() is None:
                # CPU while the alerts flowed: up to the moment ingest said it
                # had dispatched them all, not its shutdown (sink close, final
                # checkpoint), which a long-running listener pays once.
                cpu_flow = _proc_cpu(proc.pid) - cpu0
            proc.send_signal(signal.SIGTERM)
        ru = _wait4(proc, max(30.0, s.time_limit), hwm)
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
            m = _FINAL.search(err_text)
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
        _teardown(sender, sent_all if worker is not None else None, proc, sock)
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
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            v["git"] = r.stdout.strip()
    return v


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    def handler(_sig, _frame):
        raise _Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_bench(*, kind: str = "snort", count: int = 200_000, repeat: int = 3,
              receivers: tuple[str, ...] = RECEIVERS, mode: str | None = None,
              time_limit: float = 60.0, peers_dir: Path = DEFAULT_PEERS, seed: int = 1,
              decoder: bool = True, decoder_repeat: int = 5, latency=None, loss=None,
              unified2_alerts: int = 0, eve_records: int = 0, progress=None) -> dict:
    """Measure every receiver `repeat` times (interleaved) and return the report.

    latency (a bench_latency.LatencyPlan), loss (a LossPlan) and
    unified2_alerts > 0 and eve_records > 0 add those measurements; None / 0
    skips them."""
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    wanted = set(receivers) | set(latency.receivers if latency else ()) | set(
        loss.receivers if loss else ())
    need_peers = {"recv_count", "naive_recv"} & wanted
    if need_peers and not peers_dir.is_dir():
        raise BenchError(f"peer sources not found in {peers_dir} (run from a source checkout "
                         "or pass --peers DIR)")
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        with _sigterm_as_exception():
            recv_count = None
            if "recv_count" in wanted:
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
                      time_limit, templates)
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
            if latency is not None or loss is not None:
                from . import latency as bench_latency

                if latency is not None:
                    extra["latency"] = bench_latency.run_latency(s, latency, progress)
                if loss is not None:
                    extra["loss"] = bench_latency.run_loss(s, loss, progress)
            if unified2_alerts > 0:
                from . import unified2 as bench_unified2

                extra["unified2"] = bench_unified2.run_unified2(
                    workdir, env, alerts=unified2_alerts, repeat=repeat, time_limit=time_limit,
                    seed=seed, progress=progress)
            if eve_records > 0:
                from . import eve as bench_eve

                extra["eve"] = bench_eve.run_eve(
                    workdir, env, count=eve_records, repeat=repeat, time_limit=time_limit,
                    seed=seed, progress=progress)
            dec = decoder_rate(kind, seed=seed, repeat=decoder_repeat) if decoder else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(kind, count, repeat, mode, runs, dec, gcc) | extra


def _report(kind: str, count: int, repeat: int, mode: str | None, runs: dict[str, list[Run]],
            dec: dict | None, gcc: str | None) -> dict:
    rows: list[dict[str, Any]] = []
    for receiver, rs in runs.items():
        rows.append({
            "receiver": receiver,
            "label": LABELS[receiver],
            "alerts": count,
            "alerts_per_s": max(r.rate for r in rs),
            "sender_alerts_per_s": max(r.send_rate for r in rs),
            "cpu_s_per_million": min(r.cpu_per_million for r in rs),
            "peak_rss_mib": max(r.maxrss_kb for r in rs) / 1024,
            "runs": [asdict(r) | {"alerts_per_s": r.rate, "cpu_s_per_million": r.cpu_per_million}
                     for r in rs],
        })
    by = {r["receiver"]: r for r in rows}
    # Paired ratios: each round ran every receiver back to back, so a ratio
    # within one round cancels most of the machine's drift; report the median.
    for r in rows:
        mine = runs[r["receiver"]]
        for peer, tag in (("recv_count", "a"), ("naive_recv", "b")):
            if peer in runs:
                theirs = runs[peer]
                r[f"paired_rate_vs_{tag}"] = statistics.median(
                    x.rate / y.rate for x, y in zip(mine, theirs, strict=True))
                r[f"paired_cpu_vs_{tag}"] = statistics.median(
                    x.cpu_per_million / y.cpu_per_million
                    for x, y in zip(mine, theirs, strict=True))
    for r in rows:
        if "recv_count" in by:
            a = by["recv_count"]
            r["rate_vs_a"] = r["alerts_per_s"] / a["alerts_per_s"]
            r["cpu_vs_a"] = r["cpu_s_per_million"] / a["cpu_s_per_million"]
        if "naive_recv" in by:
            b = by["naive_recv"]
            r["rate_vs_b"] = r["alerts_per_s"] / b["alerts_per_s"]
            r["cpu_vs_b"] = r["cpu_s_per_million"] / b["cpu_s_per_million"]
    return {
        "benchmark": "alertpkt-e2e",
        "kind": kind,
        "datagram_bytes": gen.KINDS[kind][1],
        "send_mode": mode or gen.KINDS[kind][2],
        "alerts_per_run": count,
        "repeat": repeat,
        "machine": machine(),
        "versions": versions(gcc),
        "rows": rows,
        "decoder": dec,
        "eve": eve_status(),
    }


def format_report(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        f"ingest bench: {rep['kind']} Alertpkt ({rep['datagram_bytes']} B), sender mode "
        f"{rep['send_mode']}, {rep['alerts_per_run']:,} alerts per run, best of {rep['repeat']}",
        f"machine: {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}, "
        f"net.unix.max_dgram_qlen={m['net.unix.max_dgram_qlen']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()),
        "",
        f"{'receiver':28s} {'alerts/s':>10s} {'vs (a)':>7s} {'sender/s':>10s} "
        f"{'CPU s/M':>8s} {'vs (a)':>7s} {'vs (b)':>7s} {'RSS MiB':>8s}",
    ]

    def ratio(r: dict, k: str) -> str:
        return f"{r[k]:7.2f}" if k in r else f"{'-':>7s}"

    for r in rep["rows"]:
        lines.append(
            f"{r['label']:28s} {r['alerts_per_s']:10,.0f} {ratio(r, 'rate_vs_a')} "
            f"{r['sender_alerts_per_s']:10,.0f} {r['cpu_s_per_million']:8.2f} "
            f"{ratio(r, 'cpu_vs_a')} {ratio(r, 'cpu_vs_b')} {r['peak_rss_mib']:8.1f}")
    if any("paired_rate_vs_a" in r or "paired_rate_vs_b" in r for r in rep["rows"]):
        lines += ["", "paired ratios (median over rounds of the ratio within a round):",
                  f"{'receiver':28s} {'rate/(a)':>9s} {'rate/(b)':>9s} {'CPU/(a)':>9s} "
                  f"{'CPU/(b)':>9s}"]

        def paired(r: dict, k: str) -> str:
            return f"{r[k]:9.2f}" if k in r else f"{'-':>9s}"

        for r in rep["rows"]:
            lines.append(f"{r['label']:28s} {paired(r, 'paired_rate_vs_a')} "
                         f"{paired(r, 'paired_rate_vs_b')} {paired(r, 'paired_cpu_vs_a')} "
                         f"{paired(r, 'paired_cpu_vs_b')}")
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
                      f"best of {u2['repeat']}:",
                  f"{'reader':36s} {'events/s':>11s} {'CPU s/M':>8s} {'RSS MiB':>8s} "
                  f"{'rate/(b)':>9s} {'CPU/(b)':>8s}"]
        for r in u2["rows"]:
            pr = f"{r['paired_rate_vs_b']:9.2f}" if "paired_rate_vs_b" in r else f"{'-':>9s}"
            pc = f"{r['paired_cpu_vs_b']:8.2f}" if "paired_cpu_vs_b" in r else f"{'-':>8s}"
            lines.append(f"{r['label']:36s} {r['events_per_s']:11,.0f} "
                         f"{r['cpu_s_per_million']:8.2f} {r['peak_rss_mib']:8.1f} {pr} {pc}")
    eve = rep.get("eve")
    if eve and "rows" in eve:
        from .eve import format_eve

        lines += format_eve(eve)
    elif eve:
        lines += [""] + [f"EVE {k}: {v}" for k, v in eve.items()]
    return lines


# ---- command line ----------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="measure the Alertpkt input end to end against its peers",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=tuple(gen.KINDS), default="snort")
    p.add_argument("--count", type=int, metavar="N", help="alerts per run (default 200000)")
    p.add_argument("--repeat", type=int, metavar="N", help="runs per receiver (default 3)")
    p.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    p.add_argument("--receivers", metavar="LIST",
                   help=f"comma-separated subset of {','.join(RECEIVERS)} for the throughput "
                        "rows, or none")
    p.add_argument("--mode", choices=tuple(gen.MODES),
                   help="sender mode (default: the kind's real sender)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                   help="bound on each run (default 60)")
    p.add_argument("--peers", type=Path, default=DEFAULT_PEERS, metavar="DIR",
                   help="directory holding recv_count.c and naive_recv.py")
    p.add_argument("--no-decoder", action="store_true", help="skip the in-memory decoder run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="draw throughput and latency bars (needs matplotlib: the 'bench' extra)")
    g = p.add_argument_group("latency (send -> sink, at fixed moderate rates)")
    g.add_argument("--no-latency", action="store_true", help="skip the latency rows")
    g.add_argument("--latency-rates", metavar="LIST", default="1000,10000",
                   help="comma-separated alerts/s (default 1000,10000)")
    g.add_argument("--latency-seconds", type=float, metavar="S",
                   help="seconds of alerts per latency row (default 5; --quick 0.5)")
    g = p.add_argument_group("loss (Suricata live-mode semantics: non-blocking sender)")
    g.add_argument("--no-loss", action="store_true", help="skip the loss rows")
    g.add_argument("--loss-rates", metavar="LIST",
                   help="comma-separated offered alerts/s, paced (default 10000,30000; "
                        "--quick 30000)")
    g.add_argument("--loss-seconds", type=float, metavar="S",
                   help="seconds of alerts per loss row (default 2; --quick 0.5)")
    g.add_argument("--tuned-qlen", type=int, default=512, metavar="N",
                   help="net.unix.max_dgram_qlen of the tuned rows, set in a private network "
                        "namespace (default 512; 0 = skip)")
    g = p.add_argument_group("Unified2 spool files")
    g.add_argument("--no-unified2", action="store_true", help="skip the Unified2 rows")
    g.add_argument("--unified2-alerts", type=int, metavar="N",
                   help="events in the generated spool file (default 200000; --quick 20000)")
    g = p.add_argument_group("EVE sockets (unix_stream vs FEVER, unix_dgram vs Python)")
    g.add_argument("--no-eve", action="store_true", help="skip the EVE rows")
    g.add_argument("--eve-records", type=int, metavar="N",
                   help="EVE records per run (default 200000; --quick 20000)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    count = args.count or (20_000 if args.quick else 200_000)
    repeat = args.repeat or (2 if args.quick else 3)
    receivers = (() if args.receivers == "none" else
                 tuple(args.receivers.split(",")) if args.receivers else RECEIVERS)
    bad = [r for r in receivers if r not in RECEIVERS]
    if bad or count < 1 or repeat < 1:
        print(f"ingest bench: bad --receivers {bad}" if bad else
              "ingest bench: --count and --repeat must be >= 1", file=sys.stderr)
        return 2
    from .latency import LatencyPlan, LossPlan

    try:
        lat_rates = tuple(float(x) for x in args.latency_rates.split(","))
        loss_rates = tuple(float(x) for x in (
            args.loss_rates or ("30000" if args.quick else "10000,30000")).split(","))
    except ValueError:
        print("ingest bench: --latency-rates / --loss-rates take numbers", file=sys.stderr)
        return 2
    if any(r <= 0 for r in lat_rates + loss_rates):
        print("ingest bench: latency and loss rates must be > 0", file=sys.stderr)
        return 2
    latency = None if args.no_latency else LatencyPlan(
        rates=lat_rates, seconds=args.latency_seconds or (0.5 if args.quick else 5.0),
        repeat=1 if args.quick else repeat)
    loss = None if args.no_loss else LossPlan(
        rates=loss_rates, seconds=args.loss_seconds or (0.5 if args.quick else 2.0),
        tuned_qlen=args.tuned_qlen or None, repeat=1 if args.quick else repeat)
    u2_alerts = 0 if args.no_unified2 else (args.unified2_alerts or
                                             (20_000 if args.quick else 200_000))
    eve_records = 0 if args.no_eve else (args.eve_records or
                                         (20_000 if args.quick else 200_000))
    if args.plot is not None:
        from .plot import PlotUnavailable, check_available

        try:
            check_available()
        except PlotUnavailable as e:
            print(f"ingest bench: --plot: {e}", file=sys.stderr)
            return 2

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        rep = run_bench(kind=args.kind, count=count, repeat=repeat, receivers=receivers,
                        mode=args.mode, time_limit=args.time_limit, peers_dir=args.peers,
                        seed=args.seed, decoder=not args.no_decoder,
                        decoder_repeat=2 if args.quick else 5, latency=latency, loss=loss,
                        unified2_alerts=u2_alerts, eve_records=eve_records,
                        progress=progress)
    except BenchError as e:
        print(f"ingest bench: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Interrupted):
        print("ingest bench: interrupted; everything it started has been stopped and removed",
              file=sys.stderr)
        return 130
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    if args.plot is not None:
        from .plot import plot

        plot(rep, args.plot)
        print(f"ingest bench: plot written to {args.plot}", file=sys.stderr)
    return 0
