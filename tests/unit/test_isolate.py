"""Isolating records a sink refuses: halves of a batch stay aligned (alerts,
strings, raw records, categories, replay keys, events and their flow rows),
and a real SQLite store tells its data's fault from being down."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest

from ingest import isolate
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.render import render_json
from ingest.sinks.base import DataError
from ingest.sinks.sqlite import SqliteSink, native_ok

A = (b'{"timestamp":"2024-05-01T12:00:00.000000+0000","flow_id":%d,"event_type":"alert","src_ip":"10.0.0.1",'
     b'"src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"UDP","alert":{"gid":1,"signature_id":%d,'
     b'"rev":1,"signature":"sig %d","category":"cat %d","severity":2}}')
F = b'{"event_type":"flow","flow_id":%d,"flow":{"start":"2024-05-01T12:00:00.0+0000","pkts_toserver":%d}}'


def item_of(lines: list[bytes]):
    b = decode_lines(b"\n".join(lines) + b"\n").batch
    b.keys = np.arange(1, len(b) + 1, dtype=np.int64) * 7
    return Enricher({1: "cat 0", 2: "cat 1"}).apply(b)


def singles(item):
    if isolate.units(item) <= 1:
        return [item] if isolate.units(item) else []
    a, b = isolate.split(item)
    return singles(a) + singles(b)


def test_halves_down_to_single_records_stay_aligned():
    lines = []
    for i in range(1, 12):
        lines.append(A % (i, i, i, i % 2))
        if i % 2:
            lines.append(F % (100 + i, i))
        if i % 3 == 0:
            lines.append(b'{"event_type":"dns","dns":{"q":"\\r%d"}}' % i)
    item = item_of(lines)
    whole = item.batch
    assert isolate.units(item) == len(whole) + whole.events.count == len(lines)
    parts = singles(item)
    assert len(parts) == len(lines)
    got_alerts, got_events, flows, keys = [], [], [], []
    for p in parts:
        b = p.batch
        assert isolate.units(p) == 1 and not b.acks
        if len(b):
            got_alerts.append(render_json(b, "eve", p.categories, p.extra_strings))
            assert isolate.record_bytes(p) + b"\n" == got_alerts[-1]
            assert [p.strings[c] for c in p.categories] == [f"cat {int(b.alerts['sid'][0]) % 2}"]
            keys.append(int(b.keys[0]))
        else:
            got_events.append(b.events.lines)
            assert isolate.record_bytes(p) + b"\n" == b.events.lines
            flows.extend(b.events.flows)
            # a flow row travels with its own line
            for row in b.events.flows:
                assert b"%d" % row[0] in b.events.lines
    assert b"".join(got_alerts) == render_json(whole, "eve", item.categories, item.extra_strings)
    assert b"".join(got_events) == whole.events.lines
    assert flows == whole.events.flows
    assert keys == whole.keys.tolist()


def _write(sink, item) -> None:
    asyncio.run(asyncio.wait_for(sink.write(item), 30))


def test_sqlite_tells_refused_data_from_a_store_that_is_down(tmp_path):
    db = tmp_path / "a.db"
    sink = SqliteSink(str(db))
    item = item_of([A % (1, 666, 1, 1), A % (2, 2, 2, 0)])
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("CREATE TRIGGER t BEFORE INSERT ON alerts WHEN NEW.sid = 666 "
              "BEGIN SELECT RAISE(ABORT, 'no'); END")
    with pytest.raises(DataError):  # a trigger refuses a row: the data
        _write(sink, item)
    assert c.execute("SELECT count(*) FROM alerts").fetchone() == (0,)  # nothing half-written
    c.execute("DROP TRIGGER t")
    # another process holds the write lock: the store is down, not the data
    sink._pool.submit(sink._busy_timeout, 50).result()
    c.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError) as e:
        _write(sink, item)
    assert not isinstance(e.value, DataError)
    c.execute("COMMIT")
    _write(sink, item)  # the same batch, once the store is back
    assert c.execute("SELECT count(*) FROM alerts").fetchone() == (2,)
    c.close()
    asyncio.run(sink.aclose())


@pytest.mark.parametrize("native", ["1", "0"], ids=["c-writer", "executemany"])
@pytest.mark.parametrize("bad", [{"a": 1}, 2**70, "\ud800"])
def test_values_sqlite_cannot_bind_are_data_errors(tmp_path, monkeypatch, bad, native):
    """Whatever reaches the store's rows that it cannot bind is refused as
    data (never retried forever), through either writer.  A lone surrogate
    is text the C writer stores as U+FFFD (the rule of ingest.sinks.rows,
    as the PostgreSQL store does); sqlite3's executemany cannot encode it."""
    monkeypatch.setenv("INGEST_SQLITE_NATIVE", native)
    native_ok.cache_clear()
    try:
        sink = SqliteSink(str(tmp_path / "a.db"))
        assert (sink._native is not None) == (native == "1")
    finally:
        native_ok.cache_clear()
    item = item_of([F % (5, 5)])
    row = list(item.batch.events.flows[0])
    row[7] = bad  # app_proto
    item.batch.events.flows[0] = tuple(row)
    if native == "1" and bad == "\ud800":
        _write(sink, item)
        c = sqlite3.connect(tmp_path / "a.db")
        assert c.execute("SELECT app_proto FROM flows").fetchall() == [("\ufffd",)]
        c.close()
    else:
        with pytest.raises(DataError):
            _write(sink, item)
    asyncio.run(sink.aclose())
