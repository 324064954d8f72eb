"""The SQL the documentation prints runs as printed in ``sqlite3`` against a
real store (made here by a real ``ingest listen --eve-file``) and answers:
every ```sql block of docs/*.md, every ``sqlite3 alerts.db "..."`` command of
the README and docs, and what ``ingest query flows --sql`` prints."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT
from ._store import make_store

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 CLI")]

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _sql_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS[1:]:  # the README's sql block is the schema sketch, not a query
        for i, m in enumerate(re.finditer(r"```sql\n(.*?)```", doc.read_text(), re.S)):
            out.append((f"{doc.name}#{i}", m.group(1)))
    return out


def _sqlite3_commands() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(re.finditer(r"^sqlite3 alerts\.db (\".*\")\s*$", doc.read_text(), re.M)):
            out.append((f"{doc.name}$ {i}", shlex.split(m.group(1))[0]))
    return out


def _inline_statements() -> list[tuple[str, str]]:
    """SQL statements written inline in the prose (`DELETE FROM ...`), which
    a reader copies as they are."""
    out = []
    for doc in DOCS:
        prose = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for i, m in enumerate(re.finditer(r"`((?:SELECT|DELETE|UPDATE|WITH)\b[^`]*)`", prose)):
            out.append((f"{doc.name}`{i}", m.group(1)))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("docs-store"), 300)


def _sqlite3(db: Path, sql: str) -> list[str]:
    p = subprocess.run(["sqlite3", "-bail", "-batch", str(db)], input=sql, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return p.stdout.splitlines()


def test_there_is_documented_sql():
    assert _sql_blocks() and _sqlite3_commands()


@pytest.mark.parametrize("name,sql", _sql_blocks() + _sqlite3_commands())
def test_documented_sql_runs_as_printed(store, name, sql):
    rows = _sqlite3(store, sql)
    assert rows, f"{name} returned nothing"


@pytest.mark.parametrize("name,sql", _inline_statements())
def test_inline_sql_runs_as_printed(store, tmp_path, name, sql):
    db = tmp_path / "copy.db"
    shutil.copy(store, db)  # a statement may change the store
    _sqlite3(db, sql + ";")


def test_there_is_inline_sql():
    assert any("DELETE FROM alerts" in sql for _, sql in _inline_statements())


def test_query_flows_sql_is_what_query_flows_answers(store, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def ingest(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "ingest", "query", "flows", "--db", str(store),
                            *args], capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    for sev, limit in (("1", "0"), ("2", "0"), ("2", "7")):
        printed = ingest("--sql", "--min-severity", sev, "--limit", limit)
        via_cli = _sqlite3(store, printed)
        answered = [json.loads(x) for x in ingest("--json", "--min-severity", sev, "--limit", limit)
                    .splitlines()]
        assert len(via_cli) == len(answered) > 0
        assert [int(r.split("|")[0]) for r in via_cli] == [r["flow_id"] for r in answered]
