"""The runtime: sources -> bounded queue -> mapping -> sinks, and shutdown.

* Sources run their own reader threads and hand batches over with
  ``reserve``/``submit`` (thread-safe).  The queue is bounded in alerts; a
  reader that finds it full dead-letters instead of waiting.
* One consumer coroutine takes whatever is queued (up to ``batch_max``
  alerts; if less is there it lingers ``linger`` seconds for more, so low
  rates still flush within a few ms), enriches it once, and writes it to
  every sink concurrently.  A batch is acknowledged (its ``acks`` run:
  Barnyard2 sync acknowledgements, bookmarks) only after every sink returned.
  A failing sink is retried with backoff; sinks that already have the batch
  are not written twice.
* Shutdown (SIGTERM/SIGINT): stop reading after draining what the kernel
  queued, dispatch everything queued, flush and close sinks, remove socket
  files, print the final stats line, exit 0.
* SIGHUP is always handled, never fatal: JSON-lines sinks and the
  dead-letter file are reopened (logrotate moved them), and the maps are
  reloaded when some are configured.  A burst of SIGHUPs coalesces: one
  reload runs at a time, and at most one more is queued behind it.

uvloop appears only in :func:`run`, the loop factory.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .batch import AlertBatch
from .deadletter import DeadLetter
from .mapping import Enriched, Enricher
from .render import render_json
from .sinks.base import Sink
from .sources.base import Source
from .stats import Stats


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
        batch_max: int = 8192,
        linger: float = 0.002,
        stats_interval: float = 10.0,
        drain_timeout: float = 30.0,
        reload_maps: Callable[[], str] | None = None,
        log=sys.stderr,
    ) -> None:
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.enricher = enricher or Enricher()
        self.stats = stats or Stats()
        self.deadletter = deadletter or DeadLetter(None)
        self.max_queue = max_queue
        self.batch_max = batch_max
        self.linger = linger
        self.stats_interval = stats_interval
        self.drain_timeout = drain_timeout
        self.log = log
        #: loads and swaps in the maps (blocking; raises on an error, saying
        #: which file and line); returns a one-line summary.  None: no maps.
        self.reload_maps = reload_maps
        self._hup_task: asyncio.Task | None = None
        self._hup_again = False
        self._hup_pool: ThreadPoolExecutor | None = None
        self._stopping = False
        self._dq: collections.deque[AlertBatch] = collections.deque()
        self._room = threading.Condition()
        self._depth = 0
        self._waiting = False
        self._closing = False
        self._closing_since = 0.0
        self._inflight: AlertBatch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # --- called from reader threads ------------------------------------
    def reserve(self, n: int, timeout: float = 0.0) -> bool:
        with self._room:
            if self._depth + n > self.max_queue and timeout > 0:
                self._room.wait_for(lambda: self._depth + n <= self.max_queue, timeout)
            if self._depth + n > self.max_queue:
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

    def submit(self, batch: AlertBatch) -> None:
        self._dq.append(batch)
        if self._waiting:
            self._waiting = False
            assert self._loop is not None and self._wake is not None
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- the event loop side -------------------------------------------
    def _take(self) -> AlertBatch:
        taken = [self._dq.popleft()]
        n = taken[0].queued()
        while self._dq and n + self._dq[0].queued() <= self.batch_max:
            b = self._dq.popleft()
            taken.append(b)
            n += b.queued()
        return AlertBatch.concat(taken)

    async def _consume(self) -> None:
        assert self._wake is not None
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
            if self.linger and sum(b.queued() for b in self._dq) < self.batch_max and not self._closing:
                await asyncio.sleep(self.linger)
            batch = self._inflight = self._take()
            try:
                await self._dispatch(batch)
            except Exception as e:  # a bug (mapping, ...): keep the alerts, keep going
                print(f"ingest: error: dispatch failed: {e!r}", file=self.log, flush=True)
                self._give_up(batch, "internal_error")
            self._inflight = None

    async def _write_one(self, sink: Sink, item: Enriched) -> None:
        delay = 0.5
        while True:
            try:
                await sink.write(item)
                self.stats.dispatched[sink.name] += len(item.batch)
                return
            except Exception as e:  # a sink failure must not lose the batch
                self.stats.sink_errors[sink.name] += 1
                print(f"ingest: error: sink {sink.name}: {e!r}; retrying in {delay:.1f}s",
                      file=self.log, flush=True)
                if self._closing and time.monotonic() - self._closing_since > self.drain_timeout:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _dispatch(self, batch: AlertBatch) -> None:
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
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # Only at shutdown, after retrying past the drain timeout: keep
            # the alerts in the dead-letter file rather than lose them.
            self._give_up(batch, "sink_failed", item)
            return
        for ack in batch.acks:
            try:
                ack()
            except Exception as e:
                print(f"ingest: error: acknowledgement failed: {e!r}", file=self.log, flush=True)
        self.release(batch.queued())

    def _give_up(self, batch: AlertBatch, reason: str, item: Enriched | None = None) -> None:
        """Alerts no sink could take: keep them (EVE JSON) in the dead-letter
        file, count them, never acknowledge them."""
        try:
            data = render_json(batch, "eve", item.categories if item else None,
                               item.extra_strings if item else None)
        except Exception:
            data = repr(batch.alerts.tolist()).encode()
        if batch.events is not None:  # non-alert EVE events, verbatim
            data += batch.events.lines
        self.deadletter.write(batch.origin, reason, data)
        self.stats.add_dropped(reason, len(batch))
        self.release(batch.queued())

    def _sync_deadletter_stats(self) -> None:
        self.stats.dead_letters = self.deadletter.count
        if self.deadletter.errors != self.stats.dead_letter_errors:
            self.stats.dead_letter_errors = self.deadletter.errors
            print(f"ingest: error: dead-letter file: {self.deadletter.last_error} "
                  f"({self.deadletter.errors} entries not kept)", file=self.log, flush=True)

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
                    print(f"ingest: error: SIGHUP: reopening {sink.name} failed ({e}); "
                          "it keeps writing to the file it had open", file=self.log, flush=True)
            loop = asyncio.get_running_loop()
            if self._hup_pool is None:  # one worker thread, whatever the burst
                self._hup_pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-sighup")
            try:
                if await loop.run_in_executor(self._hup_pool, self.deadletter.reopen):
                    done.append("reopened the dead-letter file")
            except Exception as e:
                print(f"ingest: error: SIGHUP: reopening the dead-letter file failed: {e}",
                      file=self.log, flush=True)
            if self.reload_maps is not None:
                try:
                    done.append(await loop.run_in_executor(self._hup_pool, self.reload_maps))
                except Exception as e:  # any loader error: the old maps stay
                    print(f"ingest: error: SIGHUP: reloading maps failed, keeping the old ones: {e}",
                          file=self.log, flush=True)
            print("ingest: SIGHUP: " + ("; ".join(done) or "nothing to reload or reopen"),
                  file=self.log, flush=True)
            if not self._hup_again:
                return

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self._sync_deadletter_stats()
            print(self.stats.line(), file=self.log, flush=True)

    async def run(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set, then shut down cleanly."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for src in self.sources:
            src.start(self, self.stats, self.deadletter)
        consumer = asyncio.create_task(self._consume(), name="ingest-consumer")
        reporter = asyncio.create_task(self._report(), name="ingest-stats")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        rc = 0
        if consumer.done() and consumer.exception() is not None:
            print(f"ingest: error: consumer failed: {consumer.exception()!r}", file=self.log)
            rc = 1
        # 1. stop reading: each source drains what the kernel already queued
        def stop_sources() -> None:
            for s in self.sources:
                s.stop()

        await asyncio.to_thread(stop_sources)
        # 2. dispatch everything queued
        self._closing = True
        self._closing_since = time.monotonic()
        self._wake.set()
        if not consumer.done():
            try:
                # sinks give up retrying after drain_timeout; this is a backstop
                await asyncio.wait_for(consumer, timeout=self.drain_timeout + 10)
            except TimeoutError:
                rc = 1
        left = ([self._inflight] if self._inflight is not None else []) + list(self._dq)
        self._dq.clear()
        if left:
            n = sum(len(b) for b in left)
            print(f"ingest: error: shutdown could not deliver {n} alerts; kept in the dead-letter file",
                  file=self.log, flush=True)
            for b in left:
                self._give_up(b, "shutdown_timeout")
            rc = 1
        undelivered = {k: v for k, v in self.stats.dropped.items()
                       if k in ("sink_failed", "shutdown_timeout", "internal_error")}
        if undelivered:
            rc = 1  # some alerts reached no sink (they are in the dead-letter file)
        stopper.cancel()
        reporter.cancel()
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
                print(f"ingest: error: closing {sink.name}: {e!r}", file=self.log)
                rc = 1
        for src in self.sources:
            src.close()
        self.deadletter.close()
        for src in self.sources:
            err = getattr(src, "error", None)
            if err is not None:
                print(f"ingest: error: source {src.origin} failed: {err!r}", file=self.log)
                rc = 1
        self._sync_deadletter_stats()
        print(self.stats.final_line(), file=self.log, flush=True)
        return rc


class EarlySignals:
    """What arrived while starting up: SIGTERM/SIGINT (stop) and SIGHUP
    (remembered, handled once running)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hangup = threading.Event()

    def is_set(self) -> bool:
        return self.stop.is_set()


def catch_stop_signals() -> EarlySignals:
    """Install the SIGTERM/SIGINT/SIGHUP handlers before sockets are bound,
    so a signal that arrives while starting up still means a clean shutdown
    (SIGTERM/SIGINT) and never kills the process (SIGHUP: its default action
    would, and logrotate sends it whenever it rotates)."""
    early = EarlySignals()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: early.stop.set())
    signal.signal(signal.SIGHUP, lambda *_: early.hangup.set())
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
        if early is not None and early.is_set():
            stop.set()
        if isinstance(early, EarlySignals) and early.hangup.is_set():
            pipeline.hangup()
        return await pipeline.run(stop)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # exiting: a late SIGHUP must not kill us
