"""Many sensors, end to end, with real processes and a real JetStream:
every input kind into two sensors publishing at once, collected into one
store that then holds, per sensor, exactly what each sensor's own store
holds; and a collector killed with SIGKILL five times while two sensors
publish at 5 k alerts/s, without losing or doubling an alert."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4, ether_ipv6

from ..natsserver import unique_prefix
from ..unit import u2writer as W
from ._nats import REPO, Proc, collector, count, js_run, query, wait_for
from ._util import snort_send

ALERT_COLS = ("ts_us, timestamp, source, sensor_id, event_id, gid, sid, rev, class_id, category, priority, "
              "action, proto, ip_ver, src_ip, src_port, dest_ip, dest_port, icmp_type, icmp_code, vlan, "
              "flow_id, app_name")
FLOW_COLS = ("flow_id, event_type, src_ip, src_port, dest_ip, dest_port, proto, app_proto, start, \"end\", "
             "start_us, end_us, pkts_toserver, pkts_toclient, bytes_toserver, bytes_toclient, state, reason, "
             "alerted")


def _stream(path, lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        s.sendall(b"".join(lines))
    finally:
        s.close()


def _eve(k: int, i: int) -> list[bytes]:
    """An alert (with its flow) and a dns event of sensor k, number i."""
    fid = 1_000_000 * (k + 1) + i
    common = {"flow_id": fid, "src_ip": f"10.{k}.0.{i % 250 + 1}", "src_port": 40000 + i, "dest_ip": "192.0.2.7",
              "dest_port": 443, "proto": "TCP"}
    return [json.dumps(x).encode() + b"\n" for x in (
        {"timestamp": f"2024-05-01T14:00:{i % 60:02d}.{i:06d}+0200", "event_type": "alert", **common,
         "alert": {"action": "allowed", "gid": 1, "signature_id": 2100000 + i % 7, "rev": 2,
                   "signature": f"ET test \u00e9 {i % 7}", "category": "Misc activity", "severity": 1 + i % 3}},
        {"timestamp": "2024-05-01T12:00:09.000001+0000", "event_type": "flow", **common, "app_proto": "tls",
         "flow": {"pkts_toserver": i, "pkts_toclient": 2, "bytes_toserver": 300, "bytes_toclient": 200,
                  "start": "2024-05-01T11:59:59.000001+0000", "end": "2024-05-01T12:00:08.000001+0000",
                  "state": "closed", "reason": "timeout", "alerted": True}},
        {"timestamp": "2024-05-01T12:00:10.000001+0000", "event_type": "dns", "dns": {"rrname": f"x{i}.example"}},
    )]


def _alertpkts(k: int, n: int) -> tuple[list[bytes], list[bytes]]:
    pkt4 = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000 + k, 443)
    pkt6 = ether_ipv6("2001:db8::10", "2001:db8::20", 17, 5000, 53)
    icmp = ether_ipv4("10.0.0.1", "10.0.0.2", 1, 8, 0)
    snort, by2 = [], []
    for i in range(n):
        ts = 1764266630 + i
        snort.append(encode_alertpkt(("snort", "snort3", "snort-appid")[i % 3], msg=f"TEST sid {i % 9}",
                                     sid=2000000 + i % 9, class_id=i % 3, priority=1 + i % 3, event_id=i,
                                     ts_sec=ts, ts_usec=k, app_name="SSH" if i % 3 == 2 else b"",
                                     packet=(pkt4, pkt6, icmp, None)[i % 4]))
        by2.append(encode_alertpkt("barnyard2", msg=f"by2 {i % 5}", sid=3000000 + i % 5, event_id=i, sensor_id=1,
                                   ts_sec=ts, packet=pkt4))
    return snort, by2


def _spool(directory, n: int) -> None:
    """A Unified2 spool file; the same event ids on both sensors (the
    central store tells them apart by sensor)."""
    data = b""
    for i in range(1, n + 1):
        data += W.event_v4(104, event_id=i, sid=1000 + i % 4, vlan=7, sec=1321131865 + i) + W.packet(
            event_id=i, event_second=1321131865 + i)
    (directory / "snort.u2.1700000000").write_bytes(data)


def _rows(db, sql, args=()):
    return sorted(query(db, sql, args), key=repr)


@pytest.mark.slow
def test_every_input_kind_from_two_sensors_is_stored_centrally_as_each_sensor_stores_it(tmp_path, nats_server,
                                                                                          request):
    """... into SQLite, JSON lines and (when the PostgreSQL binaries are
    there, as in CI) PostgreSQL at once: all hold the same records."""
    try:
        pg = request.getfixturevalue("pg_url")  # tests/pg.py: a database of its own
    except pytest.skip.Exception:
        pg = None  # the rest of the test still runs
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}?msg_bytes=16384"
    n = 60
    sensors = []
    for k, name in enumerate(("s1", "s2.dc")):
        d = tmp_path / name
        d.mkdir()
        _spool(d, n)
        eve_file = d / "eve.json"
        eve_file.write_bytes(b"".join(line for i in range(n) for line in _eve(k, 1000 + i)))
        socks = {x: d / x for x in ("snort", "by2", "dgram", "stream")}
        p = Proc(d, "listen", "--sensor-name", name, "--snort", str(socks["snort"]), "--barnyard2", str(socks["by2"]),
                 "--unified2", str(d / "snort.u2"), "--eve-dgram", str(socks["dgram"]),
                 "--eve-stream", str(socks["stream"]), "--eve-file", str(eve_file),
                 "--sink", f"sqlite:{d / 'own.db'}", "--sink", f"jsonl:{d / 'own.json'}", "--sink", url,
                 "--dead-letter", str(d / "dl.bin"), "--stats-interval", "0.5", ready="ingest: listening on")
        snort, by2 = _alertpkts(k, n)
        snort_send(socks["snort"], snort)
        snort_send(socks["by2"], by2)
        snort_send(socks["dgram"], [line for i in range(n) for line in _eve(k, 2000 + i)])
        _stream(socks["stream"], [line for i in range(n) for line in _eve(k, 3000 + i)])
        sensors.append((name, d, p))
    per_sensor = 6 * n  # snort, barnyard2, unified2, eve-dgram, eve-stream, eve-file alerts
    for name, d, p in sensors:
        wait_for(lambda d=d: count(d / "own.db") >= per_sensor and count(d / "own.db", "SELECT count(*) FROM flows")
                 >= 3 * n, f"{name}'s own store", p)
    for _name, _d, p in sensors:
        st = p.stop()
        assert st["dispatched"][url] == per_sensor and st["dropped"] == {} and st["malformed"] == {}, st
    db, js = tmp_path / "central.db", tmp_path / "central.json"
    c = collector(tmp_path, url, "--sink", f"sqlite:{db}", "--sink", f"jsonl:{js}",
                  *(("--sink", pg) if pg else ()), "--dead-letter", str(tmp_path / "dl.bin"))
    wait_for(lambda: count(db) >= 2 * per_sensor and count(db, "SELECT count(*) FROM flows") >= 6 * n,
             "the central store", c)  # a batch is acked once every sink has it: PostgreSQL too
    time.sleep(0.5)
    st = c.stop()
    assert st["malformed"] == {} and st["dead_letters"] == 0, st
    assert count(db) == 2 * per_sensor
    central_lines = sorted(js.read_bytes().splitlines())
    own_lines = sorted(x for _, d, _ in sensors for x in (d / "own.json").read_bytes().splitlines())
    assert central_lines == own_lines  # JSON sinks: byte for byte what the sensors wrote
    for name, d, _ in sensors:
        own = d / "own.db"
        assert _rows(db, f"SELECT {ALERT_COLS} FROM alerts WHERE sensor = ?", (name,)) == _rows(
            own, f"SELECT {ALERT_COLS} FROM alerts"), name
        assert _rows(db, f"SELECT {FLOW_COLS} FROM flows WHERE sensor = ?", (name,)) == _rows(
            own, f"SELECT {FLOW_COLS} FROM flows"), name
        assert set(query(own, "SELECT gid, sid, rev, msg, refs FROM signatures")) <= set(
            query(db, "SELECT gid, sid, rev, msg, refs FROM signatures"))
        srcs = dict(query(db, "SELECT source, count(*) FROM alerts WHERE sensor = ? GROUP BY 1", (name,)))
        assert srcs == {"snort": n, "barnyard2": n, "unified2": n, "eve": 3 * n}, srcs
    # the same Unified2 event ids from both sensors: both kept, each once
    assert query(db, "SELECT count(DISTINCT sensor) FROM alerts WHERE source = 'unified2' AND event_id = 1") == [(2,)]
    if pg:  # PostgreSQL holds what the central SQLite store holds, column for column
        import psycopg

        from ingest.sinks import rows as R

        def pg_rows(sql):
            with psycopg.connect(pg) as con:
                return sorted(con.execute(sql).fetchall(), key=repr)

        alerts = ", ".join(R.ALERT_COLUMNS)
        flows = ", ".join(f'"{c}"' if c == "end" else c for c in R.FLOW_COLUMNS)
        assert pg_rows(f"SELECT {alerts} FROM alerts") == _rows(db, f"SELECT {alerts} FROM alerts")
        assert len(pg_rows("SELECT 1 FROM alerts")) == 2 * per_sensor
        assert pg_rows(f"SELECT {flows} FROM flows") == _rows(db, f"SELECT {flows} FROM flows")
        sigs = "SELECT gid, sid, rev, msg, refs FROM signatures"
        assert pg_rows(sigs) == _rows(db, sigs)


@pytest.mark.slow
def test_a_collector_killed_five_times_loses_and_doubles_nothing(tmp_path, nats_server, request):
    """Into SQLite and (when its binaries are there, as in CI) PostgreSQL."""
    try:
        pg = request.getfixturevalue("pg_url")
    except pytest.skip.Exception:
        pg = None
    rnd = random.Random(int(time.time()))
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}?msg_bytes=32768"
    each = 35_000  # 7 s at 5 k alerts/s per sensor
    sensors, gens, errs = [], [], []
    for name in ("s1", "s2"):
        d = tmp_path / name
        d.mkdir()
        sock = d / "snort_alert"
        sensors.append(Proc(d, "listen", "--sensor-name", name, "--snort", str(sock), "--sink", url,
                            "--dead-letter", str(d / "dl.bin"), "--stats-interval", "0.5",
                            ready="ingest: listening on"))
        err = open(d / "gen.err", "wb")
        errs.append(err)
        gens.append(subprocess.Popen([sys.executable, "-m", "ingest", "gen", "--to", str(sock), "--kind", "snort",
                                      "--count", str(each), "--rate", "5000", "--seed", str(len(gens) + 1)],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=err))
    db = tmp_path / "central.db"
    args = ("--sink", f"sqlite:{db}", *(("--sink", pg) if pg else ()), "--ack-wait", "2", "--fetch", "8",
            "--dead-letter", str(tmp_path / "dl.bin"))
    kills = []
    for _ in range(5):
        c = collector(tmp_path, url, *args)
        time.sleep(rnd.uniform(0.2, 1.2))
        kills.append(count(db))
        c.kill9()
    for g, e in zip(gens, errs, strict=True):
        assert g.wait(timeout=120) == 0
        e.close()
    for p in sensors:
        st = p.stop()
        assert st["dispatched"][url] == each and st["dropped"] == {}, st
    c = collector(tmp_path, url, *args)
    wait_for(lambda: count(db) >= 2 * each, "every alert", c)
    time.sleep(3)  # anything redelivered late would show now
    c.stop()
    assert 0 < max(kills) < 2 * each, kills  # the kills fell while alerts flowed

    async def deliveries(js):
        ci = await js.consumer_info(prefix.upper(), "central")
        return ci.delivered.consumer_seq, ci.delivered.stream_seq

    delivered, messages = js_run(nats_server.url, deliveries)
    assert delivered > messages, (delivered, messages)  # JetStream did redeliver what the kills cut short
    for name in ("s1", "s2"):
        assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM alerts WHERE sensor = ?", (name,)) == [
            (each, each)], name
    assert count(db) == 2 * each
    if pg:
        import psycopg

        with psycopg.connect(pg) as con:
            got = con.execute("SELECT sensor, count(*), count(DISTINCT event_id) FROM alerts GROUP BY 1 ORDER BY 1")
            assert got.fetchall() == [("s1", each, each), ("s2", each, each)]
