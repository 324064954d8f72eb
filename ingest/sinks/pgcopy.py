"""Store columns (ingest.sinks.rows) as one PostgreSQL binary COPY stream,
written by the C core (csrc/pgcopy.c): no Python object per row or value.

``encode(columns, types)`` gives the bytes for ``COPY table (...) FROM STDIN
(FORMAT BINARY)``; ``types`` names each column's PostgreSQL type (``int8``,
``int4``, ``text``).  A value that does not fit its type raises
:class:`OverflowError` (the data's fault: the PostgreSQL sink reports it as
``DataError``, and the runtime isolates the record).  It needs no psycopg.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..native import ffi, lib
from .rows import AsciiColumn, Column, IntColumn, TextColumn

_KINDS = {"int8": lib.INGEST_PGCOL_INT8, "int4": lib.INGEST_PGCOL_INT4}


class Described:
    """Columns as the C writers take them: ``cols`` (a ``struct
    ingest_pgcol[]``), their row count, and every buffer C reads (kept
    alive as long as this object)."""

    __slots__ = ("cols", "ncols", "nrows", "keep")

    def __init__(self, cols, ncols: int, nrows: int, keep: list) -> None:
        self.cols, self.ncols, self.nrows, self.keep = cols, ncols, nrows, keep


def describe(columns: Sequence[Column], types: Sequence[str]) -> Described:
    """The columns as ``struct ingest_pgcol`` for csrc/pgcopy.c and
    csrc/sqlite.c (both read them through csrc/cols.h).  ``types`` names each
    column's type (``int8``, ``int4``, ``text``); ValueError for a column
    that does not fit its type or has the wrong length."""
    if len(columns) != len(types):
        raise ValueError("one type per column")
    n = len(columns[0].idx if isinstance(columns[0], TextColumn) else columns[0].values) if columns else 0
    cols = ffi.new("struct ingest_pgcol[]", max(len(columns), 1))
    keep: list = []  # every buffer C reads stays alive until it has read it

    def buf(arr: np.ndarray, ctype: str):
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        return ffi.from_buffer(ctype, arr)

    for j, (col, kind) in enumerate(zip(columns, types, strict=True)):
        c = cols[j]
        if isinstance(col, IntColumn):
            if kind not in _KINDS:
                raise ValueError(f"column {j}: an integer column cannot be {kind}")
            vals = col.values
            if len(vals) != n:
                raise ValueError(f"column {j}: {len(vals)} values, not {n}")
            # int64 for C: uint64 beyond int64 cannot occur (flow ids and keys are views as int64)
            c.values = buf(vals.astype(np.int64, copy=False), "int64_t[]")
            c.kind = _KINDS[kind]
        elif kind != "text":
            raise ValueError(f"column {j}: a text column cannot be {kind}")
        elif isinstance(col, TextColumn):
            if len(col.idx) != n:
                raise ValueError(f"column {j}: {len(col.idx)} values, not {n}")
            seg = col.table.packed()
            c.values = buf(col.idx, "int32_t[]")
            c.kind = lib.INGEST_PGCOL_TEXT
            # (a table of empty texts has no bytes: C still gets a valid pointer)
            c.tdata = buf(seg.data if len(seg.data) else np.zeros(1, np.uint8), "uint8_t[]")
            c.toff = buf(seg.off, "uint32_t[]") if len(seg) else ffi.NULL
            c.tlen = buf(seg.len, "uint32_t[]") if len(seg) else ffi.NULL
            c.tdata_len = len(seg.data)
            c.tcount = len(seg)
            # a NULL entry of the table (TextTable holds None) is NULL in the column
            nulls = [k for k, t in enumerate(col.table.texts) if t is None]
            if nulls:
                c.values = buf(np.where(np.isin(col.idx, nulls), -1, col.idx).astype(np.int32), "int32_t[]")
        elif isinstance(col, AsciiColumn):
            vals = col.values
            if len(vals) != n:
                raise ValueError(f"column {j}: {len(vals)} values, not {n}")
            c.values = buf(vals, "char[]") if n else ffi.NULL
            c.kind = lib.INGEST_PGCOL_FIXED
            c.width = vals.dtype.itemsize
        else:  # pragma: no cover - the Column union is closed
            raise TypeError(f"column {j}: {type(col).__name__}")
        if not isinstance(col, TextColumn) and col.valid is not None:
            c.valid = buf(col.valid.astype(np.uint8), "uint8_t[]")
    return Described(cols, len(columns), n, keep)


def encode(columns: Sequence[Column], types: Sequence[str]) -> np.ndarray:
    """The binary COPY stream (header, one row per value of the columns,
    trailer) as a uint8 array."""
    d = describe(columns, types)
    size = lib.ingest_pgcopy_size(d.cols, d.ncols, d.nrows)
    if size < 0:
        raise ValueError(f"pgcopy: invalid columns (status {size})")
    out = np.empty(size, np.uint8)
    bad = ffi.new("uint32_t *")
    wrote = lib.ingest_pgcopy_encode(d.cols, d.ncols, d.nrows,
                                     ffi.from_buffer("uint8_t[]", out, require_writable=True), size, bad)
    if wrote == lib.INGEST_ERANGE:
        raise OverflowError(f"row {bad[0]}: a value does not fit its column's type")
    if wrote != size:
        raise ValueError(f"pgcopy: encoding failed (status {wrote})")
    return out
