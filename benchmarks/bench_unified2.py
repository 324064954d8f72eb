"""py-idstools vs ingest on Unified2, side by side in one run.

The real djcas9-unified2-current.log is replicated to >= 50 MB in a temp
dir; every reader decodes the same file; best of N runs; events/s and the
ratio to py-idstools' FileRecordReader measured in the same run.

In-process: py-idstools FileRecordReader vs ``ingest.unified2.read``
(decode + join), and ``iter_read`` + rendering every alert as JSON.
Whole commands (``--cli``): ``idstools-u2json FILE --output /dev/null``
(py-idstools decode + its JSON output) vs ``ingest decode FILE --sink
jsonl:/dev/null`` and ``--sink null:``.  Run:

    PYTHONPATH=. python benchmarks/bench_unified2.py [--mb 50] [--runs 5] [--cli]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from ingest.gen.shared import shared_file

#: the real djcas9 capture from the shared data set (INGEST_SHARED_DATA or
#: ../shared/data beside the checkout), None when absent
_SRC = shared_file("unified2/djcas9-unified2-current.log")
SRC = str(_SRC) if _SRC else ""


def make_file(directory: str, mb: int) -> tuple[str, int]:
    data = open(SRC, "rb").read()
    reps = -(-mb * 1_000_000 // len(data))
    path = os.path.join(directory, "u2.bench")
    with open(path, "wb") as f:
        for _ in range(reps):
            f.write(data)
    return path, reps


def bench_ingest(path: str) -> tuple[float, int, float]:
    from ingest import unified2

    t0, c0 = time.perf_counter(), time.process_time()
    res = unified2.read(path)
    n = len(res.alerts)
    assert res.orphan_packets == 0  # the join ran
    return time.perf_counter() - t0, n, time.process_time() - c0


def bench_ingest_json(path: str) -> tuple[float, int, float]:
    from ingest import unified2
    from ingest.render import render_buffer

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for res in unified2.iter_read(path):
        render_buffer(res.batch)  # what the jsonl sink writes
        n += len(res.alerts)
    return time.perf_counter() - t0, n, time.process_time() - c0


def _command(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (children) of one command run.  The exit status
    is not checked: the jsonl sink's closing fsync fails (EINVAL) on
    /dev/null after every line was written, and ingest then exits 1."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def cli_ingest(sink: str):
    def run(path: str, n: int) -> tuple[float, int, float]:
        wall, cpu = _command([sys.executable, "-m", "ingest", "decode", path, "--sink", sink, "--no-progress"])
        return wall, n, cpu
    return run


def cli_u2json(path: str, n: int) -> tuple[float, int, float]:
    exe = shutil.which("idstools-u2json")
    assert exe, "idstools-u2json not on PATH (pip install idstools)"
    wall, cpu = _command([exe, path, "--output", "/dev/null"])
    return wall, n, cpu


def bench_idstools(path: str) -> tuple[float, int, float]:
    from idstools import unified2 as iu2

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for rec in iu2.FileRecordReader(path):
        if isinstance(rec, iu2.Event):
            n += 1
    return time.perf_counter() - t0, n, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--idstools-runs", type=int, default=2)
    ap.add_argument("--cli", action="store_true", help="also time the whole commands (u2json vs ingest decode)")
    ns = ap.parse_args()
    if not SRC:
        print("bench_unified2: the shared data set is absent (set INGEST_SHARED_DATA)", file=sys.stderr)
        return 2
    import idstools
    import numpy

    print(f"python {platform.python_version()}, numpy {numpy.__version__}, idstools {idstools.version}, "
          f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as d:
        path, reps = make_file(d, ns.mb)
        size = os.path.getsize(path)
        print(f"file: {SRC} x{reps} = {size / 1e6:.1f} MB")
        rows = []
        for name, fn, runs in (("py-idstools FileRecordReader", bench_idstools, ns.idstools_runs),
                               ("ingest.unified2.read (decode + join)", bench_ingest, ns.runs),
                               ("ingest iter_read + batch JSON render", bench_ingest_json, max(1, ns.runs // 2))):
            best = min((fn(path) for _ in range(runs)), key=lambda r: r[0])
            rows.append((name, *best))
        if ns.cli:
            n = rows[1][2]
            for name, fn, runs in (("idstools-u2json --output /dev/null", cli_u2json, ns.idstools_runs),
                                   ("ingest decode --sink jsonl:/dev/null", cli_ingest("jsonl:/dev/null"), ns.runs),
                                   ("ingest decode --sink null:", cli_ingest("null:"), ns.runs)):
                best = min((fn(path, n) for _ in range(runs)), key=lambda r: r[0])
                rows.append((name, *best))
        base = rows[0][2] / rows[0][1]
        for name, wall, n, cpu in rows:
            eps = n / wall
            print(f"{name:40s} {n:9d} events {wall * 1000:9.1f} ms  {eps / 1e6:7.3f} M events/s  "
                  f"{size / wall / 1e6:8.1f} MB/s  cpu {cpu * 1000:8.1f} ms  x{eps / base:6.1f}")
    print(f"max rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
