"""The NetFlow v5 / v9 / IPFIX decoder (csrc/netflow.c through
ingest.flows.netflow): packets built as exporters write them
(ingest.gen.netflow), decoded into canonical flow records."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.flows import record as R
from ingest.flows.netflow import NetflowDecoder
from ingest.gen import netflow as G

PEER = bytes(10) + b"\xff\xff" + bytes([10, 9, 8, 7])


def dec(*packets, d=None, now=0.0, peer=PEER):
    d = d or NetflowDecoder(8)
    res = d.decode(d.load(list(packets), peer), now=now)
    return d, res


def addr(rec, name="src_addr"):
    a = ipaddress.IPv6Address(bytes(rec[name]))
    return str(a.ipv4_mapped or a)


def test_v5_fields_times_icmp_and_sampling():
    flows = [G.Flow(), G.Flow(src="10.0.0.1", dst="10.0.0.2", sport=0, dport=(3 << 8) | 1, proto=1, pkts=2,
                              bytes=120)]
    d, r = dec(G.v5(flows, seq=100, engine=(1, 2), sampling=(1 << 14) | 10))
    assert not r.rejected and len(r.batch) == 2
    tcp, icmp = r.batch.records
    assert (addr(tcp), addr(tcp, "dst_addr"), tcp["src_port"], tcp["dst_port"], tcp["proto"]) == (
        "192.0.2.1", "198.51.100.2", 1234, 80, 6)
    # 1 in 10 sampled (mode bits above the 14-bit interval): counters scaled, interval kept
    assert (tcp["pkts"], tcp["bytes"], tcp["sampling"]) == (100, 10000, 10)
    assert tcp["start_us"] == 1_700_000_000_000_000 and tcp["end_us"] == 1_700_000_001_000_000
    assert tcp["source"] == R.FLOW_SRC_NETFLOW5 and tcp["domain"] == (1 << 8) | 2
    assert tcp["flags"] == R.FF_ADDRS | R.FF_PORTS | R.FF_TCP_FLAGS | R.FF_SAMPLED | R.FF_EXPORTER
    assert addr(tcp, "exporter_addr") == "10.9.8.7" and tcp["exporter_ver"] == 4
    assert (icmp["src_port"], icmp["dst_port"]) == (3, 1) and icmp["flags"] & R.FF_ICMP


def test_v5_sequence_gaps_are_exporter_loss():
    d = NetflowDecoder(8)
    f = [G.Flow()] * 3
    dec(G.v5(f, seq=0), G.v5(f, seq=3), G.v5(f, seq=10), d=d)  # 4 flows lost before seq 10
    assert d.counters()["exporter_loss"] == 4
    assert d.exporters() == [{"exporter": "10.9.8.7", "version": 5, "domain": 0, "loss": 4, "sampling": 0}]
    dec(G.v5(f, seq=13), d=d)
    assert d.counters()["exporter_loss"] == 4


def test_v9_template_then_data_with_uptime_times():
    fl = [G.Flow(pkts=5, bytes=500), G.Flow(sport=53, dport=5353, proto=17)]
    d, r = dec(G.v9([G.v9_template(256, G.V9_IPV4), G.v9_data(256, G.V9_IPV4, fl)], seq=1, source_id=7))
    assert not r.rejected and len(r.batch) == 2
    a, b = r.batch.records
    assert (a["pkts"], a["bytes"], a["tcp_flags"], a["domain"], a["source"]) == (5, 500, 0x1B, 7, R.FLOW_SRC_NETFLOW9)
    assert a["start_us"] == 1_700_000_000_000_000 and a["end_us"] == 1_700_000_001_000_000
    assert (b["proto"], b["src_port"], b["dst_port"]) == (17, 53, 5353)
    assert d.counters()["templates_added"] == 1


def test_v9_data_before_its_template_is_held_then_decoded():
    d = NetflowDecoder(8)
    data = G.v9([G.v9_data(300, G.V9_IPV4, [G.Flow(pkts=7)])], seq=1)
    _, r = dec(data, d=d, now=0.0)
    assert len(r.batch) == 0 and not r.rejected and d.counters()["held_sets"] == 1
    _, r = dec(G.v9([G.v9_template(300, G.V9_IPV4)], seq=2), d=d, now=1.0)
    assert [int(x) for x in r.batch.records["pkts"]] == [7] and d.counters()["held_sets"] == 0
    assert d.counters()["template_missing"] == 0


def test_held_sets_expire_as_template_missing():
    d = NetflowDecoder(8, hold_seconds=5.0)
    _, r = dec(G.v9([G.v9_data(301, G.V9_IPV4, [G.Flow()])]), d=d, now=0.0)
    _, r = dec(d=d, now=6.0)
    assert d.counters()["template_missing"] == 1 and len(r.expired) == 1 and d.counters()["held_sets"] == 0
    peer, raw = r.expired[0]
    assert peer == PEER and raw[:2] == b"\x00\x09"


def test_the_hold_is_bounded_in_bytes():
    d = NetflowDecoder(8, hold_bytes=1000)
    pkt = G.v9([G.v9_data(302, G.V9_IPV4, [G.Flow()] * 8)])
    dec(*[pkt] * 8, d=d)
    c = d.counters()
    assert c["held_bytes"] <= 1000 and c["template_missing"] == 8 - c["held_sets"] and c["template_missing"] > 0


def test_v9_options_sampling_is_applied_and_recorded():
    opts = G.v9_options_template(257, [(1, 4)], [(34, 4), (35, 1)])
    odata = struct.pack("!HH", 257, 4 + 12) + struct.pack("!IIB", 0, 100, 2) + bytes(3)
    d, r = dec(G.v9([opts, odata, G.v9_template(256, G.V9_IPV4),
                     G.v9_data(256, G.V9_IPV4, [G.Flow(pkts=3, bytes=300)])]))
    assert not r.rejected
    (f,) = r.batch.records
    assert (f["pkts"], f["bytes"], f["sampling"]) == (300, 30000, 100) and f["flags"] & R.FF_SAMPLED
    assert d.counters()["options_records"] == 1


def test_v9_sequence_counts_packets():
    d = NetflowDecoder(8)
    t = G.v9_template(256, G.V9_IPV4)
    dec(G.v9([t], seq=5), G.v9([t], seq=6), G.v9([t], seq=9), d=d)
    assert d.counters()["exporter_loss"] == 2


IPFIX_BIFLOW = [*G.IPV6, (2, 8, G.PEN_REVERSE), (1, 8, G.PEN_REVERSE), (1234, 4, 9999), (96, 65535),
                (777, 65535, 9999), (58, 2)]


def test_ipfix_ipv6_biflow_enterprise_varlen_app():
    fl = [G.Flow(src="2001:db8::1", dst="2001:db8::2", rpkts=4, rbytes=400, app=b"dns", vlan=12),
          G.Flow(src="2001:db8::3", dst="2001:db8::4", app=b"x" * 300, sport=1, dport=2, proto=132)]
    d, r = dec(G.ipfix([G.ipfix_template(400, IPFIX_BIFLOW), G.ipfix_data(400, IPFIX_BIFLOW, fl)], domain=3))
    assert not r.rejected and len(r.batch) == 2
    a, b = r.batch.records
    assert addr(a) == "2001:db8::1" and a["ip_ver"] == 6 and a["domain"] == 3 and a["source"] == R.FLOW_SRC_IPFIX
    assert (a["pkts"], a["bytes"], a["pkts_rev"], a["bytes_rev"]) == (10, 1000, 4, 400)
    assert a["flags"] & R.FF_BIFLOW and a["vlan"] == 12 and a["flags"] & R.FF_VLAN
    assert a["start_us"] == fl[0].start_ms * 1000 and a["end_us"] == fl[0].end_ms * 1000
    assert r.batch.strings[a["app_idx"]] == "dns" and r.batch.strings[b["app_idx"]] == "x" * 300
    assert (b["proto"], b["src_port"], b["dst_port"]) == (132, 1, 2)


def test_ipfix_withdrawal_and_refresh():
    d = NetflowDecoder(8)
    short = [(8, 4), (12, 4), (2, 8)]
    dec(G.ipfix([G.ipfix_template(500, G.IPV4)]), d=d)
    _, r = dec(G.ipfix([G.ipfix_template(500, short), G.ipfix_data(500, short, [G.Flow(pkts=9)])]), d=d)
    assert [int(x) for x in r.batch.records["pkts"]] == [9]  # the refreshed layout is used
    _, r = dec(G.ipfix([G.ipfix_withdraw(500), G.ipfix_data(500, short, [G.Flow()])]), d=d)
    assert len(r.batch) == 0 and d.counters()["templates_withdrawn"] == 1 and d.counters()["held_sets"] == 1
    # "withdraw all" (the set id as template id) forgets every template of the domain
    dec(G.ipfix([G.ipfix_template(501, short), G.ipfix_template(502, short), G.ipfix_withdraw(2)]), d=d)
    assert d.counters()["templates_withdrawn"] == 3


def test_ipfix_options_sampling_and_sequence_in_records():
    d = NetflowDecoder(8)
    opt = G.ipfix_options_template(600, [(149, 4)], [(305, 4)])
    t = G.ipfix_template(601, G.IPV4)
    _, r = dec(G.ipfix([opt, t, G.ipfix_options_data(600, [(0, 4), (4, 4)]),
                        G.ipfix_data(601, G.IPV4, [G.Flow(pkts=2)])], seq=0), d=d)
    (f,) = r.batch.records
    assert (f["pkts"], f["sampling"]) == (8, 4)
    # 2 data records (options included) went out in message 0: 2 is next; 12 says 10 were lost
    dec(G.ipfix([G.ipfix_data(601, G.IPV4, [G.Flow()])], seq=12), d=d)
    assert d.counters()["exporter_loss"] == 10


def _reason(pkt):
    _, r = dec(pkt, G.v5([G.Flow(pkts=77)]))
    assert [int(x) for x in r.batch.records["pkts"]] == [77]  # the next packet flows
    return [why for _, why in r.rejected]


@pytest.mark.parametrize("pkt,why", [
    (b"\x00\x05\x00", "netflow_short_header"),
    (G.v5([G.Flow()])[:30], "netflow_bad_length"),
    (G.v9([])[:12], "netflow_short_header"),
    (G.ipfix([])[:10], "netflow_short_header"),
    (b"\x00\x07" + bytes(40), "netflow_bad_version"),
    (G.v9([struct.pack("!HH", 256, 400) + bytes(8)]), "netflow_bad_set"),
    (G.ipfix([struct.pack("!HH", 2, 2)]), "netflow_bad_set"),
    (G.v9([struct.pack("!HHHH", 0, 8, 256, 0)]), "netflow_bad_template"),  # zero fields
    (G.ipfix([struct.pack("!HHHH", 2, 8 + 4 * 1000, 256, 1000) + bytes(4 * 1000)]), "netflow_bad_template"),
    (G.ipfix([struct.pack("!HHHH", 2, 12, 256, 5) + bytes(4)]), "netflow_bad_template"),  # beyond its set
    (G.ipfix([struct.pack("!HHHHHH", 2, 12, 100, 1, 8, 4)]), "netflow_bad_template"),  # id < 256
    (G.ipfix([G.ipfix_template(256, [(96, 65535)]), struct.pack("!HHB", 256, 8, 200) + b"abc"]),
     "netflow_bad_field"),  # a varlen field longer than its record
])
def test_bad_input_is_counted_by_reason_and_never_fatal(pkt, why):
    assert _reason(pkt) == [why]


def test_ipfix_length_beyond_the_datagram():
    pkt = bytearray(G.ipfix([]))
    pkt[2:4] = (500).to_bytes(2, "big")
    assert _reason(bytes(pkt)) == ["netflow_bad_length"]


def test_template_table_is_bounded():
    d = NetflowDecoder(8, template_cap=16)
    sets = [G.ipfix_template(256 + i, [(8, 4), (12, 4)]) for i in range(40)]
    dec(G.ipfix(sets), d=d)
    c = d.counters()
    assert c["templates_added"] == 40 and c["templates_evicted"] == 40 - 16


def test_records_of_a_packet_larger_than_out_cap_split_across_calls():
    """A batch of many tiny records: the decoder stops before a packet that
    might not fit, and the wrapper calls again; nothing is lost."""
    d = NetflowDecoder(4, slot_size=2048)
    t = [(4, 1)]
    pkts = [G.ipfix([G.ipfix_template(256, t), G.ipfix_data(256, t, [G.Flow(proto=17)] * 2000)])] * 4
    _, r = dec(*pkts, d=d)
    assert not r.rejected and len(r.batch) == 8000


_SHARED: dict[int, NetflowDecoder] = {}


def _shared(k: int = 0) -> NetflowDecoder:
    """One decoder for every example (a decoder's tables take ~10 ms to set up)."""
    if k not in _SHARED:
        _SHARED[k] = NetflowDecoder(8)
    return _SHARED[k]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.sampled_from([b"\x00\x05", b"\x00\x09", b"\x00\x0a"]))
def test_arbitrary_bytes_never_crash(chunks, version):
    d = _shared()  # state carried from example to example, as on a socket
    pkts = [version + c for c in chunks]
    res = d.decode(d.load(pkts), now=0.0)
    assert len(res.batch) <= sum(len(p) for p in pkts)


flow_st = st.builds(
    G.Flow,
    src=st.ip_addresses(v=4).map(str), dst=st.ip_addresses(v=4).map(str),
    sport=st.integers(0, 65535), dport=st.integers(0, 65535), proto=st.sampled_from([6, 17]),
    pkts=st.integers(0, 2**64 - 1), bytes=st.integers(0, 2**64 - 1),
    start_ms=st.integers(0, 2**42), end_ms=st.integers(0, 2**42), app=st.binary(max_size=400))


@settings(max_examples=60, deadline=None)
@given(st.lists(flow_st, min_size=1, max_size=20))
def test_ipfix_round_trip(flows):
    fields = [*G.IPV4, (96, 65535)]
    _, r = dec(G.ipfix([G.ipfix_template(256, fields), G.ipfix_data(256, fields, flows)]), d=_shared(1))
    assert not r.rejected and len(r.batch) == len(flows)
    for f, rec in zip(flows, r.batch.records, strict=True):
        assert (addr(rec), addr(rec, "dst_addr"), rec["src_port"], rec["dst_port"], rec["proto"]) == (
            f.src, f.dst, f.sport, f.dport, f.proto)
        assert (int(rec["pkts"]), int(rec["bytes"])) == (f.pkts, f.bytes)
        assert (rec["start_us"], rec["end_us"]) == (f.start_ms * 1000, f.end_ms * 1000)
        assert (r.batch.strings[rec["app_idx"]] if rec["app_idx"] >= 0 else "") == f.app.decode("utf-8", "replace").replace("\0", "\ufffd")
