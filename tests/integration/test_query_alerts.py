"""``ingest query alerts`` and ``ingest query top signatures|talkers|ports``
on both stores: alerts sent through real ``ingest decode`` runs (Snort
Alertpkt datagrams as sensor ``alpha``, Suricata EVE lines as sensor
``beta``) into a SQLite file and a PostgreSQL database at once, then every
answer compared with the same question computed here from the sent alerts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections import defaultdict

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4, ether_ipv6
from ingest.query_alerts import build, literal_sql, parse_time, query

from ..conftest import ROOT

pytestmark = pytest.mark.slow

T0 = 1_714_564_800  # 2024-05-01T12:00:00Z
PROTO_NUM = {"TCP": 6, "UDP": 17, "ICMP": 1, "IPv6-ICMP": 58}
ADDRS = ["10.0.0.1", "10.0.0.2", "10.0.0.10", "100.0.0.1", "192.0.2.7", "198.51.100.3",
         "2001:db8::1", "2001:db8::a"]
SIGS = [(1, 2000001, "ET TEST one"), (1, 2000002, "ET TEST two"), (1, 2000003, "ET TEST three"),
        (116, 2000003, "DECODE three"), (1, 2000005, "ET TEST five"), (3, 2000005, "SO five")]


def _alerts(seed: int = 7) -> list[dict]:
    """The alerts to send: sensor, time, signature, priority, 5-tuple."""
    rnd = random.Random(seed)
    out = []
    for i in range(240):
        sensor = "alpha" if i % 3 else "beta"
        gid, sid, msg = rnd.choice(SIGS[:4] if sensor == "beta" else SIGS)
        if sensor == "beta":
            gid = 1  # EVE's gid is Suricata's (1)
            msg = {2000003: "ET TEST three"}.get(sid, msg)
        v6 = rnd.random() < 0.2
        pool = ADDRS[6:] if v6 else ADDRS[:6]
        src, dst = rnd.choice(pool), rnd.choice(pool)
        proto = rnd.choice(["TCP", "UDP", "ICMP"])
        if v6 and proto == "ICMP":
            proto = "IPv6-ICMP"  # EVE's name for ICMPv6 (58)
        sport, dport = (None, None) if "ICMP" in proto else (rnd.randrange(1024, 65535),
                                                             rnd.choice([22, 53, 80, 443, 8080]))
        out.append({"sensor": sensor, "ts_us": (T0 + i * 60) * 1_000_000 + rnd.randrange(1_000_000),
                    "gid": gid, "sid": sid, "msg": msg, "priority": rnd.choice([1, 2, 2, 3, 3, 3]),
                    "proto": PROTO_NUM[proto], "proto_name": proto, "src_ip": src, "src_port": sport,
                    "dest_ip": dst, "dest_port": dport, "v6": v6})
    return out


def _alertpkt(a: dict, event_id: int) -> bytes:
    make = ether_ipv6 if a["v6"] else ether_ipv4
    pkt = make(a["src_ip"], a["dest_ip"], a["proto"], a["src_port"] or 0, a["dest_port"] or 0)
    return encode_alertpkt("snort", msg=a["msg"], gid=a["gid"], sid=a["sid"], rev=1,
                           priority=a["priority"], event_id=event_id, ts_sec=a["ts_us"] // 1_000_000,
                           ts_usec=a["ts_us"] % 1_000_000, packet=pkt)


def _eve(a: dict) -> str:
    sec, us = divmod(a["ts_us"], 1_000_000)
    import datetime as dt

    when = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    rec = {"timestamp": f"{when}.{us:06d}+0000", "event_type": "alert", "src_ip": a["src_ip"],
           "dest_ip": a["dest_ip"], "proto": a["proto_name"],
           "alert": {"action": "allowed", "gid": a["gid"], "signature_id": a["sid"], "rev": 1,
                     "signature": a["msg"], "category": "Misc activity", "severity": a["priority"]}}
    if a["src_port"] is not None:
        rec["src_port"], rec["dest_port"] = a["src_port"], a["dest_port"]
    return json.dumps(rec)


def _ingest(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ingest", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture(scope="module")
def sent_and_stores(tmp_path_factory, request):
    """The sent alerts, a SQLite store and (when the server binaries are
    there) a PostgreSQL store, both written by the same decode runs."""
    tmp = tmp_path_factory.mktemp("query-alerts")
    alerts = _alerts()
    alpha = [a for a in alerts if a["sensor"] == "alpha"]
    beta = [a for a in alerts if a["sensor"] == "beta"]
    (tmp / "alpha.bin").write_bytes(b"".join(_alertpkt(a, i + 1) for i, a in enumerate(alpha)))
    (tmp / "beta.json").write_text("".join(_eve(a) + "\n" for a in beta))
    db = tmp / "alerts.db"
    pg = None
    try:
        pg_server = request.getfixturevalue("pg_server")
        pg = pg_server.url(pg_server.new_database())
    except pytest.skip.Exception:
        pg = None
    sinks = ["--sink", f"sqlite:{db}"] + (["--sink", pg] if pg else [])
    for name, f in (("alpha", "alpha.bin"), ("beta", "beta.json")):
        p = _ingest("decode", str(tmp / f), "--sensor-name", name, *sinks, "--no-progress")
        assert p.returncode == 0, p.stderr
    return alerts, str(db), pg


def _match(a, since=None, until=None, sensors=None, sigs=None, min_severity=None, priority=None):
    return ((since is None or a["ts_us"] >= since) and (until is None or a["ts_us"] < until)
            and (not sensors or a["sensor"] in sensors)
            and (not sigs or any((g is None or a["gid"] == g) and a["sid"] == s for g, s in sigs))
            and (min_severity is None or 1 <= a["priority"] <= min_severity)
            and (priority is None or a["priority"] == priority))


def expect_alerts(alerts, limit, **f):
    got = sorted((a for a in alerts if _match(a, **f)), key=lambda a: -a["ts_us"])
    return [(a["ts_us"], a["sensor"], a["gid"], a["sid"], a["msg"], a["priority"], a["proto"],
             a["src_ip"], a["src_port"], a["dest_ip"], a["dest_port"]) for a in got][:limit or None]


def expect_signatures(alerts, limit, **f):
    acc: dict = defaultdict(list)
    for a in alerts:
        if _match(a, **f):
            acc[(a["gid"], a["sid"])].append(a)
    rows = [(g, s, max(x["msg"] for x in xs), len(xs), min(x["priority"] for x in xs),
             len({x["sensor"] for x in xs}), min(x["ts_us"] for x in xs), max(x["ts_us"] for x in xs))
            for (g, s), xs in acc.items()]
    return sorted(rows, key=lambda r: (-r[3], r[0], r[1]))[:limit or None]


def expect_talkers(alerts, limit, **f):
    acc: dict = defaultdict(lambda: [0, 0, 0, 99])
    for a in alerts:
        if not _match(a, **f):
            continue
        for ip, role in ((a["src_ip"], 1), (a["dest_ip"], 2)):
            if role == 2 and ip == a["src_ip"]:
                continue
            r = acc[ip]
            r[0] += 1
            r[role] += 1
            r[3] = min(r[3], a["priority"])
    rows = [(ip, *v) for ip, v in acc.items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:limit or None]


def expect_ports(alerts, limit, **f):
    acc: dict = defaultdict(list)
    for a in alerts:
        if _match(a, **f) and a["dest_port"] is not None:
            acc[(a["proto"], a["dest_port"])].append(a)
    rows = [(p, port, len(xs), len({x["src_ip"] for x in xs}), len({x["dest_ip"] for x in xs}),
             min(x["priority"] for x in xs)) for (p, port), xs in acc.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))[:limit or None]


SHAPE = {
    "alerts": (expect_alerts, ("ts_us", "sensor", "gid", "sid", "signature", "priority", "proto",
                               "src_ip", "src_port", "dest_ip", "dest_port")),
    "signatures": (expect_signatures, ("gid", "sid", "signature", "alerts", "top_priority", "sensors",
                                       "first_us", "last_us")),
    "talkers": (expect_talkers, ("ip", "alerts", "as_src", "as_dest", "top_priority")),
    "ports": (expect_ports, ("proto", "port", "alerts", "sources", "targets", "top_priority")),
}
MID = T0 * 1_000_000 + 40 * 60 * 1_000_000
END = T0 * 1_000_000 + 200 * 60 * 1_000_000
FILTERS = [
    {},
    {"since": MID, "until": END},
    {"sensors": ["beta"], "min_severity": 2},
    {"sensors": ["alpha", "beta"], "priority": 3, "since": MID},
    {"sigs": [(1, 2000003), (None, 2000005)]},
    {"sigs": [(116, 2000003)], "until": END},
]


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
@pytest.mark.parametrize("what", sorted(SHAPE))
def test_answers_equal_the_computation_from_the_sent_alerts(sent_and_stores, store, what):
    alerts, db, pg = sent_and_stores
    if store == "postgresql" and pg is None:
        pytest.skip("no PostgreSQL server binaries (tests/pg.py)")
    url = db if store == "sqlite" else pg
    expect, cols = SHAPE[what]
    for f in FILTERS:
        for limit in (0, 4):
            want = expect(alerts, limit, **f)
            kw = dict(f, limit=limit)
            rows = query(url, build(what, **kw), build(what, postgresql=True, **kw))
            got = [tuple(r[c] for c in cols) for r in rows]
            assert got == want, (what, f, limit)
            assert want or limit == 0 or not f  # the filters select something
    assert expect(alerts, 0)  # and the unfiltered answer is not empty


def test_cli_json_text_and_sql_on_both_stores(sent_and_stores):
    alerts, db, pg = sent_and_stores
    since = "2024-05-01T12:40:00Z"
    assert parse_time(since) == MID
    for url in [db, f"sqlite:{db}"] + ([pg] if pg else []):
        p = _ingest("query", "top", "signatures", "--db", url, "--since", since, "--sensor", "alpha",
                    "--limit", "0", "--json")
        assert p.returncode == 0, p.stderr
        got = [json.loads(x) for x in p.stdout.splitlines()]
        want = expect_signatures(alerts, 0, since=MID, sensors=["alpha"])
        assert [(r["gid"], r["sid"], r["alerts"]) for r in got] == [(w[0], w[1], w[3]) for w in want]
        assert got[0]["first_seen"].startswith("2024-05-01T")
        p = _ingest("query", "alerts", "--db", url, "--sig", "2000005", "--priority", "1", "--limit", "3")
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        want_a = expect_alerts(alerts, 3, sigs=[(None, 2000005)], priority=1)
        assert len(lines) == 1 + len(want_a) and lines[0].startswith("timestamp")
        assert all(w[4] in line for w, line in zip(want_a, lines[1:], strict=True))
        p = _ingest("query", "top", "ports", "--db", url, "--min-severity", "1", "--limit", "0", "--sql")
        assert p.returncode == 0, p.stderr
        printed = p.stdout
        want_p = expect_ports(alerts, 0, min_severity=1)
        if url == pg:
            from ingest.sinks.postgresql import query as pg_query

            rows = pg_query(pg, printed, ())
            assert [(r["proto"], r["port"], r["alerts"]) for r in rows] == [w[:3] for w in want_p]
        elif shutil.which("sqlite3"):
            out = subprocess.run(["sqlite3", "-bail", "-batch", db], input=printed, capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert [tuple(map(int, x.split("|")[:3])) for x in out.stdout.splitlines()] == \
                [w[:3] for w in want_p]


def test_usage_errors_and_a_missing_store(tmp_path):
    p = _ingest("query", "alerts", "--since", "yesterday-ish")
    assert p.returncode == 2 and "is no time" in p.stderr
    p = _ingest("query", "alerts", "--sig", "1:x")
    assert p.returncode == 2 and "is no signature" in p.stderr
    p = _ingest("query", "top", "talkers", "--priority", "1", "--min-severity", "2")
    assert p.returncode == 2 and "not allowed with argument" in p.stderr
    # a sensor name with a quote is written into --sql as a SQL string
    sql = literal_sql(*build("alerts", sensors=["o'x"], sigs=[(None, 5)], limit=0))
    assert "a.sensor IN ('o''x')" in sql and sql.endswith("LIMIT -1;")
    sql = literal_sql(*build("alerts", limit=0, postgresql=True), postgresql=True)
    assert "WHERE TRUE" in sql and sql.endswith("LIMIT ALL;")
    p = _ingest("query", "top", "talkers", "--db", str(tmp_path / "none.db"))
    assert p.returncode == 2 and "unable to open database" in p.stderr
    con = sqlite3.connect(tmp_path / "empty.db")
    con.execute("CREATE TABLE x (y)")
    con.close()
    p = _ingest("query", "alerts", "--db", str(tmp_path / "empty.db"))
    assert p.returncode == 2 and "no such table" in p.stderr


def test_readme_sql_is_what_sql_prints_and_it_answers(sent_and_stores):
    """The README's ``$ ingest query ... --sql`` blocks are the statements
    the command prints (so the documentation cannot drift), and each runs
    on the SQLite store as printed."""
    import re

    _, db, _ = sent_and_stores
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n\$ ingest query (.*? --sql)\n(.*?)```", readme, re.S)
    assert len(blocks) >= 4 and {b[0].split()[0] for b in blocks} == {"alerts", "top"}
    for cmd, printed in blocks:
        p = _ingest("query", *cmd.split())
        assert p.returncode == 0 and p.stdout == printed, cmd
        con = sqlite3.connect(db)
        try:
            con.execute(printed.rstrip().rstrip(";")).fetchall()
        finally:
            con.close()
