"""``ingest bench``: every input end to end on this machine, peers side by side.

One run measures, interleaved round by round so machine noise hits all of them
alike, the C sender (csrc/gen.c) pushing Snort ``Alertpkt`` datagrams with
one blocking ``sendto`` each (as Snort does) into:

(a) ``recv_count``: a C ``recvmmsg`` receiver that only counts (the physical
    limit; ingest/bench/peers/recv_count.c, compiled with gcc at run time),
(b) ``naive_recv.py``: plain Python ``socket.recv`` + ``struct`` decoding
    (ingest/bench/peers/naive_recv.py),
(c) ``ingest listen --sink null:`` and (d) ``--sink sqlite:DB``,
each receiver a child process on a unix socket this harness created in its
own temporary directory.  It also times the batch decoder alone on slots
already in memory.

Per receiver and run: alerts/s from the first send until the receiver had
every alert (for ingest: until its periodic stats line said so; its
SIGTERM -> exit, drain and flush, is reported apart as the shutdown), the
sender's own rate (how long
Snort's packet thread would be held), the receiver's CPU seconds per million
alerts (its user+system time while the alerts flowed: from just before the
first alert until the peers exit on their count, or until ingest reports every
alert dispatched, so neither interpreter start-up nor ingest's one-time
shutdown is counted), and its peak RSS.  Each
metric is the median of ``--repeat`` rounds; ratios against (a) and (b) are
paired (the median of the within-round ratios, with their range).

It also measures N Alertpkt sockets (Snort 3: one per packet thread) into
one ingest against N bare C receivers (ingest/bench/multisocket.py); the EVE
socket inputs against FEVER in lossless mode (``unix_stream``), a
plain-Python ``json.loads`` receiver and the bare C receiver
(``unix_dgram``): ingest/bench/eve.py;
and a sensor publishing to NATS JetStream against a bare nats-py publisher,
with the latency from the Unix socket to a row the collector committed
(ingest/bench/nats.py; skipped with one line when nats-server is missing).

Everything is bounded (``--count``, ``--time-limit`` per run) and cleaned up
(processes, sockets, temporary files), also on Ctrl-C or SIGTERM.

Example::

    ingest bench --quick
    ingest bench --count 200000 --repeat 5 --json > bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import gen
from ..config import number_arg
from .common import DEFAULT_PEERS, PLACEMENTS, BenchError, Interrupted
from .harness import LABELS, RECEIVERS, Run, decoder_rate, format_report, measure, run_bench
from .latency import LatencyPlan, LossPlan
from .plot import PlotUnavailable, check_available
from .plot import plot as draw_plot  # the name `plot` stays the submodule

__all__ = ["DEFAULT_PEERS", "LABELS", "RECEIVERS", "BenchError", "LatencyPlan", "LossPlan", "Run",
           "add_parser", "decoder_rate", "format_report", "measure", "run", "run_bench"]


def _rates(text: str) -> tuple[float, ...]:
    """argparse type of --latency-rates / --loss-rates: positive numbers."""
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, not {text!r}") from None
    if not all(r > 0 and r < float("inf") for r in rates):
        raise argparse.ArgumentTypeError(f"every rate must be a finite number > 0, not {text!r}")
    return rates


def _receivers(text: str) -> tuple[str, ...]:
    """argparse type of --receivers: a subset of LABELS (RECEIVERS by
    default; ingest-null-metrics only when named), or none."""
    if text == "none":
        return ()
    names = tuple(text.split(","))
    bad = [r for r in names if r not in LABELS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown receiver(s) {', '.join(bad)} "
                                         f"(known: {', '.join(LABELS)}, or none)")
    return names


def _sockets(text: str) -> tuple[int, ...]:
    """argparse type of --sockets: socket counts from 1 to 64."""
    try:
        ns = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, not {text!r}") from None
    if not all(1 <= n <= 64 for n in ns):
        raise argparse.ArgumentTypeError(f"every socket count must be 1 to 64, not {text!r}")
    return ns


def _ms_receivers(text: str) -> tuple[str, ...]:
    """argparse type of --multisocket-receivers."""
    names = tuple(text.split(","))
    bad = [n for n in names if n not in ("ingest-c", "ingest-py")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown reader(s) {', '.join(bad)} (known: ingest-c, ingest-py)")
    return names


def _peers(text: str) -> Path:
    """argparse type of --peers: a directory with both peers' sources."""
    d = Path(text)
    missing = [n for n in ("recv_count.c", "naive_recv.py") if not (d / n).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"{text}: {' and '.join(missing)} not found there")
    return d


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="measure every input end to end against its peers (Alertpkt, "
                      "Unified2, EVE)",
        description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--kind", choices=tuple(gen.KINDS), default="snort",
                   help="the Alertpkt sender of the throughput rows (default snort)")
    p.add_argument("--count", type=number_arg(int, 1), metavar="N", help="alerts per run (default 200000; --quick 10000)")
    p.add_argument("--repeat", type=number_arg(int, 1), metavar="N", help="runs per receiver (default 3)")
    p.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    p.add_argument("--receivers", type=_receivers, metavar="LIST",
                   help=f"comma-separated subset of {','.join(LABELS)} for the throughput "
                        "rows, or none")
    p.add_argument("--mode", choices=tuple(gen.MODES),
                   help="sender mode (default: the kind's real sender)")
    p.add_argument("--time-limit", type=number_arg(float, 0.1), default=60.0, metavar="SECONDS",
                   help="bound on each run (default 60)")
    p.add_argument("--peers", type=_peers, default=DEFAULT_PEERS, metavar="DIR",
                   help="directory holding recv_count.c and naive_recv.py")
    p.add_argument("--placement", choices=PLACEMENTS, default="unpinned",
                   help="CPU placement of sender and receiver (Alertpkt and Unified2 rows): unpinned "
                        "(default), same core, or different cores (os.sched_setaffinity); every row says "
                        "which")
    p.add_argument("--no-decoder", action="store_true", help="skip the in-memory decoder run")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated alerts (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="draw throughput and latency bars (needs matplotlib: the 'bench' extra)")
    g = p.add_argument_group("latency (send -> sink, at fixed moderate rates)")
    g.add_argument("--no-latency", action="store_true", help="skip the latency rows")
    g.add_argument("--latency-rates", type=_rates, metavar="LIST",
                   help="comma-separated alerts/s (default 1000,10000; --quick 10000)")
    g.add_argument("--latency-seconds", type=number_arg(float, 0.01), metavar="S",
                   help="seconds of alerts per latency row (default 5; --quick 0.5)")
    g = p.add_argument_group("loss (Suricata live-mode semantics: non-blocking sender)")
    g.add_argument("--no-loss", action="store_true", help="skip the loss rows")
    g.add_argument("--loss-rates", type=_rates, metavar="LIST",
                   help="comma-separated offered alerts/s, paced (default 10000,30000; "
                        "--quick 30000)")
    g.add_argument("--loss-seconds", type=number_arg(float, 0.01), metavar="S",
                   help="seconds of alerts per loss row (default 2; --quick 0.3)")
    g.add_argument("--tuned-qlen", type=number_arg(int, 0), metavar="N",
                   help="net.unix.max_dgram_qlen of the tuned rows, set in a private network "
                        "namespace (default 512; --quick 0; 0 = skip)")
    g = p.add_argument_group("Unified2 spool files")
    g.add_argument("--no-unified2", action="store_true", help="skip the Unified2 rows")
    g.add_argument("--unified2-alerts", type=number_arg(int, 1), metavar="N",
                   help="events in the generated spool file (default 200000; --quick 10000)")
    g = p.add_argument_group("multi-socket Alertpkt (Snort 3: N sockets into one ingest vs N bare C receivers)")
    g.add_argument("--no-multisocket", action="store_true", help="skip the multi-socket rows")
    g.add_argument("--sockets", type=_sockets, metavar="LIST",
                   help="comma-separated socket counts (default 1,2,4,8; --quick 4,8, one round)")
    g.add_argument("--multisocket-alerts", type=number_arg(int, 1), metavar="N",
                   help="alerts per socket per run (default 20000; --quick 2000)")
    g.add_argument("--multisocket-receivers", type=_ms_receivers, metavar="LIST",
                   help="ingest readers measured against the bare receivers: ingest-c (C reader "
                        "threads), ingest-py (Python readers, the default); default both "
                        "(--quick: ingest-py)")
    g = p.add_argument_group("EVE sockets (unix_stream vs FEVER, unix_dgram vs Python)")
    g.add_argument("--no-eve", action="store_true", help="skip the EVE rows")
    g.add_argument("--eve-records", type=number_arg(int, 1), metavar="N",
                   help="EVE records per run (default 200000; --quick 10000)")
    g = p.add_argument_group("NATS JetStream (sensor -> JetStream; socket -> collector -> committed row)")
    g.add_argument("--no-nats", action="store_true", help="skip the NATS rows")
    g.add_argument("--nats-alerts", type=number_arg(int, 1), metavar="N",
                   help="alerts per NATS throughput run (default 300000; --quick 16384)")
    g = p.add_argument_group("PostgreSQL (ingest collect -> PostgreSQL vs bare COPY; socket -> committed "
                             "PostgreSQL row, at the latency rates)")
    g.add_argument("--no-postgresql", action="store_true", help="skip the PostgreSQL rows")
    g.add_argument("--postgresql-alerts", type=number_arg(int, 1), metavar="N",
                   help="alerts in the stream the collector drains (default 200000; --quick 49152)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    # --quick stays under a minute on a loaded 2-core machine: fewer alerts
    # per row (still two interleaved rounds: a paired ratio needs them), the
    # loss rows at the default queue length only, shorter loss rows
    count = args.count or (10_000 if args.quick else 200_000)
    tuned_qlen = args.tuned_qlen if args.tuned_qlen is not None else (0 if args.quick else 512)
    repeat = args.repeat or (2 if args.quick else 3)
    receivers = RECEIVERS if args.receivers is None else args.receivers
    lat_rates = args.latency_rates or ((10000.0,) if args.quick else (1000.0, 10000.0))
    loss_rates = args.loss_rates or ((30000.0,) if args.quick else (10000.0, 30000.0))
    latency = None if args.no_latency else LatencyPlan(
        rates=lat_rates, seconds=args.latency_seconds or (0.5 if args.quick else 5.0),
        repeat=1 if args.quick else repeat)
    loss = None if args.no_loss else LossPlan(
        rates=loss_rates, seconds=args.loss_seconds or (0.3 if args.quick else 2.0),
        tuned_qlen=tuned_qlen or None, repeat=1 if args.quick else repeat)
    u2_alerts = 0 if args.no_unified2 else (args.unified2_alerts or
                                             (10_000 if args.quick else 200_000))
    eve_records = 0 if args.no_eve else (args.eve_records or
                                         (10_000 if args.quick else 200_000))
    # --quick: two 8,192-alert batches per NATS run (the listen rows send as many datagrams)
    nats_alerts = 0 if args.no_nats else (args.nats_alerts or (16_384 if args.quick else 300_000))
    # --quick: six batches (with two, the collector's first fetch and first write were half of the row)
    pg_alerts = 0 if args.no_postgresql else (args.postgresql_alerts or (49_152 if args.quick else 200_000))
    lat_seconds = args.latency_seconds or (0.5 if args.quick else 5.0)
    # --quick stays under a minute: the two goal rows (4 and 8 sockets) only,
    # the default reader only, one round of 2,000 alerts a socket (an ingest
    # run here is ~2 s of start-up and shutdown whatever it receives)
    ms_sockets = () if args.no_multisocket else (args.sockets or ((4, 8) if args.quick else (1, 2, 4, 8)))
    ms_alerts = args.multisocket_alerts or (2_000 if args.quick else 20_000)
    ms_receivers = args.multisocket_receivers or (("ingest-py",) if args.quick else ("ingest-c", "ingest-py"))
    # --quick stays under a minute: one round of the PostgreSQL rows, and
    # their socket -> committed row latency instead of the SQLite one
    # (the latency goal is PostgreSQL's)
    from .postgresql import missing as pg_missing

    sqlite_latency = not (args.quick and pg_alerts > 0 and pg_missing() is None)
    if args.plot is not None:
        try:
            check_available()
        except PlotUnavailable as e:
            print(f"ingest bench: error: --plot: {e}", file=sys.stderr)
            return 2

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        rep = run_bench(kind=args.kind, count=count, repeat=repeat, receivers=receivers,
                        mode=args.mode, time_limit=args.time_limit, peers_dir=args.peers,
                        seed=args.seed, decoder=not args.no_decoder,
                        decoder_repeat=2 if args.quick else 5, latency=latency, loss=loss,
                        unified2_alerts=u2_alerts, eve_records=eve_records, nats_alerts=nats_alerts,
                        nats_latency=(lat_rates if sqlite_latency else (), lat_seconds),
                        postgresql_alerts=pg_alerts, postgresql_repeat=1 if args.quick else repeat,
                        postgresql_latency=(lat_rates, lat_seconds), progress=progress,
                        placement=args.placement, multisocket_sockets=ms_sockets,
                        multisocket_alerts=ms_alerts, multisocket_receivers=ms_receivers,
                        multisocket_repeat=1 if args.quick else repeat)
    except BenchError as e:
        print(f"ingest bench: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("ingest bench: interrupted; everything it started has been stopped and removed",
              file=sys.stderr)
        return 130
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    if args.plot is not None:
        draw_plot(rep, args.plot)
        print(f"ingest bench: plot written to {args.plot}", file=sys.stderr)
    return 0

