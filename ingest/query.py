"""``ingest query``: questions asked of a store, SQLite or PostgreSQL.

``ingest query flows --db alerts.db --min-severity 1`` answers *which flows
produced a high-priority alert*: every flow that has at least one alert
whose severity is N or more severe (Suricata's severity 1 is the highest,
so ``--min-severity 1`` means priority 1 only, ``--min-severity 2`` means 1
or 2), across every sensor of the store, whatever engine sent the alert (an
alert joins the flow the store linked it to, ``alerts.flow_ref``:
ingest.flows.correlate).  ``--db`` is a path or ``sqlite:PATH``, or a
``postgresql://...`` URL (the central store, ingest.sinks.postgresql): the
same question, the same answer.  ``--sql`` prints the SQL with the values
in it, as it runs in ``sqlite3 alerts.db`` (or in ``psql URL`` for a
PostgreSQL URL).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from .config import number_arg
from .querydb import _NOT_A_STORE, endpoint, is_postgresql, sqlite_path  # noqa: F401 (ingest.query.* as before)

_FLOWS = """
SELECT f.flow_id, f.event_type, f.src_ip, f.src_port, f.dest_ip, f.dest_port, f.proto,
       f.app_proto, f.start, f."end", f.pkts_toserver, f.pkts_toclient, f.bytes_toserver,
       f.bytes_toclient, f.state, f.reason,
       count(a.id) AS alerts, min(a.priority) AS top_priority,
       {agg} AS signatures, f.sensor
FROM flows f JOIN alerts a ON a.flow_ref = f.id
WHERE a.priority BETWEEN 1 AND {sev}
GROUP BY f.id
ORDER BY top_priority, alerts DESC, f.start_us, f.sensor, f.flow_id
LIMIT {limit}
"""
#: the question in SQLite (two parameters: severity, limit; -1 = all)
FLOWS_SQL = _FLOWS.format(agg="group_concat(DISTINCT a.gid || ':' || a.sid)", sev="?", limit="?")
#: the same question in PostgreSQL (GROUP BY the primary key lets f's columns
#: be selected there too; the signature list is sorted, SQLite's is in no
#: set order; LIMIT NULL = all)
FLOWS_SQL_PG = _FLOWS.format(agg="string_agg(DISTINCT a.gid || ':' || a.sid, ',')", sev="%s",
                             limit="%s")


def add_parser(sub) -> None:
    p = sub.add_parser("query", help="ask the store, SQLite or PostgreSQL (flows behind high-priority "
                                     "alerts, alerts, top signatures/talkers/ports)")
    qs = p.add_subparsers(dest="what", required=True)
    f = qs.add_parser("flows", help="flows that produced an alert of at least the given severity")
    f.add_argument("--db", default="./alerts.db", metavar="PATH|URL",
                   help="the store: a SQLite file (PATH or sqlite:PATH) or a postgresql://... URL "
                        "(default ./alerts.db)")
    f.add_argument("--min-severity", type=number_arg(int, 1), default=1, metavar="N",
                   help="alerts with severity N or more severe (1 = highest; default 1)")
    f.add_argument("--limit", type=number_arg(int, 0), default=1000, metavar="N",
                   help="at most N flows (default 1000; 0 = all)")
    f.add_argument("--json", action="store_true", help="one JSON object per flow")
    f.add_argument("--sql", action="store_true",
                   help="print the SQL (with these values, ready for sqlite3, or psql for a "
                        "postgresql:// --db) and exit")
    from .query_alerts import add_parsers

    add_parsers(qs)  # query alerts, query top signatures|talkers|ports
    p.set_defaults(run=run)


def flows_sql(min_severity: int = 1, limit: int = 1000, *, postgresql: bool = False) -> str:
    """The question with its two parameters written in (both are integers,
    so this is safe): what ``--sql`` prints, runnable as is in sqlite3 (in
    psql with ``postgresql``)."""
    sev = str(int(min_severity))
    if postgresql:
        return _FLOWS.strip().format(agg="string_agg(DISTINCT a.gid || ':' || a.sid, ',')", sev=sev,
                                     limit=str(int(limit)) if limit else "ALL") + ";"
    return _FLOWS.strip().format(agg="group_concat(DISTINCT a.gid || ':' || a.sid)", sev=sev,
                                 limit=str(int(limit) or -1)) + ";"


def query_flows(db_path: str, min_severity: int = 1, limit: int = 1000) -> list[dict]:
    """Flows with an alert of severity min_severity or more severe (limit
    0: all), from a SQLite file (a path or ``sqlite:PATH``) or a
    ``postgresql://`` URL.  The store is opened read-only; a path with '?'
    or '#' is quoted, not taken for URI parameters."""
    if is_postgresql(db_path):
        from .sinks.postgresql import query

        return query(db_path, FLOWS_SQL_PG, (min_severity, limit or None))
    uri = Path(sqlite_path(db_path)).resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(FLOWS_SQL, (min_severity, limit or -1))]
    finally:
        db.close()


def run(ns: argparse.Namespace) -> int:
    """``ingest query``: 0, 2 when --db is no store (or a usage error), 1
    when reading it failed."""
    if ns.what != "flows":
        from .query_alerts import run as run_alerts

        return run_alerts(ns)
    pg = is_postgresql(ns.db)
    if ns.sql:
        print(flows_sql(ns.min_severity, ns.limit, postgresql=pg))
        return 0
    try:
        rows = query_flows(ns.db, ns.min_severity, ns.limit)
    except sqlite3.Error as e:
        input_error = any(m in str(e) for m in _NOT_A_STORE)
        print(f"ingest: error: {ns.db}: {e}", file=sys.stderr)
        return 2 if input_error else 1
    except ValueError as e:  # PostgreSQL: no store there (or none reachable), message redacted
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # PostgreSQL: reading the store failed
        print(f"ingest: error: {e}", file=sys.stderr)
        return 1
    if ns.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'flow_id':>20} {'proto':5} {'src':>21} {'dest':>21} {'alerts':>6} prio signatures")
    for r in rows:
        src, dst = endpoint(r["src_ip"], r["src_port"]), endpoint(r["dest_ip"], r["dest_port"])
        print(f"{r['flow_id']:>20} {str(r['proto']):5} {src:>21} {dst:>21} {r['alerts']:>6} "
              f"{r['top_priority']:>4} {r['signatures']}")
    print(f"{len(rows)} flow(s)", file=sys.stderr)
    return 0
