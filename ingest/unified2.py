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

import mmap
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import BinaryIO

import numpy as np

from . import batch as B
from ._native import ffi, lib
from .safefile import open_input
from .scratch import Scratch
from .strings import Segment, StringPool

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

#: default window of iter_read and the spool follower: bounds their memory
CHUNK_SIZE = 16 << 20
#: records of types >= 256 (not Unified2's) noted per C call before Python counts them
ODD_CAP = 4096


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
        (base64) and decoded extra-data as JSON members, rendered by C into
        a packed string pool (no Python object per alert)."""
        names: list[str] = []
        alerts = self.alerts
        if self.events["text_len"][:, 0].any():  # app_idx to set: on a copy
            alerts = alerts.copy()
            _app_names(alerts, self.events, self.pool, names)
        members, extra = _render_members(self, len(names))
        return B.AlertBatch(alerts, StringPool.from_strings(names) + members, self.origin, extra=extra)

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


#: rendered members per string-pool segment stay below this (32-bit offsets)
SEGMENT_MAX = 1 << 30
#: the buffers ingest_u2_render writes into (per thread, reused: ingest/scratch.py)
_MEMBERS = Scratch()


def _render_members(res: Unified2Result, base: int) -> tuple[StringPool, np.ndarray | None]:
    """Per alert, its JSON members, rendered by C into packed segments; the
    per-alert column indexes them from ``base`` on."""
    n = len(res.alerts)
    if n == 0:
        return StringPool(), None
    pk_idx, pk_start = _groups(res.packet_event, n)
    ex_idx, ex_start = _groups(res.extra_event, n)
    pool = res.pool if len(res.pool) else np.zeros(1, np.uint8)
    # worst case per alert: fixed text, packets in base64 (4/3, once),
    # extra-data and event texts escaped (6x; http uri/hostname appear twice)
    pj, xj = res.packet_event >= 0, res.extra_event >= 0
    pk_bytes = np.bincount(res.packet_event[pj], res.packets["data_len"][pj], minlength=n).astype(np.int64)
    ex_bytes = np.bincount(res.extra_event[xj], res.extra["data_len"][xj], minlength=n).astype(np.int64)
    need = 1024 + pk_bytes[:n] * 4 // 3 + 192 * (pk_start[1:] - pk_start[:-1]) + ex_bytes[:n] * 12 \
        + 128 * (ex_start[1:] - ex_start[:-1]) + 6 * res.events["text_len"].sum(axis=1, dtype=np.int64)
    events = np.ascontiguousarray(res.events)
    packets = np.ascontiguousarray(res.packets)
    extra = np.ascontiguousarray(res.extra)
    c_pool = ffi.from_buffer("uint8_t[]", pool)
    c_pk = ffi.from_buffer("struct ingest_u2_packet[]", packets) if len(packets) else ffi.NULL
    c_ex = ffi.from_buffer("struct ingest_u2_extra[]", extra) if len(extra) else ffi.NULL
    c_pk_idx = ffi.from_buffer("uint32_t[]", pk_idx) if len(pk_idx) else ffi.NULL
    c_ex_idx = ffi.from_buffer("uint32_t[]", ex_idx) if len(ex_idx) else ffi.NULL
    segments = []
    # alerts in runs whose members fit one segment
    cum = np.concatenate(([0], np.cumsum(need)))
    lo = 0
    while lo < n:
        hi = max(lo + 1, int(np.searchsorted(cum, cum[lo] + SEGMENT_MAX, side="right")) - 1)
        hi = min(hi, n)
        cap = int(cum[hi] - cum[lo]) + 4096
        out = _MEMBERS.take(cap)  # reused once no batch holds it
        ends = np.empty(hi - lo, dtype=np.uint32)
        # start arrays rebased to this run: the C side sees events lo..hi
        ps = np.ascontiguousarray(pk_start[lo: hi + 1])
        xs = np.ascontiguousarray(ex_start[lo: hi + 1])
        k = lib.ingest_u2_render(
            ffi.from_buffer("struct ingest_u2_event[]", events[lo:hi]), hi - lo, c_pool, len(res.pool),
            c_pk, len(packets), c_pk_idx, ffi.from_buffer("uint32_t[]", ps),
            c_ex, len(extra), c_ex_idx, ffi.from_buffer("uint32_t[]", xs),
            _c("uint8_t[]", out), cap, _c("uint32_t[]", ends),
        )
        if k < 0:  # the bound above is a worst case: ENOSPC is a bug too
            raise ValueError(f"ingest_u2_render: inconsistent rows ({k})")
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1]
        segments.append(Segment(out[:k], starts, ends - starts))
        lo = hi
    return StringPool(segments), np.arange(base, base + n, dtype=np.int32)


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


class _Rows:
    """The row arrays of one window, grown in place (realloc, no copy) when
    the C decoder says one is full.

    The arrays are reused by later windows (and later ``read()`` calls) of
    the same thread once no result holds a view of them any more (see
    ingest/scratch.py for the rule): a fresh array costs a page fault and a
    zeroed page per 4 KiB written, which was 63 % of ``read()`` (issue 10).
    A result is therefore never overwritten: keeping it only makes the next
    window take other memory."""

    NAMES = ("alerts", "events", "packets", "pk_event", "extra", "ex_event", "odd", "counts", "pool")

    def __init__(self, nbytes: int | None = None, copy_pool: bool = False) -> None:
        self.alerts = np.empty(0, dtype=B.ALERT_DTYPE)
        self.events = np.empty(0, dtype=EVENT_DTYPE)
        self.packets = np.empty(0, dtype=PACKET_DTYPE)
        self.pk_event = np.empty(0, dtype=np.int32)
        self.extra = np.empty(0, dtype=EXTRA_DTYPE)
        self.ex_event = np.empty(0, dtype=np.int32)
        self.odd = np.empty(ODD_CAP, dtype=np.uint32)
        self.counts = np.zeros(257, dtype=np.uint64)
        self.pool: np.ndarray | None = None
        self.out = ffi.new("struct ingest_u2_out *")
        self._keep: list = []
        self._use_pool = False
        if nbytes is not None:
            self.reset(nbytes, copy_pool)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in self.NAMES if getattr(self, n) is not None)

    def free(self) -> bool:
        """No result holds a view of these arrays (reference counts: the
        attribute and getrefcount's argument)."""
        d = self.__dict__
        return all(d[n] is None or sys.getrefcount(d[n]) <= 2 for n in self.NAMES)

    def reset(self, nbytes: int, copy_pool: bool) -> None:
        """Start a window of nbytes: counters zeroed, every array at least
        its first guess (grown geometrically, never shrunk)."""
        guess = nbytes // 256 + 16  # the real file: ~150 bytes per record
        for names, want in ((("alerts", "events", "packets", "pk_event"), guess),
                            (("extra", "ex_event"), guess // 2 + 16)):
            for name in names:
                a = getattr(self, name)
                if len(a) < want:
                    setattr(self, name, np.empty(max(want, 2 * len(a)), dtype=a.dtype))
        self.counts[:] = 0
        if copy_pool:
            # every variable-length byte lies inside a body of this window
            if self.pool is None or len(self.pool) < nbytes + 1:
                have = 0 if self.pool is None else len(self.pool)
                self.pool = None
                self.pool = np.empty(max(nbytes + 1, 2 * have), dtype=np.uint8)
            self._use_pool = True
        else:
            self._use_pool = False
        self.out = ffi.new("struct ingest_u2_out *")
        self.out.last_ev = -1
        self._attach()

    def _attach(self) -> None:
        o, keep = self.out, []

        def c(ctype: str, arr: np.ndarray):
            cd = ffi.from_buffer(ctype, arr, require_writable=True)
            keep.append(cd)
            return cd

        o.alerts = c("struct ingest_alert[]", self.alerts)
        o.ev = c("struct ingest_u2_event[]", self.events)
        o.ev_cap = len(self.alerts)
        o.pk = c("struct ingest_u2_packet[]", self.packets)
        o.pk_event = c("int32_t[]", self.pk_event)
        o.pk_cap = len(self.packets)
        o.ex = c("struct ingest_u2_extra[]", self.extra)
        o.ex_event = c("int32_t[]", self.ex_event)
        o.ex_cap = len(self.extra)
        o.odd = c("uint32_t[]", self.odd)
        o.odd_cap = len(self.odd)
        o.counts = c("uint64_t[]", self.counts)
        if self._use_pool and self.pool is not None:
            o.pool = c("uint8_t[]", self.pool)
            o.pool_cap = len(self.pool)
        self._keep = keep

    def _release(self) -> None:
        for cd in self._keep:
            ffi.release(cd)
        self._keep = []

    def grow(self, odd_types: dict[int, int]) -> None:
        """After INGEST_U2_FULL: enlarge whatever is full."""
        o = self.out
        self._release()
        if o.nodd == o.odd_cap:  # keep the odd types counted, start over
            t, c = np.unique(self.odd[: o.nodd], return_counts=True)
            for k, v in zip(t.tolist(), c.tolist(), strict=True):
                odd_types[k] = odd_types.get(k, 0) + v
            # the snapshot's odd count is older than any unwinding can reach
            o.snap_nodd = 0
            o.nodd = 0
        for names, cap in ((("alerts", "events"), o.ev_cap), (("packets", "pk_event"), o.pk_cap),
                           (("extra", "ex_event"), o.ex_cap)):
            used = {"alerts": o.nev, "packets": o.npk, "extra": o.nex}[names[0]]
            if used == cap:
                for name in names:
                    # nothing else holds these arrays (free() or fresh):
                    # resize reallocates in place where it can (mremap)
                    getattr(self, name).resize(2 * cap, refcheck=False)
        self._attach()

    def finish(self) -> tuple[np.ndarray, ...]:
        """The used rows, as views (the arrays stay whole for reuse)."""
        o = self.out
        self._release()
        return (self.alerts[: o.nev], self.events[: o.nev], self.packets[: o.npk],
                self.pk_event[: o.npk], self.extra[: o.nex], self.ex_event[: o.nex])


#: per thread, the row arrays kept for reuse (two: a caller's loop still
#: holds the previous result while the next window is decoded)
_ROW_SLOTS = 2
#: a set of row arrays larger than this is used once, not kept
ROWS_KEEP_BYTES = 256 << 20
_rows_local = threading.local()


def _take_rows(nbytes: int, copy_pool: bool) -> _Rows:
    """Row arrays for a window: a kept set no result holds, else a new one."""
    kept: list[_Rows] = getattr(_rows_local, "rows", None) or []
    _rows_local.rows = kept
    for r in kept:
        if r.free():
            r.reset(nbytes, copy_pool)
            if r.nbytes > ROWS_KEEP_BYTES:
                kept.remove(r)
            return r
    r = _Rows(nbytes, copy_pool)
    if len(kept) < _ROW_SLOTS and r.nbytes <= ROWS_KEEP_BYTES:
        kept.append(r)
    return r


def release_buffers() -> None:
    """Drop the calling thread's reusable output buffers (the row arrays
    and the rendered-member buffers); results still held stay valid."""
    _rows_local.rows = []
    _MEMBERS.release()


class Decoder:
    """Incremental decoder over a reusable buffer (the C core's caller-owned
    memory), or over a caller's complete buffer (``whole``, e.g. a memory
    map) in windows of ``window`` bytes, decoded in place.

    In streaming mode (``final=False``) the last event of the window stays
    open: its records are kept (``resume_offset`` points at the event) until
    the next event arrives, so an event is never emitted without packets
    that are still to come.  ``final=True`` closes it (end of file, or the
    caller's timeout).  Over a ``whole`` buffer every window but the last is
    streamed that way, and ``final`` applies to the last.
    """

    def __init__(self, base: int = 0, chunk_size: int = CHUNK_SIZE, origin: str = "",
                 *, whole: np.ndarray | None = None, window: int | None = None) -> None:
        if whole is not None:
            # in place over a caller's complete buffer; base is where to start
            self.buf, self.cap, self.n, self.zero_copy = whole, len(whole), len(whole), True
            self.start = base
            self.base = 0  # absolute offset of buf[0]
            # a window always holds a complete record; offsets in a window
            # stay below 4 GiB (event text offsets are 32-bit)
            self.window = min(max(int(window or len(whole)), 2 * (MAX_RECORD + HDR_LEN)), 1 << 31)
        else:
            # Room for at least two of the largest records, so a window always
            # holds a complete record.
            self.cap = max(int(chunk_size), 2 * (MAX_RECORD + HDR_LEN))
            self.buf = np.empty(self.cap, dtype=np.uint8)
            self.n = 0
            self.zero_copy = False
            self.start = 0  # always 0 here: the tail is moved to the front
            self.base = base  # absolute offset of buf[0]
            self.window = self.cap
        self.origin = origin
        self._stop = ffi.new("size_t *")
        self._reason = ffi.new("int *")
        self.fatal: tuple[int, str] | None = None
        self.last_reason = lib.INGEST_U2_END
        self.reached_end = False

    @property
    def held(self) -> int:
        """Bytes not yet decoded into a result (carry)."""
        return self.n - self.start

    @property
    def room(self) -> int:
        return self.cap - self.n

    @property
    def done(self) -> bool:
        """Over a whole buffer: everything was decoded (or the file stopped)."""
        return self.start >= self.n or self.fatal is not None

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
        """Decode what is held (over a whole buffer: the next window); keep
        the unconsumed tail for the next call."""
        lo = self.start
        hi = min(self.n, lo + self.window)
        at_end = hi == self.n
        final = final and at_end
        # a lone open event filling the whole window must go anyway
        can_wait = not self.zero_copy and self.room > 0
        view = self.buf[lo:hi]
        base = self.base + lo  # absolute offset of view[0]
        c_view = ffi.from_buffer("uint8_t[]", view) if len(view) else ffi.new("uint8_t[]", 1)
        n = len(view)
        rows = _take_rows(n, copy_pool=not self.zero_copy)
        o = rows.out
        odd_types: dict[int, int] = {}
        pos = 0
        errors: list[tuple[int, str]] = []
        skipped = 0
        fatal = False
        reason = lib.INGEST_U2_END
        while pos < n and self.fatal is None:
            k = lib.ingest_u2_decode(c_view, n, pos, base, o, self._stop, self._reason)
            if k < 0:
                raise ValueError(f"ingest_u2_decode failed ({k})")
            pos = self._stop[0]
            reason = self._reason[0]
            if reason == lib.INGEST_U2_FULL:
                rows.grow(odd_types)
                continue
            if reason in (lib.INGEST_U2_END, lib.INGEST_U2_PARTIAL):
                break
            at = base + pos
            if reason == lib.INGEST_U2_PCAP:
                magic = int.from_bytes(view[pos: pos + 4].tobytes(), "big")
                kind = "pcapng" if magic == 0x0A0D0D0A else "pcap"
                msg = (f"this is a {kind} file, not Unified2 (magic {magic:08x}; Snort's "
                       f"log_tcpdump output?)" if at == 0 else
                       f"{kind} data (magic {magic:08x}) inside Unified2; stopping this file")
                self.fatal = (at, msg)
                break
            # INGEST_U2_BADLEN: resynchronise on the next plausible header
            # (over a whole buffer, anywhere in the rest of it)
            length = int.from_bytes(view[pos + 4: pos + 8].tobytes(), "big")
            rtype = int.from_bytes(view[pos: pos + 4].tobytes(), "big")
            rest = self.buf[lo:] if self.zero_copy else view
            nxt = lib.ingest_u2_resync(ffi.from_buffer("uint8_t[]", rest), len(rest), pos + 1)
            if nxt >= 0:
                errors.append((at, f"record type {rtype} with insane length {length} (> {MAX_RECORD}); "
                                   f"resynchronised at offset {base + nxt}, skipped {nxt - pos} bytes"))
                skipped += nxt - pos
                pos = nxt
                o.snap_valid = 0  # a bad region closes the open event
                continue
            if final or not can_wait:
                self.fatal = (at, f"record type {rtype} with insane length {length} (> {MAX_RECORD}); "
                                  f"no valid record follows: stopping this file")
            break
        if self.fatal is not None and base <= self.fatal[0] <= base + n:
            fatal = True
            errors.append(self.fatal)
            pos = self.fatal[0] - base
        # Streaming: hold back the last event and what follows it, unless it
        # is the first record and the window cannot grow.
        end = min(pos, n)
        resume = base + pos
        if not final and not fatal and o.snap_valid and (o.snap_pos > 0 or can_wait):
            back = lib.ingest_u2_unwind(c_view, end, o)
            if back >= 0:
                resume = base + back
        if final and not fatal and reason == lib.INGEST_U2_PARTIAL and pos < n:
            errors.append((base + pos, self._partial_message(view, base, pos)))
        self.last_reason = reason
        self.reached_end = at_end
        res = self._result(rows, odd_types, view, resume, errors, skipped, fatal)
        # keep the tail
        keep_from = resume - self.base
        if self.zero_copy:
            self.start = keep_from
        elif keep_from > 0:
            tail = self.n - keep_from
            self.buf[:tail] = self.buf[keep_from: self.n]
            self.n = tail
            self.base = resume
        return res

    @staticmethod
    def _partial_message(view: np.ndarray, base: int, pos: int) -> str:
        have = len(view) - pos
        at = base + pos
        if have < HDR_LEN:
            return f"incomplete record header at offset {at} ({have} of 8 bytes)"
        t = int.from_bytes(view[pos: pos + 4].tobytes(), "big")
        ln = int.from_bytes(view[pos + 4: pos + 8].tobytes(), "big")
        kind = "" if t in KNOWN_TYPES else " (unknown type: misaligned or not Unified2?)"
        return (f"incomplete record at offset {at}: type {t}{kind}, {have} of "
                f"{ln + HDR_LEN} bytes")

    def _result(self, rows: _Rows, odd_types: dict[int, int], view: np.ndarray, resume: int,
                errors, skipped: int, fatal: bool) -> Unified2Result:
        o = rows.out
        counts = {int(t): int(c) for t, c in enumerate(rows.counts[:256].tolist()) if c}
        if o.nodd:
            t, c = np.unique(rows.odd[: o.nodd], return_counts=True)
            for k, v in zip(t.tolist(), c.tolist(), strict=True):
                odd_types[k] = odd_types.get(k, 0) + v
        counts.update(odd_types)
        unknown = sum(v for k, v in counts.items() if k not in KNOWN_TYPES)
        malformed = int(o.malformed)
        # the pool: the window itself (in place) or the bytes copied out of it
        pool = view if self.zero_copy else rows.pool[: o.pool_used]  # type: ignore[index]
        alerts, events, packets, pe, extra, xe = rows.finish()
        # rows that are not right after their event: the general join
        for x, owner in ((packets, pe), (extra, xe)):
            later = np.flatnonzero(owner == lib.INGEST_U2_JOIN_LATER)
            if len(later):
                ev_sec = (alerts["ts_us"] // 1_000_000).astype(np.uint32)
                owner[later] = _join(alerts["event_id"], ev_sec, events["offset"],
                                     x["event_id"][later], x["event_second"][later], x["offset"][later])
                if x is packets:
                    hit = owner[later]
                    alerts["flags"][hit[hit >= 0]] |= B.F_PACKET
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
    return Unified2Result.concat(list(_windows(whole, 0, WINDOW, origin)))


def _windows(whole: np.ndarray, offset: int, window: int, origin: str) -> Iterator[Unified2Result]:
    dec = Decoder(offset, origin=origin, whole=whole, window=window)
    while True:
        res = dec.decode(final=True)
        if dec.done or dec.reached_end or len(res.alerts) or len(res.packets) or len(res.extra) \
                or res.errors:
            yield res
        if dec.done or dec.reached_end:
            return


def _map(path: str | os.PathLike[str]) -> np.ndarray:
    """The file, memory-mapped read-only (the page cache is the buffer: no
    copy, nothing held that the kernel cannot evict).  A file truncated by
    someone else while mapped would fault (SIGBUS): spool files are only
    ever appended to, and the live follower reads instead of mapping.
    Only a regular file is mapped: a FIFO or device is refused at once
    (opened non-blocking, so a FIFO cannot hang the caller)."""
    with open(open_input(os.fspath(path), follow_symlinks=True), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return np.zeros(0, dtype=np.uint8)
        mm = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    mm.madvise(mmap.MADV_SEQUENTIAL)
    return np.frombuffer(mm, dtype=np.uint8)


def iter_read(path: str | os.PathLike[str], *, offset: int = 0, chunk_size: int = CHUNK_SIZE,
              origin: str | None = None) -> Iterator[Unified2Result]:
    """Decode a file in windows of about ``chunk_size`` bytes (bounded
    memory: the file is memory-mapped, each result holds its window's rows).
    Events are never split between windows; a result's ``pool`` is a view of
    the mapped file."""
    origin = origin if origin is not None else f"unified2:{os.fspath(path)}"
    yield from _windows(_map(path), offset, chunk_size, origin)


#: read() and decode() decode in windows of this size (one window up to it)
WINDOW = 256 << 20


def read(path: str | os.PathLike[str], *, offset: int = 0, chunk_size: int = WINDOW) -> Unified2Result:
    """Decode a whole Unified2 file: the alerts, the packet and extra-data
    rows, and their bytes.  The file is memory-mapped and decoded in place
    (files larger than ``chunk_size`` in windows, joined; use
    :func:`iter_read` to keep memory bounded)."""
    origin = f"unified2:{os.fspath(path)}"
    return Unified2Result.concat(list(_windows(_map(path), offset, chunk_size, origin)))


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
