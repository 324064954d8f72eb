"""JSON rendering by the C core: the EVE and Trisul profiles."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4, ether_ipv6
from ingest.native import ffi, lib
from ingest.render import StringTable, render_json, to_records


def batch_of(*dgrams):
    return decode_datagrams(list(dgrams)).batch


def test_eve_schema_tcp():
    b = batch_of(encode_alertpkt("snort", msg="ET TEST", gid=1, sid=2, rev=3, class_id=4, priority=1,
                                 event_id=5, ts_sec=1764266630, ts_usec=123456,
                                 packet=ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1234, 80)))
    rec = to_records(b)[0]
    assert rec == {
        "timestamp": "2025-11-27T18:03:50.123456+0000",
        "event_type": "alert",
        "src_ip": "10.0.0.1", "src_port": 1234, "dest_ip": "10.0.0.2", "dest_port": 80, "proto": "TCP",
        "alert": {"gid": 1, "signature_id": 2, "rev": 3, "signature": "ET TEST", "severity": 1},
        "ingest": {"source": "snort", "sensor_id": 0, "event_id": 5, "class_id": 4},
    }


@pytest.mark.parametrize("ts_us", [0, 1, 999_999, 1_000_000, 951_782_400_000_000, 4_102_444_799_999_999,
                                   -1, -86_400_000_001])
def test_timestamps_are_utc_iso(ts_us):
    a = B.empty(1)
    a["ts_us"] = ts_us
    rec = to_records(B.AlertBatch(a))[0]
    expect = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_us))
    assert rec["timestamp"] == expect.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


@given(st.integers(0, 253_402_300_799_999_999))
@settings(max_examples=200, deadline=None)
def test_timestamp_property(ts_us):
    a = B.empty(1)
    a["ts_us"] = ts_us
    line = render_json(B.AlertBatch(a)).decode()
    expect = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts_us)
    assert json.loads(line)["timestamp"] == expect.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def test_udp_ipv6_vlan_and_proto_names():
    b = batch_of(
        encode_alertpkt("snort3", packet=ether_ipv6("2001:db8::1", "2001:db8::2", 17, 53, 5353, vlan=7)),
        encode_alertpkt("snort", packet=ether_ipv4("1.1.1.1", "2.2.2.2", 132, 9, 10)),
    )
    r0, r1 = to_records(b)
    assert (r0["proto"], r0["src_ip"], r0["vlan"], r0["dest_port"]) == ("UDP", "2001:db8::1", [7], 5353)
    assert r1["proto"] == "SCTP" and r1["src_port"] == 9


def test_strings_are_escaped():
    b = batch_of(encode_alertpkt("snort", msg='a "q" \\ \n\t\x7f é'))
    line = render_json(b)
    assert line.count(b"\n") == 1
    assert json.loads(line)["alert"]["signature"] == 'a "q" \\ \n\t\x7f é'


def test_category_action_extra_and_raw():
    a = B.empty(3)
    a["action"] = [B.ACTION_BLOCKED, B.ACTION_ALLOWED, 0]
    b = B.AlertBatch(a, ["misc-attack", '"packet":"AAEC"', '{"event_type":"alert","x":1}'])
    b.extra = np.array([1, -1, -1], np.int32)
    b.raw = np.array([-1, -1, 2], np.int32)
    lines = render_json(b, categories=np.array([0, -1, 0], np.int32)).splitlines()
    r0, r1 = json.loads(lines[0]), json.loads(lines[1])
    assert r0["alert"]["action"] == "blocked" and r0["alert"]["category"] == "misc-attack"
    assert r0["packet"] == "AAEC"
    assert r1["alert"]["action"] == "allowed" and "category" not in r1["alert"]
    assert lines[2] == b'{"event_type":"alert","x":1}'


def test_trisul_profile_fixes_lua_bugs():
    b = batch_of(
        encode_alertpkt("snort", msg="udp", gid=1, sid=10, packet=ether_ipv4("1.1.1.1", "2.2.2.2", 17, 1, 2)),
        encode_alertpkt("snort3", msg="v6", gid=1, sid=11, packet=ether_ipv6("::1", "::2", 6, 3, 4)),
        encode_alertpkt("snort", msg="icmp", gid=116, sid=12, class_id=3, packet=ether_ipv4("1.1.1.1", "2.2.2.2", 1, 8, 0)),
        encode_alertpkt("snort", msg="nopkt", sid=13),
    )
    udp, v6, icmp, nopkt = to_records(b, "trisul")
    assert udp["AlertGroupGUID"] == "{9AFD8C08-07EB-47E0-BF05-28B4A7AE8DC9}"
    assert (udp["Protocol"], udp["SourcePort"], udp["SigIDKey"], udp["SigIDLabel"]) == (17, 1, "10", "udp")
    assert (v6["ProtocolFamily"], v6["SourceIP"], v6["DestPort"]) == ("IPV6", "::1", 4)
    assert "SourcePort" not in icmp and icmp["Protocol"] == 1
    assert "icmp_type=8 icmp_code=0" in icmp["AlertDetails"]
    assert icmp["SigIDKey"] == "116:12" and icmp["ClassificationKey"] == "3"
    assert "SourceIP" not in nopkt and nopkt["AlertStatus"] == "FIRED"


def test_enospc_then_success_and_bad_profile():
    b = batch_of(encode_alertpkt("snort", msg="x" * 200))
    table = StringTable(b.strings)
    out = bytearray(100)
    c_out = ffi.from_buffer("uint8_t[]", out, require_writable=True)
    c_alerts = ffi.from_buffer("struct ingest_alert[]", b.alerts)
    assert lib.ingest_format_json(c_alerts, 1, table.c, ffi.NULL, lib.INGEST_FMT_EVE, c_out, 100, ffi.NULL) == lib.INGEST_ENOSPC
    assert lib.ingest_format_json(c_alerts, 1, table.c, ffi.NULL, 99, c_out, 100, ffi.NULL) == lib.INGEST_EINVAL
    assert json.loads(render_json(b))["alert"]["signature"] == "x" * 200
