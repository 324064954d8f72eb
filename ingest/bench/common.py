"""Process plumbing shared by every ``ingest bench`` measurement: start a
receiver, wait for its socket, account for its CPU and peak memory, stop it
and its sender whatever happened.  Imported by the harness and by each row
module (latency, unified2, eve); it imports none of them."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import stat
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the directory that holds the ``ingest`` package being run: children
#: (``python -m ingest listen``) get it on PYTHONPATH so they run this code
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
#: the peers' sources, shipped with the package (``ingest bench`` works from
#: an installed wheel: recv_count.c is compiled at run time)
DEFAULT_PEERS = Path(__file__).resolve().parent / "peers"
FINAL_STATS = re.compile(r"^ingest: final stats (\{.*\})\s*$", re.M)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: ingest listen's stats period: the resolution of its completion time
STATS_INTERVAL = 0.05


def ratio(x: float, y: float) -> float:
    """x / y, or NaN when the peer was measured at 0 (a short run below the
    kernel's CPU tick): no ratio is better than a crash or an infinity."""
    return x / y if y > 0 else float("nan")


def paired_median(pairs: Iterable[tuple[float, float]]) -> float:
    """Median over rounds of ours/peer, leaving out rounds whose peer figure
    is 0; NaN when no round gives a ratio."""
    ratios = [x / y for x, y in pairs if y > 0]
    return statistics.median(ratios) if ratios else float("nan")


def paired_range(pairs: Iterable[tuple[float, float]]) -> tuple[float, float, float]:
    """(median, min, max) over rounds of ours/peer, leaving out rounds whose
    peer figure is 0; NaNs when no round gives a ratio."""
    ratios = [x / y for x, y in pairs if y > 0]
    if not ratios:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(ratios), min(ratios), max(ratios)


#: where the sender and the receiver run (``ingest bench --placement``): on
#: this 2-core machine it moves the bare C receiver between 30 k and 105 k/s
PLACEMENTS = ("unpinned", "same", "different")


def placement_cpus(placement: str) -> tuple[set[int] | None, set[int] | None]:
    """(sender CPUs, receiver CPUs) for a placement; None: unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "unpinned":
        return None, None
    if placement == "same":
        return {cpus[0]}, {cpus[0]}
    if placement == "different":
        if len(cpus) < 2:
            raise BenchError("--placement different needs two CPUs")
        return {cpus[0]}, {cpus[1]}
    raise ValueError(f"unknown placement {placement!r}")


def placement_label(placement: str) -> str:
    """What a row's placement was, in words (with the CPU numbers)."""
    snd, rcv = placement_cpus(placement)
    if snd is None or rcv is None:
        return "unpinned (the scheduler's choice)"
    if snd == rcv:
        return f"same core (cpu {min(snd)})"
    return f"different cores (sender cpu {min(snd)}, receiver cpu {min(rcv)})"


def pin_self(cpus: set[int] | None) -> None:
    """Pin the calling thread (Linux: pid 0 is the calling thread)."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def pinned_exec(cpus: set[int] | None):
    """A preexec_fn pinning a child before it execs (every thread it makes
    inherits the mask), or None."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class BenchError(RuntimeError):
    """A measurement could not be made (a receiver failed, lost alerts, ...)."""


class Interrupted(BaseException):
    """SIGTERM, turned into an exception so every cleanup block runs."""


def proc_cpu(pid: int) -> float:
    """user + system seconds of every thread of pid so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def proc_hwm_kb(pid: int) -> int:
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


def wait4(proc: subprocess.Popen, timeout: float,
           watch: list[int] | None = None) -> resource.struct_rusage | None:
    """Reap proc and return its rusage, or None if it is still running after
    timeout.  While waiting, keep watch[0] at the child's highest VmHWM."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        if watch is not None and polls % 10 == 0:
            watch[0] = max(watch[0], proc_hwm_kb(proc.pid))
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


class LineClock:
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


def parse_stats_line(line: str) -> dict[str, int | dict[str, int]] | None:
    """The counters of one periodic ``ingest: stats`` line (ingest.stats
    ``Stats.line``): ``received=2000`` -> 2000, ``dispatched=null:1510`` ->
    {"null": 1510} (``0``: {}); None for any other line."""
    if not line.startswith("ingest: stats "):
        return None
    out: dict[str, int | dict[str, int]] = {}
    for item in line[len("ingest: stats "):].split():
        key, sep, value = item.partition("=")
        if not sep:
            continue
        if key in ("received", "decoded", "queue", "queue_bytes"):
            try:
                out[key] = int(value)
            except ValueError:
                return None
        elif key in ("dispatched", "malformed", "dropped", "anomalies"):
            parts: dict[str, int] = {}
            if value != "0":
                for kv in value.split(","):
                    name, _, n = kv.rpartition(":")
                    try:
                        parts[name] = int(n)
                    except ValueError:
                        return None
            out[key] = parts
    return out


def all_dispatched(count: int):
    """The done test of an EVE row's StatsClock: every one of ``count``
    records read (``received``), and every record they decoded into handed
    to every sink (``dispatched`` of each sink == ``decoded``; non-alert
    events that make no record, e.g. Suricata stats, are counted by
    ``received`` only)."""
    def done(f: dict) -> bool:
        d = f.get("dispatched") or {}
        return (f.get("received", 0) >= count and bool(d)
                and all(v >= f.get("decoded", 0) for v in d.values()))
    return done


class StatsClock:
    """Reads a child ingest's stderr on a thread and notes when the first
    periodic stats line satisfying ``done`` arrived, and its counters: the
    moment ingest said it had handled the last record, known to within one
    stats interval, without its shutdown (the EVE rows; LineClock is the
    Alertpkt rows' form of it)."""

    def __init__(self, stream, done) -> None:
        self.lines: list[str] = []
        self.done_at: float | None = None
        self.done_fields: dict | None = None
        self._done = done
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if self.done_at is None:
                f = parse_stats_line(line)
                if f is not None and self._done(f):
                    self.done_at = time.monotonic()
                    self.done_fields = f

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


_NO_RUSAGE = resource.struct_rusage((0.0,) * 16)


def stop_process(proc: subprocess.Popen) -> None:
    """Make sure proc is gone: SIGTERM, then SIGKILL."""
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        if wait4(proc, grace) is not None:
            return


def sigterm_then_kill(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a server we started (nats-server): SIGTERM, ``grace`` seconds to
    exit cleanly, then SIGKILL; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def teardown(sender, done: threading.Event | None, proc: subprocess.Popen, sock: str) -> None:
    """End one measured run whatever happened: stop the sender and wait for
    its thread, make sure the receiver is gone, remove its socket."""
    if sender is not None:
        sender.stop()
    if done is not None:
        done.wait(10)
    stop_process(proc)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)


def wait_for_socket(path: str, proc: subprocess.Popen, timeout: float) -> None:
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
    #: where the sender and receivers run (PLACEMENTS)
    placement: str = "unpinned"




@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[None]:
    def handler(_sig, _frame):
        raise Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
