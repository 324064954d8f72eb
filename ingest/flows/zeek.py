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

TSV records are decoded in C (csrc/zeek.c: split, checked and converted
into the record, one call per run of lines between header lines; a fuzz
target in fuzz/fuzz_zeek.c); what it leaves -- a line with a ``\\xNN``
escape or an ISO 8601 time, a separator of more than one byte -- and JSON
lines (orjson) are decoded here with the same checks, in the same order,
giving the same reasons (tests/unit/test_zeek.py holds both decoders to one
output on real files and on mutated lines and random bytes).
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
_UNSET_LEN = 0xFFFFFFFF
#: csrc/zeek.c's statuses (INGEST_ZEEK_*) as reasons
_STATUS = {1: "zeek_field_count", 2: "zeek_missing_field", 3: "zeek_bad_time", 4: "zeek_bad_address",
           5: "zeek_bad_port", 6: "zeek_bad_count", 7: "zeek_bad_proto"}
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
               origin: str = "zeek", *, native: bool = True) -> ZeekResult:
        """Decode the lines ``data[offs[i]:offs[i] + lens[i]]`` (newline
        included or not).  TSV records go through the C decoder
        (csrc/zeek.c) unless ``native`` is false; lines it leaves (escapes,
        ISO times, a separator of more than one byte) and JSON are decoded
        here, with the same checks and reasons."""
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if native and self.fmt == "tsv":
            return self._decode_native(mv, offs, lens, origin)
        rows, texts, rejected, headers, lines = self._lines(mv, offs, lens, range(len(offs)))
        recs = self._fill(rows)
        return ZeekResult(self._batch(recs, [r[11] for r in rows], origin), texts, rejected, headers, lines)

    def _lines(self, mv: Any, offs: np.ndarray, lens: np.ndarray, which: Any) -> tuple[
            list[tuple], list[tuple[str, str | None, str | None]], list[tuple[int, str, bytes]], int, list[int]]:
        """The lines ``which``, one by one in Python."""
        rows: list[tuple] = []
        texts: list[tuple[str, str | None, str | None]] = []
        rejected: list[tuple[int, str, bytes]] = []
        lines: list[int] = []
        headers = 0
        json_fmt = self.fmt == "json"
        ol, ll = offs.tolist(), lens.tolist()
        for i in which:
            o = ol[i]
            raw = bytes(mv[o:o + ll[i]]).rstrip(b"\r\n")
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
        return rows, texts, rejected, headers, lines

    def _decode_native(self, mv: Any, offs: np.ndarray, lens: np.ndarray, origin: str) -> ZeekResult:
        """TSV: runs of records between header lines in one C call each."""
        n = len(offs)
        buf = np.frombuffer(mv, dtype=np.uint8)
        o64 = np.ascontiguousarray(offs, dtype=np.uint64)
        l32 = np.ascontiguousarray(lens, dtype=np.uint32)
        first = np.zeros(n, dtype=np.uint8)
        some = l32 > 0
        first[some] = buf[o64[some].astype(np.int64)]
        marks = np.flatnonzero(some & (first == 0x23)).tolist()  # "#": header lines, read here in order
        recs: list[np.ndarray] = []
        where: list[np.ndarray] = []
        services: list[str | None] = []
        texts: list[tuple[str, str | None, str | None]] = []
        rejected: list[tuple[int, str, bytes]] = []
        left: list[int] = []  # lines for the Python decoder
        headers = 0
        a = 0
        for b in [*marks, n]:
            if b > a:
                self._run(buf, mv, o64, l32, a, b, recs, where, services, texts, rejected, left)
            if left:  # with the header as it is here, before the next header line
                rows, t, rej, _h, lines = self._lines(mv, offs, lens, left)
                recs.append(self._fill(rows))
                where.append(np.array(lines, dtype=np.int64))
                services.extend(r[11] for r in rows)
                texts.extend(t)
                rejected.extend(rej)
                left.clear()
            if b < n:
                _r, _t, rej, h, _l = self._lines(mv, offs, lens, (b,))
                headers += h
                rejected.extend(rej)
                a = b + 1
        if not recs:
            return ZeekResult(self._batch(R.empty(0), [], origin), [], sorted(rejected), headers, [])
        allrecs = np.concatenate(recs)
        lines_at = np.concatenate(where)
        order = np.argsort(lines_at, kind="stable")
        ordered = order.tolist()
        rejected.sort(key=lambda r: r[0])
        return ZeekResult(self._batch(allrecs[order], [services[j] for j in ordered], origin),
                          [texts[j] for j in ordered], rejected, headers, lines_at[order].tolist())

    def _run(self, buf: np.ndarray, mv: Any, o64: np.ndarray, l32: np.ndarray, a: int, b: int,
             recs: list, where: list, services: list, texts: list, rejected: list, left: list) -> None:
        h = self.header
        if h.fields is None or len(h.sep) != 1 or len(h.unset) > 64:
            left.extend(range(a, b))
            return
        from ..native import ffi, lib

        k = b - a
        out = R.empty(k)
        line_of = np.empty(k, dtype=np.uint32)
        text = np.empty(8 * k, dtype=np.uint32)
        status = np.empty(k, dtype=np.uint8)
        idx = np.array(h.idx, dtype=np.int32)
        offs, lens = o64[a:b], l32[a:b]
        m = lib.ingest_zeek_tsv(
            ffi.from_buffer("uint8_t[]", buf), len(buf), ffi.from_buffer("uint64_t[]", offs),
            ffi.from_buffer("uint32_t[]", lens), k, h.sep[0], h.unset, len(h.unset), len(h.fields),
            ffi.from_buffer("int32_t[]", idx), ffi.from_buffer("struct ingest_flow[]", out, require_writable=True),
            k, ffi.from_buffer("uint32_t[]", line_of, require_writable=True),
            ffi.from_buffer("uint32_t[]", text, require_writable=True),
            ffi.from_buffer("uint8_t[]", status, require_writable=True))
        if m < 0:
            raise ValueError(f"ingest_zeek_tsv: bad arguments ({m})")
        for j in np.flatnonzero((status != lib.INGEST_ZEEK_OK) & (status != lib.INGEST_ZEEK_EMPTY)).tolist():
            st = int(status[j])
            if st == lib.INGEST_ZEEK_PYTHON or st == lib.INGEST_ZEEK_HEADER:
                left.append(a + j)
            else:
                o = int(offs[j])
                rejected.append((a + j, _STATUS[st], bytes(mv[o:o + int(lens[j])]).rstrip(b"\r\n")))
        if not m:
            return
        recs.append(out[:m])
        where.append(line_of[:m].astype(np.int64) + a)
        t = text[:8 * m].tolist()
        fids = np.empty(m, dtype=np.uint64)
        for r in range(m):
            q = t[8 * r:8 * r + 8]
            uid = bytes(mv[q[0]:q[0] + q[1]]).decode("utf-8", "replace")
            fids[r] = uid_flow_id(uid)
            services.append(None if q[3] == _UNSET_LEN else bytes(mv[q[2]:q[2] + q[3]]).decode("utf-8", "replace"))
            texts.append((uid, None if q[7] == _UNSET_LEN else bytes(mv[q[6]:q[6] + q[7]]).decode("utf-8", "replace"),
                          None if q[5] == _UNSET_LEN else bytes(mv[q[4]:q[4] + q[5]]).decode("utf-8", "replace")))
        out["flow_id"][:m] = fids

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
    def _fill(rows: list[tuple]) -> np.ndarray:
        """The records of decoded lines (app_idx left at -1: :meth:`_batch`)."""
        n = len(rows)
        out = R.empty(n)
        if not n:
            return out
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
        out["flags"] = flags
        out["source"] = R.FLOW_SRC_ZEEK
        return out

    @staticmethod
    def _batch(out: np.ndarray, services: list[str | None], origin: str) -> R.FlowBatch:
        """The batch, with each record's service in its string table."""
        strings: list[str] = []
        app_at: dict[str, int] = {}
        if len(out):
            app = np.full(len(out), -1, dtype=np.int32)
            for j, sv in enumerate(services):
                if sv is not None:
                    k = app_at.get(sv)
                    if k is None:
                        k = app_at[sv] = len(strings)
                        strings.append(sv)
                    app[j] = k
            out["app_idx"] = app
        return R.FlowBatch(out, strings, origin)
