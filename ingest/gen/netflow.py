"""NetFlow v5 / v9 / IPFIX export packets built from flow descriptions, as
an exporter writes them (RFC 3954, RFC 7011, Cisco's v5 layout): for the
unit tests, the fuzz seeds and the decode benchmark.  Not imported by the
runtime."""

from __future__ import annotations

import builtins
import ipaddress
import struct
from dataclasses import dataclass

#: IPFIX information elements used below (id, length)
IPV4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8)]
IPV6 = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8)]
#: NetFlow v9's usual layout: 32-bit counters, sysUpTime-relative times
V9_IPV4 = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4)]
PEN_REVERSE = 29305


@dataclass
class Flow:
    src: str = "192.0.2.1"
    dst: str = "198.51.100.2"
    sport: int = 1234
    dport: int = 80
    proto: int = 6
    tcp_flags: int = 0x1B
    pkts: int = 10
    bytes: int = 1000
    start_ms: int = 1_700_000_000_000
    end_ms: int = 1_700_000_001_000
    rpkts: int = 0
    rbytes: int = 0
    app: builtins.bytes = b""  # (the field "bytes" shadows the type here)
    vlan: int = 0


def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def v5(flows: list[Flow], *, seq: int = 0, uptime_ms: int = 100_000, unix_s: int = 1_700_000_010,
       engine: tuple[int, int] = (0, 0), sampling: int = 0) -> bytes:
    """A NetFlow v5 packet (at most 30 flows); times relative to the header."""
    hdr = struct.pack("!HHIIIIBBH", 5, len(flows), uptime_ms, unix_s, 0, seq, engine[0], engine[1], sampling)
    body = b""
    export_ms = unix_s * 1000
    for f in flows:
        first = (uptime_ms - (export_ms - f.start_ms)) & 0xFFFFFFFF
        last = (uptime_ms - (export_ms - f.end_ms)) & 0xFFFFFFFF
        body += struct.pack("!4s4s4sHHIIIIHHBBBBHHBBH", _addr(f.src), _addr(f.dst), bytes(4), 0, 0,
                            f.pkts, f.bytes, first, last, f.sport, f.dport, 0, f.tcp_flags, f.proto, 0,
                            0, 0, 0, 0, 0)
    return hdr + body


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def v9_template(tid: int, fields: list[tuple[int, int]]) -> bytes:
    body = struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", i, n) for i, n in fields)
    return struct.pack("!HH", 0, 4 + len(body)) + body


def v9_options_template(tid: int, scope: list[tuple[int, int]], opts: list[tuple[int, int]]) -> bytes:
    body = struct.pack("!HHH", tid, 4 * len(scope), 4 * len(opts)) + b"".join(
        struct.pack("!HH", i, n) for i, n in scope + opts)
    body = _pad4(body)
    return struct.pack("!HH", 1, 4 + len(body)) + body


def _value(ie: int, n: int, f: Flow, *, v9: bool, uptime_ms: int, export_ms: int) -> bytes:
    v: int | bytes
    if ie in (8, 12, 27, 28):
        v = _addr(f.src if ie in (8, 27) else f.dst)
        return v
    v = {7: f.sport, 11: f.dport, 4: f.proto, 6: f.tcp_flags, 2: f.pkts, 1: f.bytes, 152: f.start_ms,
         153: f.end_ms, 150: f.start_ms // 1000, 151: f.end_ms // 1000, 58: f.vlan, 243: f.vlan,
         22: (uptime_ms - (export_ms - f.start_ms)) & 0xFFFFFFFF,
         21: (uptime_ms - (export_ms - f.end_ms)) & 0xFFFFFFFF}.get(ie, 0)
    return int(v).to_bytes(n, "big")


def v9_data(tid: int, fields: list[tuple[int, int]], flows: list[Flow], *, uptime_ms: int = 100_000,
            unix_s: int = 1_700_000_010) -> bytes:
    body = b"".join(b"".join(_value(i, n, f, v9=True, uptime_ms=uptime_ms, export_ms=unix_s * 1000)
                             for i, n in fields) for f in flows)
    body = _pad4(body)
    return struct.pack("!HH", tid, 4 + len(body)) + body


def v9(sets: list[bytes], *, seq: int = 0, source_id: int = 0, uptime_ms: int = 100_000,
       unix_s: int = 1_700_000_010, count: int | None = None) -> bytes:
    return struct.pack("!HHIIII", 9, len(sets) if count is None else count, uptime_ms, unix_s, seq,
                       source_id) + b"".join(sets)


# ---- IPFIX -------------------------------------------------------------------
#: a field: (ie, length) or (ie, length, pen) for an enterprise field; length 65535: variable
Field = tuple[int, int] | tuple[int, int, int]


def _spec(fl: Field) -> bytes:
    if len(fl) == 3:
        return struct.pack("!HHI", fl[0] | 0x8000, fl[1], fl[2])
    return struct.pack("!HH", fl[0], fl[1])


def ipfix_template(tid: int, fields: list[Field]) -> bytes:
    body = struct.pack("!HH", tid, len(fields)) + b"".join(_spec(f) for f in fields)
    return struct.pack("!HH", 2, 4 + len(body)) + body


def ipfix_withdraw(tid: int, options: bool = False) -> bytes:
    return struct.pack("!HHHH", 3 if options else 2, 8, tid, 0)


def ipfix_options_template(tid: int, scope: list[Field], opts: list[Field]) -> bytes:
    body = struct.pack("!HHH", tid, len(scope) + len(opts), len(scope)) + b"".join(
        _spec(f) for f in scope + opts)
    return struct.pack("!HH", 3, 4 + len(body)) + body


def _ipfix_value(fl: Field, f: Flow) -> bytes:
    ie, n = fl[0], fl[1]
    if len(fl) == 3:
        if fl[2] == PEN_REVERSE:
            v = {1: f.rbytes, 2: f.rpkts, 6: 0}.get(ie, 0)
            return int(v).to_bytes(n, "big")
        return bytes(n if n != 65535 else 1)  # some enterprise's field: zeros (varlen: empty)
    if n == 65535:
        raw = f.app if ie == 96 else b""
        return (bytes([len(raw)]) if len(raw) < 255 else b"\xff" + struct.pack("!H", len(raw))) + raw
    return _value(ie, n, f, v9=False, uptime_ms=0, export_ms=0)


def ipfix_data(tid: int, fields: list[Field], flows: list[Flow]) -> bytes:
    body = b"".join(b"".join(_ipfix_value(fl, f) for fl in fields) for f in flows)
    return struct.pack("!HH", tid, 4 + len(body)) + body


def ipfix_options_data(tid: int, values: list[tuple[int, int]]) -> bytes:
    """One options data record: (value, length) per field, scope first."""
    body = b"".join(v.to_bytes(n, "big") for v, n in values)
    return struct.pack("!HH", tid, 4 + len(body)) + body


def ipfix(sets: list[bytes], *, seq: int = 0, domain: int = 0, export_s: int = 1_700_000_010) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, seq, domain) + body
