"""EVE over unix_dgram: ingest against the bare C receiver, paired (issue 10 item 2).

    python benchmarks/bench_eve_dgram.py [--count 100000] [--repeat 5]
        [--records shared|generated] [--before DIR] [--loss-rate 100000]
        [--loss-seconds 2] [--qlen 4096] [--no-throughput] [--no-loss]

**Throughput** (the ``ingest bench`` EVE dgram rows, alone): each round sends
the same EVE records with ``ingest gen``'s blocking sender (Suricata ``-r``)
into the bare C ``recv_count`` (recvmmsg into 256 KiB slots, count only),
then into ``ingest listen --eve-dgram SOCK --sink null:``, timed as
``ingest bench`` times them (ingest to the stats line saying every record
was handed on; shutdown apart).  ``--before DIR``: a third receiver, the
same command run from another checkout (built in place), so a before/after
pair comes from the same rounds.  Ratios are the median of the within-round
ratios, with their range.

**Live-mode loss**: Suricata live sends with MSG_DONTWAIT and drops what
would block.  ``--loss-rate`` records/s, paced, for ``--loss-seconds``,
into each receiver started in a private network namespace whose
``net.unix.max_dgram_qlen`` is ``--qlen`` (the machine's own setting is never
changed; without unshare(1) or the right to use it, the default queue is
used and the report says so).  Loss = records the sender had to drop /
records it tried; every record the kernel accepted must arrive.

The records: ``shared`` (the Zeus Suricata 7.0.7 capture of the shared data,
as ``ingest bench`` uses; mean 604 B, 75 % alerts, 24 % flows) or
``generated`` (``ingest gen``'s EVE mix: ~1.1 KB, 85 % alerts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import gen
from ingest.bench import eve as E
from ingest.bench.common import DEFAULT_PEERS, paired_range, wait4, wait_for_socket
from ingest.bench.latency import tuned_qlen_wrapper


def throughput(wd: Path, records: list[bytes], count: int, repeat: int, before: str | None) -> None:
    env = dict(os.environ)
    recvs = ["bare-c", "ingest-eve-dgram"]
    if before:
        E.RECEIVER_ENV["ingest-before"] = {"PYTHONPATH": str(Path(before).resolve())}
        E.LABELS["ingest-before"] = f"ingest --eve-dgram null: from {before}"
        recvs.append("ingest-before")
        cmd = E._command
        E._command = lambda r, *a, **k: cmd("ingest-eve-dgram" if r == "ingest-before" else r, *a, **k)
    runs: dict[str, list[dict]] = {r: [] for r in recvs}
    for rnd in range(repeat):
        for r in recvs:
            m = E._measure(wd, env, r, records, count, 120.0)
            runs[r].append(m)
            print(f"round {rnd + 1}/{repeat} {r:18s} {m['records_per_s']:10,.0f} records/s "
                  f"{m['cpu_s_per_million']:6.2f} CPU s/M  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\nmedians over {repeat} rounds of {count:,} records:")
    for r in recvs:
        rs = runs[r]
        line = (f"  {r:18s} {statistics.median(x['records_per_s'] for x in rs):10,.0f} records/s "
                f"{statistics.median(x['cpu_s_per_million'] for x in rs):6.2f} CPU s/M")
        if r != "bare-c":
            for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "CPU")):
                med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(rs, runs["bare-c"], strict=True))
                line += f"  {name}/bare C {med:.2f} ({lo:.2f}-{hi:.2f})"
        print(line)
    if before:
        for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "CPU")):
            med, lo, hi = paired_range((x[key], y[key]) for x, y in
                                       zip(runs["ingest-eve-dgram"], runs["ingest-before"], strict=True))
            print(f"  after/before {name}: {med:.2f} ({lo:.2f}-{hi:.2f})")


def loss_one(wd: Path, receiver: str, records: list[bytes], rate: float, seconds: float,
             wrapper: list[str] | None) -> dict:
    sock = str(wd / "loss.sock")
    for leftover in ("loss.sock", "deadletter.bin"):
        Path(wd / leftover).unlink(missing_ok=True)
    if receiver == "bare-c":
        cmd = [str(wd / "recv_count"), sock, "0", str(256 * 1024), "256"]
    else:
        cmd = [sys.executable, "-m", "ingest", "listen", "--eve-dgram", sock, "--sink", "null:",
               "--stats-interval", "0", "--dead-letter", str(wd / "deadletter.bin")]
    out = open(wd / "loss-out", "wb")
    err = open(wd / "loss-err", "wb")
    env = dict(os.environ) | ({"INGEST_NATIVE_READER": "all"} if receiver == "ingest-c-reader" else {})
    proc = subprocess.Popen((wrapper or []) + cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                            cwd=wd, env=env, start_new_session=True)
    try:
        wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)
        count = int(rate * seconds)
        res = gen.LineSender(sock, records, stream=False, offline=False).run(count, rate=rate)
        time.sleep(1.0)  # what the kernel accepted is at most a queue away
        proc.send_signal(signal.SIGTERM)
        if wait4(proc, 30.0) is None:
            raise RuntimeError(f"{receiver} did not stop")
        out.close()
        err.close()
        if receiver == "bare-c":
            received = int(json.loads((wd / "loss-out").read_text())["received"])
        else:
            m = re.search(r"final stats (\{.*\})", (wd / "loss-err").read_text())
            if not m:
                raise RuntimeError(f"{receiver}: no final stats")
            st = json.loads(m.group(1))
            received = int(st["received"])
            if st.get("dropped"):
                raise RuntimeError(f"{receiver} dropped records itself: {st['dropped']}")
        attempted = res.sent + res.dropped + res.errors
        return {"receiver": receiver, "attempted": attempted, "sent": res.sent, "dropped": res.dropped,
                "received": received, "lost_after_accept": res.sent - received,
                "loss_pct": 100.0 * res.dropped / attempted if attempted else float("nan"),
                "offered_per_s": attempted / res.elapsed if res.elapsed > 0 else 0.0}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def loss(wd: Path, records: list[bytes], rate: float, seconds: float, qlen: int, repeat: int,
         c_reader: bool) -> None:
    wrapper, note = tuned_qlen_wrapper(qlen)
    print(f"\nlive-mode loss, {rate:,.0f} records/s offered for {seconds} s, max_dgram_qlen: {note}")
    recvs = ("bare-c", "ingest-eve-dgram") + (("ingest-c-reader",) if c_reader else ())
    diffs: dict[str, list[float]] = {r: [] for r in recvs[1:]}
    for rnd in range(repeat):
        pair = {}
        for r in recvs:
            x = loss_one(wd, r, records, rate, seconds, wrapper)
            pair[r] = x
            print(f"round {rnd + 1}/{repeat} {r:18s} loss {x['loss_pct']:6.2f} % of {x['attempted']:,} "
                  f"(offered {x['offered_per_s']:,.0f}/s; lost after accept {x['lost_after_accept']}) "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        for r in recvs[1:]:
            diffs[r].append(pair[r]["loss_pct"] - pair["bare-c"]["loss_pct"])
    for r, d in diffs.items():
        print(f"  {r} loss - bare C loss, points: median {statistics.median(d):+.2f} "
              f"(range {min(d):+.2f} to {max(d):+.2f}); goal: within 1 point")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--records", choices=("shared", "generated"), default="shared")
    ap.add_argument("--before", help="another checkout (built in place): a third, paired receiver")
    ap.add_argument("--loss-rate", type=float, default=100_000.0)
    ap.add_argument("--loss-seconds", type=float, default=2.0)
    ap.add_argument("--loss-repeat", type=int, default=3)
    ap.add_argument("--qlen", type=int, default=4096)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-loss", action="store_true")
    ap.add_argument("--c-reader", action="store_true",
                    help="loss rows: also ingest with its C reader thread (INGEST_NATIVE_READER=all)")
    args = ap.parse_args()
    records, src = (gen.load_eve_records(None, 256, 1) if args.records == "shared"
                    else (gen.eve_records(256, 1), "generated"))
    print(f"records: {src}, mean {sum(map(len, records)) / len(records):.0f} B; "
          f"load average {os.getloadavg()}")
    wd = Path(tempfile.mkdtemp(prefix="bench-eve-dgram-"))
    try:
        gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
        if gcc is None:
            sys.exit("needs a C compiler for the bare receiver")
        subprocess.run([gcc, "-O2", "-o", str(wd / "recv_count"), str(DEFAULT_PEERS / "recv_count.c")],
                       check=True, timeout=120)
        if not args.no_throughput:
            throughput(wd, records, args.count, args.repeat, args.before)
        if not args.no_loss:
            loss(wd, records, args.loss_rate, args.loss_seconds, args.qlen, args.loss_repeat, args.c_reader)
        print(f"load average at the end {os.getloadavg()}")
    finally:
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
