"""``ingest collect``: the central side of many sensors.

``ingest collect nats://HOST:PORT[,...]/PREFIX --durable NAME --sink URL [--sink URL]...``
reads what sensors publish with ``--sink nats://.../PREFIX`` from JetStream
(a durable pull consumer: :mod:`ingest.sources.nats`), rebuilds each
sensor's batches (:mod:`ingest.wire`) and writes them to its sinks through
the same runtime as ``listen`` (bounded queue, retries with back-off and
probes, refused records isolated and dead-lettered, SIGTERM drains).  A
message is acknowledged to JetStream only once every sink stored it; the
SQL stores keep each record once whatever JetStream redelivers.
"""

from __future__ import annotations

import argparse
import logging

from .cli import _flag, add_metrics_option, bind_metrics, serve_metrics
from .config import Config, default_sensor_name
from .filecmd import add_map_options
from .ops.logs import at

_log = logging.getLogger("ingest")


def _number(cast, noun: str, low, high, fmt: str):
    """argparse type= for a number of ``cast`` (int or float) from low to
    high; ``fmt`` writes the bounds in the error."""

    def convert(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun}, not {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:{fmt}} and {high:{fmt}}")
        return v

    return convert


def _count(low: int, high: int):
    return _number(int, "an integer", low, high, "d")


def _seconds(low: float, high: float):
    return _number(float, "a number", low, high, "g")


def add_parser(sub) -> None:
    p = sub.add_parser("collect", help="read what sensors publish to NATS JetStream into central sinks")
    p.add_argument("url", metavar="nats://HOST:PORT[,HOST:PORT...]/PREFIX",
                   help="the sensors' NATS URL and subject prefix (options as for the nats:// sink)")
    p.add_argument("--durable", required=True, metavar="NAME",
                   help="durable consumer name: collectors with the same name share the work")
    p.add_argument("--sink", action="append", required=True, metavar="URL",
                   help="sqlite:PATH, postgresql://..., jsonl:PATH, jsonl:-, null: (repeat for several)")
    p.add_argument("--fetch", type=_count(1, 4096), default=64, metavar="N",
                   help="messages per pull request (default 64)")
    p.add_argument("--ack-wait", type=_seconds(1, 3600), default=30.0, metavar="SECONDS",
                   help="JetStream redelivers a message not acknowledged for this long; a live collector "
                        "keeps its messages in progress (default 30)")
    p.add_argument("--max-deliver", type=_count(2, 1_000_000), default=20, metavar="N",
                   help="deliveries of one message at most; the last one is first copied to the "
                        "dead-letter file (default 20)")
    p.add_argument("--max-message-bytes", type=_count(1024, 1 << 30), default=8 << 20, metavar="BYTES",
                   help="a larger message is dead-lettered unread (default 8 MiB)")
    p.add_argument("--dead-letter", metavar="PATH",
                   help="file for messages and records that could not be used (default ./ingest-deadletter.bin; "
                        "'' to disable)")
    p.add_argument("--dead-letter-max-bytes", type=_flag("dead_letter_max_bytes"), metavar="N",
                   help="rotate the dead-letter file to PATH.1 past N bytes (default 64 MiB)")
    p.add_argument("--allow-foreign-outputs", action="store_true", default=None,
                   help="accept output files owned by another user or writable by group/others")
    p.add_argument("--correlate-slack", type=_flag("correlate_slack"), metavar="SECONDS",
                   help="link an alert to a flow it falls within SECONDS of (SQL stores; default 5)")
    add_map_options(p, "maps for EVE alerts (class ids and references the sensor's maps gave them)")
    p.add_argument("--stats-interval", type=_flag("stats_interval"), metavar="SECONDS",
                   help="seconds between stats lines on stderr (default 10; 0 = final only)")
    p.add_argument("--max-queue", type=_flag("max_queue"), metavar="ALERTS", help="bound of the in-memory queue")
    p.add_argument("--max-queue-bytes", type=_flag("max_queue_bytes"), metavar="BYTES",
                   help="memory bound of the queue (default 512 MiB)")
    p.add_argument("--batch-max", type=_flag("batch_max"), metavar="ALERTS", help="most alerts per sink write")
    p.add_argument("--drain-timeout", type=_flag("drain_timeout"), metavar="SECONDS",
                   help="how long shutdown may take to store what is queued (default 30)")
    from .ops.logs import add_arguments as add_log_options

    add_log_options(p)
    add_metrics_option(p)
    p.set_defaults(run=run)


def _config(ns: argparse.Namespace) -> Config:
    keys = ("dead_letter", "dead_letter_max_bytes", "allow_foreign_outputs", "maps", "sid_msg", "gen_msg",
            "classification", "reference", "rules", "stats_interval", "max_queue", "max_queue_bytes", "batch_max",
            "drain_timeout", "correlate_slack")
    changes = {k: getattr(ns, k) for k in keys if getattr(ns, k) is not None}
    if changes.get("dead_letter") == "":
        changes["dead_letter"] = None
    return Config(sinks=tuple(ns.sink), **changes)


def build(ns: argparse.Namespace):
    """The collector's pipeline: the NATS source, the sinks (ValueError/OSError: a start-up error)."""
    from .deadletter import DeadLetter
    from .mapping import Enricher
    from .natsconn import parse_url
    from .runtime import Pipeline
    from .sinks.base import open_sink, sink_files
    from .sources.nats import NatsSource

    try:
        import nats  # noqa: F401
    except ImportError:
        raise ValueError("ingest collect needs the NATS client: pip install 'ingest[nats]' (nats-py)") from None
    cfg = _config(ns)
    url = parse_url(ns.url)
    source = NatsSource(url, ns.durable, fetch=ns.fetch, ack_wait=ns.ack_wait, max_deliver=ns.max_deliver,
                        max_ack_pending=max(ns.fetch * 16, 1024), max_message_bytes=ns.max_message_bytes)
    from .safefile import check_apart

    outputs = [(f"--sink {u}", p) for u in cfg.sink_urls for p in sink_files(u)]
    if cfg.dead_letter:
        outputs.append(("--dead-letter", cfg.dead_letter))
    check_apart(outputs, [])
    source.check()
    sinks = []
    try:
        for u in cfg.sink_urls:
            sinks.append(open_sink(u, allow_foreign=cfg.allow_foreign_outputs, sensor=default_sensor_name(),
                                   correlate_slack=cfg.correlate_slack))
    except BaseException:
        for s in sinks:
            close = getattr(s, "aclose", None)
            if close is not None:
                import asyncio

                asyncio.run(close())
        raise
    enricher = Enricher()
    maps = cfg.load_maps()
    if maps is not None:
        enricher.set_maps(maps)
    deadletter = DeadLetter(cfg.dead_letter, cfg.dead_letter_max_bytes, allow_foreign=cfg.allow_foreign_outputs)
    deadletter.open()

    class Collector(Pipeline):
        async def run(self, stop):  # type: ignore[override]
            rc = await super().run(stop)
            await source.finish()  # the last acknowledgements, on this loop
            return rc

    return Collector([source], sinks, enricher=enricher, deadletter=deadletter, max_queue=cfg.max_queue,
                     max_queue_bytes=cfg.max_queue_bytes, batch_max=cfg.batch_max, linger=0.0,
                     stats_interval=cfg.stats_interval if cfg.stats_interval > 0 else 1e9,
                     drain_timeout=cfg.drain_timeout)


def run(ns: argparse.Namespace) -> int:
    from .runtime import catch_stop_signals
    from .runtime import run as run_pipeline

    early = catch_stop_signals()
    server = None
    try:
        server = bind_metrics(ns.metrics)
        pipeline = build(ns)
    except (ValueError, OSError, RuntimeError) as e:  # RuntimeError: SocketPathError
        if server is not None:
            server.close()
        _log.error(str(e))
        return 2
    src = pipeline.sources[0]
    from .maps import report as report_maps

    report_maps(pipeline.enricher.maps)
    serve_metrics(server, pipeline, sensor=default_sensor_name())
    _log.info(f"collecting from {src.origin}; sinks: {', '.join(s.name for s in pipeline.sinks)}",
              extra=at(src.origin, sinks=[s.name for s in pipeline.sinks]))
    try:
        return run_pipeline(pipeline, early)
    finally:
        if server is not None:
            server.close()
