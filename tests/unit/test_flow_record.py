"""The canonical flow record: the numpy dtype matches struct ingest_flow byte
for byte, and Suricata flow/netflow events map to it."""

import numpy as np
from ingest._native import ffi, lib

from ingest.eve import FLOW_ROW_COLUMNS, decode_lines
from ingest.flows import record as R

from ..conftest import shared_file


def test_dtype_matches_c_struct():
    assert R.FLOW_DTYPE.itemsize == ffi.sizeof("struct ingest_flow")
    c_fields = [name for name, _ in ffi.typeof("struct ingest_flow").fields]
    assert list(R.FLOW_DTYPE.names) == c_fields
    for name in R.FLOW_DTYPE.names:
        assert R.FLOW_DTYPE.fields[name][1] == ffi.offsetof("struct ingest_flow", name), name
        assert R.FLOW_DTYPE.fields[name][0].itemsize == ffi.sizeof(
            ffi.typeof("struct ingest_flow").fields[c_fields.index(name)][1].type), name


def test_constants_match_c():
    assert (R.FLOW_SRC_NONE, R.FLOW_SRC_EVE, R.FLOW_SRC_NETFLOW5, R.FLOW_SRC_NETFLOW9, R.FLOW_SRC_IPFIX,
            R.FLOW_SRC_ZEEK) == (
        lib.INGEST_FLOW_SRC_NONE, lib.INGEST_FLOW_SRC_EVE, lib.INGEST_FLOW_SRC_NETFLOW5,
        lib.INGEST_FLOW_SRC_NETFLOW9, lib.INGEST_FLOW_SRC_IPFIX, lib.INGEST_FLOW_SRC_ZEEK)
    assert (R.FF_ADDRS, R.FF_PORTS, R.FF_ICMP, R.FF_VLAN, R.FF_BIFLOW, R.FF_TCP_FLAGS, R.FF_SAMPLED,
            R.FF_EXPORTER) == (
        lib.INGEST_FF_ADDRS, lib.INGEST_FF_PORTS, lib.INGEST_FF_ICMP, lib.INGEST_FF_VLAN,
        lib.INGEST_FF_BIFLOW, lib.INGEST_FF_TCP_FLAGS, lib.INGEST_FF_SAMPLED, lib.INGEST_FF_EXPORTER)


def test_a_record_written_in_c_reads_back_in_numpy():
    """Write every field through the C struct; numpy sees the same values."""
    c = ffi.new("struct ingest_flow *")
    c.start_us, c.end_us, c.flow_id = -5, 1 << 50, (1 << 64) - 1
    c.pkts, c.bytes, c.pkts_rev, c.bytes_rev = 1, 2, 3, 4
    c.src_addr = list(range(16))
    c.dst_addr = list(range(16, 32))
    c.exporter_addr = list(range(32, 48))
    c.domain, c.sampling, c.app_idx = 0xDEADBEEF, 100, -1
    c.src_port, c.dst_port, c.vlan = 65535, 53, 4095
    c.ip_ver, c.proto, c.tcp_flags, c.tcp_flags_rev = 6, 17, 0x1B, 0x12
    c.source, c.flags, c.exporter_ver, c.end_reason = 4, 0xFF, 4, 2
    rec = np.frombuffer(ffi.buffer(c), R.FLOW_DTYPE)[0]
    assert (rec["start_us"], rec["end_us"], rec["flow_id"]) == (-5, 1 << 50, (1 << 64) - 1)
    assert (rec["pkts"], rec["bytes"], rec["pkts_rev"], rec["bytes_rev"]) == (1, 2, 3, 4)
    assert bytes(rec["src_addr"]) == bytes(range(16)) and bytes(rec["exporter_addr"]) == bytes(range(32, 48))
    assert (rec["domain"], rec["sampling"], rec["app_idx"]) == (0xDEADBEEF, 100, -1)
    assert (rec["src_port"], rec["dst_port"], rec["vlan"]) == (65535, 53, 4095)
    assert (rec["ip_ver"], rec["proto"], rec["tcp_flags"], rec["tcp_flags_rev"]) == (6, 17, 0x1B, 0x12)
    assert (rec["source"], rec["flags"], rec["exporter_ver"], rec["end_reason"]) == (4, 0xFF, 4, 2)


_TCP = (b'{"timestamp":"2025-09-16T10:09:05.540950-0400","flow_id":189735682417789,"in_iface":"enp0s8",'
        b'"event_type":"flow","src_ip":"10.56.157.182","src_port":55448,"dest_ip":"185.125.190.48",'
        b'"dest_port":80,"proto":"TCP","app_proto":"http","vlan":[7],"flow":{"pkts_toserver":7,'
        b'"pkts_toclient":4,"bytes_toserver":558,"bytes_toclient":461,"start":"2025-09-16T10:08:00.437392-0400",'
        b'"end":"2025-09-16T10:08:01.042290-0400","age":1,"state":"closed","reason":"timeout","alerted":false},'
        b'"tcp":{"tcp_flags":"1f","tcp_flags_ts":"1f","tcp_flags_tc":"1b","syn":true}}')
_ICMP6 = (b'{"timestamp":"2024-12-17T19:17:54.565494-0500","flow_id":824697914111084,"event_type":"flow",'
          b'"src_ip":"fe80:0000:0000:0000:8810:3337:f1e3:ebc7","dest_ip":"ff02:0000:0000:0000:0000:0000:0000:0016",'
          b'"proto":"IPv6-ICMP","icmp_type":143,"icmp_code":0,"flow":{"pkts_toserver":6,"pkts_toclient":0,'
          b'"bytes_toserver":540,"bytes_toclient":0,"start":"2024-12-17T19:28:18.323086-0500",'
          b'"end":"2024-12-17T19:28:19.015501-0500","age":1,"state":"new","reason":"timeout","alerted":false}}')
_NETFLOW = (b'{"timestamp":"2024-12-17T19:17:54.565494-0500","flow_id":18446744073709551615,"event_type":"netflow",'
            b'"src_ip":"192.0.2.1","src_port":53,"dest_ip":"192.0.2.9","dest_port":4444,"proto":"UDP",'
            b'"netflow":{"pkts":2,"bytes":300,"start":"2024-12-17T19:28:18.323086-0500",'
            b'"end":"2024-12-17T19:28:19.015501-0500","age":1}}')


def _records(*lines):
    r = decode_lines(b"\n".join(lines) + b"\n")
    return r.batch.events.flows, R.from_eve_rows(r.batch.events.flows, FLOW_ROW_COLUMNS)


def test_suricata_flow_events_map_to_the_record():
    rows, fb = _records(_TCP, _ICMP6, _NETFLOW)
    assert len(fb) == 3 and fb.strings == ["http"]
    tcp, icmp, nf = fb.records
    assert tcp["flow_id"] == 189735682417789 and tcp["source"] == R.FLOW_SRC_EVE
    assert bytes(tcp["src_addr"]) == bytes(10) + b"\xff\xff" + bytes([10, 56, 157, 182]) and tcp["ip_ver"] == 4
    assert (tcp["src_port"], tcp["dst_port"], tcp["proto"], tcp["vlan"]) == (55448, 80, 6, 7)
    assert (tcp["pkts"], tcp["bytes"], tcp["pkts_rev"], tcp["bytes_rev"]) == (7, 558, 4, 461)
    assert (tcp["tcp_flags"], tcp["tcp_flags_rev"]) == (0x1F, 0x1B)
    assert tcp["start_us"] == 1758031680437392 and tcp["end_us"] == 1758031681042290
    assert tcp["flags"] == R.FF_ADDRS | R.FF_PORTS | R.FF_VLAN | R.FF_BIFLOW | R.FF_TCP_FLAGS
    assert tcp["app_idx"] == 0
    assert icmp["ip_ver"] == 6 and icmp["proto"] == 58 and (icmp["src_port"], icmp["dst_port"]) == (143, 0)
    assert icmp["flags"] == R.FF_ADDRS | R.FF_ICMP | R.FF_BIFLOW and icmp["app_idx"] == -1
    # netflow events are one direction: no reverse counters, the u64 flow id kept whole
    assert nf["flow_id"] == (1 << 64) - 1 and nf["flags"] == R.FF_ADDRS | R.FF_PORTS
    assert (nf["pkts"], nf["bytes"], nf["pkts_rev"], nf["proto"]) == (2, 300, 0, 17)
    # the store row carries the same canonical columns
    row = dict(zip(FLOW_ROW_COLUMNS, rows[0], strict=True))
    assert (row["source"], row["ip_proto"], row["ip_ver"], row["vlan"], row["tcp_flags"], row["tcp_flags_rev"]) == (
        "eve", 6, 4, 7, 0x1F, 0x1B)
    assert dict(zip(FLOW_ROW_COLUMNS, rows[1], strict=True))["icmp_type"] == 143


def test_every_flow_of_real_suricata_output_maps():
    """Every flow event of a real Suricata 7 run becomes a record whose
    counters and addresses equal the event's."""
    import json

    path = shared_file("eve/zeus-suricata-7.0.7/eve.json")
    lines = [ln for ln in path.read_bytes().splitlines() if b'"event_type":"flow"' in ln]
    rows, fb = _records(*lines)
    assert len(fb) == len(lines) > 50
    for line, rec in zip(lines, fb.records, strict=True):
        ev = json.loads(line)
        assert rec["flow_id"] == ev["flow_id"]
        assert rec["pkts"] == ev["flow"]["pkts_toserver"] and rec["bytes_rev"] == ev["flow"]["bytes_toclient"]
        assert R.addr16(ev["src_ip"])[0] == bytes(rec["src_addr"])
        assert rec["flags"] & R.FF_ADDRS
        assert bool(rec["flags"] & R.FF_ICMP) == ("icmp_type" in ev)


def test_concat_rebases_app_idx():
    a = R.empty(1)
    a["app_idx"] = 0
    b = R.empty(2)
    b["app_idx"] = [-1, 0]
    m = R.FlowBatch.concat([R.FlowBatch(a, ["dns"], "x"), R.FlowBatch(b, ["tls"], "x")])
    assert m.strings == ["dns", "tls"] and m.records["app_idx"].tolist() == [0, -1, 1]


# ---- the store: schema version 3 -------------------------------------------

#: the flows table of schema version 1 (the previous release), with a row
V1_FLOWS = """
CREATE TABLE flows (id INTEGER PRIMARY KEY, flow_id INTEGER NOT NULL, event_type TEXT NOT NULL,
    src_ip TEXT, src_port INTEGER, dest_ip TEXT, dest_port INTEGER, proto TEXT, app_proto TEXT,
    start TEXT, "end" TEXT, start_us INTEGER, end_us INTEGER, pkts_toserver INTEGER,
    pkts_toclient INTEGER, bytes_toserver INTEGER, bytes_toclient INTEGER, state TEXT, reason TEXT,
    alerted INTEGER, sensor TEXT NOT NULL, UNIQUE (sensor, flow_id, event_type, src_ip, src_port));
CREATE INDEX flows_flow ON flows (flow_id);
INSERT INTO flows (id, flow_id, event_type, src_ip, src_port, pkts_toserver, sensor)
    VALUES (7, 5, 'flow', '10.0.0.1', 1, 3, 'old-sensor');
"""


def test_a_version_1_store_gets_the_record_columns(tmp_path):
    import asyncio
    import sqlite3

    from ingest.mapping import Enricher
    from ingest.sinks import rows as SR
    from ingest.sinks.sqlite import SCHEMA_VERSION, SqliteSink

    db = tmp_path / "v1.db"
    sink = SqliteSink(str(db), sensor="s")  # a complete store of the current version ...
    asyncio.run(sink.aclose())
    c = sqlite3.connect(db)
    c.executescript("DROP TABLE flows;" + V1_FLOWS + "PRAGMA user_version = 1;")  # ... with v1 flows
    c.close()
    sink = SqliteSink(str(db), sensor="s")
    batch = decode_lines(_TCP + b"\n").batch

    async def go():
        await sink.write(Enricher().apply(batch))
        await sink.aclose()

    asyncio.run(go())
    c = sqlite3.connect(db)
    try:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (6,)
        assert [r[1] for r in c.execute("PRAGMA table_info(flows)")] == [
            "id", *SR.FLOW_COLUMNS, *SR.FLOW_LINK_COLUMNS]
        assert c.execute("SELECT id, flow_id, source, pkts_toserver, sensor FROM flows WHERE id = 7"
                         ).fetchone() == (7, 5, "eve", 3, "old-sensor")
        assert c.execute("SELECT source, ip_proto, ip_ver, vlan, tcp_flags, tcp_flags_rev, exporter "
                         "FROM flows WHERE id != 7").fetchall() == [("eve", 6, 4, 7, 0x1F, 0x1B, None)]
        # flow_id is nullable now (NetFlow has none) and such rows never collide
        c.execute("INSERT INTO flows (event_type, src_ip, src_port, sensor) VALUES ('netflow', 'a', 1, 's')")
        c.execute("INSERT INTO flows (event_type, src_ip, src_port, sensor) VALUES ('netflow', 'a', 1, 's')")
        assert c.execute("SELECT count(*) FROM flows WHERE flow_id IS NULL").fetchone() == (2,)
        assert c.execute("SELECT 1 FROM sqlite_master WHERE name = 'flows_flow'").fetchone() == (1,)
    finally:
        c.close()
