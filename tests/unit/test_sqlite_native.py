"""The SQLite store's C writer (csrc/sqlite.c through ingest.sinks.sqlite):
it stores exactly the rows sqlite3's executemany stores for the same
batches, keeps the store's unique keys and its one transaction per batch,
and refuses a caller's bad columns without touching memory or the store."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.native import ffi, lib
from ingest.sinks import rows as R
from ingest.sinks.sqlite import SqliteSink, _NativeDB, native_ok, native_version
from tests.unit.test_isolate import F, item_of
from tests.unit.test_pgcopy import _item


def _sink(path, monkeypatch, native: bool) -> SqliteSink:
    monkeypatch.setenv("INGEST_SQLITE_NATIVE", "1" if native else "0")
    native_ok.cache_clear()
    try:
        sink = SqliteSink(str(path), sensor="s1")
    finally:
        native_ok.cache_clear()
    assert (sink._native is not None) == native
    return sink


def _write(sink, item) -> None:
    asyncio.run(asyncio.wait_for(sink.write(item), 30))


def _dump(path) -> dict[str, list]:
    c = sqlite3.connect(path)
    try:
        return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                for t in ("alerts", "signatures", "flows")}
    finally:
        c.close()


def test_the_c_writer_is_used_and_links_pythons_sqlite():
    """On this machine the C core links the library copy sqlite3 loaded
    (else the store would fall back, and this test says so)."""
    assert native_ok(), "the C core and Python's sqlite3 load different SQLite copies"
    assert native_version() == sqlite3.sqlite_version


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_same_rows_as_executemany(tmp_path_factory, n, seed):
    d = tmp_path_factory.mktemp("s")
    mp = pytest.MonkeyPatch()
    try:
        a, b = _sink(d / "c.db", mp, True), _sink(d / "py.db", mp, False)
    finally:
        mp.undo()
    items = [_item(n, np.random.default_rng(seed)),
             item_of([F % (k, k * 3) for k in range(1, 4)] + [F % (2, 9)])]
    for item in items:
        _write(a, item)
        _write(b, item)
    asyncio.run(a.aclose())
    asyncio.run(b.aclose())
    got, want = _dump(d / "c.db"), _dump(d / "py.db")
    assert got == want
    # (flow rows without src_ip: NULLs differ in a unique key, so flow 2 seen again is a row of its own)
    assert len(got["alerts"]) == n and len(got["flows"]) == 4


def test_a_redelivered_batch_is_stored_once(tmp_path, monkeypatch):
    sink = _sink(tmp_path / "a.db", monkeypatch, True)
    item = _item(50, np.random.default_rng(1))
    item.batch.alerts["source"] = B.SRC_SNORT  # no Unified2/Barnyard2 event key: the replay key alone
    _write(sink, item)
    _write(sink, item)
    asyncio.run(sink.aclose())
    keyed = int(np.count_nonzero(item.batch.keys))
    rows = _dump(tmp_path / "a.db")["alerts"]
    # rows with a replay key once; unkeyed ones (a socket's) are stored as sent
    assert len(rows) == keyed + 2 * (50 - keyed)


def test_a_refused_row_leaves_nothing_of_its_batch(tmp_path, monkeypatch):
    sink = _sink(tmp_path / "a.db", monkeypatch, True)
    c = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    c.execute("CREATE TRIGGER t BEFORE INSERT ON alerts WHEN NEW.rev = 7 BEGIN SELECT RAISE(ABORT, 'no'); END")
    item = _item(40, np.random.default_rng(2))
    item.batch.alerts["rev"][-1] = 7
    with pytest.raises(Exception) as e:
        _write(sink, item)
    assert "no" in str(e.value)
    assert c.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    assert c.execute("SELECT count(*) FROM signatures").fetchone() == (0,)
    c.execute("DROP TRIGGER t")
    item.batch.alerts["rev"][-1] = 8
    _write(sink, item)  # the connection is usable after the rollback
    assert c.execute("SELECT count(*) FROM alerts").fetchone() == (40,)
    c.close()
    asyncio.run(sink.aclose())


def test_empty_text_is_not_null(tmp_path, monkeypatch):
    sink = _sink(tmp_path / "a.db", monkeypatch, True)
    sink._pool.submit(sink._native.exec, "CREATE TABLE t (a TEXT, b INTEGER)").result()
    st_ = sink._pool.submit(sink._native.prepare, "INSERT INTO t VALUES (?, ?)").result()
    cols = R.columns_of_rows([("", 1), (None, None), ("é", -(2**63))], 2, frozenset({0}))
    assert sink._pool.submit(sink._native.insert, st_, cols, ["text", "int8"]).result() == 3
    c = sqlite3.connect(tmp_path / "a.db")
    assert c.execute("SELECT a, b FROM t ORDER BY rowid").fetchall() == [("", 1), (None, None), ("é", -(2**63))]
    c.close()
    asyncio.run(sink.aclose())


def test_bad_columns_are_refused_before_any_row(tmp_path):
    """A text index outside its table, a table entry outside its bytes, a
    wrong parameter count: INGEST_EINVAL, no row written (checked in C)."""
    sqlite3.connect(tmp_path / "a.db").execute("CREATE TABLE t (a TEXT)").connection.commit()
    db = _NativeDB(str(tmp_path / "a.db"), 100)
    try:
        stmt = db.prepare("INSERT INTO t VALUES (?)")
        data = np.frombuffer(b"abc", np.uint8)
        off, ln = np.array([0], np.uint32), np.array([3], np.uint32)
        for idx, o, n in (([0, 1], off, ln), ([0], np.array([2], np.uint32), ln),
                          ([0], off, np.array([1 << 31], np.uint32))):
            col = ffi.new("struct ingest_pgcol[]", 1)
            iv = np.array(idx, np.int32)
            col[0].kind, col[0].values = lib.INGEST_PGCOL_TEXT, ffi.from_buffer("int32_t[]", iv)
            col[0].tdata, col[0].tdata_len, col[0].tcount = ffi.from_buffer("uint8_t[]", data), 3, 1
            col[0].toff, col[0].tlen = ffi.from_buffer("uint32_t[]", o), ffi.from_buffer("uint32_t[]", n)
            rc = lib.ingest_sqlite_insert(db._h, stmt, col, 1, len(iv), ffi.NULL)
            assert rc in (lib.INGEST_EINVAL,), rc
        with pytest.raises(ValueError):
            db.insert(stmt, [R.IntColumn(np.zeros(2, np.int64))] * 2, ["int8", "int8"])
        with pytest.raises(sqlite3.OperationalError):
            db.prepare("INSERT INTO nowhere VALUES (?)")
    finally:
        db.close()
    assert sqlite3.connect(tmp_path / "a.db").execute("SELECT count(*) FROM t").fetchone() == (0,)
