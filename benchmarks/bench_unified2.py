"""py-idstools vs ingest on Unified2, side by side in one run, paired.

The real djcas9-unified2-current.log is replicated to >= 50 MB in a temp
dir; every reader decodes the same file, each measurement in its own child
process (a fresh interpreter, as ``ingest decode`` runs), rounds interleaved
(the order alternates), and every ratio is paired: the median over rounds
of the ratio within a round, with the range.  No best-of-N.

Rows (in process, timed inside the child around the call):

* py-idstools ``FileRecordReader`` (the peer: every ratio is to it);
* ``ingest.unified2.read`` (decode + join), called ``--calls`` times in the
  process (the first call and the median of the later ones are reported
  apart: the later ones reuse the output buffers, ingest/scratch.py);
* ``iter_read`` (16 MiB windows), and ``iter_read`` + rendering every alert
  as JSON (``render_buffer(res.batch)``, what the jsonl sink writes).

Whole commands (``--cli``, wall time of the process, start-up included):
``idstools-u2json FILE --output /dev/null`` vs ``ingest decode FILE --sink
jsonl:/dev/null`` and ``--sink null:``.

``--baseline DIR``: also run every ingest row from another checkout (its C
core built in place), interleaved with this one: a paired before/after.

    python -m benchmarks.bench_unified2 [--mb 50] [--rounds 5] [--cli] [--baseline ../main]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest.gen.shared import shared_file

#: the real djcas9 capture from the shared data set (INGEST_SHARED_DATA or
#: ../shared/data beside the checkout), None when absent
_SRC = shared_file("unified2/djcas9-unified2-current.log")
SRC = str(_SRC) if _SRC else ""
HERE = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
mode, path, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
walls, n = [], 0
# imports outside the timed calls (the --cli rows time whole commands)
if mode == "idstools":
    from idstools import unified2 as iu2
else:
    from ingest import unified2
    from ingest.render import render_buffer
c0 = time.process_time()
for _ in range(calls):
    t0 = time.perf_counter()
    if mode == "idstools":
        n = sum(1 for rec in iu2.FileRecordReader(path) if isinstance(rec, iu2.Event))
    elif mode == "read":
        res = unified2.read(path)
        n = len(res.alerts)
        assert res.orphan_packets == 0
    elif mode == "iter_read":
        n = 0
        for r in unified2.iter_read(path):
            n += len(r.alerts)
    elif mode == "iter_json":
        n = 0
        for r in unified2.iter_read(path):
            render_buffer(r.batch)
            n += len(r.alerts)
    walls.append(time.perf_counter() - t0)
print(json.dumps({"n": n, "walls": walls, "cpu": time.process_time() - c0}))
"""

LABELS = {
    "idstools": "py-idstools FileRecordReader",
    "read": "ingest unified2.read (decode + join)",
    "iter_read": "ingest unified2.iter_read",
    "iter_json": "ingest iter_read + JSON render",
    "u2json": "idstools-u2json --output /dev/null",
    "decode_jsonl": "ingest decode --sink jsonl:/dev/null",
    "decode_null": "ingest decode --sink null:",
}


def make_file(directory: str, mb: int) -> tuple[str, int]:
    data = open(SRC, "rb").read()
    reps = -(-mb * 1_000_000 // len(data))
    path = os.path.join(directory, "u2.bench")
    with open(path, "wb") as f:
        for _ in range(reps):
            f.write(data)
    return path, reps


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "OPENBLAS_NUM_THREADS": "1"}


def run_child(tree: Path, mode: str, path: str, calls: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(calls)], capture_output=True,
                         text=True, env=_env(tree), cwd=tree, check=True)
    return json.loads(out.stdout)


def run_command(tree: Path, mode: str, path: str) -> dict:
    """Wall seconds of a whole command.  The exit status is not checked: the
    jsonl sink's closing fsync fails (EINVAL) on /dev/null after every line
    was written, and ingest then exits 1."""
    if mode == "u2json":
        exe = shutil.which("idstools-u2json")
        assert exe, "idstools-u2json not on PATH (pip install idstools)"
        argv = [exe, path, "--output", "/dev/null"]
    else:
        sink = "jsonl:/dev/null" if mode == "decode_jsonl" else "null:"
        argv = [sys.executable, "-m", "ingest", "decode", path, "--sink", sink, "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=_env(tree), cwd=tree)
    return {"walls": [time.perf_counter() - t0]}


def paired(xs: list[float], ys: list[float]) -> str:
    r = [x / y for x, y in zip(xs, ys, strict=True) if y > 0]
    if not r:
        return "-"
    return f"{statistics.median(r):6.2f} ({min(r):.2f}-{max(r):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=4, help="read() calls per process (first reported apart)")
    ap.add_argument("--cli", action="store_true", help="also time the whole commands (u2json vs ingest decode)")
    ap.add_argument("--baseline", type=Path, help="another checkout: its ingest rows run interleaved (before/after)")
    ns = ap.parse_args()
    if not SRC:
        print("bench_unified2: the shared data set is absent (set INGEST_SHARED_DATA)", file=sys.stderr)
        return 2
    import idstools
    import numpy

    trees = {"this": HERE}
    if ns.baseline:
        trees["base"] = ns.baseline.resolve()
    print(f"python {platform.python_version()}, numpy {numpy.__version__}, idstools {idstools.version}, "
          f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
          f"{ns.rounds} rounds interleaved" + (f", baseline {ns.baseline}" if ns.baseline else ""))
    modes = ["idstools", "read", "iter_read", "iter_json"] + (["u2json", "decode_jsonl", "decode_null"]
                                                              if ns.cli else [])
    with tempfile.TemporaryDirectory() as d:
        path, reps = make_file(d, ns.mb)
        size = os.path.getsize(path)
        events = run_child(HERE, "iter_read", path, 1)["n"]
        print(f"file: djcas9-unified2-current.log x{reps} = {size / 1e6:.1f} MB, {events} events")
        # (mode, tree) -> per round: events/s of the first call, of the later calls
        first: dict[tuple[str, str], list[float]] = {}
        later: dict[tuple[str, str], list[float]] = {}
        jobs = [(m, t) for m in modes for t in trees if t == "this" or m not in ("idstools", "u2json")]
        for rnd in range(ns.rounds):
            for m, t in (jobs if rnd % 2 == 0 else jobs[::-1]):
                if m in ("u2json", "decode_jsonl", "decode_null"):
                    r = run_command(trees[t], m, path)
                else:
                    r = run_child(trees[t], m, path, ns.calls if m == "read" else 1)
                    assert r["n"] == events, (m, t, r["n"])
                first.setdefault((m, t), []).append(events / r["walls"][0])
                if len(r["walls"]) > 1:
                    later.setdefault((m, t), []).append(events / statistics.median(r["walls"][1:]))
    peer = first[("idstools", "this")]
    cli_peer = first.get(("u2json", "this"))
    head = f"{'reader':42s} {'M events/s':>10s} {'MB/s':>7s}   {'vs py-idstools, paired':>22s}"
    if ns.baseline:
        head += f"   {'this/baseline, paired':>22s}"
    print(head)
    rows = [(m, t, first, "") for m, t in jobs] + [(m, t, later, " (later calls)") for m, t in jobs
                                                    if (m, t) in later]
    rows.sort(key=lambda r: (modes.index(r[0]), r[3], r[1] != "this"))
    for m, t, src, note in rows:
        rate = src[(m, t)]
        ref = cli_peer if m.startswith("decode") and cli_peer else peer
        name = LABELS[m] + note + (" [baseline]" if t == "base" else "")
        line = (f"{name:42s} {statistics.median(rate) / 1e6:10.3f} {statistics.median(rate) * size / events / 1e6:7.0f}"
                f"   {paired(rate, ref):>22s}")
        if ns.baseline and t == "this" and (m, "base") in src:
            line += f"   {paired(rate, src[(m, 'base')]):>22s}"
        print(line)
    print("(the decode rows' ratios are to idstools-u2json when --cli, else to FileRecordReader)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
