"""Unified2 decoder: the C core through the ffi, and the Python join."""

from __future__ import annotations

import ipaddress
import os
import pathlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest._native import ffi

from ingest import batch as B
from ingest import unified2 as U
from ingest.render import to_records

from ..conftest import SHARED
from . import u2writer as W

DATA = str(SHARED / "unified2")


def real(name: str) -> str:
    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.parametrize("dtype,ctype", [
    (U.EVENT_DTYPE, "struct ingest_u2_event"),
    (U.PACKET_DTYPE, "struct ingest_u2_packet"), (U.EXTRA_DTYPE, "struct ingest_u2_extra"),
])
def test_dtypes_match_c_structs(dtype, ctype):
    assert dtype.itemsize == ffi.sizeof(ctype)
    for name in dtype.names:
        assert dtype.fields[name][1] == ffi.offsetof(ctype, name), name


def one(buf: bytes) -> dict:
    res = U.decode(buf)
    assert len(res.alerts) == 1, res.errors
    return to_records(res.batch)[0]


def test_legacy_ipv4_event_7():
    r = one(W.event_v4(7, event_id=5, sec=1286333418, usec=739953, sid=485, gid=1, rev=5, cls=29,
                       prio=3, src="24.19.7.110", dst="10.0.1.6", sport=3, dport=13, proto=1))
    assert r["timestamp"] == "2010-10-06T02:50:18.739953+0000"
    assert (r["src_ip"], r["dest_ip"], r["icmp_type"], r["icmp_code"]) == ("24.19.7.110", "10.0.1.6", 3, 13)
    assert r["alert"] == {"action": "allowed", "gid": 1, "signature_id": 485, "rev": 5, "severity": 3}
    assert r["ingest"]["event_id"] == 5 and r["ingest"]["class_id"] == 29
    assert "src_port" not in r and r["unified2"]["record_type"] == 7


@pytest.mark.parametrize("rtype,app,app_len", [(104, None, 64), (104, b"HTTP", 64), (111, b"SSH", 64)])
def test_v2_ipv4_events(rtype, app, app_len):
    res = U.decode(W.event_v4(rtype, vlan=42, mpls=7, policy=3, impact_flag=0x20, app_name=app,
                              sport=5555, dport=443, proto=6))
    r = to_records(res.batch)[0]
    assert r["vlan"] == [42] and r["src_port"] == 5555 and r["dest_port"] == 443
    assert r["alert"]["action"] == "blocked"
    assert r["unified2"]["mpls_label"] == 7 and r["unified2"]["policy_id"] == 3
    assert r["ingest"].get("app_name") == (app.decode() if app else None)


@pytest.mark.parametrize("rtype,app,app_len", [(72, None, 64), (105, None, 64), (105, b"DNS", 16),
                                               (112, b"DNS", 64), (105, b"Facebook", 64)])
def test_ipv6_events(rtype, app, app_len):
    res = U.decode(W.event_v6(rtype, src="2001:db8::1", dst="fe80::215:17ff:fe0d:6f7", proto=17,
                              blocked=1, app_name=app, app_len=app_len))
    r = to_records(res.batch)[0]
    assert (r["src_ip"], r["dest_ip"], r["proto"]) == ("2001:db8::1", "fe80::215:17ff:fe0d:6f7", "UDP")
    assert r["alert"]["action"] == "blocked"
    assert r["ingest"].get("app_name") == (app.decode() if app else None)
    assert res.alerts["ip_ver"][0] == 6


def test_blocked_would_and_cant_are_not_drops():
    res = U.decode(W.event_v4(104, blocked=2) + W.event_v4(104, event_id=2, blocked=3))
    assert (res.alerts["action"] == B.ACTION_ALLOWED).all()


@pytest.mark.parametrize("layout", [160, 1032])
def test_snort3_event_114(layout):
    buf = W.event3(layout=layout, gid=116, sid=434, rev=2, cls=3, prio=2, policies=(1, 2, 3),
                   src="192.0.2.1", dst="2001:db8::9", vlan=10, status=0, action=5,
                   app_name=b"HTTP",
                   http=(10, 20, b"GET", b"HTTP/1.1", b"curl/8", b"http://ref/", b"detail"))
    res = U.decode(buf)
    a = res.alerts[0]
    assert (a["gid"], a["sid"], a["rev"], a["class_id"], a["priority"]) == (116, 434, 2, 3, 2)
    r = to_records(res.batch)[0]
    assert r["src_ip"] == "192.0.2.1" and r["dest_ip"] == "2001:db8::9"
    assert r["alert"]["action"] == "blocked" and r["vlan"] == [10]
    assert r["ingest"]["app_name"] == "HTTP"
    u = r["unified2"]
    assert (u["policy_id_context"], u["policy_id_inspect"], u["policy_id_detect"]) == (1, 2, 3)
    if layout == 1032:
        assert r["http"] == {"http_method": "GET", "protocol": "HTTP/1.1",
                             "http_user_agent": "curl/8", "http_refer": "http://ref/"}
        assert u["http_request_size"] == 10 and u["message_detail"] == "detail"
    else:
        assert "http" not in r and "http_request_size" not in u


def test_snort3_would_drop_is_allowed():
    res = U.decode(W.event3(status=2, action=5))
    assert res.alerts["action"][0] == B.ACTION_ALLOWED
    assert to_records(res.batch)[0]["unified2"]["snort_verdict"] == "would_drop"


# Snort 3's ActiveActionType and ActiveStatus (src/packet_io/active.h) and the
# text Snort prints for each pair (Active::act_str: alert_csv's "action").
_ACTIONS = ("trust", "allow", "hold", "retry", "rewrite", "drop", "block", "reset")


@pytest.mark.parametrize("action", range(10))
@pytest.mark.parametrize("status", range(5))
def test_snort3_action_and_status_as_snort_defines_them(action, status):
    res = U.decode(W.event3(layout=160, status=status, action=action))
    r = to_records(res.batch)[0]
    u = r["unified2"]
    assert (u["snort_action"], u["snort_status"]) == (action, status)  # raw bytes kept
    if action >= 8 or status >= 4:  # not Snort's codes: we cannot say
        assert "action" not in r["alert"] and "snort_verdict" not in u
        assert res.alerts["action"][0] == B.ACTION_UNKNOWN
        return
    name = _ACTIONS[action]
    if status == 0:
        text = name
    elif action < 4:
        text = "error"
    else:
        text = {1: "cant_", 2: "would_", 3: "force_"}[status] + name
    assert u["snort_verdict"] == text
    # blocked: the packet really did not pass (drop/block/reset carried out)
    blocked = action >= 5 and status in (0, 3)
    assert r["alert"]["action"] == ("blocked" if blocked else "allowed")


def test_packets_buffers_and_extra_data_join_their_event():
    import base64
    import zlib
    gz = zlib.compress(b"body")
    buf = (W.event_v4(104, event_id=9, sec=100)
           + W.packet(event_id=9, event_second=100, data=b"P1" * 30)
           + W.packet(rtype=3, event_id=9, event_second=100, data=b"B1")
           + W.extra(info_type=1, data=bytes([1, 2, 3, 4]), event_id=9, event_second=100)
           + W.extra(info_type=2, data=bytes(range(16)), event_id=9, event_second=100)
           + W.extra(info_type=9, data=b"/a?b=\"c\"\x01", event_id=9, event_second=100)
           + W.extra(info_type=10, data=b"example.com", event_id=9, event_second=100)
           + W.extra(info_type=6, data=b"<a@b>", event_id=9, event_second=100)
           + W.extra(info_type=7, data=b"<c@d>", event_id=9, event_second=100)
           + W.extra(info_type=5, data=b"x.exe", event_id=9, event_second=100)
           + W.extra(info_type=8, data=b"Subject: hi", event_id=9, event_second=100)
           + W.extra(info_type=4, data=gz, event_id=9, event_second=100)
           + W.extra(info_type=13, data=b"js", event_id=9, event_second=100)
           + W.extra(info_type=11, data=bytes(16), event_id=9, event_second=100)
           + W.extra(info_type=99, data=b"opaque", event_id=9, event_second=100)
           + W.event_v4(104, event_id=10, sec=100))
    res = U.decode(buf)
    assert len(res.alerts) == 2
    assert res.packet_event.tolist() == [0, 0] and (res.extra_event == 0).all()
    assert res.orphan_packets == 0 and res.orphan_extra == 0
    assert res.packet_bytes(0) == b"P1" * 30 and res.packets["type"].tolist() == [2, 3]
    x = res.extra
    assert bytes(x["addr"][0]) == b"\0" * 10 + b"\xff\xff\x01\x02\x03\x04" and x["addr_ver"][0] == 4
    assert x["addr_ver"][1] == 6 and x["addr_ver"][10] == 6
    r0, r1 = to_records(res.batch)
    assert r0["packet"] == base64.b64encode(b"P1" * 30).decode()
    assert [p["record_type"] for p in r0["unified2"]["packets"]] == [2, 3]
    assert r0["http"] == {"hostname": "example.com", "url": "/a?b=\"c\"\x01"}
    assert r0["xff"] == "1.2.3.4"
    xd = {e["type"]: e for e in r0["unified2"]["extra_data"]}
    assert xd[1]["value"] == "1.2.3.4" and xd[2]["value"] == "1:203:405:607:809:a0b:c0d:e0f"
    assert xd[6] == {"type": 6, "name": "smtp_mailfrom", "value": "<a@b>"}
    assert xd[7]["value"] == "<c@d>" and xd[5]["value"] == "x.exe" and xd[8]["value"] == "Subject: hi"
    assert base64.b64decode(xd[4]["base64"]) == gz and xd[4]["name"] == "gzip_data"
    assert base64.b64decode(xd[13]["base64"]) == b"js"
    assert xd[11]["value"] == "::" and base64.b64decode(xd[99]["base64"]) == b"opaque"
    assert "packet" not in r1 and "extra_data" not in r1["unified2"]
    assert res.alerts["flags"][0] & B.F_PACKET and not res.alerts["flags"][1] & B.F_PACKET


def test_orphans_are_counted_not_dropped():
    buf = W.packet(event_id=1) + W.event_v4(7, event_id=2) + W.extra(info_type=9, data=b"/", event_id=3)
    res = U.decode(buf)
    assert res.orphan_packets == 1 and res.orphan_extra == 1 and len(res.packets) == 1


def test_appstat_and_unknown_types_are_skipped_by_length():
    buf = W.appstat(3) + W.record(999, b"x" * 13) + W.record(1, b"") + W.event_v4(7)
    res = U.decode(buf)
    assert len(res.alerts) == 1 and res.appstat == 1 and res.unknown == 2
    assert res.resume_offset == len(buf) and res.record_counts[999] == 1


def test_short_event_bodies_are_malformed_not_read():
    buf = W.record(7, b"\0" * 20) + W.record(2, b"\0" * 5) + W.record(110, b"") + W.event_v4(7)
    res = U.decode(buf)
    assert len(res.alerts) == 1 and res.malformed == 3


def test_packet_length_is_checked_against_the_record():
    res = U.decode(W.event_v4(7) + W.packet(data=b"abc", declared=1000))
    assert res.packets["data_len"][0] == 3 and res.packets["flags"][0] & U.BAD_LENGTH


def stream() -> bytes:
    return (W.event_v4(104, event_id=1) + W.packet(event_id=1) + W.extra(info_type=9, data=b"/x")
            + W.event_v6(105, event_id=2) + W.packet(event_id=2) + W.event3(event_id=3))


def test_every_prefix_resumes_at_a_record_boundary():
    buf = stream()
    bounds = U.decode(buf).record_counts and [0]
    pos = 0
    while pos < len(buf):
        pos += 8 + struct.unpack(">I", buf[pos + 4: pos + 8])[0]
        bounds.append(pos)
    for k in range(len(buf) + 1):
        res = U.decode(buf[:k])
        assert res.resume_offset == max(b for b in bounds if b <= k)
        assert not res.fatal


def fed_in_pieces(buf: bytes, step: int) -> U.Unified2Result:
    """The streaming decoder fed `step` bytes at a time, closed at the end."""
    dec = U.Decoder(0, 4 << 20)
    parts = []
    for i in range(0, len(buf), step):
        dec.feed(buf[i: i + step])
        parts.append(dec.decode(final=False))
    parts.append(dec.decode(final=True))
    return U.Unified2Result.concat(parts)


def test_streaming_decoder_never_half_emits_an_event():
    buf = stream()
    whole = U.decode(buf)
    for step in (1, 7, 64):
        got = fed_in_pieces(buf, step)
        assert got.alerts.tobytes() == whole.alerts.tobytes()
        assert got.orphan_packets == 0 and got.orphan_extra == 0
        assert got.packet_event.tolist() == whole.packet_event.tolist()


def test_pcap_is_named():
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"\0" * 40
    res = U.decode(pcap)
    assert res.fatal and "this is a pcap file, not Unified2" in res.errors[0][1]
    assert U.sniff(pcap) == "pcap"
    assert str(3569595041) == str(0xD4C3B2A1)  # py-idstools' "unknown record type"
    res = U.decode(W.event_v4(7) + pcap)
    assert len(res.alerts) == 1 and res.fatal and res.resume_offset == 60


def test_insane_length_is_reported_and_resynchronised():
    good1 = W.event_v4(7, event_id=1)
    bad = struct.pack(">II", 7, 0x7FFFFFFF) + b"garbage!" * 3
    good2 = W.event_v4(104, event_id=2) + W.packet(event_id=2)
    res = U.decode(good1 + bad + good2)
    assert res.alerts["event_id"].tolist() == [1, 2] and res.packet_event.tolist() == [1]
    off, msg = res.errors[0]
    assert off == len(good1) and "insane length" in msg and res.skipped_bytes == len(bad)
    assert not res.fatal


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("after", ["packet", "extra"])
def test_resync_fed_in_small_pieces_finds_what_the_whole_file_gives(after, direct):
    """A bad header, then a record whose plausibility check reads into its
    body (packet, extra-data): fed a few bytes at a time, the streaming
    decoder waits until it can judge the candidate instead of reading past
    what it holds or giving up, and ends with what the whole file gives."""
    rec = (W.packet(event_id=2, event_second=1700000000, data=b"P" * 40) if after == "packet"
           else W.extra(info_type=9, data=b"/x", event_id=2, event_second=1700000000))
    # direct: the record to judge comes right after the bad region
    buf = (W.event_v4(7, event_id=1) + (W.event_v4(7, event_id=2, sec=1700000000) if direct else b"")
           + struct.pack(">II", 104, 0xFFFFFFFF) + b"junk" * 3
           + (b"" if direct else W.event_v4(7, event_id=2, sec=1700000000)) + rec + W.event_v4(7, event_id=3))
    whole = U.decode(buf)
    assert whole.alerts["event_id"].tolist() == [1, 2, 3] and not whole.fatal
    assert len(whole.packets) + len(whole.extra) == 1
    for step in (1, 3, 13):
        got = fed_in_pieces(buf, step)
        assert got.alerts["event_id"].tolist() == [1, 2, 3], step
        assert len(got.packets) + len(got.extra) == 1 and not got.fatal


def test_insane_length_without_recovery_stops_the_file():
    buf = W.event_v4(7) + struct.pack(">II", 2, 0xFFFFFFF0) + b"\xee" * 50
    res = U.decode(buf)
    assert len(res.alerts) == 1 and res.fatal and res.resume_offset == 60


def test_rows_and_odd_types_outgrow_their_first_arrays(monkeypatch):
    # row arrays start small and grow; types >= 256 are noted ODD_CAP at a time
    monkeypatch.setattr(U, "ODD_CAP", 4)
    odd = b"".join(struct.pack(">II", 1000 + i % 3, 4) + b"\0" * 4 for i in range(10))
    buf = b"".join(W.event_v4(7, event_id=i) + W.packet(event_id=i) + odd for i in range(300))
    res = U.decode(buf)
    assert res.alerts["event_id"].tolist() == list(range(300))
    assert res.packet_event.tolist() == list(range(300))
    assert res.record_counts == {7: 300, 2: 300, 1000: 1200, 1001: 900, 1002: 900}
    assert res.unknown == 3000


# ---- real files (SOURCES.md oracles) --------------------------------------

def test_pyidstools_multi_record_event():
    res = U.read(real("pyidstools-multi-record-event.log"))
    assert sum(res.record_counts.values()) == 17 and len(res.alerts) == 1
    assert res.resume_offset == 38950
    r = to_records(res.batch)[0]
    assert (r["src_ip"], r["dest_ip"]) == ("207.25.71.28", "10.20.11.123")
    assert (res.alerts["event_id"][0], res.alerts["gid"][0], res.alerts["sid"][0]) == (89, 120, 3)
    assert len(r["unified2"]["packets"]) == 15 and r["unified2"]["extra_data"][0]["type"] == 13
    # SOURCES.md counts blob_length (data + 8)
    assert (res.extra["blob_length"][0], res.extra["data_len"][0]) == (18578, 18570)


def test_go_x2_gives_two_events():
    res = U.read(real("go-unified2-multi-record-event-x2.log"))
    assert sum(res.record_counts.values()) == 34 and len(res.alerts) == 2
    assert res.packet_event.tolist() == [0] * 15 + [1] * 15


def test_decremented_event_id_detaches_record_17():
    buf = bytearray(pathlib.Path(real("pyidstools-multi-record-event.log")).read_bytes())
    # record 17 is the last packet: its event_id is at body offset 4
    pos = 0
    for _ in range(16):
        pos += 8 + struct.unpack(">I", buf[pos + 4: pos + 8])[0]
    eid = struct.unpack(">I", buf[pos + 12: pos + 16])[0]
    buf[pos + 12: pos + 16] = struct.pack(">I", eid - 1)
    res = U.decode(bytes(buf))
    assert (res.packet_event >= 0).sum() + (res.extra_event >= 0).sum() == 15
    assert res.orphan_packets == 1


@pytest.mark.parametrize("name,size", [("go-unified2-short-read-on-header.log", 6),
                                       ("go-unified2-short-read-on-body.log", 12)])
def test_short_reads_leave_offset_zero(name, size):
    data = pathlib.Path(real(name)).read_bytes()
    assert len(data) == size
    res = U.decode(data)
    assert len(res.alerts) == 0 and res.resume_offset == 0 and not res.fatal
    ref = pathlib.Path(real("pyidstools-multi-record-event.log")).read_bytes()
    assert U.decode(ref[:size]).resume_offset == 0


def test_invalid_header_vector():
    res = U.decode(pathlib.Path(real("go-unified2-invalid-header.log")).read_bytes())
    assert len(res.alerts) == 0 and res.resume_offset == 0
    assert "unknown type" in res.errors[0][1]


def test_ipv6_alert():
    res = U.read(real("pyidstools-ipv6-alert.unified2"))
    r = to_records(res.batch)[0]
    assert (r["src_ip"], r["dest_ip"]) == ("fe80::dacb:8aff:feed:a146", "fe80::215:17ff:fe0d:6f7")
    assert res.alerts["sid"][0] == 18474 and len(res.packets) == 1


def test_djcas9_current():
    res = U.read(real("djcas9-unified2-current.log"))
    assert res.record_counts == {104: 5675, 2: 5741, 110: 1952}
    assert res.orphan_packets == 0 and res.orphan_extra == 0
    recs = to_records(res.batch)
    r = recs[0]
    assert res.alerts["event_id"][0] == 1 and res.alerts["ts_us"][0] // 10**6 == 1321131865
    assert (r["src_ip"], r["src_port"], r["dest_ip"], r["dest_port"], r["proto"]) == \
        ("10.0.1.6", 52378, "199.47.216.149", 80, "TCP")
    assert (r["alert"]["gid"], r["alert"]["signature_id"], r["alert"]["rev"]) == (1, 18608, 3)
    assert r["ingest"]["class_id"] == 33 and r["alert"]["severity"] == 1
    assert "packet" not in r
    xd = r["unified2"]["extra_data"]
    assert len(xd) == 2 and xd[0]["type"] == 9 and xd[1]["type"] == 10
    assert xd[0]["value"].startswith("/subscribe?host_int=26273724&ns_map=")
    assert xd[0]["value"].endswith("&ts=1321131865") and len(xd[0]["value"]) == 196
    assert xd[1]["value"] == "notify9.dropbox.com"
    first_x = res.extra[res.extra_event == 0][0]
    # djcas9's "length 204" is blob_length (data + 8)
    assert (first_x["event_type"], first_x["event_length"], first_x["blob_length"]) == (4, 228, 204)
    r2 = recs[1]
    assert (r2["alert"]["signature_id"], r2["alert"]["rev"], r2["src_ip"], r2["dest_ip"], r2["proto"]) == \
        (402, 8, "78.141.177.111", "10.0.1.6", "ICMP")


def test_djcas9_legacy():
    res = U.read(real("djcas9-unified2-legacy.log"))
    assert res.record_counts == {7: 4703, 2: 4704}
    r = to_records(res.batch)[0]
    assert res.alerts["ts_us"][0] // 10**6 == 1286333418
    assert (r["src_ip"], r["dest_ip"], r["proto"], r["icmp_type"], r["icmp_code"]) == \
        ("24.19.7.110", "10.0.1.6", "ICMP", 3, 13)
    assert (r["alert"]["signature_id"], r["alert"]["rev"], r["ingest"]["class_id"], r["alert"]["severity"]) == \
        (485, 5, 29, 3)
    assert len(r["unified2"]["packets"]) == 1 and r["unified2"]["packets"][0]["length"] == 70


def test_iter_read_windows_agree_with_read():
    path = real("djcas9-unified2-current.log")
    whole = U.read(path)
    parts = list(U.iter_read(path, chunk_size=1))  # smallest windows allowed
    joined = U.Unified2Result.concat(parts)
    assert joined.alerts.tobytes() == whole.alerts.tobytes()
    assert joined.packet_event.tolist() == whole.packet_event.tolist()
    assert joined.orphan_packets == 0


# py-idstools leaves its file objects to the garbage collector
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_cross_check_py_idstools():
    idstools = pytest.importorskip("idstools.unified2")
    for name in ("djcas9-unified2-current.log", "djcas9-unified2-legacy.log",
                 "pyidstools-multi-record-event.log", "pyidstools-ipv6-alert.unified2"):
        path = real(name)
        res = U.read(path)
        recs = to_records(res.batch)
        events = [r for r in idstools.FileRecordReader(path) if isinstance(r, idstools.Event)]
        assert len(events) == len(recs)
        for ev, r, a in zip(events, recs, res.alerts, strict=True):
            assert (ev["event-id"], ev["generator-id"], ev["signature-id"], ev["signature-revision"],
                    ev["classification-id"], ev["priority"]) == \
                (a["event_id"], a["gid"], a["sid"], a["rev"], a["class_id"], a["priority"])
            assert ipaddress.ip_address(ev["source-ip"]) == ipaddress.ip_address(r["src_ip"])
            assert ipaddress.ip_address(ev["destination-ip"]) == ipaddress.ip_address(r["dest_ip"])
            assert ev["event-second"] * 10**6 + ev["event-microsecond"] == a["ts_us"]
        pk = [r for r in idstools.FileRecordReader(path) if isinstance(r, idstools.Packet)]
        assert [p["data"] for p in pk] == [res.packet_bytes(i) for i in range(len(res.packets))]
        xd = [r for r in idstools.FileRecordReader(path) if isinstance(r, idstools.ExtraData)]
        assert [x["data"] for x in xd] == [res.extra_bytes(i) for i in range(len(res.extra))]


def test_pcap_writer_roundtrip(tmp_path):
    res = U.read(real("djcas9-unified2-legacy.log"))
    out = tmp_path / "x.pcap"
    with open(out, "wb") as f:
        w = U.PcapWriter(f)
        w.write(res)
        w.close()
    data = out.read_bytes()
    magic, _, _, _, _, snap, link = struct.unpack("<IHHiIII", data[:24])
    assert (magic, link) == (0xA1B2C3D4, 1)
    pos, n = 24, 0
    while pos < len(data):
        s, u, cap, ln = struct.unpack("<IIII", data[pos: pos + 16])
        assert data[pos + 16: pos + 16 + cap] == res.packet_bytes(n)
        pos += 16 + cap
        n += 1
    assert n == 4704


# ---- property tests: never crash, never out of bounds ----------------------

def _check(res: U.Unified2Result, n: int) -> None:
    assert 0 <= res.resume_offset <= n
    for rows in (res.packets, res.extra):
        if len(rows):
            assert int((rows["data_off"] + rows["data_len"]).max()) <= len(res.pool)
    if len(res.events):
        assert int((res.events["text_off"] + res.events["text_len"]).max()) <= len(res.pool)
    to_records(res.batch)  # renders to valid JSON


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data):
    _check(U.decode(data), len(data))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_streams_never_crash(d):
    buf = bytearray(stream())
    for _ in range(d.draw(st.integers(1, 8))):
        i = d.draw(st.integers(0, len(buf) - 1))
        buf[i] = d.draw(st.integers(0, 255))
    cut = d.draw(st.integers(0, len(buf)))
    data = bytes(buf[:cut])
    _check(U.decode(data), len(data))
    dec = U.Decoder(0, 1)
    dec.feed(data)
    _check(dec.decode(final=False), len(data))
