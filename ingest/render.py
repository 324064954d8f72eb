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

PROFILES = {"eve": lib.INGEST_FMT_EVE, "trisul": lib.INGEST_FMT_TRISUL}


class StringTable:
    """A list of str packed as one UTF-8 pool with offsets, for the C core."""

    def __init__(self, strings: list[str], append: B.RawPool | None = None) -> None:
        """``append``: a pool of verbatim records whose entries follow the
        strings (entry k of it is string ``len(strings) + k``)."""
        encoded = [s.encode("utf-8", "surrogateescape") for s in strings]
        lens = np.fromiter((len(e) for e in encoded), dtype=np.uint32, count=len(encoded))
        offs = np.zeros(len(encoded), dtype=np.uint32)
        if len(encoded) > 1:
            np.cumsum(lens[:-1], out=offs[1:])
        joined = b"".join(encoded)
        if append is not None and len(append):
            data = append.joined()
            if len(joined) + len(data) >= 1 << 32:
                raise ValueError("batch too large to render (4 GiB of text)")
            offs = np.concatenate([offs, (append.off + len(joined)).astype(np.uint32)])
            lens = np.concatenate([lens, append.len.astype(np.uint32)])
            joined += data
        self.pool = joined or b"\0"
        self.off = offs
        self.len = lens
        self._keep = (
            ffi.from_buffer("uint8_t[]", self.pool),
            ffi.from_buffer("uint32_t[]", self.off),
            ffi.from_buffer("uint32_t[]", self.len),
        )
        self.c = ffi.new("struct ingest_strtab *")
        self.c.pool, self.c.off, self.c.len = self._keep
        self.c.count = len(offs)


def _idx(col: np.ndarray | None, n: int, name: str):
    if col is None:
        return ffi.NULL, None
    col = np.ascontiguousarray(col, dtype=np.int32)
    if len(col) != n:
        raise ValueError(f"{name} must have one entry per alert")
    return ffi.from_buffer("int32_t[]", col), col


def render_json(
    batch: B.AlertBatch,
    profile: str = "eve",
    categories: np.ndarray | None = None,
    extra_strings: list[str] | None = None,
) -> bytes:
    """Render a batch as newline-terminated JSON objects.

    ``categories`` (optional) gives, per alert, an index into
    ``batch.strings + extra_strings`` naming its classification (or -1).
    ``batch.extra`` / ``batch.raw`` are honoured (see AlertBatch).
    """
    alerts = np.ascontiguousarray(batch.alerts)
    n = len(alerts)
    if n == 0:
        return b""
    all_strings = batch.strings + (extra_strings or [])
    table = StringTable(all_strings, batch.raw_pool)
    idx = ffi.new("struct ingest_fmt_idx *")
    idx.cat, keep_c = _idx(categories, n, "categories")
    idx.extra, keep_e = _idx(batch.extra, n, "extra")
    raw = batch.raw
    if raw is not None and batch.raw_pool is not None:  # pool entries follow the strings
        raw = np.where(raw >= 0, raw + len(all_strings), -1)
    idx.raw, keep_r = _idx(raw, n, "raw")
    c_alerts = ffi.from_buffer("struct ingest_alert[]", alerts)
    cap = n * 768 + len(table.pool) * 6 + 4096
    while True:
        out = bytearray(cap)
        written = lib.ingest_format_json(
            c_alerts, n, table.c, idx, PROFILES[profile],
            ffi.from_buffer("uint8_t[]", out, require_writable=True), cap, ffi.NULL,
        )
        if written == lib.INGEST_ENOSPC:
            cap *= 2
            continue
        if written < 0:
            raise ValueError(f"ingest_format_json failed ({written})")
        del keep_c, keep_e, keep_r
        return bytes(memoryview(out)[:written])


def to_records(batch: B.AlertBatch, profile: str = "eve", **kw: Any) -> list[dict[str, Any]]:
    """The batch as a list of dicts (convenience for scripts and tests)."""
    return [json.loads(line) for line in render_json(batch, profile, **kw).splitlines()]


def format_addrs(alerts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination addresses as text arrays ('' where none)."""
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
    return src.astype("U46"), dst.astype("U46")
