"""``ingest bench``'s PostgreSQL rows (collector -> PostgreSQL against a bare
COPY of the same rows; Unix socket -> committed PostgreSQL row): measured
end to end with servers the bench starts itself, cleaned up after; skipped
with one line without them.  No timing is asserted: only that the rows ran
and their fields make sense."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ingest import bench
from ingest.bench import pgserver
from ingest.bench import postgresql as bench_pg

from ..natsserver import need_nats
from ..pg import need_postgresql
from ._util import procs_with_cwd_under


def test_postgresql_rows_measure_the_collector_its_peer_and_the_latency(monkeypatch) -> None:
    need_nats()
    need_postgresql()
    roots: list[Path] = []
    real_init = pgserver.PgServer.__init__

    def init(self, *a, **k) -> None:
        real_init(self, *a, **k)
        roots.append(self.root)

    monkeypatch.setattr(pgserver.PgServer, "__init__", init)
    rep = bench.run_bench(count=10, repeat=2, receivers=(), decoder=False, time_limit=60,
                          postgresql_alerts=9000, nats_latency=((400.0,), 0.5))
    pg = rep["postgresql"]
    t = pg["throughput"]
    assert t["rows_per_run"] == 16384  # two of the sink's 8,192-alert batches: every one a row
    rows = {r["receiver"]: r for r in t["rows"]}
    assert set(rows) == set(bench_pg.LABELS)
    for name, r in rows.items():
        assert len(r["runs"]) == 2, name
        for run in r["runs"]:
            assert run["rows"] == 16384 and run["transactions"] >= 2, (name, run)
            assert run["seconds"] > 0 and run["rows_per_s"] > 0 and run["cpu_s_per_million"] > 0, (name, run)
    coll = rows["collect"]
    assert coll["peer"] == "bare-copy" and len(coll["paired_rate_runs"]) == 2
    assert min(coll["paired_rate_runs"]) <= coll["paired_rate_vs_copy"] <= max(coll["paired_rate_runs"])
    assert all(r["shutdown_s"] > 0 for r in coll["runs"])
    (lat,) = pg["latency"]
    assert lat["n"] == lat["alerts"] == 200 and 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert 0 < lat["commit_p50_ms"] <= lat["commit_p99_ms"] <= lat["commit_max_ms"]
    assert all(math.isfinite(v) for v in (lat["p99_ms"], lat["commit_p99_ms"], lat["stored_p99_ms"]))
    assert lat["stored_n"] == 200 and lat["stored_p50_ms"] <= lat["stored_p99_ms"] <= lat["stored_max_ms"]
    assert lat["commits"] >= 1 and abs(lat["rows_per_commit"] * lat["commits"] - 200) < 1e-6
    goals = {g["goal"]: g for g in rep["goals"]}
    assert any("of bare COPY" in g for g in goals) and any("rows/s" in g for g in goals)
    assert all(isinstance(g["met"], bool) and g["measured"] for g in goals.values())
    text = bench.format_report(rep)
    assert "ingest collect -> postgresql:" in text and "committed PostgreSQL row" in text
    assert "goals (issue 8" in text
    assert roots and all(not r.exists() for r in roots)  # the cluster is gone
    assert all(procs_with_cwd_under(r) == [] for r in roots)


def test_postgresql_rows_say_why_they_are_skipped(monkeypatch) -> None:
    monkeypatch.setenv("INGEST_PG_BIN", "/nonexistent")
    rep = bench.run_bench(count=10, repeat=1, receivers=(), decoder=False, time_limit=60, postgresql_alerts=100)
    why = rep["postgresql"]["missing"]
    assert why in ("PostgreSQL server binaries not found (apt-get install postgresql; or set INGEST_PG_BIN)",
                   bench_pg.missing())
    assert f"PostgreSQL (collector -> PostgreSQL): skipped: {why}" in bench.format_report(rep)
    assert rep["goals"] == []


@pytest.mark.parametrize("argv", [["--no-postgresql"], ["--postgresql-alerts", "0"]])
def test_postgresql_options(argv) -> None:
    from ingest import cli

    parser = cli.build_parser()
    if argv[-1] == "0":
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", *argv])
    else:
        assert parser.parse_args(["bench", *argv]).no_postgresql
