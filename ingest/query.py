"""``ingest query``: questions asked of the SQLite store.

``ingest query flows --db alerts.db --min-severity 1`` answers *which flows
produced a high-priority alert*: every EVE flow that has at least one alert
whose severity is N or more severe (Suricata's severity 1 is the highest,
so ``--min-severity 1`` means priority 1 only, ``--min-severity 2`` means 1
or 2).  ``--sql`` prints the SQL with the values in it, as it runs in
``sqlite3 alerts.db``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from .config import number_arg

FLOWS_SQL = """
SELECT f.flow_id, f.event_type, f.src_ip, f.src_port, f.dest_ip, f.dest_port, f.proto,
       f.app_proto, f.start, f."end", f.pkts_toserver, f.pkts_toclient, f.bytes_toserver,
       f.bytes_toclient, f.state, f.reason,
       count(a.id) AS alerts, min(a.priority) AS top_priority,
       group_concat(DISTINCT a.gid || ':' || a.sid) AS signatures, f.sensor
FROM flows f JOIN alerts a ON a.flow_id = f.flow_id AND a.sensor = f.sensor
WHERE a.priority BETWEEN 1 AND ?
GROUP BY f.id
ORDER BY top_priority, alerts DESC, f.start_us
LIMIT ?
"""


def add_parser(sub) -> None:
    p = sub.add_parser("query", help="ask the SQLite store (flows behind high-priority alerts)")
    qs = p.add_subparsers(dest="what", required=True)
    f = qs.add_parser("flows", help="flows that produced an alert of at least the given severity")
    f.add_argument("--db", default="./alerts.db", help="the store (default ./alerts.db)")
    f.add_argument("--min-severity", type=number_arg(int, 1), default=1, metavar="N",
                   help="alerts with severity N or more severe (1 = highest; default 1)")
    f.add_argument("--limit", type=number_arg(int, 0), default=1000, metavar="N",
                   help="at most N flows (default 1000; 0 = all)")
    f.add_argument("--json", action="store_true", help="one JSON object per flow")
    f.add_argument("--sql", action="store_true",
                   help="print the SQL (with these values, ready for sqlite3) and exit")
    p.set_defaults(run=run)


def flows_sql(min_severity: int = 1, limit: int = 1000) -> str:
    """FLOWS_SQL with its two parameters written in (both are integers, so
    this is safe): what ``--sql`` prints, runnable as is in sqlite3."""
    head, mid, tail = FLOWS_SQL.strip().split("?")
    return f"{head}{int(min_severity)}{mid}{int(limit) or -1}{tail};"


def query_flows(db_path: str, min_severity: int = 1, limit: int = 1000) -> list[dict]:
    """Flows with an alert of severity min_severity or more severe (limit
    0: all).  The store is opened read-only; a path with '?' or '#' is
    quoted, not taken for URI parameters."""
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(FLOWS_SQL, (min_severity, limit or -1))]
    finally:
        db.close()


#: sqlite errors that mean the --db is not a usable store (exit 2), as opposed
#: to a failure while reading one (locked, I/O error: exit 1)
_NOT_A_STORE = ("unable to open database", "no such table", "file is not a database",
                "no such column")


def endpoint(ip: str | None, port: int | None) -> str:
    """An address and port as a user reads them: 192.0.2.1:80,
    [2001:db8::1]:80 (an IPv6 address's colons would swallow the port), the
    address alone where the flow has no port (ICMP), '-' for none."""
    addr = "-" if ip is None else f"[{ip}]" if ":" in ip and port is not None else ip
    return addr if port is None else f"{addr}:{port}"


def run(ns: argparse.Namespace) -> int:
    """``ingest query``: 0, 2 when --db is no store (or a usage error), 1
    when reading it failed."""
    if ns.sql:
        print(flows_sql(ns.min_severity, ns.limit))
        return 0
    try:
        rows = query_flows(ns.db, ns.min_severity, ns.limit)
    except sqlite3.Error as e:
        input_error = any(m in str(e) for m in _NOT_A_STORE)
        print(f"ingest: error: {ns.db}: {e}", file=sys.stderr)
        return 2 if input_error else 1
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
