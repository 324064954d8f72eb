"""Where the time goes, per path: ``perf`` samples of one ingest process
(every thread, on-CPU time), sorted into buckets anyone can read.

Paths (each a real process on real inputs, in a temp dir):

* ``unified2``      ``unified2.iter_read`` over a generated spool file, in process
* ``decode-jsonl``  ``ingest decode SPOOL --sink jsonl:FILE`` (Unified2 -> EVE JSON lines)
* ``snort-null``    ``ingest listen --snort SOCK --sink null:`` fed by ``ingest gen --kind snort``
* ``snort-sqlite``  the same into ``--sink sqlite:DB``
* ``eve-stream``    ``ingest listen --eve-stream SOCK --sink null:`` fed by ``ingest gen --kind eve-stream``

Buckets: the kernel's copies (socket and file data), page faults and page
zeroing, scheduling and wake-ups (futex, schedule: this is where a thread
that waits for the GIL or for data shows up when it runs), other kernel
work; ingest's C core (``_native``), the Python interpreter, numpy, SQLite,
libc (memcpy, malloc) and the rest.  Off-CPU time (a thread asleep waiting
for the GIL) is not sampled by ``perf record``'s CPU clock: the wake-ups
bucket is its on-CPU trace.  Needs ``perf`` (linux-perf) and the right to
use it (root, or kernel.perf_event_paranoid <= 1).

    python -m benchmarks.where_time_goes [PATH ...] [--count N] [--freq HZ]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("unified2", "decode-jsonl", "snort-null", "snort-sqlite", "eve-stream")
BUCKETS = ("kernel: data copies", "kernel: page faults + zeroing", "kernel: scheduling, wake-ups, futex",
           "kernel: other (syscalls, sockets, fs)", "ingest C core", "Python (interpreter, uvloop, cffi)", "numpy",
           "SQLite", "libc (memcpy, malloc, ...)", "other")

_COPY = re.compile(r"copy_(to|from)_(user|iter)|_copy_|rep_movs|memcpy|copy_page|skb_copy|copyout|copyin")
_FAULT = re.compile(r"clear_page|fault|folio|zero_user|alloc_pages|get_page_from_freelist|lru|rmap|"
                    r"unmap_page|free_pages|mm_|pte|page_remove|release_pages")
_SCHED = re.compile(r"schedule|switch|futex|wake|enqueue|dequeue|pick_next|update_curr|idle|"
                    r"ttwu|select_task|load_balance|hrtimer|tick|irq")


def bucket(dso: str, sym: str) -> str:
    if dso.startswith("[kernel") or sym.startswith("[k]"):
        if _COPY.search(sym):
            return BUCKETS[0]
        if _FAULT.search(sym):
            return BUCKETS[1]
        if _SCHED.search(sym):
            return BUCKETS[2]
        return BUCKETS[3]
    if "_native" in dso:
        return BUCKETS[4]
    if "multiarray" in dso or "numpy" in dso or "openblas" in dso or "umath" in dso:
        return BUCKETS[6]
    if "sqlite" in dso:
        return BUCKETS[7]
    if dso.startswith(("libpython", "python")) or dso.startswith(("loop.", "_asyncio", "_cffi", "_ctypes")):
        return BUCKETS[5]
    if dso.startswith(("libc.so", "libc-", "ld-linux", "libm.")):
        return BUCKETS[8]
    return BUCKETS[9]


def report(data: Path) -> tuple[dict[str, float], list[tuple[float, str, str]]]:
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym",
                          "--stdio", "--percent-limit", "0"], capture_output=True, text=True, check=True).stdout
    got = dict.fromkeys(BUCKETS, 0.0)
    top: list[tuple[float, str, str]] = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if kind == "k":
            dso = "[kernel]"
        got[bucket(dso, sym)] += pct
        top.append((pct, dso, sym))
    return got, sorted(top, reverse=True)[:8]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"where_time_goes: {path} never appeared")
        time.sleep(0.02)


def _stop(p: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if p.poll() is None:
        p.send_signal(sig)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def profile(path: str, work: Path, count: int, freq: int) -> Path:
    data = work / f"{path}.perf"
    env = _env()
    if path in ("unified2", "decode-jsonl"):
        spool = work / "u2.log"
        if not spool.exists():
            from ingest.bench.unified2 import write_spool

            write_spool(spool, count)
        if path == "unified2":
            code = ("import sys\nfrom ingest import unified2\n"
                    "for _ in range(20):\n    sum(len(r.alerts) for r in unified2.iter_read(sys.argv[1]))\n")
            cmd = [sys.executable, "-c", code, str(spool)]
        else:
            cmd = [sys.executable, "-m", "ingest", "decode", str(spool), "--sink", f"jsonl:{work / 'out.jsonl'}",
                   "--no-progress"]
        subprocess.run(["perf", "record", "-F", str(freq), "-o", str(data), "--", *cmd], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return data
    sock = work / "in.sock"
    if path.startswith("snort"):
        sink = "null:" if path == "snort-null" else f"sqlite:{work / 'a.db'}"
        listen = ["--snort", str(sock), "--sink", sink]
        gen = ["--kind", "snort"]
    else:
        listen = ["--eve-stream", str(sock), "--sink", "null:"]
        gen = ["--kind", "eve-stream", "--offline"]
    # the receiver runs under perf from its start (every thread it makes is
    # followed); its start-up is in the samples, diluted by --count
    rx = subprocess.Popen(["perf", "record", "-F", str(freq), "-o", str(data), "--",
                           sys.executable, "-m", "ingest", "listen", *listen, "--stats-interval", "0",
                           "--dead-letter", str(work / "dl.bin")], env=env, cwd=work,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(sock, rx)
        subprocess.run([sys.executable, "-m", "ingest", "gen", "--to", str(sock), *gen, "--count", str(count)],
                       env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        time.sleep(0.5)
    finally:
        _stop(rx)  # perf stops recording and sends the receiver SIGTERM: it drains and exits
    for f in ("a.db", "a.db-wal", "a.db-shm", "dl.bin"):
        (work / f).unlink(missing_ok=True)
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", default=list(PATHS), metavar="PATH", help=", ".join(PATHS))
    ap.add_argument("--count", type=int, default=100_000, help="alerts / records / events per path")
    ap.add_argument("--freq", type=int, default=1999, help="perf sampling frequency (Hz)")
    ns = ap.parse_args()
    if bad := [p for p in ns.paths if p not in PATHS]:
        ap.error(f"unknown path(s) {bad}; choose from {', '.join(PATHS)}")
    if shutil.which("perf") is None:
        print("where_time_goes: perf is not installed (Debian: linux-perf)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ingest-perf-") as d:
        work = Path(d)
        tables = {}
        for p in ns.paths:
            got, top = report(profile(p, work, ns.count, ns.freq))
            tables[p] = got
            print(f"{p}: hottest symbols: " + "; ".join(f"{s} {pct:.1f}%" for pct, _, s in top[:6]),
                  file=sys.stderr)
    print(f"on-CPU time per path, % of samples (perf record -F {ns.freq}, every thread of the process; "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"{'bucket':40s}" + "".join(f"{p:>14s}" for p in tables))
    for b in BUCKETS:
        print(f"{b:40s}" + "".join(f"{tables[p][b]:14.1f}" for p in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
