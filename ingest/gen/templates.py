"""``ingest gen``: a load generator that sends alerts the way the engines do.

The sending loop is C (csrc/gen.c, ``ingest_gen_dgram``); this module builds
realistic templates and drives it.  Each ``--kind`` is faithful to its sender
(FORMATS.md 1.1, 2, 3.2):

============  ======  =====================================================
kind          bytes   default mode
============  ======  =====================================================
snort         65864   ``sendto``: one blocking sendto per alert, flags 0
snort3        65864   ``sendto`` (Snort 3 also sets nethdr for IPv6)
snort-appid   65928   ``sendto`` (app_name: only its first 28 bytes are sent)
barnyard2     1856    ``connect``: connect once, blocking send per alert
barnyard2-32  1844    ``connect``
============  ======  =====================================================

``--mode mmsg`` batches with sendmmsg (no real sender does); ``--mode
dontwait`` drops and counts an alert when the send would block, as Suricata
live mode does.

``--kind eve-dgram`` / ``eve-stream`` send newline-terminated EVE JSON lines
(csrc/gen.c, ``ingest_gen_lines``) as Suricata's eve-log ``unix_dgram`` (one
record per datagram) / ``unix_stream`` output does: connect() once, one send
per record, MSG_DONTWAIT with a would-block record dropped and counted (live
mode); ``--offline`` blocks instead, as ``suricata -r`` does.  The records are
the lines of ``--eve-file FILE``, else of the Zeus Suricata 7.0.7 capture in
the shared data (``$INGEST_SHARED_DATA/eve/zeus-suricata-7.0.7/eve.json``)
when present, else generated: alerts with ET-style metadata, and flows.

Content: a seeded mix of IPv4 TCP/UDP/ICMP and IPv6 TCP/UDP/ICMPv6, some
802.1Q-tagged frames, a few packetless events and portscan pseudo-packets
(NO_TRANSHDR), signatures drawn Zipf-like from a catalog of realistic rules.
Templates are cycled; every datagram gets its own event id (1, 2, 3, ...)
unless ``--no-stamp``.

Example::

    ingest gen --to /var/log/snort/snort_alert --kind snort --count 100000 --rate 5000
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import encode
from ..native import ffi, lib

# kind -> (encoder variant, datagram length, default mode, event_id offset, big-endian event)
KINDS: dict[str, tuple[encode.Variant, int, str, int, bool]] = {
    "snort": ("snort", 65864, "sendto", 65828 + 20, False),
    "snort3": ("snort3", 65864, "sendto", 65828 + 20, False),
    "snort-appid": ("snort-appid", 65928, "sendto", 65828 + 20, False),
    "barnyard2": ("barnyard2", 1856, "connect", 1816 + 4, True),
    "barnyard2-32": ("barnyard2-32", 1844, "connect", 1808 + 4, True),
}
#: EVE kinds: --kind -> stream socket?
EVE_KINDS = {"eve-dgram": False, "eve-stream": True}
MODES = {
    "sendto": lib.INGEST_GEN_SENDTO,
    "connect": lib.INGEST_GEN_CONNECT,
    "mmsg": lib.INGEST_GEN_MMSG,
    "dontwait": lib.INGEST_GEN_DONTWAIT,
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


def _v4(rng: random.Random, internal: bool) -> str:
    if internal:
        return rng.choice([f"10.{rng.randrange(0, 8)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                           f"192.168.{rng.randrange(0, 4)}.{rng.randrange(1, 255)}"])
    while True:
        a = ipaddress.IPv4Address(rng.getrandbits(32))
        if a.is_global and not a.is_multicast:
            return str(a)


def _v6(rng: random.Random, internal: bool) -> str:
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
        mk = _v6 if v6 else _v4
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


# ---- driving the C loop ----------------------------------------------------

@dataclass
class SendResult:
    """What one sending run did (sent + dropped + errors = alerts attempted)."""

    sent: int
    dropped: int
    errors: int
    elapsed: float
    interrupted: bool
    timed_out: bool
    last_error: str

    @property
    def rate(self) -> float:
        """Alerts the kernel accepted per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "errors": self.errors,
                "elapsed_s": round(self.elapsed, 6), "rate": round(self.rate, 1),
                "interrupted": self.interrupted, "timed_out": self.timed_out,
                "last_error": self.last_error}


class GenError(RuntimeError):
    """The sender could not start (bad arguments, socket or connect failed)."""


class Sender:
    """One sending loop over caller-built templates.

    ``run()`` blocks in C without the GIL; ``stop()`` (from any thread) makes
    it return within ~50 ms with what it has sent so far.
    """

    def __init__(self, path: str, templates: np.ndarray, *, mode: str = "sendto",
                 stamp_offset: int | None = None, stamp_big_endian: bool = False,
                 time_offset: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if templates.ndim != 2 or templates.dtype != np.uint8 or templates.shape[0] == 0:
            raise ValueError("templates must be a non-empty (n, length) uint8 array")
        self.path = path
        self._templates = np.ascontiguousarray(templates).copy()  # the stamp writes into it
        self._c_templates = ffi.from_buffer("uint8_t[]", self._templates, require_writable=True)
        self._flags = MODES[mode] | (lib.INGEST_GEN_STAMP_BE if stamp_big_endian else 0)
        self._stamp = -1 if stamp_offset is None else stamp_offset
        # time_offset: where each alert gets its CLOCK_MONOTONIC send time
        # (seconds, microseconds) for the benchmark's latency probe
        self._time = -1 if time_offset is None else time_offset
        self._stop = ffi.new("int *")

    def stop(self) -> None:
        self._stop[0] = 1

    def run(self, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
        n, tlen = self._templates.shape
        self._stop[0] = 0
        res = ffi.new("struct ingest_gen_result *")
        rc = lib.ingest_gen_dgram(os.fsencode(self.path), self._c_templates, tlen, n, count,
                                  float(rate), float(time_limit), self._flags, self._stamp,
                                  self._time, self._stop, res)
        err = _strerror(res.last_errno)
        if rc < 0:
            what = "bad arguments" if rc == lib.INGEST_EINVAL else err
            raise GenError(f"cannot send to {self.path}: {what}")
        return SendResult(int(res.sent), int(res.dropped), int(res.errors), float(res.elapsed),
                          bool(res.interrupted), bool(res.timed_out), err)


def _strerror(code: int) -> str:
    return "" if code == 0 else f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"


def start_in_thread(sender: Sender | LineSender, count: int, *, rate: float = 0.0, time_limit: float = 0.0,
                    name: str = "ingest-gen") -> tuple[list[SendResult | BaseException], threading.Event]:
    """Start sender.run in a daemon thread; the result (or its exception)
    lands in the returned list when the event is set."""
    box: list[SendResult | BaseException] = []
    done = threading.Event()  # not Thread.join: a join cut short by Ctrl-C can return early

    def work() -> None:
        try:
            box.append(sender.run(count, rate=rate, time_limit=time_limit))
        except BaseException as e:  # handed to the caller
            box.append(e)
        finally:
            done.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    return box, done


def send(sender: Sender | LineSender, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
    """Run sender in a worker thread so Ctrl-C stops it cleanly (the main
    thread keeps handling signals and sets the stop flag)."""
    box, done = start_in_thread(sender, count, rate=rate, time_limit=time_limit)
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        sender.stop()  # the C loop sees it within ~50 ms
        while not done.wait(0.2):
            pass
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def time_offset(kind: str) -> int:
    """Offset of the event's ref_time (seconds, then microseconds) in a kind's
    datagram: the alert time every decoder reports (FORMATS.md 1.1, 2)."""
    _variant, _len, _mode, ev_off, be = KINDS[kind]
    # host order: gid sid rev class prio event_id event_ref sec usec;
    # Barnyard2 (big-endian): sensor event_id sec usec ...
    return ev_off + 4 if be else ev_off + 8


def sender_for(kind: str, path: str, templates: np.ndarray, *, mode: str | None = None,
               stamp: bool = True, time_stamp: bool = False) -> Sender:
    """A Sender with kind's default mode and event-id stamp; with time_stamp,
    each alert's time is its CLOCK_MONOTONIC send time (latency probe)."""
    _variant, _len, default_mode, ev_off, be = KINDS[kind]
    return Sender(path, templates, mode=mode or default_mode,
                  stamp_offset=ev_off if stamp else None, stamp_big_endian=be,
                  time_offset=time_offset(kind) if time_stamp else None)


# ---- EVE records ----------------------------------------------------------

def _shared_eve() -> str | None:
    """The Zeus Suricata 7.0.7 eve.json from the shared data, if present."""
    root = os.environ.get("INGEST_SHARED_DATA") or "/work/shared/data"
    path = os.path.join(root, "eve", "zeus-suricata-7.0.7", "eve.json")
    return path if os.path.isfile(path) else None


def _eve_ts(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    frac = int((t % 1) * 1_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", lt)
            + f".{frac:06d}{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}")


def eve_records(n: int, seed: int = 1, *, base_time: float | None = None) -> list[bytes]:
    """n generated EVE lines (newline-terminated): ~85% alerts with ET-style
    metadata (Suricata 7 layout, ~0.8-1.5 KB), the rest flow records."""
    rng = random.Random(seed)
    rules = [r for r in rule_catalog(rng, 300) if r.gid == 1]
    weights = zipf_weights(len(rules))
    t = time.time() if base_time is None else base_time
    out: list[bytes] = []
    for _ in range(n):
        t += rng.randrange(50, 20_000) / 1e6
        rule = rng.choices(rules, weights)[0]
        v6 = rng.random() < 0.2
        mk = _v6 if v6 else _v4
        inbound = rng.random() < 0.6
        src, dst = mk(rng, not inbound), mk(rng, inbound)
        proto = {"tcp": "TCP", "udp": "UDP", "icmp": "IPv6-ICMP" if v6 else "ICMP"}.get(
            rule.proto, "TCP")
        flow_id = rng.getrandbits(50)
        ev: dict[str, Any] = {"timestamp": _eve_ts(t), "flow_id": flow_id,
                              "in_iface": "eth0", "src_ip": src}
        icmp = proto.endswith("ICMP")
        if not icmp:
            ev["src_port"] = rng.randrange(32768, 61000)
        ev["dest_ip"] = dst
        if not icmp:
            ev["dest_port"] = rule.dport or rng.randrange(1, 65536)
        ev["proto"] = proto
        start = _eve_ts(t - rng.random() * 30)
        flow = {"pkts_toserver": rng.randrange(1, 200), "pkts_toclient": rng.randrange(0, 200),
                "bytes_toserver": rng.randrange(60, 200_000),
                "bytes_toclient": rng.randrange(0, 2_000_000), "start": start}
        if rng.random() < 0.15:
            ev = {"timestamp": ev["timestamp"], "flow_id": flow_id, "event_type": "flow",
                  **{k: v for k, v in ev.items() if k not in ("timestamp", "flow_id")},
                  "app_proto": "failed" if icmp else "http",
                  "flow": {**flow, "end": _eve_ts(t), "age": rng.randrange(0, 120),
                           "state": "closed", "reason": "timeout", "alerted": True},
                  "tcp": {"tcp_flags": "1b", "syn": True, "fin": True, "psh": True,
                          "ack": True, "state": "closed"}}
        else:
            created = f"20{rng.randrange(10, 24)}_{rng.randrange(1, 13):02d}_{rng.randrange(1, 29):02d}"
            meta = {"affected_product": [rng.choice(["Windows_XP_Vista_7_8_10_Server_32_64_Bit",
                                                     "Apache_HTTP_server", "Linux", "Any"])],
                    "attack_target": [rng.choice(["Client_Endpoint", "Server", "Web_Server"])],
                    "created_at": [created], "deployment": ["Perimeter"],
                    "former_category": [rule.msg.split()[1] if " " in rule.msg else "INFO"],
                    "signature_severity": [rng.choice(["Major", "Minor", "Informational"])],
                    "updated_at": [created]}
            if rng.random() < 0.3:
                meta["mitre_tactic_id"] = ["TA0011"]
                meta["mitre_tactic_name"] = ["Command_And_Control"]
                meta["mitre_technique_id"] = ["T1071"]
                meta["mitre_technique_name"] = ["Application_Layer_Protocol"]
            ev = {"timestamp": ev["timestamp"], "flow_id": flow_id, "event_type": "alert",
                  **{k: v for k, v in ev.items() if k not in ("timestamp", "flow_id")},
                  "pkt_src": "wire/pcap",
                  "alert": {"action": "allowed", "gid": 1, "signature_id": rule.sid,
                            "rev": rule.rev, "signature": rule.msg,
                            "category": "Potentially Bad Traffic", "severity": rule.priority,
                            "metadata": meta},
                  "direction": "to_server", "flow": flow}
            if rule.dport in (80, 8080):
                ev["app_proto"] = "http"
                ev["http"] = {"hostname": f"www.example{rng.randrange(100)}.com",
                              "url": f"/{rng.choice(['index.php', 'wp-login.php', 'update.exe'])}"
                                     f"?id={rng.randrange(10**6)}",
                              "http_user_agent": rng.choice(["curl/7.88.1", "Go-http-client/1.1",
                                                             "Mozilla/5.0 (Windows NT 10.0)"]),
                              "http_method": "GET", "protocol": "HTTP/1.1",
                              "status": 200, "length": rng.randrange(0, 100_000)}
        out.append(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
    return out


def load_eve_records(path: str | None = None, n: int = 256, seed: int = 1) -> tuple[list[bytes], str]:
    """EVE lines to send, and where they came from: the lines of path, else
    of the shared Zeus capture when present, else n generated ones."""
    src = path or _shared_eve()
    if src is None:
        return eve_records(n, seed), "generated"
    with open(src, "rb") as f:
        recs = [ln if ln.endswith(b"\n") else ln + b"\n" for ln in f if ln.strip()]
    if not recs:
        raise ValueError(f"{src}: no EVE lines")
    return recs, src


class LineSender:
    """Suricata's eve-log unix_dgram / unix_stream sending loop (C) over
    caller-given newline-terminated records; ``stop()`` as for Sender."""

    def __init__(self, path: str, records: list[bytes], *, stream: bool,
                 offline: bool = False) -> None:
        if not records or any(not r for r in records):
            raise ValueError("need at least one non-empty record")
        self.path = path
        self._data = b"".join(records)
        if len(self._data) >= 1 << 32:
            raise ValueError("records too large")
        self._ends = np.cumsum([len(r) for r in records], dtype=np.uint64).astype(np.uint32)
        self._c_data = ffi.from_buffer("uint8_t[]", self._data)
        self._c_ends = ffi.from_buffer("uint32_t[]", self._ends)
        self._flags = ((lib.INGEST_GEN_CONNECT if offline else lib.INGEST_GEN_DONTWAIT)
                       | (lib.INGEST_GEN_STREAM if stream else 0))
        self._stop = ffi.new("int *")

    def stop(self) -> None:
        self._stop[0] = 1

    def run(self, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
        self._stop[0] = 0
        res = ffi.new("struct ingest_gen_result *")
        rc = lib.ingest_gen_lines(os.fsencode(self.path), self._c_data, self._c_ends,
                                  len(self._ends), count, float(rate), float(time_limit),
                                  self._flags, self._stop, res)
        err = _strerror(res.last_errno)
        if rc < 0:
            what = "bad arguments" if rc == lib.INGEST_EINVAL else err
            raise GenError(f"cannot send to {self.path}: {what}")
        return SendResult(int(res.sent), int(res.dropped), int(res.errors), float(res.elapsed),
                          bool(res.interrupted), bool(res.timed_out), err)


# ---- command line ----------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gen", help="send generated alerts to a socket, as Snort/Barnyard2 do",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--to", required=True, metavar="PATH", help="unix socket to send to")
    p.add_argument("--kind", choices=(*KINDS, *EVE_KINDS, "unified2"), default="snort")
    p.add_argument("--mode", choices=tuple(MODES),
                   help="send mode (default: the kind's real sender; see ingest.gen; "
                        "not for eve-*)")
    p.add_argument("--offline", action="store_true",
                   help="eve-*: blocking sends, as suricata -r (default: live mode, "
                        "a send that would block is dropped and counted)")
    p.add_argument("--eve-file", metavar="FILE",
                   help="eve-*: send the lines of this eve.json (default: the shared Zeus "
                        "capture if present, else generated records)")
    p.add_argument("--count", type=int, default=10000, metavar="N",
                   help="alerts to send (0 = until --duration or Ctrl-C)")
    p.add_argument("--rate", type=float, default=0.0, metavar="R",
                   help="alerts per second (0 = as fast as possible)")
    p.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this long (0 = no limit)")
    p.add_argument("--seed", type=int, default=1, metavar="S")
    p.add_argument("--templates", type=int, default=256, metavar="N",
                   help="distinct alerts to cycle through")
    p.add_argument("--no-stamp", action="store_true",
                   help="send templates unchanged (repeating event ids)")
    p.add_argument("--rotate-events", type=int, default=0, metavar="N",
                   help="unified2: start a new spool file after N events (default: by size)")
    p.add_argument("--rotate-bytes", type=int, default=128 << 20, metavar="B",
                   help="unified2: start a new spool file past B bytes (Snort's limit; 128 MiB)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)
    return p


def _run_unified2(args: argparse.Namespace) -> int:
    """--kind unified2: --to is DIR/PREFIX; files PREFIX.<unix-time> are
    written and rotated like Snort's spool."""
    from .unified2 import write_spool

    specs = alert_specs(args.templates, args.seed, kind="snort")
    try:
        res = write_spool(args.to, specs, args.count or (1 << 62), rate=args.rate,
                          rotate_events=args.rotate_events, rotate_bytes=args.rotate_bytes,
                          time_limit=args.duration)
    except (OSError, ValueError) as e:
        print(f"ingest gen: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps({"kind": "unified2", "to": args.to, **res.as_dict()}))
    else:
        print(f"ingest gen: unified2 -> {args.to}.*: wrote {res.events} events, {res.packets} "
              f"packets, {res.bytes} bytes in {len(res.files)} file(s), {res.elapsed:.3f} s")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.count < 0 or args.rate < 0 or args.duration < 0 or args.templates < 1:
        print("ingest gen: --count, --rate, --duration must be >= 0, --templates >= 1",
              file=sys.stderr)
        return 2
    if args.count == 0 and args.duration == 0:
        print("ingest gen: sending until Ctrl-C (give --count or --duration to bound it)",
              file=sys.stderr)
    if args.kind in EVE_KINDS:
        return _run_eve(args)
    if args.kind == "unified2":
        return _run_unified2(args)
    if args.offline or args.eve_file:
        print("ingest gen: --offline and --eve-file are for --kind eve-dgram/eve-stream",
              file=sys.stderr)
        return 2
    templates, _specs = build_templates(args.kind, args.templates, args.seed)
    try:
        sender = sender_for(args.kind, args.to, templates, mode=args.mode,
                            stamp=not args.no_stamp)
        res = send(sender, args.count, rate=args.rate, time_limit=args.duration)
    except (GenError, ValueError) as e:
        print(f"ingest gen: {e}", file=sys.stderr)
        return 1
    mode = args.mode or KINDS[args.kind][2]
    if args.json:
        print(json.dumps({"kind": args.kind, "mode": mode, "to": args.to,
                          "bytes": KINDS[args.kind][1], **res.as_dict()}))
    else:
        stop = " (interrupted)" if res.interrupted else " (time limit)" if res.timed_out else ""
        print(f"ingest gen: {args.kind}/{mode} -> {args.to}: sent {res.sent}, dropped "
              f"{res.dropped}, errors {res.errors} in {res.elapsed:.3f} s "
              f"({res.rate:,.0f} alerts/s){stop}"
              + (f"; last error {res.last_error}" if res.errors else ""))
    return 0 if res.errors == 0 and not res.interrupted else 1


def _run_eve(args: argparse.Namespace) -> int:
    if args.mode is not None:
        print("ingest gen: --mode is not for eve-*; live mode (dontwait) is the default, "
              "--offline blocks", file=sys.stderr)
        return 2
    try:
        records, source = load_eve_records(args.eve_file, args.templates, args.seed)
        sender = LineSender(args.to, records, stream=EVE_KINDS[args.kind], offline=args.offline)
        res = send(sender, args.count, rate=args.rate, time_limit=args.duration)
    except (GenError, ValueError, OSError) as e:
        print(f"ingest gen: {e}", file=sys.stderr)
        return 1
    mode = "offline" if args.offline else "live"
    if args.json:
        print(json.dumps({"kind": args.kind, "mode": mode, "to": args.to, "records": source,
                          **res.as_dict()}))
    else:
        stop = " (interrupted)" if res.interrupted else " (time limit)" if res.timed_out else ""
        print(f"ingest gen: {args.kind}/{mode} ({source}) -> {args.to}: sent {res.sent}, "
              f"dropped {res.dropped}, errors {res.errors} in {res.elapsed:.3f} s "
              f"({res.rate:,.0f} records/s){stop}"
              + (f"; last error {res.last_error}" if res.errors else ""))
    return 0 if res.errors == 0 and not res.interrupted else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest.gen``: the same as ``ingest gen``."""
    parser = argparse.ArgumentParser(prog="ingest")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gen", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
