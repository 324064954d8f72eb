"""Build ``alert_unixsock`` datagrams and packets with known fields.

The sender side of ingest.alertpkt, written from the senders' struct
declarations (FORMATS.md sections 1-3) independently of the C decoder.  Used
by the tests, by ``ingest gen`` and by the benchmarks.

Example::

    pkt = ether_ipv4("10.0.0.1", "10.0.0.2", proto=6, sport=1234, dport=80)
    dgram = encode_alertpkt("snort", packet=pkt, gid=1, sid=2000356, msg="ET POLICY")
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Literal

Variant = Literal["snort", "snort3", "snort-appid", "barnyard2", "barnyard2-32"]

NOPACKET_STRUCT = 0x1
NO_TRANSHDR = 0x2

# (size, pkth format, header-offsets position, pkt offset, pkt area, event offset)
_LAYOUTS = {
    "snort": (65864, "<IIII", 272, 292, 65535, 65828),
    "snort3": (65864, "<IIII", 272, 292, 65535, 65828),
    "snort-appid": (65928, "<IIII", 272, 292, 65535, 65828),
    "barnyard2": (1856, "<qqII", 280, 300, 1514, 1816),
    "barnyard2-32": (1844, "<IIII", 272, 292, 1514, 1808),
}


def _ip_bytes(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def _l4(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    if proto == 6:  # TCP, 20-byte header
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if proto == 132:  # SCTP common header
        return struct.pack("!HHII", sport, dport, 0, 0) + payload
    if proto in (1, 58):  # ICMP / ICMPv6: sport = type, dport = code
        return struct.pack("!BBHI", sport, dport, 0, 0) + payload
    return payload


def _ether(ethertype: int, vlan: int | None) -> bytes:
    hdr = bytes.fromhex("0002b3aabbcc") + bytes.fromhex("00a0c9112233")
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan & 0x0FFF)
    return hdr + struct.pack("!H", ethertype)


def ipv4(src: str, dst: str, proto: int = 6, sport: int = 0, dport: int = 0,
         payload: bytes = b"", *, frag_offset: int = 0) -> bytes:
    """An IPv4 packet (20-byte header) with a TCP/UDP/ICMP header."""
    body = _l4(proto, sport, dport, payload) if frag_offset == 0 else payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, frag_offset & 0x1FFF,
                       64, proto, 0, _ip_bytes(src), _ip_bytes(dst)) + body


def ipv6(src: str, dst: str, proto: int = 6, sport: int = 0, dport: int = 0,
         payload: bytes = b"", *, ext_headers: tuple[int, ...] = ()) -> bytes:
    """An IPv6 packet, optionally with 8-byte extension headers (by type) first."""
    body = _l4(proto, sport, dport, payload)
    chain = list(ext_headers) + [proto]
    ext = b"".join(struct.pack("!BB6x", chain[i + 1], 0) for i in range(len(ext_headers)))
    first = chain[0]
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(body), first, 64,
                       _ip_bytes(src), _ip_bytes(dst)) + ext + body


def ether_ipv4(src: str, dst: str, proto: int = 6, sport: int = 0, dport: int = 0,
               payload: bytes = b"", *, vlan: int | None = None, **kw) -> bytes:
    return _ether(0x0800, vlan) + ipv4(src, dst, proto, sport, dport, payload, **kw)


def ether_ipv6(src: str, dst: str, proto: int = 6, sport: int = 0, dport: int = 0,
               payload: bytes = b"", *, vlan: int | None = None, **kw) -> bytes:
    return _ether(0x86DD, vlan) + ipv6(src, dst, proto, sport, dport, payload, **kw)


def snort_offsets(packet: bytes, variant: Variant = "snort") -> dict[str, int]:
    """dlthdr/nethdr/transhdr/data/val as the sender would set them for an
    Ethernet packet: Snort 2 fills nethdr/transhdr for IPv4 only (IPv6 leaves
    them 0), Snort 3 and Barnyard2 for IPv6 too; NO_TRANSHDR for IPv4 packets
    that are not TCP/UDP/ICMP."""
    res = {"dlthdr": 0, "nethdr": 0, "transhdr": 0, "data": 0, "val": 0}
    off = 12
    if len(packet) < off + 2:
        return res  # not an Ethernet frame: the sender decodes nothing
    et = struct.unpack_from("!H", packet, off)[0]
    while et in (0x8100, 0x88A8) and len(packet) >= off + 6:
        off += 4
        et = struct.unpack_from("!H", packet, off)[0]
    l3 = off + 2
    if len(packet) < l3 + (40 if et == 0x86DD else 20):
        return res
    if et == 0x0800:
        ihl = (packet[l3] & 0x0F) * 4
        proto = packet[l3 + 9]
        res["nethdr"] = l3
        if proto in (1, 6, 17):
            res["transhdr"] = l3 + ihl
            res["data"] = l3 + ihl + {6: 20, 17: 8, 1: 8}[proto]
        else:
            res["val"] = NO_TRANSHDR
            res["data"] = l3 + ihl
    elif et == 0x86DD and variant != "snort" and variant != "snort-appid":
        proto = packet[l3 + 6]
        res["nethdr"] = l3
        if proto in (1, 6, 17, 58):
            res["transhdr"] = l3 + 40
    return res


def encode_alertpkt(
    variant: Variant = "snort",
    *,
    msg: str | bytes = "",
    gid: int = 1,
    sid: int = 1,
    rev: int = 1,
    class_id: int = 0,
    priority: int = 0,
    event_id: int = 0,
    event_ref: int = 0,
    ts_sec: int = 0,
    ts_usec: int = 0,
    sensor_id: int = 0,
    app_name: str | bytes = b"",
    packet: bytes | None = None,
    pkt_ts: tuple[int, int] | None = None,
    caplen: int | None = None,
    wire_len: int | None = None,
    dlthdr: int | None = None,
    nethdr: int | None = None,
    transhdr: int | None = None,
    data: int | None = None,
    val: int | None = None,
) -> bytes:
    """One datagram of the given variant.  ``packet=None`` sends
    NOPACKET_STRUCT (zero header and pkt[]), as Snort does for an event
    without a packet.  Header offsets default to what the sender would set
    (see snort_offsets); any of them can be overridden to build hostile input.
    """
    size, pkth_fmt, hdr_off, pkt_off, pkt_area, ev_off = _LAYOUTS[variant]
    buf = bytearray(size)
    m = msg.encode() if isinstance(msg, str) else msg
    buf[0:min(len(m), 255)] = m[:255]  # at most 255 bytes: always NUL-terminated
    if packet is None:
        offs = {"dlthdr": 0, "nethdr": 0, "transhdr": 0, "data": 0, "val": NOPACKET_STRUCT}
        cap = 0
        plen = 0
        pts = (0, 0)
    else:
        offs = snort_offsets(packet, variant)
        cap = len(packet)
        plen = len(packet)
        pts = pkt_ts or (ts_sec, ts_usec)
        n = min(len(packet), pkt_area)
        buf[pkt_off:pkt_off + n] = packet[:n]
    for name, v in (("dlthdr", dlthdr), ("nethdr", nethdr), ("transhdr", transhdr),
                    ("data", data), ("val", val)):
        if v is not None:
            offs[name] = v
    if caplen is not None:
        cap = caplen
    if wire_len is not None:
        plen = wire_len
    struct.pack_into(pkth_fmt, buf, 256, pts[0], pts[1], cap, plen)
    struct.pack_into("<IIIII", buf, hdr_off, offs["dlthdr"], offs["nethdr"], offs["transhdr"],
                     offs["data"], offs["val"])
    if variant.startswith("barnyard2"):
        # Unified2EventCommon, network order, sid before gid
        struct.pack_into("!9I", buf, ev_off, sensor_id, event_id, ts_sec, ts_usec, sid, gid,
                         rev, class_id, priority)
    else:
        struct.pack_into("<9I", buf, ev_off, gid, sid, rev, class_id, priority, event_id,
                         event_ref, ts_sec, ts_usec)
        if variant == "snort-appid":
            a = app_name.encode() if isinstance(app_name, str) else app_name
            buf[65864:65864 + min(len(a), 64)] = a[:64]
    return bytes(buf)
