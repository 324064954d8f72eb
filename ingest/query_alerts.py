"""``ingest query alerts`` and ``ingest query top signatures|talkers|ports``:
everyday questions of a store, SQLite or PostgreSQL, in the same SQL.

Filters (every one optional, all combined with AND):

* ``--since T`` / ``--until T``: the alert's time (``ts_us``) in
  [since, until).  T is ISO 8601 (``2024-05-01``, ``2024-05-01T12:00:00Z``,
  ``2024-05-01 14:00:00+02:00``; without an offset: UTC), ``now``, or an age
  before now: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``.
* ``--sensor NAME`` (repeatable): alerts of these sensors.
* ``--sig GID:SID`` or ``--sig SID`` (repeatable): these signatures; a bare
  SID matches it under any gid.
* ``--min-severity N``: priority 1..N (1 is the most severe, as in
  ``query flows``); ``--priority N``: exactly priority N.  Alerts without a
  priority match neither.

``alerts`` lists alerts, newest first (``--limit``, default 100); ``top
signatures`` counts alerts per gid:sid, ``top talkers`` per address (an
alert counts once for its source and once for its destination, once when
they are the same), ``top ports`` per protocol and destination port (alerts
without a port, ICMP, are not counted); each the largest counts first
(``--limit``, default 10), ties in a fixed order.  ``--sql`` prints the
statement with the values written in, runnable in ``sqlite3 alerts.db`` (in
``psql`` for a ``postgresql://`` --db).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sqlite3
import sys
from pathlib import Path

from .config import number_arg
from .querydb import _NOT_A_STORE, endpoint, is_postgresql, sqlite_path

_AGE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIG = re.compile(r"^(?:(\d{1,10}):)?(\d{1,10})$")


def parse_time(text: str, now: dt.datetime | None = None) -> int:
    """A --since/--until value as microseconds since the epoch (UTC);
    ValueError saying what is accepted."""
    t = text.strip()
    now = now or dt.datetime.now(dt.UTC)
    if t == "now":
        return _us(now)
    m = _AGE.match(t)
    if m:
        return _us(now) - int(m.group(1)) * _UNIT_S[m.group(2)] * 1_000_000
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is no time: give ISO 8601 (2024-05-01, 2024-05-01T12:00:00Z), "
                         "'now', or an age such as 90s, 15m, 2h, 7d, 1w") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return _us(when)


def _us(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time_arg(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _sig_arg(text: str) -> tuple[int | None, int]:
    m = _SIG.match(text.strip())
    if not m or any(int(g) >= 1 << 32 for g in m.groups() if g):
        raise argparse.ArgumentTypeError(f"{text!r} is no signature: give GID:SID or SID "
                                         "(numbers below 2^32)")
    return (int(m.group(1)) if m.group(1) else None, int(m.group(2)))


def _add_filters(p: argparse.ArgumentParser, limit: int, what: str) -> None:
    p.add_argument("--db", default="./alerts.db", metavar="PATH|URL",
                   help="the store: a SQLite file (PATH or sqlite:PATH) or a postgresql://... URL "
                        "(default ./alerts.db)")
    p.add_argument("--since", type=_time_arg, metavar="TIME",
                   help="alerts at or after TIME (ISO 8601, UTC without an offset; or an age: 15m, 2h, 7d)")
    p.add_argument("--until", type=_time_arg, metavar="TIME", help="alerts before TIME (as --since)")
    p.add_argument("--sensor", action="append", metavar="NAME", help="alerts of this sensor (repeatable)")
    p.add_argument("--sig", action="append", type=_sig_arg, metavar="GID:SID|SID",
                   help="alerts of this signature (repeatable; a bare SID: any gid)")
    sev = p.add_mutually_exclusive_group()
    sev.add_argument("--min-severity", type=number_arg(int, 1), metavar="N",
                     help="alerts with priority 1..N (1 = most severe)")
    sev.add_argument("--priority", type=number_arg(int, 0), metavar="N", help="alerts with priority exactly N")
    p.add_argument("--limit", type=number_arg(int, 0), default=limit, metavar="N",
                   help=f"at most N {what} (default {limit}; 0 = all)")
    p.add_argument("--json", action="store_true", help=f"one JSON object per {what[:-1]}")
    p.add_argument("--sql", action="store_true",
                   help="print the SQL (with these values, ready for sqlite3, or psql for a "
                        "postgresql:// --db) and exit")


def add_parsers(qs) -> None:
    """``query alerts`` and ``query top KIND`` under ``ingest query``."""
    a = qs.add_parser("alerts", help="alerts in a window, newest first (by sensor, signature, priority)")
    _add_filters(a, 100, "alerts")
    t = qs.add_parser("top", help="top signatures, talkers (addresses) or destination ports in a window")
    t.add_argument("kind", choices=("signatures", "talkers", "ports"), help="what to count alerts by")
    _add_filters(t, 10, "rows")


# ---- SQL -----------------------------------------------------------------------

_ALERTS = """
SELECT a.id, a.timestamp, a.ts_us, a.sensor, a.source, a.gid, a.sid, a.rev, a.signature,
       a.priority, a.category, a.action, a.proto, a.src_ip, a.src_port, a.dest_ip, a.dest_port
FROM alerts_v a
WHERE {where}
ORDER BY a.ts_us DESC, a.id DESC
LIMIT {limit}
"""
_TOP_SIGNATURES = """
SELECT a.gid, a.sid, max(s.msg) AS signature, count(*) AS alerts, min(a.priority) AS top_priority,
       count(DISTINCT a.sensor) AS sensors, min(a.ts_us) AS first_us, max(a.ts_us) AS last_us
FROM alerts a LEFT JOIN signatures s ON s.gid = a.gid AND s.sid = a.sid AND s.rev = a.rev
WHERE {where}
GROUP BY a.gid, a.sid
ORDER BY alerts DESC, a.gid, a.sid
LIMIT {limit}
"""
_TOP_TALKERS = """
SELECT t.ip, count(*) AS alerts, sum(t.as_src) AS as_src, sum(t.as_dest) AS as_dest,
       min(t.priority) AS top_priority
FROM (SELECT a.src_ip AS ip, 1 AS as_src, 0 AS as_dest, a.priority FROM alerts a
      WHERE {where} AND a.src_ip IS NOT NULL
      UNION ALL
      SELECT a.dest_ip, 0, 1, a.priority FROM alerts a
      WHERE {where} AND a.dest_ip IS NOT NULL AND (a.src_ip IS NULL OR a.dest_ip <> a.src_ip)) t
GROUP BY t.ip
ORDER BY alerts DESC, t.ip{collate}
LIMIT {limit}
"""
_TOP_PORTS = """
SELECT a.proto, a.dest_port AS port, count(*) AS alerts, count(DISTINCT a.src_ip) AS sources,
       count(DISTINCT a.dest_ip) AS targets, min(a.priority) AS top_priority
FROM alerts a
WHERE {where} AND a.dest_port IS NOT NULL
GROUP BY a.proto, a.dest_port
ORDER BY alerts DESC, a.proto, a.dest_port
LIMIT {limit}
"""
TEMPLATES = {"alerts": _ALERTS, "signatures": _TOP_SIGNATURES, "talkers": _TOP_TALKERS,
             "ports": _TOP_PORTS}


def where(*, since: int | None = None, until: int | None = None, sensors: list[str] | None = None,
          sigs: list[tuple[int | None, int]] | None = None, min_severity: int | None = None,
          priority: int | None = None, postgresql: bool = False) -> tuple[str, list]:
    """The filters on alerts ``a`` as one condition ("TRUE": none) and its
    parameters, in SQLite's (``?``) or psycopg's (``%s``) style; ``query
    flows`` applies the same ones to the alerts it joins."""
    ph = "%s" if postgresql else "?"
    conds: list[str] = []
    params: list = []
    if since is not None:
        conds.append(f"a.ts_us >= {ph}")
        params.append(since)
    if until is not None:
        conds.append(f"a.ts_us < {ph}")
        params.append(until)
    if sensors:
        conds.append(f"a.sensor IN ({', '.join([ph] * len(sensors))})")
        params.extend(sensors)
    if sigs:
        alts = []
        for gid, sid in sigs:
            if gid is None:
                alts.append(f"a.sid = {ph}")
                params.append(sid)
            else:
                alts.append(f"(a.gid = {ph} AND a.sid = {ph})")
                params.extend((gid, sid))
        conds.append(f"({' OR '.join(alts)})")
    if min_severity is not None:
        conds.append(f"a.priority BETWEEN 1 AND {ph}")
        params.append(min_severity)
    if priority is not None:
        conds.append(f"a.priority = {ph}")
        params.append(priority)
    return " AND ".join(conds) or "TRUE", params


def build(what: str, *, since: int | None = None, until: int | None = None,
          sensors: list[str] | None = None, sigs: list[tuple[int | None, int]] | None = None,
          min_severity: int | None = None, priority: int | None = None, limit: int = 100,
          postgresql: bool = False) -> tuple[str, list]:
    """The statement for ``what`` (alerts | signatures | talkers | ports)
    and its parameters, in SQLite's (``?``) or psycopg's (``%s``) style."""
    ph = "%s" if postgresql else "?"
    cond, params = where(since=since, until=until, sensors=sensors, sigs=sigs, min_severity=min_severity,
                         priority=priority, postgresql=postgresql)
    template = TEMPLATES[what]
    if what == "talkers":  # the filter applies to both halves of the union
        params = params + params
    params.append((limit or None) if postgresql else (limit or -1))
    sql = template.strip().format(where=cond, limit=ph,
                                  collate=' COLLATE "C"' if postgresql else "")
    return sql, params


def literal_sql(sql: str, params: list, *, postgresql: bool = False) -> str:
    """The statement with its values written in (what --sql prints): numbers
    as they are, text quoted with '' doubled, PostgreSQL's unlimited LIMIT
    as ALL."""
    values = iter(params)

    def lit(_m: re.Match) -> str:
        v = next(values)
        if v is None:
            return "ALL"
        if isinstance(v, int):
            return str(v)
        return "'" + str(v).replace("'", "''") + "'"

    return re.sub(r"%s" if postgresql else r"\?", lit, sql) + ";"


def _ns_build(ns: argparse.Namespace, postgresql: bool) -> tuple[str, list]:
    what = "alerts" if ns.what == "alerts" else ns.kind
    return build(what, since=ns.since, until=ns.until, sensors=ns.sensor, sigs=ns.sig,
                 min_severity=ns.min_severity, priority=ns.priority, limit=ns.limit,
                 postgresql=postgresql)


def query(db: str, sql_sqlite: tuple[str, list], sql_pg: tuple[str, list]) -> list[dict]:
    """Rows from a SQLite file (read-only) or a postgresql:// URL."""
    if is_postgresql(db):
        from .sinks.postgresql import query as pg_query

        return pg_query(db, sql_pg[0], tuple(sql_pg[1]))
    uri = Path(sqlite_path(db)).resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql_sqlite[0], sql_sqlite[1])]
    finally:
        con.close()


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC (None stays None)."""
    if us is None:
        return None
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_PROTO = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}


def _proto(p: int | None) -> str:
    return "-" if p is None else _PROTO.get(p, str(p))


def run(ns: argparse.Namespace) -> int:
    """``ingest query alerts|top``: 0, 2 when --db is no store, 1 when
    reading it failed (as ``query flows``)."""
    pg = is_postgresql(ns.db)
    if ns.sql:
        sql, params = _ns_build(ns, pg)
        print(literal_sql(sql, params, postgresql=pg))
        return 0
    try:
        rows = query(ns.db, _ns_build(ns, False), _ns_build(ns, True))
    except sqlite3.Error as e:
        print(f"ingest: error: {ns.db}: {e}", file=sys.stderr)
        return 2 if any(m in str(e) for m in _NOT_A_STORE) else 1
    except ValueError as e:  # PostgreSQL: no store there (or none reachable), message redacted
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 1
    what = "alerts" if ns.what == "alerts" else ns.kind
    if what == "signatures":
        for r in rows:
            r["first_seen"], r["last_seen"] = iso(r["first_us"]), iso(r["last_us"])
    if ns.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    if what == "alerts":
        print(f"{'timestamp':31} {'sensor':12} {'prio':>4} {'gid:sid:rev':>18} {'proto':6} "
              f"{'src':>21} {'dest':>21} signature")
        for r in rows:
            sig = f"{r['gid']}:{r['sid']}:{r['rev']}"
            prio = "-" if r["priority"] is None else r["priority"]
            print(f"{r['timestamp']:31} {r['sensor']:12} {prio:>4} {sig:>18} {_proto(r['proto']):6} "
                  f"{endpoint(r['src_ip'], r['src_port']):>21} "
                  f"{endpoint(r['dest_ip'], r['dest_port']):>21} {r['signature'] or '-'}")
    elif what == "signatures":
        print(f"{'alerts':>8} {'prio':>4} {'gid:sid':>14} {'sensors':>7} {'last seen':27} signature")
        for r in rows:
            prio = "-" if r["top_priority"] is None else r["top_priority"]
            print(f"{r['alerts']:>8} {prio:>4} {str(r['gid']) + ':' + str(r['sid']):>14} "
                  f"{r['sensors']:>7} {r['last_seen']:27} {r['signature'] or '-'}")
    elif what == "talkers":
        print(f"{'alerts':>8} {'as src':>8} {'as dest':>8} {'prio':>4} address")
        for r in rows:
            prio = "-" if r["top_priority"] is None else r["top_priority"]
            print(f"{r['alerts']:>8} {r['as_src']:>8} {r['as_dest']:>8} {prio:>4} {r['ip']}")
    else:
        print(f"{'alerts':>8} {'proto':6} {'port':>5} {'sources':>7} {'targets':>7} {'prio':>4}")
        for r in rows:
            prio = "-" if r["top_priority"] is None else r["top_priority"]
            print(f"{r['alerts']:>8} {_proto(r['proto']):6} {r['port']:>5} {r['sources']:>7} "
                  f"{r['targets']:>7} {prio:>4}")
    print(f"{len(rows)} row(s)", file=sys.stderr)
    return 0
