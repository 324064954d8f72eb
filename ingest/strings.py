"""A batch's string table: a ``list[str]``, or a packed :class:`StringPool`.

Inputs with few distinct texts (signature messages, app names) keep a plain
list.  Inputs with one text per alert (Unified2's pre-rendered JSON members,
verbatim EVE records) hand over a pool of UTF-8 bytes that C produced, so
neither decoding nor rendering ever makes a Python object per alert.  Both
forms index the same way (``strings[i]`` is a str, ``len(strings)``), join
with ``+`` (a list added to a pool gives a pool; no bytes are copied), and
render through one C string table (:class:`ingest.render.StringTable`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np

# One rule for text that is valid JSON but not valid Unicode (a lone
# surrogate escape such as "\ud800"), everywhere text leaves C: every decoded
# str has each lone surrogate replaced by one U+FFFD, and a string table
# holds only valid UTF-8 (what csrc/format.c is promised).  JSON outputs of
# EVE records keep the record's own bytes, escape and all.
_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """text with every lone surrogate replaced by one U+FFFD (valid text is
    returned as is)."""
    return _SURROGATE.sub("\ufffd", text)


def utf8(text: str) -> bytes:
    """text as UTF-8, a lone surrogate as U+FFFD (never raises)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return scrub(text).encode("utf-8")


class Segment:
    """Packed strings: string k is ``data[off[k] : off[k] + len[k]]``, UTF-8.

    ``data`` is any bytes-like object (bytes, a uint8 array, a view of a
    memory-mapped file); ``off``/``len`` are uint32, so a segment holds less
    than 4 GiB (a pool holds as many segments as it needs).
    """

    __slots__ = ("data", "off", "len")

    def __init__(self, data: Any, off: np.ndarray, lens: np.ndarray) -> None:
        self.data = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        self.off = np.ascontiguousarray(off, dtype=np.uint32)
        self.len = np.ascontiguousarray(lens, dtype=np.uint32)
        if len(self.off) != len(self.len):
            raise ValueError("a segment needs one offset and one length per string")
        if len(self.off) and int((self.off.astype(np.uint64) + self.len).max()) > len(self.data):
            raise ValueError("a segment's strings must lie inside its data")

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> Segment:
        texts = strings if isinstance(strings, list) else list(strings)
        try:  # (every sink's render packs its batch's strings: the plain loop first, no call per text)
            encoded = [t.encode() for t in texts]
        except UnicodeEncodeError:  # a lone surrogate somewhere: U+FFFD for it
            encoded = [utf8(t) for t in texts]
        lens = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
        offs = np.zeros(len(encoded), dtype=np.uint64)
        if len(encoded) > 1:
            np.cumsum(lens[:-1], out=offs[1:])
        if len(encoded) and int(offs[-1] + lens[-1]) >= 1 << 32:
            raise ValueError("4 GiB of text in one segment")
        return cls(b"".join(encoded), offs, lens)

    def __len__(self) -> int:
        return len(self.off)

    def get(self, k: int) -> str:
        o = int(self.off[k])
        return self.data[o: o + int(self.len[k])].tobytes().decode("utf-8", "replace")


class StringPool(Sequence[str]):
    """Strings packed in one or more :class:`Segment` s, indexed across them
    in order.  Immutable; ``+`` shares the segments."""

    __slots__ = ("segments", "_starts")

    def __init__(self, segments: Iterable[Segment] = ()) -> None:
        self.segments = tuple(s for s in segments if len(s))
        counts = [len(s) for s in self.segments]
        self._starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).astype(np.int64)

    @classmethod
    def packed(cls, data: Any, off: np.ndarray, lens: np.ndarray) -> StringPool:
        """One segment over C-produced bytes (no copy)."""
        return cls([Segment(data, off, lens)])

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringPool:
        return cls([Segment.from_strings(strings)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[Segment, int]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("string index out of range")
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.segments[s], i - int(self._starts[s])

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        seg, k = self._locate(int(i))
        return seg.get(k)

    def __add__(self, other: Sequence[str]) -> StringPool:
        if isinstance(other, StringPool):
            return StringPool(self.segments + other.segments)
        if isinstance(other, list):
            return StringPool(self.segments + (Segment.from_strings(other),)) if other else self
        return NotImplemented

    def __radd__(self, other: Sequence[str]) -> StringPool:
        if isinstance(other, list):
            return StringPool((Segment.from_strings(other),) + self.segments) if other else self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        """Equal to a pool or a list holding the same strings (decodes both:
        for tests and scripts, not hot paths)."""
        if isinstance(other, StringPool):
            return self.tolist() == other.tolist()
        if isinstance(other, list):
            return self.tolist() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"StringPool({len(self)} strings in {len(self.segments)} segments)"

    def tolist(self) -> list[str]:
        return [s.get(k) for s in self.segments for k in range(len(s))]


Strings = list[str] | StringPool


def concat(parts: Sequence[Strings]) -> Strings:
    """Join string tables in order: lists stay a list; any pool makes a pool
    (list parts are packed, pool segments are shared, not copied)."""
    if all(isinstance(p, list) for p in parts):
        return [s for p in parts for s in p]  # type: ignore[union-attr]
    segs: list[Segment] = []
    for p in parts:
        segs.extend(p.segments if isinstance(p, StringPool) else (Segment.from_strings(p),))
    return StringPool(segs)


def take(strings: Strings, idx: np.ndarray) -> list[str | None]:
    """``strings[i]`` for every i of idx, None where i < 0.  A pool decodes
    each distinct index once (vectorised; Python touches distinct texts)."""
    idx = np.asarray(idx)
    if isinstance(strings, list):
        table = np.array(strings + [None], dtype=object)  # -1 picks the trailing None
        return table[idx].tolist()  # type: ignore[no-any-return]
    uniq, inv = np.unique(idx, return_inverse=True)
    texts = np.array([strings[i] if i >= 0 else None for i in uniq.tolist()] + [None], dtype=object)
    return texts[inv.reshape(-1)].tolist()  # type: ignore[no-any-return]
