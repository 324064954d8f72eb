"""Regression tests on every capture of a real engine (../shared/data/real,
README there), each checked field for field against the engine's own text
output of the same run: Snort 2.9.19 and Snort 3.12.2.0 (unix-socket
datagrams and Unified2 spools), Barnyard2 2.1.14 (datagrams, plain and
sync), Suricata 7.0.0 (eve.json, unix_dgram, unix_stream).

The datagrams of every engine go through a real socket to a real ``ingest
listen``; the spools and eve.json through the batch API.  Every test skips
cleanly when the shared data is absent.
"""

from __future__ import annotations

import base64
import csv
import gzip
import ipaddress
import json
import re
import socket
import struct
import time
from datetime import UTC, datetime

from ingest import unified2
from ingest.eve import decode_lines
from ingest.render import to_records

from ..conftest import shared_file
from ._util import rows as db_rows
from ._util import snort_send

S2, S3, BY2, SURI = "real/snort-2.9.19", "real/snort-3.12.2.0", "real/barnyard2-2.1.14", "real/suricata-7.0.0"


# ---- the captures and the engines' own text ------------------------------------------

def captures(rel: str) -> list[bytes]:
    """<u32 LE length><datagram>..., gzip'ed."""
    data = gzip.open(shared_file(rel)).read()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4: i + 4 + n])
        i += 4 + n
    return out


def snort_time(ts_iso: str) -> str:
    """Our '2023-11-14T22:13:20.003000+0000' as Snort prints it: '11/14-22:13:20.003000'."""
    t = datetime.strptime(ts_iso, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    return t.strftime("%m/%d-%H:%M:%S.%f")


def suricata_time(ts_us: int) -> str:
    t = datetime.fromtimestamp(ts_us / 1e6, tz=UTC)
    return t.strftime("%m/%d/%Y-%H:%M:%S.%f")


def ip(text: str | None):
    return ipaddress.ip_address(text) if text else None


def cut_msg(ours: str, theirs: str, limit: int) -> bool:
    """The socket's alertmsg holds 255 bytes: a longer msg arrives cut
    (Snort 3: 254 bytes of text after its opening quote)."""
    if len(theirs.encode()) <= limit:
        return ours == theirs
    return len(ours.encode()) == limit and theirs.startswith(ours)


def csv_rows(rel: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in csv.reader(shared_file(rel).read_text().splitlines())]


_FAST = re.compile(r"^(?P<ts>\S+)\s+\[\*\*\] \[(?P<gid>\d+):(?P<sid>\d+):(?P<rev>\d+)\] (?P<msg>.*?) \[\*\*\]"
                   r"(?: \[Classification: (?P<cls>[^\]]*)\])? \[Priority: (?P<prio>\d+)\] \{(?P<proto>\w+)\} "
                   r"(?P<src>\S+) -> (?P<dst>\S+)$")


def fast_rows(rel: str) -> list[dict]:
    out = []
    for line in shared_file(rel).read_text().splitlines():
        m = _FAST.match(line)
        assert m, line
        out.append(m.groupdict())
    return out


def split_hostport(text: str, with_port: bool) -> tuple[str, int | None]:
    """'192.0.2.10:40000', '2001:db8::10:41000' (Snort) or fully expanded IPv6 (Suricata)."""
    if not with_port:
        return text, None
    host, _, port = text.rpartition(":")
    return host, int(port)


def spewfoo(rel: str) -> list[dict]:
    """u2spewfoo's dump: one dict per record (title, its 'key: value' fields,
    and the packet bytes of its hex dump)."""
    out = []
    for block in shared_file(rel).read_text().split("\n\n"):
        lines = [x for x in block.splitlines() if x.strip()]
        if not lines:
            continue
        rec: dict = {"title": lines[0].strip(), "data": b""}
        for line in lines[1:]:
            m = re.match(r"^\[\s*\d+\] ((?:[0-9A-F]{2} )+)", line)
            if m:
                rec["data"] += bytes.fromhex(m.group(1))
                continue
            for k, v in re.findall(r"([A-Za-z_][A-Za-z_ ]*?):\s*([^\t]*)", line.strip()):
                rec.setdefault(k.strip(), v.strip())
            m = re.search(r"Rule (\d+):(\d+):(\d+)", line)
            if m:
                rec["rule"] = tuple(map(int, m.groups()))
        out.append(rec)
    return out


# ---- a real listener -----------------------------------------------------------------

def listen(run_ingest, tmp_path, flag: str, *extra: str):
    sock, db, out = tmp_path / "engine.sock", tmp_path / "alerts.db", tmp_path / "alerts.json"
    p = run_ingest(["listen", flag, str(sock), "--sink", f"sqlite:{db}", "--sink", f"jsonl:{out}",
                    "--dead-letter", str(tmp_path / "dl.bin"), "--stats-interval", "0", *extra],
                   wait_for=[sock])
    return p, sock, db, out


def stop(p) -> dict:
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    return st


def snort_through_listener(run_ingest, tmp_path, capture: str, n: int) -> tuple[list[dict], object]:
    """A Snort capture sent as Snort sends to a listener with classification.config
    loaded (Snort 3's classifications.lua has the same entries as Snort 2's);
    returns the JSON-lines records and the store."""
    p, sock, db, out = listen(run_ingest, tmp_path, "--snort", "--classification",
                              str(shared_file(f"{S2}/classification.config")))
    snort_send(sock, captures(capture))
    st = stop(p)
    assert st["received"] == st["decoded"] == n and st["malformed"] == st["anomalies"] == {}
    return [json.loads(x) for x in out.read_text().splitlines()], db


# ---- Snort 2.9.19 --------------------------------------------------------------------

def check_snort2_alerts(records: list[dict], rel_dir: str, *, csv_name="alert.csv", fast_name="alert.fast"):
    """Our EVE-profile records against Snort's alert_csv and alert_fast of the same alerts."""
    rows, fast = csv_rows(f"{rel_dir}/{csv_name}"), fast_rows(f"{rel_dir}/{fast_name}")
    assert len(records) == len(rows) == len(fast)
    for r, c, f in zip(records, rows, fast, strict=True):
        ts, gid, sid, rev, msg, proto, src, sport, dst, dport = c[:10]
        a = r["alert"]
        assert snort_time(r["timestamp"]) == ts == f["ts"]
        assert (a["gid"], a["signature_id"], a["rev"]) == (int(gid), int(sid), int(rev))
        assert msg == f["msg"] and cut_msg(a["signature"], msg, 255)
        assert a["severity"] == int(f["prio"])
        assert a.get("category") == f["cls"]
        assert r["proto"] == proto == f["proto"]
        assert (ip(r["src_ip"]), ip(r["dest_ip"])) == (ip(src), ip(dst))
        if proto == "ICMP":
            assert "src_port" not in r and (r["icmp_type"], r["icmp_code"]) == (int(c[23]), int(c[24]))
        else:
            assert (r["src_port"], r["dest_port"]) == (int(sport), int(dport))
        assert "action" not in a  # Snort's unix socket does not say
        assert "packet_anomaly" not in r["ingest"]


def test_snort2_datagrams_through_a_listener_match_snort_csv_and_fast(tmp_path, run_ingest):
    records, db = snort_through_listener(run_ingest, tmp_path, f"{S2}/unsock-datagrams.bin.gz", 23)
    check_snort2_alerts(records, S2)
    stored = db_rows(db)
    assert [(x["sid"], x["signature"], x["event_id"]) for x in stored] == [
        (r["alert"]["signature_id"], r["alert"]["signature"], r["ingest"]["event_id"]) for r in records]


def test_snort2_spool_matches_u2spewfoo_and_snort_csv():
    res = unified2.read(shared_file(f"{S2}/snort.u2.1796162408"))
    assert res.errors == [] and len(res.alerts) == 23 and len(res.packets) == 24
    records = to_records(res.batch)
    spew = spewfoo(f"{S2}/u2spewfoo.txt")
    events = [x for x in spew if x["title"].endswith("Event)")]
    packets = [x for x in spew if x["title"] == "Packet"]
    assert len(events) == 23 and len(packets) == 24
    for r, e in zip(records, events, strict=True):
        a, u = r["alert"], r["unified2"]
        assert r["ingest"]["sensor_id"] == int(e["sensor id"])
        assert r["ingest"]["event_id"] == int(e["event id"])
        sec, usec = int(e["event second"]), int(e["event microsecond"])
        assert datetime.strptime(r["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() == sec + usec / 1e6
        assert (a["gid"], a["signature_id"], a["rev"]) == (int(e["gen id"]), int(e["sig id"]), int(e["revision"]))
        assert r["ingest"]["class_id"] == int(e["classification"]) and a["severity"] == int(e["priority"])
        assert (ip(r["src_ip"]), ip(r["dest_ip"])) == (ip(e["ip source"]), ip(e["ip destination"]))
        assert (u["impact_flag"], u["blocked"]) == (int(e["impact_flag"]), int(e["blocked"]))
        assert u["record_type"] == (72 if e["title"] == "(IPv6 Event)" else 7)
        # Unified2 carries no text: the signature comes from maps, not loaded here
        assert a["action"] == ("blocked" if int(e["blocked"]) == 1 else "allowed")
    # every packet, byte for byte, with its event
    ours = []
    for r in records:
        u = r["unified2"]
        for j, pk in enumerate(u.get("packets", [])):
            data = base64.b64decode(r["packet"] if j == 0 else pk["data"])
            ours.append((r["ingest"]["event_id"], pk["packet_second"], pk["packet_microsecond"],
                         pk["linktype"], pk["length"], data))
    theirs = [(int(x["event id"]), int(x["packet second"]), int(x["packet microsecond"]), int(x["linktype"]),
               int(x["packet_length"]), x["data"]) for x in packets]
    assert ours == theirs
    # and the same alerts as Snort's own CSV (ports, protocol)
    for r, c in zip(records, csv_rows(f"{S2}/alert.csv"), strict=True):
        assert snort_time(r["timestamp"]) == c[0] and r["alert"]["signature_id"] == int(c[2])
        if c[5] != "ICMP":
            assert (r["src_port"], r["dest_port"]) == (int(c[7]), int(c[9]))


# ---- Snort 3.12.2.0 ------------------------------------------------------------------

def snort3_json() -> list[dict]:
    return [json.loads(x) for x in shared_file(f"{S3}/alert_json.txt").read_text().splitlines()]


def test_snort3_datagrams_through_a_listener_match_snort3_json_and_csv(tmp_path, run_ingest):
    records, db = snort_through_listener(run_ingest, tmp_path, f"{S3}/unsock-datagrams.bin.gz", 22)
    theirs, csv3 = snort3_json(), csv_rows(f"{S3}/alert_csv.txt")
    assert len(records) == len(theirs) == len(csv3) == 22
    no_packet = 0
    for r, j, c in zip(records, theirs, csv3, strict=True):
        a = r["alert"]
        assert snort_time(r["timestamp"]) == j["timestamp"] == c[0]
        assert (a["gid"], a["signature_id"], a["rev"]) == (j["gid"], j["sid"], j["rev"])
        # the quotes Snort 3 puts around every msg are gone, as in its own JSON
        assert cut_msg(a["signature"], j["msg"], 254) and not a["signature"].startswith('"')
        assert a["severity"] == j["priority"]
        assert a.get("category", "none") == j["class"]
        if "src_ip" not in r:
            # the stream-rebuilt alert carries no packet at all (caplen 0)
            no_packet += 1
            assert a["signature_id"] == 1000007
            continue
        assert r["proto"] == j["proto"]
        assert (ip(r["src_ip"]), ip(r["dest_ip"])) == (ip(j["src_addr"]), ip(j["dst_addr"]))
        if j["proto"] == "ICMP":
            assert "src_port" not in r
        else:
            assert (r["src_port"], r["dest_port"]) == (j["src_port"], j["dst_port"])
    assert no_packet == 1
    # the store reads the same text
    assert [x["signature"] for x in db_rows(db)] == [r["alert"]["signature"] for r in records]


def test_snort3_spool_action_is_what_snort_says(tmp_path):
    """Every alert of this IDS run has snort_action 1 (allow); Snort's CSV says
    allow: never "blocked"."""
    res = unified2.read(shared_file(f"{S3}/unified2.log"))
    assert res.errors == [] and len(res.alerts) == 22
    records = to_records(res.batch)
    csv3 = csv_rows(f"{S3}/alert_csv.txt")
    spew = [x for x in spewfoo(f"{S3}/u2spewfoo.txt") if x["title"] == "(Event)"]
    assert len(records) == len(csv3) == len(spew) == 22
    for r, c, e in zip(records, csv3, spew, strict=True):
        a, u = r["alert"], r["unified2"]
        assert a["action"] == "allowed"
        assert u["snort_verdict"] == c[-1] == "allow"
        assert (u["snort_action"], u["snort_status"]) == (1, 0)  # raw bytes kept
        assert snort_time(r["timestamp"]) == c[0]
        assert r["ingest"]["event_id"] == int(e["Event ID"])
        assert (a["gid"], a["signature_id"], a["rev"]) == e["rule"]
        assert f'{a["gid"]}:{a["signature_id"]}:{a["rev"]}' == c[8]
        assert (ip(r.get("src_ip")), ip(r.get("dest_ip"))) == (ip(e["Src IP"]), ip(e["Dst IP"]))
        assert a["severity"] == int(e["Priority"]) and r["ingest"]["class_id"] == int(e["Class"])
        assert u["record_type"] == 114


# ---- Barnyard2 2.1.14 ----------------------------------------------------------------

def by2_expected() -> list[list[str]]:
    """Barnyard2's own CSV, one row per packet record, as the datagrams: the
    event with two packet records (event 15) is listed twice; we store it
    once.  The CSV has no event id: the datagram beside each row names it
    (Unified2EventCommon at byte 1,816, big-endian)."""
    rows = csv_rows(f"{BY2}/alert.csv")
    dgrams = captures(f"{BY2}/dgram-datagrams.bin.gz")
    assert len(rows) == len(dgrams) == 24
    out, seen = [], set()
    for r, d in zip(rows, dgrams, strict=True):
        key = struct.unpack_from(">4I", d, 1816)  # sensor, event id, second, microsecond
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def check_by2(records: list[dict]) -> None:
    exp = by2_expected()
    assert len(records) == len(exp) == 23
    for r, c in zip(records, exp, strict=True):
        a = r["alert"]
        assert snort_time(r["timestamp"]) == c[0]
        assert (a["gid"], a["signature_id"], a["rev"]) == (int(c[1]), int(c[2]), int(c[3]))
        assert cut_msg(a["signature"], c[4], 255)
        assert r["proto"] == c[5]
        assert (ip(r["src_ip"]), ip(r["dest_ip"])) == (ip(c[6]), ip(c[8]))
        if c[5] != "ICMP":
            assert (r["src_port"], r["dest_port"]) == (int(c[7]), int(c[9]))
        assert r["ingest"]["source"] == "barnyard2"
    assert len({(r["ingest"]["event_id"], r["timestamp"]) for r in records}) == 23


def test_barnyard2_datagrams_through_a_listener_one_alert_per_event(tmp_path, run_ingest):
    dgrams = captures(f"{BY2}/dgram-datagrams.bin.gz")
    assert len(dgrams) == 24
    p, sock, db, out = listen(run_ingest, tmp_path, "--barnyard2")
    # Barnyard2 connects once and sends
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(str(sock))
    for d in dgrams:
        s.send(d)
    s.close()
    st = stop(p)
    assert st["received"] == 24 and st["decoded"] == 23 and st["barnyard2_duplicates"] == 1
    records = [json.loads(x) for x in out.read_text().splitlines()]
    check_by2(records)
    assert db_rows(db, "SELECT count(*) AS n, count(DISTINCT event_id) AS e FROM alerts") == [{"n": 23, "e": 23}]


def test_barnyard2_sync_every_record_acknowledged_each_event_stored_once(tmp_path, run_ingest):
    dgrams = captures(f"{BY2}/dgram-datagrams.bin.gz")
    p, sock, db, out = listen(run_ingest, tmp_path, "--barnyard2-sync")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.settimeout(60)
    c.connect(str(sock))
    acks = 0
    for d in dgrams:  # as Barnyard2 does: one record, then wait for the byte
        c.send(d)
        assert c.recv(1) == b"\x01"
        acks += 1
    c.close()
    st = stop(p)
    assert acks == 24 and st["decoded"] == 23 and st["barnyard2_duplicates"] == 1
    check_by2([json.loads(x) for x in out.read_text().splitlines()])
    assert db_rows(db, "SELECT count(*) AS n FROM alerts") == [{"n": 23}]


def test_barnyard2_resent_after_a_restart_is_stored_once(tmp_path, run_ingest):
    """Barnyard2 restarted from an old waldo resends events; the reader's
    window is new, the store's key is not.  JSON sinks are at-least-once."""
    dgrams = captures(f"{BY2}/dgram-datagrams.bin.gz")
    for run in range(2):
        p, sock, db, out = listen(run_ingest, tmp_path, "--barnyard2")
        snort_send(sock, dgrams)
        st = stop(p)
        assert st["decoded"] == 23
        assert db_rows(db, "SELECT count(*) AS n FROM alerts") == [{"n": 23}], run
    assert len(out.read_text().splitlines()) == 46


# ---- Suricata 7.0.0 ------------------------------------------------------------------

def check_suricata(alerts: list[dict]) -> None:
    """Store rows (or the same fields) against Suricata's fast.log."""
    fast = fast_rows(f"{SURI}/fast.log")
    assert len(alerts) == len(fast) == 19
    for r, f in zip(alerts, fast, strict=True):
        assert suricata_time(r["ts_us"]) == f["ts"]
        assert (r["gid"], r["sid"], r["rev"]) == (int(f["gid"]), int(f["sid"]), int(f["rev"]))
        assert r["signature"] == f["msg"]
        assert r["priority"] == int(f["prio"])
        assert (r["category"] or "(null)") == f["cls"]
        proto = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "IPv6-ICMP"}[r["proto"]]
        assert proto == f["proto"]
        src, sport = split_hostport(f["src"], True)
        dst, dport = split_hostport(f["dst"], True)
        assert (ip(r["src_ip"]), ip(r["dest_ip"])) == (ip(src), ip(dst))
        if proto == "ICMP":  # fast.log prints type:code as ports
            assert (r["icmp_type"], r["icmp_code"]) == (sport, dport)
        else:
            assert (r["src_port"], r["dest_port"]) == (sport, dport)


def test_suricata_eve_file_matches_fast_log():
    res = decode_lines(shared_file(f"{SURI}/eve.json").read_bytes())
    assert res.rejected == [] and res.counts.get("alert") == 19
    recs = to_records(res.batch)
    alerts = []
    for r, a in zip(recs, res.batch.alerts, strict=True):
        al = r["alert"]
        alerts.append({"ts_us": int(a["ts_us"]), "gid": al["gid"], "sid": al["signature_id"], "rev": al["rev"],
                       "signature": al["signature"], "priority": al["severity"],
                       "category": al["category"] or None, "proto": int(a["proto"]),
                       "src_ip": r["src_ip"], "dest_ip": r["dest_ip"], "src_port": r.get("src_port"),
                       "dest_port": r.get("dest_port"), "icmp_type": r.get("icmp_type"),
                       "icmp_code": r.get("icmp_code")})
    check_suricata(alerts)


def _suricata_store(db) -> list[dict]:
    rows = db_rows(db, "SELECT * FROM alerts_v ORDER BY ts_us, id")
    return rows


def test_suricata_unix_dgram_through_a_listener_matches_fast_log(tmp_path, run_ingest):
    dgrams = captures(f"{SURI}/dgram-datagrams.bin.gz")
    assert len(dgrams) == 41
    p, sock, db, out = listen(run_ingest, tmp_path, "--eve-dgram")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(str(sock))  # Suricata connects once, one record per datagram
    for d in dgrams:
        s.send(d)
    s.close()
    st = stop(p)
    assert st["malformed"] == {} and st["decoded"] == 19
    check_suricata(_suricata_store(db))
    assert db_rows(db, "SELECT count(*) AS n FROM flows") == [{"n": 17}]
    # JSON sinks get Suricata's own records (alerts, flows, the rest), byte for byte
    lines = out.read_text().splitlines()
    assert sorted(lines) == sorted(d.decode().rstrip("\n") for d in dgrams)


def test_suricata_unix_stream_through_a_listener_matches_fast_log(tmp_path, run_ingest):
    stream = gzip.open(shared_file(f"{SURI}/stream-conn-1.bin.gz")).read()  # the raw byte stream
    p, sock, db, out = listen(run_ingest, tmp_path, "--eve-stream")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    for i in range(0, len(stream), 1000):  # record boundaries have no relation to writes
        s.sendall(stream[i: i + 1000])
        time.sleep(0.001)
    s.close()
    st = stop(p)
    assert st["malformed"] == {} and st["decoded"] == 19
    check_suricata(_suricata_store(db))
    assert db_rows(db, "SELECT count(*) AS n FROM flows") == [{"n": 17}]


def test_suricata_captures_agree_with_eve_json():
    """The three transports (three runs) carried the same 41 records."""
    dgrams = captures(f"{SURI}/dgram-datagrams.bin.gz")
    stream = gzip.open(shared_file(f"{SURI}/stream-conn-1.bin.gz")).read()
    lines = shared_file(f"{SURI}/eve.json").read_bytes().splitlines(keepends=True)

    def kinds(records) -> list:
        return sorted(json.loads(x)["event_type"] for x in records)

    assert len(lines) == len(dgrams) == 41 and kinds(lines).count("alert") == 19
    assert all(d.endswith(b"}\n") and d.count(b"\n") == 1 for d in dgrams)
    assert kinds(dgrams) == kinds(lines) == kinds(stream.splitlines())


# ---- two engines, one store: Snort's alerts joined to Suricata's flows --------------

def test_snort2_alerts_join_the_suricata_flows_of_the_same_pcap(tmp_path):
    """Snort 2.9.19 and Suricata 7.0.0 ran on the same test.pcap.  Into one
    store, Snort's alerts first (the flows arrive later, as they do), then
    Suricata's eve.json: every Snort alert that Suricata also raised (same
    rule sid, same packet's 5-tuple) is linked to the flow of Suricata's own
    alert (its flow_id), by 5-tuple and time alone (ingest.flows.correlate)."""
    import asyncio
    import sqlite3

    from ingest.alertpkt import decode_datagrams
    from ingest.mapping import Enricher
    from ingest.sinks.sqlite import SqliteSink

    db = tmp_path / "two.db"
    sink = SqliteSink(str(db), sensor="sensor1")

    async def write() -> None:
        await sink.write(Enricher().apply(decode_datagrams(captures(f"{S2}/unsock-datagrams.bin.gz")).batch))
        await sink.write(Enricher().apply(decode_lines(shared_file(f"{SURI}/eve.json").read_bytes()).batch))
        await sink.aclose()

    asyncio.run(write())
    con = sqlite3.connect(db)
    try:
        def one(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        pairs = one(
            "SELECT s.id, s.sid, s.ts_us, sf.flow_id, e.flow_id FROM alerts s "
            "LEFT JOIN flows sf ON sf.id = s.flow_ref "
            "JOIN alerts e ON e.source = 'eve' AND e.sid = s.sid AND e.src_ip = s.src_ip "
            "AND coalesce(e.src_port, -1) = coalesce(s.src_port, -1) AND e.dest_ip = s.dest_ip "
            "AND coalesce(e.dest_port, -1) = coalesce(s.dest_port, -1) "
            "AND abs(e.ts_us - s.ts_us) < 10000 "  # the same packet or PDU (the engines stamp stream alerts apart)
            "WHERE s.source = 'snort'")
        assert len({p[0] for p in pairs}) == 19  # Snort's 23 alerts but its 4 decoder (gid 116) alerts
        # and every one of Snort's alerts lies in a flow Suricata logged (decoder alerts too)
        assert one("SELECT count(*) FROM alerts WHERE source = 'snort' AND flow_ref IS NOT NULL") == [(23,)]
        for sid_row, sid, ts, linked, theirs in pairs:
            assert linked == theirs, f"Snort alert {sid_row} (sid {sid} at {ts}) linked to flow {linked}, " \
                                     f"Suricata's alert of that packet is in flow {theirs}"
        # each flow's alert count is the alerts linked to it, of both engines
        assert one("SELECT sum(alert_count) FROM flows_v") == one(
            "SELECT count(*) FROM alerts WHERE flow_ref IS NOT NULL")
        both = one("SELECT count(*) FROM flows f WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.flow_ref = f.id "
                   "AND a.source = 'snort') AND EXISTS (SELECT 1 FROM alerts a WHERE a.flow_ref = f.id "
                   "AND a.source = 'eve')")[0][0]
        assert both == 15  # of 17 flows: one DNS query raised nothing, one only Snort's decoder alerts
    finally:
        con.close()


def test_query_flows_for_every_engine_with_filters_same_on_both_stores(tmp_path):
    """``ingest query flows`` over the two-engine store (Snort 2.9.19 and
    Suricata 7.0.0 on the same pcap): a Snort-only decoder signature finds
    its flow; the filters narrow the alerts that count; a PostgreSQL store
    fed the same batches gives the same answer (skipped without its binaries)."""
    import asyncio
    import subprocess
    import sys

    from ingest.alertpkt import decode_datagrams
    from ingest.mapping import Enricher
    from ingest.sinks.base import open_sink

    def batches():
        return [Enricher().apply(decode_datagrams(captures(f"{S2}/unsock-datagrams.bin.gz")).batch),
                Enricher().apply(decode_lines(shared_file(f"{SURI}/eve.json").read_bytes()).batch)]

    def fill(url: str) -> None:
        sink = open_sink(url, sensor="sensor1")

        async def go() -> None:
            for b in batches():
                await sink.write(b)
            await sink.aclose()

        asyncio.run(go())


    def flows(db: str, *args: str) -> list[dict]:
        p = subprocess.run([sys.executable, "-m", "ingest", "query", "flows", "--db", db, "--json", *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [json.loads(x) for x in p.stdout.splitlines()]

    db = f"sqlite:{tmp_path / 'two.db'}"
    fill(db)
    decoder = flows(db, "--min-severity", "3", "--sig", "116:401")
    assert [(r["src_port"], r["dest_port"], r["alerts"], r["signatures"]) for r in decoder] == \
        [(44000, 25, 1, "116:401")]
    every = flows(db, "--min-severity", "3", "--limit", "0")
    import sqlite3

    con = sqlite3.connect(tmp_path / "two.db")
    want = con.execute("SELECT count(DISTINCT flow_ref), count(*) FROM alerts "
                       "WHERE flow_ref IS NOT NULL AND priority BETWEEN 1 AND 3").fetchone()
    con.close()
    assert (len(every), sum(r["alerts"] for r in every)) == want and want[1] > 20
    assert flows(db, "--min-severity", "3", "--sensor", "elsewhere") == []
    assert flows(db, "--min-severity", "3", "--until", "2023-11-14T22:13:20Z") == []  # before the pcap
    p3 = flows(db, "--priority", "3", "--limit", "0")
    assert p3 and all(r["top_priority"] == 3 for r in p3)
    bad = subprocess.run([sys.executable, "-m", "ingest", "query", "flows", "--db", db, "--priority", "1",
                          "--min-severity", "2"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not allowed with" in bad.stderr

    from tests.pg import PgServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        return  # the SQLite half is checked; PostgreSQL's binaries are absent here
    server = PgServer(bin_dir)
    server.start()
    try:
        url = server.url(server.new_database())
        fill(url)

        def key(rows: list[dict]) -> list[tuple]:
            return sorted((r["flow_id"], r["alerts"], r["top_priority"],
                           ",".join(sorted(r["signatures"].split(",")))) for r in rows)

        for args in (["--min-severity", "3", "--limit", "0"], ["--priority", "3"], ["--sig", "1000003"]):
            assert key(flows(url, *args)) == key(flows(db, *args)), args
    finally:
        server.cleanup()
