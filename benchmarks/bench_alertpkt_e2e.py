"""Snort/Barnyard2 Alertpkt end to end: the C sender into (a) a C recvmmsg
counter, (b) plain Python recv+struct, (c) ``ingest listen --sink null:`` and
(d) ``--sink sqlite:``, all in one run on this machine.

    python -m benchmarks.bench_alertpkt_e2e            # the BENCHMARKS.md table
    python -m benchmarks.bench_alertpkt_e2e --quick    # under a minute
    python -m benchmarks.bench_alertpkt_e2e --json

Takes the same options as ``ingest bench`` (this module is that command);
see ingest/bench/__init__.py for what is measured and how.
"""

from __future__ import annotations

import argparse
import sys

from ingest import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_alertpkt_e2e")
    bench.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
