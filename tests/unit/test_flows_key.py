"""The flows key (schema 6): a partial unique index on (sensor, flow_id,
event_type, src_ip, src_port) WHERE flow_id IS NOT NULL.  An engine flow
seen again replaces its row; a NetFlow/IPFIX record (no engine flow id) is
not in the index at all, and a record received twice is two rows, as
before.  A real schema-5 store (tests/data/stores/schema5.db.gz, written by
the schema-5 code) is migrated with every row, id and link kept."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import sqlite3

from ingest import batch as B
from ingest.eve import decode_lines, parse_ts
from ingest.flows import record as FR
from ingest.mapping import Enricher
from ingest.sinks.sqlite import SCHEMA_VERSION, SqliteSink

from ..conftest import ROOT

STORE = ROOT / "tests" / "data" / "stores" / "schema5.db.gz"
T0 = parse_ts("2026-12-04T12:00:00.000000+0000")
S = 1_000_000


def _a16(text: str) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + ipaddress.ip_address(text).packed


def _ipfix(src: str, sp: int, dst: str, dp: int, start: int, end: int) -> B.AlertBatch:
    r = FR.empty(1)
    r["src_addr"], r["dst_addr"], r["src_port"], r["dst_port"] = _a16(src), _a16(dst), sp, dp
    r["proto"], r["ip_ver"], r["start_us"], r["end_us"] = 6, 4, start, end
    r["pkts"], r["bytes"], r["source"], r["flags"] = 4, 400, FR.FLOW_SRC_IPFIX, FR.FF_ADDRS | FR.FF_PORTS
    return B.AlertBatch(B.empty(0), [], "t", events=FR.event_batch(FR.FlowBatch(r, [], "t")))


def _eve_flow(fid: int, pkts: int) -> B.AlertBatch:
    line = json.dumps({"timestamp": "2026-12-04T12:00:08.000000+0000", "event_type": "flow", "flow_id": fid,
                       "src_ip": "192.0.2.9", "src_port": 80, "dest_ip": "10.0.0.1", "dest_port": 40000,
                       "proto": "TCP", "flow": {"start": "2026-12-04T12:00:00.000000+0000",
                                                "end": "2026-12-04T12:00:08.000000+0000",
                                                "pkts_toserver": pkts, "pkts_toclient": 2}}).encode()
    return decode_lines(line + b"\n").batch


def _write(path, *batches: B.AlertBatch) -> None:
    sink = SqliteSink(str(path), sensor="old-sensor", correlate_slack=2.0)

    async def go() -> None:
        for b in batches:
            await sink.write(Enricher().apply(b))
        await sink.aclose()

    asyncio.run(go())


def _key_shape(c: sqlite3.Connection) -> None:
    assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (6,)
    # no table constraint (its index held every NetFlow record), the partial key instead
    assert c.execute("SELECT name FROM pragma_index_list('flows') WHERE origin = 'u'").fetchall() == []
    sql = c.execute("SELECT sql FROM sqlite_master WHERE name = 'flows_key'").fetchone()[0]
    assert "UNIQUE" in sql and sql.endswith("WHERE flow_id IS NOT NULL")
    assert [r[2] for r in c.execute("PRAGMA index_info(flows_key)")] == [
        "sensor", "flow_id", "event_type", "src_ip", "src_port"]


def test_a_new_store_keys_engine_flows_only(tmp_path):
    db = tmp_path / "s.db"
    rec = ("10.0.0.4", 6000, "192.0.2.11", 22, T0, T0 + S)
    _write(db, _eve_flow(7, 3), _ipfix(*rec), _eve_flow(7, 5), _ipfix(*rec))
    c = sqlite3.connect(db)
    try:
        _key_shape(c)
        # the engine flow seen again replaced its row; the IPFIX record received twice is two rows
        assert c.execute("SELECT flow_id, pkts_toserver FROM flows WHERE source = 'eve'").fetchall() == [(7, 5)]
        assert c.execute("SELECT count(*) FROM flows WHERE source = 'ipfix'").fetchone() == (2,)
        # the NetFlow records are not in the key's index at all
        assert c.execute("SELECT count(*) FROM flows INDEXED BY flows_key WHERE flow_id IS NOT NULL"
                         ).fetchone() == (1,)
        # a lookup by the key uses it (the correlation's dedupe of port-less engine flows does)
        plan = " ".join(r[3] for r in c.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM flows WHERE sensor = 's' AND flow_id = 1 "
            "AND event_type = 'flow' AND src_ip = 'a' AND src_port IS NULL"))
        assert "USING COVERING INDEX flows_key" in plan, plan
    finally:
        c.close()


def _dump(c: sqlite3.Connection, table: str) -> list[tuple]:
    cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
    names = ", ".join(f'"{x}"' for x in cols)
    key = "gid, sid, rev" if table == "signatures" else "id"
    return [(cols, c.execute(f"SELECT {names} FROM {table} ORDER BY {key}").fetchall())]


def test_a_schema_5_store_is_migrated_with_every_row_kept(tmp_path):
    db = tmp_path / "old.db"
    db.write_bytes(gzip.decompress(STORE.read_bytes()))
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA user_version").fetchone() == (5,)
    assert c.execute("SELECT name FROM pragma_index_list('flows') WHERE origin = 'u'").fetchall() == [
        ("sqlite_autoindex_flows_1",)]
    before = {t: _dump(c, t) for t in ("alerts", "flows", "signatures", "flows_v")}
    c.close()
    assert len(before["flows"][0][1]) == 5 and len(before["alerts"][0][1]) == 4

    _write(db)  # migrates, writes nothing
    c = sqlite3.connect(db)
    try:
        _key_shape(c)
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert {t: _dump(c, t) for t in before} == before  # every row, id, column and link; the counts
        for index in ("flows_flow", "flows_tuple", "flows_uid"):
            assert c.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (index,)).fetchone() == (1,)
        assert c.execute("SELECT name FROM sqlite_master WHERE name LIKE 'flows_before%'").fetchall() == []
    finally:
        c.close()

    # after: the old engine flow seen again replaces its row; the IPFIX record received again adds one
    _write(db, _eve_flow(7, 9), _ipfix("10.0.0.4", 6000, "192.0.2.11", 22, T0, T0 + S))
    c = sqlite3.connect(db)
    try:
        assert c.execute("SELECT flow_id, pkts_toserver, sensor FROM flows WHERE flow_id = 7").fetchall() == [
            (7, 9, "old-sensor")]
        assert c.execute("SELECT count(*) FROM flows WHERE src_ip = '10.0.0.4'").fetchone() == (3,)
        # the alerts of the replaced flow moved to the new row (correlation relinks them)
        new7 = c.execute("SELECT id FROM flows WHERE flow_id = 7").fetchone()[0]
        assert c.execute("SELECT id FROM alerts WHERE flow_ref = ? ORDER BY id", (new7,)).fetchall() == [(1,), (2,)]
    finally:
        c.close()


def _flows(n: int) -> B.AlertBatch:
    return B.AlertBatch(B.empty(0), [], "t", events=FR.event_batch(FR.FlowBatch(FR.empty(n), [], "t")))


def test_a_backlog_of_flow_records_is_taken_in_bigger_batches():
    """Flow records alone join up to FLOW_BATCH_FACTOR x batch_max (fewer,
    bigger store transactions under load); alerts, and a batch of flows
    followed by alerts, keep batch_max."""
    from ingest.runtime import FLOW_BATCH_FACTOR, Pipeline
    from tests.unit.test_sensor import _batch

    assert FLOW_BATCH_FACTOR == 4
    p = Pipeline([], [], batch_max=10)
    for b in [_flows(6) for _ in range(8)] + [_batch("", 6), _batch("", 6), _flows(6)]:
        p.submit(b)
    taken = []
    while p._dq:
        b, _ = p._take()
        taken.append((len(b.alerts), 0 if b.events is None else len(b.events)))
    # 40 flow records at most (6 batches of 6), then the rest of the flows alone, the alerts at 10 at most
    assert taken == [(0, 36), (0, 12), (6, 0), (6, 0), (0, 6)]
