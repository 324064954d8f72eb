"""``sqlite:PATH``: the embedded default store.

WAL mode, so other processes can query while we ingest; one transaction per
batch; all database work happens on one dedicated thread so the event loop
never waits on disk.  A batch's rows are written by the C core
(csrc/sqlite.c): a prepared INSERT bound straight from the columns that
ingest.sinks.rows builds with numpy, with the GIL released, and no Python
object per row or value.  It links the system's SQLite library, the same
copy Python's sqlite3 module uses (checked at start-up, :func:`native_ok`);
where that cannot be (a Python with its own SQLite built in) or
``INGEST_SQLITE_NATIVE=0`` asks for it, the same rows go through sqlite3's
``executemany``.

Schema (see README "The SQLite store"; ingest.sinks.rows builds the rows)::

    signatures(gid, sid, rev, msg, refs)           -- one row per signature seen
    alerts(id, ts_us, timestamp, source, sensor_id, event_id, gid, sid, rev,
           class_id, category, priority, action, proto, ip_ver, src_ip, src_port,
           dest_ip, dest_port, icmp_type, icmp_code, vlan, flow_id, app_name,
           replay_key, sensor, tuple_key, flow_ref)
    alerts_v                                         -- alerts joined with signatures
    flows(id, flow_id, event_type, src_ip, ..., start_us, end_us, alerted, sensor,
          tuple_key, ...)                            -- EVE flow/netflow events, and the
                                                     -- canonical flow records (NetFlow/IPFIX,
                                                     -- Zeek) bound column-wise from their array
    flows_v                                          -- flows with alert_count, top_priority
                                                     -- (counted from the links when read)

Every alert is linked to the flow it belongs to (``flow_ref``), whatever
engine sent it: ingest.flows.correlate, in the batch's transaction (the
batch's flows first, then its alerts, each choosing its flow in its own
INSERT, then the stored alerts a new flow takes).

Every unique key includes the sensor.  Alerts with a replay key (file
followers) are stored at most once: a follower that re-reads after a crash
cannot duplicate them.  Flow rows are keyed by (sensor, flow_id, event_type,
src_ip, src_port) when they have an engine flow id (``flows_key``, partial:
NetFlow/IPFIX records have none), so re-reading replaces.  Which flows produced a
high-priority alert: ``ingest query flows`` (ingest.query).

The schema is versioned (``PRAGMA user_version``, :data:`SCHEMA_VERSION`):
a store written before versions is migrated at start-up, one written by a
newer ingest is refused (exit 2) rather than written in a shape it does not
know.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config import check_sensor_name, default_sensor_name
from ..flows import correlate
from ..flows.recent import RecentFlows
from ..mapping import Enriched
from ..native import ffi, lib
from ..safefile import check_output, open_output
from . import rows as R
from .errors import DataError
from .onthread import OnThreadSink
from .pgcopy import describe

_log = logging.getLogger(__name__)

#: the store's schema version (``PRAGMA user_version``; PostgreSQL keeps the
#: same number in its ``schema_version`` table).  0 is a store written before
#: versions (it is migrated); a store newer than this is refused.
SCHEMA_VERSION = 6

TABLES = """
CREATE TABLE IF NOT EXISTS signatures (
    gid INTEGER NOT NULL, sid INTEGER NOT NULL, rev INTEGER NOT NULL, msg TEXT,
    refs TEXT,                       -- JSON array: the references (URLs) from the maps
    PRIMARY KEY (gid, sid, rev)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,          -- microseconds since the epoch, UTC
    timestamp TEXT NOT NULL,         -- the same, ISO 8601 UTC
    source TEXT NOT NULL,            -- snort | barnyard2 | unified2 | eve
    sensor_id INTEGER, event_id INTEGER,
    gid INTEGER NOT NULL, sid INTEGER NOT NULL, rev INTEGER NOT NULL,
    class_id INTEGER, category TEXT, priority INTEGER,
    action TEXT,                     -- NULL when the source does not say
    proto INTEGER, ip_ver INTEGER,   -- NULL when the alert had no packet
    src_ip TEXT, src_port INTEGER, dest_ip TEXT, dest_port INTEGER,
    icmp_type INTEGER, icmp_code INTEGER,
    vlan INTEGER, flow_id INTEGER, app_name TEXT,
    replay_key INTEGER,              -- file followers: the record's identity (AlertBatch.keys)
    sensor TEXT NOT NULL,            -- the sensor that saw it (--sensor-name)
    tuple_key INTEGER,               -- the normalised 5-tuple (ingest.flows.correlate), NULL without one
    flow_ref INTEGER                 -- flows.id of the flow it belongs to (correlation), NULL: none yet
);
"""
FLOWS_TABLE = """
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY,
    flow_id INTEGER,                 -- EVE flow_id (as signed 64-bit, like alerts.flow_id),
                                     -- NULL for NetFlow/IPFIX records (no engine flow id)
    event_type TEXT NOT NULL,        -- flow (both directions) | netflow (one direction)
    src_ip TEXT, src_port INTEGER, dest_ip TEXT, dest_port INTEGER,
    proto TEXT, app_proto TEXT,
    start TEXT, "end" TEXT,          -- as Suricata wrote them (local time + offset)
    start_us INTEGER, end_us INTEGER, -- the same, microseconds since the epoch, UTC
    pkts_toserver INTEGER, pkts_toclient INTEGER, bytes_toserver INTEGER, bytes_toclient INTEGER,
    state TEXT, reason TEXT, alerted INTEGER,
    sensor TEXT NOT NULL,
    tuple_key INTEGER,               -- as alerts.tuple_key
    source TEXT,                     -- eve | netflow5 | netflow9 | ipfix | zeek
    ip_proto INTEGER, ip_ver INTEGER, -- IANA protocol number, 4 or 6
    icmp_type INTEGER, icmp_code INTEGER, vlan INTEGER,
    tcp_flags INTEGER, tcp_flags_rev INTEGER, -- OR of TCP flags src->dst, dst->src
    exporter TEXT, obs_domain INTEGER, -- NetFlow/IPFIX: exporter address, source id / domain
    sampling INTEGER,                -- 1 in N packets sampled (counters already scaled)
    uid TEXT, history TEXT           -- Zeek: the connection's uid and history (version 4)
)
"""
# The flows key (version 6): an engine flow (Suricata's flow_id, Zeek's uid
# as flow_id) seen again replaces its row (INSERT OR REPLACE).  It is a
# partial unique index, not a table constraint: NetFlow/IPFIX records have no
# engine flow id (flow_id NULL), NULLs never conflict in a unique key, so the
# key never held them anyway -- but as a table constraint every one of them
# paid an index entry at a random position (the sensor, then the source
# address as text): half the cost of storing a NetFlow record
# (BENCHMARKS.md, "Sustained, against nfcapd").  Same rows kept, same
# replacements; NetFlow over UDP is at-least-once (a resent datagram is a
# second row), as it was.
FLOWS_KEY = ("CREATE UNIQUE INDEX IF NOT EXISTS flows_key ON flows "
             "(sensor, flow_id, event_type, src_ip, src_port) WHERE flow_id IS NOT NULL")
# Every unique key starts with the sensor: two sensors may well send the
# same Unified2 event id or replay key.  A Unified2 event is identified by
# (sensor, sensor_id, event_id, time, signature): re-delivery after a crash
# between commit and bookmark is ignored, so the store holds every Unified2
# alert exactly once; the same for Barnyard2 (alerts_by2_key, made in
# _ensure_keys) and for records with a replay key.
#
# Index policy (measured: BENCHMARKS.md, "SQLite store: index policy"): an
# index is made only if a statement ingest runs needs it (tests/unit/
# test_query_plans.py, test_correlate.py check the plans).  alerts_ts: time
# windows and the newest-first listing (cheap: time only grows).  alerts_sig
# on (sid, gid): --sig GID:SID and a bare --sig SID alike (on (gid, sid) a
# bare sid scanned the table).  alerts_tuple: correlation, a late flow finding
# its stored alerts.  alerts_flow_ref: query flows.  alerts (flow_id) is no
# longer made: no statement of ingest reads alerts by Suricata's flow id
# (correlation goes by the 5-tuple key, query flows by flow_ref), and it was
# the dearest index of an EVE store.  Stores made before keep their indexes
# (IF NOT EXISTS); ``DROP INDEX alerts_flow`` gives an old store the same
# write rate, ``CREATE INDEX alerts_flow ON alerts (flow_id) WHERE flow_id
# IS NOT NULL`` gives a new one the lookup by flow id back.
INDEXES = f"""
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts_us);
CREATE INDEX IF NOT EXISTS alerts_sig ON alerts (sid, gid);
CREATE INDEX IF NOT EXISTS flows_flow ON flows (flow_id);
CREATE INDEX IF NOT EXISTS alerts_tuple ON alerts (tuple_key, ts_us) WHERE tuple_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_flow_ref ON alerts (flow_ref) WHERE flow_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_tuple ON flows (tuple_key, start_us) WHERE tuple_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_uid ON flows (uid) WHERE uid IS NOT NULL;
{FLOWS_KEY};
CREATE UNIQUE INDEX IF NOT EXISTS alerts_u2_key ON alerts
    (sensor, sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'unified2';
CREATE UNIQUE INDEX IF NOT EXISTS alerts_replay ON alerts (sensor, replay_key)
    WHERE replay_key IS NOT NULL;
CREATE VIEW IF NOT EXISTS alerts_v AS
    SELECT a.*, s.msg AS signature, s.refs AS refs FROM alerts a
    LEFT JOIN signatures s ON s.gid = a.gid AND s.sid = a.sid AND s.rev = a.rev;
"""
_BY2_KEY = ("CREATE UNIQUE INDEX IF NOT EXISTS alerts_by2_key ON alerts "
            "(sensor, sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'barnyard2'")

# a signature's references arrive with the maps: a row stored before them
# (or before a reload that added some) gets them when the signature is seen again
_INSERT_SIG = ("INSERT INTO signatures (gid, sid, rev, msg, refs) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (gid, sid, rev) DO UPDATE SET refs = excluded.refs "
               "WHERE excluded.refs IS NOT NULL AND refs IS NOT excluded.refs")
# DO NOTHING on any unique key (alerts_u2_key, alerts_by2_key, alerts_replay):
# a re-delivered event or re-read record
_INSERT = (f"INSERT INTO alerts ({', '.join(R.ALERT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(R.ALERT_COLUMNS))}) ON CONFLICT DO NOTHING")


def insert_linked(slack_us: int) -> str:
    """_INSERT with the alert's flow chosen in it: ``flow_ref`` is
    ingest.flows.correlate.best_flow of the row's own values (numbered
    parameters: the same columns, bound once).  One write of the alert,
    and an index probe of flows, instead of a second pass that writes the
    alert again."""
    p = {c: f"?{i + 1}" for i, c in enumerate(R.ALERT_COLUMNS)}
    return (f"INSERT INTO alerts ({', '.join(R.ALERT_COLUMNS)}, flow_ref) "
            f"VALUES ({', '.join(p.values())}, ({correlate.best_flow(p, slack_us=slack_us)})) "
            "ON CONFLICT DO NOTHING")


def insert_chosen(slack_us: int) -> str:
    """insert_linked for the C writer with the recent flows in memory
    (ingest.flows.recent): two more parameters per row, the flow chosen in
    memory (?{n+1}, NULL: none) and whether the store must choose instead
    (?{n+2} not NULL: the subquery, evaluated only then)."""
    n = len(R.ALERT_COLUMNS)
    p = {c: f"?{i + 1}" for i, c in enumerate(R.ALERT_COLUMNS)}
    return (f"INSERT INTO alerts ({', '.join(R.ALERT_COLUMNS)}, flow_ref) "
            f"VALUES ({', '.join(p.values())}, CASE WHEN ?{n + 2} IS NULL THEN ?{n + 1} "
            f"ELSE ({correlate.best_flow(p, slack_us=slack_us)}) END) ON CONFLICT DO NOTHING")


_ANY_FLOW = "SELECT 1 FROM flows WHERE tuple_key IS NOT NULL LIMIT 1"
_FLOW_SPAN = "SELECT coalesce(max(id), 0) - coalesce(min(id), 0) + 1 FROM flows"
_FLOW_KEYS = "SELECT tuple_key FROM flows WHERE tuple_key IS NOT NULL"
_MAX_FLOW = "SELECT max(id) FROM flows"


def _int(cols: Sequence[R.Column], names: tuple[str, ...], name: str) -> tuple[np.ndarray, np.ndarray]:
    """An integer column's values and not-NULL mask, by column name."""
    c = cols[names.index(name)]
    assert isinstance(c, R.IntColumn)
    v = np.asarray(c.values, np.int64)
    return v, (np.ones(len(v), bool) if c.valid is None else np.asarray(c.valid, bool))
_FLOW_NAMES = ", ".join(f'"{c}"' if c == "end" else c for c in R.FLOW_COLUMNS)
# a flow seen again (a re-read file) replaces its row
_INSERT_FLOW = (f"INSERT OR REPLACE INTO flows ({_FLOW_NAMES}) "
                f"VALUES ({', '.join('?' * len(R.FLOW_COLUMNS))})")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _columns_ordered(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


#: the columns of flows since version 3 (what a copy into it may take)
_FLOWS_V3 = frozenset({"id", *R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS})


def flows_view(db: sqlite3.Connection) -> str:
    """``flows_v``: every column of flows, and per flow ``alert_count`` and
    ``top_priority`` (the lowest priority number of its alerts; 1 is the
    highest) counted when asked from the ``alerts (flow_ref)`` index
    (schema version 5; until then they were columns of flows, rewritten in
    every batch's transaction).  The columns are named (a store whose
    SQLite could not drop the old ones keeps them, unread)."""
    cols = ", ".join(f'f."{c}"' for c in _columns_ordered(db, "flows") if c not in R.FLOW_VIEW_COLUMNS)
    return f"CREATE VIEW flows_v AS SELECT {cols}, {correlate.FLOW_AGGREGATES} FROM flows f"


def _index_columns(db: sqlite3.Connection, index: str) -> list[str]:
    return [r[2] for r in db.execute(f"PRAGMA index_info({index})")]


def _migrate(db: sqlite3.Connection, sensor: str) -> None:
    """Bring a store written by an earlier version to SCHEMA_VERSION (in the
    caller's transaction).  Rows stored before the sensor column existed get
    ``sensor``, the name of the process that migrates: that store was
    written on this sensor, and a record it re-reads after the upgrade (a
    Unified2 event, a replayed eve.json line) then still finds its key."""
    check_sensor_name(sensor)  # it is written into the schema as a literal
    have = _columns(db, "alerts")
    if "replay_key" not in have:
        db.execute("ALTER TABLE alerts ADD COLUMN replay_key INTEGER")
    if "sensor" not in have:
        # a constant default: no rewrite of the table, old rows read as this sensor
        db.execute(f"ALTER TABLE alerts ADD COLUMN sensor TEXT NOT NULL DEFAULT '{sensor}'")
    have = _columns(db, "alerts")
    for col in ("tuple_key", "flow_ref"):  # version 2: correlation (rows before it stay unlinked)
        if col not in have:
            db.execute(f"ALTER TABLE alerts ADD COLUMN {col} INTEGER")
    if "refs" not in _columns(db, "signatures"):
        db.execute("ALTER TABLE signatures ADD COLUMN refs TEXT")
    db.execute("DROP VIEW IF EXISTS alerts_v")  # made again (INDEXES) with every column
    db.execute("DROP VIEW IF EXISTS flows_v")  # made again (_schema) with every column
    # unique keys made before the sensor column: made again with it
    for index in ("alerts_u2_key", "alerts_by2_key", "alerts_replay"):
        cols = _index_columns(db, index)
        if cols and cols[0] != "sensor":
            db.execute(f"DROP INDEX {index}")
    if "sensor" not in _columns(db, "flows"):
        # a table constraint cannot be changed in place: copy into the new
        # table (with its id and its key on sensor), then swap
        old = ", ".join(f'"{c}"' if c == "end" else c for c in R.EVE_FLOW_COLUMNS)
        db.execute("DROP INDEX IF EXISTS flows_flow")
        db.execute("ALTER TABLE flows RENAME TO flows_before_sensor")
        db.execute(FLOWS_TABLE)
        db.execute(f"INSERT INTO flows ({old}, sensor) SELECT {old}, ? FROM flows_before_sensor "
                   "ORDER BY rowid", (sensor,))
        db.execute("DROP TABLE flows_before_sensor")
    if "source" not in _columns(db, "flows"):
        # version 3: the canonical flow record's columns, and flow_id
        # nullable (NetFlow has none).  A NOT NULL cannot be dropped in
        # place: the table is copied (ids kept: alerts.flow_ref holds them)
        names = ", ".join(f'"{c}"' for c in _columns_ordered(db, "flows") if c in _FLOWS_V3)
        for index in ("flows_flow", "flows_tuple"):
            db.execute(f"DROP INDEX IF EXISTS {index}")
        db.execute("ALTER TABLE flows RENAME TO flows_before_v3")
        db.execute(FLOWS_TABLE)
        db.execute(f"INSERT INTO flows ({names}) SELECT {names} FROM flows_before_v3 ORDER BY rowid")
        db.execute("DROP TABLE flows_before_v3")
        # rows stored before version 3 are all Suricata's
        db.execute("UPDATE flows SET source = 'eve' WHERE source IS NULL")
    have = _columns(db, "flows")
    for col in ("uid", "history"):  # version 4: Zeek conn.log (rows before it have none)
        if col not in have:
            db.execute(f"ALTER TABLE flows ADD COLUMN {col} TEXT")
    # version 5: alert_count and top_priority are the flows_v view's, counted
    # when asked; the columns go (ALTER TABLE DROP COLUMN: SQLite 3.35)
    for col in R.FLOW_VIEW_COLUMNS:
        if col in _columns(db, "flows"):
            try:
                db.execute(f"ALTER TABLE flows DROP COLUMN {col}")
            except sqlite3.OperationalError as e:
                _log.warning("SQLite %s cannot drop flows.%s (%s): it stays, no longer kept up; "
                             "flows_v has the counts", sqlite3.sqlite_version, col, e)
    if db.execute("SELECT 1 FROM pragma_index_list('flows') WHERE origin = 'u'").fetchone():
        # version 6: the flows key becomes a partial unique index (FLOWS_KEY).
        # A table constraint cannot be dropped in place: the table is copied
        # once (ids kept: alerts.flow_ref holds them), its indexes made again
        # (INDEXES).  The rows were unique under the old key, so they are
        # under the new one.  (Columns the new table has not -- version 5's
        # counts, where an old SQLite could not drop them -- stay behind.)
        for index in ("flows_flow", "flows_tuple", "flows_uid"):
            db.execute(f"DROP INDEX IF EXISTS {index}")
        db.execute("ALTER TABLE flows RENAME TO flows_before_v6")
        db.execute(FLOWS_TABLE)
        new = set(_columns(db, "flows"))
        names = ", ".join(f'"{c}"' for c in _columns_ordered(db, "flows_before_v6") if c in new)
        db.execute(f"INSERT INTO flows ({names}) SELECT {names} FROM flows_before_v6 ORDER BY rowid")
        db.execute("DROP TABLE flows_before_v6")


def _ensure_keys(db: sqlite3.Connection) -> None:
    """Barnyard2 sends an event once per packet record; its reader drops the
    repeats, and this key catches an event resent across a restart.  A
    store that already holds repeats (written before the key existed) keeps
    them and goes without the key (said once at start-up)."""
    try:
        db.execute(_BY2_KEY)
    except sqlite3.IntegrityError:
        _log.warning("the store holds repeated Barnyard2 events from an earlier "
                     "version; no unique key for Barnyard2 events (see README, The SQLite store)")


#: the largest ids before a batch: every id above is the batch's (correlation)
_LAST_IDS = ("SELECT max(id) FROM alerts", "SELECT max(id) FROM flows")

#: how long one write waits for a lock held by another connection
BUSY_TIMEOUT_MS = 5000
#: the writing connection's page cache (KiB): an index insert lands on a page
#: that is in memory far more often than with SQLite's default 2 MiB
#: (BENCHMARKS.md, "SQLite store": 0.77x the time per row with 32 MiB, 0.75x with 64)
WRITER_CACHE_KIB = 32 << 10
#: after a full disk, a probe says "retry" once this much is free again
PROBE_FREE_BYTES = 16 << 20


def rows(item: Enriched, sensor: str = "") -> tuple[list[tuple], list[tuple]]:
    """Alert rows and signature rows for one batch (ingest.sinks.rows)."""
    return R.alert_rows(item, R.sensor_of(item, sensor)), R.signature_rows(item)


def data_fault(e: BaseException) -> bool:
    """Is this error the data's fault (retrying the same rows cannot help)?

    Data: a constraint or trigger refused a row (IntegrityError), a value
    too big (DataError), a value sqlite3 cannot bind (ProgrammingError /
    InterfaceError "Error binding parameter"), a str it cannot encode
    (UnicodeError), an int beyond 64 bits (OverflowError), and ValueError /
    TypeError from building the rows.  Everything else (OperationalError:
    locked, disk full, I/O error, read-only; a corrupt file) is the store
    being down."""
    if isinstance(e, sqlite3.IntegrityError | sqlite3.DataError):
        return True
    if isinstance(e, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return "binding" in str(e)
    if isinstance(e, sqlite3.Error):
        return False
    return isinstance(e, UnicodeError | OverflowError | ValueError | TypeError)


@functools.cache
def native_ok() -> bool:
    """Whether the C writer may be used: not turned off
    (``INGEST_SQLITE_NATIVE=0``), and the C core linked the very SQLite
    library copy that Python's sqlite3 module loaded.  Two copies of SQLite
    in one process, on one file, do not see each other's POSIX locks (SQLite's
    "How To Corrupt An SQLite Database File", 2.2.1): the schema and the
    probes go through sqlite3, the batches through C, so they must be one."""
    if os.environ.get("INGEST_SQLITE_NATIVE", "1") == "0":
        return False
    import _sqlite3
    import ctypes

    try:
        fn = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion
    except (OSError, AttributeError):  # built in and hidden: another copy
        return False
    return bool(ctypes.cast(fn, ctypes.c_void_p).value == lib.ingest_sqlite_lib_ident())


def native_version() -> str:
    """The SQLite library the C writer linked (``3.40.1``)."""
    return ffi.string(lib.ingest_sqlite_version()).decode()


#: SQLite's primary result codes that mean the rows, not the store
_DATA_CODES = {sqlite3.SQLITE_CONSTRAINT: sqlite3.IntegrityError, sqlite3.SQLITE_TOOBIG: sqlite3.DataError,
               sqlite3.SQLITE_MISMATCH: sqlite3.IntegrityError, sqlite3.SQLITE_RANGE: sqlite3.DataError}


class _NativeDB:
    """A connection of the C writer (csrc/sqlite.c), on the sink's thread."""

    def __init__(self, path: str, busy_ms: int) -> None:
        out = ffi.new("struct ingest_sqlite **")
        rc = lib.ingest_sqlite_open(os.fsencode(path), busy_ms, out)
        self._h = out[0]
        if rc != 0:
            err = self._error(rc)
            self.close()
            raise err

    def _error(self, rc: int) -> BaseException:
        """What failed, as the sqlite3 module would have raised it (same
        classes, ``sqlite_errorcode`` the extended result code): the sink
        tells data from a store that is down the same way for both paths."""
        if rc == lib.INGEST_EINVAL:
            return ValueError("sqlite: invalid columns or statement")
        if rc != lib.INGEST_ESQLITE:
            return OSError(f"sqlite: status {rc}")
        code = int(lib.ingest_sqlite_errcode(self._h))
        msg = ffi.string(lib.ingest_sqlite_errmsg(self._h)).decode("utf-8", "replace")
        e = _DATA_CODES.get(code & 0xFF, sqlite3.OperationalError)(msg)
        e.sqlite_errorcode = code  # type: ignore[attr-defined]
        return e

    def exec(self, sql: str) -> None:
        rc = lib.ingest_sqlite_exec(self._h, sql.encode())
        if rc != 0:
            raise self._error(rc)

    def query_int(self, sql: str) -> int | None:
        """The first column of the first row, or None (no row, NULL)."""
        out = ffi.new("int64_t *")
        rc = lib.ingest_sqlite_query_int64(self._h, sql.encode(), out)
        if rc < 0:
            raise self._error(rc)
        return int(out[0]) if rc else None

    def prepare(self, sql: str) -> int:
        rc = lib.ingest_sqlite_prepare(self._h, sql.encode())
        if rc < 0:
            raise self._error(rc)
        return int(rc)

    def busy_timeout(self, ms: int) -> None:
        rc = lib.ingest_sqlite_busy_timeout(self._h, ms)
        if rc != 0:
            raise self._error(rc)

    def insert(self, stmt: int, columns: Sequence[R.Column], types: Sequence[str]) -> int:
        """Every row of the columns through statement ``stmt``: rows changed."""
        d = describe(columns, types)
        bad = ffi.new("uint32_t *")
        rc = lib.ingest_sqlite_insert(self._h, stmt, d.cols, d.ncols, d.nrows, bad)
        if rc < 0:
            raise self._error(rc)
        return int(rc)

    def in_transaction(self) -> bool:
        return not lib.ingest_sqlite_autocommit(self._h)

    def close(self) -> None:
        h, self._h = self._h, ffi.NULL
        if h != ffi.NULL:
            lib.ingest_sqlite_close(h)


def _types(columns: Sequence[R.Column]) -> list[str]:
    return ["int8" if isinstance(c, R.IntColumn) else "text" for c in columns]


_SIG_TEXT = frozenset({3, 4})  # msg, refs
_FLOW_TEXT = frozenset(i for i, c in enumerate(R.FLOW_COLUMNS) if c in R.FLOW_TEXT)


class SqliteSink(OnThreadSink):
    """The embedded store.  ``sensor`` names this process's sensor (rows of
    batches that carry none; default: the host name)."""

    def __init__(self, path: str, *, allow_foreign: bool = False, sensor: str | None = None,
                 correlate_slack: float = correlate.DEFAULT_SLACK_S) -> None:
        self.name = f"sqlite:{path}"
        self.slack_us = correlate.slack_us(correlate_slack)
        self.path = path
        self.allow_foreign = allow_foreign
        self.sensor = check_sensor_name(sensor) if sensor else default_sensor_name()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-sqlite")
        self._db: sqlite3.Connection | None = None
        self._native: _NativeDB | None = None  # the C writer's connection (None: executemany)
        self._stmts: tuple[int, int, int, int] = (-1, -1, -1, -1)  # signatures, alerts, chosen alerts, flows
        self._insert_linked = insert_linked(self.slack_us)
        self._recent = RecentFlows(self.slack_us)  # the C writer's recent flows (ingest.flows.recent)
        self._flows_seen = False  # the store holds a flow with a key (see _have_flows)
        self._last_error: BaseException | None = None  # why the last write failed
        self._pool.submit(self._open).result()

    def _open(self) -> None:
        # Create the database ourselves, 0640 and never through a symlink
        # (sqlite3 would follow one and use the umask); SQLite gives its -wal
        # and -shm files the database file's mode.  The store, and any -wal,
        # -shm or -journal file already beside it, must be ours alone
        # (ingest.safefile): SQLite would otherwise trust another user's WAL.
        # (the store first, so a problem of them all is reported as the store's)
        for name in (self.path, *(self.path + x for x in ("-wal", "-shm", "-journal"))):
            check_output(name, what="SQLite store" if name == self.path else "SQLite store file",
                         allow_foreign=self.allow_foreign)
        fd = open_output(self.path, what="SQLite store", mode=0o640, flags=os.O_RDWR,
                         allow_foreign=self.allow_foreign)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"SQLite store {self.path} is not a regular file")
        finally:
            os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if not native_ok():  # this connection writes the batches
                db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            self._schema(db)
        except sqlite3.Error as e:
            # a file that is no SQLite database (an alerts.json named by
            # mistake), a schema that is not ours, a store locked at start:
            # a start-up error that names the store, never a traceback
            db.close()
            raise ValueError(f"SQLite store {self.path}: cannot be opened: {e}") from e
        except BaseException:
            db.close()
            raise
        self._db = db
        if native_ok():
            try:
                nd = _NativeDB(self.path, BUSY_TIMEOUT_MS)
            except sqlite3.Error as e:
                db.close()
                self._db = None
                raise ValueError(f"SQLite store {self.path}: cannot be opened: {e}") from e
            try:
                nd.exec("PRAGMA synchronous=NORMAL")  # per connection, like the sqlite3 one's
                nd.exec(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
                self._stmts = (nd.prepare(_INSERT_SIG), nd.prepare(_INSERT),
                               nd.prepare(insert_chosen(self.slack_us)), nd.prepare(_INSERT_FLOW))
            except BaseException:
                nd.close()
                db.close()
                self._db = None
                raise
            self._native = nd

    def _busy_timeout(self, ms: int) -> None:
        """(the sink's thread) How long a write waits for another
        connection's lock, on both connections."""
        assert self._db is not None
        self._db.execute(f"PRAGMA busy_timeout={int(ms)}")
        if self._native is not None:
            self._native.busy_timeout(ms)

    def _schema(self, db: sqlite3.Connection) -> None:
        """Create the schema, or migrate an older one, in one transaction;
        refuse a newer one (ValueError)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"SQLite store {self.path}: schema version {version} was written by a "
                             f"newer ingest (this one knows version {SCHEMA_VERSION}); refusing to "
                             "write to it")
        if version == SCHEMA_VERSION:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts_by2_key'").fetchone():
                _ensure_keys(db)  # the repeats it warned about may have been removed since
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts'").fetchone()
            for stmt in (TABLES + FLOWS_TABLE).split(";"):
                if stmt.strip():
                    db.execute(stmt)
            if not fresh:
                _migrate(db, self.sensor)
            for stmt in INDEXES.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute("DROP VIEW IF EXISTS flows_v")  # made again with every column of flows
            db.execute(flows_view(db))
            _ensure_keys(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write(self, alert_rows: list[tuple], sig_rows: list[tuple], flows: list[tuple]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            la, lf = (db.execute(q).fetchone()[0] or 0 for q in _LAST_IDS)
            if sig_rows:
                db.executemany(_INSERT_SIG, sig_rows)
            if flows:  # the batch's flows first: its alerts choose among them too
                db.executemany(_INSERT_FLOW, flows)
                db.execute(correlate.dedupe_flows(flows_after=lf))
            if alert_rows:
                db.executemany(self._insert_linked if self._have_flows(lambda: db.execute(_ANY_FLOW).fetchone() is not None) else _INSERT, alert_rows)
            if flows:
                for stmt in self._relink(la, lf):
                    db.execute(stmt)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _have_flows(self, probe: Callable[[], bool]) -> bool:
        """Does the store hold a flow with a 5-tuple key (``probe``: one
        index probe, in the batch's transaction)?  Until it does, alerts go
        in through the INSERT without the flow lookup (a store of Snort
        alerts alone); once it does, the answer is kept: the linked INSERT
        is right whatever the store holds, it only costs the lookup."""
        if not self._flows_seen:
            self._flows_seen = probe()
        return self._flows_seen

    def _relink(self, la: int, lf: int) -> list[str]:
        """The stored alerts in the window of the batch's new flows, linked
        again (ingest.flows.correlate.statements): the batch's own alerts
        chose their flow in their INSERT."""
        return correlate.statements(postgresql=False, slack_us=self.slack_us, alerts_after=la, flows_after=lf,
                                    new_alerts=False)

    def _write_native(self, item: Enriched, sensor: str) -> None:
        """One batch through the C writer, in one transaction.  Every column
        is built before BEGIN: a value that cannot be stored fails before
        anything is written."""
        nd = self._native
        assert nd is not None
        alerts = R.alert_arrays(item, sensor) if len(item.batch.alerts) else None
        sig_rows, flow_rows = R.signature_rows(item), R.flow_rows(item, sensor)
        sigs = R.columns_of_rows(sig_rows, len(R.SIGNATURE_COLUMNS), _SIG_TEXT) if sig_rows else None
        flows = R.columns_of_rows(flow_rows, len(R.FLOW_COLUMNS), _FLOW_TEXT) if flow_rows else None
        fb = R.flow_records(item)
        records = R.flow_record_arrays(fb, sensor) if fb is not None else None
        st_sig, st_alert, st_chosen, st_flow = self._stmts
        new_flows = flows is not None or records is not None
        recent = self._recent
        nd.exec("BEGIN")
        try:
            la, lf = (nd.query_int(q) or 0 for q in _LAST_IDS)
            # link while the store holds a flow with a key, or the batch brings flows
            linking = new_flows or self._have_flows(lambda: nd.query_int(_ANY_FLOW) is not None)
            if linking:  # (another connection's commit since our last batch: made again)
                recent.begin(nd.query_int("PRAGMA data_version") or 0, lambda: nd.query_int(_FLOW_SPAN) or 0,
                             self._flow_keys)
            if sigs is not None:
                nd.insert(st_sig, sigs, _types(sigs))
            # the batch's flows first: its alerts choose among them too
            if flows is not None:  # EVE flow events: an engine flow id, replaced when seen again
                nd.insert(st_flow, flows, _types(flows))
                recent.other_flows(_int(flows, R.FLOW_COLUMNS, "tuple_key")[0])
            if records is not None:
                self._insert_records(nd, st_flow, records, lf if flows is None else None)
            if new_flows:
                nd.exec(correlate.dedupe_flows(flows_after=lf))
            if alerts is not None:
                if linking:
                    alerts = [*alerts, *self._chosen(alerts)]
                    nd.insert(st_chosen, alerts, _types(alerts))
                else:
                    nd.insert(st_alert, alerts, _types(alerts))
            if new_flows:
                nd.exec(";\n".join(self._relink(la, lf)))
            nd.exec("COMMIT")
        except BaseException:
            recent.invalidate()  # (the batch's flows may not be in the store)
            if nd.in_transaction():
                try:
                    nd.exec("ROLLBACK")
                except sqlite3.Error:
                    pass  # the connection rolled back already (SQLITE_FULL, an I/O error)
            raise

    def _flow_keys(self) -> Iterator[np.ndarray]:
        """The keys of every flow in the store, 65,536 at a time (the
        flows_tuple index, read on the sqlite3 connection: it sees at least
        what the batch's transaction sees)."""
        assert self._db is not None
        cur = self._db.execute(_FLOW_KEYS)
        while rows := cur.fetchmany(65536):
            yield np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def _insert_records(self, nd: _NativeDB, stmt: int, records: list[R.Column], before: int | None) -> None:
        """Canonical flow records into flows; those without an engine flow
        id become recent flows when their ids are sure: ``before`` (the
        largest id before them, None: not known) + 1, 2, ... in order, as
        SQLite gives a table's new rows when none is replaced."""
        changed = nd.insert(stmt, records, _types(records))
        keys, _ = _int(records, R.FLOW_COLUMNS, "tuple_key")
        _, fid_valid = _int(records, R.FLOW_COLUMNS, "flow_id")
        top = nd.query_int(_MAX_FLOW) or 0
        n = len(keys)
        if before is None or fid_valid.any() or changed != n or top - before != n:
            self._recent.other_flows(keys)
            return
        start, start_ok = _int(records, R.FLOW_COLUMNS, "start_us")
        end, end_ok = _int(records, R.FLOW_COLUMNS, "end_us")
        vlan, vlan_ok = _int(records, R.FLOW_COLUMNS, "vlan")
        self._recent.add(np.arange(before + 1, top + 1, dtype=np.int64), keys, start, start_ok, end, end_ok,
                         vlan, vlan_ok)

    def _chosen(self, alerts: list[R.Column]) -> list[R.Column]:
        """The two columns of insert_chosen: each alert's flow chosen among
        the recent flows, and whether the store must choose instead."""
        keys, key_ok = _int(alerts, R.ALERT_COLUMNS, "tuple_key")
        ts, _ = _int(alerts, R.ALERT_COLUMNS, "ts_us")
        vlan, vlan_ok = _int(alerts, R.ALERT_COLUMNS, "vlan")
        ref, ask = self._recent.choose(np.where(key_ok, keys, 0), ts, vlan, vlan_ok)
        return [R.IntColumn(ref, ref >= 0), R.IntColumn(np.ones(len(ask), np.int64), ask)]

    def _write_item(self, item: Enriched) -> None:
        try:
            sensor = R.sensor_of(item, self.sensor)
            if self._native is not None:
                self._write_native(item, sensor)
            else:
                fb = R.flow_records(item)
                self._write(R.alert_rows(item, sensor), R.signature_rows(item),
                            R.flow_rows(item, sensor) + (R.flow_record_rows(fb, sensor) if fb is not None else []))
        except Exception as e:
            if data_fault(e):
                raise DataError(f"{type(e).__name__}: {e}") from e
            raise  # locked, disk full, I/O error ...: down, retried with the same batch
    def _probe(self) -> bool:
        """Cheap check, after a failed write, that a write could succeed now:
        the write lock can be taken at once (a store locked by another
        connection), and after a full disk, the file system has room again.
        Other failures (I/O errors, a read-only store) are not probed: the
        runtime's back-off decides when to retry them."""
        db, err = self._db, self._last_error
        if db is None:
            return False
        code = getattr(err, "sqlite_errorcode", None)
        if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL):
            return False
        if code == sqlite3.SQLITE_FULL:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
            if st.f_bavail * st.f_frsize < PROBE_FREE_BYTES:
                return False
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock, released at once
            db.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    async def aclose(self) -> None:
        def close() -> None:
            if self._native is not None:
                self._native.close()
                self._native = None
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown()
