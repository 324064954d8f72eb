"""Correlation (ingest.flows.correlate) in a real PostgreSQL server
(tests/pg.py; skipped without its binaries): the same story as the SQLite
store's (tests/unit/test_correlate.py), the same links and counts."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_correlate import portless_scenario, scenario, vlan_scenario


def test_postgresql_links_the_same_way(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    from tests.pg import PgServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    from ingest.sinks.postgresql import PostgresSink

    server = PgServer(bin_dir)
    server.start()
    try:
        url = server.url(server.new_database())
        sink = PostgresSink(url, sensor="s1", correlate_slack=2.0)
        conn = psycopg.connect(url, autocommit=True)

        def write(item) -> None:
            asyncio.run(asyncio.wait_for(sink.write(item), 60))

        def rows(sql: str) -> list[tuple]:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

        scenario(write, rows)
        vlan_scenario(write, rows)
        portless_scenario(write, rows)
        conn.close()
        asyncio.run(sink.aclose())
    finally:
        server.cleanup()


def test_netflow_records_go_column_wise_into_postgresql_as_into_sqlite(tmp_path):
    """Canonical flow records (NetFlow/IPFIX, and one from a Suricata flow
    event) through the binary COPY made in C from their columns: the same
    flows rows as the SQLite store's; a record with an engine flow id seen
    again replaces its row (the unique key), NetFlow records add up."""
    psycopg = pytest.importorskip("psycopg")
    from tests.pg import PgServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    from ingest.flows import record as FR
    from ingest.sinks import rows as R
    from ingest.sinks.postgresql import PostgresSink
    from ingest.sinks.sqlite import SqliteSink
    from tests.unit.test_flow_columns import _item, records

    fb = records()
    eve = fb.subset(slice(len(fb) - 1, len(fb)))  # the record with an engine flow id
    items = [_item(fb), _item(fb.subset(slice(len(fb) - 3, len(fb)))),
             _item(FR.FlowBatch.concat([eve, eve]))]  # twice in one batch: one row (the upsert's rule)
    cols = ", ".join(f'"{c}"' for c in (*R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS))
    lite = SqliteSink(str(tmp_path / "a.db"), sensor="s1")
    for it in items:
        asyncio.run(asyncio.wait_for(lite.write(it), 60))
    asyncio.run(lite.aclose())
    import sqlite3

    c = sqlite3.connect(tmp_path / "a.db")
    want = c.execute(f"SELECT {cols} FROM flows ORDER BY id").fetchall()
    c.close()
    server = PgServer(bin_dir)
    server.start()
    try:
        url = server.url(server.new_database())
        sink = PostgresSink(url, sensor="s1")
        for it in items:
            asyncio.run(asyncio.wait_for(sink.write(it), 60))
        conn = psycopg.connect(url, autocommit=True)
        got = [tuple(r) for r in conn.execute(f"SELECT {cols} FROM flows ORDER BY id").fetchall()]
        conn.close()
        asyncio.run(sink.aclose())
    finally:
        server.cleanup()
    assert len(want) == len(fb) + 2  # the EVE-sourced record replaced, two NetFlow records again
    # the replaced row: a new id in SQLite (INSERT OR REPLACE), its own in PostgreSQL (upsert)
    assert sorted(got, key=repr) == sorted(want, key=repr)
