"""Suricata EVE JSON: typed, thin wrapper over the C batch decoder (csrc/eve.c).

A batch of records (datagrams in recvmmsg slots, or lines in a buffer) is
validated and decoded in one C call.  Alerts become canonical alerts; only
the fields the canonical alert needs are extracted, and the record's original
bytes are kept verbatim (``AlertBatch.raw``) for lossless JSON output.
Other event types ride along as an :class:`~ingest.batch.EventBatch`:
their original JSON for JSON sinks, plus flow rows for the store.

Example::

    from ingest.eve import decode_lines
    res = decode_lines(open("eve.json", "rb").read())
    res.batch.alerts["sid"], res.batch.events.count, res.rejected
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from . import batch as B
from ._native import ffi, lib
from .flows import record as _R
from .strings import scrub

_log = logging.getLogger(__name__)

#: per-record outcome names, indexed by the C status (INGEST_EVE_*)
REASONS = (
    "alert",
    "flow",
    "netflow",
    "stats",
    "other",
    "filtered",
    "empty",  # blank line: ignored (counted, nothing to keep)
    "invalid_json",
    "not_object",
    "no_event_type",
    "bad_timestamp",
    "bad_alert",
    "truncated",
)
FIRST_REJECT = lib.INGEST_EVE_FIRST_REJECT
EMPTY = lib.INGEST_EVE_EMPTY
assert len(REASONS) == lib.INGEST_EVE_NREASONS

REC_DTYPE = np.dtype(
    [("off", "<u8"), ("len", "<u4"), ("etype_off", "<u4"), ("etype_len", "<u4"),
     ("status", "u1"), ("flags", "u1"), ("reserved", "u1", (2,))],
    align=True,
)
#: REC_DTYPE flags: a raw CR/LF between tokens (the record is flattened to one line on output)
REC_NEWLINE = lib.INGEST_EVE_REC_NEWLINE
EXT_DTYPE = np.dtype(
    [("sig_hash", "<u8"), ("cat_hash", "<u8"), ("rec", "<u4"), ("sig_off", "<u4"),
     ("sig_len", "<u4"), ("cat_off", "<u4"), ("cat_len", "<u4"), ("has_sig", "u1"),
     ("sig_esc", "u1"), ("has_cat", "u1"), ("cat_esc", "u1")],
    align=True,
)

#: mirrors struct ingest_eve_wire: where a rendered alert's app_name and references are
WIRE_DTYPE = np.dtype(
    [("app_hash", "<u8"), ("refs_hash", "<u8"),
     ("app_off", "<u4"), ("app_len", "<u4"), ("refs_off", "<u4"), ("refs_len", "<u4"),
     ("has_app", "u1"), ("app_esc", "u1"), ("has_refs", "u1"), ("reserved", "u1")],
    align=True,
)

#: columns of a flow row (EventBatch.flows), in the store's ``flows`` table order
FLOW_COLUMNS = _R.EVE_COLUMNS
#: what :func:`flow_row` returns: FLOW_COLUMNS, then the canonical flow
#: record's columns (ingest.flows.record.STORE_COLUMNS)
FLOW_ROW_COLUMNS = _R.ROW_COLUMNS

#: Suricata writes every record starting with this; a torn stream line is
#: resynchronised at its next occurrence (see :meth:`EveDecoder.decode`)
RECORD_START = b'{"timestamp":'


#: one output cell per thread for parse_ts (ffi.new per call cost more than the parse)
_ts_cell = threading.local()


def parse_ts(text: str | bytes) -> int | None:
    """A Suricata timestamp as microseconds since the epoch (UTC), or None."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        out = _ts_cell.out
    except AttributeError:
        out = _ts_cell.out = ffi.new("int64_t *")
    return int(out[0]) if lib.ingest_eve_parse_ts(raw, len(raw), out) == 0 else None


# Text that is valid JSON but not valid Unicode (a lone surrogate escape):
# JSON outputs keep the record byte for byte, every decoded str (store
# columns, signature and category texts, Suricata's counters) gets one U+FFFD
# per lone surrogate (ingest.strings.scrub), so no sink is ever handed a str
# it cannot encode.


def _clean(obj: Any) -> Any:
    """scrub() every str of a decoded JSON value (keys too)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


_I64 = 1 << 63


def _signed(v: Any) -> int | None:
    """flow_id as SQLite's signed 64-bit integer (same bits as ALERT flow_id.view(int64))."""
    if type(v) is not int or v < 0 or v >= 1 << 64:
        return None
    return v - (1 << 64) if v >= _I64 else v


#: the ``exporter.source`` of a canonical flow record's JSON line (ingest.flows.record.json_lines)
_RECORD_SOURCES = frozenset(v for k, v in _R.FLOW_SOURCE_NAMES.items() if k != _R.FLOW_SRC_EVE)


def flow_row(ev: dict[str, Any]) -> tuple | None:
    """One ``flows`` row from a decoded flow/netflow event (None without
    flow_id, unless it is a canonical flow record's line: NetFlow/IPFIX or
    Zeek flows another ingest rendered, with their ``exporter`` member).

    Every value is None, an int in SQLite's signed 64-bit range or a str, so
    whatever a sender put in a member (an object, a float, 1e400, 2**64), the
    store can take the row: a TEXT column gets a JSON string or NULL, an
    INTEGER column a JSON integer it can hold or NULL.  (Checked inline: this
    runs once per flow event.)"""
    fid = _signed(ev.get("flow_id"))
    origin = ev.get("exporter")
    record = None  # a canonical record's line (ingest.flows.record.json_lines): its exporter member
    if isinstance(origin, dict) and origin.get("source") in _RECORD_SOURCES:
        record = origin
    elif fid is None:
        return None
    et = str(ev.get("event_type"))
    sub = ev.get(et)
    f: dict[str, Any] = sub if isinstance(sub, dict) else {}
    g = ev.get
    h = f.get
    if et == "netflow":
        ps, pc, bs, bc = h("pkts"), None, h("bytes"), None
    else:
        ps, pc, bs, bc = h("pkts_toserver"), h("pkts_toclient"), h("bytes_toserver"), h("bytes_toclient")
    sp, dp, proto = g("src_port"), g("dest_port"), g("proto")
    src, dst, app = g("src_ip"), g("dest_ip"), g("app_proto")
    start, end, state, reason, alerted = h("start"), h("end"), h("state"), h("reason"), h("alerted")
    S, N = str, int  # locals: isinstance against them is the cheapest check in CPython 3.11
    if isinstance(proto, N) and 0 <= proto <= 255:
        proto = str(proto)  # Suricata writes the IANA name, or the number as text
    lo, hi = -_I64, _I64
    # the canonical record's columns (ingest.flows.record.STORE_COLUMNS)
    ip_proto = _R.proto_number(proto) if isinstance(proto, S) else None
    ip_ver = (6 if ":" in src else 4) if isinstance(src, S) and src else None
    it, ic = g("icmp_type"), g("icmp_code")
    vl = g("vlan")
    vlan = vl[0] if isinstance(vl, list) and vl else None
    tcp = g("tcp")
    tf = tr = None
    if isinstance(tcp, dict):
        tf = _hex8(tcp.get("tcp_flags_ts")) if et == "flow" else _hex8(tcp.get("tcp_flags"))
        tr = _hex8(tcp.get("tcp_flags_tc")) if et == "flow" else None
        if tf is None and et == "flow":
            tf = _hex8(tcp.get("tcp_flags"))
    row = (
        fid, et,
        src if isinstance(src, S) else None,
        sp if isinstance(sp, N) and lo <= sp < hi else None,
        dst if isinstance(dst, S) else None,
        dp if isinstance(dp, N) and lo <= dp < hi else None,
        proto if isinstance(proto, S) else None,
        app if isinstance(app, S) else None,
        start if isinstance(start, S) else None,
        end if isinstance(end, S) else None,
        parse_ts(start) if isinstance(start, S) else None,
        parse_ts(end) if isinstance(end, S) else None,
        ps if isinstance(ps, N) and lo <= ps < hi else None,
        pc if isinstance(pc, N) and lo <= pc < hi else None,
        bs if isinstance(bs, N) and lo <= bs < hi else None,
        bc if isinstance(bc, N) and lo <= bc < hi else None,
        state if isinstance(state, S) else None,
        reason if isinstance(reason, S) else None,
        int(alerted) if isinstance(alerted, bool) else None,
        "eve", ip_proto, ip_ver,
        it if isinstance(it, N) and 0 <= it <= 255 else None,
        ic if isinstance(ic, N) and 0 <= ic <= 255 else None,
        vlan if isinstance(vlan, N) and 0 <= vlan <= 4095 else None,
        tf, tr,
        None, None, None,  # exporter, obs_domain, sampling: NetFlow/IPFIX only
        None, None,  # uid, history: Zeek only
    )
    if record is None:
        return row
    # a flow record another ingest rendered (NetFlow/IPFIX, Zeek; read back by a
    # collector): its source and exporter, Zeek's uid and history, as its store row has them
    exp, dom, smp = record.get("exporter"), record.get("obs_domain"), record.get("sampling")
    uid, hist = g("uid"), h("history")
    return (*row[:19], record["source"], *row[20:27],
            exp if isinstance(exp, S) else None,
            dom if isinstance(dom, N) and 0 <= dom < hi else None,
            smp if isinstance(smp, N) and 0 < smp < hi else None,
            uid if isinstance(uid, S) and uid else None,
            hist if isinstance(hist, S) else None)


def _hex8(v: Any) -> int | None:
    """Suricata's TCP flags text ("1b") as an int 0..255, or None."""
    if not isinstance(v, str) or not 0 < len(v) <= 2:
        return None
    try:
        n = int(v, 16)
    except ValueError:
        return None
    return n if 0 <= n <= 255 else None


@dataclass
class EveResult:
    """What one batch of records gave."""

    batch: B.AlertBatch
    #: (record index, reason, raw bytes) for every record that was rejected
    rejected: list[tuple[int, str, bytes]] = field(default_factory=list)
    #: decoded ``stats`` events (Suricata's own counters)
    stats: list[dict[str, Any]] = field(default_factory=list)
    #: records by outcome name (alert, flow, ..., invalid_json, ...)
    counts: dict[str, int] = field(default_factory=dict)
    #: per alert: the record's (trimmed) offset in the input buffer
    alert_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    #: records that were read (input count, incl. rejected and filtered)
    records: int = 0


def _loads(raw: bytes | memoryview) -> Any:
    """A record the C side validated as JSON.  orjson is fast but stricter than
    JSON (numbers beyond a double or 64 bits, lone surrogate escapes): those
    rare records go through the stdlib instead, their text scrubbed.

    Raises ValueError when even the stdlib refuses valid JSON: an integer of
    more than ``sys.get_int_max_str_digits()`` digits (4,300; a limit kept on
    purpose, against quadratic-time conversions).  The caller makes that the
    record's own failure (``unparsable``)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _clean(json.loads(bytes(raw)))


def _text(mv: memoryview, start: int, n: int, esc: int) -> str:
    raw = bytes(mv[start:start + n])
    if not esc:
        return raw.decode("utf-8")  # the C side validated UTF-8
    try:
        text = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:  # a lone surrogate escape (\ud800): valid JSON, not valid text
        try:
            text = scrub(json.loads(b'"' + raw + b'"'))
        except ValueError:  # not expected after C's validation; never fatal
            text = raw.decode("utf-8", "replace")
    return str(text)


class _FlowRows:
    """The flow rows of a batch's flow/netflow events, made when a store
    first asks (EventBatch.flows): each event's line of ``lines`` decoded
    and turned into a row by :func:`flow_row`.  ``eager``: rows already made
    (events long enough to hold an integer Python may refuse were decoded
    at once, see EveDecoder._other), by line."""

    __slots__ = ("lines", "at", "starts", "lens", "eager")

    def __init__(self, lines: bytes, at: np.ndarray, starts: np.ndarray, lens: np.ndarray,
                 eager: dict[int, tuple | None]) -> None:
        self.lines, self.at, self.starts, self.lens, self.eager = lines, at, starts, lens, eager

    def __call__(self) -> tuple[list[tuple], list[int]]:
        mv = memoryview(self.lines)
        eager = self.eager
        flows: list[tuple] = []
        flow_line: list[int] = []
        for line, o, ln in zip(self.at.tolist(), self.starts.tolist(), self.lens.tolist(), strict=True):
            if line in eager:
                row = eager[line]
            else:
                try:
                    row = flow_row(_loads(mv[o:o + ln]))
                except Exception as e:  # cannot happen (see EveDecoder._other); the event is still passed on
                    _log.error(f"flow event on line {line} of a batch: no flow row ({e!r})")
                    row = None
            if row is not None:
                flow_line.append(line)
                flows.append(row)
        return flows, flow_line


class EveDecoder:
    """Reusable decoder: per-record scratch arrays are kept between batches.

    ``event_types`` (optional) keeps only those event types; the others are
    counted as ``filtered`` and go nowhere.  ``resync`` (streams): a line
    that is not JSON but contains a later ``{"timestamp":`` is treated as a
    torn record (Suricata ignores short writes) glued to a complete one; the
    torn head is rejected as ``torn_record`` and the rest decoded.

    ``wire``: the records are alerts ingest rendered itself (the NATS
    collector's input, see :mod:`ingest.wire`): their ``ingest`` member
    gives the source kind, sensor and event ids, class id and app name, and
    ``alert.references`` their references (``AlertBatch.refs``).  Never for
    an engine's records: a sender could write an ``ingest`` member.
    """

    def __init__(self, capacity: int = 1024, *, event_types: Iterable[str] | None = None,
                 resync: bool = False, wire: bool = False) -> None:
        types = [t.strip() for t in event_types or () if t.strip()]
        self.filter = ("\n" + "\n".join(types) + "\n").encode() if types else None
        if wire and (self.filter is not None or resync):
            raise ValueError("a wire decoder takes every record as it is (no filter, no resync)")
        self.resync = resync
        self.wire = wire
        self._text_cache: dict[int, str] = {}
        self._tab_keys = np.empty(0, np.uint64)
        self._tab_vals = np.empty(0, np.uint32)
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        self.capacity = capacity
        self.recs = np.zeros(capacity, REC_DTYPE)
        self.ext = np.zeros(capacity, EXT_DTYPE)
        self._c_recs = ffi.from_buffer("struct ingest_eve_rec[]", self.recs, require_writable=True)
        self._c_ext = ffi.from_buffer("struct ingest_eve_alert[]", self.ext, require_writable=True)
        self.wx = np.zeros(capacity if self.wire else 0, WIRE_DTYPE)
        self._c_wx = ffi.from_buffer("struct ingest_eve_wire[]", self.wx, require_writable=True)

    def decode(self, buf: Any, offs: np.ndarray, lens: np.ndarray, n: int | None = None,
               slot_flags: np.ndarray | None = None, origin: str = "") -> EveResult:
        """Decode records i < n (``lens[i]`` bytes at ``buf[offs[i]:]``)."""
        n = len(offs) if n is None else n
        res = self._decode(buf, offs, lens, n, slot_flags, origin)
        if self.resync and res.counts.get("invalid_json"):
            res = self._resync(buf, res, origin)
        return res

    def _decode(self, buf: Any, offs: np.ndarray, lens: np.ndarray, n: int,
                slot_flags: np.ndarray | None, origin: str) -> EveResult:
        if n > self.capacity:
            self._grow(max(n, 2 * self.capacity))
        offs = np.ascontiguousarray(offs[:n], dtype=np.uint64)
        lens = np.ascontiguousarray(lens[:n], dtype=np.uint32)
        alerts = np.empty(max(n, 1), B.ALERT_DTYPE)
        c_buf = ffi.from_buffer("uint8_t[]", buf)
        flt = self.filter
        c_alerts = ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True)
        if self.wire:
            k = lib.ingest_eve_decode_wire(
                c_buf, len(c_buf), ffi.from_buffer("uint64_t[]", offs), ffi.from_buffer("uint32_t[]", lens),
                n, self._c_recs, c_alerts, self._c_ext, self._c_wx, n)
        else:
            k = lib.ingest_eve_decode(
                c_buf, len(c_buf), ffi.from_buffer("uint64_t[]", offs), ffi.from_buffer("uint32_t[]", lens),
                ffi.NULL if slot_flags is None else ffi.from_buffer("uint8_t[]", np.ascontiguousarray(slot_flags, np.uint8)),
                n, ffi.NULL if flt is None else flt, 0 if flt is None else len(flt),
                self._c_recs, c_alerts, self._c_ext, n,
            )
        if k < 0:
            raise ValueError(f"ingest_eve_decode: bad arguments ({k})")
        recs = self.recs[:n]
        ext = self.ext[:k]
        alerts = alerts[:k] if k == n else B.copy_rows(alerts[:k])
        mv = memoryview(buf).cast("B")
        status = recs["status"]
        counts = np.bincount(status, minlength=len(REASONS)) if n else np.zeros(len(REASONS), np.int64)
        res = EveResult(B.AlertBatch(alerts, [], origin), records=n,
                        counts={REASONS[s]: int(c) for s, c in enumerate(counts.tolist()) if c})

        if k:
            self._alert_text(res, mv, recs, ext)
            if self.wire:
                self._wire_text(res, mv, recs, ext, self.wx[:k])
        if n - k:
            self._other(res, mv, recs, status)
        return res

    def _alert_text(self, res: EveResult, mv: memoryview, recs: np.ndarray, ext: np.ndarray) -> None:
        """Signature and category strings (one decode per distinct text, cached
        across batches) and the verbatim records (AlertBatch.raw_pool)."""
        batch = res.batch
        strings = batch.strings
        assert isinstance(strings, list)  # built here as a list (a StringPool has no append)
        rec_of = ext["rec"]
        roff = recs["off"][rec_of]
        res.alert_offsets = roff
        for col, has, off, ln, esc, h in (("msg_idx", "has_sig", "sig_off", "sig_len", "sig_esc", "sig_hash"),
                                           ("cat", "has_cat", "cat_off", "cat_len", "cat_esc", "cat_hash")):
            arr = self._texts(strings, mv, roff, ext[h], ext[ln], ext[has], ext[off], ext[esc])
            if col == "msg_idx":
                batch.alerts["msg_idx"] = arr
            else:
                batch.cat = arr
        # the verbatim records, copied back to back in one C call (the input
        # buffer is reused for the next batch)
        rlen = recs["len"][rec_of]
        data = np.empty(int(rlen.sum(dtype=np.uint64)), np.uint8)
        poff = np.empty(len(ext), np.uint64)
        got = lib.ingest_eve_gather(
            ffi.from_buffer("uint8_t[]", mv), len(mv), self._c_recs,
            ffi.from_buffer("uint32_t[]", np.ascontiguousarray(rec_of)), len(ext),
            ffi.from_buffer("uint8_t[]", data, require_writable=True), len(data),
            ffi.from_buffer("uint64_t[]", poff, require_writable=True))
        if got != len(data):
            raise ValueError(f"ingest_eve_gather failed ({got})")
        batch.raw_pool = B.RawPool(data, poff, rlen.astype(np.uint32))
        batch.raw = np.arange(len(ext), dtype=np.int32)

    def _texts(self, strings: list, mv: memoryview, roff: np.ndarray, hashes: np.ndarray, lens: np.ndarray,
               has: np.ndarray, offs: np.ndarray, escs: np.ndarray | None) -> np.ndarray:
        """Per alert, the index in ``strings`` of its text (-1: none): the
        distinct texts, found in C by (keyed hash, length), are decoded once
        each (cached across batches) and appended.  ``escs`` None: the text
        is a whole JSON value kept as it is (references)."""
        cache = self._text_cache
        if len(cache) > 65536:
            cache.clear()
        k = len(hashes)
        first = np.empty(k, np.uint32)
        tab = 1 << max(4, (2 * k).bit_length())
        if tab > len(self._tab_keys):
            self._tab_keys = np.empty(tab, np.uint64)
            self._tab_vals = np.empty(tab, np.uint32)
        keys = (hashes ^ (lens.astype(np.uint64) << np.uint64(40))) | np.uint64(1)
        keys[has == 0] = 0
        lib.ingest_dedupe_u64(ffi.from_buffer("uint64_t[]", keys), k,
                              ffi.from_buffer("uint32_t[]", first, require_writable=True),
                              ffi.from_buffer("uint64_t[]", self._tab_keys, require_writable=True),
                              ffi.from_buffer("uint32_t[]", self._tab_vals, require_writable=True), tab)
        uniq = np.flatnonzero(first == np.arange(k, dtype=np.uint32))
        remap = np.full(k + 1, -1, np.int32)  # [k] <- UINT32_MAX rows (no text)
        base = len(strings)
        tweak = 0 if escs is not None else 1 << 63  # a raw JSON value never shares a cached string body
        for j, key in zip(uniq.tolist(), keys[uniq].tolist(), strict=True):
            text = cache.get(key ^ tweak)
            if text is None:
                start, n = int(roff[j]) + int(offs[j]), int(lens[j])
                text = _text(mv, start, n, int(escs[j])) if escs is not None else str(mv[start:start + n], "utf-8")
                cache[key ^ tweak] = text
            strings.append(text)
        remap[uniq] = base + np.arange(len(uniq), dtype=np.int32)
        return remap[np.minimum(first, k)]

    def _wire_text(self, res: EveResult, mv: memoryview, recs: np.ndarray, ext: np.ndarray,
                   wx: np.ndarray) -> None:
        """app_name and references of rendered alerts (wire mode)."""
        batch = res.batch
        assert isinstance(batch.strings, list)
        roff = recs["off"][ext["rec"]]
        batch.alerts["app_idx"] = self._texts(batch.strings, mv, roff, wx["app_hash"], wx["app_len"],
                                              wx["has_app"], wx["app_off"], wx["app_esc"])
        if wx["has_refs"].any():
            batch.refs = self._texts(batch.strings, mv, roff, wx["refs_hash"], wx["refs_len"],
                                     wx["has_refs"], wx["refs_off"], None)

    def _other(self, res: EveResult, mv: memoryview, recs: np.ndarray, status: np.ndarray) -> None:
        """Non-alert events (passthrough, flows, stats) and rejects.

        Stats events are decoded in Python now (Suricata's counters).  Flow
        and netflow events become rows only when a store asks for them
        (``EventBatch.flows``, lazy): an input into ``null:`` or a JSON sink
        never parses them.  That is safe because what the C side validated
        can only be refused by Python for an integer of more digits than
        ``sys.get_int_max_str_digits()``: a flow event long enough to hold
        one is decoded here, now, and rejected alone as ``unparsable``,
        never its batch, as before.  A record with a raw CR/LF between
        tokens is flattened to one line (see ingest_eve_gather) before it
        reaches JSON sinks."""
        passing = np.flatnonzero((status > lib.INGEST_EVE_ALERT) & (status < lib.INGEST_EVE_FILTERED))
        rejected: list[tuple[int, str, bytes]] = []
        if len(passing):
            # few numpy calls per batch: the rows of the passing records, gathered once
            FLOW, NETFLOW, STATS, OTHER = (lib.INGEST_EVE_FLOW, lib.INGEST_EVE_NETFLOW, lib.INGEST_EVE_STATS,
                                           lib.INGEST_EVE_OTHER)
            p = recs[passing]
            st = p["status"]
            lens = p["len"]
            nst = np.bincount(st, minlength=OTHER + 1).tolist()
            limit = sys.get_int_max_str_digits()
            parsed: dict[int, tuple | None] = {}  # line -> its flow row (flow events decoded now)
            if nst[STATS] or (limit and nst[FLOW] + nst[NETFLOW] and int(lens.max()) > limit):
                eager = st == STATS
                if limit:
                    eager |= ((st == FLOW) | (st == NETFLOW)) & (lens > limit)
                keep = np.ones(len(p), dtype=bool)
                offs = p["off"]
                for j in np.flatnonzero(eager).tolist():
                    o, ln = int(offs[j]), int(lens[j])
                    piece = mv[o:o + ln]
                    try:
                        ev = _loads(piece)
                        row = None if st[j] == STATS else flow_row(ev)
                    except Exception:  # whatever Python refuses costs this record only
                        rejected.append((int(passing[j]), "unparsable", bytes(piece)))
                        keep[j] = False
                        continue
                    if st[j] == STATS:
                        res.stats.append(ev)
                    else:
                        parsed[j] = row
                if rejected:  # the lines are what is left
                    line_of = np.cumsum(keep) - 1
                    parsed = {int(line_of[j]): row for j, row in parsed.items()}
                    p = p[keep]
                    st = p["status"]
                    lens = p["len"]
                    nst = np.bincount(st, minlength=OTHER + 1).tolist()
            offs = p["off"]
            types: dict[str, int] = {name: nst[code] for code, name in
                                     ((FLOW, "flow"), (NETFLOW, "netflow"), (STATS, "stats")) if nst[code]}
            if nst[OTHER]:
                eo, el = p["etype_off"], p["etype_len"]
                for j in np.flatnonzero(st == OTHER).tolist():
                    o = int(offs[j]) + int(eo[j])
                    name = str(mv[o:o + int(el[j])], "utf-8")
                    types[name] = types.get(name, 0) + 1
            kept: list[bytes | memoryview] = [mv[o:o + ln] for o, ln in
                                              zip(offs.tolist(), lens.tolist(), strict=True)]
            fl = p["flags"] & REC_NEWLINE
            if fl.any():
                for line in np.flatnonzero(fl).tolist():
                    kept[line] = bytes(kept[line]).replace(b"\r", b" ").replace(b"\n", b" ")
            if kept:
                lines = b"\n".join(kept) + b"\n"
                nflow = nst[FLOW] + nst[NETFLOW]
                if nflow:
                    flow_lines = np.flatnonzero((st == FLOW) | (st == NETFLOW))
                    starts = np.zeros(len(lens), np.int64)
                    np.cumsum(lens[:-1] + np.int64(1), out=starts[1:])
                    res.batch.events = B.EventBatch(
                        lines, len(kept), None, types, None,
                        flow_rows=_FlowRows(lines, flow_lines, starts[flow_lines], lens[flow_lines], parsed),
                        pending_flows=nflow)
                else:
                    res.batch.events = B.EventBatch(lines, len(kept), None, types, None)
            if rejected:
                for i, _reason, _raw in rejected:
                    name = REASONS[int(status[i])]
                    res.counts[name] -= 1
                    if not res.counts[name]:
                        del res.counts[name]
                res.counts["unparsable"] = res.counts.get("unparsable", 0) + len(rejected)
        bad = np.flatnonzero(status >= FIRST_REJECT)
        for i in bad.tolist():
            st_i = int(status[i])
            if st_i == EMPTY:
                continue
            o, ln = int(recs["off"][i]), int(recs["len"][i])
            rejected.append((i, REASONS[st_i], bytes(mv[o:o + ln])))
        res.rejected.extend(sorted(rejected, key=lambda r: r[0]))

    def _resync(self, buf: Any, res: EveResult, origin: str) -> EveResult:
        """Split invalid lines at a later record start and decode the tails."""
        keep: list[tuple[int, str, bytes]] = []
        t_off: list[int] = []
        t_len: list[int] = []
        for i, reason, raw in res.rejected:
            cut = raw.rfind(RECORD_START, 1) if reason == "invalid_json" else -1
            if cut <= 0:
                keep.append((i, reason, raw))
                continue
            keep.append((i, "torn_record", raw[:cut]))
            t_off.append(int(self.recs["off"][i]) + cut)
            t_len.append(len(raw) - cut)
        if not t_off:
            return res
        res.rejected = keep
        res.counts["invalid_json"] -= len(t_off)
        if not res.counts["invalid_json"]:
            del res.counts["invalid_json"]
        res.counts["torn_record"] = res.counts.get("torn_record", 0) + len(t_off)
        tail = self._decode(buf, np.array(t_off, np.uint64), np.array(t_len, np.uint32), len(t_off), None, origin)
        res.batch = B.AlertBatch.concat([res.batch, tail.batch])
        res.rejected.extend(tail.rejected)
        res.stats.extend(tail.stats)
        for name, c in tail.counts.items():
            res.counts[name] = res.counts.get(name, 0) + c
        res.alert_offsets = np.concatenate([res.alert_offsets, tail.alert_offsets])
        return res


def decode_lines(data: bytes, origin: str = "", **kw: Any) -> EveResult:
    """Decode a buffer of newline-terminated EVE records (a whole file, say).
    A final unterminated line is decoded too."""
    offs, lens, consumed = split_lines(data)
    if consumed < len(data):
        offs = np.append(offs, np.uint64(consumed))
        lens = np.append(lens, np.uint32(len(data) - consumed))
    return EveDecoder(max(1, len(offs)), **kw).decode(data, offs, lens, origin=origin)


def split_lines(data: Any, base: int = 0, cap: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Complete lines of data: (offsets, lengths incl. '\\n', bytes consumed)."""
    c = ffi.from_buffer("uint8_t[]", data)
    cap = cap if cap is not None else max(1, data.count(b"\n") if isinstance(data, (bytes, bytearray)) else len(c) // 64 + 1)
    offs = np.empty(cap, np.uint64)
    lens = np.empty(cap, np.uint32)
    consumed = ffi.new("size_t *")
    n = lib.ingest_eve_lines(c, len(c), base, ffi.from_buffer("uint64_t[]", offs, require_writable=True),
                             ffi.from_buffer("uint32_t[]", lens, require_writable=True), cap, consumed)
    if n < 0:
        raise ValueError(f"ingest_eve_lines failed ({n})")
    return offs[:n], lens[:n], int(consumed[0])
