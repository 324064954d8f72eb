"""One typed, frozen Config; built from a TOML file and/or command-line flags.

TOML keys are the long option names with ``_`` (flat; ``sink`` for
``--sink``, ``sinks`` accepted as its alias), e.g.::

    snort = ["/var/log/snort/snort_alert"]
    barnyard2_sync = ["/var/log/barnyard2/barnyard2_alert"]
    sink = ["sqlite:/var/lib/ingest/alerts.db", "jsonl:/var/log/ingest/alerts.json"]
    format = "eve"
    socket_mode = "0660"
    socket_group = "snort"
    dead_letter = "/var/lib/ingest/deadletter.bin"

Every value is checked where it enters (``coerce``: its type and range, the
same rule for a flag and for a key of the file); an error from the file names
the file and line (``FILE:LINE: key: problem``), one from a flag the flag.
"""

from __future__ import annotations

import dataclasses
import math
import re
import socket
import tomllib
from dataclasses import dataclass
from typing import Any

DEFAULT_STORE = "sqlite:./alerts.db"

#: a sensor name: 1..64 of [A-Za-z0-9_.-], no dot at either end and no two in
#: a row.  It goes into every store row and into NATS subjects, where a dot
#: separates tokens (so no empty token can be made from it).
SENSOR_NAME_RE = re.compile(r"(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,64}")


def check_sensor_name(name: str) -> str:
    """name if it is a valid sensor name, else ValueError saying why."""
    if not isinstance(name, str) or not SENSOR_NAME_RE.fullmatch(name):
        raise ValueError(f"{name!r} is no sensor name (1 to 64 of A-Z a-z 0-9 _ . -, "
                         "no dot at either end, no two dots in a row)")
    return name


def default_sensor_name() -> str:
    """The host name as a sensor name (what ``--sensor-name`` defaults to):
    characters a sensor name cannot have become ``_``, dots at either end
    and repeated ones go, it is cut to 64; an empty host name gives
    ``localhost``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())
    name = re.sub(r"\.{2,}", ".", name).strip(".")[:64].rstrip(".")
    return name or "localhost"


@dataclass(frozen=True)
class Config:
    #: Snort 2/3 ``-A unsock`` socket paths (one per Snort 3 packet thread)
    snort: tuple[str, ...] = ()
    #: Barnyard2 ``alert_unixsock`` (datagram) socket paths
    barnyard2: tuple[str, ...] = ()
    #: Barnyard2 ``alert_unixsock: PATH sync`` (seqpacket, acknowledged) paths
    barnyard2_sync: tuple[str, ...] = ()
    #: Suricata EVE: unix_dgram / unix_stream socket paths we bind, files we follow
    eve_dgram: tuple[str, ...] = ()
    eve_stream: tuple[str, ...] = ()
    eve_file: tuple[str, ...] = ()
    #: NetFlow v5/v9/IPFIX: UDP sockets we bind, each udp://HOST:PORT (HOST default 127.0.0.1)
    netflow: tuple[str, ...] = ()
    #: Zeek conn.log files (paths or globs) we follow, JSON or TSV
    zeek_conn: tuple[str, ...] = ()
    #: EVE event types to keep (empty: all), e.g. ("alert", "flow", "stats")
    event_types: tuple[str, ...] = ()
    #: longest EVE line accepted on a stream or file (longer: counted, skipped)
    eve_max_line: int = 16 << 20
    #: where --eve-file bookmarks live (default: beside the followed file)
    bookmark_dir: str | None = None
    #: where a followed file without a bookmark is started: beginning | end
    eve_file_start: str = "beginning"
    #: the same for --zeek-conn
    zeek_conn_start: str = "beginning"
    #: Unified2 spools to follow, each DIR/PREFIX (files PREFIX.<unix-time>)
    unified2: tuple[str, ...] = ()
    #: bookmark file (default DIR/PREFIX.ingest-bookmark; one spool only)
    unified2_bookmark: str | None = None
    #: where to start a spool without a bookmark: beginning | end
    unified2_start: str = "beginning"
    #: what to do with fully read spool files: keep | delete | archive
    unified2_after: str = "keep"
    unified2_archive: str | None = None
    #: directory with sid-msg.map / gen-msg.map / classification.config / reference.config
    maps: str | None = None
    sid_msg: str | None = None
    gen_msg: str | None = None
    classification: str | None = None
    reference: str | None = None
    #: Snort/Suricata rule files, or directories of ``*.rules``, read as the
    #: signature map (ingest.rules; with the maps: ingest.maps.Maps.load)
    rules: tuple[str, ...] = ()
    #: sink URLs; empty means the embedded default store
    sinks: tuple[str, ...] = ()
    #: JSON output profile: eve | trisul
    format: str = "eve"
    socket_mode: int = 0o660
    socket_group: str | None = None
    #: peer-credential allow-lists (README "Who may write"): each entry
    #: UID|NAME (every socket input) or UID|NAME:PATH (that input only)
    allow_uid: tuple[str, ...] = ()
    allow_gid: tuple[str, ...] = ()
    #: ask for every datagram's credentials even without an allow-list, so
    #: ``senders`` counts the datagram inputs too (streams always count)
    count_senders: bool = False
    #: dead-letter file for input we could not use (None: count only)
    dead_letter: str | None = "./ingest-deadletter.bin"
    dead_letter_max_bytes: int = 64 << 20
    #: accept output files (store, JSON lines, dead letters) that another user
    #: owns or may write, or that sit in a world-writable non-sticky directory
    allow_foreign_outputs: bool = False
    #: seconds between stats lines on stderr (0: only the final one)
    stats_interval: float = 10.0
    #: bound of the in-memory queue, in alerts
    max_queue: int = 1_000_000
    #: bound of the in-memory queue and the per-connection line buffers, in bytes
    max_queue_bytes: int = 512 << 20
    #: simultaneous connections per eve-stream / barnyard2-sync socket
    max_connections: int = 64
    #: seconds after which an eve-stream connection that sent nothing is closed (0: never)
    idle_timeout: float = 120.0
    #: most alerts per sink write
    batch_max: int = 8192
    #: how long a partial batch waits for more before it is flushed
    linger_ms: float = 2.0
    #: how long shutdown may take to dispatch what is queued
    drain_timeout: float = 30.0
    #: the nats:// sink's local spool for batches JetStream cannot take now
    #: (None: no spool; JetStream refusing at start-up is then exit 2)
    spool_dir: str | None = None
    #: bound of the spool's files, in bytes (past it: dropped, spool_full)
    spool_max_bytes: int = 1 << 30
    #: when the spool syncs its files: always | segment | never
    spool_fsync: str = "always"
    #: this sensor's name in every store row and NATS subject (None: the host name)
    sensor_name: str | None = None
    #: least severe messages written to stderr: debug | info | warning | error
    log_level: str = "info"
    #: how they are written: text (``ingest: error: ...`` lines) | json (one object per line)
    log_format: str = "text"
    #: seconds an alert may lie outside its flow's start..end and still be
    #: linked to it (SQL stores; ingest.flows.correlate)
    correlate_slack: float = 5.0
    #: the metrics endpoint (ingest.ops.metrics): [HOST:]PORT or unix:PATH; None: off
    metrics: str | None = None

    @property
    def sensor(self) -> str:
        """The sensor name in force: ``sensor_name``, else the host name."""
        return self.sensor_name or default_sensor_name()

    @property
    def sink_urls(self) -> tuple[str, ...]:
        return self.sinks or (DEFAULT_STORE,)

    @classmethod
    def for_run(cls) -> Config:
        """``ingest run`` with no file: sockets under ./run/, store ./alerts.db."""
        return cls(
            snort=("./run/snort_alert",),
            barnyard2=("./run/barnyard2_alert",),
            dead_letter="./run/deadletter.bin",
        )

    @classmethod
    def from_toml(cls, path: str, base: Config | None = None, *, validate: bool = True) -> Config:
        """base (default: the plain defaults) with the keys of the TOML file
        at path.  Errors name the file and the line (ValueError).  With
        validate=False what involves several keys is left to a later
        ``replace`` (the command line's flags may complete the file)."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ValueError(f"cannot read the configuration file {path}: {e.strerror}") from None
        try:
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise ValueError(f"{path}:{line}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
            where = f"{path}:{m.group(1)}:{m.group(2)}" if m else path
            raise ValueError(f"{where}: invalid TOML: {msg[:m.start()] if m else msg}") from None
        if "sink" in data and "sinks" in data:
            raise ValueError(f"{path}:{_key_line(text, 'sinks')}: give 'sink' or its alias "
                             "'sinks', not both")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            try:
                name = field_name(key)
                changes[name] = coerce(name, value)
            except ConfigError as e:  # named as the file names it (sink, not its field sinks)
                what = e if e.key == key or e.problem not in str(e) else f"{key}: {e.problem}"
                raise ValueError(f"{path}:{_key_line(text, key)}: {what}") from None
        cfg = dataclasses.replace(base or cls(), **changes)
        if validate:
            try:
                cfg.validate()
            except ConfigError as e:
                raise ValueError(f"{path}: {e}") from None
        return cfg

    def replace(self, **changes: Any) -> Config:
        """A copy with changes applied (each value coerced, the whole
        validated); ConfigError (a ValueError) names the key."""
        clean = {field_name(k): coerce(field_name(k), v) for k, v in changes.items()}
        cfg = dataclasses.replace(self, **clean)
        cfg.validate()
        return cfg

    def load_maps(self):
        """The maps named by this config (None when none is configured)."""
        from .maps import Maps

        files = {"sid_msg": self.sid_msg, "gen_msg": self.gen_msg,
                 "classification": self.classification, "reference": self.reference}
        if self.maps:
            return Maps.from_dir(self.maps, **files, rules=self.rules)
        if any(files.values()) or self.rules:
            return Maps.load(**files, rules=self.rules)
        return None

    def validate(self) -> None:
        """What involves more than one key (each value was checked by coerce)."""
        if self.unified2_after == "archive" and not self.unified2_archive:
            raise ConfigError("unified2_after", "archive needs unified2_archive (--unified2-archive)")
        if self.unified2_bookmark and len(self.unified2) > 1:
            raise ConfigError("unified2_bookmark", "one bookmark cannot serve several spools")
        if self.spool_dir is not None:
            nats = [u for u in self.sink_urls if is_nats_url(u)]
            if not nats:
                raise ConfigError("spool_dir", "the spool serves a nats:// sink, and none is given")
            if len(nats) > 1:
                raise ConfigError("spool_dir", "one spool directory serves one nats:// sink, not "
                                               f"{len(nats)}")
            if not self.spool_dir:
                raise ConfigError("spool_dir", "must name a directory")


def is_nats_url(url: str) -> bool:
    """A NATS JetStream sink URL (``nats://...`` or ``tls://...``)."""
    return url.startswith(("nats://", "tls://"))


class ConfigError(ValueError):
    """A value that is not acceptable for its key."""

    def __init__(self, key: str, problem: str, *, text: str | None = None) -> None:
        super().__init__(text or f"{key}: {problem}")
        self.key, self.problem = key, problem


# ---- the rule of every key ----------------------------------------------------
# A key added to Config gets its rule here: lists, choices, numbers with their
# lower bound; everything else is a text (a path, a name).

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
#: file keys that name a field differently (``sink`` is ``--sink``; the
#: field holds several, as the flag may be repeated)
_ALIASES = {"sink": "sinks"}
_LISTS = {"snort", "barnyard2", "barnyard2_sync", "sinks", "unified2", "eve_dgram", "eve_stream",
          "eve_file", "rules", "allow_uid", "allow_gid", "netflow", "zeek_conn"}
_CHOICES = {
    "format": ("eve", "trisul"),
    "eve_file_start": ("beginning", "end"),
    "zeek_conn_start": ("beginning", "end"),
    "unified2_start": ("beginning", "end"),
    "unified2_after": ("keep", "delete", "archive"),
    "spool_fsync": ("always", "segment", "never"),
    "log_level": ("debug", "info", "warning", "error"),
    "log_format": ("text", "json"),
}
#: yes/no keys (a TOML boolean; the flag sets True)
_BOOLS = {"allow_foreign_outputs", "count_senders"}
#: numeric keys: (type, smallest allowed value)
_NUMBERS: dict[str, tuple[type, float]] = {
    "eve_max_line": (int, 1),
    "dead_letter_max_bytes": (int, 1),
    "stats_interval": (float, 0),
    "max_queue": (int, 1),
    "batch_max": (int, 1),
    "linger_ms": (float, 0),
    "drain_timeout": (float, 0),
    "max_queue_bytes": (int, 1 << 20),
    "max_connections": (int, 1),
    "idle_timeout": (float, 0),
    "spool_max_bytes": (int, 1 << 20),
    "correlate_slack": (float, 0),
}


def field_name(key: str) -> str:
    """The Config field a file key or flag name sets (ConfigError if none)."""
    k = key.replace("-", "_")
    k = _ALIASES.get(k, k)
    if k not in _FIELDS:
        raise ConfigError(key, "unknown configuration key", text=f"unknown configuration key {key!r}")
    return k


def _key_line(text: str, key: str) -> int | str:
    """The line of a TOML file where key is set (for error messages)."""
    k = re.escape(key)
    m = re.search(rf"""^[ \t]*(?:{k}|"{k}"|'{k}')[ \t]*=|^[ \t]*\[+[ \t]*{k}[ \t]*\]""", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else "?"


def _number(key: str, value: Any) -> int | float:
    kind, low = _NUMBERS[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not isinstance(value, int)):
        raise ConfigError(key, f"must be {'an integer' if kind is int else 'a number'}, "
                               f"not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, not {value!r}")
    if value < low:
        raise ConfigError(key, f"must be >= {_num(low)}, not {_num(value)}")
    return kind(value)


def _num(x: float) -> str:
    """A bound or value as a user writes it: 1048576 (1 MiB), 0.5, never 1.04858e+06."""
    if isinstance(x, int) or float(x).is_integer():
        n = int(x)
        return f"{n} ({n >> 20} MiB)" if n >= 1 << 20 and n % (1 << 20) == 0 else str(n)
    return repr(float(x))


def coerce(key: str, value: Any) -> Any:
    """value checked and converted for the field key (ConfigError if not
    acceptable).  Lists take one string or a list of them; socket_mode an
    octal string or an integer; event_types a comma-separated string or a
    list."""
    if key in _LISTS:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v for v in items):
            raise ConfigError(key, f"must be a non-empty string or a list of them, not {value!r}")
        return tuple(items)
    if key == "event_types":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise ConfigError(key, f"must be a comma-separated string or a list, not {value!r}")
        return tuple(t.strip() for t in items if t.strip())
    if key == "socket_mode":
        if isinstance(value, str):
            try:
                value = int(value, 8)
            except ValueError:
                raise ConfigError(key, f"{value!r} is not an octal mode such as 0660") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
            shown = f"0{value:o}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
            raise ConfigError(key, f"{shown} is not a permission mode (0 to 0777)")
        return value
    if key in _NUMBERS:
        return _number(key, value)
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ConfigError(key, f"must be {' or '.join(_CHOICES[key])}, not {value!r}")
        return value
    if key == "dead_letter" and value == "":
        return None  # '' disables the dead-letter file (count only)
    if key == "sensor_name" and value is not None:
        try:
            return check_sensor_name(value)
        except ValueError as e:
            raise ConfigError(key, str(e)) from None
    if key == "metrics" and value is not None:
        from .ops.metrics import parse_address

        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(key, f"must be a string such as \"127.0.0.1:9108\", not {value!r}")
        try:
            parse_address(str(value))
        except ValueError as e:
            raise ConfigError(key, str(e)) from None
        return str(value)
    if value is None and "None" in str(_FIELDS[key].type):
        return None
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {value!r}")
    return value


def parse_flag(key: str, text: str) -> Any:
    """A command-line flag's text converted as its key's rule says (for
    argparse ``type=``: raises ValueError with the problem alone)."""
    try:
        value: Any = text
        if key in _NUMBERS:
            kind = _NUMBERS[key][0]
            try:
                value = kind(text)
            except ValueError:
                raise ConfigError(key, f"must be {'an integer' if kind is int else 'a number'}, "
                                       f"not {text!r}") from None
        return coerce(key, value)
    except ConfigError as e:
        raise ValueError(e.problem) from None


def number_arg(kind: type[int] | type[float], low: float) -> Any:
    """argparse ``type=`` for a tool's numeric option (``ingest gen``,
    ``bench``, ``query``): a finite int or float >= low, else the
    subcommand's usage error (exit 2)."""
    import argparse

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'}, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {_num(low)}, not {text}")
        return value

    convert.__name__ = f"{kind.__name__} >= {_num(low)}"
    return convert


def sensor_name_arg(text: str) -> str:
    """argparse ``type=`` for a tool's ``--sensor-name`` (``ingest decode``):
    the rule of the ``sensor_name`` key, else the subcommand's usage error."""
    import argparse

    try:
        return check_sensor_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
