"""Isolating the records a sink refuses (``DataError``), so one bad record
never costs its neighbours.

An enriched batch is seen as a row of *records*: its alerts, then the
non-alert events riding with it (one line each in ``EventBatch.lines``, flow
rows attached to their line).  :func:`split` halves it; the caller writes
each half again (the runtime with its usual retries for a sink that is
down), down to single records, which it dead-letters with
:func:`record_bytes`.  k bad records among n cost about 2·k·log2(n) writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from .batch import AlertBatch, EventBatch
from .flows.record import event_batch
from .mapping import Enriched
from .render import render_json
from .sinks.base import DataError


def _event_units(ev: EventBatch | None) -> int:
    """Events that can be told apart: one per line (ingest.eve makes every
    event one line); a batch whose lines do not match its count is one unit."""
    if ev is None or not ev.count:
        return 0
    if ev.lazy:  # flow records alone: one line each, when rendered
        return ev.count
    return ev.count if ev.lines.count(b"\n") == ev.count else 1


def units(item: Enriched) -> int:
    """Records in item: alerts, then events."""
    return len(item.batch) + _event_units(item.batch.events)


def _events(ev: EventBatch, lo: int, hi: int) -> EventBatch | None:
    if hi <= lo:
        return None
    if ev.lazy:  # flow records alone, line k is record k: still nothing rendered
        assert ev.records is not None
        r = ev.records
        return event_batch(r.subset(slice(lo, hi)))
    if _event_units(ev) != ev.count:  # one opaque unit
        return ev
    nl = np.flatnonzero(np.frombuffer(ev.lines, np.uint8) == 10)
    start = 0 if lo == 0 else int(nl[lo - 1]) + 1
    stop = int(nl[hi - 1]) + 1
    at = ev.flow_line if len(ev.flow_line) == len(ev.flows) else [0] * len(ev.flows)
    keep = [j for j, line in enumerate(at) if lo <= line < hi]
    records, record_line = None, None
    if ev.records is not None and len(ev.records):
        sel = (ev.record_line >= lo) & (ev.record_line < hi)
        records = ev.records.subset(sel)
        record_line = ev.record_line[sel] - lo
    return EventBatch(ev.lines[start:stop], hi - lo, [ev.flows[j] for j in keep], {},
                      [at[j] - lo for j in keep], records, record_line)


def part(item: Enriched, lo: int, hi: int) -> Enriched:
    """Records [lo, hi) of item, as an item of its own (no acks: the whole
    batch is acknowledged once every part is stored or dead-lettered)."""
    b = item.batch
    n = len(b)
    sl = slice(min(lo, n), min(hi, n))

    def col(c: np.ndarray | None) -> np.ndarray | None:
        return None if c is None else c[sl]

    events = _events(b.events, max(lo - n, 0), max(hi - n, 0)) if b.events is not None else None
    # strings and the raw pool are shared: the sliced columns still index them
    sub = AlertBatch(b.alerts[sl], b.strings, b.origin, [], col(b.extra), col(b.raw), col(b.cat),
                     col(b.keys), events, b.raw_pool, b.sensor, refs=col(b.refs))
    return Enriched(sub, col(item.categories), item.strings)


def split(item: Enriched) -> tuple[Enriched, Enriched]:
    k = units(item)
    return part(item, 0, k // 2), part(item, k // 2, k)


def record_bytes(item: Enriched) -> bytes:
    """One refused record as it goes to the dead-letter file: an EVE record
    or event verbatim, any other alert as its EVE JSON line."""
    b = item.batch
    if len(b) == 0:
        return b.events.lines.rstrip(b"\n") if b.events is not None else b""
    if b.raw is not None and b.raw_pool is not None and b.raw[0] >= 0:
        return b.raw_pool.get(int(b.raw[0]))
    try:
        return render_json(b, "eve", item.categories, item.extra_strings).rstrip(b"\n")
    except Exception:  # the record may be refused because it cannot be rendered
        return repr(b.alerts.tolist()).encode()


async def write_isolating(write: Callable[[Enriched], Awaitable[None]], item: Enriched,
                          reject: Callable[[Enriched, DataError], None]) -> int:
    """Write item; when ``write`` raises DataError, write its halves, down to
    the single records it refuses, which go to ``reject``.  Other errors
    propagate.  Returns the number of alerts written."""
    try:
        await write(item)
        return len(item.batch)
    except DataError as e:
        if units(item) <= 1:
            reject(item, e)
            return 0
        done = 0
        for half in split(item):
            done += await write_isolating(write, half, reject)
        return done
