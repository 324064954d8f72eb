"""Real SQLite stores of schema 2 and 4 (tests/data/stores: written by
ingest at e002891 and 031153c, that schema's code itself) migrated to the
current schema keep every row, id and correlation link (version 5: the
per-flow alert_count/top_priority, columns until then, are the flows_v
view's and give what the old columns held), and take new rows that
correlate with the old ones."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import sqlite3

import numpy as np
import pytest

from ingest.eve import parse_ts
from ingest.flows import record as FR
from ingest.sinks import rows as R
from ingest.sinks.sqlite import SCHEMA_VERSION, SqliteSink

from ..conftest import ROOT

STORE = ROOT / "tests" / "data" / "stores" / "schema2.db.gz"
STORES = ROOT / "tests" / "data" / "stores"
T0 = parse_ts("2026-12-04T12:00:00.000000+0000")
S = 1_000_000


def _dump(c: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple]]:
    cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
    key = "gid, sid, rev" if table == "signatures" else "id"  # (signatures is WITHOUT ROWID)
    return cols, c.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()


def _a16(text: str) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + ipaddress.ip_address(text).packed


@pytest.mark.parametrize("version", [2, 4])
def test_an_old_store_is_migrated_with_every_row_kept(tmp_path, version):
    db = tmp_path / "old.db"
    db.write_bytes(gzip.decompress((STORES / f"schema{version}.db.gz").read_bytes()))
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA user_version").fetchone() == (version,)
    assert {"alert_count", "top_priority"} <= {r[1] for r in c.execute("PRAGMA table_info(flows)")}
    before = {t: _dump(c, t) for t in ("alerts", "flows", "signatures")}
    c.close()
    assert len(before["alerts"][1]) == 4 and len(before["flows"][1]) == 2

    # a late NetFlow record for the old alert that no flow held (10.0.0.3:5 -> 192.0.2.9:80 at T0 + 2 s)
    r = FR.empty(1)
    r["src_addr"], r["dst_addr"], r["src_port"], r["dst_port"] = _a16("192.0.2.9"), _a16("10.0.0.3"), 80, 5
    r["proto"], r["ip_ver"], r["start_us"], r["end_us"] = 6, 4, T0 + 1 * S, T0 + 3 * S
    r["pkts"], r["bytes"], r["source"], r["flags"] = 4, 400, FR.FLOW_SRC_IPFIX, FR.FF_ADDRS | FR.FF_PORTS
    from ingest.batch import AlertBatch
    from ingest.batch import empty as empty_alerts
    from ingest.mapping import Enriched

    sink = SqliteSink(str(db), sensor="new-sensor", correlate_slack=2.0)

    async def go() -> None:
        ev = FR.event_batch(FR.FlowBatch(r, [], "t"))
        await sink.write(Enriched(AlertBatch(empty_alerts(0), [], "t", events=ev), None, []))
        await sink.aclose()

    asyncio.run(go())
    c = sqlite3.connect(db)
    try:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [x[1] for x in c.execute("PRAGMA table_info(flows)")] == [
            "id", *R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS]
        # every old row, every old column's value, by id (the ids are what flow_ref holds)
        for table, (cols, rows) in before.items():
            names = ", ".join(f'"{x}"' for x in cols)
            key = "id" if table != "signatures" else "gid, sid, rev"
            # (flows: through flows_v, whose alert_count/top_priority are the old columns' values)
            src = "flows_v" if table == "flows" else table
            after = c.execute(f"SELECT {names} FROM {src} ORDER BY {key}").fetchall()
            if table == "alerts":  # alert 3 gained its link (below); every other value is as it was
                at = cols.index("flow_ref")
                assert [x[:at] + x[at + 1:] for x in after] == [x[:at] + x[at + 1:] for x in rows]
            elif table == "flows":
                assert after[:len(rows)] == rows
            else:
                assert after == rows
        # the old flows are Suricata's (source eve), the sensor they had; the new one is IPFIX.
        # (flow 8's VLAN 12 was never stored by version 2: its new vlan column is NULL, not invented)
        vlan = None if version == 2 else 12
        assert c.execute("SELECT id, flow_id, source, sensor, vlan, alert_count, top_priority FROM flows_v "
                         "ORDER BY id").fetchall() == [
            (1, 7, "eve", "old-sensor", None, 2, 1), (2, 8, "eve", "old-sensor", vlan, 1, 1),
            (3, None, "ipfix", "new-sensor", None, 1, 3)]
        # the links of version 2 stand, and the late flow took the alert no flow held
        assert c.execute("SELECT id, flow_ref FROM alerts ORDER BY id").fetchall() == [
            (1, 1), (2, 1), (3, 3), (4, 2)]
    finally:
        c.close()


def test_the_fixture_is_what_its_script_says():
    """(a cheap guard: the committed store is the schema-2 shape the README describes)"""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = f"{d}/s.db"
        with open(p, "wb") as f:
            f.write(gzip.decompress(STORE.read_bytes()))
        c = sqlite3.connect(p)
        cols = [x[1] for x in c.execute("PRAGMA table_info(flows)")]
        assert "tuple_key" in cols and "source" not in cols and "uid" not in cols
        assert np.array(c.execute("SELECT count(*) FROM alerts WHERE flow_ref IS NOT NULL").fetchone()) == 3
        c.close()
