"""``--zeek-conn`` as a real ``ingest listen`` process over real conn.log
files (tests/data/zeek): a growing file with a half-written last line, Zeek's
rotation (rename to conn.YYYY-MM-DD-HH-MM-SS.log, a new conn.log), both
formats, hostile lines, kill -9 and restart with every flow stored exactly
once (the flows' unique key: the uid's flow_id), and Snort and EVE alerts linked to
the Zeek flow of their 5-tuple (``ingest query flows`` shows it)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from ingest.encode import encode_alertpkt, ether_ipv4

from ._eve_proc import REPO, Ingest, query
from ._util import snort_send

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "zeek"
ZED = (DATA / "zed-conn.log").read_bytes().splitlines(keepends=True)  # 8 header lines, 92 records
TEREDO = (DATA / "zeek-teredo-conn.log").read_bytes().splitlines(keepends=True)  # 8 + 21, #close
# JSON: the conn.log lines of Zeek's manual (conn and ssl pages), 2 + 2 records
JSON = (DATA / "zeek-docs-conn.json.log").read_bytes().splitlines(keepends=True)
JSON2 = (DATA / "zeek-docs-ssl-conn.json.log").read_bytes().splitlines(keepends=True)


def append(path, lines) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(lines))


def uids(lines) -> set[str]:
    out = set()
    for ln in lines:
        if ln.startswith(b"{"):
            out.add(json.loads(ln)["uid"])
        elif not ln.startswith(b"#"):
            out.add(ln.split(b"\t")[1].decode())
    return out


def stored(ing: Ingest) -> tuple[int, set[str]]:
    rows = query(ing.db, "SELECT uid FROM flows WHERE source = 'zeek'")
    return len(rows), {r[0] for r in rows}


def test_follow_grow_rotate_both_formats_and_hostile_lines(tmp_path):
    conn = tmp_path / "conn.log"
    append(conn, ZED[:50])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn), "--sensor-name", "zeek1")
    ing.wait_count(42, "SELECT count(*) FROM flows")
    # Zeek mid-write: half a record waits until it is whole
    with open(conn, "ab") as f:
        f.write(ZED[50][:30])
    append(conn, [])
    with open(conn, "ab") as f:
        f.write(ZED[50][30:])
    hostile = [b"1521911799.1\tCbad1\t10.0.0.1\t1\n",                   # zeek_field_count
               b"\t".join([*ZED[60].split(b"\t")[:2], b"10.164.94.999", *ZED[60].split(b"\t")[3:]]),
               # ^ zeek_bad_address
               b"\x00\x01\x02 not a record\n"]                          # zeek_field_count
    append(conn, ZED[51:60] + hostile + ZED[60:80])
    ing.wait_count(72, "SELECT count(*) FROM flows")
    # Zeek's rotation: conn.log renamed to a timestamped sibling, the rest of
    # it (and its #close) written there, then a new conn.log (here JSON)
    os.rename(conn, tmp_path / "conn.2026-12-04-10-00-00.log")
    append(tmp_path / "conn.2026-12-04-10-00-00.log", ZED[80:] + [b"#close\t2026-12-04-10-00-00\n"])
    append(conn, JSON + JSON2)
    want = uids(ZED) | uids(JSON + JSON2)
    ing.wait_count(len(want), "SELECT count(*) FROM flows")
    st = ing.stop()
    n, got = stored(ing)
    assert (n, got) == (len(want), want)
    assert st["malformed"] == {"zeek_field_count": 2, "zeek_bad_address": 1}
    assert (st["zeek_flows"], st["received"], st["dead_letters"]) == (len(want), len(want) + 3, 3)
    assert ing.dl.stat().st_size > 0
    # one row looked at whole: the first record of the zed sample
    row = query(ing.db, "SELECT sensor, source, event_type, src_ip, src_port, dest_ip, dest_port, proto, "
                        "start_us, end_us, pkts_toserver, pkts_toclient, bytes_toserver, bytes_toclient, "
                        "state, history, app_proto FROM flows WHERE uid = 'C8Tful1TvM3Zf5x8fl'")
    assert row == [("zeek1", "zeek", "flow", "10.164.94.120", 39681, "10.47.3.155", 3389, "TCP",
                     1521911721255387, 1521911721259653, 10, 6, 730, 342, "RSTR", "ShADTdtr", None)]


def test_kill9_and_restart_with_a_rotation_while_down(tmp_path):
    conn = tmp_path / "conn.log"
    append(conn, ZED[:60])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn))
    ing.wait_count(30, "SELECT count(*) FROM flows")
    ing.kill9()
    # while ingest is down: the file grows, is rotated, a new one starts
    append(conn, ZED[60:])
    os.rename(conn, tmp_path / "conn.2026-12-04-11-00-00.log")
    append(conn, TEREDO[:20])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn))
    ing.wait_count(92 + 12, "SELECT count(*) FROM flows")
    ing.kill9()  # again, in the middle of the new file's life
    append(conn, TEREDO[20:])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn))
    want = uids(ZED) | uids(TEREDO)
    ing.wait_count(len(want), "SELECT count(*) FROM flows")
    st = ing.stop()
    n, got = stored(ing)
    assert (n, got) == (len(want), want)  # none lost, none twice
    assert not st["malformed"]


def test_snort_and_eve_alerts_join_the_zeek_flow_of_their_5_tuple(tmp_path):
    conn = tmp_path / "conn.log"
    append(conn, ZED)
    sock = tmp_path / "snort.sock"
    eve = tmp_path / "eve.json"
    # an EVE alert without flow_id (as from another Suricata than the flow's): by the 5-tuple alone
    append(eve, [json.dumps({
        "timestamp": "2018-03-24T17:15:21.258000+0000", "event_type": "alert", "src_ip": "10.164.94.120",
        "src_port": 39681, "dest_ip": "10.47.3.155", "dest_port": 3389, "proto": "TCP",
        "alert": {"action": "allowed", "gid": 1, "signature_id": 3000002, "rev": 1, "signature": "RDP scan",
                  "category": "Attempted Information Leak", "severity": 2}}).encode() + b"\n"])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn), "--snort", str(sock), "--eve-file", str(eve))
    ing.wait_count(92, "SELECT count(*) FROM flows")
    # the flow C8Tful1TvM3Zf5x8fl: 10.164.94.120:39681 -> 10.47.3.155:3389, 1521911721.255387 + 4.266 ms;
    # the alert is on a packet of the reply (the other direction), inside the flow's time
    pkt = ether_ipv4("10.47.3.155", "10.164.94.120", 6, 3389, 39681)
    ts = 1521911721.257
    snort_send(sock, [encode_alertpkt("snort", msg="RDP probe", sid=3000001, priority=1, event_id=1,
                                      ts_sec=int(ts), ts_usec=int(ts % 1 * 1e6), packet=pkt)])
    ing.wait_count(2)
    ing.wait_for(lambda: query(ing.db, "SELECT count(flow_ref) FROM alerts")[0][0] == 2, "both alerts linked")
    st = ing.stop()
    assert not st["malformed"]
    links = query(ing.db, "SELECT a.source, f.uid, f.alert_count, f.top_priority FROM alerts a "
                          "JOIN flows_v f ON f.id = a.flow_ref ORDER BY a.source")
    assert links == [("eve", "C8Tful1TvM3Zf5x8fl", 2, 1), ("snort", "C8Tful1TvM3Zf5x8fl", 2, 1)]
    out = subprocess.run([sys.executable, "-m", "ingest", "query", "flows", "--db", str(ing.db), "--json"],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    (flow,) = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert (flow["uid"], flow["source"], flow["src_ip"], flow["dest_port"], flow["alerts"]) == (
        "C8Tful1TvM3Zf5x8fl", "zeek", "10.164.94.120", 3389, 1)  # priority-1 alerts: the Snort one


def test_two_rotations_while_down_and_other_logs_beside_it(tmp_path):
    """conn.log rotated twice while ingest is down: the file that was at
    conn.log only in between (never seen, in no bookmark) is found among the
    conn.* siblings and read whole; Zeek's other logs in the directory
    (dns.log, conn-summary.log) and a compressed archive are never read."""
    conn = tmp_path / "conn.log"
    append(conn, ZED[:40])
    ing = Ingest(tmp_path, "--zeek-conn", str(conn))
    ing.wait_count(32, "SELECT count(*) FROM flows")
    ing.kill9()
    append(conn, ZED[40:])
    os.rename(conn, tmp_path / "conn.2026-12-04-10-00-00.log")
    append(conn, TEREDO)                                  # the one never seen at conn.log ...
    os.rename(conn, tmp_path / "conn.2026-12-04-11-00-00.log")
    append(conn, JSON)                                    # ... and the current one
    append(tmp_path / "dns.log", JSON2[:1])               # another log: not ours
    append(tmp_path / "conn-summary.log", JSON2[1:])      # not a rotated conn.log either
    (tmp_path / "conn.2026-12-04-09-00-00.log.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(200))
    ing = Ingest(tmp_path, "--zeek-conn", str(conn))
    want = uids(ZED) | uids(TEREDO) | uids(JSON)
    ing.wait_count(len(want), "SELECT count(*) FROM flows")
    st = ing.stop()
    n, got = stored(ing)
    assert (n, got) == (len(want), want)
    assert st.get("zeek_conn_unseen_rotated") == 1 and not st["malformed"]


def test_a_glob_follows_every_match_in_its_own_format(tmp_path):
    """--zeek-conn DIR/conn-*.log: two Zeek processes' logs in one directory,
    one TSV and one JSON, each followed on its own (one bookmark), and a
    restart reads neither again."""
    a, b = tmp_path / "conn-a.log", tmp_path / "conn-b.log"
    append(a, ZED[:50])
    append(b, JSON)
    glob = str(tmp_path / "conn-*.log")
    ing = Ingest(tmp_path, "--zeek-conn", glob)
    ing.wait_count(42 + 2, "SELECT count(*) FROM flows")
    append(a, ZED[50:])
    append(b, JSON2)
    want = uids(ZED) | uids(JSON + JSON2)
    ing.wait_count(len(want), "SELECT count(*) FROM flows")
    ing.stop()
    ing = Ingest(tmp_path, "--zeek-conn", glob)
    append(a, TEREDO[8:20])  # later records in the TSV file (its header is read again from the start)
    want |= uids(TEREDO[8:20])
    ing.wait_count(len(want), "SELECT count(*) FROM flows")
    st = ing.stop()
    n, got = stored(ing)
    assert (n, got) == (len(want), want)
    assert st["received"] == 12 and st["zeek_flows"] == 12 and not st["malformed"]
