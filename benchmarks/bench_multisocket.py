"""Snort 3 with one socket per packet thread: N Alertpkt sockets into one
``ingest listen`` against N bare C receivers (issue 10's multi-socket rows).

The rows live in ``ingest bench`` (ingest/bench/multisocket.py, where what
is measured is described); this runs them alone:

    python benchmarks/bench_multisocket.py [--sockets 1,2,4,8] [--count 20000] [--repeat 3]

which is ``ingest bench --receivers none --no-latency --no-loss --no-unified2
--no-eve --no-nats --no-postgresql --no-decoder --sockets ... --multisocket-alerts ...``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest import bench  # noqa: E402
from ingest.bench.multisocket import format_multisocket  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", default="1,2,4,8")
    ap.add_argument("--count", type=int, default=20000, help="alerts per socket per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--readers", default="ingest-c,ingest-py")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rep = bench.run_bench(receivers=(), repeat=a.repeat, decoder=False, time_limit=a.time_limit,
                          multisocket_sockets=tuple(int(x) for x in a.sockets.split(",")),
                          multisocket_alerts=a.count,
                          multisocket_receivers=tuple(a.readers.split(",")),
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
    if a.json:
        print(json.dumps(rep["multisocket"] | {"goals": rep["goals"]}, indent=1))
    else:
        print("\n".join(format_multisocket(rep["multisocket"])))
        for g in rep["goals"]:
            print(f"  {'met    ' if g['met'] else 'NOT met'}  {g['goal']}: {g['measured']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
