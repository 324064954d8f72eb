"""Real ``ingest listen`` processes fed over real unix_stream / unix_dgram sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from ._eve_proc import EVE, REPO, Ingest, query

ZEUS = EVE / "zeus-suricata-7.0.7" / "eve.json"
SURI703 = EVE / "sashalarso-suricata-7.0.3" / "out.json"
ALERT = (b'{"timestamp":"2024-05-01T12:00:00.123456+0200","flow_id":99,"event_type":"alert","src_ip":"10.0.0.1",'
         b'"src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP","alert":{"action":"allowed","gid":1,'
         b'"signature_id":7,"rev":1,"signature":"T","category":"","severity":1}}\n')


def need(*paths):
    for p in paths:
        if not p.exists():
            pytest.skip(f"shared data not present: {p}")


def stream_send(path, data: bytes, step: int = 7919) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    for i in range(0, len(data), step):  # odd-sized writes: records split across reads
        s.sendall(data[i:i + step])
    s.close()


def test_stream_two_suricatas_at_once(tmp_path):
    need(ZEUS, SURI703)
    sock = tmp_path / "eve.sock"
    ing = Ingest(tmp_path, "--eve-stream", str(sock))
    senders = [threading.Thread(target=stream_send, args=(sock, p.read_bytes())) for p in (ZEUS, SURI703)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    ing.wait_count(656 + 226)
    ing.wait_count(205 + 915, "SELECT count(*) FROM flows")
    st = ing.stop()
    assert st["decoded"] == 656 + 226 and st["received"] == 869 + 2854 and not st["malformed"]
    # Suricata's own counters from its stats events, next to ours
    assert st["suricata.detect.alert"] in (656, 226) and "suricata.tcp.ssn_memcap_drop" in st
    assert st["eve_flows"] == 205 + 915
    db = ing.db
    assert query(db, "SELECT count(*) FROM alerts")[0][0] == 882
    # every alerting flow of the Zeus run joins its flow record
    zeus_alert_flows = query(db, "SELECT count(DISTINCT flow_id) FROM alerts WHERE sid IN "
                                 "(SELECT sid FROM alerts GROUP BY sid) AND timestamp LIKE '2024-12-18%'")[0][0]
    assert zeus_alert_flows == 193
    orphans = query(db, "SELECT count(DISTINCT flow_id) FROM alerts WHERE flow_id IS NOT NULL "
                        "AND flow_id NOT IN (SELECT flow_id FROM flows)")[0][0]
    assert orphans == 0
    # correlation by 5-tuple and time (ingest.flows.correlate) links every
    # alert to the flow Suricata itself gave it, on real engine output
    assert query(db, "SELECT count(*) FROM alerts a JOIN flows f ON f.id = a.flow_ref "
                     "WHERE a.flow_id != f.flow_id")[0][0] == 0
    assert query(db, "SELECT count(*) FROM alerts WHERE flow_ref IS NULL "
                     "AND flow_id IN (SELECT flow_id FROM flows)")[0][0] == 0
    assert query(db, "SELECT sum(alert_count) FROM flows_v")[0][0] == query(
        db, "SELECT count(*) FROM alerts WHERE flow_ref IS NOT NULL")[0][0] > 0
    top = query(db, "SELECT sid, count(*) c FROM alerts WHERE timestamp LIKE '2024-12-18%' "
                    "GROUP BY sid ORDER BY c DESC LIMIT 3")
    assert top == [(2200075, 227), (100004, 199), (200004, 189)]
    out = subprocess.run([sys.executable, "-m", "ingest", "query", "flows", "--db", str(db), "--min-severity", "1",
                          "--json"], capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert rows and {r["top_priority"] for r in rows} == {1}
    from ingest.query import query_flows
    high = query_flows(str(db), 1)
    assert len(high) == len(rows)
    assert high and all(r["top_priority"] == 1 for r in high)
    assert len(query_flows(str(db), 3, limit=100000)) == query(
        db, "SELECT count(DISTINCT f.rowid) FROM flows f JOIN alerts a ON a.flow_id = f.flow_id")[0][0]


def test_stream_torn_oversized_and_junk_are_counted(tmp_path):
    sock = tmp_path / "eve.sock"
    ing = Ingest(tmp_path, "--eve-stream", str(sock), "--eve-max-line", "65536")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.sendall(ALERT[:57])                      # a short write: the rest of the line is lost
    s.sendall(ALERT)                           # ... and the next record is glued to it
    s.sendall(b"\x00\xffbinary junk\x01\n")    # junk
    s.sendall(b'{"event_type":"' + b"x" * 200_000 + b'"}\n')  # longer than --eve-max-line
    s.sendall(ALERT)
    s.sendall(b"[1,2]\n" + b'{"F":"stats"}\n' + ALERT)
    s.sendall(ALERT[:80])                      # the peer goes away mid-record
    s.close()
    ing.wait_count(3)
    st = ing.stop()
    assert st["malformed"] == {"torn_record": 2, "oversized": 1, "invalid_json": 1, "not_object": 1,
                               "no_event_type": 1}
    assert query(ing.db, "SELECT count(*) FROM alerts")[0][0] == 3
    from ingest.deadletter import read
    reasons = [h["reason"] for h, _ in read(str(ing.dl))]
    assert sorted(reasons) == sorted(["torn_record", "torn_record", "oversized", "invalid_json", "not_object",
                                      "no_event_type"])


@pytest.mark.parametrize("native", ["1", "all"], ids=["python-reader", "c-reader"])
def test_dgram_real_run_and_oversized_datagram(tmp_path, monkeypatch, native):
    # the Python reader (EVE's default) and the C reader thread
    # (INGEST_NATIVE_READER=all, ingest.reader)
    monkeypatch.setenv("INGEST_NATIVE_READER", native)
    need(ZEUS)
    sock = tmp_path / "eve.dgram"
    ing = Ingest(tmp_path, "--eve-dgram", str(sock))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(str(sock))
    lines = ZEUS.read_bytes().splitlines(keepends=True)
    for line in lines:  # blocking sends, like Suricata in offline (-r) mode
        s.send(line)
    s.send(b"\x00\x01\x02 binary junk")
    big = b'{"event_type":"x","pad":"' + b"a" * (300 << 10) + b'"}\n'
    try:
        s.setsockopt(socket.SOL_SOCKET, 32, 1 << 20)  # SO_SNDBUFFORCE (root) so it can be sent at all
        s.send(big)
        sent_big = True
    except OSError:
        sent_big = False
    s.send(ALERT)
    s.close()
    ing.wait_count(657)
    st = ing.stop()
    assert st["decoded"] == 657
    want = {"invalid_json": 1}
    if sent_big:
        want["truncated"] = 1
    assert st["malformed"] == want
    assert query(ing.db, "SELECT count(*) FROM flows")[0][0] == 205
    from ingest.deadletter import read
    got = {h["reason"]: data for h, data in read(str(ing.dl))}
    if sent_big:
        assert got["truncated"] == big[:256 << 10]  # the slot's worth, flagged, never passed on


def test_event_types_filter_and_verbatim_json_sink(tmp_path):
    """--event-types keeps alert and flow; the JSON sink gets Suricata's own lines, byte for byte."""
    need(ZEUS)
    sock = tmp_path / "eve.sock"
    out = tmp_path / "out.json"
    ing = Ingest(tmp_path, "--eve-stream", str(sock), "--event-types", "alert,flow", "--sink", f"jsonl:{out}")
    stream_send(sock, ZEUS.read_bytes())
    ing.wait_count(656)
    ing.wait_count(205, "SELECT count(*) FROM flows")
    st = ing.stop()
    assert st["eve_filtered"] == 8  # 6 dhcp, 1 dns, 1 stats
    want = [ln for ln in ZEUS.read_bytes().splitlines()
            if b'"event_type":"alert"' in ln or b'"event_type":"flow"' in ln]
    assert sorted(out.read_bytes().splitlines()) == sorted(want)


def test_stats_events_cannot_grow_the_counters_or_forge_log_lines(tmp_path):
    """Suricata's counters come from its stats events, which any sender on
    the socket can write: thousands of invented '*drop*' names per event
    (on the landed main every one became a counter for the life of the
    process and a field of every stats line: 300 such datagrams took
    580 MB and 115 MB of log), names with a newline (a forged log line),
    values no counter has.  What is kept is bounded; the real counters of
    the first stats event are there."""
    sock = tmp_path / "eve.sock"
    ing = Ingest(tmp_path, "--eve-dgram", str(sock))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(str(sock))
    s.send(b'{"event_type":"stats","stats":{"uptime":9,"capture":{"kernel_packets":5,"kernel_drops":2},'
           b'"threads":{"W#01-eth0":{"capture":{"kernel_drops":1}}}}}')
    k = 0
    for _ in range(20):
        names = {f"n{k + j}_drop": 1 for j in range(2000)}
        k += 2000
        s.send(json.dumps({"event_type": "stats", "stats": names}).encode())
    s.send(b'{"event_type":"stats","stats":{"x\\ningest: error: forged drop":1,"big_drop":'
           + b"9" * 4000 + b',"neg_drop":-1,"bool_drop":true,"f_drop":1.5}}')
    s.send(ALERT)
    s.close()
    ing.wait_count(1)
    st = ing.stop()
    sur = {k: v for k, v in st.items() if k.startswith("suricata.")}
    assert sur["suricata.uptime"] == 9 and sur["suricata.capture.kernel_drops"] == 2
    assert sur["suricata.threads.W#01-eth0.capture.kernel_drops"] == 1
    assert len(sur) <= 256
    assert st["suricata_counters_ignored"] >= 40000 - 256
    assert not any("\n" in k or k.endswith(("big_drop", "neg_drop", "bool_drop", "f_drop")) for k in sur)
    assert len(ing.stderr_path.read_bytes()) < 200_000
