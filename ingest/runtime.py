"""The runtime: sources -> bounded queue -> mapping -> sinks, and shutdown.

* Sources run their own reader threads and hand batches over with
  ``reserve``/``submit`` (thread-safe).  The queue is bounded in alerts
  (``max_queue``) and in bytes (``max_queue_bytes``: one budget for the
  queued batches and the sources' per-connection line buffers, which may
  take at most half of it); a socket reader that finds it full
  dead-letters instead of waiting, a file reader waits (the data stays on
  disk).  The byte bound can be passed by at most one batch per reader
  thread (a batch is charged when it is handed over), and one dispatched
  batch holds at most ``max_queue_bytes / 16`` so that the copies its
  rendering makes stay small next to the budget.
* One consumer coroutine takes whatever is queued (up to ``batch_max``
  alerts; if less is there it lingers ``linger`` seconds for more, so low
  rates still flush within a few ms), enriches it once, and writes it to
  every sink concurrently.  A batch is acknowledged (its ``acks`` run:
  Barnyard2 sync acknowledgements, bookmarks) only after every sink returned.
  One batch is written at a time, unless every sink takes several writes
  at once (``concurrent_writes``: the PostgreSQL sink's connections): then
  up to that many are written together, so one batch's transaction runs
  while the next one is prepared and sent, and their outcomes (acks or
  dead letters) are still handled in the order the batches were taken.
  A failing sink is retried with back-off (0.5 s doubling to 30 s); while
  it waits, a sink that has a cheap ``probe`` is probed every 0.25 s, and
  the write is retried as soon as the probe says the sink is back, so a
  backlog drains at full speed right after an outage.  Sinks that already
  have the batch are not written twice.  A write that has started is never
  abandoned (it could still commit): it is awaited, and only its outcome
  decides the batch's fate.
  A sink that refuses the *data* (``DataError``) is not retried with the
  same batch: the records it refuses are isolated by bisection and
  dead-lettered (``sink_rejected``), the rest delivered.  A sink that can
  never take another write (``SinkGone``: ``jsonl:-`` whose reader went
  away) stops the process as SIGTERM does; what it did not get is
  dead-lettered (``sink_failed``), the other sinks get everything.  A
  sink that cannot keep a batch and never will (``Dropped``: its spool is
  full) has it dead-lettered and counted as dropped by the reason it
  gives; the batch is acknowledged.
* A sink that spools while its destination is away (the NATS sink) says
  so with ``hold_file_input``: file readers (eve.json, Unified2 spools)
  then wait instead of reading on (their file is the buffer and their
  bookmark stays), while socket readers keep draining into the sink's
  spool.  A sink's ``stats()`` (counters and gauges) joins the stats lines;
  its ``start()``, if it has one, is awaited before the sources start.
* Shutdown (SIGTERM/SIGINT): stop reading after draining what the kernel
  queued, dispatch everything queued, flush and close sinks, remove socket
  files, print the final stats line, exit 0.  ``drain_timeout`` bounds
  the drain: after it no new write starts, and what is left goes to the
  dead-letter file (``shutdown_timeout``, exit 1).
* A reader thread that dies, for any reason, stops the whole process at
  once (the stats line and the log name it, exit 1): a process that looks
  healthy while one of its inputs is not read would stall a blocking
  sender (Snort) or lose a dropping one (Suricata) unnoticed, while an
  exit is what a supervisor (systemd ``Restart=on-failure``) acts on.
* SIGHUP is always handled, never fatal: JSON-lines sinks and the
  dead-letter file are reopened (logrotate moved them), and the maps are
  reloaded when some are configured.  A burst of SIGHUPs coalesces: one
  reload runs at a time, and at most one more is queued behind it.

uvloop appears only in :func:`run`, the loop factory.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import isolate
from .batch import AlertBatch
from .deadletter import DeadLetter
from .mapping import Enriched, Enricher
from .ops.logs import at
from .render import render_json
from .sinks.base import DataError, Sink, SinkGone
from .sinks.errors import Dropped
from .sockets import watch_sockets
from .sources.base import Source
from .stats import Stats
from .strings import StringPool

_log = logging.getLogger(__name__)
_stats_log = logging.getLogger("ingest.stats")

#: sink retry back-off: first delay, cap; and how often a waiting sink is probed
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
PROBE_INTERVAL = 0.25
#: at shutdown, how long past drain_timeout a write in progress may take
#: before it is given up as unconfirmed (sinks bound their own writes)
WRITE_GRACE = 60.0


class Undelivered(Exception):
    """A sink gave up (past the shutdown drain timeout) while isolating
    refused records: it has some parts of the item and not others.
    ``spans`` are the unit ranges [lo, hi) of the item (alerts, then events,
    as :mod:`ingest.isolate` counts them) that it does not have; everything
    else was stored or dead-lettered as refused.  Only these go to the
    dead-letter file as ``sink_failed``, so no committed alert is also
    counted as not delivered."""

    def __init__(self, spans: list[tuple[int, int]], cause: BaseException) -> None:
        super().__init__(f"{cause!r} ({sum(h - lo for lo, h in spans)} records not written)")
        self.spans = spans
        self.cause = cause


#: a dispatched batch of flow records alone holds up to this many times
#: batch_max records (Pipeline._take).  Measured in process (BENCHMARKS.md,
#: "Sustained, against nfcapd"): 32,768 flows per SQLite transaction instead
#: of 8,192 took 0.70-0.80x the CPU per flow and stored 1.8-1.9x the flows/s
FLOW_BATCH_FACTOR = 4


def _flow_records_only(b: AlertBatch) -> bool:
    """A batch of canonical flow records and nothing else (no alert, no EVE line)."""
    ev = b.events
    return (not len(b.alerts) and ev is not None and ev.records is not None
            and len(ev.records) == len(ev))


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping union of [lo, hi) ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(s for s in spans if s[1] > s[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def batch_nbytes(b: AlertBatch) -> int:
    """Bytes a queued batch holds (what the byte budget charges)."""
    n = b.alerts.nbytes
    for col in (b.extra, b.raw, b.cat, b.keys):
        if col is not None:
            n += col.nbytes
    if b.raw_pool is not None:
        d = b.raw_pool.data
        n += sum(len(x) for x in d) if isinstance(d, list) else len(d)
        n += b.raw_pool.off.nbytes + b.raw_pool.len.nbytes
    if b.events is not None:
        n += b.events.nbytes()
    st = b.strings
    if isinstance(st, StringPool):
        n += sum(seg.data.nbytes + seg.off.nbytes + seg.len.nbytes for seg in st.segments)
    else:
        n += sum(len(x) + 56 for x in st)  # str object overhead
    return n


def source_kind(src: Source) -> str:
    """An input's kind as its flag names it (snort, eve-stream, ...; nats)."""
    kind = getattr(src, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return src.origin.split(":", 1)[0]


class Pipeline:
    def __init__(
        self,
        sources: Sequence[Source],
        sinks: Sequence[Sink],
        *,
        enricher: Enricher | None = None,
        stats: Stats | None = None,
        deadletter: DeadLetter | None = None,
        max_queue: int = 1_000_000,
        max_queue_bytes: int = 512 << 20,
        batch_max: int = 8192,
        linger: float = 0.002,
        stats_interval: float = 10.0,
        drain_timeout: float = 30.0,
        reload_maps: Callable[[], str] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.enricher = enricher or Enricher()
        self.stats = stats or Stats()
        self.deadletter = deadletter or DeadLetter(None)
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        #: the most bytes one dispatched batch holds (rendering copies it)
        self.take_bytes = max(max_queue_bytes // 16, 1 << 20)
        self.batch_max = batch_max
        self.linger = linger
        self.stats_interval = stats_interval
        self.drain_timeout = drain_timeout
        #: loads and swaps in the maps (blocking; raises on an error, saying
        #: which file and line); returns a one-line summary.  None: no maps.
        self.reload_maps = reload_maps
        self._hup_task: asyncio.Task | None = None
        self._hup_again = False
        self._hup_pool: ThreadPoolExecutor | None = None
        self._stopping = False
        self._dq: collections.deque[tuple[AlertBatch, int]] = collections.deque()
        self._room = threading.Condition()
        self._depth = 0
        self._qbytes = 0  # bytes of the batches queued or being dispatched
        self._bufbytes = 0  # bytes of the sources' line buffers
        self._writes: set[asyncio.Future] = set()  # sink writes in progress
        self._failed: dict[str, BaseException | None] = {}  # dead readers
        self._stop_event: asyncio.Event | None = None
        self._prev_excepthook = threading.excepthook
        self._waiting = False
        self._closing = False
        self._closing_since = 0.0
        self._inflight: AlertBatch | None = None
        #: batches being written at once (sinks with concurrent_writes > 1), in the order taken:
        #: (batch, its queue bytes, its write)
        self._pipeline: collections.deque[tuple[AlertBatch, int, asyncio.Future]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._rejected = 0  # records a sink refused (DataError), for the log's rate limit
        self._gone: set[str] = set()  # sinks that can never take another write (SinkGone)
        self._dropped_logged = 0  # batches a sink dropped (Dropped), for the log's rate limit
        self._sources_stopping = False  # shutdown: file readers are never held back any more
        #: called on the event loop with each batch a source queued, as it is
        #: taken for dispatch (ingest.ops.metrics: the top rings, event-id
        #: gaps), and with each batch every sink acknowledged.  Per batch,
        #: never per alert; an exception is logged, never fatal.
        self.on_taken: list[Callable[[AlertBatch], None]] = []
        self.on_delivered: list[Callable[[AlertBatch], None]] = []
        #: the service manager's notify channel (ingest.ops.systemd.Notifier):
        #: READY=1 once every source runs, STOPPING=1 when shutdown begins,
        #: WATCHDOG=1 and STATUS= from the event loop.  None: not under one.
        self.notifier: Any = None

    # --- called from reader threads ------------------------------------
    def _fits(self, n: int, nbytes: int) -> bool:
        # An empty queue takes any one batch, in alerts as in bytes: a file
        # reader hands on every event of what it read at once (a spool chunk
        # may hold more than max_queue), and a record larger than the byte
        # budget must still flow; waiting for room that can never be would
        # wedge the reader for good.  So the bounds can be passed by one batch.
        if self._depth == 0 and self._qbytes == 0:
            return True
        if self._depth + n > self.max_queue:
            return False
        return self._qbytes + self._bufbytes + nbytes <= self.max_queue_bytes

    def files_held(self) -> bool:
        """A sink is spooling (its destination is away): file readers wait,
        so that what they read stays in their file, not in the spool.
        Not once the sources are being stopped: from then on a file reader
        is refused only for want of room in the queue.  A reader still
        refused when its stop comes does not hand its batch over: it ends
        and leaves that batch on disk, behind its bookmark, for the next run
        (spool: ``_Stopped``; EVE file: ``handle_records`` returns None)."""
        return not self._sources_stopping and any(getattr(s, "hold_file_input", False) for s in self.sinks)

    def reserve(self, n: int, timeout: float = 0.0, nbytes: int = 0, *, file: bool = False) -> bool:
        """Take n places in the queue if there is room for n more alerts and
        about ``nbytes`` more bytes; wait up to timeout seconds for room.
        ``file``: the caller reads a file (it waits when refused), which is
        also refused while a sink holds file input back (``files_held``)."""
        if file and self.files_held():
            if timeout > 0:
                time.sleep(min(timeout, 0.05))
            return False
        with self._room:
            if not self._fits(n, nbytes) and timeout > 0:
                self._room.wait_for(lambda: self._fits(n, nbytes), timeout)
            if not self._fits(n, nbytes):
                return False
            self._depth += n
            self.stats.queue_depth = self._depth
            return True

    def release(self, n: int) -> None:
        if n:
            with self._room:
                self._depth -= n
                self.stats.queue_depth = self._depth
                self._room.notify_all()

    def reserve_buffer(self, nbytes: int, force: bool = False) -> bool:
        """Charge a source's line buffer to the byte budget: False when the
        buffers would pass half of it, or the whole budget would be passed
        (``force``: charge anyway, for a bounded minimum)."""
        with self._room:
            if not force and (self._bufbytes + nbytes > self.max_queue_bytes // 2
                              or self._qbytes + self._bufbytes + nbytes > self.max_queue_bytes):
                return False
            self._bufbytes += nbytes
            self.stats.queue_bytes = self._qbytes + self._bufbytes
            return True

    def release_buffer(self, nbytes: int) -> None:
        if nbytes:
            with self._room:
                self._bufbytes -= nbytes
                self.stats.queue_bytes = self._qbytes + self._bufbytes
                self._room.notify_all()

    def _release_bytes(self, nbytes: int) -> None:
        with self._room:
            self._qbytes -= nbytes
            self.stats.queue_bytes = self._qbytes + self._bufbytes
            self._room.notify_all()

    def submit(self, batch: AlertBatch) -> None:
        nbytes = batch_nbytes(batch)
        with self._room:
            self._qbytes += nbytes
            self.stats.queue_bytes = self._qbytes + self._bufbytes
        self._dq.append((batch, nbytes))
        if self._waiting:
            self._waiting = False
            assert self._loop is not None and self._wake is not None
            self._loop.call_soon_threadsafe(self._wake.set)

    def reader_failed(self, name: str, exc: BaseException | None) -> None:
        """A reader thread died (call from any thread): stop the process."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_reader_failed, name, exc)

    def _on_reader_failed(self, name: str, exc: BaseException | None) -> None:
        if name in self._failed:
            return
        self._failed[name] = exc
        self.stats.add_reader_failed(name)
        _log.error(f"reader {name} died ({exc!r}); stopping, exit status 1", extra=at(name))
        self._log_stats()
        if self._stop_event is not None:
            self._stop_event.set()

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook while running: any thread that dies is noticed at once."""
        self._prev_excepthook(args)  # the traceback, for the bug report
        if args.exc_type is SystemExit:
            return
        name = next((s.origin for s in self.sources if getattr(s, "error", None) is args.exc_value),
                    args.thread.name if args.thread is not None else "?")
        self.reader_failed(name, args.exc_value)

    async def _watch_readers(self) -> None:
        """Sources that record an error and end their thread without raising."""
        while True:
            await asyncio.sleep(0.2)
            for src in self.sources:
                err = getattr(src, "error", None)
                if err is not None:
                    self._on_reader_failed(src.origin, err)

    # --- health, read from any thread (ingest.ops.metrics) ----------------
    def reader_health(self) -> tuple[int, dict[str, str]]:
        """Inputs whose reader runs, and those whose reader died (origin ->
        why).  A reader that ends because shutdown stopped it is not dead."""
        dead = {name: repr(exc) for name, exc in list(self._failed.items())}
        alive = 0
        for src in self.sources:
            err = getattr(src, "error", None)
            native = getattr(src, "native_failure", None)  # a C reader thread: dead at once
            if err is None and native is not None:
                err = native()
            thread = getattr(src, "_thread", None) or getattr(src, "_acceptor", None)
            if err is not None:
                dead.setdefault(src.origin, repr(err))
            elif (isinstance(thread, threading.Thread) and thread.ident is not None
                  and not thread.is_alive() and not self._sources_stopping):
                dead.setdefault(src.origin, "its reader thread ended")
            elif src.origin not in dead:
                alive += 1
        return alive, dead

    def gone_sinks(self) -> list[str]:
        """Sinks that can never take another write (SinkGone)."""
        return sorted(self._gone)

    def stopping(self) -> bool:
        """Shutdown has begun (a signal, a dead reader, a sink gone)."""
        ev = self._stop_event
        return self._sources_stopping or (ev is not None and ev.is_set())

    # --- the event loop side -------------------------------------------
    def _take(self) -> tuple[AlertBatch, int]:
        """The next batch to dispatch: what is queued, up to batch_max
        records and take_bytes, never across a change of sensor (a batch
        has one sensor: a collector queues several).  Batches of canonical
        flow records alone (NetFlow/IPFIX, Zeek) join up to
        FLOW_BATCH_FACTOR x batch_max of them (still within take_bytes):
        only when that much is queued -- a backlog -- so under load a store
        writes them in fewer, bigger transactions (a random-position index
        page is then written once for more rows), at low rates nothing
        waits longer."""
        first, nbytes = self._dq.popleft()
        taken = [first]
        n = first.queued()
        flows = _flow_records_only(first)
        limit = self.batch_max * FLOW_BATCH_FACTOR if flows else self.batch_max
        while (self._dq and n + self._dq[0][0].queued() <= limit
               and nbytes + self._dq[0][1] <= self.take_bytes
               and self._dq[0][0].sensor == first.sensor
               and (not flows or _flow_records_only(self._dq[0][0]))):
            b, nb = self._dq.popleft()
            taken.append(b)
            n += b.queued()
            nbytes += nb
        if self.on_taken:
            for b in taken:  # each with its own origin, before they are joined
                self._notify(self.on_taken, b)
        return AlertBatch.concat(taken), nbytes

    def _notify(self, hooks: list[Callable[[AlertBatch], None]], batch: AlertBatch) -> None:
        for hook in hooks:
            try:
                hook(batch)
            except Exception as e:  # a report must never cost a batch
                _log.error(f"metrics: {e!r}", extra=at(batch.origin))

    def _drain_left(self) -> float | None:
        """Seconds left of the shutdown drain (None while running)."""
        if not self._closing:
            return None
        return self.drain_timeout - (time.monotonic() - self._closing_since)

    def write_width(self) -> int:
        """How many batches may be written at once: the smallest
        ``concurrent_writes`` of the sinks (1 for a sink that does not say)."""
        return max(1, min((int(getattr(s, "concurrent_writes", 1)) for s in self.sinks), default=1))

    async def _consume(self) -> None:
        assert self._wake is not None
        if self.write_width() > 1:
            await self._consume_pipelined(self.write_width())
            return
        while True:
            if not self._dq:
                if self._closing:
                    return
                self._waiting = True
                if self._dq:
                    self._waiting = False
                else:
                    await self._wake.wait()
                    self._wake.clear()
                continue
            if self.linger and sum(b.queued() for b, _ in self._dq) < self.batch_max and not self._closing:
                await asyncio.sleep(self.linger)
            batch, nbytes = self._take()
            self._inflight = batch
            try:
                left = self._drain_left()
                if left is not None and left <= 0:
                    # shutting down and out of time: no new write starts
                    self._give_up(batch, "shutdown_timeout")
                else:
                    await self._dispatch(batch)
            except Exception as e:  # a bug (mapping, ...): keep the alerts, keep going
                _log.error(f"dispatch failed: {e!r}", extra=at(batch.origin))
                self._give_up(batch, "internal_error")
            self._inflight = None
            self._release_bytes(nbytes)

    async def _write_one(self, sink: Sink, item: Enriched) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self._attempt(sink, item)
                self.stats.dispatched[sink.name] += len(item.batch)
                self.stats.sink_ok(sink.name)
                return
            except DataError as e:  # the data, not the sink: retrying cannot help
                await self._isolate(sink, item, e)
                return
            except SinkGone as e:  # it never comes back: stop as on SIGTERM
                self.stats.sink_failed(sink.name, time.monotonic())
                if sink.name not in self._gone:
                    self._gone.add(sink.name)
                    _log.error(f"sink {sink.name}: {e}; stopping (what it did not get is "
                               "kept in the dead-letter file)", extra=at(None, sink=sink.name))
                if self._stop_event is not None:
                    self._stop_event.set()
                raise
            except Dropped as e:  # the sink will never take it (its spool is full)
                self._drop(sink, item, e)
                return
            except Exception as e:  # a sink failure must not lose the batch
                self.stats.sink_failed(sink.name, time.monotonic())
                left = self._drain_left()
                if left is None or left > 0:
                    wait = delay if left is None else min(delay, left)
                    _log.error(f"sink {sink.name}: {e!r}; retrying in {wait:.1f}s", extra=at(None, sink=sink.name))
                    await self._backoff(sink, wait)
                    left = self._drain_left()
                if left is not None and left <= 0:  # no write starts after the drain timeout
                    _log.error(f"sink {sink.name}: {e!r}; shutdown drain timeout passed, giving up",
                               extra=at(None, sink=sink.name))
                    raise
                delay = min(delay * 2, RETRY_MAX)

    async def _attempt(self, sink: Sink, item: Enriched) -> None:
        """One write.  Shielded: if the consumer is cancelled, the write (on
        the sink's thread, where it cannot be stopped) still runs to its end
        and stays visible in ``_writes``, so its outcome is never guessed."""
        task = asyncio.ensure_future(sink.write(item))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    async def _backoff(self, sink: Sink, wait: float) -> None:
        """Wait before the next write, or less: the moment the sink's probe
        says it is back (the backlog then drains at once, not after a
        back-off that may have grown to RETRY_MAX), or the shutdown drain
        runs out of time."""
        probe = getattr(sink, "probe", None)
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(PROBE_INTERVAL, left))
            drain = self._drain_left()
            if drain is not None and drain <= 0:
                return
            if probe is None or end - time.monotonic() <= 0:
                continue
            try:
                back = await probe()
            except Exception:
                back = False
            if back:
                self.stats.add_extra("sink_probe_recoveries")
                _log.info(f"sink {sink.name} is back (probe); retrying now", extra=at(None, sink=sink.name))
                return

    # --- records a sink refuses (DataError) ---------------------------------
    async def _isolate(self, sink: Sink, item: Enriched, err: DataError) -> None:
        """``sink`` refused ``item``'s data: write each half again (through
        _write_one, so a sink that goes down meanwhile is retried as usual),
        down to the single records it refuses, which are dead-lettered.  The
        batch's acks run after this returns: every part is then stored or
        dead-lettered."""
        k = isolate.units(item)
        if k <= 1:
            self._reject(sink, item, err)
            return
        mid = k // 2  # the halves of isolate.split
        for lo, hi in ((0, mid), (mid, k)):
            try:
                await self._write_one(sink, isolate.part(item, lo, hi))
            except Undelivered as u:  # a deeper half gave up: what it lacks, and all after it
                raise Undelivered([(lo + a, lo + b) for a, b in u.spans] + [(hi, k)], u.cause) from u.cause
            except Exception as e:  # this half was never written (shutdown ran out of time)
                raise Undelivered([(lo, k)], e) from e

    def _drop(self, sink: Sink, item: Enriched, err: Dropped) -> None:
        """A batch the sink dropped: kept in the dead-letter file (EVE JSON),
        its alerts counted as dropped for the sink's reason."""
        self._dropped_logged += 1
        if self._dropped_logged <= 20 or self._dropped_logged % 1000 == 0:
            _log.error(f"sink {sink.name}: {err}; {len(item.batch)} alerts from {item.batch.origin} "
                       f"kept in the dead-letter file ({err.reason}, {self._dropped_logged} batches so far)",
                       extra=at(item.batch.origin, sink=sink.name, reason=err.reason))
        self._keep(item, err.reason)

    def _reject(self, sink: Sink, item: Enriched, err: DataError) -> None:
        b = item.batch
        alerts = len(b)
        events = isolate.units(item) - alerts
        self.stats.sink_errors[sink.name] += 1
        self._rejected += 1
        if self._rejected <= 20 or self._rejected % 1000 == 0:
            what = "an alert" if alerts else "an event" if events else "an empty batch"
            _log.error(f"sink {sink.name} refused {what} from {b.origin}: {err}; "
                       f"kept in the dead-letter file (sink_rejected, {self._rejected} so far)",
                       extra=at(b.origin, sink=sink.name, reason="sink_rejected"))
        if not alerts and not events:
            return
        self.deadletter.write(b.origin, "sink_rejected", isolate.record_bytes(item))
        if alerts:
            self.stats.add_dropped("sink_rejected", alerts)
        if events:
            self.stats.add_dropped("sink_rejected_event", events)

    async def _consume_pipelined(self, width: int) -> None:
        """``_consume`` for sinks that take several writes at once (the
        PostgreSQL sink's connections): up to ``width`` writes run at the
        same time, so one batch's rows are prepared, sent and committed
        while another's transaction runs.  Their outcomes are
        handled strictly in the order the batches were taken: a batch's
        acks run only once every sink stored it *and* every batch taken
        before it is finished (acked, or dead-lettered), so a source sees
        its acknowledgements exactly as with one write at a time (a
        bookmark never passes a batch not yet stored).  Every batch still
        holds its bytes of the queue budget until it is finished."""
        assert self._wake is not None
        pending = self._pipeline
        while True:
            while pending and pending[0][2].done():
                await self._complete(*pending.popleft())
            running = {t for _, _, t in pending if not t.done()}
            if self._dq and len(running) < width:
                if (self.linger and sum(b.queued() for b, _ in self._dq) < self.batch_max
                        and not self._closing):
                    await asyncio.sleep(self.linger)
                batch, nbytes = self._take()
                left = self._drain_left()
                if left is not None and left <= 0:
                    # shutting down and out of time: no new write starts
                    self._give_up(batch, "shutdown_timeout")
                    self._release_bytes(nbytes)
                    continue
                pending.append((batch, nbytes, asyncio.ensure_future(self._write_all(batch))))
                continue
            if not pending and self._closing and not self._dq:
                return
            woken = None
            if len(running) < width:  # room for another write: also wait for a batch to come
                self._waiting = True
                if self._dq:
                    self._waiting = False
                    continue
                woken = asyncio.ensure_future(self._wake.wait())
                running.add(woken)
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            if woken is not None:
                if not woken.done():
                    woken.cancel()
                self._wake.clear()  # a stale wake-up costs one turn of the loop, never a batch

    async def _complete(self, batch: AlertBatch, nbytes: int, task: asyncio.Future) -> None:
        """A pipelined batch's outcome, in its turn (_consume_pipelined)."""
        try:
            exc = task.exception()
            if exc is not None:
                raise exc
            item, results = task.result()
            await self._finish(batch, item, results)
        except Exception as e:  # a bug (mapping, ...): keep the alerts, keep going
            _log.error(f"dispatch failed: {e!r}", extra=at(batch.origin))
            self._give_up(batch, "internal_error")
        self._release_bytes(nbytes)

    def _unconfirmed(self) -> list[AlertBatch]:
        """Batches being written (shutdown's backstop: their writes did not finish)."""
        out = [b for b, _, _ in self._pipeline]
        if self._inflight is not None:
            out.append(self._inflight)
        return out

    async def _dispatch(self, batch: AlertBatch) -> None:
        item, results = await self._write_all(batch)
        await self._finish(batch, item, results)

    async def _write_all(self, batch: AlertBatch) -> tuple[Enriched, list]:
        """Enrich the batch and write it to every sink (retried, isolated):
        what each sink's write ended with (an exception, or nothing)."""
        item = self.enricher.apply(batch)
        results: list = []
        if len(self.sinks) == 1:  # the common case, without gather's task machinery
            try:
                await self._write_one(self.sinks[0], item)
            except Exception as e:
                results.append(e)
        else:
            results = await asyncio.gather(*(self._write_one(s, item) for s in self.sinks),
                                           return_exceptions=True)
        return item, results

    async def _finish(self, batch: AlertBatch, item: Enriched, results: list) -> None:
        """After every sink's write of the batch: acknowledge it, or keep
        what some sink does not have in the dead-letter file."""
        failed = [r for r in results if isinstance(r, BaseException)]
        for sink, r in zip(self.sinks, results, strict=False) if failed else ():
            abandon = getattr(sink, "abandon", None)
            if isinstance(r, BaseException) and not isinstance(r, Undelivered) and abandon is not None:
                try:
                    await abandon()  # a batch half written (JSON lines) is taken back out
                except Exception as e:
                    _log.error(f"{sink.name}: {e!r}", extra=at(None, sink=sink.name))
        if failed:
            # Only at shutdown, after retrying past the drain timeout: keep
            # the alerts in the dead-letter file rather than lose them.  A
            # sink that gave up in the middle of isolating refused records
            # has the parts it committed: only what some sink lacks is kept.
            partial = [r for r in failed if isinstance(r, Undelivered)]
            if len(partial) == len(failed):
                for lo, hi in merge_spans([s for r in partial for s in r.spans]):
                    self._keep(isolate.part(item, lo, hi), "sink_failed")
                self.release(batch.queued())
            else:
                self._give_up(batch, "sink_failed", item)
            return
        for ack in batch.acks:
            try:
                ack()
            except Exception as e:
                _log.error(f"acknowledgement failed: {e!r}", extra=at(batch.origin))
        if self.on_delivered:
            self._notify(self.on_delivered, batch)
        self.release(batch.queued())

    def _give_up(self, batch: AlertBatch, reason: str, item: Enriched | None = None) -> None:
        """Alerts no sink could take: keep them (EVE JSON) in the dead-letter
        file, count them, never acknowledge them."""
        self._keep(item if item is not None else Enriched(batch, None, batch.strings), reason)
        self.release(batch.queued())

    def _keep(self, item: Enriched, reason: str) -> None:
        """item's alerts (EVE JSON) and events (verbatim) in the dead-letter
        file, its alerts counted as dropped for ``reason``."""
        batch = item.batch
        try:
            data = render_json(batch, "eve", item.categories, item.extra_strings)
        except Exception:
            data = repr(batch.alerts.tolist()).encode()
        if batch.events is not None:  # non-alert EVE events, verbatim
            data += batch.events.lines
        self.deadletter.write(batch.origin, reason, data)
        self.stats.add_dropped(reason, len(batch))

    def _sync_deadletter_stats(self) -> None:
        self.stats.dead_letters = self.deadletter.count
        if self.deadletter.rotated != self.stats.dead_letters_rotated:
            _log.warning(f"dead-letter file {self.deadletter.path}: "
                         f"{self.deadletter.rotated - self.stats.dead_letters_rotated} older entries rotated away "
                         f"(--dead-letter-max-bytes {self.deadletter.max_bytes})")
            self.stats.dead_letters_rotated = self.deadletter.rotated
        if self.deadletter.errors != self.stats.dead_letter_errors:
            self.stats.dead_letter_errors = self.deadletter.errors
            _log.error(f"dead-letter file: {self.deadletter.last_error} "
                       f"({self.deadletter.errors} entries not kept)")

    # --- SIGHUP ------------------------------------------------------------
    def hangup(self) -> None:
        """SIGHUP (called on the event loop).  Coalesced: while a reload runs,
        further SIGHUPs only ask for one more after it."""
        if self._stopping:
            return  # sinks are being closed: nothing to reopen any more
        if self._hup_task is not None and not self._hup_task.done():
            self._hup_again = True
            return
        self._hup_task = asyncio.create_task(self._on_hangup(), name="ingest-sighup")

    async def _on_hangup(self) -> None:
        while True:
            self._hup_again = False
            done: list[str] = []
            # Files first: logrotate has moved them and waits for us.  A sink
            # reopens on its own thread, between two batch writes, so no line
            # is torn across the old and the new file.
            for sink in self.sinks:
                reopen = getattr(sink, "reopen", None)
                if reopen is None:
                    continue
                try:
                    if await reopen():
                        done.append(f"reopened {sink.name}")
                except Exception as e:
                    _log.error(f"SIGHUP: reopening {sink.name} failed ({e}); "
                               "it keeps writing to the file it had open", extra=at(None, sink=sink.name))
            loop = asyncio.get_running_loop()
            if self._hup_pool is None:  # one worker thread, whatever the burst
                self._hup_pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-sighup")
            try:
                if await loop.run_in_executor(self._hup_pool, self.deadletter.reopen):
                    done.append("reopened the dead-letter file")
            except Exception as e:
                _log.error(f"SIGHUP: reopening the dead-letter file failed: {e}")
            if self.reload_maps is not None:
                try:
                    done.append(await loop.run_in_executor(self._hup_pool, self.reload_maps))
                except Exception as e:  # any loader error: the old maps stay
                    _log.error(f"SIGHUP: reloading maps failed, keeping the old ones: {e}")
            _log.info("SIGHUP: " + ("; ".join(done) or "nothing to reload or reopen"))
            if not self._hup_again:
                return

    def _sync_sink_stats(self) -> None:
        """Sinks' own counters and gauges (the NATS sink's spool) into the stats."""
        for sink in self.sinks:
            report = getattr(sink, "stats", None)
            if report is None:
                continue
            try:
                for name, value in report().items():
                    self.stats.set_extra(name, value)
            except Exception as e:  # a report must never stop the process
                _log.error(f"stats of sink {sink.name}: {e!r}", extra=at(None, sink=sink.name))

    def _log_stats(self, *, final: bool = False) -> None:
        """The stats line as one info record on ``ingest.stats``: in text
        the line of old, in JSON its counters as fields."""
        snap = self.stats.snapshot()
        line = self.stats.final_line(snap) if final else self.stats.line(snap)
        _stats_log.info(line.removeprefix("ingest: "), extra=at(None, final=final, **snap))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            for src in self.sources:  # a source's own numbers, fresh for the line (the collector's lag)
                refresh = getattr(src, "refresh_stats", None)
                if refresh is not None:
                    await refresh()
            self._sync_deadletter_stats()
            self._sync_sink_stats()
            self._log_stats()

    async def run(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set, then shut down cleanly."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_event = stop
        self._prev_excepthook = threading.excepthook
        threading.excepthook = self._thread_died
        try:
            return await self._run(stop)
        finally:
            threading.excepthook = self._prev_excepthook

    async def _run(self, stop: asyncio.Event) -> int:
        assert self._wake is not None
        for sink in self.sinks:  # a sink's own background work (the NATS sink replays its spool)
            start = getattr(sink, "start", None)
            if start is not None:
                await start()
        for src in self.sources:
            src.start(self, self.stats.for_input(src.origin, source_kind(src)), self.deadletter)
        consumer = asyncio.create_task(self._consume(), name="ingest-consumer")
        reporter = asyncio.create_task(self._report(), name="ingest-stats")
        watcher = asyncio.create_task(self._watch_readers(), name="ingest-watch")
        sockets = asyncio.create_task(watch_sockets(self.sources, self.stats), name="ingest-sockets")
        notify = None
        if self.notifier is not None:
            self.notifier.ready(f"reading {len(self.sources)} inputs")
            # on the event loop, so a wedged loop stops petting the watchdog
            notify = asyncio.create_task(self.notifier.run(self.stats), name="ingest-notify")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if self.notifier is not None:
            self.notifier.stopping()
        rc = 0
        if consumer.done() and consumer.exception() is not None:
            _log.error(f"consumer failed: {consumer.exception()!r}")
            rc = 1
        # 1. stop reading: each source drains what the kernel already queued
        def stop_sources() -> None:
            for s in self.sources:
                s.stop()

        # From here a file reader is refused only for want of queue room; one
        # still refused when its stop comes ends, its batch left on disk
        # behind its bookmark (read again next run).
        self._sources_stopping = True
        await asyncio.to_thread(stop_sources)
        # 2. dispatch everything queued
        self._closing = True
        self._closing_since = time.monotonic()
        self._wake.set()
        if not consumer.done():
            # The consumer stops starting writes at drain_timeout and awaits
            # the one in progress; this backstop only fires if a sink hangs.
            await asyncio.wait({consumer}, timeout=self.drain_timeout + WRITE_GRACE)
        if not consumer.done():
            consumer.cancel()
            rc = 1
            for b in self._unconfirmed():
                names = ", ".join(s.name for s in self.sinks)
                _log.error(f"a write of {len(b)} alerts to {names} did not finish; "
                           "they are kept in the dead-letter file, and may also have been stored")
                self._give_up(b, "shutdown_unconfirmed")
            self._inflight = None
            self._pipeline.clear()
        left = [b for b, _ in self._dq]
        self._dq.clear()
        for b in left:
            self._give_up(b, "shutdown_timeout")
        undelivered = {k: v for k, v in self.stats.dropped.items()
                       if k in ("sink_failed", "shutdown_timeout", "shutdown_unconfirmed", "internal_error",
                                "sink_rejected", "sink_rejected_event")}
        if undelivered:
            rc = 1  # some alerts reached no sink (they are in the dead-letter file)
            n = sum(v for k, v in undelivered.items() if k != "internal_error")
            if n:
                _log.error(f"shutdown could not deliver {n} alerts; kept in the dead-letter file")
        if self._failed:
            rc = 1
        stopper.cancel()
        reporter.cancel()
        watcher.cancel()
        sockets.cancel()
        if notify is not None:
            notify.cancel()
        self._stopping = True
        if self._hup_task is not None:
            await asyncio.wait({self._hup_task})  # a reopen/reload in progress finishes first
        if self._hup_pool is not None:
            self._hup_pool.shutdown()
        # 3. flush and close sinks, remove socket files
        for sink in self.sinks:
            try:
                await sink.aclose()
            except Exception as e:
                _log.error(f"closing {sink.name}: {e!r}", extra=at(None, sink=sink.name))
                rc = 1
        for src in self.sources:
            try:
                src.close()
            except Exception as e:  # never a traceback instead of the final stats
                _log.error(f"closing {src.origin}: {e!r}", extra=at(src.origin))
                rc = 1
            if getattr(src, "bookmark_stale", False):
                _log.error(f"{src.origin}: the bookmark could not be written; a restart reads "
                           "again from the last position saved", extra=at(src.origin))
                rc = 1
        self.deadletter.close()
        for src in self.sources:
            err = getattr(src, "error", None)
            if err is not None and src.origin not in self._failed:
                _log.error(f"source {src.origin} failed: {err!r}", extra=at(src.origin))
                self.stats.add_reader_failed(src.origin)
                rc = 1
        for src in self.sources:  # a source's last word for the final stats (the collector's JetStream lag)
            last = getattr(src, "final_stats", None)
            if last is not None:
                await last()
        self._sync_deadletter_stats()
        self._sync_sink_stats()
        self._log_stats(final=True)
        return rc


class EarlySignals:
    """What arrived while starting up: SIGTERM/SIGINT (stop) and SIGHUP
    (remembered, handled once running).

    Plain flags, set by handlers that take no lock: a Python signal handler
    can be entered again, on the same thread, by the next signal while it
    runs, so one that took a lock (``threading.Event.set``) deadlocked on
    its own lock, or under a burst of SIGHUPs (logrotate, a hurried admin)
    nested until RecursionError ended the start-up."""

    def __init__(self) -> None:
        self.stopping = False
        self.hangup = False

    def is_set(self) -> bool:
        return self.stopping

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def _hangup(self, *_: object) -> None:
        self.hangup = True


def catch_stop_signals() -> EarlySignals:
    """Install the SIGTERM/SIGINT/SIGHUP handlers before sockets are bound,
    so a signal that arrives while starting up still means a clean shutdown
    (SIGTERM/SIGINT) and never kills the process (SIGHUP: its default action
    would, and logrotate sends it whenever it rotates; ``ingest.cli.main``
    ignores it from the first line, before the slow imports)."""
    early = EarlySignals()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, early._stop)
    signal.signal(signal.SIGHUP, early._hangup)
    return early


def run(pipeline: Pipeline, early: EarlySignals | threading.Event | None = None) -> int:
    """Run a pipeline on uvloop until SIGTERM/SIGINT; SIGHUP reloads/reopens."""
    import uvloop

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, pipeline.hangup)
        try:
            if early is not None and early.is_set():
                stop.set()
            if isinstance(early, EarlySignals) and early.hangup:
                pipeline.hangup()
            return await pipeline.run(stop)
        finally:
            # Closing the loop would put SIGHUP back to its default (fatal)
            # action for the rest of the exit: take it back from the loop
            # here and ignore it at once.
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    # What exists now (modules, maps, rules, sinks) lives as long as the
    # process: out of the cyclic collector's sight, a collection traverses only
    # what the run itself allocates.  Before this, collections over the
    # start-up objects took about a quarter of the event loop's CPU on an EVE
    # datagram input into null: (py-spy: gc_collect_main).  Cycles made later
    # are collected as before.
    gc.collect()
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # exiting: a late SIGHUP must not kill us
