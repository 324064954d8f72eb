"""What ``ingest gen`` sends over the Alertpkt sockets: a seeded catalog of
realistic rules, the fields of each alert (``AlertSpec``), and the datagram
templates a sender cycles through (FORMATS.md 1.1, 2).

Content: a seeded mix of IPv4 TCP/UDP/ICMP and IPv6 TCP/UDP/ICMPv6, some
802.1Q-tagged frames, a few packetless events and portscan pseudo-packets
(NO_TRANSHDR), signatures drawn Zipf-like from a catalog of realistic rules.
"""

from __future__ import annotations

import ipaddress
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import encode

# kind -> (encoder variant, datagram length, default mode, event_id offset, big-endian event)
KINDS: dict[str, tuple[encode.Variant, int, str, int, bool]] = {
    "snort": ("snort", 65864, "sendto", 65828 + 20, False),
    "snort3": ("snort3", 65864, "sendto", 65828 + 20, False),
    "snort-appid": ("snort-appid", 65928, "sendto", 65828 + 20, False),
    "barnyard2": ("barnyard2", 1856, "connect", 1816 + 4, True),
    "barnyard2-32": ("barnyard2-32", 1844, "connect", 1808 + 4, True),
}
#: Snort 2 copies only the first 28 bytes of app_name (FORMATS.md 1.2).
APPID_SENT = 28
SNAPLEN = 1514


# ---- the rule catalog --------------------------------------------------------

# (gid, sid base, msg, class_id, priority, proto, dport) families.  class ids
# and priorities follow Snort's classification.config; messages are in the
# style of the ET / Talos rule sets.
_FAMILIES: list[tuple[int, int, str, int, int, str, int]] = [
    (1, 2008578, "ET SCAN Sipvicious Scan", 4, 2, "udp", 5060),
    (1, 2001219, "ET SCAN Potential SSH Scan", 4, 2, "tcp", 22),
    (1, 2010935, "ET SCAN Suspicious inbound to MSSQL port 1433", 29, 3, "tcp", 1433),
    (1, 2010937, "ET SCAN Suspicious inbound to mySQL port 3306", 29, 3, "tcp", 3306),
    (1, 2402000, "ET DROP Dshield Block Listed Source group 1", 30, 2, "tcp", 445),
    (1, 2522000, "ET TOR Known Tor Relay/Router (Not Exit) Node Traffic group", 29, 3, "tcp", 9001),
    (1, 2013028, "ET POLICY curl User-Agent Outbound", 29, 3, "tcp", 80),
    (1, 2027390, "ET USER_AGENTS Microsoft Device Metadata Retrieval Client User-Agent", 2, 3,
     "tcp", 80),
    (1, 2014819, "ET INFO Packed Executable Download", 29, 3, "tcp", 80),
    (1, 2027865, "ET INFO Observed DNS Query to .cloud TLD", 2, 3, "udp", 53),
    (1, 2031071, "ET HUNTING Suspicious Domain Request for Possible COVID-19 Domain", 3, 2,
     "udp", 53),
    (1, 2024897, "ET USER_AGENTS Go HTTP Client User-Agent", 29, 3, "tcp", 80),
    (1, 2019401, "ET POLICY Vulnerable Java Version 1.8.x Detected", 33, 1, "tcp", 80),
    (1, 2033966, "ET EXPLOIT Apache HTTP Server 2.4.49 Path Traversal (CVE-2021-41773)", 28, 1,
     "tcp", 80),
    (1, 2034647, "ET EXPLOIT Apache log4j RCE Attempt (CVE-2021-44228)", 28, 1, "tcp", 443),
    (1, 2030171, "ET MALWARE Win32/Emotet CnC Activity (POST)", 21, 1, "tcp", 8080),
    (1, 2018959, "ET POLICY PE EXE or DLL Windows file download HTTP", 33, 1, "tcp", 80),
    (1, 2100366, "GPL ICMP_INFO PING *NIX", 2, 3, "icmp", 0),
    (1, 2100384, "GPL ICMP_INFO PING", 31, 3, "icmp", 0),
    (1, 2100402, "GPL ICMP_INFO Destination Unreachable Port Unreachable", 29, 3, "icmp", 3),
    (1, 2100486, "GPL ICMP_INFO Destination Unreachable Communication with Destination Host is"
     " Administratively Prohibited", 29, 3, "icmp", 3),
    (1, 2210045, "SURICATA STREAM Packet with invalid ack", 26, 3, "tcp", 443),
    (1, 1000001, "LOCAL Outbound SMB to untrusted network", 33, 1, "tcp", 445),
    (1, 31978, "OS-WINDOWS Microsoft Windows SMB remote code execution attempt", 12, 1, "tcp", 445),
    (1, 41978, "SERVER-WEBAPP WordPress xmlrpc.php GetUsersBlogs access attempt", 27, 2,
     "tcp", 80),
    (1, 2925, "INFO web bug 0x0 gif attempt", 29, 3, "tcp", 80),
    (1, 1917, "INDICATOR-SCAN UPnP service discover attempt", 23, 3, "udp", 1900),
    (1, 254, "PROTOCOL-DNS SPOOF query response with TTL of 1 min. and no authority", 3, 2,
     "udp", 53),
    (119, 31, "(http_inspect) UNKNOWN METHOD", 2, 3, "tcp", 80),
    (119, 19, "(http_inspect) LONG HEADER", 2, 3, "tcp", 80),
    (120, 3, "(http_inspect) NO CONTENT-LENGTH OR TRANSFER-ENCODING IN HTTP RESPONSE", 2, 3,
     "tcp", 80),
    (129, 12, "(stream5) TCP Small Segment Threshold Exceeded", 2, 3, "tcp", 443),
    (129, 15, "(stream5) Reset outside window", 2, 3, "tcp", 443),
    (116, 408, "(snort_decoder) WARNING: IPv4 packet frag offset + length exceed maximum", 2, 3,
     "udp", 0),
    (122, 1, "(portscan) TCP Portscan", 4, 2, "pscan", 0),
    (122, 17, "(portscan) UDP Portscan", 4, 2, "pscan", 0),
    (1, 2012887, "ET POLICY Http Client Body contains pass= in cleartext", 33, 1, "tcp", 80),
]
_VARIANTS = ["", " M2", " (Outbound)", " (Inbound)", " - Possible Leak", " Set", " group 2",
             " Request", " Response", " (set)"]
_APPS = ["HTTP", "SSL", "DNS", "SMB", "SSH", "Microsoft Windows Update", "Google", "YouTube",
         "Facebook", "Amazon Web Services", "Microsoft Office 365 Outlook Web Access",
         "Dropbox", "Ubuntu Update Manager"]


@dataclass(frozen=True)
class Rule:
    gid: int
    sid: int
    rev: int
    msg: str
    class_id: int
    priority: int
    proto: str  # tcp, udp, icmp or pscan (a portscan pseudo-packet, IP proto 255)
    dport: int


def rule_catalog(rng: random.Random, n: int = 600) -> list[Rule]:
    """n distinct rules in popularity order (rank 0 is the noisiest)."""
    rules: list[Rule] = []
    seen: set[tuple[int, int]] = set()
    while len(rules) < n:
        gid, sid0, msg, cls, prio, proto, dport = rng.choice(_FAMILIES)
        if gid != 1:
            sid, m = sid0, msg  # preprocessor events: one sid each
        else:
            sid = sid0 + rng.randrange(0, 3000)
            m = msg + rng.choice(_VARIANTS)
        if (gid, sid) in seen:
            continue
        seen.add((gid, sid))
        rules.append(Rule(gid, sid, rng.randint(1, 12), m[:255], cls, prio, proto, dport))
    rng.shuffle(rules)
    return rules


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    """Weights of a Zipf-like law: a few rules fire most alerts."""
    return [1.0 / (k + 1) ** s for k in range(n)]


# ---- what one template should decode to -------------------------------------

@dataclass(frozen=True)
class AlertSpec:
    """The fields one template was built with (what a decoder must find)."""

    gid: int
    sid: int
    rev: int
    msg: str
    class_id: int
    priority: int
    event_id: int
    ts_sec: int
    ts_usec: int
    ip_ver: int  # 0 = no packet (NOPACKET_STRUCT)
    proto: int
    src: str | None
    dst: str | None
    sport: int  # ICMP type for ICMP / ICMPv6
    dport: int  # ICMP code for ICMP / ICMPv6
    vlan: int | None
    app_name: str
    packet: bytes | None

    @property
    def icmp(self) -> bool:
        return self.proto in (1, 58)


def random_v4(rng: random.Random, internal: bool) -> str:
    if internal:
        return rng.choice([f"10.{rng.randrange(0, 8)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                           f"192.168.{rng.randrange(0, 4)}.{rng.randrange(1, 255)}"])
    while True:
        a = ipaddress.IPv4Address(rng.getrandbits(32))
        if a.is_global and not a.is_multicast:
            return str(a)


def random_v6(rng: random.Random, internal: bool) -> str:
    if internal:
        return str(ipaddress.IPv6Address((0xFD00_1234_0000_0000 << 64) | rng.getrandbits(16)))
    return str(ipaddress.IPv6Address((0x2001_0DB8 << 96) | rng.getrandbits(64)))


def _payload(rng: random.Random, rule: Rule, room: int) -> bytes:
    if rule.proto == "tcp" and rule.dport in (80, 8080):
        body = (f"GET /{rng.choice(['index.php', 'wp-login.php', 'api/v1/status', 'update.exe'])}"
                f"?id={rng.randrange(10**6)} HTTP/1.1\r\nHost: www.example.{rng.choice(['com', 'net'])}"
                f"\r\nUser-Agent: {rng.choice(['curl/7.88.1', 'Go-http-client/1.1', 'Mozilla/5.0'])}"
                "\r\nAccept: */*\r\n\r\n").encode()
    else:
        size = min(int(rng.lognormvariate(5.0, 1.2)), 1400)
        body = rng.randbytes(size)
    return body[:room]


def alert_specs(n: int, seed: int, *, base_time: int | None = None,
                kind: str = "snort") -> list[AlertSpec]:
    """n alert specs drawn from a seeded catalog: ~75% IPv4, ~20% IPv6, ~10%
    802.1Q-tagged, ~2% packetless; sids Zipf-like; times increasing."""
    rng = random.Random(seed)
    rules = rule_catalog(rng)
    weights = zipf_weights(len(rules))
    t0 = int(time.time()) if base_time is None else base_time
    specs: list[AlertSpec] = []
    t_us = 0
    for i in range(n):
        rule = rng.choices(rules, weights)[0]
        t_us += rng.randrange(50, 20_000)
        sec, usec = t0 + t_us // 1_000_000, t_us % 1_000_000
        app = rng.choice(_APPS)[:APPID_SENT] if kind == "snort-appid" else ""
        common: dict[str, Any] = dict(gid=rule.gid, sid=rule.sid, rev=rule.rev, msg=rule.msg,
                      class_id=rule.class_id, priority=rule.priority, event_id=i + 1,
                      ts_sec=sec, ts_usec=usec, app_name=app)
        if rng.random() < 0.02:
            specs.append(AlertSpec(ip_ver=0, proto=0, src=None, dst=None, sport=0, dport=0,
                                   vlan=None, packet=None, **common))
            continue
        v6 = rule.proto != "pscan" and rng.random() < 0.22
        vlan = rng.randrange(1, 4095) if rng.random() < 0.10 else None
        inbound = rng.random() < 0.6
        mk = random_v6 if v6 else random_v4
        src, dst = mk(rng, not inbound), mk(rng, inbound)
        if rule.proto == "icmp":
            proto = 58 if v6 else 1
            if rule.dport == 3:
                sport, dport = (1, 4) if v6 else (3, rng.choice([1, 3, 13]))
            else:
                sport, dport = (128, 0) if v6 else (8, 0)
        elif rule.proto == "pscan":
            proto, sport, dport = 255, 0, 0  # sfportscan's pseudo-packet
        else:
            proto = 6 if rule.proto == "tcp" else 17
            sport, dport = rng.randrange(32768, 61000), rule.dport or rng.randrange(1, 65536)
        l2 = 14 + (4 if vlan is not None else 0)
        l34 = (40 if v6 else 20) + {6: 20, 17: 8, 1: 8, 58: 8}.get(proto, 0)
        payload = _payload(rng, rule, SNAPLEN - l2 - l34)
        build = encode.ether_ipv6 if v6 else encode.ether_ipv4
        packet = build(src, dst, proto, sport, dport, payload, vlan=vlan)
        assert len(packet) <= SNAPLEN
        specs.append(AlertSpec(ip_ver=6 if v6 else 4, proto=proto, src=src, dst=dst,
                               sport=sport if proto != 255 else 0,
                               dport=dport if proto != 255 else 0,
                               vlan=vlan, packet=packet, **common))
    return specs


def encode_spec(kind: str, spec: AlertSpec) -> bytes:
    """The datagram a `kind` sender would emit for spec."""
    variant = KINDS[kind][0]
    return encode.encode_alertpkt(
        variant, msg=spec.msg, gid=spec.gid, sid=spec.sid, rev=spec.rev,
        class_id=spec.class_id, priority=spec.priority, event_id=spec.event_id,
        event_ref=spec.event_id, ts_sec=spec.ts_sec, ts_usec=spec.ts_usec,
        app_name=spec.app_name, packet=spec.packet)


def build_templates(kind: str, n: int = 256, seed: int = 0, *,
                    base_time: int | None = None) -> tuple[np.ndarray, list[AlertSpec]]:
    """n templates of kind as one (n, length) uint8 array, and their specs."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if n < 1:
        raise ValueError("need at least one template")
    length = KINDS[kind][1]
    specs = alert_specs(n, seed, base_time=base_time, kind=kind)
    out = np.zeros((n, length), dtype=np.uint8)
    for i, spec in enumerate(specs):
        dg = encode_spec(kind, spec)
        assert len(dg) == length, (kind, len(dg))
        out[i] = np.frombuffer(dg, dtype=np.uint8)
    return out, specs



def time_offset(kind: str) -> int:
    """Offset of the event's ref_time (seconds, then microseconds) in a kind's
    datagram: the alert time every decoder reports (FORMATS.md 1.1, 2)."""
    _variant, _len, _mode, ev_off, be = KINDS[kind]
    # host order: gid sid rev class prio event_id event_ref sec usec;
    # Barnyard2 (big-endian): sensor event_id sec usec ...
    return ev_off + 4 if be else ev_off + 8


