"""``ingest gen``: a load generator that sends alerts the way the engines do.

The sending loop is C (csrc/gen.c, ``ingest_gen_dgram``); this module builds
realistic templates and drives it.  Each ``--kind`` is faithful to its sender
(FORMATS.md 1.1, 2, 3.2):

============  ======  =====================================================
kind          bytes   default mode
============  ======  =====================================================
snort         65864   ``sendto``: one blocking sendto per alert, flags 0
snort3        65864   ``sendto`` (Snort 3 also sets nethdr for IPv6)
snort-appid   65928   ``sendto`` (app_name: only its first 28 bytes are sent)
barnyard2     1856    ``connect``: connect once, blocking send per alert
barnyard2-32  1844    ``connect``
============  ======  =====================================================

``--mode mmsg`` batches with sendmmsg (no real sender does); ``--mode
dontwait`` drops and counts an alert when the send would block, as Suricata
live mode does.

``--kind eve-dgram`` / ``eve-stream`` send newline-terminated EVE JSON lines
(csrc/gen.c, ``ingest_gen_lines``) as Suricata's eve-log ``unix_dgram`` (one
record per datagram) / ``unix_stream`` output does: connect() once, one send
per record, MSG_DONTWAIT with a would-block record dropped and counted (live
mode); ``--offline`` blocks instead, as ``suricata -r`` does.  The records are
the lines of ``--eve-file FILE``, else of the Zeus Suricata 7.0.7 capture in
the shared data (``eve/zeus-suricata-7.0.7/eve.json`` under
``$INGEST_SHARED_DATA``, else ``../shared/data`` beside the source checkout)
when present, else generated: alerts with ET-style metadata, and flows.

Content: a seeded mix of IPv4 TCP/UDP/ICMP and IPv6 TCP/UDP/ICMPv6, some
802.1Q-tagged frames, a few packetless events and portscan pseudo-packets
(NO_TRANSHDR), signatures drawn Zipf-like from a catalog of realistic rules.
Templates are cycled; every datagram gets its own event id (1, 2, 3, ...)
unless ``--no-stamp``, and its own time: the wall-clock time of its first
send attempt, written into the event by the C loop (``--clock send``, the
default; Unified2: the time the event is written), so a store filled by gen
looks like a real one; EVE records (cycled too) have their ``timestamp``
set to their send time in UTC, and a flow's ``start``/``end`` moved with it.
``--clock template`` keeps the templates' seeded times (reproducible, cycled
every ``--templates`` alerts), and EVE records as they are.

Example::

    ingest gen --to /var/log/snort/snort_alert --kind snort --count 100000 --rate 5000
"""


from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys

from ..config import number_arg
from .eve import eve_records, load_eve_records
from .senders import (
    EVE_KINDS,
    MODES,
    GenError,
    LineSender,
    Sender,
    SendResult,
    send,
    sender_for,
    start_in_thread,
)
from .templates import (
    APPID_SENT,
    KINDS,
    SNAPLEN,
    AlertSpec,
    Rule,
    alert_specs,
    build_templates,
    encode_spec,
    rule_catalog,
    time_offset,
    zipf_weights,
)
from .unified2 import SpoolResult, write_spool

__all__ = [
    "APPID_SENT", "EVE_KINDS", "KINDS", "MODES", "SNAPLEN", "AlertSpec", "GenError", "LineSender",
    "Rule", "SendResult", "Sender", "add_parser", "alert_specs", "build_templates", "encode_spec",
    "eve_records", "load_eve_records", "main", "rule_catalog", "run", "send", "sender_for",
    "start_in_thread", "time_offset", "write_spool", "zipf_weights", "SpoolResult",
]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gen", help="send generated alerts as Snort, Barnyard2 and Suricata do, or write a "
                    "Unified2 spool",
        description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--to", required=True, metavar="PATH",
                   help="unix socket to send to (--kind unified2: the spool's DIR/PREFIX)")
    p.add_argument("--kind", choices=(*KINDS, *EVE_KINDS, "unified2"), default="snort",
                   help="the sender to act as (default snort)")
    p.add_argument("--mode", choices=tuple(MODES),
                   help="send mode (default: the kind's real sender; see ingest.gen; "
                        "not for eve-*)")
    p.add_argument("--offline", action="store_true",
                   help="eve-*: blocking sends, as suricata -r (default: live mode, "
                        "a send that would block is dropped and counted)")
    p.add_argument("--eve-file", metavar="FILE",
                   help="eve-*: send the lines of this eve.json (default: the shared Zeus "
                        "capture if present, else generated records)")
    p.add_argument("--count", type=number_arg(int, 0), default=10000, metavar="N",
                   help="alerts to send (0 = until --duration or Ctrl-C)")
    p.add_argument("--rate", type=number_arg(float, 0), default=0.0, metavar="R",
                   help="alerts per second (0 = as fast as possible)")
    p.add_argument("--duration", type=number_arg(float, 0), default=0.0, metavar="SECONDS",
                   help="stop after this long (0 = no limit)")
    p.add_argument("--seed", type=int, default=1, metavar="S",
                   help="seed of the generated alerts (default 1)")
    p.add_argument("--templates", type=number_arg(int, 1), default=256, metavar="N",
                   help="distinct alerts to cycle through")
    p.add_argument("--no-stamp", action="store_true",
                   help="send templates unchanged (repeating event ids)")
    p.add_argument("--clock", choices=("send", "template"),
                   help="alert times: 'send' (default) each alert's wall-clock send time "
                        "(unified2: its write time; eve-*: every time of the record moved "
                        "with it), as a sensor stamps alerts; 'template' the templates' own "
                        "seeded times (eve-*: the records' own), cycled")
    p.add_argument("--rotate-events", type=number_arg(int, 1), metavar="N",
                   help="unified2: start a new spool file after N events (default: by size)")
    p.add_argument("--rotate-bytes", type=number_arg(int, 1), metavar="B",
                   help="unified2: start a new spool file past B bytes (Snort's limit; 128 MiB)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)
    return p


def _run_unified2(args: argparse.Namespace) -> int:
    """--kind unified2: --to is DIR/PREFIX; files PREFIX.<unix-time> are
    written and rotated like Snort's spool."""
    specs = alert_specs(args.templates, args.seed, kind="snort")
    try:
        res = write_spool(args.to, specs, args.count or (1 << 62), rate=args.rate,
                          rotate_events=args.rotate_events or 0,
                          rotate_bytes=args.rotate_bytes or 128 << 20,
                          time_limit=args.duration, clock=args.clock or "send")
    except (OSError, ValueError) as e:
        _error(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps({"kind": "unified2", "to": args.to, **res.as_dict()}))
    else:
        print(f"ingest gen: unified2 -> {args.to}.*: wrote {res.events} events, {res.packets} "
              f"packets, {res.bytes} bytes in {len(res.files)} file(s), {res.elapsed:.3f} s")
    return 0


def _error(msg: str) -> None:
    print(f"ingest gen: error: {msg}", file=sys.stderr)


def _start_failed(args: argparse.Namespace, e: GenError | ValueError | OSError) -> int:
    """The sender could not start: a --to socket of the wrong type is the
    user's mistake (exit 2, with what would fit); anything else exit 1."""
    if isinstance(e, GenError) and e.errno == errno.EPROTOTYPE:
        want = "stream" if EVE_KINDS.get(args.kind) else "datagram"
        hint = {"eve-dgram": "an --eve-stream socket takes --kind eve-stream",
                "eve-stream": "an --eve-dgram socket takes --kind eve-dgram"}.get(
                    args.kind, "gen sends nothing to a --barnyard2-sync socket")
        _error(f"--to {args.to}: not a {want} socket, which --kind {args.kind} needs ({hint})")
        return 2
    _error(str(e))
    return 1


#: options that only some kinds take: option -> (its Namespace attribute, the kinds)
_FOR_KINDS = {
    "--mode": ("mode", tuple(KINDS)),
    "--no-stamp": ("no_stamp", tuple(KINDS)),
    "--offline": ("offline", tuple(EVE_KINDS)),
    "--eve-file": ("eve_file", tuple(EVE_KINDS)),
    "--rotate-events": ("rotate_events", ("unified2",)),
    "--rotate-bytes": ("rotate_bytes", ("unified2",)),
}


def _misplaced(args: argparse.Namespace) -> str | None:
    """An option given that this --kind does not take (a usage error: it
    would be silently ignored otherwise), or None."""
    for opt, (attr, kinds) in _FOR_KINDS.items():
        if getattr(args, attr) not in (None, False) and args.kind not in kinds:
            return f"{opt} is not for --kind {args.kind} (only {', '.join(kinds)})"
    return None


def _check_target(args: argparse.Namespace) -> str | None:
    """Why --to cannot work, before anything is sent (exit 2), or None."""
    if args.kind == "unified2":
        d = os.path.dirname(os.path.abspath(args.to))
        return None if os.path.isdir(d) else f"--to {args.to}: directory {d} does not exist"
    try:
        st = os.stat(args.to)
    except OSError as e:
        return f"--to {args.to}: {e.strerror} (is the receiver listening?)"
    if not stat.S_ISSOCK(st.st_mode):
        return f"--to {args.to}: not a socket"
    return None


def _finish(args: argparse.Namespace, res: SendResult, mode: str, source: str, unit: str,
            **extra: object) -> int:
    """Report a finished run (stdout: one line, or one JSON object with
    extra) and return its exit status; failed sends go to stderr."""
    if args.json:
        print(json.dumps({"kind": args.kind, "mode": mode, "to": args.to, **extra,
                          **res.as_dict()}))
    else:
        stop = " (interrupted)" if res.interrupted else " (time limit)" if res.timed_out else ""
        print(f"ingest gen: {args.kind}/{mode}{source} -> {args.to}: sent {res.sent}, dropped "
              f"{res.dropped}, errors {res.errors} in {res.elapsed:.3f} s "
              f"({res.rate:,.0f} {unit}/s){stop}")
    return _report_failures(res)


def _report_failures(res: SendResult) -> int:
    """Exit status of a finished run; failed sends are reported on stderr."""
    if res.errors:
        _error(f"{res.errors} of {res.sent + res.dropped + res.errors} sends failed "
               f"(last: {res.last_error})")
        return 1
    return 130 if res.interrupted else 0


def run(args: argparse.Namespace) -> int:
    """``ingest gen``.  Exit 0 when everything was sent (or dropped as the
    mode says), 2 for a usage or input error (nothing sent), 1 when sending
    failed, 130 when interrupted."""
    why = _misplaced(args) or _check_target(args)
    if why is not None:
        _error(why)
        return 2
    if args.count == 0 and args.duration == 0:
        print("ingest gen: sending until Ctrl-C (give --count or --duration to bound it)",
              file=sys.stderr)
    if args.kind in EVE_KINDS:
        return _run_eve(args)
    if args.kind == "unified2":
        return _run_unified2(args)
    templates, _specs = build_templates(args.kind, args.templates, args.seed)
    try:
        sender = sender_for(args.kind, args.to, templates, mode=args.mode,
                            stamp=not args.no_stamp,
                            clock=None if args.clock == "template" else "realtime")
        res = send(sender, args.count, rate=args.rate, time_limit=args.duration)
    except (GenError, ValueError) as e:
        return _start_failed(args, e)
    return _finish(args, res, args.mode or KINDS[args.kind][2], "", "alerts",
                   bytes=KINDS[args.kind][1])


def _run_eve(args: argparse.Namespace) -> int:
    try:
        records, source = load_eve_records(args.eve_file, args.templates, args.seed)
    except (OSError, ValueError) as e:  # the --eve-file: an input error
        _error(str(e))
        return 2
    try:
        sender = LineSender(args.to, records, stream=EVE_KINDS[args.kind], offline=args.offline,
                            clock=None if args.clock == "template" else "realtime")
        res = send(sender, args.count, rate=args.rate, time_limit=args.duration)
    except (GenError, ValueError, OSError) as e:
        return _start_failed(args, e)
    return _finish(args, res, "offline" if args.offline else "live", f" ({source})", "records",
                   records=source)


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest.gen``: the same as ``ingest gen``."""
    parser = argparse.ArgumentParser(prog="ingest")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gen", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


