"""``postgresql://...``: the central store, in PostgreSQL (psycopg 3).

The same tables as the SQLite store (``signatures``, ``alerts``, ``flows``,
the ``alerts_v`` view), the same columns and the same unique keys, every
one starting with the sensor; the rows come from the same builder
(:mod:`ingest.sinks.rows`), so the two stores hold the same rows for the
same input.  psycopg is an optional extra (``pip install
'ingest[postgresql]'``), imported only when a ``postgresql:`` URL is used.

Writing.  One transaction per batch: the batch's new signatures (upserted
in key order, so concurrent writers never deadlock on them), its alerts as
one binary ``COPY`` (the stream is written by the C core from the column
arrays: no Python object per row), its flows through a temporary table and
one ``INSERT ... ON CONFLICT DO UPDATE`` (a flow seen again replaces its
row, as in SQLite).  A batch holding a record the store already has (a
re-delivered NATS message, a file re-read after a crash) makes the COPY
fail on a unique key; that batch is written again through a temporary
table and ``INSERT ... ON CONFLICT DO NOTHING``, so the store keeps each
record once.

Commit outcome.  If the connection breaks while the transaction commits,
the commit may or may not have happened.  The transaction id is read at
its start (``txid_current()``); the retry of the same batch first asks
``txid_status()`` on a new connection and writes nothing if it committed,
so even alerts without a unique key (Snort's socket, EVE sockets) are
never doubled by a database restart.

Errors (the runtime's contract, :class:`ingest.sinks.errors.DataError`):
the data's fault is a value or row PostgreSQL refuses (SQLSTATE classes 22
data exception and 23 integrity constraint, a trigger's ``RAISE
EXCEPTION``) or one that cannot be encoded; everything else (connection
refused or lost, a lock or statement timeout, a read-only standby, a full
disk, a missing privilege) is the store being down, retried with back-off;
``probe`` reconnects (itself backing off) after a lost connection.

Schema.  Created at start-up if absent, in one transaction under an
advisory lock (collectors starting together), and versioned: table
``schema_version`` holds the version (the same number as the SQLite
store's ``user_version``).  A database whose schema is newer than this
ingest knows, or that has an ``alerts`` table ingest did not create, is
refused at start-up (exit 2), as is a database that cannot be reached.

Credentials come by URL (``postgresql://user:password@host/db``) or by
file (libpq's ``passfile`` URL parameter, ``PGPASSFILE``, ``~/.pgpass``;
``PGPASSWORD``); TLS by libpq's parameters (``sslmode=verify-full``,
``sslrootcert=...``).  The URL is shown everywhere without its password
(the sink's ``name``: log lines, stats keys), and error texts are cleaned
of it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn
from urllib.parse import unquote

import numpy as np

from ..config import check_sensor_name, default_sensor_name
from ..flows import correlate
from ..flows import record as FR
from ..mapping import Enriched
from . import rows as R
from .errors import DataError

#: the store's schema version (schema_version table); the SQLite store's
#: user_version has the same meaning
SCHEMA_VERSION = 6

#: PostgreSQL types of rows.ALERT_COLUMNS, in order (the binary COPY needs them exact)
ALERT_TYPES = ("int8", "text", "text", "int8", "int8", "int8", "int8", "int8", "int8", "text",
               "int8", "text", "int4", "int4", "text", "int4", "text", "int4", "int4", "int4",
               "int4", "int8", "text", "int8", "text", "int8")
#: PostgreSQL types of rows.FLOW_COLUMNS (ingest.eve.flow_row gives any signed 64-bit integer)
FLOW_TYPES = ("int8", "text", "text", "int8", "text", "int8", "text", "text", "text", "text",
              "int8", "int8", "int8", "int8", "int8", "int8", "text", "text", "int8", "text", "int8",
              # the canonical flow record's (schema version 3)
              "text", "int4", "int4", "int4", "int4", "int4", "int4", "int4", "text", "int8", "int8",
              # schema version 4: Zeek's uid and history
              "text", "text")
assert len(ALERT_TYPES) == len(R.ALERT_COLUMNS) and len(FLOW_TYPES) == len(R.FLOW_COLUMNS)

_SQL_TYPE = {"int8": "bigint", "int4": "integer", "text": "text"}
#: NOT NULL columns per table, as in the SQLite store (alerts.flow_id is
#: NULL where the source has none; so is flows.flow_id for NetFlow/IPFIX)
_ALERT_NOT_NULL = frozenset({"ts_us", "timestamp", "source", "gid", "sid", "rev", "sensor"})
_FLOW_NOT_NULL = frozenset({"event_type", "sensor"})
#: schema version 3: the canonical flow record's columns (appended to an
#: older table) and flow_id nullable; every statement a no-op when done
_MIGRATE_FLOWS = (
    "ALTER TABLE flows ALTER COLUMN flow_id DROP NOT NULL",
    *(f"ALTER TABLE flows ADD COLUMN IF NOT EXISTS {c} {_SQL_TYPE[t]}"
      for c, t in zip(R.FLOW_COLUMNS, FLOW_TYPES, strict=True)
      if R.FLOW_COLUMNS.index(c) > R.FLOW_COLUMNS.index("tuple_key")),
    "UPDATE flows SET source = 'eve' WHERE source IS NULL",  # every row before version 3
)


def _q(name: str) -> str:
    return f'"{name}"' if name == "end" else name


def _coldefs(names: tuple[str, ...], types: tuple[str, ...], not_null: frozenset[str]) -> str:
    return ", ".join(f"{_q(c)} {_SQL_TYPE[t]}{' NOT NULL' if c in not_null else ''}"
                     for c, t in zip(names, types, strict=True))


ALERT_NAMES = ", ".join(R.ALERT_COLUMNS)
FLOW_NAMES = ", ".join(_q(c) for c in R.FLOW_COLUMNS)

#: the schema, statement by statement (the SQLite store's, in PostgreSQL's
#: types: u32 engine fields need bigint; text stays text so the stores agree)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
    "applied_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS signatures (gid bigint NOT NULL, sid bigint NOT NULL, "
    "rev bigint NOT NULL, msg text, refs text, PRIMARY KEY (gid, sid, rev))",
    f"CREATE TABLE IF NOT EXISTS alerts (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
    f"{_coldefs(R.ALERT_COLUMNS, ALERT_TYPES, _ALERT_NOT_NULL)}, flow_ref bigint)",
    f"CREATE TABLE IF NOT EXISTS flows (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
    f"{_coldefs(R.FLOW_COLUMNS, FLOW_TYPES, _FLOW_NOT_NULL)})",
    "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts_us)",
    "CREATE INDEX IF NOT EXISTS alerts_sig ON alerts (gid, sid)",
    "CREATE INDEX IF NOT EXISTS alerts_flow ON alerts (flow_id) WHERE flow_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS flows_flow ON flows (flow_id)",
    # version 2: correlation (ingest.flows.correlate); a version-1 store gets the columns
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS tuple_key bigint",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS flow_ref bigint",
    "ALTER TABLE flows ADD COLUMN IF NOT EXISTS tuple_key bigint",
    *_MIGRATE_FLOWS,
    # version 5: alert_count and top_priority are the flows_v view's, counted
    # when asked from alerts (flow_ref), no longer columns kept in every batch
    "DROP VIEW IF EXISTS flows_v",  # made again below with every column of flows
    *(f"ALTER TABLE flows DROP COLUMN IF EXISTS {c}" for c in R.FLOW_VIEW_COLUMNS),
    "CREATE INDEX IF NOT EXISTS alerts_tuple ON alerts (tuple_key, ts_us) WHERE tuple_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS alerts_flow_ref ON alerts (flow_ref) WHERE flow_ref IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS flows_tuple ON flows (tuple_key, start_us) WHERE tuple_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS flows_uid ON flows (uid) WHERE uid IS NOT NULL",
    # version 6: the flows key only for rows with an engine flow id, as the
    # SQLite store's (ingest.sinks.sqlite.FLOWS_KEY: NetFlow/IPFIX records
    # never conflicted on it, but each paid an index entry); an older
    # store's constraint of that name is dropped first (no table rewrite)
    "ALTER TABLE flows DROP CONSTRAINT IF EXISTS flows_key",
    "CREATE UNIQUE INDEX IF NOT EXISTS flows_key ON flows (sensor, flow_id, event_type, src_ip, src_port) "
    "WHERE flow_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_u2_key ON alerts "
    "(sensor, sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'unified2'",
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_by2_key ON alerts "
    "(sensor, sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'barnyard2'",
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_replay ON alerts (sensor, replay_key) "
    "WHERE replay_key IS NOT NULL",
    "DROP VIEW IF EXISTS alerts_v",  # made again with every column of alerts
    "CREATE VIEW alerts_v AS SELECT a.*, s.msg AS signature, s.refs AS refs FROM alerts a "
    "LEFT JOIN signatures s ON s.gid = a.gid AND s.sid = a.sid AND s.rev = a.rev",
    f"CREATE VIEW flows_v AS SELECT f.*, {correlate.FLOW_AGGREGATES} FROM flows f",
    f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION}) ON CONFLICT DO NOTHING",
)
#: one key for every ingest creating its schema at once (pg_advisory_xact_lock)
_SCHEMA_LOCK = 0x696E67657374  # "ingest"
#: serialises the flows and correlation part of concurrent writers' batches
_CORRELATE_LOCK = 0x696E67657375

_COPY_ALERTS = f"COPY alerts ({ALERT_NAMES}) FROM STDIN (FORMAT BINARY)"
# staging for a batch that holds records the store already has
_STAGE_ALERTS = ("CREATE TEMP TABLE IF NOT EXISTS ingest_alerts_in ON COMMIT DELETE ROWS AS "
                 f"SELECT {ALERT_NAMES} FROM alerts WITH NO DATA")
_COPY_ALERTS_IN = f"COPY ingest_alerts_in ({ALERT_NAMES}) FROM STDIN (FORMAT BINARY)"
_MERGE_ALERTS = (f"INSERT INTO alerts ({ALERT_NAMES}) SELECT {ALERT_NAMES} FROM ingest_alerts_in "
                 "ON CONFLICT DO NOTHING")
_STAGE_FLOWS = ("CREATE TEMP TABLE IF NOT EXISTS ingest_flows_in ON COMMIT DELETE ROWS AS "
                f"SELECT {FLOW_NAMES} FROM flows WITH NO DATA")
_COPY_FLOWS_IN = f"COPY ingest_flows_in ({FLOW_NAMES}) FROM STDIN (FORMAT BINARY)"
_MERGE_FLOWS = (f"INSERT INTO flows ({FLOW_NAMES}) SELECT {FLOW_NAMES} FROM ingest_flows_in "
                "ON CONFLICT (sensor, flow_id, event_type, src_ip, src_port) WHERE flow_id IS NOT NULL DO UPDATE SET "
                + ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in R.FLOW_COLUMNS))
# as the SQLite store: msg is first come; references arriving later are added
_INSERT_SIG = ("INSERT INTO signatures (gid, sid, rev, msg, refs) VALUES (%s, %s, %s, %s, %s) "
               "ON CONFLICT (gid, sid, rev) DO UPDATE SET refs = EXCLUDED.refs "
               "WHERE EXCLUDED.refs IS NOT NULL AND signatures.refs IS DISTINCT FROM EXCLUDED.refs")

#: libpq connection settings used unless the URL gives its own
CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "ingest",
    # a peer that vanishes without a reset is noticed within about 30 s
    "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
#: per session: a write waits this long for a lock, or this long in all,
#: before it fails (and is retried as the store being down)
SESSION_SETTINGS = ("SET lock_timeout = '10s'", "SET statement_timeout = '120s'")
#: probe: reconnect attempts back off from PROBE_FIRST to PROBE_MAX seconds
PROBE_FIRST, PROBE_MAX = 0.25, 5.0
#: signatures remembered as stored (a batch writes only new ones)
SIG_CACHE_MAX = 1 << 20
#: connections (each writing one batch at a time) unless the URL says writers=N
WRITERS = 2
WRITERS_MAX = 16
#: writes whose commit is in doubt remembered at most (their retries ask the server)
UNSURE_MAX = 64

#: URL query parameters whose values are secrets (shown as ***)
_SECRET_PARAMS = {"password", "sslpassword"}


def redact(url: str) -> str:
    """url without its secrets: the password of the user part and the
    values of ``password``/``sslpassword`` parameters become ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    path, q, query = tail.partition("?")
    if q:
        parts = []
        for p in query.split("&"):
            key, eq, _ = p.partition("=")
            parts.append(f"{key}=***" if eq and unquote(key).lower() in _SECRET_PARAMS else p)
        query = "&".join(parts)
    return f"{scheme}://{netloc}{path}{q}{query}"


def _writers_param(url: str, name: str) -> tuple[str, int]:
    """url without ingest's own ``writers=N`` query parameter (libpq would
    refuse it), and N (WRITERS if absent).  ValueError for a bad N."""
    base, q, query = url.partition("?")
    if not q:
        return url, WRITERS
    keep, writers = [], WRITERS
    for p in query.split("&"):
        key, _, value = p.partition("=")
        if unquote(key) != "writers":
            keep.append(p)
            continue
        try:
            writers = int(unquote(value))
        except ValueError:
            writers = 0
        if not 1 <= writers <= WRITERS_MAX:
            raise ValueError(f"PostgreSQL store {name}: writers must be an integer from 1 to {WRITERS_MAX}, "
                             f"not {unquote(value)!r}")
    return (f"{base}?{'&'.join(keep)}" if keep else base), writers


def _secrets(url: str, params: dict[str, str]) -> list[str]:
    """Every form in which a secret of url could appear in a message."""
    out = {url}
    for key in _SECRET_PARAMS:
        v = params.get(key)
        if v:
            out.add(v)
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
        raw = netloc.rsplit("@", 1)[0].split(":", 1)[1]
        out.update({raw, unquote(raw)})
    return sorted((s for s in out if s), key=len, reverse=True)


def _clean_text(e: BaseException | str, secrets: list[str], name: str) -> str:
    """An error's text, one line, with every secret replaced (the URL by its
    redacted form ``name``, anything else by ``***``)."""
    text = str(e).strip()
    for s in secrets:
        text = text.replace(s, name if s.startswith(("postgres://", "postgresql://")) else "***")
    return " ".join(text.split())


def query(url: str, sql: str, params: tuple) -> list[dict]:
    """The rows of one query (``ingest query``), as dicts, in a read-only
    transaction.  ValueError when the database cannot be reached or holds
    no ingest store (exit 2), RuntimeError when reading it failed (exit 1);
    both messages free of the URL's secrets."""
    psycopg = _import_psycopg()
    from psycopg.rows import dict_row

    name = redact(url)
    try:
        params_d = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as e:
        raise ValueError(f"PostgreSQL store {name}: {_clean_text(e, _secrets(url, {}), name)}") from None
    secrets = _secrets(url, params_d)
    try:
        conn = psycopg.connect(**{**CONNECT_DEFAULTS, **params_d})
    except psycopg.Error as e:
        raise ValueError(f"PostgreSQL store {name}: cannot connect: {_clean_text(e, secrets, name)}") from None
    try:
        conn.read_only = True
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as e:
        raise ValueError(f"PostgreSQL store {name}: not an ingest store: "
                         f"{_clean_text(e, secrets, name)}") from None
    except psycopg.Error as e:
        raise RuntimeError(f"PostgreSQL store {name}: {_clean_text(e, secrets, name)}") from None
    finally:
        conn.close()


class PostgresDown(Exception):
    """The store is down (connection refused or lost, a timeout, ...): the
    runtime retries the batch.  The message is free of credentials."""


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ValueError("a postgresql:// sink needs psycopg 3: pip install 'ingest[postgresql]' "
                         "(or pip install 'psycopg[binary]')") from None
    return psycopg


def data_fault(e: BaseException) -> bool:
    """Is this error the data's fault (retrying the same rows cannot help)?"""
    psycopg = _import_psycopg()
    if isinstance(e, psycopg.DataError | psycopg.IntegrityError):
        # the server's classes 22 and 23, and what psycopg refuses to send
        # before the server sees it (a NUL in a text, a value its type
        # cannot hold): those have no SQLSTATE, and retrying them would stall
        return True
    if isinstance(e, psycopg.Error):
        state = getattr(e, "sqlstate", None) or ""
        # 22 data exception, 23 integrity constraint, P0001 a trigger's RAISE EXCEPTION
        return state[:2] in ("22", "23") or state == "P0001"
    return isinstance(e, UnicodeError | OverflowError | ValueError | TypeError)


class PostgresSink:
    """``postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]``
    (libpq's URL; ``postgres://`` too).  ``sensor`` names this process's
    sensor (rows of batches that carry none; default: the host name).

    ``writers`` connections (the URL's ``writers=N``, default
    WRITERS), each on a thread of its own, each writing one batch at a time:
    the runtime writes up to that many batches at once
    (``concurrent_writes``), so one batch's rows are built and sent while
    another's transaction runs (its correlation, its commit's fsync) and
    the server's backends work side by side.  A batch is one transaction on
    one connection, whichever; the runtime still acknowledges batches in
    the order it took them.  ``writers=1``: one transaction at a time."""

    def __init__(self, url: str, *, sensor: str | None = None,
                 correlate_slack: float = correlate.DEFAULT_SLACK_S) -> None:
        self._psycopg = _import_psycopg()
        self.slack_us = correlate.slack_us(correlate_slack)
        self.name = redact(url)
        self.sensor = check_sensor_name(sensor) if sensor else default_sensor_name()
        self._secret_list = _secrets(url, {})
        url, writers = _writers_param(url, self.name)
        try:
            params = self._psycopg.conninfo.conninfo_to_dict(url)
        except self._psycopg.Error as e:
            raise ValueError(f"PostgreSQL store {self.name}: {self._clean(e)}") from None
        self._secret_list = _secrets(url, params)
        self._params = {**CONNECT_DEFAULTS, **params}
        #: how many batches the runtime may write at once (one per connection)
        self.concurrent_writes = writers
        self._sigs: dict[tuple[int, int, int], str | None] = {}  # committed signatures -> refs
        self._sig_lock = threading.Lock()
        #: writes whose commit may have happened (the connection broke in it):
        #: id(item) -> (item, transaction id); the retry of that item asks first
        self._unsure: dict[int, tuple[Enriched, int]] = {}
        self._last_error: BaseException | None = None
        self._lost = False  # the last failure lost a connection (what the probe waits out)
        self._next_connect = 0.0
        self._connect_wait = PROBE_FIRST
        self._writers = [_Writer(self, i) for i in range(writers)]
        self._idle = list(reversed(self._writers))  # writers free for a write (the first one first)
        self._waiters: list[asyncio.Future] = []
        try:
            first = self._writers[0]
            first.pool.submit(first.open).result()  # connects and makes (or checks) the schema
            for w in self._writers[1:]:
                w.pool.submit(w.open_more).result()
        except BaseException:
            for w in self._writers:
                w.pool.submit(w.drop).result()
                w.pool.shutdown()
            raise

    def _clean(self, e: BaseException | str) -> str:
        """An error's text, one line, without any secret of the URL."""
        return _clean_text(e, self._secret_list, self.name)

    # ---- state the writers share (any thread) ------------------------------------
    def _take_unsure(self, item: Enriched) -> int | None:
        with self._sig_lock:
            got = self._unsure.pop(id(item), None)
        return got[1] if got is not None and got[0] is item else None

    def _put_unsure(self, item: Enriched, xid: int) -> None:
        with self._sig_lock:
            while len(self._unsure) >= UNSURE_MAX:  # batches given up for good: the oldest go
                del self._unsure[next(iter(self._unsure))]
            self._unsure[id(item)] = (item, xid)

    def _sig_new(self, row: tuple) -> bool:
        key = row[:3]
        with self._sig_lock:
            if key not in self._sigs:
                return True
            refs = row[4]
            return refs is not None and self._sigs[key] != refs

    def _remember(self, sig_rows: list[tuple]) -> None:
        with self._sig_lock:
            if len(self._sigs) + len(sig_rows) > SIG_CACHE_MAX:
                self._sigs.clear()
            for g, s, r, _msg, refs in sig_rows:
                if refs is not None or (g, s, r) not in self._sigs:
                    self._sigs[(g, s, r)] = refs

    # ---- the Sink protocol (on the event loop) ------------------------------------
    async def _writer(self) -> _Writer:
        """A writer free for one write (waits while every one is busy)."""
        if self._idle:
            return self._idle.pop()
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return await fut  # type: ignore[no-any-return]

    def _free(self, w: _Writer) -> None:
        while self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(w)
                return
        self._idle.append(w)

    async def _on(self, fn: Any, *args: Any) -> Any:
        w = await self._writer()
        try:
            fut = asyncio.get_running_loop().run_in_executor(w.pool, fn(w), *args)
        except BaseException:
            self._free(w)
            raise
        # the writer is free again when its thread is (not when a cancelled caller stops waiting)
        fut.add_done_callback(lambda _: self._free(w))
        return await fut

    async def write(self, item: Enriched) -> None:
        try:
            await self._on(lambda w: w.write_item, item)
        except BaseException as e:
            self._last_error = e
            raise

    async def probe(self) -> bool:
        return bool(await self._on(lambda w: w.probe))

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        for w in self._writers:
            await loop.run_in_executor(w.pool, w.drop)
            w.pool.shutdown()


class _Writer:
    """One connection of a PostgresSink, used only from its own thread
    (``pool``), writing one batch at a time."""

    def __init__(self, owner: PostgresSink, index: int) -> None:
        self.owner = owner
        self._psycopg = owner._psycopg
        self._params = owner._params
        self.name = owner.name
        self.sensor = owner.sensor
        self.slack_us = owner.slack_us
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"ingest-postgresql-{index}")
        self._conn: Any = None
        self._staged = False  # the temporary tables exist on this connection
        self._xid: int | None = None  # the transaction being written

    # ---- plumbing (all on the writer's thread) --------------------------------
    def _clean(self, e: BaseException | str) -> str:
        return self.owner._clean(e)

    def _connect(self) -> Any:
        conn = self._psycopg.connect(autocommit=False, **self._params)
        try:
            for stmt in SESSION_SETTINGS:
                conn.execute(stmt)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._staged = False
        return conn

    def open(self) -> None:
        """Connect and make (or check) the schema; ValueError (a start-up
        error, exit 2) when the database cannot be reached or is no store
        of this version."""
        try:
            self._conn = self._connect()
        except self._psycopg.Error as e:
            raise ValueError(f"PostgreSQL store {self.name}: cannot connect: {self._clean(e)}") from None
        try:
            self._schema(self._conn)
        except ValueError:
            self.drop()
            raise
        except self._psycopg.Error as e:
            self.drop()
            raise ValueError(f"PostgreSQL store {self.name}: cannot create the schema: "
                             f"{self._clean(e)}") from None

    def _schema(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        have_version, have_alerts = cur.execute(
            "SELECT to_regclass('schema_version') IS NOT NULL, to_regclass('alerts') IS NOT NULL").fetchone()
        version = None
        if have_version:
            version = cur.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version is not None and version > SCHEMA_VERSION:
            conn.rollback()
            raise ValueError(f"PostgreSQL store {self.name}: schema version {version} was written by a "
                             f"newer ingest (this one knows version {SCHEMA_VERSION}); refusing to write "
                             "to it")
        if have_alerts and version is None:
            conn.rollback()
            raise ValueError(f"PostgreSQL store {self.name}: has an alerts table but no schema_version: "
                             "not a store ingest created; refusing to write to it")
        if version != SCHEMA_VERSION:
            # (a role that may only write finds the schema made, and never needs CREATE)
            for stmt in SCHEMA:
                cur.execute(stmt)
        conn.commit()

    def open_more(self) -> None:
        """Connect (a writer after the first: the schema is made)."""
        try:
            self._conn = self._connect()
        except self._psycopg.Error as e:
            raise ValueError(f"PostgreSQL store {self.name}: cannot connect: {self._clean(e)}") from None

    def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self.drop()
            try:
                self._conn = conn = self._connect()
            except self._psycopg.Error as e:
                self.owner._lost = True
                raise PostgresDown(f"cannot connect: {self._clean(e)}") from None
        return conn

    # ---- one batch ------------------------------------------------------------
    def write_item(self, item: Enriched) -> None:
        unsure = self.owner._take_unsure(item)
        sensor = R.sensor_of(item, self.sensor)
        try:
            sig_rows = [r for r in R.signature_rows(item) if self.owner._sig_new(r)]
            copy = _encode_alerts(item, sensor)
            flows = _dedupe_flows(R.flow_rows(item, sensor))
            records = _encode_records(item, sensor)
        except Exception as e:  # a value that cannot be encoded: the data's fault
            raise DataError(f"{type(e).__name__}: {self._clean(e)}") from None
        conn = self._connection()
        if unsure is not None and self._committed(conn, item, unsure):
            self.owner._remember(sig_rows)
            return
        self._xid = None
        try:
            try:
                self._transaction(conn, sig_rows, copy, flows, records, staged=False)
            except self._psycopg.errors.UniqueViolation:
                # the store has some of these records already (a re-delivery):
                # only the others are added
                self._rollback(conn)
                self._xid = None
                self._transaction(conn, sig_rows, copy, flows, records, staged=True)
        except Exception as e:
            xid, self._xid = self._xid, None
            self._failed(conn, e, (item, xid) if xid is not None else None)
        self._xid = None
        self.owner._remember(sig_rows)
        self.owner._lost = False

    def _transaction(self, conn: Any, sig_rows: list[tuple], copy: memoryview, flows: list[tuple],
                     records: memoryview | None, *, staged: bool) -> None:
        cur = conn.cursor()
        # Round trips are what a transaction waits on (the server idles in
        # each): the statements that need no parameters and no result in
        # between go together, as one simple query.
        # The transaction id, known before anything is written: if the
        # connection breaks in COMMIT, the retry asks the server what became
        # of it; and the largest ids committed before: every id this batch
        # inserts is above them.
        xid, la, lf = cur.execute("SELECT txid_current(), (SELECT coalesce(max(id), 0) FROM alerts), "
                                  "(SELECT coalesce(max(id), 0) FROM flows)").fetchone()
        self._xid = int(xid)
        if sig_rows:
            cur.executemany(_INSERT_SIG, sig_rows)
        if staged or flows or records is not None:
            self._stage(cur)
        if len(copy) > _EMPTY_COPY:
            with cur.copy(_COPY_ALERTS_IN if staged else _COPY_ALERTS) as cp:
                cp.write(copy)
            if staged:
                cur.execute(_MERGE_ALERTS)
        # Flows and correlation one writer at a time (collectors sharing a
        # durable): a writer correlating after this one commits sees its
        # rows, so an alert and its flow written at once by two collectors
        # are still linked.  Taken after the alerts' COPY (which locks no
        # existing row), so waiting here cannot deadlock with a holder.
        lock = f"SELECT pg_advisory_xact_lock({_CORRELATE_LOCK})"
        link = correlate.statements(postgresql=True, slack_us=self.slack_us, alerts_after=la, flows_after=lf)
        if flows or records is not None:
            link = [correlate.dedupe_flows(flows_after=lf), *link]
        if flows or records is not None:
            cur.execute(lock)
            if flows:  # Suricata's flow events: one tuple each (ingest.eve.flow_row)
                with cur.copy(_COPY_FLOWS_IN) as cp:
                    cp.set_types(FLOW_TYPES)
                    for r in flows:
                        cp.write_row(r)
            if records is not None:  # canonical flow records: binary COPY made in C from the columns
                with cur.copy(_COPY_FLOWS_IN) as cp:
                    cp.write(records)
            cur.execute(";\n".join([_MERGE_FLOWS, *link]))
        else:
            cur.execute(";\n".join([lock, *link]))
        conn.commit()

    def _rollback(self, conn: Any) -> None:
        """Roll back; temporary tables made in that transaction went with it."""
        self._staged = False
        conn.rollback()

    def _stage(self, cur: Any) -> None:
        if not self._staged:
            cur.execute(_STAGE_ALERTS)
            cur.execute(_STAGE_FLOWS)
            self._staged = True

    def _failed(self, conn: Any, e: Exception, unsure: tuple[Enriched, int] | None) -> NoReturn:
        """Raise what e means for the runtime: DataError or PostgresDown.
        ``unsure``: the batch and its transaction id, when a lost connection
        leaves its commit in doubt."""
        if conn.closed or conn.broken:
            self.drop()
            self.owner._lost = True
            # the connection broke inside the transaction: if that was in
            # COMMIT, it may have committed; the retry asks the server first
            if unsure is not None:
                self.owner._put_unsure(*unsure)
            raise PostgresDown(f"connection lost: {self._clean(e)}") from None
        try:
            self._rollback(conn)
        except Exception:
            self.drop()
        if data_fault(e):
            raise DataError(f"{type(e).__name__}: {self._clean(e)}") from None
        raise PostgresDown(f"{type(e).__name__}: {self._clean(e)}") from None

    def _committed(self, conn: Any, item: Enriched, xid: int) -> bool:
        """Did the transaction whose connection broke commit?  PostgresDown
        while the server still has it in progress (its backend has not yet
        noticed the lost connection)."""
        try:
            status = conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()[0]
            conn.rollback()
        except self._psycopg.Error as e:
            self._failed(conn, e, (item, xid))
        if status == "in progress":
            self.owner._put_unsure(item, xid)
            raise PostgresDown(f"the outcome of transaction {xid} is not known yet")
        # "aborted", or None (too old to tell; not this soon after): write it
        return bool(status == "committed")

    def probe(self) -> bool:
        """After a lost connection: can one be made now?  (Attempts back off
        from PROBE_FIRST to PROBE_MAX.)  Other failures (a timeout, a
        read-only server, a refused privilege) are left to the runtime's
        back-off: a working connection says nothing about them."""
        o = self.owner
        if not o._lost:
            return False
        now = time.monotonic()
        if now < o._next_connect:
            return False
        try:
            self._connection()
        except PostgresDown:
            o._next_connect = now + o._connect_wait
            o._connect_wait = min(o._connect_wait * 2, PROBE_MAX)
            return False
        o._connect_wait = PROBE_FIRST
        return True


#: bytes of a COPY stream without rows (header and trailer)
_EMPTY_COPY = 21


def _encode_alerts(item: Enriched, sensor: str) -> memoryview:
    from .pgcopy import encode

    return encode(R.alert_arrays(item, sensor), ALERT_TYPES).data


def _encode_records(item: Enriched, sensor: str) -> memoryview | None:
    """The batch's canonical flow records (ingest.sinks.rows.flow_record_arrays)
    as one binary COPY stream, or None.  As _dedupe_flows: one record per
    flow key (a record with an engine flow id; NetFlow/IPFIX records have
    none and never conflict), the last wins."""
    from .pgcopy import encode

    fb = R.flow_records(item)
    if fb is None:
        return None
    r = fb.records
    if (r["flow_id"] != 0).any():
        keep = np.ones(len(r), bool)
        seen: set[tuple] = set()
        ev = (r["flags"] & FR.FF_BIFLOW) != 0
        keyed = (r["flow_id"] != 0) & ((r["flags"] & FR.FF_ADDRS) != 0) & ((r["flags"] & FR.FF_PORTS) != 0)
        for i in range(len(r) - 1, -1, -1):  # the last of each key wins
            if keyed[i]:
                k = (int(r["flow_id"][i]), bool(ev[i]), r["src_addr"][i].tobytes(), int(r["src_port"][i]))
                keep[i] = k not in seen
                seen.add(k)
        if not keep.all():
            fb = fb.subset(keep)
    return encode(R.flow_record_arrays(fb, sensor), FLOW_TYPES).data


def _dedupe_flows(rows: list[tuple]) -> list[tuple]:
    """One row per flow key (the last wins, as SQLite's INSERT OR REPLACE
    gives): ``ON CONFLICT DO UPDATE`` may not touch a row twice in one
    statement.  Rows with a NULL in the key never conflict (NULLs are
    distinct in both stores) and are all kept."""
    if len(rows) < 2:
        return rows
    last: dict[tuple, int] = {}
    def keyed(r: tuple) -> bool:  # flow_id (NULL for NetFlow), src_ip, src_port
        return r[0] is not None and r[2] is not None and r[3] is not None

    for i, r in enumerate(rows):
        if keyed(r):
            last[(r[0], r[1], r[2], r[3])] = i
    if len(last) == sum(1 for r in rows if keyed(r)):
        return rows
    return [r for i, r in enumerate(rows) if not keyed(r) or last[(r[0], r[1], r[2], r[3])] == i]
