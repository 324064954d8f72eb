"""Zeek ``conn.log`` lines into canonical flow records.

Two formats, told apart per file by its first byte (:func:`detect`):

* **TSV** (Zeek's default ASCII writer): header lines ``#separator \\x09``,
  ``#set_separator``, ``#empty_field`` (``(empty)``), ``#unset_field``
  (``-``), ``#path``, ``#open``, ``#fields``, ``#types``, and ``#close`` at
  the end.  Records are split on the separator and read by the names of
  ``#fields``; a header met again (a new ``#fields``) applies from there on.
* **JSON** (``LogAscii::use_json=T``): one object per line, unset fields
  absent; ``ts`` a number of seconds or an ISO 8601 text
  (``LogAscii::json_timestamps``).

The mapping (README "Zeek conn.log"):

=====================================  ===========================================
conn.log                               canonical record / ``flows`` column
=====================================  ===========================================
``uid``                                ``uid`` (text) and ``flow_id`` = the first
                                       8 bytes of BLAKE2b(uid) (signed 64-bit)
``ts``                                 ``start_us``
``ts + duration`` (unset: ``ts``)      ``end_us``
``id.orig_h`` / ``id.orig_p``          ``src_ip`` / ``src_port``
``id.resp_h`` / ``id.resp_p``          ``dest_ip`` / ``dest_port``
``proto`` tcp / udp / icmp             ``ip_proto`` 6 / 17 / 1 (58 over IPv6);
                                       ICMP: the ports are type / code
                                       (``icmp_type`` / ``icmp_code``)
``orig_pkts`` / ``resp_pkts``          ``pkts_toserver`` / ``pkts_toclient``
``orig_ip_bytes`` / ``resp_ip_bytes``  ``bytes_toserver`` / ``bytes_toclient``
                                       (IP bytes, NetFlow's meaning; the payload
                                       ``orig_bytes`` / ``resp_bytes`` are not kept)
``service``                            ``app_proto``
``conn_state``                         ``state``
``history``                            ``history``
``vlan``                               ``vlan`` (``inner_vlan`` is not kept: the
                                       record has one VLAN, the outer one)
=====================================  ===========================================

A line that cannot be a record is rejected with a reason
(:data:`REASONS`), the others of its batch are kept.

Decoded in Python (orjson, or one ``split`` per TSV line, then per-field
checks; the record built column-wise with numpy), not in C as the packet
and alert decoders are: conn.log carries one line per *connection*, not
per packet or alert (its measured rate: BENCHMARKS.md "Zeek conn.log";
a C decoder is the way to more).  Nothing here can overrun a buffer;
tests/unit/test_zeek.py feeds it mutated real lines and random bytes
(hypothesis) in place of a fuzz target.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..eve import parse_ts
from . import record as R

#: reasons a line is rejected (counted ``malformed.<reason>``)
REASONS = ("zeek_not_json", "zeek_field_count", "zeek_no_header", "zeek_bad_time",
           "zeek_bad_address", "zeek_bad_port", "zeek_bad_count", "zeek_missing_field",
           "zeek_bad_proto")

_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}
_NEEDED = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
#: the fields read, in the order ZeekConnDecoder._values takes them
_READ = ("ts", "duration", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
         "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "vlan", "service", "conn_state",
         "history")
_NEEDED_AT = tuple(_READ.index(k) for k in _NEEDED)
_V4_PREFIX = b"\0" * 10 + b"\xff\xff"
_U64 = (1 << 64) - 1
_I63 = 1 << 63


class _Bad(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def detect(head: bytes) -> str | None:
    """``"json"``, ``"tsv"`` or None (neither) from a file's first bytes."""
    if head.startswith(b"{"):
        return "json"
    if head.startswith(b"#separator"):
        return "tsv"
    return None


def uid_flow_id(uid: str) -> int:
    """The ``flow_id`` of a Zeek uid (unsigned 64-bit; the store keeps it signed)."""
    return int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8).digest(), "little")


def _unescape(raw: bytes) -> bytes:
    r"""Zeek's ``\xNN`` escapes (the separator, non-printable bytes)."""
    if b"\\x" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        if raw[i] == 0x5C and i + 3 < n and raw[i + 1] == 0x78:
            try:
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return bytes(out)


@dataclass
class TsvHeader:
    """What the ``#`` lines of a TSV file said so far."""

    sep: bytes = b"\t"
    unset: bytes = b"-"
    empty: bytes = b"(empty)"
    fields: list[str] | None = None
    #: per name of _READ, its column in a record (-1: not in #fields)
    idx: tuple[int, ...] = ()

    def line(self, raw: bytes) -> None:
        """Take one header line (``#...``, without its newline)."""
        if raw.startswith(b"#separator"):
            val = raw[len(b"#separator"):].strip(b" ")
            self.sep = _unescape(val) or b"\t"
            return
        name, _, val = raw[1:].partition(self.sep)
        if name == b"unset_field":
            self.unset = val
        elif name == b"empty_field":
            self.empty = val
        elif name == b"fields":
            self.fields = [f.decode("utf-8", "replace") for f in val.split(self.sep)]
            at = {f: i for i, f in enumerate(self.fields)}
            self.idx = tuple(at.get(name, -1) for name in _READ)


def read_header(head: bytes) -> TsvHeader:
    """The header of a TSV file from its first bytes (its ``#`` lines)."""
    h = TsvHeader()
    for line in head.split(b"\n"):
        if not line.startswith(b"#"):
            break
        h.line(line.rstrip(b"\r"))
    return h


def _addr(text: str) -> tuple[bytes, int]:
    try:
        return _V4_PREFIX + socket.inet_pton(socket.AF_INET, text), 4
    except (OSError, ValueError, TypeError):
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, text), 6
    except (OSError, ValueError, TypeError):
        raise _Bad("zeek_bad_address") from None


def _digits(v: str) -> bool:
    """ASCII digits only (str.isdigit also takes '²', which int() refuses)."""
    return v.isascii() and v.isdigit()


def _port(v: Any) -> int:
    if type(v) is str:
        if not _digits(v):
            raise _Bad("zeek_bad_port")
        v = int(v)
    if type(v) is not int or not 0 <= v <= 65535:
        raise _Bad("zeek_bad_port")
    return v


def _count(v: Any) -> int | None:
    if v is None:
        return None
    if type(v) is str:
        if not _digits(v):
            raise _Bad("zeek_bad_count")
        v = int(v)
    if type(v) is not int or not 0 <= v < _I63:
        raise _Bad("zeek_bad_count")
    return v


def _time_us(v: Any) -> int:
    """A Zeek ``time`` (seconds, with up to 6 decimals; or ISO 8601 text) in µs."""
    if type(v) is str:
        if v and (v[0].isdigit() or v[0] == "-"):
            sec, dot, frac = v.partition(".")
            neg = sec.startswith("-")
            whole = sec[1:] if neg else sec
            if _digits(whole) and (not dot or (_digits(frac) and len(frac) <= 9)) and len(sec) <= 12:
                us = int(whole) * 1_000_000 + (int(frac[:6].ljust(6, "0")) if dot else 0)
                return -us if neg else us
            if "T" in v:
                t = parse_ts(v)
                if t is not None:
                    return t
        raise _Bad("zeek_bad_time")
    if type(v) in (int, float) and -1e12 < v < 1e12:
        return round(v * 1_000_000)
    raise _Bad("zeek_bad_time")


def _interval_us(v: Any) -> int | None:
    if v is None:
        return None
    us = _time_us(v)
    if us < 0:
        raise _Bad("zeek_bad_time")
    return us


@dataclass
class ZeekResult:
    """A batch of decoded lines: flow records, their texts, and the rejects."""

    batch: R.FlowBatch
    #: per record: (uid, history, conn_state), None where unset
    texts: list[tuple[str, str | None, str | None]]
    #: (line index, reason, raw line) per rejected line
    rejected: list[tuple[int, str, bytes]] = field(default_factory=list)
    #: header / comment lines (TSV ``#...``)
    headers: int = 0
    #: line index of each record
    lines: list[int] = field(default_factory=list)


class ZeekConnDecoder:
    """Lines of one conn.log file (its format and TSV header are state)."""

    def __init__(self, fmt: str | None, header: TsvHeader | None = None) -> None:
        self.fmt = fmt
        self.header = header if header is not None else TsvHeader()

    def decode(self, data: bytes | memoryview, offs: np.ndarray, lens: np.ndarray,
               origin: str = "zeek") -> ZeekResult:
        """Decode the lines ``data[offs[i]:offs[i] + lens[i]]`` (newline included or not)."""
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        rows: list[tuple] = []
        texts: list[tuple[str, str | None, str | None]] = []
        rejected: list[tuple[int, str, bytes]] = []
        lines: list[int] = []
        headers = 0
        json_fmt = self.fmt == "json"
        for i, (o, n) in enumerate(zip(offs.tolist(), lens.tolist(), strict=True)):
            raw = bytes(mv[o:o + n]).rstrip(b"\r\n")
            if not raw:
                continue
            try:
                if json_fmt:
                    rec = self._json(raw)
                elif raw[:1] == b"#":
                    if self.fmt is None and raw.startswith(b"#separator"):
                        self.fmt = "tsv"
                    self.header.line(raw)
                    headers += 1
                    continue
                elif self.fmt == "tsv":
                    rec = self._tsv(raw)
                elif raw[:1] == b"{":  # a file whose first line was cut or lost: still JSON
                    rec = self._json(raw)
                else:
                    raise _Bad("zeek_no_header")
            except _Bad as e:
                rejected.append((i, e.reason, raw))
                continue
            except Exception:  # a bug must cost the line that triggers it, never the reader
                rejected.append((i, "internal_error", raw))
                continue
            rows.append(rec[0])
            texts.append(rec[1])
            lines.append(i)
        return ZeekResult(self._records(rows, origin), texts, rejected, headers, lines)

    # --- one line -> (record values, texts) -------------------------------
    def _json(self, raw: bytes) -> tuple[tuple, tuple[str, str | None, str | None]]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Bad("zeek_not_json") from None
        if type(obj) is not dict:
            raise _Bad("zeek_not_json")
        g = obj.get
        for k in _NEEDED:
            if g(k) is None:
                raise _Bad("zeek_missing_field")
        uid, proto = g("uid"), g("proto")
        if type(uid) is not str or type(proto) is not str:
            raise _Bad("zeek_missing_field")
        src, dst = g("id.orig_h"), g("id.resp_h")
        if type(src) is not str or type(dst) is not str:
            raise _Bad("zeek_bad_address")
        service, state, history = g("service"), g("conn_state"), g("history")
        return self._values(g("ts"), g("duration"), uid, src, g("id.orig_p"), dst, g("id.resp_p"), proto,
                            g("orig_pkts"), g("resp_pkts"), g("orig_ip_bytes"), g("resp_ip_bytes"),
                            g("vlan"),
                            service if type(service) is str else None,
                            state if type(state) is str else None,
                            history if type(history) is str else None)

    def _tsv(self, raw: bytes) -> tuple[tuple, tuple[str, str | None, str | None]]:
        h = self.header
        if h.fields is None:
            raise _Bad("zeek_no_header")
        vals = raw.split(h.sep)
        if len(vals) != len(h.fields):
            raise _Bad("zeek_field_count")
        unset = h.unset
        g = [None if j < 0 or (v := vals[j]) == unset else v for j in h.idx]
        for k in _NEEDED_AT:
            if g[k] is None:
                raise _Bad("zeek_missing_field")
        esc = b"\\" in raw
        t = [None if v is None else (_unescape(v) if esc else v).decode("utf-8", "replace") for v in g]
        return self._values(*t)  # type: ignore[arg-type]

    @staticmethod
    def _values(ts: Any, duration: Any, uid: str, src: Any, sport: Any, dst: Any, dport: Any, proto: str,
                opkts: Any, rpkts: Any, obytes: Any, rbytes: Any, vlan: Any, service: str | None,
                state: str | None, history: str | None) -> tuple[tuple, tuple[str, str | None, str | None]]:
        start = _time_us(ts)
        dur = _interval_us(duration)
        a, va = _addr(src)
        b, vb = _addr(dst)
        if va != vb:
            raise _Bad("zeek_bad_address")
        sp, dp = _port(sport), _port(dport)
        pnum = _PROTO.get(proto)
        if pnum is None and proto != "unknown_transport":
            raise _Bad("zeek_bad_proto")
        if pnum == 1 and va == 6:
            pnum = 58  # Zeek calls ICMPv6 "icmp" too
        counts = (_count(opkts), _count(rpkts), _count(obytes), _count(rbytes))
        v = _count(vlan)
        if v is not None and v > 4095:
            raise _Bad("zeek_bad_count")
        end = start + dur if dur is not None else start
        return ((start, end, uid_flow_id(uid), a, b, va, sp, dp, pnum or 0, counts, v, service),
                (uid, history, state))

    @staticmethod
    def _records(rows: list[tuple], origin: str) -> R.FlowBatch:
        n = len(rows)
        out = R.empty(n)
        strings: list[str] = []
        if not n:
            return R.FlowBatch(out, strings, origin)
        app_at: dict[str, int] = {}
        cols = list(zip(*rows, strict=True))
        out["start_us"] = cols[0]
        out["end_us"] = cols[1]
        out["flow_id"] = np.array(cols[2], dtype=np.uint64)
        out["src_addr"] = np.frombuffer(b"".join(cols[3]), dtype="V16")
        out["dst_addr"] = np.frombuffer(b"".join(cols[4]), dtype="V16")
        out["ip_ver"] = cols[5]
        out["src_port"] = cols[6]
        out["dst_port"] = cols[7]
        proto = np.array(cols[8], dtype=np.uint8)
        out["proto"] = proto
        flags = np.full(n, R.FF_ADDRS, dtype=np.uint8)
        icmp = (proto == 1) | (proto == 58)
        ported = (proto == 6) | (proto == 17)
        flags[icmp] |= R.FF_ICMP
        flags[ported] |= R.FF_PORTS
        opk, rpk, oby, rby = (np.array([c[k] if c[k] is not None else -1 for c in cols[9]], dtype=np.int64)
                              for k in range(4))
        out["pkts"] = np.maximum(opk, 0)
        out["bytes"] = np.maximum(oby, 0)
        out["pkts_rev"] = np.maximum(rpk, 0)
        out["bytes_rev"] = np.maximum(rby, 0)
        flags[(rpk >= 0) & (rby >= 0)] |= R.FF_BIFLOW
        vl = np.array([-1 if v is None else v for v in cols[10]], dtype=np.int32)
        out["vlan"] = np.maximum(vl, 0)
        flags[vl >= 0] |= R.FF_VLAN
        app = np.full(n, -1, dtype=np.int32)
        for j, s in enumerate(cols[11]):
            if s is not None:
                k = app_at.get(s)
                if k is None:
                    k = app_at[s] = len(strings)
                    strings.append(s)
                app[j] = k
        out["app_idx"] = app
        out["flags"] = flags
        out["source"] = R.FLOW_SRC_ZEEK
        return R.FlowBatch(out, strings, origin)
