"""Correlation (ingest.flows.correlate) in a real PostgreSQL server
(tests/pg.py; skipped without its binaries): the same story as the SQLite
store's (tests/unit/test_correlate.py), the same links and counts."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_correlate import scenario


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
        conn.close()
        asyncio.run(sink.aclose())
    finally:
        server.cleanup()
