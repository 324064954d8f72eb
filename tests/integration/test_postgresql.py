"""``--sink postgresql://...`` against a real PostgreSQL server (tests/pg.py):
the same rows as the SQLite store, per sensor, from every input kind of a
real ``ingest listen``; a server restarted mid-stream loses and doubles
nothing; a lost COMMIT answer doubles nothing; a refused row is isolated;
a newer schema, a foreign table or an unreachable server refuse the start
(exit 2); the password never shows."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg
import pytest

from ingest import batch as B
from ingest import deadletter
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.sinks import rows as R
from ingest.sinks.base import open_sink
from ingest.sinks.errors import DataError
from ingest.sinks.postgresql import PostgresDown, redact

from ..conftest import ROOT
from ..pg import PASSWORD, CommitCutter, wait_until
from ._store import eve_lines
from ._util import count
from ._util import wait_until as wait_for

pytestmark = pytest.mark.slow

ALERTS = ", ".join(R.ALERT_COLUMNS)
FLOWS = ", ".join(f'"{c}"' if c == "end" else c for c in R.FLOW_COLUMNS)


def pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute(sql).fetchall()


def lite_rows(db, sql: str) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _sorted(rows):
    return sorted(rows, key=repr)


def gen(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "ingest", "gen", "--json", *args], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def eve_text(n: int, base: int) -> str:
    """n alerts and their n flows; flow ids from base (distinct per input)."""
    out = []
    for line in eve_lines(n):
        rec = json.loads(line)
        rec["flow_id"] += base
        out.append(json.dumps(rec))
    return "\n".join(out) + "\n"


class Sensor:
    """One ``ingest listen`` with every input kind, writing to PostgreSQL and
    its own SQLite store."""

    def __init__(self, tmp, name: str, pg_url: str, run_ingest) -> None:
        d = tmp / name
        d.mkdir()
        self.name, self.dir, self.db = name, d, d / "alerts.db"
        self.socks = {k: d / k for k in ("snort", "by2", "by2sync", "edgram", "estream")}
        (d / "u2").mkdir()
        gen("--kind", "unified2", "--to", str(d / "u2" / "snort.u2"), "--count", "150",
            "--rotate-events", "60", "--seed", str(len(name)))
        (d / "eve.json").write_text(eve_text(40, 0))
        (d / "dgram.json").write_text(eve_text(30, 10_000))
        (d / "stream.json").write_text(eve_text(30, 20_000))
        self.proc = run_ingest(
            ["listen", "--sensor-name", name, "--snort", str(self.socks["snort"]),
             "--barnyard2", str(self.socks["by2"]), "--barnyard2-sync", str(self.socks["by2sync"]),
             "--eve-dgram", str(self.socks["edgram"]), "--eve-stream", str(self.socks["estream"]),
             "--eve-file", str(d / "eve.json"), "--unified2", str(d / "u2" / "snort.u2"),
             "--sink", pg_url, "--sink", f"sqlite:{self.db}", "--dead-letter", str(d / "dl.bin"),
             "--stats-interval", "0"],
            wait_for=list(self.socks.values()))
        #: alerts and flows this sensor will have sent
        self.alerts = 150 + 40 + 30 + 30
        self.flows = 40 + 30 + 30

    def send(self) -> None:
        s = self.socks
        self.alerts += gen("--kind", "snort", "--to", str(s["snort"]), "--count", "200")["sent"]
        self.alerts += gen("--kind", "barnyard2", "--to", str(s["by2"]), "--count", "100")["sent"]
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(str(s["by2sync"]))
        c.settimeout(60)
        pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
        for i in range(20):
            c.send(encode_alertpkt("barnyard2", sid=300 + i, msg="sync", event_id=50_000 + i, packet=pkt))
            assert len(c.recv(1)) == 1
        c.close()
        self.alerts += 20
        for kind, f in (("eve-dgram", "dgram.json"), ("eve-stream", "stream.json")):
            sock = s["edgram" if kind == "eve-dgram" else "estream"]
            gen("--kind", kind, "--to", str(sock), "--eve-file", str(self.dir / f), "--offline",
                "--count", "60")

    def stop(self) -> dict:
        wait_until(lambda: self.db.exists() and lite_rows(self.db, "SELECT count(*) FROM alerts")[0][0]
                   >= self.alerts and lite_rows(self.db, "SELECT count(*) FROM flows")[0][0] >= self.flows,
                   f"{self.alerts} alerts from {self.name}", timeout=120)
        rc, st = self.proc.stop()
        assert rc == 0, self.proc.stderr()
        return st


def test_every_input_kind_gives_the_same_rows_in_both_stores(tmp_path, pg_url, run_ingest):
    """Two sensors at once, every input kind each, into one PostgreSQL
    database and each its own SQLite store: per sensor, the same rows."""
    sensors = [Sensor(tmp_path, name, pg_url, run_ingest) for name in ("dmz-1", "core.2")]
    threads = [threading.Thread(target=s.send) for s in sensors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in sensors:
        st = s.stop()
        assert st["dispatched"] == {redact(pg_url): s.alerts, f"sqlite:{s.db}": s.alerts}, st
    for s in sensors:
        where = f"WHERE sensor = '{s.name}'"
        lite = _sorted(lite_rows(s.db, f"SELECT {ALERTS} FROM alerts"))
        assert len(lite) == s.alerts
        assert {r[2] for r in lite} == {"snort", "barnyard2", "unified2", "eve"}
        assert _sorted(pg_rows(pg_url, f"SELECT {ALERTS} FROM alerts {where}")) == lite
        lite_flows = _sorted(lite_rows(s.db, f"SELECT {FLOWS} FROM flows"))
        assert len(lite_flows) == s.flows
        assert _sorted(pg_rows(pg_url, f"SELECT {FLOWS} FROM flows {where}")) == lite_flows
    sigs = set()
    for s in sensors:
        sigs |= set(lite_rows(s.db, "SELECT gid, sid, rev, msg, refs FROM signatures"))
    assert set(pg_rows(pg_url, "SELECT gid, sid, rev, msg, refs FROM signatures")) == sigs
    # the view joins the same way in both
    one = sensors[0]
    assert (_sorted(pg_rows(pg_url, f"SELECT {ALERTS}, signature FROM alerts_v WHERE sensor = '{one.name}'"))
            == _sorted(lite_rows(one.db, f"SELECT {ALERTS}, signature FROM alerts_v")))


def test_an_outage_mid_stream_loses_and_doubles_nothing(tmp_path, pg_server, pg_url, run_ingest):
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", pg_url, "--sink", f"sqlite:{db}",
                    "--stats-interval", "0", "--sensor-name", "restart"], wait_for=[sock])
    n = 3000
    sent = threading.Event()

    def sender() -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1000, 80)
        for i in range(n):
            s.sendto(encode_alertpkt("snort", msg=f"m{i % 7}", sid=1 + i % 50, event_id=i + 1,
                                     ts_sec=1_700_000_000 + i, packet=pkt), str(sock))
            if i % 20 == 0:
                time.sleep(0.01)  # about 2 k/s: the restart lands mid-stream
        s.close()
        sent.set()

    t = threading.Thread(target=sender)
    t.start()
    wait_until(lambda: pg_rows(pg_url, "SELECT count(*) FROM alerts")[0][0] > 300, "the first alerts")
    # an outage: the server goes away at once (immediate: no shutdown
    # checkpoint, every connection cut, a recovery at the next start) and
    # the rest of the stream arrives while it is away
    pg_server.stop("immediate")
    t.join()
    pg_server.start()
    wait_until(lambda: pg_rows(pg_url, "SELECT count(*) FROM alerts")[0][0] >= n, "every alert", 120)
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    name = redact(pg_url)
    assert st["sink_errors"].get(name, 0) >= 1, st  # the restart did cut the sink off
    assert st["dispatched"] == {name: n, f"sqlite:{db}": n}
    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT event_id) FROM alerts") == [(n, n)]
    assert lite_rows(db, "SELECT count(*), count(DISTINCT event_id) FROM alerts") == [(n, n)]
    assert (_sorted(pg_rows(pg_url, f"SELECT {ALERTS} FROM alerts"))
            == _sorted(lite_rows(db, f"SELECT {ALERTS} FROM alerts")))


def _snort_item(first: int, n: int):
    a = B.empty(n)
    a["source"], a["gid"], a["sid"], a["rev"] = B.SRC_SNORT, 1, 7, 1
    a["event_id"] = np.arange(first, first + n)
    a["ts_us"] = 1_700_000_000_000_000 + a["event_id"].astype(np.int64)
    return Enricher().apply(B.AlertBatch(a, [], "t"))


def test_a_lost_commit_answer_doubles_nothing(pg_server, pg_url):
    """The connection breaks after the server committed, before the sink
    heard it (a proxy swallows the answer): the retry asks the server and
    writes nothing.  Snort alerts have no unique key, so without that
    check the batch would be stored twice."""
    cutter = CommitCutter(pg_server)
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    sink = open_sink(cutter.url(db), sensor="s")

    async def go() -> None:
        await sink.write(_snort_item(1, 10))
        cutter.cut_next_commit = True
        item = _snort_item(11, 10)
        with pytest.raises(PostgresDown, match="connection lost"):
            await sink.write(item)
        assert cutter.cuts == 1
        await sink.write(item)  # the runtime's retry of the same batch
        await sink.write(_snort_item(21, 10))
        await sink.aclose()

    try:
        asyncio.run(go())
    finally:
        cutter.close()
    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT event_id) FROM alerts") == [(30, 30)]


def test_pipelined_writes_are_acknowledged_after_their_commit_in_order(pg_url):
    """The sink's two connections write two batches at once (the runtime's
    pipelined writes): every batch's acknowledgement runs only once its
    rows are committed (seen from another connection at that moment), and
    in the order the batches were taken."""
    from ingest.runtime import Pipeline

    sink = open_sink(pg_url, sensor="s")
    assert sink.concurrent_writes == 2
    p = Pipeline([], [sink], linger=0.0, batch_max=500, stats_interval=3600)
    seen: list[tuple[int, int]] = []
    watcher = psycopg.connect(pg_url, autocommit=True)
    writers: set[int] = set()

    def acker(i: int):
        def ack() -> None:
            got = watcher.execute("SELECT count(*) FROM alerts WHERE event_id BETWEEN %s AND %s",
                                  (i * 1000, i * 1000 + 499)).fetchone()[0]
            seen.append((i, got))
            writers.add(watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ingest' "
                                        "AND datname = current_database()").fetchone()[0])
        return ack

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        for i in range(12):
            a = B.empty(500)
            a["source"], a["gid"], a["sid"], a["rev"] = B.SRC_SNORT, 1, 7, 1
            a["event_id"] = np.arange(i * 1000, i * 1000 + 500)
            a["ts_us"] = 1_700_000_000_000_000 + a["event_id"].astype(np.int64)
            b = B.AlertBatch(a, [], "t")
            b.acks.append(acker(i))
            assert p.reserve(500)
            p.submit(b)
        await wait_for_async(lambda: len(seen) == 12)
        stop.set()
        return await task

    try:
        assert asyncio.run(go()) == 0
    finally:
        watcher.close()
    assert seen == [(i, 500) for i in range(12)]
    assert writers == {2}
    assert pg_rows(pg_url, "SELECT count(*), count(DISTINCT event_id) FROM alerts") == [(6000, 6000)]


async def wait_for_async(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_the_writers_parameter(pg_url):
    """``writers=N`` in the URL: that many connections (libpq never sees the
    parameter); a bad N is a clear start-up error."""
    sep = "&" if "?" in pg_url else "?"
    sink = open_sink(f"{pg_url}{sep}writers=1", sensor="s")
    assert sink.concurrent_writes == 1
    asyncio.run(sink.aclose())
    for bad in ("0", "x", "99"):
        with pytest.raises(ValueError, match="writers must be an integer from 1 to 16"):
            open_sink(f"{pg_url}{sep}writers={bad}", sensor="s")


def test_redelivered_records_are_stored_once(pg_url):
    """A batch holding records the store already has (a re-delivered
    message, a file re-read after a crash) adds only the others."""
    lines = eve_text(5, 0).encode()
    sink = open_sink(pg_url, sensor="s")

    def item(keys):
        b = decode_lines(lines).batch
        b.keys = np.array(keys, np.int64)
        return Enricher().apply(b)

    async def go() -> None:
        await sink.write(item([1, 2, 3, 4, 5]))
        await sink.write(item([4, 5, 6, 7, 8]))  # 4 and 5 again, 6..8 new
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT replay_key FROM alerts ORDER BY replay_key") == [(k,) for k in range(1, 9)]
    assert pg_rows(pg_url, "SELECT count(*) FROM flows") == [(5,)]  # replaced, not added


def make_store(url: str) -> None:
    """Create the store's schema (what a sink does at start-up), and close."""
    asyncio.run(open_sink(url).aclose())


def test_a_refused_row_is_isolated(tmp_path, pg_url, run_ingest):
    """A store constraint refuses one alert: it alone is dead-lettered, every
    other alert is stored, the SQLite store has them all, exit 1."""
    make_store(pg_url)  # the schema, then a rule of this site's own
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("ALTER TABLE alerts ADD CONSTRAINT no_666 CHECK (sid <> 666)")
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dl.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", pg_url, "--sink", f"sqlite:{db}",
                    "--dead-letter", str(dl), "--stats-interval", "0", "--linger-ms", "50"],
                   wait_for=[sock])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for i in range(40):
        s.sendto(encode_alertpkt("snort", msg="m", sid=666 if i == 17 else 1, event_id=i + 1), str(sock))
    s.close()
    wait_until(lambda: db.exists() and lite_rows(db, "SELECT count(*) FROM alerts")[0][0] == 40, "40 alerts")
    rc, st = p.stop()
    assert rc == 1, p.stderr()
    assert st["dropped"] == {"sink_rejected": 1}
    assert pg_rows(pg_url, "SELECT count(*), min(sid), max(sid) FROM alerts") == [(39, 1, 1)]
    [(head, body)] = list(deadletter.read(str(dl)))
    assert head["reason"] == "sink_rejected" and json.loads(body)["ingest"]["event_id"] == 18
    assert "no_666" in p.stderr()


def test_a_newer_schema_is_refused(tmp_path, pg_url, run_ingest):
    make_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO schema_version (version) VALUES (99)")
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", pg_url])
    assert p.proc.wait(timeout=60) == 2
    assert "schema version 99 was written by a newer ingest" in p.stderr()
    assert not sock.exists()


def test_a_table_ingest_did_not_create_is_refused(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE alerts (whatever text)")
    with pytest.raises(ValueError, match="no schema_version: not a store ingest created"):
        open_sink(pg_url)


def test_an_unreachable_server_is_a_startup_error(tmp_path, run_ingest):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    url = f"postgresql://ingest:{PASSWORD}@127.0.0.1:{port}/alerts"
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", url])
    assert p.proc.wait(timeout=60) == 2
    err = p.stderr()
    assert f"PostgreSQL store postgresql://ingest:***@127.0.0.1:{port}/alerts: cannot connect" in err
    assert PASSWORD not in err and len(err.strip().splitlines()) == 1
    assert not sock.exists()


def test_password_never_shows(tmp_path, pg_server, pg_url, run_ingest):
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    url = pg_server.url(db, tcp=True, password=True)
    assert PASSWORD in url
    # wrong password: exit 2, the message without the password given
    bad = url.replace(PASSWORD, "wrong-" + PASSWORD)
    p = run_ingest(["listen", "--snort", str(tmp_path / "s1"), "--sink", bad])
    assert p.proc.wait(timeout=60) == 2
    assert "password authentication failed" in p.stderr() and PASSWORD not in p.stderr()
    # right password: log lines and stats keys show *** instead
    sock = tmp_path / "s2"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", url, "--stats-interval", "0.2"], wait_for=[sock])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(encode_alertpkt("snort", msg="m", sid=1), str(sock))
    s.close()
    wait_until(lambda: pg_rows(pg_url, "SELECT count(*) FROM alerts")[0][0] == 1, "the alert")
    time.sleep(0.5)  # a periodic stats line or two (content checked, not timing)
    rc, st = p.stop()
    assert rc == 0
    shown = redact(url)
    assert shown.count("***") == 1 and st["dispatched"] == {shown: 1}
    assert PASSWORD not in p.stderr() and shown in p.stderr()


def test_credentials_from_a_passfile(tmp_path, pg_server, pg_url):
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:{db}:ingest_test:{PASSWORD}\n")
    passfile.chmod(0o600)  # libpq ignores a passfile others may read
    url = pg_server.url(db, tcp=True) + f"?passfile={passfile}"
    sink = open_sink(url, sensor="pf")

    async def go() -> None:
        await sink.write(_snort_item(1, 3))
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT DISTINCT sensor FROM alerts") == [("pf",)]
    passfile.write_text("")  # no password: refused, cleanly
    with pytest.raises(ValueError, match="cannot connect"):
        open_sink(url)


def test_values_postgresql_refuses_are_the_datas_fault(pg_url):
    """A trigger that raises, as a site may add: DataError (the runtime
    isolates the record), and the sink goes on."""
    sink = open_sink(pg_url, sensor="s")
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE FUNCTION no_13() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "IF NEW.event_id = 13 THEN RAISE EXCEPTION 'thirteen'; END IF; RETURN NEW; END $$")
        c.execute("CREATE TRIGGER no_13 BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION no_13()")

    async def go() -> None:
        with pytest.raises(DataError, match="thirteen"):
            await sink.write(_snort_item(10, 5))
        await sink.write(_snort_item(20, 5))
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT count(*) FROM alerts") == [(5,)]


def test_redact():
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("postgres://u:p%40x@h1:5432,h2/db?sslmode=require&password=zz&PassWord=y") == (
        "postgres://u:***@h1:5432,h2/db?sslmode=require&password=***&PassWord=***")
    assert redact("postgresql://u@h/db?sslpassword=k&passfile=/etc/pgpass") == (
        "postgresql://u@h/db?sslpassword=***&passfile=/etc/pgpass")
    assert redact("postgresql:///db?host=/run/pg") == "postgresql:///db?host=/run/pg"
    assert redact("postgresql://u:p@/db") == "postgresql://u:***@/db"


def _query(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ingest", "query", "flows", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _answer(p: subprocess.CompletedProcess) -> list[dict]:
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    for r in rows:  # SQLite's group_concat has no set order
        r["signatures"] = sorted(r["signatures"].split(","))
    return rows


def test_high_priority_flows_across_two_sensors(tmp_path, pg_url):
    """Two sensors, two Suricatas, the same flow ids: ``ingest query flows``
    on the PostgreSQL store answers for both sensors at once, each flow
    joined to its own sensor's alerts only, and per sensor exactly as that
    sensor's SQLite store answers; the SQL ``--sql`` prints for PostgreSQL
    gives the same flows."""
    text = eve_text(30, 0)  # severities 1, 2, 3 in turn
    calm = text.replace('"severity": 1', '"severity": 3')  # the other sensor: nothing high
    for name, lines in (("east", text), ("west", calm)):
        db = tmp_path / f"{name}.db"
        sinks = [open_sink(pg_url, sensor=name), open_sink(f"sqlite:{db}", sensor=name)]

        async def go(sinks=sinks, lines=lines) -> None:
            for s in sinks:
                await s.write(Enricher().apply(decode_lines(lines.encode()).batch))
                await s.aclose()

        asyncio.run(go())
    assert pg_rows(pg_url, "SELECT sensor, count(*) FROM flows GROUP BY 1 ORDER BY 1") == [
        ("east", 30), ("west", 30)]
    for sev, per_sensor in (("1", {"east": 10, "west": 0}), ("2", {"east": 20, "west": 10})):
        central = _answer(_query("--db", pg_url, "--min-severity", sev, "--limit", "0", "--json"))
        for name, n in per_sensor.items():
            mine = [r for r in central if r["sensor"] == name]
            assert len(mine) == n
            assert mine == _answer(_query("--db", f"sqlite:{tmp_path / name}.db", "--min-severity", sev,
                                          "--limit", "0", "--json"))
        assert {r["top_priority"] for r in central} <= set(range(1, int(sev) + 1))
        printed = _query("--db", pg_url, "--sql", "--min-severity", sev, "--limit", "0")
        assert printed.returncode == 0 and "string_agg" in printed.stdout
        ran = pg_rows(pg_url, printed.stdout)
        assert [(r[0], r[-1]) for r in ran] == [(r["flow_id"], r["sensor"]) for r in central]
    # the README's SQL for psql asks the same question
    readme = (ROOT / "README.md").read_text()
    part = readme[readme.index("The question across every sensor"):]
    documented = pg_rows(pg_url, re.search(r"```sql\n(.*?)```", part, re.S).group(1))
    high = _answer(_query("--db", pg_url, "--min-severity", "1", "--limit", "0", "--json"))
    assert [(r[1], r[0]) for r in documented] == [(r["flow_id"], r["sensor"]) for r in high]
    # the table form, and the limit
    p = _query("--db", pg_url, "--min-severity", "1", "--limit", "3")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 4 and "3 flow(s)" in p.stderr


def test_query_refuses_what_is_no_store(pg_server, pg_url):
    p = _query("--db", pg_url)  # an empty database
    assert p.returncode == 2 and "not an ingest store" in p.stderr, p.stderr
    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    bad = pg_server.url(db, tcp=True, password=True).replace(PASSWORD, "wrong-" + PASSWORD)
    p = _query("--db", bad)
    assert p.returncode == 2 and "cannot connect" in p.stderr and PASSWORD not in p.stderr, p.stderr


def test_hostile_values_have_a_clear_outcome_per_record(tmp_path, pg_url, run_ingest):
    """NUL bytes in every kind of text, a huge signature, a flow counter past
    64 bits, a line past --eve-max-line, between ordinary records: each has
    its outcome (stored alike in both stores, NUL as U+FFFD; or
    dead-lettered with its reason) and everything after it flows."""
    recs = [json.loads(x) for x in eve_lines(6)]
    recs[0]["alert"]["signature"] = "nul\u0000in\u0000sig"
    recs[0]["alert"]["category"] = "\u0000"
    recs[0]["app_proto"] = "ht\u0000tp"
    recs[1]["flow"]["state"] = "clo\u0000sed"
    recs[1]["src_ip"] = "10.0.0.\u0000"
    recs[2]["alert"]["signature"] = "H" * 700_000  # huge, under the line limit: stored
    recs[3]["flow"]["pkts_toserver"] = 2**70  # no 64-bit integer: NULL in both stores
    recs[4]["alert"]["signature"] = "X" * 5_000_000  # over --eve-max-line (and the 4 MiB read): dead-lettered
    lines = [json.dumps(r) for r in recs]
    eve, db, dl = tmp_path / "eve.json", tmp_path / "a.db", tmp_path / "dl.bin"
    eve.write_text("\n".join(lines) + "\n")
    p = run_ingest(["listen", "--eve-file", str(eve), "--eve-max-line", str(1 << 20), "--sink", pg_url,
                    "--sink", f"sqlite:{db}", "--dead-letter", str(dl), "--stats-interval", "0",
                    "--sensor-name", "hostile"])
    wait_for(lambda: count(db) == 5 and count(db, "SELECT count(*) FROM flows") == 6, p,
             "5 alerts, 6 flows")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["malformed"] == {"oversized": 1}, st
    assert st["dispatched"] == {redact(pg_url): 5, f"sqlite:{db}": 5}
    assert [h["reason"] for h, _ in deadletter.read(str(dl))] == ["oversized"]
    lite = _sorted(lite_rows(db, f"SELECT {ALERTS} FROM alerts"))
    assert _sorted(pg_rows(pg_url, f"SELECT {ALERTS} FROM alerts")) == lite
    assert (_sorted(pg_rows(pg_url, f"SELECT {FLOWS} FROM flows"))
            == _sorted(lite_rows(db, f"SELECT {FLOWS} FROM flows")))
    sigs = pg_rows(pg_url, "SELECT msg FROM signatures ORDER BY length(msg)")
    assert ("nul\ufffdin\ufffdsig",) in sigs and len(sigs[-1][0]) == 700_000
    assert pg_rows(pg_url, "SELECT count(*) FROM flows WHERE pkts_toserver IS NULL") == [(1,)]
    assert pg_rows(pg_url, "SELECT count(*) FROM alerts WHERE category = '\ufffd'") == [(1,)]


def test_what_psycopg_refuses_to_send_is_the_datas_fault(pg_url):
    """A value psycopg itself refuses (no SQLSTATE: the server never saw it)
    is DataError, not a down store retried forever; a lost server is not."""
    from ingest.sinks.postgresql import data_fault

    with psycopg.connect(pg_url) as c:
        with pytest.raises(psycopg.DataError) as nul:
            c.execute("SELECT %s::text", ("a\0b",))
    assert nul.value.sqlstate is None and data_fault(nul.value)
    assert not data_fault(psycopg.OperationalError("connection lost"))


def test_a_redelivery_first_on_a_new_connection_is_stored_once(pg_url):
    """A collector restarted after a crash: the first batch its new
    connection writes is a re-delivery (alerts and flows the store has).
    The COPY fails on a unique key and the batch is written again through
    the temporary tables, which the failed transaction took with it."""
    lines = eve_text(5, 0).encode()

    def item():
        b = decode_lines(lines).batch
        b.keys = np.arange(1, 6, dtype=np.int64)
        return Enricher().apply(b)

    async def write_once() -> None:
        sink = open_sink(pg_url, sensor="s")
        try:
            await asyncio.wait_for(sink.write(item()), 60)
        finally:
            await sink.aclose()

    asyncio.run(write_once())
    asyncio.run(write_once())  # a new process, a new connection, the same records
    assert pg_rows(pg_url, "SELECT count(*) FROM alerts") == [(5,)]
    assert pg_rows(pg_url, "SELECT count(*) FROM flows") == [(5,)]


def test_a_version_1_store_is_brought_to_version_3(pg_url):
    """The flows table of schema version 1 gets the canonical flow record's
    columns and a nullable flow_id in place; its rows stay, as source 'eve';
    the same EVE flow then gives the row the SQLite store has."""
    make_store(pg_url)
    v1 = R.FLOW_COLUMNS[:R.FLOW_COLUMNS.index("sensor") + 1]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP VIEW flows_v")  # (version 5's)
        c.execute("DROP TABLE flows")
        c.execute("CREATE TABLE flows (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                  "flow_id bigint NOT NULL, event_type text NOT NULL, "
                  + ", ".join(f'"{n}" {"text" if n in R.FLOW_TEXT else "bigint"}' for n in v1[2:])
                  + ", CONSTRAINT flows_key UNIQUE (sensor, flow_id, event_type, src_ip, src_port))")
        c.execute("INSERT INTO flows (flow_id, event_type, src_ip, src_port, sensor) VALUES (5, 'flow', 'a', 1, 'old')")
        c.execute("DELETE FROM schema_version")
        c.execute("INSERT INTO schema_version (version) VALUES (1)")
    line = (b'{"timestamp":"2025-09-16T10:09:05.540950-0400","flow_id":9,"event_type":"flow","src_ip":"10.0.0.1",'
            b'"src_port":5,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","vlan":[7],"flow":{"pkts_toserver":7,'
            b'"pkts_toclient":4,"bytes_toserver":558,"bytes_toclient":461},"tcp":{"tcp_flags_ts":"1f","tcp_flags_tc":"1b"}}')
    sink = open_sink(pg_url, sensor="s")

    async def go():
        await sink.write(Enricher().apply(decode_lines(line + b"\n").batch))
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT max(version) FROM schema_version") == [(6,)]
    cols = [r[0] for r in pg_rows(pg_url, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'flows' ORDER BY ordinal_position")]
    assert sorted(cols) == sorted(["id", *R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS])
    assert pg_rows(pg_url, "SELECT flow_id, source, sensor FROM flows WHERE flow_id = 5") == [(5, "eve", "old")]
    assert pg_rows(pg_url, "SELECT source, ip_proto, ip_ver, vlan, tcp_flags, tcp_flags_rev FROM flows "
                           "WHERE flow_id = 9") == [("eve", 6, 4, 7, 0x1F, 0x1B)]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO flows (event_type, sensor) VALUES ('netflow', 's')")  # flow_id may be NULL now


def test_a_version_3_store_gets_zeeks_columns_and_stores_a_conn_log(pg_url):
    """Schema 4 (Zeek conn.log): a version-3 store gets flows.uid, flows.history
    and the uid index in place, keeps its rows, and a conn.log line read
    twice is one row (the flows key on the uid's flow_id)."""
    from ingest.eve import split_lines
    from ingest.flows import record as FR
    from ingest.flows.zeek import ZeekConnDecoder

    make_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP VIEW flows_v")  # (version 5's)
        c.execute("DROP INDEX flows_uid")
        c.execute("ALTER TABLE flows DROP COLUMN uid, DROP COLUMN history")
        c.execute("INSERT INTO flows (flow_id, event_type, sensor, source) VALUES (5, 'flow', 'old', 'eve')")
        c.execute("DELETE FROM schema_version")
        c.execute("INSERT INTO schema_version (version) VALUES (3)")
    data = (ROOT / "tests" / "data" / "zeek" / "zeek-docs-conn.json.log").read_bytes()
    offs, lens, _ = split_lines(data)
    res = ZeekConnDecoder("json").decode(data, offs, lens, "zeek-conn:t")
    res.batch.texts = res.texts
    rows = FR.store_rows(res.batch)

    def batch() -> B.AlertBatch:
        b = B.AlertBatch(B.empty(0), [], "zeek-conn:t")
        b.events = B.EventBatch(FR.json_lines(res.batch, rows), len(rows), rows, {"flow": len(rows)},
                                list(range(len(rows))))
        return b

    sink = open_sink(pg_url, sensor="s")

    async def go():
        await sink.write(Enricher().apply(batch()))
        await sink.write(Enricher().apply(batch()))  # read again (a restart): replaced, not added
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT max(version) FROM schema_version") == [(6,)]
    assert pg_rows(pg_url, "SELECT to_regclass('flows_uid') IS NOT NULL") == [(True,)]
    assert pg_rows(pg_url, "SELECT flow_id, uid, source FROM flows WHERE sensor = 'old'") == [(5, None, "eve")]
    assert pg_rows(pg_url, "SELECT uid, history, state, source, bytes_toserver FROM flows WHERE sensor = 's' "
                           "ORDER BY start_us") == [
        ("CMdzit1AMNsmfAIiQc", "Dd", "SF", "zeek", 118), ("C5bLoe2Mvxqhawzqqd", "ShADadFf", "SF", "zeek", 397)]


def test_a_version_4_store_counts_its_flows_alerts_when_asked(pg_url):
    """Schema 5: a version-4 store's flows lose alert_count and top_priority
    (columns every batch rewrote); the view flows_v counts them from the
    links when read: the old rows' links stay and give the old values, and
    a link added after the upgrade is in the counts at once."""
    make_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP VIEW flows_v")
        c.execute("ALTER TABLE flows ADD COLUMN alert_count bigint NOT NULL DEFAULT 0, "
                  "ADD COLUMN top_priority bigint")
        fid = c.execute("INSERT INTO flows (flow_id, event_type, sensor, source, alert_count, top_priority) "
                        "VALUES (5, 'flow', 'old', 'eve', 1, 2) RETURNING id").fetchone()[0]
        c.execute("INSERT INTO alerts (ts_us, timestamp, source, gid, sid, rev, priority, sensor, flow_ref) "
                  "VALUES (1, 'x', 'snort', 1, 1, 1, 2, 'old', %s)", (fid,))
        c.execute("DELETE FROM schema_version")
        c.execute("INSERT INTO schema_version (version) VALUES (4)")
    sink = open_sink(pg_url, sensor="s")
    asyncio.run(sink.aclose())
    assert pg_rows(pg_url, "SELECT max(version) FROM schema_version") == [(6,)]
    cols = [r[0] for r in pg_rows(pg_url, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'flows' ORDER BY ordinal_position")]
    assert "alert_count" not in cols and "top_priority" not in cols
    assert pg_rows(pg_url, "SELECT flow_id, alert_count, top_priority FROM flows_v") == [(5, 1, 2)]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO alerts (ts_us, timestamp, source, gid, sid, rev, priority, sensor, flow_ref) "
                  "VALUES (2, 'x', 'snort', 1, 1, 1, 1, 'old', %s)", (fid,))
    assert pg_rows(pg_url, "SELECT flow_id, alert_count, top_priority FROM flows_v") == [(5, 2, 1)]


def test_a_version_5_store_gets_the_partial_flows_key(pg_url):
    """Schema 6: the flows_key constraint of a version-5 store becomes the
    partial unique index (WHERE flow_id IS NOT NULL) the SQLite store has,
    in place; an engine flow seen again still replaces its row, an IPFIX
    record received twice is two rows (NetFlow is at-least-once)."""
    from tests.unit.test_flows_key import T0, S, _eve_flow, _ipfix

    make_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP INDEX flows_key")
        c.execute("ALTER TABLE flows ADD CONSTRAINT flows_key UNIQUE (sensor, flow_id, event_type, src_ip, src_port)")
        c.execute("INSERT INTO flows (flow_id, event_type, src_ip, src_port, sensor, source) "
                  "VALUES (5, 'flow', '192.0.2.1', 1, 'old', 'eve')")
        c.execute("DELETE FROM schema_version")
        c.execute("INSERT INTO schema_version (version) VALUES (5)")
    sink = open_sink(pg_url, sensor="s")
    rec = ("10.0.0.4", 6000, "192.0.2.11", 22, T0, T0 + S)

    async def go():
        for b in (_eve_flow(7, 3), _ipfix(*rec), _eve_flow(7, 5), _ipfix(*rec)):
            await sink.write(Enricher().apply(b))
        await sink.aclose()

    asyncio.run(go())
    assert pg_rows(pg_url, "SELECT max(version) FROM schema_version") == [(6,)]
    assert pg_rows(pg_url, "SELECT conname FROM pg_constraint WHERE conrelid = 'flows'::regclass "
                           "AND contype = 'u'") == []
    (idx,) = pg_rows(pg_url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'flows_key'")
    assert "UNIQUE" in idx[0] and idx[0].endswith("WHERE (flow_id IS NOT NULL)"), idx
    assert pg_rows(pg_url, "SELECT flow_id, sensor FROM flows WHERE source = 'eve' ORDER BY id") == [
        (5, "old"), (7, "s")]
    assert pg_rows(pg_url, "SELECT pkts_toserver FROM flows WHERE flow_id = 7") == [(5,)]
    assert pg_rows(pg_url, "SELECT count(*) FROM flows WHERE source = 'ipfix'") == [(2,)]
