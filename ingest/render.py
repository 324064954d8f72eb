"""Output profiles: canonical alert batches rendered as JSON lines by the C core.

``eve``     the Suricata EVE alert schema (existing EVE tools read it as is)
``trisul``  the Trisul input-filter table fields

Both are rendered by ``ingest_format_json`` in csrc/format.c in one call per
batch; Python only builds the batch's string table.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import batch as B
from .native import ffi, lib
from .scratch import Scratch
from .strings import Segment, StringPool, Strings

PROFILES = {"eve": lib.INGEST_FMT_EVE, "trisul": lib.INGEST_FMT_TRISUL}
#: the buffers ingest_format_json writes into (per thread, reused)
_OUT = Scratch()


class StringTable:
    """A batch's strings (a list of str or a packed :class:`StringPool`),
    then ``more`` (mapping's few additions), as one chained C string table.
    A pool's segments are passed as they are: nothing per string is done in
    Python unless the strings come as a list."""

    def __init__(self, strings: Strings, more: list[str] | None = None,
                 append: B.RawPool | None = None) -> None:
        """``append``: a pool of verbatim records whose entries follow the
        strings and ``more`` (EVE's AlertBatch.raw_pool)."""
        segs = list(strings.segments) if isinstance(strings, StringPool) else [Segment.from_strings(strings)]
        if more:
            segs.append(Segment.from_strings(more))
        if append is not None and len(append):
            records = append.joined()
            if len(records) >= 1 << 32:
                raise ValueError("batch too large to render (4 GiB of verbatim records)")
            segs.append(Segment(records, append.off, append.len))
        self.segments = segs
        self._keep: list = []
        self.c = ffi.NULL
        for seg in reversed(segs):  # build the chain back to front
            t = ffi.new("struct ingest_strtab *")
            data = seg.data if len(seg.data) else np.zeros(1, np.uint8)
            t.pool = ffi.from_buffer("uint8_t[]", data)
            t.off = ffi.from_buffer("uint32_t[]", seg.off)
            t.len = ffi.from_buffer("uint32_t[]", seg.len)
            t.pool_len = len(seg.data)  # C checks every string lies inside it
            t.count = len(seg)
            t.next = self.c
            self._keep += [t, t.pool, t.off, t.len, data]
            self.c = t

    @property
    def nbytes(self) -> int:
        return sum(len(s.data) for s in self.segments)


def _idx(col: np.ndarray | None, n: int, name: str):
    if col is None:
        return ffi.NULL, None
    col = np.ascontiguousarray(col, dtype=np.int32)
    if len(col) != n:
        raise ValueError(f"{name} must have one entry per alert")
    return ffi.from_buffer("int32_t[]", col), col


def render_buffer(
    batch: B.AlertBatch,
    profile: str = "eve",
    categories: np.ndarray | None = None,
    extra_strings: list[str] | None = None,
    references: np.ndarray | None = None,
    ends: np.ndarray | None = None,
) -> memoryview:
    """:func:`render_json` without the final copy: a read-only view of the
    rendered lines (what sinks write; big batches are not copied again).

    The view points into a per-thread buffer that later calls reuse only
    once no view of it is alive (ingest/scratch.py): hold it as long as you
    like; drop it when written, and the next call writes into warm pages
    instead of faulting in (and zeroing) fresh ones.

    ``ends`` (optional, a writable uint32 array of one entry per alert)
    receives where each alert's line ends (the NATS sink cuts messages
    at line boundaries with it).

    ``categories`` (optional) gives, per alert, an index into
    ``batch.strings + extra_strings`` naming its classification (or -1);
    ``references`` likewise the JSON array of its ``alert.references``.
    ``batch.extra`` / ``batch.raw`` are honoured (see AlertBatch).
    """
    alerts = np.ascontiguousarray(batch.alerts)
    n = len(alerts)
    if n == 0:
        return memoryview(b"")
    table = StringTable(batch.strings, extra_strings, batch.raw_pool)
    idx = ffi.new("struct ingest_fmt_idx *")
    idx.cat, keep_c = _idx(categories, n, "categories")
    idx.extra, keep_e = _idx(batch.extra, n, "extra")
    idx.refs, keep_f = _idx(references, n, "references")
    raw = batch.raw
    if raw is not None and batch.raw_pool is not None:  # pool entries follow the strings
        raw = np.where(raw >= 0, raw + len(batch.strings) + len(extra_strings or []), -1)
    idx.raw, keep_r = _idx(raw, n, "raw")
    c_alerts = ffi.from_buffer("struct ingest_alert[]", alerts)
    if ends is not None and (ends.dtype != np.uint32 or len(ends) != n or not ends.flags.c_contiguous):
        raise ValueError("ends must be a contiguous uint32 array of one entry per alert")
    c_ends = ffi.NULL if ends is None else ffi.from_buffer("uint32_t[]", ends, require_writable=True)
    # Verbatim members and records dominate big tables; escaping can grow
    # a string 6x, and then the C side says ENOSPC and the buffer doubles.
    cap = n * 768 + table.nbytes * 2 + 4096
    while True:
        # not zeroed: C writes every byte it reports; reused once no
        # earlier result holds it (ingest/scratch.py)
        out = _OUT.take(cap)
        c_out = ffi.from_buffer("uint8_t[]", out, require_writable=True)
        written = lib.ingest_format_json(c_alerts, n, table.c, idx, PROFILES[profile], c_out, cap, c_ends)
        ffi.release(c_out)
        if written == lib.INGEST_ENOSPC:
            cap *= 2
            del out  # free for the bigger take
            continue
        if written < 0:
            raise ValueError(f"ingest_format_json failed ({written})")
        if written >= 1 << 32 and ends is not None:
            raise ValueError("batch too large to render with line ends (4 GiB)")
        del keep_c, keep_e, keep_r, keep_f
        return memoryview(out[:written]).toreadonly()  # type: ignore[arg-type]


def render_json(
    batch: B.AlertBatch,
    profile: str = "eve",
    categories: np.ndarray | None = None,
    extra_strings: list[str] | None = None,
    references: np.ndarray | None = None,
) -> bytes:
    """Render a batch as newline-terminated JSON objects.

    ``categories`` (optional) gives, per alert, an index into
    ``batch.strings + extra_strings`` naming its classification (or -1).
    ``references`` (optional): per alert, the index of its ``alert.references``
    JSON array in the same table (or -1).
    ``batch.extra`` / ``batch.raw`` are honoured (see AlertBatch).
    """
    return bytes(render_buffer(batch, profile, categories, extra_strings, references))


def to_records(batch: B.AlertBatch, profile: str = "eve", **kw: Any) -> list[dict[str, Any]]:
    """The batch as a list of dicts (convenience for scripts and tests)."""
    return [json.loads(line) for line in render_json(batch, profile, **kw).splitlines()]


def format_addrs(alerts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination addresses as text arrays ('' where none)."""
    src, dst = format_addrs_ascii(alerts)
    return src.astype("U46"), dst.astype("U46")


def format_times_ascii(ts_us: np.ndarray) -> np.ndarray:
    """Alert times as JSON outputs write them (``2026-11-27T18:03:50.123456+0000``,
    the year clamped to 0000..9999), an ``S31`` array."""
    ts = np.ascontiguousarray(ts_us, dtype=np.int64)
    out = np.zeros(len(ts), dtype=f"S{lib.INGEST_TIME_TEXT}")
    if len(ts):
        lib.ingest_format_times(ffi.from_buffer("int64_t[]", ts), len(ts),
                                ffi.from_buffer("char[]", out, require_writable=True))
    return out


def format_addrs_ascii(alerts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """format_addrs as ``S46`` arrays (ASCII, NUL-padded; b'' where none)."""
    alerts = np.ascontiguousarray(alerts)
    n = len(alerts)
    src = np.zeros(n, dtype="S46")
    dst = np.zeros(n, dtype="S46")
    if n:
        lib.ingest_format_addrs(
            ffi.from_buffer("struct ingest_alert[]", alerts), n,
            ffi.from_buffer("char[]", src, require_writable=True),
            ffi.from_buffer("char[]", dst, require_writable=True),
        )
    return src, dst
