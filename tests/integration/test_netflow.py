"""``ingest listen --netflow udp://...``: a real process fed over real UDP
sockets with a real exporter's packets (pmacct's, tests/data/netflow),
hostile packets among them; what the store, the JSON lines and the stats
say."""

from __future__ import annotations

import gzip
import json
import re
import socket
import sqlite3
import struct

from ingest import deadletter
from ingest.gen import netflow as G

from ..conftest import ROOT
from ._util import wait_until

DATA = ROOT / "tests" / "data" / "netflow"


def captures(name: str) -> list[bytes]:
    data = gzip.open(DATA / name).read()
    out, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def ports(p) -> list[int]:
    """The ports ingest bound (it prints them in its 'listening on' line)."""
    line = next(ln for ln in p.stderr().splitlines() if "listening on" in ln)
    return [int(x) for x in re.findall(r"netflow:udp://127\.0\.0\.1:(\d+)", line)]


def rows(db, sql):
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def test_exports_flow_into_the_store_and_json_lines(tmp_path, run_ingest):
    db, js, dl = tmp_path / "a.db", tmp_path / "flows.jsonl", tmp_path / "dl.bin"
    p = run_ingest(["listen", "--netflow", "udp://127.0.0.1:0", "--netflow", "udp://:0",
                    "--sink", f"sqlite:{db}", "--sink", f"jsonl:{js}", "--dead-letter", str(dl),
                    "--stats-interval", "0"], wait_for=[])
    a, b = ports(p)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v5, v9, ipfix = captures("pmacct-v5.bin.gz"), captures("pmacct-v9.bin.gz"), captures("pmacct-ipfix.bin.gz")
    for d in v5 + v9:
        s.sendto(d, ("127.0.0.1", a))
    s.sendto(G.v9([struct.pack("!HH", 256, 400) + bytes(8)]), ("127.0.0.1", a))  # a set beyond the packet
    s.sendto(b"\x00\x0a\x00", ("127.0.0.1", b))  # short
    for d in ipfix:
        s.sendto(d, ("127.0.0.1", b))
    # a v5 exporter that lost 7 flows between two packets
    s2.sendto(G.v5([G.Flow(src="10.1.1.1")], seq=0, engine=(9, 9)), ("127.0.0.1", b))
    s2.sendto(G.v5([G.Flow(src="10.1.1.2")], seq=8, engine=(9, 9)), ("127.0.0.1", b))
    s.close()
    s2.close()
    want = 21 + 25 + 25 + 2
    wait_until(lambda: db.exists() and rows(db, "SELECT count(*) FROM flows")[0][0] >= want, p, "flows")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["malformed"] == {"netflow_bad_set": 1, "netflow_short_header": 1}
    assert st["exporter_loss"] == 7 and st["netflow_flows"] == want and st["netflow_packets"] == 1 + 5 + 5 + 2 + 2
    assert rows(db, "SELECT source, count(*) FROM flows GROUP BY 1 ORDER BY 1") == [
        ("ipfix", 25), ("netflow5", 23), ("netflow9", 25)]
    # the same traffic through three protocols: the same 5-tuples and counters
    q = ("SELECT src_ip, src_port, dest_ip, dest_port, ip_proto, pkts_toserver, bytes_toserver FROM flows "
         "WHERE source = '{}' AND ip_ver = 4 AND src_ip NOT LIKE '10.1.1.%' ORDER BY 1, 2, 3, 4, 5, 6, 7")
    assert rows(db, q.format("netflow9")) == rows(db, q.format("ipfix")) == rows(db, q.format("netflow5"))
    assert rows(db, "SELECT count(*) FROM flows WHERE ip_ver = 6 AND source = 'ipfix'")[0][0] == 4
    assert rows(db, "SELECT DISTINCT exporter, flow_id, event_type FROM flows") == [("127.0.0.1", None, "netflow")]
    lines = [json.loads(x) for x in js.read_text().splitlines()]
    assert len(lines) == want and {x["event_type"] for x in lines} == {"netflow"}
    assert {x["exporter"]["source"] for x in lines} == {"netflow5", "netflow9", "ipfix"}
    reasons = sorted(h["reason"] for h, _ in deadletter.read(str(dl)))
    assert reasons == ["netflow_bad_set", "netflow_short_header"]


def test_binding_wider_than_loopback_warns(tmp_path, run_ingest):
    p = run_ingest(["listen", "--netflow", "udp://0.0.0.0:0", "--sink", "null:", "--dead-letter", "",
                    "--stats-interval", "0"], wait_for=[])
    rc, _ = p.stop()
    assert rc == 0 and "not loopback: NetFlow/IPFIX has no authentication" in p.stderr()


def test_a_bad_url_is_a_startup_error(tmp_path, run_ingest):
    for url, why in (("tcp://127.0.0.1:2055", "expected udp://HOST:PORT"), ("udp://127.0.0.1", "a port is needed"),
                     ("udp://localhost:2055", "must be an IP address")):
        p = run_ingest(["listen", "--netflow", url, "--sink", "null:"])
        assert p.proc.wait(timeout=30) == 2 and why in p.stderr(), p.stderr()
