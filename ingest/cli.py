"""Command line: ``ingest listen``, ``ingest run`` (and the tools that plug in).

Argument parsing (``parse_args(argv) -> Config``) is kept apart from running
(``main(argv) -> exit code``).
"""

from __future__ import annotations

import argparse
import contextlib
import glob as globmod
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .config import Config, is_nats_url, parse_flag
from .ops import logs
from .ops.logs import at

_log = logging.getLogger("ingest")

# Subcommands contributed by other modules: name -> (add_parser, run)
_PLUGINS: list[tuple[str, str]] = [
    ("ingest.filecmd", "decode"),
    ("ingest.gen", "gen"),
    ("ingest.bench", "bench"),
    ("ingest.query", "query"),
    ("ingest.collect", "collect"),
    ("ingest.ops.top", "top"),
]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose unrecognised arguments are reported by the
    subcommand they were given to, with that subcommand's usage (argparse
    leaves them to the top-level parser, whose usage says nothing useful)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self._innermost(ns).error("unrecognized arguments: " + " ".join(extras))
        return ns

    def _innermost(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self
        while True:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(ns, subs[0].dest, None) if subs and subs[0].dest else None
            if chosen is None or chosen not in subs[0].choices:
                return parser
            parser = subs[0].choices[chosen]


def _flag(key: str) -> Callable[[str], object]:
    """argparse type= for a Config key: the flag's value is checked by the
    same rule as the file's (ingest.config.coerce)."""

    def convert(text: str) -> object:
        try:
            return parse_flag(key, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = key
    return convert


def _add_map_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--maps", metavar="DIR",
                   help="load sid-msg.map, gen-msg.map, classification.config, reference.config from DIR "
                        "(reloaded on SIGHUP)")
    p.add_argument("--sid-msg", metavar="FILE", help="sid-msg.map (v1 or v2)")
    p.add_argument("--gen-msg", metavar="FILE", help="gen-msg.map")
    p.add_argument("--classification", metavar="FILE", help="classification.config")
    p.add_argument("--reference", metavar="FILE", help="reference.config")
    p.add_argument("--rules", action="append", metavar="FILE|DIR",
                   help="Snort 2/3 or Suricata rule file, or a directory of *.rules files, read as the signature "
                        "map (msg, gid, sid, rev, classtype, priority, references; repeatable; reloaded on "
                        "SIGHUP)")


def _add_listen_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (flags override it)")
    p.add_argument("--snort", action="append", metavar="PATH",
                   help="bind a Snort 2/3 -A unsock socket here (repeat for Snort 3's per-thread sockets)")
    p.add_argument("--barnyard2", action="append", metavar="PATH",
                   help="bind a Barnyard2 alert_unixsock datagram socket here")
    p.add_argument("--barnyard2-sync", action="append", metavar="PATH",
                   help="listen for Barnyard2 'alert_unixsock: PATH sync' (acknowledged, lossless)")
    p.add_argument("--eve-dgram", action="append", metavar="PATH",
                   help="bind a socket for Suricata eve-log filetype: unix_dgram")
    p.add_argument("--eve-stream", action="append", metavar="PATH",
                   help="listen for Suricata eve-log filetype: unix_stream")
    p.add_argument("--eve-file", action="append", metavar="PATH",
                   help="follow a Suricata eve.json (or a glob: eve.*.json), with a bookmark")
    p.add_argument("--netflow", action="append", metavar="udp://HOST:PORT",
                   help="receive NetFlow v5/v9 and IPFIX exports on this UDP address "
                        "(HOST defaults to 127.0.0.1; repeat for several)")
    p.add_argument("--zeek-conn", action="append", metavar="PATH",
                   help="follow a Zeek conn.log (JSON or TSV; or a glob), with a bookmark, as flows")
    p.add_argument("--zeek-conn-start", choices=("beginning", "end"),
                   help="where to start a conn.log that has no bookmark (default beginning)")
    p.add_argument("--event-types", metavar="LIST",
                   help="EVE event types to keep, comma-separated (default: all)")
    p.add_argument("--eve-max-line", type=_flag("eve_max_line"), metavar="BYTES",
                   help="longest EVE line (default 16 MiB)")
    p.add_argument("--bookmark-dir", metavar="DIR", help="where --eve-file / --zeek-conn bookmarks go (default: beside the file)")
    p.add_argument("--eve-file-start", choices=("beginning", "end"),
                   help="where to start a followed file that has no bookmark (default beginning)")
    p.add_argument("--unified2", action="append", metavar="DIR/PREFIX",
                   help="follow a Unified2 spool (files PREFIX.<unix-time> in DIR)")
    p.add_argument("--unified2-bookmark", metavar="FILE",
                   help="bookmark file (default DIR/PREFIX.ingest-bookmark)")
    p.add_argument("--unified2-start", choices=("beginning", "end"),
                   help="where to start when there is no bookmark (default beginning)")
    p.add_argument("--unified2-after", choices=("keep", "delete", "archive"),
                   help="what to do with fully read spool files (default keep)")
    p.add_argument("--unified2-archive", metavar="DIR", help="archive directory for --unified2-after archive")
    _add_map_options(p)
    p.add_argument("--sink", action="append", metavar="URL",
                   help="jsonl:PATH, jsonl:- (stdout), sqlite:PATH, postgresql://... or null: "
                        "(default sqlite:./alerts.db)")
    p.add_argument("--format", choices=("eve", "trisul"), help="JSON output profile (default eve)")
    p.add_argument("--sensor-name", type=_flag("sensor_name"), metavar="NAME",
                   help="this sensor's name in every store row (1-64 of A-Z a-z 0-9 _ . -; "
                        "default: the host name)")
    p.add_argument("--correlate-slack", type=_flag("correlate_slack"), metavar="SECONDS",
                   help="link an alert to a flow it falls within SECONDS of (SQL stores; default 5)")
    p.add_argument("--socket-mode", type=_flag("socket_mode"), metavar="MODE",
                   help="socket file mode (default 0660)")
    p.add_argument("--socket-group", metavar="NAME", help="socket file group")
    p.add_argument("--allow-uid", action="append", metavar="UID|NAME[:PATH]",
                   help="only this user may write to the socket inputs (repeatable; ':PATH' limits the "
                        "entry to the input bound at PATH, which then takes only its own entries): "
                        "SO_PEERCRED at accept, SCM_CREDENTIALS on every datagram")
    p.add_argument("--allow-gid", action="append", metavar="GID|NAME[:PATH]",
                   help="only processes whose (primary) group is this may write (repeatable; as --allow-uid)")
    p.add_argument("--count-senders", action="store_true", default=None,
                   help="take every datagram's credentials even without an allow-list, so the stats' "
                        "'senders' counts datagram inputs too")
    p.add_argument("--dead-letter", metavar="PATH",
                   help="file for input that could not be used (default ./ingest-deadletter.bin; '' to disable)")
    p.add_argument("--dead-letter-max-bytes", type=_flag("dead_letter_max_bytes"), metavar="N",
                   help="rotate the dead-letter file to PATH.1 past N bytes (default 64 MiB)")
    p.add_argument("--allow-foreign-outputs", action="store_true", default=None,
                   help="accept existing output files (store, JSON lines, dead letters) owned by another "
                        "user or writable by group/others, or in a world-writable non-sticky directory "
                        "(refused by default)")
    p.add_argument("--stats-interval", type=_flag("stats_interval"), metavar="SECONDS",
                   help="seconds between stats lines on stderr (default 10; 0 = final only)")
    p.add_argument("--max-queue", type=_flag("max_queue"), metavar="ALERTS",
                   help="bound of the in-memory queue in alerts (default 1,000,000; an empty queue takes any one batch)")
    p.add_argument("--max-queue-bytes", type=_flag("max_queue_bytes"), metavar="BYTES",
                   help="memory bound of the queue and the per-connection line buffers (default 512 MiB)")
    p.add_argument("--max-connections", type=_flag("max_connections"), metavar="N",
                   help="connections per --eve-stream / --barnyard2-sync socket (default 64; at the cap "
                        "the longest idle one makes room)")
    p.add_argument("--idle-timeout", type=_flag("idle_timeout"), metavar="SECONDS",
                   help="close an --eve-stream connection that sent nothing for this long (default 120; 0 = never)")
    p.add_argument("--batch-max", type=_flag("batch_max"), metavar="ALERTS",
                   help="most alerts per sink write")
    p.add_argument("--drain-timeout", type=_flag("drain_timeout"), metavar="SECONDS",
                   help="how long shutdown may take to deliver what is queued; then the rest is dead-lettered "
                        "(default 30)")
    p.add_argument("--linger-ms", type=_flag("linger_ms"), metavar="MS",
                   help="how long a partial batch waits for more (default 2)")
    add_metrics_option(p)
    p.add_argument("--spool-dir", metavar="DIR",
                   help="nats:// sink: spool batches here while JetStream cannot take them, replayed in "
                        "order when it is back (created 0700; without it, JetStream refusing at start-up "
                        "is an error)")
    p.add_argument("--spool-max-bytes", type=_flag("spool_max_bytes"), metavar="BYTES",
                   help="bound of the spool's files (default 1 GiB); past it batches are dead-lettered "
                        "(dropped spool_full)")
    from .ops.logs import add_arguments as add_log_options

    add_log_options(p)
    p.add_argument("--spool-fsync", choices=("always", "segment", "never"),
                   help="when the spool syncs to disk (default always: every spooled batch survives a "
                        "power loss)")


def add_metrics_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", type=_flag("metrics"), metavar="[HOST:]PORT|unix:PATH",
                   help="serve Prometheus metrics, /healthz and /top.json here (default off; "
                        "127.0.0.1 when only a port is given)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ingest", description="High-rate IDS alert ingester")
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    listen = sub.add_parser("listen", help="ingest alerts from the given sockets, spools and files")
    _add_listen_options(listen)
    run = sub.add_parser("run", help="start from a config file, or on the defaults (./run/*, ./alerts.db)")
    _add_listen_options(run)
    for module, _name in _PLUGINS:
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ImportError:
            continue
        mod.add_parser(sub)
    return parser


_FLAG_KEYS = ("snort", "barnyard2", "barnyard2_sync", "format", "socket_mode", "socket_group",
              "dead_letter", "dead_letter_max_bytes", "stats_interval", "max_queue", "batch_max",
              "max_queue_bytes", "max_connections", "idle_timeout",
              "linger_ms", "drain_timeout", "unified2", "unified2_bookmark", "unified2_start", "unified2_after",
              "unified2_archive", "maps", "sid_msg", "gen_msg", "classification", "reference", "rules",
              "eve_dgram", "eve_stream", "eve_file", "netflow", "zeek_conn", "zeek_conn_start",
              "event_types", "eve_max_line",
              "bookmark_dir", "eve_file_start", "sink", "allow_foreign_outputs", "sensor_name",
              "spool_dir", "spool_max_bytes", "spool_fsync", "allow_uid", "allow_gid", "count_senders",
              "log_level", "log_format", "correlate_slack", "metrics")


def config_from_args(ns: argparse.Namespace) -> Config:
    """The Config of ``listen``/``run``: the defaults, then the file, then the
    flags.  ``run``'s own defaults (./run/* sockets, ./run/deadletter.bin)
    apply only without a file: with one, only what the file and the flags
    name is bound."""
    if ns.config:
        base = Config.from_toml(ns.config, validate=False)  # with the flags, below
    else:
        base = Config.for_run() if ns.command == "run" else Config()
    changes = {k: getattr(ns, k) for k in _FLAG_KEYS if getattr(ns, k) is not None}
    return base.replace(**changes)


def check_paths(cfg: Config) -> None:
    """Refuse, before anything is bound, paths that cannot work: a spool,
    followed file or Unified2 bookmark whose directory does not exist, a
    missing bookmark or maps directory, an archive path that is not a
    directory or that another user could write (ValueError, exit 2).  The
    archive directory itself is created on first use."""
    from .safefile import check_output_dir

    def need_dir(what: str, d: str) -> None:
        if not os.path.isdir(d):
            why = "does not exist" if not os.path.lexists(d) else "is not a directory"
            raise ValueError(f"{what}: directory {d} {why}")

    for spec in cfg.unified2:
        need_dir(f"--unified2 {spec}", os.path.dirname(os.path.abspath(spec)))
    for path in cfg.eve_file:
        need_dir(f"--eve-file {path}", os.path.dirname(os.path.abspath(path)))
    for path in cfg.zeek_conn:
        need_dir(f"--zeek-conn {path}", os.path.dirname(os.path.abspath(path)))
    if cfg.unified2_archive:
        check_output_dir(cfg.unified2_archive, what="--unified2-archive",
                         allow_foreign=cfg.allow_foreign_outputs)
    if cfg.bookmark_dir:
        need_dir("--bookmark-dir", cfg.bookmark_dir)
    if cfg.unified2_bookmark:  # else every bookmark write fails, and a restart reads it all again
        need_dir(f"--unified2-bookmark {cfg.unified2_bookmark}",
                 os.path.dirname(os.path.abspath(cfg.unified2_bookmark)))
    if cfg.maps:
        need_dir("--maps", cfg.maps)
    # no output may be another output or an input (ingest would read what it writes)
    from .safefile import check_apart
    from .sinks.base import sink_files

    outputs = [(f"--sink {url}", p) for url in cfg.sink_urls for p in sink_files(url)]
    if cfg.dead_letter:
        outputs.append(("--dead-letter", cfg.dead_letter))
    inputs = [(f"--eve-file {p}", p) for p in cfg.eve_file]
    inputs += [(f"--zeek-conn {p}", p) for p in cfg.zeek_conn]
    inputs += [(f"--unified2 {spec}", globmod.escape(spec) + ".[0-9]*") for spec in cfg.unified2]
    check_apart(outputs, inputs)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse ``ingest listen|run`` arguments into a Config."""
    ns = build_parser().parse_args(argv)
    return config_from_args(ns)


def build_pipeline(cfg: Config):
    """Bind every source and open every sink named by cfg."""
    from .deadletter import DeadLetter
    from .mapping import Enricher
    from .ops.systemd import adopt_from_environment
    from .runtime import Pipeline
    from .sinks.base import open_sink
    from .sockets import warn_kernel_limits
    from .sources.base import Source
    from .sources.dgram import DatagramSource
    from .sources.seqpacket import SeqpacketSource

    # Sockets passed by systemd (socket activation): bind_unix hands them out
    # below instead of binding; an error here (a socket no input takes, an
    # input without one, a wrong type) is exit 2.
    adopted = adopt_from_environment(cfg)
    if adopted:
        _log.info(f"adopted {adopted} socket{'s' if adopted > 1 else ''} from the service manager")
    sources: list[Source] = []
    peers = _peer_policies(cfg)
    # Batching happens in the reader (C, GIL released): it collects for up to
    # linger_ms before handing a batch on; the consumer then takes whatever is
    # queued without waiting again.
    linger_us = int(cfg.linger_ms * 1000)
    try:
        for path in cfg.snort:
            sources.append(DatagramSource(path, "snort", mode=cfg.socket_mode, group=cfg.socket_group,
                                          linger_us=linger_us, peers=peers(path, dgram=True)))
        for path in cfg.barnyard2:
            sources.append(DatagramSource(path, "barnyard2", mode=cfg.socket_mode,
                                          group=cfg.socket_group, linger_us=linger_us,
                                          peers=peers(path, dgram=True)))
        for path in cfg.barnyard2_sync:
            sources.append(SeqpacketSource(path, mode=cfg.socket_mode, group=cfg.socket_group,
                                           max_connections=cfg.max_connections, peers=peers(path)))
        if cfg.unified2:
            from .sources.spool import SpoolSource

            for spec in cfg.unified2:
                sources.append(SpoolSource(
                    spec, bookmark=cfg.unified2_bookmark, start=cfg.unified2_start,
                    after=cfg.unified2_after, archive_dir=cfg.unified2_archive))
        sources.extend(_eve_sources(cfg, peers))
        if cfg.netflow:
            from .sources.netflow import NetflowSource

            for url in cfg.netflow:
                sources.append(NetflowSource(url, linger_us=linger_us))
        _one_bookmark_each(sources)
        if not sources:
            raise ValueError("no input given: name one with --snort, --barnyard2, --barnyard2-sync, "
                             "--unified2, --eve-dgram, --eve-stream, --eve-file, --netflow or --zeek-conn (in a configuration "
                             "file: snort = [...], ...), or start 'ingest run' without --config for "
                             "the defaults")
        spool = None if cfg.spool_dir is None else (cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_fsync)
        sinks = [open_sink(url, profile=cfg.format, allow_foreign=cfg.allow_foreign_outputs,
                           sensor=cfg.sensor, spool=spool if is_nats_url(url) else None,
                           correlate_slack=cfg.correlate_slack)
                 for url in cfg.sink_urls]
        enricher = Enricher()
        maps = cfg.load_maps()
        if maps is not None:
            enricher.set_maps(maps)
        deadletter = DeadLetter(cfg.dead_letter, cfg.dead_letter_max_bytes,
                                allow_foreign=cfg.allow_foreign_outputs)
        deadletter.open()  # validated now (a start-up error), created on the first entry
    except BaseException:
        # nothing half-started: remove the socket files we bound
        for s in sources:
            s.close()
        raise
    # Only once everything is open: a start-up error is then one line,
    # not a line after two warnings about the kernel.
    if cfg.snort or cfg.barnyard2:
        warn_kernel_limits()
    return Pipeline(
        sources, sinks,
        enricher=enricher,
        stats=None,
        deadletter=deadletter,
        max_queue=cfg.max_queue,
        max_queue_bytes=cfg.max_queue_bytes,
        batch_max=cfg.batch_max,
        linger=0.0,
        stats_interval=cfg.stats_interval if cfg.stats_interval > 0 else 1e9,
        drain_timeout=cfg.drain_timeout,
    )


def _one_bookmark_each(sources) -> None:
    """Two file inputs that would keep one bookmark (the same spool or
    eve.json given twice, or two paths that --bookmark-dir names alike)
    would overwrite each other's positions: refused at start-up."""
    seen: dict[str, str] = {}
    for s in sources:
        path = getattr(s, "bookmark_path", None)
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise ValueError(f"{seen[key]} and {s.origin} would share the bookmark {path}; "
                             "give each input once (and, with --bookmark-dir, paths it names apart)")
        seen[key] = s.origin


def _peer_policies(cfg: Config) -> Callable[..., Any]:
    """path -> the PeerPolicy of that socket input (README "Who may write"):
    names resolved now (an unknown one is ValueError, exit 2).  Stream and
    seqpacket inputs always get one (SO_PEERCRED costs one getsockopt per
    connection; with no list it only counts ``senders``); datagram inputs
    only with an allow-list or --count-senders (SO_PASSCRED)."""
    from .ops.peercred import PeerPolicy, policies

    inputs = (*cfg.snort, *cfg.barnyard2, *cfg.barnyard2_sync, *cfg.eve_dgram, *cfg.eve_stream)
    table = policies(cfg.allow_uid, cfg.allow_gid, inputs)

    def of(path: str, dgram: bool = False) -> PeerPolicy | None:
        pol = table.get(os.path.abspath(path), PeerPolicy())
        if dgram and not pol.active and not cfg.count_senders:
            return None
        return pol

    return of


def _bookmark_in_dir(cfg: Config, path: str) -> str | None:
    """A followed file's bookmark in --bookmark-dir (None: beside the file)."""
    if not cfg.bookmark_dir:
        return None
    name = os.path.abspath(path).strip("/").replace("/", "_").replace("*", "_")
    return os.path.join(cfg.bookmark_dir, name + ".ingest-bookmark")


def _eve_sources(cfg: Config, peers: Callable[..., Any] | None = None) -> list:
    """Suricata EVE inputs (sockets we bind, files we follow)."""
    from .sources.eve import EveDgramSource
    from .sources.stream import EveStreamSource
    from .sources.tail import EveFileSource

    out: list = []
    try:
        for path in cfg.eve_dgram:
            out.append(EveDgramSource(path, mode=cfg.socket_mode, group=cfg.socket_group,
                                      event_types=cfg.event_types,
                                      peers=peers(path, dgram=True) if peers else None))
        for path in cfg.eve_stream:
            out.append(EveStreamSource(path, mode=cfg.socket_mode, group=cfg.socket_group,
                                       event_types=cfg.event_types, max_line=cfg.eve_max_line,
                                       max_connections=cfg.max_connections, idle_timeout=cfg.idle_timeout,
                                       peers=peers(path) if peers else None))
        for path in cfg.eve_file:
            out.append(EveFileSource(path, bookmark_path=_bookmark_in_dir(cfg, path), start=cfg.eve_file_start,
                                     event_types=cfg.event_types, max_line=cfg.eve_max_line))
        if cfg.zeek_conn:
            from .sources.zeek import ZeekConnSource

            for path in cfg.zeek_conn:
                out.append(ZeekConnSource(path, bookmark_path=_bookmark_in_dir(cfg, path),
                                          start=cfg.zeek_conn_start, max_line=cfg.eve_max_line))
    except BaseException:
        for s in out:
            s.close()
        raise
    return out


def _listen(cfg: Config, ensure_run_dir: bool) -> int:
    from .runtime import catch_stop_signals, run
    from .sockets import SocketPathError

    early_stop = catch_stop_signals()
    if ensure_run_dir:
        for path in (*cfg.snort, *cfg.barnyard2, *cfg.barnyard2_sync, *cfg.eve_dgram, *cfg.eve_stream):
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o750, exist_ok=True)
    server = None
    try:
        check_paths(cfg)
        server = bind_metrics(cfg.metrics, mode=cfg.socket_mode, group=cfg.socket_group)
        pipeline = build_pipeline(cfg)
    except (SocketPathError, ValueError, OSError) as e:
        if server is not None:
            server.close()
        _log.error(str(e))
        return 2
    pipeline.reload_maps = _maps_reloader(cfg, pipeline.enricher)
    from .maps import report as report_maps

    report_maps(pipeline.enricher.maps)
    names = ", ".join(s.origin for s in pipeline.sources)
    sinks = ", ".join(s.name for s in pipeline.sinks)
    serve_metrics(server, pipeline, sensor=cfg.sensor,
                  spool_max_bytes=cfg.spool_max_bytes if cfg.spool_dir else None)
    from .ops.systemd import Notifier

    pipeline.notifier = Notifier.from_environment()  # under systemd (Type=notify)
    _log.info(f"listening on {names}; sinks: {sinks}",
              extra=at(None, inputs=[s.origin for s in pipeline.sources], sinks=[s.name for s in pipeline.sinks]))
    try:
        return run(pipeline, early_stop)
    finally:
        if server is not None:
            server.close()


def bind_metrics(spec: str | None, *, mode: int = 0o660, group: str | None = None):
    """The metrics endpoint's socket, bound (None without ``--metrics``)."""
    if not spec:
        return None
    from .ops.metrics import MetricsServer, parse_address

    return MetricsServer(parse_address(spec), mode=mode, group=group)


def serve_metrics(server, pipeline, *, sensor: str, spool_max_bytes: int | None = None) -> None:
    """Start serving a running pipeline's metrics on ``server`` (if any)."""
    if server is None:
        return
    from .ops.metrics import Metrics

    server.start(Metrics(pipeline, sensor=sensor, spool_max_bytes=spool_max_bytes))
    _log.info(f"metrics endpoint on {server.url} (/metrics, /healthz, /top.json)")


def _maps_reloader(cfg: Config, enricher) -> Callable[[], str] | None:
    """What SIGHUP does to the maps (the runtime calls it on a worker thread,
    one reload at a time): load them anew and swap them in at once.  A loader
    error propagates, and the runtime keeps the old maps and says why."""
    if not (cfg.maps or cfg.sid_msg or cfg.gen_msg or cfg.classification or cfg.reference
            or cfg.rules):
        return None

    def reload() -> str:
        maps = cfg.load_maps()
        enricher.set_maps(maps)
        for w in maps.warnings():  # bad rule lines: reported as at start-up, not fatal
            logging.getLogger("ingest.maps").warning(f"rules: {w}")
        return f"maps reloaded: {maps.describe()}"

    return reload


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:2] if argv is None else argv[:1]) in (["listen"], ["run"]):
        # A daemon: logrotate's SIGHUP must not kill it while it starts (the
        # imports below take a while, longer on a busy machine).  Here, not
        # in __main__, so the installed `ingest` script is covered as well as
        # `python -m ingest`; nothing is open yet, so nothing needs reopening.
        # The runtime remembers a SIGHUP from catch_stop_signals() on.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # ingest does no linear algebra: keep numpy's BLAS from starting a pool
    # of worker threads that only cost CPU (a user's own setting wins).  Set
    # before anything imports numpy.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    ns = parser.parse_args(argv)
    # Every command's messages go through logging (ingest.ops.logs); the
    # long-running ones take --log-level/--log-format (listen/run also from
    # the configuration file, once it is read).
    logs.setup(getattr(ns, "log_level", None) or "info", getattr(ns, "log_format", None) or "text")
    if ns.command in ("listen", "run"):
        try:
            cfg = config_from_args(ns)
        except (ValueError, OSError) as e:
            _log.error(str(e))
            return 2
        logs.setup(cfg.log_level, cfg.log_format)
        return _listen(cfg, ensure_run_dir=ns.command == "run")
    runner: Callable[[argparse.Namespace], int] = ns.run
    if ns.command in ("decode", "pcap", "query"):
        # One-shot output for a pipe: when the reader goes away (| head),
        # end silently as cat does (killed by SIGPIPE, status 141 in the
        # shell), not with a traceback or an error about errno 32.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        rc = runner(ns)
        sys.stdout.flush()
    except BrokenPipeError:
        _die_of_sigpipe()
    except KeyboardInterrupt:  # Ctrl-C: one line, as gen and bench say it, not a traceback
        print(f"ingest {ns.command}: interrupted", file=sys.stderr)
        return 130
    return rc


def _die_of_sigpipe() -> None:
    """End as a process killed by SIGPIPE, quietly (nothing more can be
    written to stdout, and Python's exit flush must not complain)."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(141)  # not reached: SIGPIPE ended the process
