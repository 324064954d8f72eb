"""``ingest query``: questions asked of a store, SQLite or PostgreSQL.

``ingest query flows --db alerts.db --min-severity 1`` answers *which flows
produced a high-priority alert*: every flow that has at least one alert
whose severity is N or more severe (Suricata's severity 1 is the highest,
so ``--min-severity 1`` means priority 1 only, ``--min-severity 2`` means 1
or 2), across every sensor of the store, whatever engine sent the alert (an
alert joins the flow the store linked it to, ``alerts.flow_ref``:
ingest.flows.correlate).  The filters of ``query alerts`` narrow the alerts
that count (``--priority``, ``--since``/``--until``, ``--sensor``,
``--sig``).  ``--db`` is a path or ``sqlite:PATH``, or a
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

from .query_alerts import _add_filters
from .querydb import _NOT_A_STORE, endpoint, is_postgresql, sqlite_path  # noqa: F401 (ingest.query.* as before)

_FLOWS = """
SELECT f.flow_id, f.event_type, f.src_ip, f.src_port, f.dest_ip, f.dest_port, f.proto,
       f.app_proto, f.start, f."end", f.pkts_toserver, f.pkts_toclient, f.bytes_toserver,
       f.bytes_toclient, f.state, f.reason,
       count(a.id) AS alerts, min(a.priority) AS top_priority,
       f.source, f.uid, f.history, {agg} AS signatures, f.sensor
FROM flows f JOIN alerts a ON a.flow_ref = f.id
WHERE {where}
GROUP BY f.id
ORDER BY top_priority, alerts DESC, f.start_us, f.sensor, f.flow_id
LIMIT {limit}
"""
_AGG = {False: "group_concat(DISTINCT a.gid || ':' || a.sid)",
        True: "string_agg(DISTINCT a.gid || ':' || a.sid, ',')"}


def flows_query(*, min_severity: int | None = 1, priority: int | None = None, since: int | None = None,
                until: int | None = None, sensors: list[str] | None = None,
                sigs: list[tuple[int | None, int]] | None = None, limit: int = 1000,
                postgresql: bool = False) -> tuple[str, list]:
    """The question and its parameters (SQLite's ``?`` or psycopg's ``%s``):
    the flows with at least one linked alert that passes the filters (those
    of ``query alerts``: ingest.query_alerts.where); the counts, top
    priority and signatures are of those alerts.  (PostgreSQL: GROUP BY the
    primary key lets f's columns be selected; its signature list is sorted,
    SQLite's is in no set order.)"""
    from .query_alerts import where

    cond, params = where(since=since, until=until, sensors=sensors, sigs=sigs, min_severity=min_severity,
                         priority=priority, postgresql=postgresql)
    ph = "%s" if postgresql else "?"
    params.append((limit or None) if postgresql else (limit or -1))
    return _FLOWS.strip().format(agg=_AGG[postgresql], where=cond, limit=ph), params


def add_parser(sub) -> None:
    p = sub.add_parser("query", help="ask the store, SQLite or PostgreSQL (flows behind high-priority "
                                     "alerts, alerts, top signatures/talkers/ports)")
    qs = p.add_subparsers(dest="what", required=True)
    f = qs.add_parser("flows", help="flows that produced an alert of at least the given severity")
    # the filters of query alerts; --min-severity defaults to 1 unless --priority is given
    _add_filters(f, 1000, "flows")
    from .query_alerts import add_parsers

    add_parsers(qs)  # query alerts, query top signatures|talkers|ports
    p.set_defaults(run=run)


def _filters(ns: argparse.Namespace) -> dict:
    return {"min_severity": ns.min_severity if ns.min_severity is not None or ns.priority is not None else 1,
            "priority": ns.priority, "since": ns.since, "until": ns.until, "sensors": ns.sensor,
            "sigs": ns.sig, "limit": ns.limit}


def query_flows(db_path: str, min_severity: int | None = 1, limit: int = 1000, **filters) -> list[dict]:
    """Flows with a linked alert of severity min_severity or more severe
    (limit 0: all; ``filters``: those of :func:`flows_query`), from a SQLite
    file (a path or ``sqlite:PATH``) or a ``postgresql://`` URL.  The store
    is opened read-only; a path with '?' or '#' is quoted, not taken for URI
    parameters."""
    from .query_alerts import query

    def q(pg: bool) -> tuple[str, list]:
        return flows_query(min_severity=min_severity, limit=limit, postgresql=pg, **filters)

    return query(db_path, q(False), q(True))


def run(ns: argparse.Namespace) -> int:
    """``ingest query``: 0, 2 when --db is no store (or a usage error), 1
    when reading it failed."""
    if ns.what != "flows":
        from .query_alerts import run as run_alerts

        return run_alerts(ns)
    pg = is_postgresql(ns.db)
    filters = _filters(ns)
    if ns.sql:
        from .query_alerts import literal_sql

        print(literal_sql(*flows_query(postgresql=pg, **filters), postgresql=pg))
        return 0
    try:
        rows = query_flows(ns.db, **filters)
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
