"""Unified2 spool files: typed, thin wrapper over the C batch decoder.

Unified2 is a sequence of records, each an 8-byte big-endian header (type,
length) and ``length`` bytes of body (FORMATS.md section 4).  An event record
(7, 72, 104, 105, 111, 112, 114) becomes one canonical alert; the packet (2),
buffer (3) and extra-data (110) records that follow it are joined to it on
(event_id, event_second).

Example::

    from ingest import unified2
    res = unified2.read("/var/log/snort/snort.u2.1321131865")
    res.alerts["sid"], res.packets["linktype"], res.extra["info_type"]
    res.packet_event          # per packet: index of its alert, -1 if orphaned
    res.resume_offset         # where a trailing partial record starts
    from ingest.render import to_records
    to_records(res.batch)     # EVE-style dicts with packets and extra-data

The C core indexes every record in one pass and gathers each record family
in one call; Python never loops per record.  Large files are streamed in
chunks (``iter_read``), so memory is bounded by the chunk size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import BinaryIO

import numpy as np

from . import batch as B
from ._native import ffi, lib

HDR_LEN = lib.INGEST_U2_HDR_LEN
MAX_RECORD = lib.INGEST_U2_MAX_RECORD

PACKET, BUFFER = lib.INGEST_U2_PACKET, lib.INGEST_U2_BUFFER
IDS_EVENT, IDS_EVENT_IPV6 = lib.INGEST_U2_IDS_EVENT, lib.INGEST_U2_IDS_EVENT_IPV6
IDS_EVENT_VLAN, IDS_EVENT_IPV6_VLAN = lib.INGEST_U2_IDS_EVENT_VLAN, lib.INGEST_U2_IDS_EVENT_IPV6_VLAN
EXTRA_DATA = lib.INGEST_U2_EXTRA_DATA
IDS_EVENT_APPID, IDS_EVENT_APPID_IPV6 = lib.INGEST_U2_IDS_EVENT_APPID, lib.INGEST_U2_IDS_EVENT_APPID_IPV6
IDS_EVENT_APPSTAT = lib.INGEST_U2_IDS_EVENT_APPSTAT
EVENT3 = lib.INGEST_U2_EVENT3
EVENT_TYPES = (IDS_EVENT, IDS_EVENT_IPV6, IDS_EVENT_VLAN, IDS_EVENT_IPV6_VLAN, IDS_EVENT_APPID,
               IDS_EVENT_APPID_IPV6, EVENT3)
KNOWN_TYPES = frozenset((PACKET, BUFFER, EXTRA_DATA, IDS_EVENT_APPSTAT) + EVENT_TYPES)

#: Extra-data EventInfo names (Snort Unified2_common.h; u2spewfoo's words)
XDATA_NAMES = {
    1: "xff_ipv4", 2: "xff_ipv6", 3: "reviewed_by", 4: "gzip_data", 5: "smtp_filename",
    6: "smtp_mailfrom", 7: "smtp_rcptto", 8: "smtp_email_hdrs", 9: "http_uri",
    10: "http_hostname", 11: "ipv6_src", 12: "ipv6_dst", 13: "jsnorm_data",
}
#: Event text fields held in the pool (ingest_u2_event.text_off/len order)
EVENT_TEXTS = ("app_name", "http_method", "http_version", "http_user_agent", "http_referer",
               "message_detail")

# numpy mirrors of the C rows (checked against ffi.offsetof in tests)
REC_DTYPE = np.dtype([("off", "<u8"), ("type", "<u4"), ("len", "<u4")], align=True)
EVENT_DTYPE = np.dtype([
    ("offset", "<u8"), ("type", "<u4"), ("length", "<u4"), ("mpls_label", "<u4"),
    ("policy_context", "<u4"), ("policy_inspect", "<u4"), ("policy_detect", "<u4"),
    ("http_request_size", "<u4"), ("http_response_size", "<u4"),
    ("text_off", "<u4", (6,)), ("text_len", "<u2", (6,)),
    ("impact_flag", "u1"), ("impact", "u1"), ("blocked", "u1"), ("snort_status", "u1"),
    ("snort_action", "u1"), ("ip_ver_raw", "u1"), ("reserved", "u1", (6,)),
], align=True)
PACKET_DTYPE = np.dtype([
    ("offset", "<u8"), ("type", "<u4"), ("sensor_id", "<u4"), ("event_id", "<u4"),
    ("event_second", "<u4"), ("packet_second", "<u4"), ("packet_microsecond", "<u4"),
    ("linktype", "<u4"), ("packet_length", "<u4"), ("data_off", "<u8"), ("data_len", "<u4"),
    ("flags", "<u4"),
], align=True)
EXTRA_DTYPE = np.dtype([
    ("offset", "<u8"), ("data_off", "<u8"), ("event_type", "<u4"), ("event_length", "<u4"),
    ("sensor_id", "<u4"), ("event_id", "<u4"), ("event_second", "<u4"), ("info_type", "<u4"),
    ("data_type", "<u4"), ("blob_length", "<u4"), ("data_len", "<u4"), ("addr", "V16"),
    ("addr_ver", "u1"), ("flags", "u1"), ("reserved", "u1", (2,)),
], align=True)
BAD_LENGTH = lib.INGEST_U2_BAD_LENGTH

PCAP_MAGICS = {0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1, 0x0A0D0D0A}

#: default read size for files: bounds the memory of iter_read
CHUNK_SIZE = 16 << 20
#: most records indexed per C call (the index array is reused)
INDEX_CAP = 1 << 18


class Unified2Error(ValueError):
    """Input that is not (or no longer) Unified2, at a byte offset."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"offset {offset}: {message}")
        self.offset = offset
        self.message = message


class NotUnified2Error(Unified2Error):
    """A pcap/pcapng file where Unified2 was expected (Snort's log_tcpdump
    writes ``snort.log.<time>`` next to the Unified2 spool)."""


def _c(ctype: str, arr: np.ndarray):
    return ffi.from_buffer(ctype, arr, require_writable=True)


@dataclass(eq=False)
class Unified2Result:
    """Everything decoded from one buffer, file, or window of a spool file.

    ``alerts`` (``batch.ALERT_DTYPE``) and ``events`` (``EVENT_DTYPE``, what
    the event record says beyond the canonical alert) are parallel.
    ``packets``/``extra`` are ``PACKET_DTYPE``/``EXTRA_DTYPE`` rows whose
    bytes are ``pool[data_off : data_off + data_len]``; ``packet_event`` /
    ``extra_event`` give, per row, the index of the alert it belongs to (-1:
    orphan, its event was not seen).  ``resume_offset`` is the absolute
    offset where decoding stopped: the start of a trailing partial record
    (or of a still-open event in streaming mode), or of a bad region.
    """

    alerts: np.ndarray
    events: np.ndarray
    packets: np.ndarray
    extra: np.ndarray
    packet_event: np.ndarray
    extra_event: np.ndarray
    pool: np.ndarray
    resume_offset: int
    #: records per type (every type seen, known or not)
    record_counts: dict[int, int] = field(default_factory=dict)
    #: records of unknown types, skipped by their length
    unknown: int = 0
    #: type 113 (open-appid statistics) records, counted and skipped
    appstat: int = 0
    #: records too short for their type's fixed part
    malformed: int = 0
    #: bytes skipped while resynchronising after a bad header
    skipped_bytes: int = 0
    #: (offset, message): bad regions, pcap input, truncation
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: the file stopped here and cannot be decoded further (pcap, garbage)
    fatal: bool = False
    origin: str = ""

    @property
    def orphan_packets(self) -> int:
        return int((self.packet_event < 0).sum())

    @property
    def orphan_extra(self) -> int:
        return int((self.extra_event < 0).sum())

    def __len__(self) -> int:
        return len(self.alerts)

    def packet_bytes(self, i: int) -> bytes:
        p = self.packets[i]
        return self.pool[int(p["data_off"]): int(p["data_off"]) + int(p["data_len"])].tobytes()

    def extra_bytes(self, i: int) -> bytes:
        x = self.extra[i]
        return self.pool[int(x["data_off"]): int(x["data_off"]) + int(x["data_len"])].tobytes()

    def event_text(self, i: int, name: str) -> str:
        """An event's text field (app_name, http_method, ...), '' if absent."""
        f = EVENT_TEXTS.index(name)
        o, n = int(self.events["text_off"][i, f]), int(self.events["text_len"][i, f])
        return self.pool[o: o + n].tobytes().decode("utf-8", "replace")

    @cached_property
    def batch(self) -> B.AlertBatch:
        """The canonical alert batch; ``extra`` carries each alert's packets
        (base64) and decoded extra-data as JSON members (rendered in C)."""
        strings: list[str] = []
        alerts = self.alerts.copy()
        _app_names(alerts, self.events, self.pool, strings)
        extra = _render_members(self, strings)
        return B.AlertBatch(alerts, strings, self.origin, extra=extra)

    @staticmethod
    def concat(parts: list[Unified2Result]) -> Unified2Result:
        """Join consecutive results (rebasing pool offsets and join indices)."""
        if len(parts) == 1:
            return parts[0]
        # windows of one in-place buffer share it: nothing to rebase
        shared = all(r.pool is parts[0].pool for r in parts)
        pools, alerts, events, packets, extra, pe, xe = [], [], [], [], [], [], []
        base_pool = base_alert = 0
        counts: dict[int, int] = {}
        for r in parts:
            if shared:
                ev, pk, ex = r.events, r.packets, r.extra
            else:
                ev = r.events.copy()
                ev["text_off"] += np.uint32(base_pool)
                pk = r.packets.copy()
                pk["data_off"] += np.uint64(base_pool)
                ex = r.extra.copy()
                ex["data_off"] += np.uint64(base_pool)
                pools.append(r.pool)
            alerts.append(r.alerts)
            events.append(ev)
            packets.append(pk)
            extra.append(ex)
            pe.append(np.where(r.packet_event >= 0, r.packet_event + base_alert, -1))
            xe.append(np.where(r.extra_event >= 0, r.extra_event + base_alert, -1))
            base_pool += 0 if shared else len(r.pool)
            base_alert += len(r.alerts)
            for k, v in r.record_counts.items():
                counts[k] = counts.get(k, 0) + v
        last = parts[-1]
        return Unified2Result(
            np.concatenate(alerts), np.concatenate(events), np.concatenate(packets),
            np.concatenate(extra), np.concatenate(pe).astype(np.int32),
            np.concatenate(xe).astype(np.int32), parts[0].pool if shared else np.concatenate(pools),
            last.resume_offset,
            counts, sum(r.unknown for r in parts), sum(r.appstat for r in parts),
            sum(r.malformed for r in parts), sum(r.skipped_bytes for r in parts),
            [e for r in parts for e in r.errors], last.fatal, last.origin,
        )


def _app_names(alerts: np.ndarray, events: np.ndarray, pool: np.ndarray, strings: list[str]) -> None:
    """Set alerts["app_idx"] from the events' app_name, one string per
    distinct name (vectorised; Python touches only distinct names)."""
    lens = events["text_len"][:, 0].astype(np.int64)
    rows = np.flatnonzero(lens)
    if not len(rows):
        return
    offs = events["text_off"][rows, 0].astype(np.int64)
    col = np.arange(64)
    take = np.minimum(offs[:, None] + col, max(len(pool) - 1, 0))
    names = np.where(col < lens[rows, None], pool[take], 0).astype(np.uint8)
    uniq, inv = np.unique(names, axis=0, return_inverse=True)
    idx = np.empty(len(uniq), dtype=np.int32)
    for j, raw in enumerate(uniq):
        idx[j] = len(strings)
        strings.append(bytes(raw).rstrip(b"\0").decode("utf-8", "replace"))
    alerts["app_idx"][rows] = idx[inv.reshape(-1)]


def _groups(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by owner (stable): (row order, start per owner, n+1)."""
    joined = np.flatnonzero(owner >= 0)
    order = joined[np.argsort(owner[joined], kind="stable")].astype(np.uint32)
    start = np.searchsorted(owner[order], np.arange(n + 1), side="left").astype(np.uint32)
    return np.ascontiguousarray(order), start


def _render_members(res: Unified2Result, strings: list[str]) -> np.ndarray | None:
    n = len(res.alerts)
    if n == 0:
        return None
    pk_idx, pk_start = _groups(res.packet_event, n)
    ex_idx, ex_start = _groups(res.extra_event, n)
    pool = res.pool if len(res.pool) else np.zeros(1, np.uint8)
    ends = np.zeros(n, dtype=np.uint32)
    cap = 512 * n + int(res.packets["data_len"].sum()) * 3 + int(res.extra["data_len"].sum()) * 7 + 4096
    events = np.ascontiguousarray(res.events)
    packets = np.ascontiguousarray(res.packets)
    extra = np.ascontiguousarray(res.extra)
    while True:
        out = np.empty(cap, dtype=np.uint8)
        k = lib.ingest_u2_render(
            ffi.from_buffer("struct ingest_u2_event[]", events), n,
            ffi.from_buffer("uint8_t[]", pool), len(res.pool),
            ffi.from_buffer("struct ingest_u2_packet[]", packets), len(packets),
            ffi.from_buffer("uint32_t[]", pk_idx), ffi.from_buffer("uint32_t[]", pk_start),
            ffi.from_buffer("struct ingest_u2_extra[]", extra), len(extra),
            ffi.from_buffer("uint32_t[]", ex_idx), ffi.from_buffer("uint32_t[]", ex_start),
            _c("uint8_t[]", out), cap, _c("uint32_t[]", ends),
        )
        if k == lib.INGEST_ENOSPC:
            cap *= 2
            continue
        if k < 0:
            raise ValueError(f"ingest_u2_render: inconsistent rows ({k})")
        break
    text = out[:k].tobytes().decode("ascii")  # the C side escapes to ASCII
    base = len(strings)
    starts = np.concatenate(([0], ends[:-1])).tolist()
    strings.extend(text[s:e] for s, e in zip(starts, ends.tolist(), strict=True))
    return np.arange(base, base + n, dtype=np.int32)


def _join(ev_id: np.ndarray, ev_sec: np.ndarray, ev_pos: np.ndarray,
          x_id: np.ndarray, x_sec: np.ndarray, x_pos: np.ndarray) -> np.ndarray:
    """Per row x: the index of the last event before it (by position) with
    the same (event_id, event_second); -1 if there is none.

    Writers put packets and extra-data right after their event, so the
    preceding event is tried first (one searchsorted over the sorted record
    positions); only rows where it does not match take the general path.
    """
    out = np.full(len(x_id), -1, dtype=np.int32)
    if not len(x_id) or not len(ev_id):
        return out
    prev = np.searchsorted(ev_pos, x_pos, side="left").astype(np.int64) - 1
    ok = prev >= 0
    p = np.where(ok, prev, 0)
    ok &= (ev_id[p] == x_id) & (ev_sec[p] == x_sec)
    out[ok] = prev[ok]
    rest = np.flatnonzero(~ok)
    if len(rest):
        out[rest] = _join_general(ev_id, ev_sec, ev_pos, x_id[rest], x_sec[rest], x_pos[rest])
    return out


def _join_general(ev_id, ev_sec, ev_pos, x_id, x_sec, x_pos) -> np.ndarray:
    out = np.full(len(x_id), -1, dtype=np.int32)
    ev_key = (ev_id.astype(np.uint64) << np.uint64(32)) | ev_sec.astype(np.uint64)
    x_key = (x_id.astype(np.uint64) << np.uint64(32)) | x_sec.astype(np.uint64)
    uk, ev_rank = np.unique(ev_key, return_inverse=True)
    x_rank = np.searchsorted(uk, x_key)
    hit = x_rank < len(uk)
    hit[hit] = uk[x_rank[hit]] == x_key[hit]
    # positions are relative to the window (< 2**32), ranks < 2**31
    pos0 = min(int(ev_pos.min()), int(x_pos.min()))
    ev_comp = (ev_rank.reshape(-1).astype(np.uint64) << np.uint64(32)) | (ev_pos - pos0).astype(np.uint64)
    order = np.argsort(ev_comp, kind="stable")
    sorted_comp = ev_comp[order]
    x_comp = (x_rank.astype(np.uint64) << np.uint64(32)) | (x_pos - pos0).astype(np.uint64)
    j = np.searchsorted(sorted_comp, x_comp, side="left") - 1
    ok = hit & (j >= 0)
    ok[ok] = (sorted_comp[j[ok]] >> np.uint64(32)) == x_rank[ok].astype(np.uint64)
    out[ok] = order[j[ok]]
    return out


class Decoder:
    """Incremental decoder over a reusable buffer (the C core's caller-owned
    memory).  ``feed`` bytes (or ``fill`` from a file), then ``decode``.

    In streaming mode (``final=False``) the last event of the window stays
    open: its records are kept (``resume_offset`` points at the event) until
    the next event arrives, so an event is never emitted without packets
    that are still to come.  ``final=True`` closes it (end of file, or the
    caller's timeout).
    """

    def __init__(self, base: int = 0, chunk_size: int = CHUNK_SIZE, origin: str = "",
                 *, whole: np.ndarray | None = None) -> None:
        # Room for at least two of the largest records, so a window always
        # holds a complete record.
        if whole is not None:
            # one-shot over a caller's complete buffer, decoded in place
            self.buf, self.cap, self.n, self.zero_copy = whole, len(whole), len(whole), True
            self.start = 0
            if base:
                raise ValueError("a whole-buffer decoder starts at offset 0")
        else:
            self.cap = max(int(chunk_size), 2 * (MAX_RECORD + HDR_LEN))
            self.buf = np.empty(self.cap, dtype=np.uint8)
            self.n = 0
            self.zero_copy = False
            self.start = 0  # always 0 here: the tail is moved to the front
        self.base = base  # absolute offset of buf[0]
        self.origin = origin
        self._cap = INDEX_CAP if whole is None else max(INDEX_CAP, min(len(whole) // 32, 1 << 23))
        self._recs = np.empty(self._cap, dtype=REC_DTYPE)
        self._c_buf = ffi.from_buffer("uint8_t[]", self.buf) if len(self.buf) else ffi.new("uint8_t[]", 1)
        self._c_recs = _c("struct ingest_u2_rec[]", self._recs)
        self._stop = ffi.new("size_t *")
        self._reason = ffi.new("int *")
        self._used = ffi.new("size_t *")
        self._bad = ffi.new("uint32_t *")
        self.fatal: tuple[int, str] | None = None

    @property
    def held(self) -> int:
        """Bytes read but not yet decoded into a result (carry)."""
        return self.n

    @property
    def room(self) -> int:
        return self.cap - self.n

    def feed(self, data: bytes | memoryview) -> int:
        """Append as much of data as fits; returns the number of bytes taken."""
        k = min(len(data), self.room)
        self.buf[self.n: self.n + k] = np.frombuffer(data, dtype=np.uint8, count=k)
        self.n += k
        return k

    def fill(self, f: BinaryIO) -> int:
        """Read from f into the free part of the buffer; returns bytes read."""
        if not self.room:
            return 0
        k = f.readinto(memoryview(self.buf)[self.n:])  # type: ignore[attr-defined,arg-type]
        k = k or 0
        self.n += k
        return k

    def decode(self, *, final: bool = False) -> Unified2Result:
        """Decode what is held; keep the unconsumed tail for the next call."""
        n, base = self.n, self.base
        recs_n = 0
        pos = self.start
        errors: list[tuple[int, str]] = []
        skipped = 0
        fatal = False
        reason = lib.INGEST_U2_END
        while pos < n and self.fatal is None:
            k = lib.ingest_u2_index(self._c_buf + pos, n - pos, base + pos,
                                    self._c_recs + recs_n, self._cap - recs_n,
                                    self._stop, self._reason)
            if k < 0:
                raise ValueError(f"ingest_u2_index failed ({k})")
            recs_n += k
            pos += self._stop[0]
            reason = self._reason[0]
            if reason in (lib.INGEST_U2_END, lib.INGEST_U2_PARTIAL, lib.INGEST_U2_FULL):
                break
            at = base + pos
            if reason == lib.INGEST_U2_PCAP:
                magic = int.from_bytes(self.buf[pos: pos + 4].tobytes(), "big")
                kind = "pcapng" if magic == 0x0A0D0D0A else "pcap"
                msg = (f"this is a {kind} file, not Unified2 (magic {magic:08x}; Snort's "
                       f"log_tcpdump output?)" if at == 0 else
                       f"{kind} data (magic {magic:08x}) inside Unified2; stopping this file")
                self.fatal = (at, msg)
                break
            # INGEST_U2_BADLEN: resynchronise on the next plausible header
            length = int.from_bytes(self.buf[pos + 4: pos + 8].tobytes(), "big")
            rtype = int.from_bytes(self.buf[pos: pos + 4].tobytes(), "big")
            nxt = lib.ingest_u2_resync(self._c_buf, n, pos + 1)
            if nxt >= 0:
                errors.append((at, f"record type {rtype} with insane length {length} (> {MAX_RECORD}); "
                                   f"resynchronised at offset {base + nxt}, skipped {nxt - pos} bytes"))
                skipped += nxt - pos
                pos = nxt
                continue
            if final or self.room == 0:
                self.fatal = (at, f"record type {rtype} with insane length {length} (> {MAX_RECORD}); "
                                  f"no valid record follows: stopping this file")
            break
        if self.fatal is not None and self.fatal[0] >= base and self.fatal[0] <= base + n:
            fatal = True
            errors.append(self.fatal)
            pos = self.fatal[0] - base
        recs = self._recs[:recs_n]
        # Streaming: hold back the last event and what follows it, unless it
        # is the only thing held and the buffer is full (then it must go).
        cut = recs_n
        if not final and not fatal and recs_n:
            evs = np.flatnonzero(np.isin(recs["type"], EVENT_TYPES))
            # a lone open event filling the whole buffer must go anyway
            if len(evs) and (evs[-1] > 0 or self.room > 0):
                cut = int(evs[-1])
        if cut < recs_n:
            resume = int(recs["off"][cut])
        else:
            resume = base + pos
        if final and not fatal and reason == lib.INGEST_U2_PARTIAL and pos < n:
            errors.append((base + pos, self._partial_message(pos)))
        self.last_reason = reason
        res = self._gather(recs[:cut], resume, errors, skipped, fatal)
        # keep the tail
        keep_from = resume - base
        if self.zero_copy:
            self.start = keep_from
        elif keep_from > 0:
            tail = n - keep_from
            self.buf[:tail] = self.buf[keep_from:n]
            self.n = tail
            self.base = resume
        return res

    def _partial_message(self, pos: int) -> str:
        have = self.n - pos
        at = self.base + pos
        if have < HDR_LEN:
            return f"incomplete record header at offset {at} ({have} of 8 bytes)"
        t = int.from_bytes(self.buf[pos: pos + 4].tobytes(), "big")
        ln = int.from_bytes(self.buf[pos + 4: pos + 8].tobytes(), "big")
        kind = "" if t in KNOWN_TYPES else " (unknown type: misaligned or not Unified2?)"
        return (f"incomplete record at offset {at}: type {t}{kind}, {have} of "
                f"{ln + HDR_LEN} bytes")

    def _gather(self, recs: np.ndarray, resume: int, errors, skipped: int, fatal: bool) -> Unified2Result:
        types = recs["type"]
        small = np.bincount(np.minimum(types, 256), minlength=257)
        counts = {int(t): int(c) for t, c in enumerate(small[:256].tolist()) if c}
        if small[256]:
            big, cnt = np.unique(types[types >= 256], return_counts=True)
            counts.update(zip(big.tolist(), cnt.tolist(), strict=True))
        n_ev = sum(counts.get(t, 0) for t in EVENT_TYPES)
        n_pk = counts.get(PACKET, 0) + counts.get(BUFFER, 0)
        n_ex = counts.get(EXTRA_DATA, 0)
        unknown = sum(v for k, v in counts.items() if k not in KNOWN_TYPES)
        if self.zero_copy:
            pool_cap = 0
        elif n_pk or n_ex or n_ev:
            # every variable-length byte lies inside one of these bodies
            pool_cap = int(recs["len"].sum(dtype=np.uint64)) + 1
        else:
            pool_cap = 1
        if self.zero_copy:
            # the caller keeps the buffer: rows point into it (absolute
            # offsets, base 0), nothing is copied
            pool, c_pool = self.buf, ffi.NULL
        else:
            pool = np.empty(pool_cap, dtype=np.uint8)
            c_pool = _c("uint8_t[]", pool)
        alerts = np.empty(n_ev, dtype=B.ALERT_DTYPE)
        events = np.empty(n_ev, dtype=EVENT_DTYPE)
        packets = np.empty(n_pk, dtype=PACKET_DTYPE)
        extra = np.empty(n_ex, dtype=EXTRA_DTYPE)
        c_recs = ffi.from_buffer("struct ingest_u2_rec[]", recs) if len(recs) else ffi.NULL
        self._used[0] = 0
        malformed = 0
        args = (self._c_buf, self.n, self.base, c_recs, len(recs))
        k_ev = lib.ingest_u2_events(*args, _c("struct ingest_alert[]", alerts),
                                    _c("struct ingest_u2_event[]", events), n_ev,
                                    c_pool, pool_cap, self._used, self._bad)
        malformed += self._bad[0]
        k_pk = lib.ingest_u2_packets(*args, _c("struct ingest_u2_packet[]", packets), n_pk,
                                     c_pool, pool_cap, self._used, self._bad)
        malformed += self._bad[0]
        k_ex = lib.ingest_u2_extra(*args, _c("struct ingest_u2_extra[]", extra), n_ex,
                                   c_pool, pool_cap, self._used, self._bad)
        malformed += self._bad[0]
        if min(k_ev, k_pk, k_ex) < 0:
            raise ValueError(f"unified2 gather failed ({k_ev}, {k_pk}, {k_ex})")
        alerts, events, packets, extra = alerts[:k_ev], events[:k_ev], packets[:k_pk], extra[:k_ex]
        if not self.zero_copy:
            pool = pool[: self._used[0]]
        ev_sec = (alerts["ts_us"] // 1_000_000).astype(np.uint32)
        pe = _join(alerts["event_id"], ev_sec, events["offset"],
                   packets["event_id"], packets["event_second"], packets["offset"])
        xe = _join(alerts["event_id"], ev_sec, events["offset"],
                   extra["event_id"], extra["event_second"], extra["offset"])
        if len(pe):
            has = np.zeros(len(alerts), dtype=bool)
            has[pe[pe >= 0]] = True
            alerts["flags"][has] |= B.F_PACKET
        return Unified2Result(
            alerts, events, packets, extra, pe, xe, pool, resume, counts, unknown,
            counts.get(IDS_EVENT_APPSTAT, 0), malformed, skipped, errors, fatal, self.origin,
        )


def decode(buffer: bytes | bytearray | memoryview | np.ndarray, *, origin: str = "") -> Unified2Result:
    """Decode a whole buffer of Unified2 records.

    Every complete record is decoded and every event is closed; a trailing
    partial record is left alone and ``resume_offset`` points at its start
    (call again from there with more bytes).  A pcap file, or a bad region
    that cannot be resynchronised, is reported in ``errors`` with its offset
    (``fatal`` is set); nothing valid before it is lost.
    """
    whole = np.frombuffer(buffer, dtype=np.uint8)
    dec = Decoder(origin=origin, whole=whole)
    parts = []
    while True:  # more than INDEX_CAP records: several windows
        res = dec.decode(final=True)
        parts.append(res)
        if dec.last_reason != lib.INGEST_U2_FULL or res.fatal:
            break
    return Unified2Result.concat(parts)


def iter_read(path: str | os.PathLike[str], *, offset: int = 0, chunk_size: int = CHUNK_SIZE,
              origin: str | None = None) -> Iterator[Unified2Result]:
    """Decode a file in windows of about ``chunk_size`` bytes (bounded memory).
    Events are never split between windows."""
    origin = origin if origin is not None else f"unified2:{os.fspath(path)}"
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        dec = Decoder(offset, chunk_size, origin)
        while True:
            got = dec.fill(f)
            eof = got == 0 and dec.room > 0
            res = dec.decode(final=eof)
            if len(res.alerts) or len(res.packets) or len(res.extra) or res.errors or eof:
                yield res
            if eof or res.fatal:
                return


#: read() decodes files up to this size in place (one read, no copies);
#: larger files are streamed with iter_read and joined
READ_WHOLE_MAX = 256 << 20


def read(path: str | os.PathLike[str], *, offset: int = 0, chunk_size: int = CHUNK_SIZE) -> Unified2Result:
    """Decode a whole Unified2 file: the alerts, the packet and extra-data
    rows, and their bytes.  Files up to ``READ_WHOLE_MAX`` are read once and
    decoded in place; larger ones are streamed in ``chunk_size`` windows
    (use :func:`iter_read` directly to keep memory bounded)."""
    size = os.stat(path).st_size
    if offset == 0 and size <= READ_WHOLE_MAX:
        buf = np.empty(size, dtype=np.uint8)
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(memoryview(buf))  # type: ignore[arg-type]
        return decode(buf[:got], origin=f"unified2:{os.fspath(path)}")
    return Unified2Result.concat(list(iter_read(path, offset=offset, chunk_size=chunk_size)))


def sniff(head: bytes) -> str | None:
    """'unified2', 'pcap' or None from the first bytes of a file."""
    if len(head) < 8:
        return None
    t = int.from_bytes(head[:4], "big")
    if t in PCAP_MAGICS:
        return "pcap"
    if t in KNOWN_TYPES and int.from_bytes(head[4:8], "big") <= MAX_RECORD:
        return "unified2"
    return None


class PcapWriter:
    """Write Unified2 packet records (type 2) as a classic pcap (u2boat
    parity).  The link type is the first packet's; packets of another link
    type cannot share the file and are counted in ``skipped``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.linktype: int | None = None
        self.written = 0
        self.skipped = 0

    def _header(self, linktype: int) -> None:
        import struct

        self.linktype = linktype
        self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))

    def write(self, res: Unified2Result) -> int:
        pk = res.packets[res.packets["type"] == PACKET]
        if not len(pk):
            return 0
        if self.linktype is None:
            self._header(int(pk["linktype"][0]))
        same = pk[pk["linktype"] == self.linktype]
        self.skipped += len(pk) - len(same)
        hdr = np.empty(len(same), dtype=[("s", "<u4"), ("u", "<u4"), ("c", "<u4"), ("l", "<u4")])
        hdr["s"], hdr["u"] = same["packet_second"], same["packet_microsecond"]
        hdr["c"], hdr["l"] = same["data_len"], np.maximum(same["packet_length"], same["data_len"])
        hb = hdr.tobytes()
        # one pass gathering header+data spans into a single write
        parts = []
        for i, (o, n) in enumerate(zip(same["data_off"].tolist(), same["data_len"].tolist(), strict=True)):
            parts.append(hb[16 * i: 16 * i + 16])
            parts.append(res.pool[o: o + n].tobytes())
        self.out.write(b"".join(parts))
        self.written += len(same)
        return len(same)

    def close(self) -> None:
        if self.linktype is None:  # no packets: still a valid, empty pcap
            self._header(1)
