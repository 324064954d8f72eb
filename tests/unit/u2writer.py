"""A test-side Unified2 writer: every record type, laid out as the writers
do (FORMATS.md section 4; Snort 2 spo_unified2.c, Snort 3 unified2.cc)."""

from __future__ import annotations

import ipaddress
import struct


def record(rtype: int, body: bytes) -> bytes:
    return struct.pack(">II", rtype, len(body)) + body


def _ip4(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def _ip6(a: str) -> bytes:
    return ipaddress.IPv6Address(a).packed


def _head(sensor, event_id, sec, usec, sid, gid, rev, cls, prio) -> bytes:
    return struct.pack(">9I", sensor, event_id, sec, usec, sid, gid, rev, cls, prio)


def event_v4(rtype: int = 7, *, sensor=0, event_id=1, sec=1321131865, usec=0, sid=1000, gid=1,
             rev=1, cls=0, prio=1, src="10.0.0.1", dst="10.0.0.2", sport=1234, dport=80,
             proto=6, impact_flag=0, impact=0, blocked=0, mpls=0, vlan=0, policy=0,
             app_name: bytes | None = None, app_len: int = 64) -> bytes:
    """7 (52 B), 104 (60 B), 111 or 104+app (124 B)."""
    body = _head(sensor, event_id, sec, usec, sid, gid, rev, cls, prio)
    body += _ip4(src) + _ip4(dst) + struct.pack(">HHBBBB", sport, dport, proto, impact_flag, impact, blocked)
    if rtype != 7:
        body += struct.pack(">IHH", mpls, vlan, policy)
        if app_name is not None:
            body += app_name.ljust(app_len, b"\0")[:app_len]
    return record(rtype, body)


def event_v6(rtype: int = 72, *, sensor=0, event_id=1, sec=1321131865, usec=0, sid=1000, gid=1,
             rev=1, cls=0, prio=1, src="fe80::1", dst="fe80::2", sport=1234, dport=80,
             proto=6, impact_flag=0, impact=0, blocked=0, mpls=0, vlan=0, policy=0,
             app_name: bytes | None = None, app_len: int = 64) -> bytes:
    """72 (76 B), 105 (84 B), 112 / 105+app (100 or 148 B)."""
    body = _head(sensor, event_id, sec, usec, sid, gid, rev, cls, prio)
    body += _ip6(src) + _ip6(dst) + struct.pack(">HHBBBB", sport, dport, proto, impact_flag, impact, blocked)
    if rtype != 72:
        body += struct.pack(">IHH", mpls, vlan, policy)
        if app_name is not None:
            body += app_name.ljust(app_len, b"\0")[:app_len]
    return record(rtype, body)


def _addr16(a: str) -> tuple[bytes, int]:
    ip = ipaddress.ip_address(a)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed, 4
    return ip.packed, 6


def event3(*, layout: int = 1032, sensor=0, event_id=1, sec=1700000000, usec=0, gid=1, sid=1,
           rev=1, cls=0, prio=0, policies=(0, 0, 0), src="10.1.1.1", dst="10.1.1.2", mpls=0,
           sport=1000, dport=80, vlan=0, proto=6, status=0, action=0, app_name=b"",
           http=(0, 0, b"", b"", b"", b"", b"")) -> bytes:
    """Snort 3 event v3 (114): gid before sid, IPv4-mapped addresses."""
    s, sv = _addr16(src)
    d, dv = _addr16(dst)
    body = struct.pack(">12I", sensor, event_id, sec, usec, gid, sid, rev, cls, prio, *policies)
    body += s + d + struct.pack(">IHHHHBBBB", mpls, sport, dport, vlan, 0, sv << 4 | dv, proto, status, action)
    body += app_name.ljust(64, b"\0")
    assert len(body) == 160
    if layout == 1032:
        req, resp, method, version, ua, ref, detail = http
        body += struct.pack(">II", req, resp) + method.ljust(80, b"\0") + version.ljust(16, b"\0")
        body += ua.ljust(256, b"\0") + ref.ljust(256, b"\0") + detail.ljust(256, b"\0")
        assert len(body) == 1032
    return record(114, body)


def packet(*, rtype: int = 2, sensor=0, event_id=1, event_second=1321131865, sec=None, usec=0,
           linktype=1, data: bytes = b"\x00" * 60, declared: int | None = None) -> bytes:
    body = struct.pack(">7I", sensor, event_id, event_second,
                       event_second if sec is None else sec, usec, linktype,
                       len(data) if declared is None else declared)
    return record(rtype, body + data)


def extra(*, info_type: int, data: bytes, sensor=0, event_id=1, event_second=1321131865) -> bytes:
    body = struct.pack(">II", 4, 32 + len(data))
    body += struct.pack(">6I", sensor, event_id, event_second, info_type, 1, len(data) + 8)
    return record(110, body + data)


def appstat(entries: int = 2) -> bytes:
    return record(113, struct.pack(">II", 1321131865, entries) + b"\0" * (entries * 24))
