"""The store's index policy against the statements ``ingest query`` runs
(SQLite's own plans on a fresh store): every query narrowed by time or by
signature (gid:sid or a bare sid) reaches alerts through an index, and none
needs an index the store no longer makes (alerts_flow: measured in
BENCHMARKS.md, "SQLite store: index policy")."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from ingest import query as QF
from ingest import query_alerts as Q
from ingest.sinks.sqlite import SqliteSink

NARROWED = [{"since": 1}, {"since": 1, "until": 2}, {"sigs": [(1, 2)]}, {"sigs": [(None, 2)]},
            {"sigs": [(1, 2), (None, 5)]}, {"since": 1, "sigs": [(None, 2)]}]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("plans") / "a.db"
    asyncio.run(SqliteSink(str(path)).aclose())
    c = sqlite3.connect(path)
    yield c
    c.close()


def _plan(c: sqlite3.Connection, sql: str, params: list) -> list[str]:
    return [r[3] for r in c.execute("EXPLAIN QUERY PLAN " + sql, params)]


def _alerts_steps(plan: list[str]) -> list[str]:
    return [p for p in plan if p.startswith(("SCAN a", "SEARCH a"))]


@pytest.mark.parametrize("what", ["alerts", "signatures", "talkers", "ports", "flows"])
@pytest.mark.parametrize("filters", NARROWED)
def test_narrowed_queries_search_alerts_by_an_index(db, what, filters):
    sql, params = QF.flows_query(**filters) if what == "flows" else Q.build(what, **filters)
    plan = _plan(db, sql, params)
    if what == "signatures" and set(filters) == {"since"}:
        # without statistics SQLite walks alerts_sig in group order and
        # filters by time (an open-ended window may well be most of the
        # table); an index, not the table, and the same before the policy
        assert _alerts_steps(plan) == ["SCAN a USING INDEX alerts_sig"], plan
        return
    steps = _alerts_steps(plan)
    assert steps, plan
    for step in steps:
        assert step.startswith("SEARCH a USING INDEX") or "MULTI-INDEX" in step, (what, filters, plan)
    assert not any("alerts_flow " in p or p.endswith("alerts_flow") for p in plan)


def test_the_store_does_not_make_alerts_flow(db):
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "alerts_flow" not in names
    assert {"alerts_ts", "alerts_sig", "alerts_tuple", "alerts_flow_ref"} <= names
