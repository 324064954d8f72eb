"""The collector's input: a durable JetStream pull consumer (``ingest collect``).

Messages are what sensors' ``nats://`` sinks publish (:mod:`ingest.wire`);
each becomes the canonical batch the sensor had (alerts with their texts,
flows, other events, the records' identity keys), decoded in C.  The good
messages of one fetch (same sensor, kind and format, up to GROUP_RECORDS
records) are decoded together in one C call into one batch: measured, the
per-message Python work and the runtime's join of ~600-record batches
cost as much as the decoding itself (BENCHMARKS.md, "Collector ->
PostgreSQL").  Each message is still checked, dead-lettered and counted
alone, and acknowledged only once the sinks stored its whole group.

* A durable pull consumer (``--durable NAME``) on ``PREFIX.>``: several
  collectors with the same durable name share the work (each message goes
  to one of them); a collector that restarts resumes where the durable is.
* Explicit acknowledgement, sent only after every sink stored the message's
  records (the runtime runs a batch's acks once every sink returned).  A
  message waiting in the queue or in a slow sink is kept alive with
  ``in_progress`` every ``ack_wait / 3``, so JetStream redelivers only what a
  collector that died (or hung) had: after a crash, the stores ignore what
  they already hold through the records' unique keys (exactly once).
* ``max_deliver`` bounds how often one message is delivered (a message that
  kills every collector that reads it cannot stop the service forever):
  on its last delivery a message is first copied to the dead-letter file
  (``last_delivery``, with its stream sequence), then processed as usual.
* A message that is not ours (garbage, truncated JSON lines, a payload past
  ``--max-message-bytes``, no or unknown wire headers, a subject outside
  the scheme) is dead-lettered whole with its stream and sequence,
  acknowledged and counted (``malformed``): never redelivered.  So is a
  message the decoder fails on unexpectedly (``undecodable``: a defect,
  but one message's failure alone).  A bad line
  in a good message is that line's failure alone.
* Stats: what JetStream reports for the durable, asked every stats
  line, just before it is printed, at most once a second (never per
  message; :meth:`NatsSource.poll`): ``nats_pending``
  (not yet delivered to any collector of the durable), ``nats_ack_pending``
  (delivered, not yet acknowledged), ``nats_lag`` (their sum: messages the
  durable has not finished), ``nats_delivered`` / ``nats_ack_floor`` /
  ``nats_last_seq`` (stream sequences: the last delivered, the one up to
  which all are acknowledged, the stream's last).  Per sensor (the names
  JetStream holds subjects for, at most 1,024): ``nats.<sensor>.received``
  (records this collector received), ``.messages`` (messages it received),
  ``.pending`` (the sensor's messages in the stream past the durable's ack
  floor, counted by JetStream: 0 once everything the sensor published is
  stored, whichever collector of the durable stored it) and ``.age_ms``
  (how old its latest message was when it arrived).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..batch import AlertBatch
from ..deadletter import DeadLetter
from ..natsconn import Connection, NatsURL, describe_error
from ..ops.logs import at
from ..stats import Stats
from ..wire import Checked, Decoder, Poison
from .base import Submit

_log = logging.getLogger(__name__)

#: most sensors the stats name (the names come from subjects)
MAX_SENSORS = 1024
#: most sensors whose pending count one poll asks JetStream for (one
#: short-lived consumer each); past it they take turns, line after line
PENDING_PER_POLL = 64
#: most records decoded together into one batch (the runtime's default
#: --batch-max: one group is then one sink write, never joined with others)
GROUP_RECORDS = 8192


class NatsSource:
    def __init__(self, url: NatsURL, durable: str, *, fetch: int = 64, ack_wait: float = 30.0,
                 max_deliver: int = 20, max_ack_pending: int = 4096, max_message_bytes: int = 8 << 20) -> None:
        if not durable or not durable.replace("-", "").replace("_", "").isalnum() or len(durable) > 64:
            raise ValueError(f"--durable {durable!r}: letters, digits, '-' and '_' only")
        self.url = url
        self.durable = durable
        self.origin = f"{url.redacted()}#{durable}"
        self.fetch = fetch
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.max_ack_pending = max_ack_pending
        self.decoder = Decoder(url.prefix, max_bytes=max_message_bytes)
        self.conn = Connection(url, name=f"collect {self.origin}", origin=self.origin)
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._beat: asyncio.Task | None = None
        self._stopping = False
        self._unacked: dict[int, Any] = {}  # stream sequence -> message fetched, not yet acknowledged
        self._acking: set[asyncio.Task] = set()
        self._received: dict[str, int] = {}
        self._messages: dict[str, int] = {}
        self._sensors: set[str] = set()  # every sensor JetStream holds subjects for (MAX_SENSORS at most)
        #: JetStream is asked at most once in this many seconds (whatever the stats interval)
        self.poll_min = 1.0
        self._polled = -1e9
        self._next_sensor = 0  # where the next poll's per-sensor counts start (PENDING_PER_POLL)
        self.submit: Submit | None = None
        self.stats: Stats | None = None
        self.deadletter: DeadLetter | None = None

    # --- the consumer ---------------------------------------------------------
    def consumer_config(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        return ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait, max_deliver=self.max_deliver, max_ack_pending=self.max_ack_pending,
            filter_subject=self.url.subjects,
        )

    async def subscribe(self, conn: Connection) -> Any:
        """The stream (created if absent) and the durable pull consumer."""
        await conn.ensure_stream()
        return await conn.js.pull_subscribe(self.url.subjects, durable=self.durable, stream=self.url.stream,
                                            config=self.consumer_config())

    def check(self) -> None:
        """Start-up (no event loop yet): connect, create or check the stream
        and the consumer, disconnect.  ValueError with one line otherwise."""

        async def probe() -> None:
            conn = Connection(self.url, name=f"collect {self.origin}", origin=self.origin)
            await conn.connect()
            try:
                await conn.settle(lambda: self.subscribe(conn))
            finally:
                await conn.close()

        try:
            asyncio.run(probe())
        except (ConnectionError, ValueError) as e:
            raise ValueError(f"{self.origin}: {e}") from None
        except Exception as e:
            raise ValueError(f"{self.origin}: JetStream stream {self.url.stream}, consumer {self.durable}: "
                             f"{describe_error(e)}") from None

    # --- Source -----------------------------------------------------------------
    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self.submit, self.stats, self.deadletter = submit, stats, deadletter
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="ingest-nats-fetch")
        self._task.add_done_callback(self._ended)
        self._beat = self._loop.create_task(self._heartbeat(), name="ingest-nats-progress")

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()  # the runtime notices it and stops (exit 1)

    def stop(self) -> None:
        """Stop fetching (from a worker thread); what was fetched is queued."""
        loop, task = self._loop, self._task
        if loop is None or task is None or loop.is_closed():
            return

        async def stop() -> None:
            self._stopping = True
            await asyncio.wait({task})

        asyncio.run_coroutine_threadsafe(stop(), loop).result()

    def close(self) -> None:
        pass  # the connection is closed by finish(), on the loop, after the last acks

    async def finish(self) -> None:
        """After the runtime stored (and acknowledged) what it could: send
        the last acknowledgements, close the connection."""
        if self._beat is not None:
            self._beat.cancel()
        if self._acking:
            await asyncio.wait(self._acking, timeout=5)
        await self.conn.close()

    async def final_stats(self) -> None:
        """Before the final stats line (the runtime calls it once every sink
        is closed): the last acknowledgements out, then JetStream's view of
        the durable once more, so the final stats say what is left."""
        if self._acking:
            await asyncio.wait(self._acking, timeout=5)
        try:
            if self.conn.connected:
                await self.conn.nc.flush(timeout=2)
                await asyncio.wait_for(self.poll(), 5)
        except Exception:
            pass  # JetStream away: the last values polled stand

    # --- fetching -----------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.5
        psub = None
        while not self._stopping:
            try:
                if psub is None:
                    if self.conn.nc is None:
                        await self.conn.connect()
                    psub = await self.subscribe(self.conn)
                    delay = 0.5
                msgs = await psub.fetch(self.fetch, timeout=1.0)
            except TimeoutError:
                continue  # nothing to read for a second
            except Exception as e:
                # disconnected (nats-py reconnects by itself), JetStream
                # briefly without a leader, the consumer deleted ...: again, backing off
                _log.error(f"{self.origin}: {describe_error(e)}; retrying in {delay:.1f}s", extra=at(self.origin))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                if self.conn.nc is None or self.conn.nc.is_closed:
                    self.conn.nc = None
                    psub = None
                elif not self.conn.connected or "consumer" in str(e).lower():
                    psub = None
                continue
            await self._handle_all(msgs)

    async def _handle(self, msg: Any) -> None:
        await self._handle_all([msg])

    async def _handle_all(self, msgs: list[Any]) -> None:
        """The messages of one fetch.  Each is checked alone (a message not
        ours is dead-lettered whole, acknowledged and counted); runs of
        consecutive good ones of the same sensor, kind and format, up to
        GROUP_RECORDS records, are decoded together in one C call into one
        batch (:meth:`ingest.wire.Decoder.decode_group`), which holds every
        one of their acknowledgements: a message is acknowledged once the
        sinks stored the whole group."""
        assert self.stats is not None and self.deadletter is not None
        group: list[tuple[Any, Checked]] = []
        rows = 0
        for msg in msgs:
            meta = msg.metadata
            seq = meta.sequence.stream
            if meta.num_delivered >= self.max_deliver:
                # its last delivery: kept first, so that it is never lost even if it kills this collector too
                self.deadletter.write(f"nats:{meta.stream}#{seq}", "last_delivery", msg.data,
                                      meta=self._where(msg))
                self.stats.add_malformed("last_delivery")
            try:
                checked = self.decoder.check(msg.subject, msg.headers, msg.data)
            except Exception as e:
                await self._poison(msg, e)
                continue
            if group and (checked.group_key != group[0][1].group_key or rows + checked.count > GROUP_RECORDS):
                await self._decode(group)
                group, rows = [], 0
            group.append((msg, checked))
            rows += checked.count
        if group:
            await self._decode(group)

    def _where(self, msg: Any) -> dict[str, Any]:
        meta = msg.metadata
        return {"stream": meta.stream, "seq": meta.sequence.stream, "subject": msg.subject[:512]}

    async def _poison(self, msg: Any, e: BaseException) -> None:
        """Poison: not ours.  Anything else is a decoder defect this message
        triggers: the same outcome (dead-lettered whole, acked, counted as
        "undecodable"), never a collector that dies on it and on every
        redelivery until max_deliver."""
        assert self.stats is not None and self.deadletter is not None
        meta = msg.metadata
        reason = e.reason if isinstance(e, Poison) else "undecodable"
        detail = str(e) if isinstance(e, Poison) else describe_error(e)
        self.deadletter.write(f"nats:{meta.stream}#{meta.sequence.stream}", reason, msg.data,
                              meta={**self._where(msg), "detail": detail[:300]})
        self.stats.add_malformed(reason)
        self.stats.add_input(1, 0)
        await self._ack(msg)

    async def _decode(self, group: list[tuple[Any, Checked]]) -> None:
        """One group of checked messages into one queued batch.  If decoding
        them together fails, each is decoded alone, so that only the message
        causing it is dead-lettered (as ``undecodable``)."""
        assert self.stats is not None and self.deadletter is not None
        try:
            dec = self.decoder.decode_group([c for _, c in group])
        except Exception as e:
            if len(group) > 1:
                for one in group:
                    await self._decode([one])
                return
            await self._poison(group[0][0], e)
            return
        batch = dec.batch
        total = 0
        for (msg, checked), rejected in zip(group, dec.rejected, strict=True):
            meta = msg.metadata
            for reason, raw in rejected:
                self.deadletter.write(f"nats:{meta.stream}#{meta.sequence.stream}", reason, raw,
                                      meta=self._where(msg))
                self.stats.add_malformed(reason)
            total += checked.count
            sensor = checked.sensor
            n = self._received.get(sensor)
            if n is not None or len(self._received) < MAX_SENSORS:
                self._received[sensor] = (n or 0) + checked.count
                self._messages[sensor] = self._messages.get(sensor, 0) + 1
                self.stats.set_extra(f"nats.{sensor}.received", self._received[sensor])
                self.stats.set_extra(f"nats.{sensor}.messages", self._messages[sensor])
                age = max(0.0, time.time() - meta.timestamp.timestamp()) if meta.timestamp else 0.0
                self.stats.set_extra(f"nats.{sensor}.age_ms", int(age * 1000))
        self.stats.add_input(total, len(batch))
        if batch.queued() == 0:
            for msg, _ in group:
                await self._ack(msg)  # nothing left to store (every line was refused)
            return
        nbytes = 0
        for msg, _ in group:
            seq = msg.metadata.sequence.stream
            self._unacked[seq] = msg
            batch.acks.append(self._acker(seq, msg))
            nbytes += len(msg.data)
        # about what the queued batch holds: the records (raw pool, events) and the alert rows
        await self._queue(batch, nbytes + batch.alerts.nbytes)

    async def _queue(self, batch: AlertBatch, nbytes: int) -> None:
        """Into the runtime's bounded queue; while it is full, wait (JetStream
        holds the data, and the heartbeat keeps what we fetched alive)."""
        assert self.submit is not None
        n = batch.queued()
        wait = 0.001
        while not self.submit.reserve(n, 0.0, nbytes):
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.05)
        self.submit.submit(batch)

    def _acker(self, seq: int, msg: Any) -> Callable[[], None]:
        def ack() -> None:  # called on the loop once every sink has the batch
            self._unacked.pop(seq, None)
            task = asyncio.ensure_future(self._ack(msg))
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)

        return ack

    async def _ack(self, msg: Any) -> None:
        try:
            await msg.ack()
        except Exception as e:  # the connection is down: the message comes again, and is stored once
            _log.error(f"{self.origin}: acknowledgement lost ({describe_error(e)}); "
                       "JetStream will deliver it again (the stores keep it once)", extra=at(self.origin))

    async def _heartbeat(self) -> None:
        """Keep every fetched, not yet acknowledged message from being
        redelivered while this collector works on it."""
        while True:
            await asyncio.sleep(max(self.ack_wait / 3, 0.2))
            for msg in list(self._unacked.values()):
                try:
                    await msg.in_progress()
                except Exception:
                    break  # disconnected: they will be redelivered; the stores keep them once

    # --- JetStream's view of the durable (the stats' lag) ------------------------
    async def refresh_stats(self) -> None:
        """Before each periodic stats line (the runtime calls it): JetStream's
        view of the durable, if a second has passed since the last one and
        JetStream is there; otherwise the last values stand."""
        now = time.monotonic()
        if now - self._polled < self.poll_min or not self.conn.connected:
            return
        self._polled = now
        try:
            await asyncio.wait_for(self.poll(), 5)
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # JetStream away or slow: the next line asks again

    async def poll(self) -> None:
        """Ask JetStream how far the durable is (one consumer info, one
        stream info) and, while it has messages not finished, how many of
        each sensor's messages lie past its ack floor (one short-lived,
        filtered consumer per sensor, in memory on one replica: the count
        JetStream gives when it is created).  Into the stats."""
        assert self.stats is not None
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        js, u = self.conn.js, self.url
        ci = await js.consumer_info(u.stream, self.durable)
        si = await js.stream_info(u.stream, subjects_filter=u.subjects)
        pending, ack_pending = int(ci.num_pending or 0), int(ci.num_ack_pending or 0)
        floor = int(ci.ack_floor.stream_seq or 0) if ci.ack_floor else 0
        for name, value in (("nats_pending", pending), ("nats_ack_pending", ack_pending),
                            ("nats_lag", pending + ack_pending),
                            ("nats_delivered", int(ci.delivered.stream_seq or 0) if ci.delivered else 0),
                            ("nats_ack_floor", floor), ("nats_last_seq", int(si.state.last_seq or 0))):
            self.stats.set_extra(name, value)
        cut = len(u.prefix) + 1
        for subj in (si.state.subjects or {}):
            sensor = subj[cut:].rpartition(".")[0]
            if sensor and sensor not in self._sensors and len(self._sensors) < MAX_SENSORS:
                self._sensors.add(sensor)
        names = sorted(self._sensors)
        if pending + ack_pending == 0:
            for sensor in names:  # the durable has finished everything: so has every sensor
                self.stats.set_extra(f"nats.{sensor}.pending", 0)
            return
        # at most PENDING_PER_POLL sensors asked per poll, in turn: with many
        # sensors each line refreshes some, and the others keep their last count
        start = self._next_sensor % len(names) if names else 0
        for sensor in (names[start:] + names[:start])[:PENDING_PER_POLL]:
            info = await js.add_consumer(u.stream, ConsumerConfig(
                filter_subject=f"{u.prefix}.{sensor}.>", deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=floor + 1, ack_policy=AckPolicy.NONE, inactive_threshold=10.0,
                num_replicas=1, mem_storage=True))
            self.stats.set_extra(f"nats.{sensor}.pending", int(info.num_pending or 0))
            self._next_sensor = names.index(sensor) + 1
            try:
                await js.delete_consumer(u.stream, info.name)
            except Exception:
                pass  # it goes by itself once inactive
