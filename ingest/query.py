"""``ingest query``: questions asked of the SQLite store.

``ingest query flows --db alerts.db --min-severity 1`` answers *which flows
produced a high-priority alert*: every EVE flow that has at least one alert
whose severity is N or more severe (Suricata's severity 1 is the highest,
so ``--min-severity 1`` means priority 1 only, ``--min-severity 2`` means 1
or 2).  The SQL is printed with ``--sql``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

FLOWS_SQL = """
SELECT f.flow_id, f.event_type, f.src_ip, f.src_port, f.dest_ip, f.dest_port, f.proto,
       f.app_proto, f.start, f."end", f.pkts_toserver, f.pkts_toclient, f.bytes_toserver,
       f.bytes_toclient, f.state, f.reason,
       count(a.id) AS alerts, min(a.priority) AS top_priority,
       group_concat(DISTINCT a.gid || ':' || a.sid) AS signatures
FROM flows f JOIN alerts a ON a.flow_id = f.flow_id
WHERE a.priority BETWEEN 1 AND ?
GROUP BY f.rowid
ORDER BY top_priority, alerts DESC, f.start_us
LIMIT ?
"""


def add_parser(sub) -> None:
    p = sub.add_parser("query", help="ask the SQLite store (flows behind high-priority alerts)")
    qs = p.add_subparsers(dest="what", required=True)
    f = qs.add_parser("flows", help="flows that produced an alert of at least the given severity")
    f.add_argument("--db", default="./alerts.db", help="the store (default ./alerts.db)")
    f.add_argument("--min-severity", type=int, default=1, metavar="N",
                   help="alerts with severity N or more severe (1 = highest; default 1)")
    f.add_argument("--limit", type=int, default=1000)
    f.add_argument("--json", action="store_true", help="one JSON object per flow")
    f.add_argument("--sql", action="store_true", help="print the SQL and exit")
    p.set_defaults(run=run)


def query_flows(db_path: str, min_severity: int = 1, limit: int = 1000) -> list[dict]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(FLOWS_SQL, (min_severity, limit))]
    finally:
        db.close()


def run(ns: argparse.Namespace) -> int:
    if ns.sql:
        print(FLOWS_SQL.strip())
        return 0
    try:
        rows = query_flows(ns.db, ns.min_severity, ns.limit)
    except sqlite3.Error as e:
        print(f"ingest: error: {ns.db}: {e}", file=sys.stderr)
        return 2
    if ns.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'flow_id':>20} {'proto':5} {'src':>21} {'dest':>21} {'alerts':>6} prio signatures")
    for r in rows:
        src = f"{r['src_ip']}:{r['src_port']}"
        dst = f"{r['dest_ip']}:{r['dest_port']}"
        print(f"{r['flow_id']:>20} {str(r['proto']):5} {src:>21} {dst:>21} {r['alerts']:>6} "
              f"{r['top_priority']:>4} {r['signatures']}")
    print(f"{len(rows)} flow(s)", file=sys.stderr)
    return 0
