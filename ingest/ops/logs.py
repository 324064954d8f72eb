"""What ingest says while it runs: Python ``logging``, as text or as JSON lines.

Every message goes through a logger under ``ingest`` (``ingest.runtime``,
``ingest.source``, ``ingest.sink``, ``ingest.stats``, ...).  A record may
carry the input it is about (``extra=at(origin)``) and structured fields
(``extra=at(origin, sink="sqlite:a.db")``).

Two formats, chosen by ``--log-format``:

``text`` (the default) is what ingest always wrote to stderr, byte for byte:
``ingest: error: MSG``, ``ingest: warning: MSG``, ``ingest: MSG`` (info and
debug), one line each.  Scripts and tests that read those lines keep working.

``json`` is one JSON object per line, for journald, Loki and friends::

    {"ts": "2026-12-04T13:50:01.123456Z", "level": "error", "logger": "ingest.sink",
     "msg": "sink sqlite:a.db: ...", "input": "snort:/run/snort.sock", "sink": "sqlite:a.db"}

``ts`` is RFC 3339 in UTC; ``input`` is there when the message is about one
input; the record's fields follow (the stats line's counters, for one).  A
traceback (a thread that died) is the ``exc`` field, never raw lines, so
every line of stderr parses.

``--log-level debug|info|warning|error`` drops records below it (the
periodic stats line is an info record).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

#: the text format's prefix per level (what ingest wrote before it used logging)
_PREFIX = {logging.DEBUG: "ingest: ", logging.INFO: "ingest: ", logging.WARNING: "ingest: warning: ",
           logging.ERROR: "ingest: error: ", logging.CRITICAL: "ingest: error: "}

# Attributes every LogRecord has: anything else on a record came from extra=
# and is a field of the JSON object.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "input", "fields"}


def at(input: str | None = None, **fields: Any) -> dict[str, Any]:
    """``extra=`` for a record about ``input`` (an origin such as
    ``snort:/run/snort.sock``), with structured ``fields``."""
    return {"input": input, "fields": fields}


class TextFormatter(logging.Formatter):
    """``ingest: [warning: |error: ]MSG``: the stderr lines of old."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name != "ingest" and not record.name.startswith("ingest."):
            return super().format(record)  # another library's record, as Python prints it unconfigured
        out = _PREFIX.get(record.levelno, "ingest: ") + record.getMessage()
        if record.exc_info:
            out += "\n" + self.formatException(record.exc_info)
        return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.created % 1 * 1e6):06d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        origin = getattr(record, "input", None)
        if origin is not None:
            obj["input"] = origin
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                obj.setdefault(k, v)
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                obj.setdefault(k, v)
        if record.exc_info:
            obj["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(obj, default=str, separators=(", ", ": "))


class StderrHandler(logging.Handler):
    """Writes each record to whatever ``sys.stderr`` is at the time (a
    test may have replaced it), one line, flushed: a supervisor reading
    the pipe sees every message as it happens."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            stream = sys.stderr
            stream.write(line)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


_handler: StderrHandler | None = None


def setup(level: str = "info", fmt: str = "text") -> None:
    """Route every logger's records to stderr in ``fmt`` at ``level`` and
    above (call once, early; calling again replaces the settings)."""
    global _handler
    if level not in LEVELS:
        raise ValueError(f"log level must be {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be {' or '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = StderrHandler()
    _handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(_handler)
    # ingest's own records from ``level`` up; other libraries' (asyncio,
    # nats) from warning up, as Python shows them when nobody configures it
    threshold = getattr(logging, level.upper())
    logging.getLogger("ingest").setLevel(threshold)
    root.setLevel(max(logging.WARNING, threshold))
    if fmt == "json":
        # Python's own warnings and the tracebacks of dying threads would be
        # raw lines in a JSON stream: as records instead.
        logging.captureWarnings(True)
        threading.excepthook = _thread_excepthook
        sys.excepthook = _excepthook


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("ingest.runtime").error(
        f"thread {name} died: {args.exc_value!r}",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback), extra=at(None, thread=name))


def _excepthook(exc_type, exc_value, tb) -> None:
    logging.getLogger("ingest").error(f"uncaught {exc_value!r}", exc_info=(exc_type, exc_value, tb))


def add_arguments(p: Any) -> None:
    """``--log-level`` and ``--log-format`` on an argparse parser."""
    p.add_argument("--log-level", choices=LEVELS, metavar="LEVEL",
                   help="least severe messages written: debug, info (default; the stats line is info), "
                        "warning, error")
    p.add_argument("--log-format", choices=FORMATS, metavar="FORMAT",
                   help="text (default: 'ingest: error: ...' lines) or json (one object per line: ts, level, "
                        "logger, msg, input, and fields; for journald/Loki)")
