"""``sqlite:PATH``: the embedded default store.

WAL mode, so other processes can query while we ingest; one transaction per
batch (``executemany`` over columns built with numpy, no per-alert Python
beyond the row tuples sqlite3 itself needs); all database work happens on one
dedicated thread so the event loop never waits on disk.

Schema (see README "The SQLite store")::

    signatures(gid, sid, rev, msg, refs)           -- one row per signature seen
    alerts(id, ts_us, timestamp, source, sensor_id, event_id, gid, sid, rev,
           class_id, category, priority, action, proto, ip_ver, src_ip, src_port,
           dest_ip, dest_port, icmp_type, icmp_code, vlan, flow_id, app_name)
    alerts_v                                         -- alerts joined with signatures
    flows(flow_id, event_type, src_ip, ..., start_us, end_us, alerted)
                                                     -- EVE flow/netflow events

Alerts with a replay key (file followers) are stored at most once: a
follower that re-reads after a crash cannot duplicate them.  Flow rows are
keyed by (flow_id, event_type, src_ip, src_port), so re-reading replaces.
Which flows produced a high-priority alert::

    SELECT f.*, count(*) AS alerts, min(a.priority) AS top_priority
    FROM alerts a JOIN flows f ON f.flow_id = a.flow_id
    WHERE a.priority <= 1 GROUP BY f.rowid;
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import batch as B
from ..mapping import Enriched
from ..render import format_addrs
from ..safefile import check_output, open_output
from ..strings import Strings, take
from .errors import DataError

SCHEMA = """
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
    vlan INTEGER, flow_id INTEGER, app_name TEXT
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts_us);
CREATE INDEX IF NOT EXISTS alerts_sig ON alerts (gid, sid);
CREATE INDEX IF NOT EXISTS alerts_flow ON alerts (flow_id) WHERE flow_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS flows (
    flow_id INTEGER NOT NULL,        -- EVE flow_id (as signed 64-bit, like alerts.flow_id)
    event_type TEXT NOT NULL,        -- flow | netflow
    src_ip TEXT, src_port INTEGER, dest_ip TEXT, dest_port INTEGER,
    proto TEXT, app_proto TEXT,
    start TEXT, "end" TEXT,          -- as Suricata wrote them (local time + offset)
    start_us INTEGER, end_us INTEGER, -- the same, microseconds since the epoch, UTC
    pkts_toserver INTEGER, pkts_toclient INTEGER, bytes_toserver INTEGER, bytes_toclient INTEGER,
    state TEXT, reason TEXT, alerted INTEGER,
    UNIQUE (flow_id, event_type, src_ip, src_port)
);
CREATE INDEX IF NOT EXISTS flows_flow ON flows (flow_id);
-- A Unified2 event is identified by (sensor, event_id, time, signature):
-- re-delivery after a crash between commit and bookmark is ignored, so the
-- store holds every Unified2 alert exactly once.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_u2_key ON alerts
    (sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'unified2';
CREATE VIEW IF NOT EXISTS alerts_v AS
    SELECT a.*, s.msg AS signature, s.refs AS refs FROM alerts a
    LEFT JOIN signatures s ON s.gid = a.gid AND s.sid = a.sid AND s.rev = a.rev;
"""
# a signature's references arrive with the maps: a row stored before them
# (or before a reload that added some) gets them when the signature is seen again
_INSERT_SIG = ("INSERT INTO signatures (gid, sid, rev, msg, refs) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (gid, sid, rev) DO UPDATE SET refs = excluded.refs "
               "WHERE excluded.refs IS NOT NULL AND refs IS NOT excluded.refs")

_COLUMNS = (
    "ts_us, timestamp, source, sensor_id, event_id, gid, sid, rev, class_id, category, priority, "
    "action, proto, ip_ver, src_ip, src_port, dest_ip, dest_port, icmp_type, icmp_code, vlan, "
    "flow_id, app_name"
)
# DO NOTHING on any event key (alerts_u2_key, alerts_by2_key): a re-delivered event
_INSERT = (f"INSERT INTO alerts ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))}) "
           "ON CONFLICT DO NOTHING")
# alerts that carry a replay key: stored at most once (see AlertBatch.keys)
_INSERT_KEYED = (f"INSERT OR IGNORE INTO alerts ({_COLUMNS}, replay_key) "
                 f"VALUES ({', '.join('?' * (len(_COLUMNS.split(',')) + 1))})")
_FLOW_COLUMNS = (
    "flow_id, event_type, src_ip, src_port, dest_ip, dest_port, proto, app_proto, start, \"end\", "
    "start_us, end_us, pkts_toserver, pkts_toclient, bytes_toserver, bytes_toclient, state, reason, alerted"
)
_INSERT_FLOW = f"INSERT OR REPLACE INTO flows ({_FLOW_COLUMNS}) VALUES ({', '.join('?' * 19)})"


def _migrate(db: sqlite3.Connection) -> None:
    """Columns added after a store may have been created."""
    have = {r[1] for r in db.execute("PRAGMA table_info(alerts)")}
    if "replay_key" not in have:
        db.execute("ALTER TABLE alerts ADD COLUMN replay_key INTEGER")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS alerts_replay ON alerts (replay_key) "
               "WHERE replay_key IS NOT NULL")
    if "refs" not in {r[1] for r in db.execute("PRAGMA table_info(signatures)")}:
        db.execute("ALTER TABLE signatures ADD COLUMN refs TEXT")
        db.execute("DROP VIEW IF EXISTS alerts_v")
        db.executescript(SCHEMA)  # the view again, with refs
    # Barnyard2 sends an event once per packet record; its reader drops the
    # repeats, and this key catches an event resent across a restart.  A
    # store that already holds repeats (written before the key existed)
    # keeps them and goes without the key (said once at start-up).
    try:
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS alerts_by2_key ON alerts "
                   "(sensor_id, event_id, ts_us, gid, sid, rev) WHERE source = 'barnyard2'")
    except sqlite3.IntegrityError:
        print("ingest: warning: the store holds repeated Barnyard2 events from an earlier "
              "version; no unique key for Barnyard2 events (see README, The SQLite store)",
              file=sys.stderr, flush=True)

#: how long one write waits for a lock held by another connection
BUSY_TIMEOUT_MS = 5000
#: after a full disk, a probe says "retry" once this much is free again
PROBE_FREE_BYTES = 16 << 20

_SOURCE = np.array([B.SOURCE_NAMES.get(i, "unknown") for i in range(256)], dtype=object)
_ACTION = np.array([B.ACTION_NAMES.get(i) for i in range(256)], dtype=object)


def _masked(values: np.ndarray, mask: np.ndarray) -> list:
    """values as Python ints/strs, None where mask is False (SQL NULL)."""
    out = values.astype(object)
    out[~mask] = None
    return out.tolist()


def _text(strings: Strings, idx: np.ndarray) -> list:
    return take(strings, idx)  # a list or a packed pool; -1 is NULL


def rows(item: Enriched) -> tuple[list[tuple], list[tuple]]:
    """Alert rows and signature rows for one batch, built column-wise."""
    a = item.batch.alerts
    strings = item.strings
    flags = a["flags"]
    addrs = (flags & B.F_ADDRS) != 0
    ports = (flags & B.F_PORTS) != 0
    icmp = (flags & B.F_ICMP) != 0
    src, dst = format_addrs(a)
    ts = a["ts_us"]
    iso = np.char.add(
        np.datetime_as_string(ts.astype("datetime64[us]"), unit="us"), "+0000"
    )
    cats = item.categories if item.categories is not None else np.full(len(a), -1, np.int32)
    flow = a["flow_id"].view(np.int64)  # SQLite integers are signed 64-bit
    cols = [
        ts.tolist(),
        iso.tolist(),
        _SOURCE[a["source"]].tolist(),
        a["sensor_id"].tolist(),
        a["event_id"].tolist(),
        a["gid"].tolist(),
        a["sid"].tolist(),
        a["rev"].tolist(),
        a["class_id"].tolist(),
        _text(strings, cats),
        a["priority"].tolist(),
        _ACTION[a["action"]].tolist(),
        _masked(a["proto"], addrs),
        _masked(a["ip_ver"], addrs),
        _masked(src, addrs),
        _masked(a["src_port"], ports),
        _masked(dst, addrs),
        _masked(a["dst_port"], ports),
        _masked(a["src_port"], icmp),
        _masked(a["dst_port"], icmp),
        _masked(a["vlan"], (flags & B.F_VLAN) != 0),
        _masked(flow, flow != 0),
        _text(strings, a["app_idx"]),
    ]
    alert_rows = list(zip(*cols, strict=True))
    sig_rows: list[tuple] = []
    has_msg = a["msg_idx"] >= 0
    if has_msg.any():
        keyed = a[["gid", "sid", "rev", "msg_idx"]][has_msg]
        _, first = np.unique(keyed[["gid", "sid", "rev"]], return_index=True)
        refs = (item.references[has_msg][first].tolist() if item.references is not None
                else [-1] * len(first))
        for (g, s, r, m), f in zip(keyed[first].tolist(), refs, strict=True):
            sig_rows.append((g, s, r, strings[m], strings[f] if f >= 0 else None))
    return alert_rows, sig_rows


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


class SqliteSink:
    def __init__(self, path: str, *, allow_foreign: bool = False) -> None:
        self.name = f"sqlite:{path}"
        self.path = path
        self.allow_foreign = allow_foreign
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-sqlite")
        self._db: sqlite3.Connection | None = None
        self._last_error: BaseException | None = None  # why the last write failed
        self._pool.submit(self._open).result()

    def _open(self) -> None:
        # Create the database ourselves, 0640 and never through a symlink
        # (sqlite3 would follow one and use the umask); SQLite gives its -wal
        # and -shm files the database file's mode.  The store, and any -wal,
        # -shm or -journal file already beside it, must be ours alone
        # (ingest.safefile): SQLite would otherwise trust another user's WAL.
        for suffix in ("-wal", "-shm", "-journal"):
            check_output(self.path + suffix, what="SQLite store file", allow_foreign=self.allow_foreign)
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
            db.executescript(SCHEMA)
            _migrate(db)
        except sqlite3.Error as e:
            # a file that is no SQLite database (an alerts.json named by
            # mistake), a schema that is not ours, a store locked at start:
            # a start-up error that names the store, never a traceback
            db.close()
            raise ValueError(f"SQLite store {self.path}: cannot be opened: {e}") from e
        self._db = db

    def _write(self, alert_rows: list[tuple], sig_rows: list[tuple], keys=None, flows=None) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            if sig_rows:
                db.executemany(_INSERT_SIG, sig_rows)
            if keys is None:
                db.executemany(_INSERT, alert_rows)
            else:
                keyed = keys != 0
                if keyed.all():
                    db.executemany(_INSERT_KEYED, [(*r, k) for r, k in zip(alert_rows, keys.tolist(), strict=True)])
                else:
                    idx = np.flatnonzero(keyed).tolist()
                    db.executemany(_INSERT_KEYED, [(*alert_rows[i], int(keys[i])) for i in idx])
                    db.executemany(_INSERT, [alert_rows[i] for i in np.flatnonzero(~keyed).tolist()])
            if flows:
                db.executemany(_INSERT_FLOW, flows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_item(self, item: Enriched) -> None:
        ev = item.batch.events
        try:
            self._write(*rows(item), item.batch.keys, ev.flows if ev is not None else None)
        except Exception as e:
            if data_fault(e):
                raise DataError(f"{type(e).__name__}: {e}") from e
            raise  # locked, disk full, I/O error ...: down, retried with the same batch

    async def write(self, item: Enriched) -> None:
        # Row building and the transaction both run on the sink's thread.
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write_item, item)
        except BaseException as e:
            self._last_error = e
            raise

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

    async def probe(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._probe)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown()
