"""ingest gen's templates decode, through the C decoder, to the fields gen meant."""

from __future__ import annotations

import collections
import ipaddress

import numpy as np
import pytest

from ingest import batch as B
from ingest import gen
from ingest.native import ffi, lib

BASE_TIME = 1_795_000_000
SOURCE_OF_KIND = {
    "snort": B.SRC_SNORT,
    "snort3": B.SRC_SNORT,
    "snort-appid": B.SRC_SNORT_APPID,
    "barnyard2": B.SRC_BARNYARD2,
    "barnyard2-32": B.SRC_BARNYARD2_32,
}


def decode_templates(templates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ingest_alertpkt_decode over the templates as if they were received slots."""
    n, tlen = templates.shape
    slots = np.ascontiguousarray(templates)
    lens = np.full(n, tlen, dtype=np.uint32)
    out = np.zeros(n, dtype=B.ALERT_DTYPE)
    slot_of = np.zeros(n, dtype=np.uint32)
    status = np.full(n, 255, dtype=np.uint8)
    k = lib.ingest_alertpkt_decode(
        ffi.from_buffer("uint8_t[]", slots), tlen, n,
        ffi.from_buffer("uint32_t[]", lens), ffi.NULL,
        ffi.from_buffer("struct ingest_alert[]", out, require_writable=True), n,
        ffi.from_buffer("uint32_t[]", slot_of, require_writable=True),
        ffi.from_buffer("uint8_t[]", status, require_writable=True), ffi.NULL, ffi.NULL)
    assert k >= 0
    return out[:k], slot_of[:k], status


def mapped(addr: str) -> bytes:
    ip = ipaddress.ip_address(addr)
    return ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed


@pytest.mark.parametrize("kind", sorted(gen.KINDS))
def test_templates_decode_to_their_specs(kind: str) -> None:
    templates, specs = gen.build_templates(kind, 300, seed=7, base_time=BASE_TIME)
    assert templates.shape == (300, gen.KINDS[kind][1])
    alerts, slot_of, status = decode_templates(templates)

    assert len(alerts) == len(specs)
    assert status.tolist() == [lib.INGEST_DG_OK] * len(specs)  # no rejects, no anomalies
    assert slot_of.tolist() == list(range(len(specs)))
    for a, s, raw in zip(alerts, specs, templates, strict=True):
        where = f"{kind} {s}"
        assert a["source"] == SOURCE_OF_KIND[kind], where
        assert (a["gid"], a["sid"], a["rev"]) == (s.gid, s.sid, s.rev), where
        assert (a["class_id"], a["priority"], a["event_id"]) == \
               (s.class_id, s.priority, s.event_id), where
        assert a["ts_us"] == s.ts_sec * 1_000_000 + s.ts_usec, where
        msg = bytes(raw[:256]).split(b"\0", 1)[0].decode()
        assert msg == s.msg, where
        if kind == "snort-appid":
            assert bytes(raw[65864:65928]).rstrip(b"\0").decode() == s.app_name, where
            assert len(s.app_name.encode()) <= gen.APPID_SENT
        flags = int(a["flags"])
        if s.packet is None:
            assert flags & B.F_PACKET == 0 and a["ip_ver"] == 0, where
            continue
        assert flags & B.F_PACKET and flags & B.F_ADDRS, where
        assert a["ip_ver"] == s.ip_ver and a["proto"] == s.proto, where
        assert bytes(a["src_addr"]) == mapped(s.src), where
        assert bytes(a["dst_addr"]) == mapped(s.dst), where
        if s.proto in (6, 17):
            assert flags & B.F_PORTS, where
            assert (a["src_port"], a["dst_port"]) == (s.sport, s.dport), where
        elif s.icmp:
            assert flags & B.F_ICMP, where
            assert (a["src_port"], a["dst_port"]) == (s.sport, s.dport), where  # type, code
        else:
            assert flags & (B.F_PORTS | B.F_ICMP) == 0, where
        if s.vlan is None:
            assert flags & B.F_VLAN == 0, where
        else:
            assert flags & B.F_VLAN and a["vlan"] == s.vlan, where


def test_templates_are_a_realistic_mix() -> None:
    """The mix the docstring promises is really there (counts, not timings)."""
    specs = gen.alert_specs(2000, seed=3, base_time=BASE_TIME)
    kinds = collections.Counter((s.ip_ver, s.proto) for s in specs)
    assert kinds[(4, 6)] and kinds[(4, 17)] and kinds[(4, 1)]
    assert kinds[(6, 6)] and kinds[(6, 17)] and kinds[(6, 58)]
    assert kinds[(0, 0)]  # packetless events
    assert kinds[(4, 255)]  # portscan pseudo-packets (NO_TRANSHDR)
    assert any(s.vlan is not None for s in specs)
    # Zipf-like: the noisiest signature fires far more often than the median one.
    counts = sorted(collections.Counter((s.gid, s.sid) for s in specs).values(), reverse=True)
    assert counts[0] >= 10 * counts[len(counts) // 2]
    # Times increase; event ids count up from 1.
    ts = [s.ts_sec * 1_000_000 + s.ts_usec for s in specs]
    assert ts == sorted(ts)
    assert [s.event_id for s in specs] == list(range(1, 2001))


def test_seed_makes_templates_reproducible() -> None:
    a, _ = gen.build_templates("snort", 20, seed=5, base_time=BASE_TIME)
    b, _ = gen.build_templates("snort", 20, seed=5, base_time=BASE_TIME)
    c, _ = gen.build_templates("snort", 20, seed=6, base_time=BASE_TIME)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_kind_and_count() -> None:
    with pytest.raises(ValueError):
        gen.build_templates("suricata", 1)
    with pytest.raises(ValueError):
        gen.build_templates("snort", 0)


# ---- EVE records restamped with their send time (ingest_gen_lines' times) ----

def test_time_fields_find_each_records_times_its_own_first() -> None:
    from ingest.gen.eve import time_fields

    recs = [b'{"timestamp":"2020-09-13T12:26:40.000001-0500","event_type":"flow",'
            b'"flow":{"start":"2020-09-13T12:26:30.500000-0500","end":"2020-09-13T12:26:41.000000+0000"}}\n',
            b'{"event_type":"stats","stats":{"start":"2020-09-13T12:26:40.000000+0000"}}\n',
            b'{"flow":{"start":"2020-01-01T00:00:00.000000+0000"},"timestamp":"2020-01-01T00:00:01.000000+0000"}\n',
            b'{"timestamp":"2020-01-01T00:00:01Z","event_type":"alert"}\n']
    first, off, us = time_fields(recs)
    assert first.tolist() == [0, 3, 3, 5, 5]  # no record "timestamp" / not the 31-byte form: kept
    r0 = recs[0]
    assert [r0[o:o + 31] for o in off[:3].tolist()] == [
        b"2020-09-13T12:26:40.000001-0500", b"2020-09-13T12:26:30.500000-0500",
        b"2020-09-13T12:26:41.000000+0000"]
    assert us[:3].tolist() == [1600018000000001, 1600017990500000, 1600000001000000]
    assert recs[2][off[3]:off[3] + 31] == b"2020-01-01T00:00:01.000000+0000"  # its own time first


def test_gen_lines_refuses_a_time_field_outside_its_record() -> None:
    data = bytearray(b'{"timestamp":"2020-01-01T00:00:01.000000+0000"}\n' * 2)
    ends = np.array([48, 96], dtype=np.uint32)
    res = ffi.new("struct ingest_gen_result *")

    def call(first, off) -> int:
        f = np.array(first, dtype=np.uint32)
        o = np.array(off, dtype=np.uint32)
        u = np.zeros(len(off), dtype=np.int64)
        times = ffi.new("struct ingest_gen_times *", {
            "first": ffi.from_buffer("uint32_t[]", f), "off": ffi.from_buffer("uint32_t[]", o),
            "us": ffi.from_buffer("int64_t[]", u)})
        return lib.ingest_gen_lines(b"/nonexistent/ingest-test.sock", ffi.from_buffer("uint8_t[]", data),
                                    ffi.from_buffer("uint32_t[]", ends), 2, 1, 0.0, 0.0, lib.INGEST_GEN_CONNECT, times, ffi.NULL, res)

    assert call([0, 1, 2], [14, 18]) == lib.INGEST_EINVAL  # 18 + 31 > 48: past its record
    assert call([0, 1, 2], [14, 48]) == lib.INGEST_EINVAL
    assert call([0, 2, 1], [14, 14]) == lib.INGEST_EINVAL  # first[] not ascending
    assert call([1, 1, 2], [14, 14]) == lib.INGEST_EINVAL  # first[0] must be 0
    assert call([0, 1, 2], [14, 14]) == lib.INGEST_ESYS  # valid: then the connect fails
