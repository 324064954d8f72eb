"""The Alertpkt batch decoder through the ffi: every variant, every packet
shape, every kind of bad input, and the reference datagrams in ../shared."""

from __future__ import annotations

import gzip
import ipaddress
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.alertpkt import SLOT_SIZE, SlotDecoder, decode_datagrams, split_datagrams
from ingest.encode import (
    NO_TRANSHDR,
    encode_alertpkt,
    ether_ipv4,
    ether_ipv6,
    ipv4,
    ipv6,
)
from ingest.native import ffi, lib
from ingest.render import format_addrs, to_records

from ..conftest import shared_file

VARIANTS = {
    "snort": (65864, B.SRC_SNORT),
    "snort3": (65864, B.SRC_SNORT),
    "snort-appid": (65928, B.SRC_SNORT_APPID),
    "barnyard2": (1856, B.SRC_BARNYARD2),
    "barnyard2-32": (1844, B.SRC_BARNYARD2_32),
}


def one(dgram: bytes):
    res = decode_datagrams([dgram])
    assert len(res.batch) == 1, res.rejected
    return res.batch.alerts[0], res


def addr(raw) -> str:
    a = ipaddress.IPv6Address(bytes(raw))
    return str(a.ipv4_mapped or a)


# --- reference datagrams from ../shared/data/alertpkt --------------------------

@pytest.mark.parametrize("name,size", [
    ("snort2", 65864), ("snort2-appid", 65928), ("snort3", 65864), ("barnyard2", 1856),
])
def test_reference_datagrams_match_oracle(name, size):
    data = gzip.open(shared_file(f"alertpkt/{name}.bin.gz")).read()
    expected = [json.loads(x) for x in shared_file(f"alertpkt/{name}.expected.jsonl").read_text().splitlines()]
    res = decode_datagrams(split_datagrams(data, size))
    assert res.rejected == [] and res.anomalies == []
    assert len(res.batch) == len(expected) == 24
    a = res.batch.alerts
    strings = res.batch.strings
    for i, exp in enumerate(expected):
        r = a[i]
        assert int(r["ts_us"]) == exp["ts_sec"] * 1_000_000 + exp["ts_usec"]
        for k in ("gid", "sid", "rev", "class_id", "priority", "event_id"):
            assert int(r[k]) == exp[k], (i, k)
        assert strings[r["msg_idx"]] == exp["msg"]
        if "src_ip" in exp:
            assert addr(r["src_addr"]) == exp["src_ip"]
            assert addr(r["dst_addr"]) == exp["dest_ip"]
            assert int(r["proto"]) == exp["proto"]
            if "src_port" in exp:
                assert r["flags"] & B.F_PORTS
                assert (int(r["src_port"]), int(r["dst_port"])) == (exp["src_port"], exp["dest_port"])
            elif "icmp_type" in exp:
                assert r["flags"] & B.F_ICMP and not r["flags"] & B.F_PORTS
                assert (int(r["src_port"]), int(r["dst_port"])) == (exp["icmp_type"], exp["icmp_code"])
            else:
                assert not r["flags"] & (B.F_PORTS | B.F_ICMP)
        else:
            assert not r["flags"] & B.F_ADDRS
    if name == "snort2-appid":
        assert {strings[i] for i in a["app_idx"]} == {"HTTP"}
    else:
        assert (a["app_idx"] == -1).all()


# --- every variant through the encoder ----------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_event_fields(variant):
    size, source = VARIANTS[variant]
    d = encode_alertpkt(variant, msg="ET POLICY test", gid=3, sid=2000356, rev=7, class_id=33,
                        priority=1, event_id=4242, ts_sec=1764266630, ts_usec=123456, sensor_id=9,
                        packet=ether_ipv4("10.1.2.3", "192.0.2.9", 6, 51000, 443))
    assert len(d) == size
    r, res = one(d)
    assert r["source"] == source
    assert (r["gid"], r["sid"], r["rev"], r["class_id"], r["priority"], r["event_id"]) == (
        3, 2000356, 7, 33, 1, 4242)
    assert r["ts_us"] == 1764266630_123456
    assert r["sensor_id"] == (9 if variant.startswith("barnyard2") else 0)
    assert res.batch.strings[r["msg_idx"]] == "ET POLICY test"
    assert addr(r["src_addr"]) == "10.1.2.3" and addr(r["dst_addr"]) == "192.0.2.9"
    assert (r["proto"], r["src_port"], r["dst_port"], r["ip_ver"]) == (6, 51000, 443, 4)
    assert r["flags"] == B.F_PACKET | B.F_ADDRS | B.F_PORTS
    assert r["action"] == B.ACTION_UNKNOWN


def test_alert_time_is_ref_time_not_packet_time():
    d = encode_alertpkt("snort", ts_sec=2000, ts_usec=5, pkt_ts=(1000, 1),
                        packet=ether_ipv4("1.1.1.1", "2.2.2.2", 17, 1, 2))
    assert one(d)[0]["ts_us"] == 2000_000005


@pytest.mark.parametrize("variant", ["snort", "snort3", "barnyard2"])
def test_ipv6_with_and_without_nethdr(variant):
    # Snort 2 leaves nethdr = 0 for IPv6 (Ethernet must be parsed); Snort 3 sets it.
    pkt = ether_ipv6("2001:db8::1", "2001:db8::2", 17, 5353, 53)
    d = encode_alertpkt(variant, packet=pkt)
    nethdr = struct.unpack_from("<I", d, 276 if variant != "barnyard2" else 284)[0]
    assert nethdr == (0 if variant == "snort" else 14)
    r, _ = one(d)
    assert (r["ip_ver"], r["proto"], r["src_port"], r["dst_port"]) == (6, 17, 5353, 53)
    assert addr(r["src_addr"]) == "2001:db8::1" and addr(r["dst_addr"]) == "2001:db8::2"


def test_ipv6_extension_headers_are_walked():
    pkt = ether_ipv6("2001:db8::1", "2001:db8::2", 6, 80, 8080, ext_headers=(0, 60))
    r, _ = one(encode_alertpkt("snort", packet=pkt))
    assert (r["proto"], r["src_port"], r["dst_port"]) == (6, 80, 8080)


def test_icmp_type_code_not_ports():
    r, res = one(encode_alertpkt("snort", packet=ether_ipv4("1.2.3.4", "5.6.7.8", 1, 3, 13)))
    assert r["flags"] & B.F_ICMP and not r["flags"] & B.F_PORTS
    rec = to_records(res.batch)[0]
    assert (rec["icmp_type"], rec["icmp_code"], rec["proto"]) == (3, 13, "ICMP")
    assert "src_port" not in rec and "dest_port" not in rec


def test_icmpv6():
    r, res = one(encode_alertpkt("snort", packet=ether_ipv6("fe80::1", "ff02::1", 58, 135, 0)))
    rec = to_records(res.batch)[0]
    assert (rec["proto"], rec["icmp_type"], rec["icmp_code"]) == ("IPv6-ICMP", 135, 0)


def test_vlan_tag_single_and_ipv6():
    r, _ = one(encode_alertpkt("snort", packet=ether_ipv4("1.1.1.1", "2.2.2.2", 6, 1, 2, vlan=123)))
    assert r["flags"] & B.F_VLAN and r["vlan"] == 123 and r["src_port"] == 1
    r, _ = one(encode_alertpkt("snort", packet=ether_ipv6("::1", "::2", 6, 7, 8, vlan=4000)))
    assert r["vlan"] == 4000 and r["dst_port"] == 8


def test_nopacket_struct_keeps_event():
    r, res = one(encode_alertpkt("snort", sid=99, packet=None))
    assert r["sid"] == 99
    assert r["flags"] == 0 and r["ip_ver"] == 0
    rec = to_records(res.batch)[0]
    assert "src_ip" not in rec and "proto" not in rec and rec["alert"]["signature_id"] == 99


def test_no_transhdr_gre_has_addresses_no_ports():
    d = encode_alertpkt("snort", packet=ether_ipv4("10.0.0.1", "10.0.0.2", 47, payload=b"\0" * 8))
    assert struct.unpack_from("<I", d, 288)[0] == NO_TRANSHDR
    r, res = one(d)
    assert r["proto"] == 47 and r["flags"] & B.F_ADDRS and not r["flags"] & (B.F_PORTS | B.F_ICMP)
    assert to_records(res.batch)[0]["proto"] == "47"


def test_raw_ipv4_at_offset_zero():
    # DLT_RAW in Snort 2: nethdr = 0 legitimately, transhdr = 20
    pkt = ipv4("8.8.8.8", "9.9.9.9", 17, 53, 999)
    r, _ = one(encode_alertpkt("snort", packet=pkt, dlthdr=0, nethdr=0, transhdr=20, data=28))
    assert addr(r["src_addr"]) == "8.8.8.8" and (r["src_port"], r["dst_port"]) == (53, 999)


def test_raw_ipv6_at_offset_zero():
    pkt = ipv6("2001:db8::5", "2001:db8::6", 6, 22, 2222)
    r, _ = one(encode_alertpkt("snort", packet=pkt, dlthdr=0, nethdr=0, transhdr=0, data=0))
    assert r["ip_ver"] == 6 and r["dst_port"] == 2222


def test_non_first_fragment_has_no_ports():
    pkt = ether_ipv4("1.1.1.1", "2.2.2.2", 17, payload=b"x" * 16, frag_offset=100)
    r, _ = one(encode_alertpkt("snort", packet=pkt, transhdr=0))
    assert r["flags"] & B.F_ADDRS and not r["flags"] & B.F_PORTS


def test_snaplen_cut_transport_header_is_not_an_error():
    pkt = ether_ipv4("1.1.1.1", "2.2.2.2", 6, 1000, 2000)[:14 + 20 + 2]
    r, res = one(encode_alertpkt("snort", packet=pkt, transhdr=0, data=0))
    assert res.anomalies == [] and r["flags"] & B.F_ADDRS and not r["flags"] & B.F_PORTS


def test_non_ip_frame_is_delivered_without_addresses():
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    r, res = one(encode_alertpkt("snort", packet=arp, nethdr=0, transhdr=0, data=0))
    assert res.anomalies == [] and r["flags"] == B.F_PACKET


def test_app_name_only_for_appid_variant():
    pkt = ether_ipv4("1.1.1.1", "2.2.2.2", 6, 1, 80)
    res = decode_datagrams([
        encode_alertpkt("snort-appid", sid=1, app_name="HTTP", packet=pkt),
        encode_alertpkt("snort-appid", sid=2, app_name="", packet=pkt),
        encode_alertpkt("snort", sid=3, packet=pkt),
    ])
    a = res.batch.alerts
    assert res.batch.strings[a["app_idx"][0]] == "HTTP"
    assert a["app_idx"][1] == -1 and a["app_idx"][2] == -1
    assert to_records(res.batch)[0]["ingest"]["app_name"] == "HTTP"


def test_barnyard2_unknown_sid_has_no_message():
    r, res = one(encode_alertpkt("barnyard2", msg=b"", sid=5, packet=ether_ipv4("1.1.1.1", "2.2.2.2")))
    assert r["msg_idx"] == -1
    assert "signature" not in to_records(res.batch)[0]["alert"]


def test_messages_shared_per_signature_and_full_length():
    long = "M" * 300  # senders copy at most 255 bytes
    dgs = [encode_alertpkt("snort", sid=s, msg=m) for s, m in [(1, "a"), (2, "b"), (1, "a"), (3, long)]]
    res = decode_datagrams(dgs)
    a = res.batch.alerts
    assert a["msg_idx"][0] == a["msg_idx"][2]
    assert len(res.batch.strings) == 3
    assert res.batch.strings[a["msg_idx"][3]] == "M" * 255


def test_non_utf8_message_is_replaced_not_fatal():
    r, res = one(encode_alertpkt("snort", msg=b"caf\xe9 \x01tab"))
    line = to_records(res.batch)[0]["alert"]["signature"]
    assert line.startswith("caf") and "\x01" in line


# --- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 1843, 1845, 1855, 1857, 65863, 65865, 65927])
def test_wrong_length_rejected(length):
    res = decode_datagrams([b"\0" * length, encode_alertpkt("snort", sid=7)])
    assert res.rejected == [(0, "bad_length")]
    assert res.batch.alerts["sid"].tolist() == [7]  # the next valid one still flows


def test_truncated_slot_rejected():
    dec = SlotDecoder(2)
    dec.load([encode_alertpkt("snort", sid=1), encode_alertpkt("snort", sid=2)])
    dec.flags[0] = lib.INGEST_SLOT_TRUNC
    dec.lens[0] = 300000
    res = dec.decode(2)
    assert res.rejected == [(0, "truncated")]
    assert res.batch.alerts["sid"].tolist() == [2]


def test_oversized_datagram_rejected_as_truncated():
    res = decode_datagrams([b"\1" * (SLOT_SIZE + 1)])
    assert res.rejected == [(0, "truncated")] and len(res.batch) == 0


PKT = ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1, 2)


@pytest.mark.parametrize("override,reason", [
    ({"nethdr": 5000}, "bad_offset"),
    ({"transhdr": 60000}, "bad_offset"),
    ({"dlthdr": len(PKT) + 1}, "bad_offset"),
    ({"nethdr": 0xFFFFFFFF}, "bad_offset"),
    ({"nethdr": 2}, "bad_ip_header"),  # points into the MAC addresses
])
def test_hostile_offsets_keep_event_drop_packet_fields(override, reason):
    res = decode_datagrams([encode_alertpkt("snort", sid=77, packet=PKT, **override)])
    assert res.anomalies == [(0, reason)] and res.rejected == []
    r = res.batch.alerts[0]
    assert r["sid"] == 77
    assert r["flags"] & B.F_PKT_ANOMALY and not r["flags"] & (B.F_ADDRS | B.F_PORTS)
    assert to_records(res.batch)[0]["ingest"]["packet_anomaly"] is True


def test_unused_payload_offset_is_not_held_against_the_packet():
    res = decode_datagrams([encode_alertpkt("snort", packet=PKT, data=0xFFFFFFF0)])
    assert res.anomalies == [] and res.batch.alerts[0]["flags"] & B.F_PORTS


def test_barnyard2_caplen_beyond_1514_is_normal():
    # Barnyard2 sets caplen to the Unified2 packet length and copies 1514 bytes
    res = decode_datagrams([encode_alertpkt("barnyard2", packet=PKT, caplen=9000)])
    assert res.anomalies == []
    assert addr(res.batch.alerts[0]["src_addr"]) == "10.0.0.1"


def test_snort_caplen_beyond_pkt_is_clamped_and_counted():
    res = decode_datagrams([encode_alertpkt("snort", packet=PKT, caplen=70000)])
    assert res.anomalies == [(0, "bad_caplen")]
    r = res.batch.alerts[0]
    assert r["flags"] & B.F_PKT_ANOMALY
    assert addr(r["src_addr"]) == "10.0.0.1"  # parsed within the 65535-byte pkt[]


def test_ipv4_ihl_below_minimum():
    bad = bytearray(PKT)
    bad[14] = 0x44  # IHL 4 words = 16 bytes < 20
    res = decode_datagrams([encode_alertpkt("snort", packet=bytes(bad))])
    assert res.anomalies == [(0, "bad_ip_header")]


def test_ip_header_longer_than_capture():
    res = decode_datagrams([encode_alertpkt("snort", packet=PKT[:14 + 12], transhdr=0, data=0)])
    assert res.anomalies == [(0, "bad_ip_header")]


def test_c_decoder_argument_checks():
    alerts = np.empty(1, B.ALERT_DTYPE)
    slots = np.zeros(SLOT_SIZE * 2, np.uint8)
    lens = np.zeros(2, np.uint32)
    status = np.zeros(2, np.uint8)
    slot_of = np.zeros(2, np.uint32)
    rc = lib.ingest_alertpkt_decode(
        ffi.from_buffer("uint8_t[]", slots), SLOT_SIZE, 2, ffi.from_buffer("uint32_t[]", lens),
        ffi.NULL, ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True), 1,
        ffi.from_buffer("uint32_t[]", slot_of, require_writable=True),
        ffi.from_buffer("uint8_t[]", status, require_writable=True), ffi.NULL, ffi.NULL)
    assert rc == lib.INGEST_EINVAL  # out_cap < n
    assert lib.ingest_text_len(b"abc\0def", 7) == 3
    assert lib.ingest_text_len(b"abcdef", 4) == 4


def _decode_exact(dgram: bytes):
    """Decode one datagram from a buffer of exactly its size (slot_size ==
    len), so a read past the datagram leaves the allocation (ASan in CI)."""
    buf = np.frombuffer(bytearray(dgram), dtype=np.uint8)
    n = len(dgram)
    lens = np.array([n], np.uint32)
    alerts = np.empty(1, B.ALERT_DTYPE)
    status = np.zeros(1, np.uint8)
    slot_of = np.zeros(1, np.uint32)
    k = lib.ingest_alertpkt_decode(
        ffi.from_buffer("uint8_t[]", buf), n, 1, ffi.from_buffer("uint32_t[]", lens), ffi.NULL,
        ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True), 1,
        ffi.from_buffer("uint32_t[]", slot_of, require_writable=True),
        ffi.from_buffer("uint8_t[]", status, require_writable=True), ffi.NULL, ffi.NULL)
    return k, alerts, int(status[0])


PKT_OFFSET = {"snort": 292, "barnyard2": 300, "barnyard2-32": 292}
PKT_AREA = {"snort": 65535, "barnyard2": 1514, "barnyard2-32": 1514}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(["snort", "barnyard2", "barnyard2-32"]),
    caplen=st.integers(0, 0xFFFFFFFF) | st.integers(0, 120),
    offs=st.lists(st.integers(0, 0xFFFFFFFF) | st.integers(0, 80), min_size=4, max_size=4),
    nopacket=st.booleans(),
    pkt=st.binary(min_size=0, max_size=200),
    junk=st.binary(min_size=1, max_size=64),
)
def test_hostile_headers_never_crash_and_never_read_past_caplen(variant, caplen, offs, nopacket, pkt, junk):
    d = encode_alertpkt(variant, sid=5, packet=pkt, caplen=caplen, dlthdr=offs[0], nethdr=offs[1],
                        transhdr=offs[2], data=offs[3], val=1 if nopacket else 0)
    k, alerts, status = _decode_exact(d)
    assert k == 1 and alerts["sid"][0] == 5
    # Metamorphic: bytes of pkt[] beyond the captured length must not
    # influence the result (they were never read).
    valid = min(caplen, PKT_AREA[variant])
    start = PKT_OFFSET[variant] + valid
    end = PKT_OFFSET[variant] + PKT_AREA[variant]
    if start < end:
        poisoned = bytearray(d)
        fill = (junk * ((end - start) // len(junk) + 1))[: end - start]
        poisoned[start:end] = fill
        k2, alerts2, status2 = _decode_exact(bytes(poisoned))
        assert (k2, status2) == (k, status)
        assert alerts2.tobytes() == alerts.tobytes()
    batch = B.AlertBatch(alerts)
    to_records(batch)
    format_addrs(alerts)


@st.composite
def real_packets(draw):
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from([6, 17, 1, 58, 47, 132]))
    vlan = draw(st.none() | st.integers(0, 4095))
    if v6:
        ext = tuple(draw(st.lists(st.sampled_from([0, 43, 60, 44]), max_size=3)))
        return ether_ipv6("2001:db8::1", "2001:db8::2", proto, 1, 2, b"x" * 8, vlan=vlan, ext_headers=ext)
    return ether_ipv4("10.0.0.1", "10.0.0.2", proto, 1, 2, b"x" * 8, vlan=vlan)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(["snort", "snort3", "barnyard2", "barnyard2-32"]),
       pkt=real_packets(), cut=st.integers(0, 120), raw_offsets=st.booleans(),
       junk=st.binary(min_size=1, max_size=16))
def test_real_packets_cut_at_any_length_read_nothing_past_caplen(variant, pkt, cut, raw_offsets, junk):
    """Headers cut by a short caplen at every possible byte: whatever is
    decoded must not depend on bytes past caplen."""
    caplen = min(cut, len(pkt))
    kw = {} if raw_offsets else {"transhdr": 0, "data": 0}
    d = encode_alertpkt(variant, sid=5, packet=pkt, caplen=caplen, **kw)
    k, alerts, status = _decode_exact(d)
    assert k == 1
    layout = "snort" if variant.startswith("snort") else variant
    start = PKT_OFFSET[layout] + caplen
    end = PKT_OFFSET[layout] + PKT_AREA[layout]
    poisoned = bytearray(d)
    poisoned[start:end] = (junk * ((end - start) // len(junk) + 1))[: end - start]
    k2, alerts2, status2 = _decode_exact(bytes(poisoned))
    assert (k2, status2) == (k, status)
    assert alerts2.tobytes() == alerts.tobytes()


# --- Snort 3's quoted alertmsg ----------------------------------------------------

@pytest.mark.parametrize("wire,text", [
    ('"TEST-TCP4 content EVILSTRING"', "TEST-TCP4 content EVILSTRING"),  # every Snort 3 msg
    ('"(tcp) Nmap XMAS attack detected"', "(tcp) Nmap XMAS attack detected"),  # builtin rules too
    ('"say \\"hi\\" \\\\o/"', 'say "hi" \\o/'),  # Snort 3 keeps the rule's escapes
    ('"' + "L" * 254, "L" * 254),  # cut at 255 bytes: only the opening quote came
    ('"' + "L" * 253 + "\\", "L" * 253 + "\\"),  # cut inside an escape
    ("TEST-TCP4 content EVILSTRING", "TEST-TCP4 content EVILSTRING"),  # Snort 2.9
    ('ORACLE "quoted" kind', 'ORACLE "quoted" kind'),
    ('"opening quote only', '"opening quote only'),  # short, not cut: not Snort 3's form
    ('"ends escaped\\"', '"ends escaped\\"'),
])
def test_snort_message_reads_as_the_rule_wrote_it(wire, text):
    res = decode_datagrams([encode_alertpkt("snort", msg=wire.encode(), sid=7)])
    assert res.batch.strings[res.batch.alerts["msg_idx"][0]] == text
    assert to_records(res.batch)[0]["alert"]["signature"] == text


@pytest.mark.parametrize("variant", ["snort-appid", "barnyard2", "barnyard2-32"])
def test_quotes_are_kept_where_snort3_never_sends(variant):
    # open-appid is Snort 2 only; Barnyard2's text comes from sid-msg.map
    res = decode_datagrams([encode_alertpkt(variant, msg=b'"as written"', sid=7)])
    assert res.batch.strings[res.batch.alerts["msg_idx"][0]] == '"as written"'


def test_same_bytes_from_snort_and_barnyard2_are_two_strings():
    dgrams = [encode_alertpkt("snort", msg=b'"x"'), encode_alertpkt("barnyard2", msg=b'"x"'),
              encode_alertpkt("snort", msg=b'"x"')]
    dec = SlotDecoder(4)
    for _ in range(2):  # the second time from the message cache
        res = dec.decode(dec.load(dgrams))
        msgs = [res.batch.strings[i] for i in res.batch.alerts["msg_idx"]]
        assert msgs == ["x", '"x"', "x"]
