"""Latency and loss of a datagram input, for ``ingest bench``.

**Latency** (send -> the sink has it): the C sender (csrc/gen.c) writes each
alert's CLOCK_MONOTONIC send time into the event's ref_time (seconds,
microseconds), the alert time every decoder reports, and paces the alerts at a
fixed moderate rate.  ``ingest listen --sink jsonl:-`` writes its EVE lines
into a pipe read by this harness, which notes when each chunk arrived; the
line's ``timestamp`` is the send time, so arrival minus timestamp is the
latency (both on the one machine's monotonic clock, microsecond resolution).
The peers measure the same at the moment they receive an alert: the C
``recvmmsg`` counter (the kernel's own wake-up latency, the floor) and the
plain-Python ``socket.recv`` receiver.

**Loss** under Suricata live-mode semantics: the sender never blocks; a send
that would block is dropped and counted by the sender (``ingest gen --mode
dontwait``).  Loss = dropped / attempted.  Measured with the kernel's
``net.unix.max_dgram_qlen`` and with a tuned one, set in a fresh network
namespace that only the receiver lives in (the limit is per namespace and is
read when the receiving socket is created), so the machine's setting is never
touched.  Every alert the kernel accepted must be received; the harness
checks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import gen
from .common import (
    STATS_INTERVAL,
    BenchError,
    LineClock,
    Setup,
    teardown,
    wait4,
    wait_for_socket,
)

#: default rates of the latency rows (alerts/s)
LATENCY_RATES = (1000, 10000)
LATENCY_RECEIVERS = ("recv_count", "naive_recv", "ingest-jsonl", "ingest-jsonl-linger0")
LATENCY_LABELS = {
    "recv_count": "(a) C recvmmsg, on receipt",
    "naive_recv": "(b) Python recv, on receipt",
    "ingest-jsonl": "(c) ingest -> jsonl:, linger 2 ms",
    "ingest-jsonl-linger0": "(c') ingest -> jsonl:, linger 0",
}
LOSS_RECEIVERS = ("recv_count", "naive_recv", "ingest-null")
LOSS_LABELS = {
    "recv_count": "(a) C recvmmsg, count only",
    "naive_recv": "(b) Python recv + struct",
    "ingest-null": "(c) ingest listen null:",
}
#: the tuned net.unix.max_dgram_qlen of the loss rows
TUNED_QLEN = 512
_TS = re.compile(rb'"timestamp":"([^"]+)"')
_QLEN_PATH = "/proc/sys/net/unix/max_dgram_qlen"


def _leftovers(s: Setup, *names: str) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (s.workdir / name).unlink()


def percentiles(lat_s: np.ndarray) -> dict:
    """p50 / p99 / max of latencies in seconds, reported in milliseconds."""
    if lat_s.size == 0:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    p50, p99 = np.percentile(lat_s, [50, 99])
    return {"n": int(lat_s.size), "p50_ms": float(p50) * 1e3, "p99_ms": float(p99) * 1e3,
            "max_ms": float(lat_s.max()) * 1e3}


def jsonl_latencies(chunks: list[tuple[float, bytes]]) -> np.ndarray:
    """Latency of every EVE line in chunks of (arrival monotonic time, bytes):
    arrival minus the line's timestamp (the sender's monotonic send time)."""
    out: list[float] = []
    pending = b""
    for t, data in chunks:
        data = pending + data
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        for m in _TS.finditer(data, 0, cut):
            sent = datetime.fromisoformat(m.group(1).decode()).timestamp()
            out.append(t - sent)
    return np.asarray(out, dtype=np.float64)


class _ChunkReader:
    """Reads a pipe on a thread, noting when each chunk arrived."""

    def __init__(self, fd: int) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.lines = 0
        self._fd = fd
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-latency-read")
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 20)
            except OSError:
                return
            if not data:
                return
            self.chunks.append((time.monotonic(), data))
            self.lines += data.count(b"\n")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _receiver_command(s: Setup, receiver: str, sock: str, count: int, *,
                      latency: bool) -> list[str]:
    listen_opt = "--barnyard2" if s.kind.startswith("barnyard2") else "--snort"
    if receiver == "recv_count":
        if s.recv_count is None:
            raise BenchError("recv_count was not built")
        return [str(s.recv_count), sock, str(count), "65928", "64"] + (["latency"] if latency
                                                                         else [])
    if receiver == "naive_recv":
        assert s.naive_recv is not None
        return [sys.executable, str(s.naive_recv), sock, str(count)] + (["--latency"] if latency
                                                                          else [])
    sink = "null:" if receiver == "ingest-null" else "jsonl:-"
    cmd = [sys.executable, "-m", "ingest", "listen", listen_opt, sock, "--sink", sink,
           "--stats-interval", str(STATS_INTERVAL),
           "--dead-letter", str(s.workdir / "deadletter.bin")]
    if receiver == "ingest-jsonl-linger0":
        cmd += ["--linger-ms", "0"]
    return cmd


def _send_in_thread(sender: gen.Sender, count: int, rate: float, time_limit: float):
    return gen.start_in_thread(sender, count, rate=rate, time_limit=time_limit, name="bench-sender")


def _wait_sent(box: list, done: threading.Event) -> gen.SendResult:
    while not done.wait(0.02):  # an Event, not join(): robust to Ctrl-C
        pass
    if not box:
        raise BenchError("the sender failed")
    if isinstance(box[0], BaseException):
        raise BenchError(f"the sender failed: {box[0]}")
    res: gen.SendResult = box[0]
    if res.interrupted:
        raise KeyboardInterrupt
    return res


# ---- latency ----------------------------------------------------------------

def latency_run(s: Setup, receiver: str, *, rate: float, count: int) -> dict:
    """Send count time-stamped alerts at rate into receiver; latency percentiles."""
    sock = str(s.workdir / "lat.sock")
    _leftovers(s, "lat.sock", "deadletter.bin")
    is_ingest = receiver.startswith("ingest")
    err_path = s.workdir / "stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(_receiver_command(s, receiver, sock, count, latency=True),
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=s.workdir, env=s.env, start_new_session=True)
    assert proc.stdout is not None
    reader = _ChunkReader(proc.stdout.fileno())
    sender: gen.Sender | None = None
    done: threading.Event | None = None
    try:
        wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)  # start-up after bind() (sinks opening) is not latency
        sender = gen.sender_for(s.kind, sock, s.templates, time_stamp=True)
        box, done = _send_in_thread(sender, count, rate, s.time_limit)
        res = _wait_sent(box, done)
        if res.sent != count:
            raise BenchError(f"latency {receiver}: sent {res.sent} of {count} "
                             f"({res.last_error or 'time limit'})")
        deadline = time.monotonic() + min(30.0, s.time_limit)
        if is_ingest:
            while reader.lines < count and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
        if wait4(proc, max(5.0, deadline - time.monotonic())) is None:
            raise BenchError(f"latency {receiver}: did not finish in time")
        reader.join(10)
        if proc.returncode != 0:
            raise BenchError(f"latency {receiver} exited {proc.returncode}: "
                             f"{err_path.read_text(errors='replace')[-2000:]}")
        if is_ingest:
            lat = jsonl_latencies(reader.chunks)
            row = percentiles(lat)
        else:
            out = json.loads(b"".join(c for _t, c in reader.chunks))
            row = {"n": int(out["received"]), "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"],
                   "max_ms": out["max_ms"]}
        if row["n"] != count:
            raise BenchError(f"latency {receiver}: {row['n']} of {count} alerts timed")
        return {"receiver": receiver, "label": LATENCY_LABELS[receiver], "rate": rate,
                "alerts": count, "sender_rate": res.rate, **row}
    finally:
        teardown(sender, done, proc, sock)
        reader.join(5)
        proc.stdout.close()


# ---- loss -------------------------------------------------------------------

def default_qlen() -> int | None:
    try:
        return int(Path(_QLEN_PATH).read_text())
    except (OSError, ValueError):
        return None


def tuned_qlen_wrapper(qlen: int) -> tuple[list[str] | None, str]:
    """A command prefix that runs its argument in a fresh network namespace
    whose net.unix.max_dgram_qlen is qlen, or None and why that cannot be done
    here (not root, no unshare(1), no user of network namespaces allowed)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "unshare(1) not found"
    prefix = [unshare, "--net", "--", "sh", "-c",
              f'echo {int(qlen)} > {_QLEN_PATH} && exec "$@"', "sh"]
    try:
        r = subprocess.run(prefix + ["cat", _QLEN_PATH], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"unshare failed: {e}"
    if r.returncode != 0 or r.stdout.strip() != str(qlen):
        why = (r.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"cannot set net.unix.max_dgram_qlen in a new network namespace: {why}"
    return prefix, f"set to {qlen} in a fresh network namespace holding only the receiver"


def loss_run(s: Setup, receiver: str, *, count: int, rate: float, qlen: int | None,
             wrapper: list[str] | None) -> dict:
    """Send count alerts without ever blocking (would-block = dropped, counted
    by the sender) into receiver; returns what was dropped and received."""
    sock = str(s.workdir / "loss.sock")
    _leftovers(s, "loss.sock", "deadletter.bin")
    is_ingest = receiver.startswith("ingest")
    cmd = (wrapper or []) + _receiver_command(s, receiver, sock, 0, latency=False)
    out_path = s.workdir / "stdout"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=s.workdir, env=s.env,
                                start_new_session=True)
    assert proc.stderr is not None
    clock = LineClock(proc.stderr, count)
    sender: gen.Sender | None = None
    done: threading.Event | None = None
    try:
        wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)
        sender = gen.sender_for(s.kind, sock, s.templates, mode="dontwait")
        box, done = _send_in_thread(sender, count, rate, s.time_limit)
        res = _wait_sent(box, done)
        if res.errors:
            raise BenchError(f"loss {receiver}: {res.errors} send errors ({res.last_error})")
        # Whatever the kernel accepted is at most max_dgram_qlen datagrams
        # away from the receiver: give it a moment, then stop it.
        if is_ingest:
            clock.target = res.sent  # all-dispatched is the sent count, not count
            deadline = time.monotonic() + 10.0
            while clock.done_at is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        if wait4(proc, 30.0) is None:
            raise BenchError(f"loss {receiver}: did not stop in time")
        err_text = clock.text()
        if proc.returncode != 0:
            raise BenchError(f"loss {receiver} exited {proc.returncode}: {err_text[-2000:]}")
        if is_ingest:
            m = re.search(r"^ingest: final stats (\{.*\})\s*$", err_text, re.M)
            if not m:
                raise BenchError(f"loss {receiver}: no final stats line")
            stats = json.loads(m.group(1))
            received = sum(stats.get("dispatched", {}).values())
        else:
            received = int(json.loads(out_path.read_text())["received"])
        attempted = res.sent + res.dropped
        return {"receiver": receiver, "label": LOSS_LABELS[receiver], "qlen": qlen,
                "rate": rate, "attempted": attempted, "sent": res.sent,
                "dropped": res.dropped, "received": received,
                "lost_after_accept": res.sent - received,
                "loss_pct": 100.0 * res.dropped / attempted if attempted else float("nan"),
                "sender_rate": res.rate, "offered_rate": attempted / res.elapsed
                if res.elapsed > 0 else 0.0}
    finally:
        teardown(sender, done, proc, sock)
        proc.stderr.close()


@dataclass
class LatencyPlan:
    rates: tuple[float, ...] = LATENCY_RATES
    seconds: float = 5.0  # alerts per row = rate * seconds (at least 200)
    repeat: int = 1
    receivers: tuple[str, ...] = LATENCY_RECEIVERS


@dataclass
class LossPlan:
    # Offered rates, paced: a non-blocking sender running flat out mostly
    # measures how fast EAGAIN returns, not what a sensor would lose.
    rates: tuple[float, ...] = (10_000.0, 30_000.0)
    seconds: float = 2.0  # alerts per row = rate * seconds (at least 200)
    # Datagram sizes: a 64 KiB Snort Alertpkt, and a 1856-byte Barnyard2 one
    # (the size of an EVE alert datagram, whose rows wait for the EVE input).
    # Which limit binds differs: a 64 KiB datagram fills the sender's
    # SO_SNDBUF (net.core.wmem_default) after ~4, before max_dgram_qlen.
    kinds: tuple[str, ...] = ("snort", "barnyard2")
    repeat: int = 1
    receivers: tuple[str, ...] = LOSS_RECEIVERS
    tuned_qlen: int | None = TUNED_QLEN


def run_latency(s: Setup, plan: LatencyPlan, progress=None) -> dict:
    """plan.repeat rounds over every rate and receiver (interleaved, so machine
    noise hits them alike); per row the median p50 / p99 over the rounds."""
    runs: dict[tuple[float, str], list[dict]] = {}
    for rnd in range(plan.repeat):
        for rate in plan.rates:
            count = max(200, int(rate * plan.seconds))
            for receiver in plan.receivers:
                row = latency_run(s, receiver, rate=rate, count=count)
                runs.setdefault((rate, receiver), []).append(row)
                if progress:
                    progress(f"round {rnd + 1}/{plan.repeat} latency {rate:>8,.0f}/s "
                             f"{receiver:22s} p50 {row['p50_ms']:7.3f} ms  "
                             f"p99 {row['p99_ms']:7.3f} ms")
    rows = []
    for rs in runs.values():
        row = dict(rs[0])
        row["p50_ms"] = statistics.median(r["p50_ms"] for r in rs)
        row["p99_ms"] = statistics.median(r["p99_ms"] for r in rs)
        row["max_ms"] = max(r["max_ms"] for r in rs)
        row["p99_ms_runs"] = [r["p99_ms"] for r in rs]
        rows.append(row)
    return {"rates": list(plan.rates), "seconds": plan.seconds, "repeat": plan.repeat,
            "rows": rows}


def run_loss(s: Setup, plan: LossPlan, progress=None) -> dict:
    """plan.repeat rounds over every datagram size, qlen, rate and receiver;
    per row the median loss over the rounds (and the counts summed)."""
    qlen0 = default_qlen()
    settings: list[tuple[int | None, list[str] | None]] = [(qlen0, None)]
    note = "not measured (--tuned-qlen 0)"
    if plan.tuned_qlen is not None:
        wrapper, note = tuned_qlen_wrapper(plan.tuned_qlen)
        if wrapper is not None:
            settings.append((plan.tuned_qlen, wrapper))
    setups = {kind: s if kind == s.kind else dataclasses.replace(
        s, kind=kind, templates=gen.build_templates(kind, 256, 1)[0]) for kind in plan.kinds}
    runs: dict[tuple, list[dict]] = {}
    for rnd in range(plan.repeat):
        for kind, sk in setups.items():
            for qlen, wrapper in settings:
                for rate in plan.rates:
                    count = max(200, int(rate * plan.seconds))
                    for receiver in plan.receivers:
                        row = loss_run(sk, receiver, count=count, rate=rate, qlen=qlen,
                                       wrapper=wrapper)
                        if row["lost_after_accept"]:
                            raise BenchError(f"loss {receiver}: {row['lost_after_accept']} "
                                             "alerts accepted by the kernel never arrived")
                        row["kind"] = kind
                        row["datagram_bytes"] = gen.KINDS[kind][1]
                        runs.setdefault((kind, qlen, rate, receiver), []).append(row)
                        if progress:
                            progress(f"round {rnd + 1}/{plan.repeat} loss {kind:9s} "
                                     f"qlen {qlen!s:<4} {rate:8,.0f}/s {receiver:12s} dropped "
                                     f"{row['dropped']:6d} of {row['attempted']} "
                                     f"({row['loss_pct']:.1f} %)")
    rows = []
    for rs in runs.values():
        row = dict(rs[0])
        for k in ("attempted", "sent", "dropped", "received", "lost_after_accept"):
            row[k] = sum(r[k] for r in rs)
        row["loss_pct"] = statistics.median(r["loss_pct"] for r in rs)
        row["loss_pct_runs"] = [r["loss_pct"] for r in rs]
        row["offered_rate"] = statistics.mean(r["offered_rate"] for r in rs)
        rows.append(row)
    return {"default_qlen": qlen0, "tuned_qlen": plan.tuned_qlen, "tuned_note": note,
            "seconds": plan.seconds, "repeat": plan.repeat, "rates": list(plan.rates),
            "rows": rows, "wmem_default": _read_int("/proc/sys/net/core/wmem_default")}


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None
