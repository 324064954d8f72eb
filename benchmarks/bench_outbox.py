"""What each fsync policy of the outbox costs (ingest.sinks.outbox), and
how fast a spool replays.

For payloads of 4 KiB, 64 KiB and 512 KiB (a batch of ~8 to ~900 EVE
alerts) it appends SECONDS worth of records under fsync="always",
"segment" and "never" (the three in turn, round by round, best of RUNS),
then replays them with ``pending()`` + ``ack`` every 64 records (page cache
warm: the cost of the format, not of the disk).  Reported: appends/s, MB/s,
p99 latency of one append (a "segment" append that finishes a segment pays
its fsync), replay MB/s.  The directory is on the same file system as the
temp dir (``--dir`` to choose).  Run:

    PYTHONPATH=. python benchmarks/bench_outbox.py [--seconds 2] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from ingest.sinks.outbox import FSYNC_POLICIES, Outbox

SIZES = (4 << 10, 64 << 10, 512 << 10)


def append_run(d: str, policy: str, size: int, seconds: float) -> tuple[int, float, float]:
    """(appends, seconds, p99 of one append in ms)."""
    payload = os.urandom(size)
    lat: list[float] = []
    with Outbox(d, 4 << 30, fsync=policy) as box:
        t0 = time.perf_counter()
        end = t0 + seconds
        while (now := time.perf_counter()) < end:
            box.append(payload, {"n": 500})
            lat.append(time.perf_counter() - now)
        took = time.perf_counter() - t0
    lat.sort()
    return len(lat), took, lat[int(len(lat) * 0.99)] * 1e3


def replay_run(d: str) -> tuple[int, int, float]:
    """(records, bytes, seconds) to replay and acknowledge everything."""
    n = nbytes = 0
    with Outbox(d, 4 << 30, fsync="segment") as box:
        t0 = time.perf_counter()
        last = 0
        for seq, _meta, payload in box.pending():
            n += 1
            nbytes += len(payload)
            last = seq
            if n % 64 == 0:
                box.ack(seq)
        box.ack(last)
        return n, nbytes, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    best: dict[tuple[str, int], tuple[float, float, float]] = {}
    rep: dict[int, float] = {}
    for _ in range(a.runs):
        for size in SIZES:
            for policy in FSYNC_POLICIES:
                base = tempfile.mkdtemp(prefix="outbox-bench-", dir=a.dir)
                d = os.path.join(base, "ob")
                try:
                    n, took, p99 = append_run(d, policy, size, a.seconds)
                    rate = n / took
                    if rate > best.get((policy, size), (0.0, 0.0, 0.0))[0]:
                        best[(policy, size)] = (rate, rate * size / 1e6, p99)
                    if policy == "never":
                        rn, rb, rt = replay_run(d)
                        rep[size] = max(rep.get(size, 0.0), rb / rt / 1e6)
                finally:
                    shutil.rmtree(base)
    print(f"outbox append, {a.seconds:g} s per run, best of {a.runs}")
    print(f"{'payload':>8} {'fsync':>8} {'appends/s':>10} {'MB/s':>8} {'p99 ms':>8}")
    for size in SIZES:
        for policy in FSYNC_POLICIES:
            rate, mbs, p99 = best[(policy, size)]
            print(f"{size >> 10:>6}Ki {policy:>8} {rate:>10,.0f} {mbs:>8,.0f} {p99:>8.2f}")
    print("replay (pending + ack every 64), page cache warm:")
    for size in SIZES:
        print(f"{size >> 10:>6}Ki {rep[size]:>8,.0f} MB/s")


if __name__ == "__main__":
    main()
