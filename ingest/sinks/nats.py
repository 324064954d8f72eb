"""``nats://HOST:PORT[,HOST:PORT...]/SUBJECT_PREFIX[?OPTIONS]``: publish to NATS JetStream.

Every record the JSON-lines sink would write (EVE profile: alerts, flow and
other events) goes to JetStream as batches of JSON lines, on subjects per
sensor and kind (``PREFIX.<sensor>.alert|flow|event``); subjects, framing,
headers, message ids and the per-record identity the collector stores are
the wire format of :mod:`ingest.wire` (its docstring is the contract).
URL options, credentials and TLS: :mod:`ingest.natsconn`.

* The stream is created if absent (file storage, ``replicas``, a duplicate
  window); at start-up the sink connects once and checks it, so a wrong
  URL, bad credentials or a stream that does not take ``PREFIX.>`` are a
  start-up error (exit 2) naming the URL without its secrets.
* A batch is published as a handful of messages at once (pipelined, each
  with its own reply subject) and ``write`` returns only when JetStream has
  acknowledged every one of them (PubAck): only then does the runtime
  acknowledge the batch upstream (bookmarks, Barnyard2 sync acks).
* A failed write (no connection, a PubAck missing after ``ack_timeout``, an
  error from JetStream) raises within ``ack_timeout`` (or at once while
  the client is reconnecting): nothing of the batch is acknowledged
  upstream, and the runtime retries the *same* messages (the rendered
  messages and the keys assigned to their records are kept for the retry),
  so a message JetStream had already stored is recognised by its
  ``Nats-Msg-Id`` and stored once (within the duplicate window).
* nats-py reconnects by itself, to any server of the URL or of the cluster
  it learned, backing off (0.1 s doubling to 5 s per server); the runtime's
  retry backs off too (0.5 s doubling to 30 s), and ``probe`` says the
  moment the connection is back.
* A single record that does not fit in a message (larger than the
  server's ``max_payload``) is refused as data (``DataError``): the runtime
  dead-letters that record alone.

The spool (``--spool-dir``, :mod:`ingest.sinks.outbox`)
--------------------------------------------------------
With a spool directory the sink never makes the runtime wait for JetStream:

* A write that fails for want of JetStream (no connection, PubAcks missing
  after ``ack_timeout``, a JetStream error) puts the batch's messages (the
  very messages it tried, ids and all) into the spool instead, with one
  write and one sync (``--spool-fsync``), and returns: the batch is then
  acknowledged upstream (Barnyard2 sync acks, bookmarks of what was
  already read).  From then on the sink *spools*: every later batch goes
  to the spool behind the earlier ones (order is kept), and
  ``hold_file_input`` tells the runtime to hold file readers back (eve.json
  and Unified2 spools stay where they are: their file is the buffer, their
  bookmark does not move), while socket readers keep draining.
* A replayer (a task started by ``start``) reconnects with back-off and,
  once JetStream answers, publishes the spooled messages oldest first,
  pipelined (a window of at most ``REPLAY_WINDOW`` messages or
  ``REPLAY_BYTES`` bytes), and acknowledges them in the spool only after
  their PubAcks; a failure resends the window (JetStream drops what it
  already has by ``Nats-Msg-Id``, within its duplicate window).  When the
  spool is empty the sink publishes directly again.
* A spool left non-empty by an earlier run (a broker down at shutdown, a
  kill -9) is replayed first: the sink starts in the spooling state, so
  new batches go behind it.  A torn tail (a record cut by a crash) is cut
  at open and counted (``spool_cut_tails``/``spool_cut_bytes``).
* Past ``--spool-max-bytes`` a batch is refused with ``Dropped``
  (``spool_full``): the runtime keeps it in the dead-letter file and counts
  its alerts as dropped, never silently.  A disk error writing the spool is
  a failure of the sink (the runtime retries the same batch).
* With a spool, JetStream unreachable or refusing at start-up is a
  warning, not an error: ingest starts and spools (the replayer says why
  it waits, once per cause).  An existing stream that does not take
  ``PREFIX.>`` stays an error (exit 2): waiting cannot mend it.
* A spooled message is replayed on ``PREFIX.<sensor>.<kind>`` of the
  current URL (a changed prefix takes the spool along); one that cannot be
  published at all (larger than the server's ``max_payload`` now, or
  damaged meta) is dropped from the spool and counted
  (``spool_refused``), never retried forever.

Stats (gauges and counters of the stats lines): ``spool_bytes``,
``spool_count`` (messages waiting), ``spool_spooled``, ``spool_replayed``
(messages put in and published from it), ``spool_refused``,
``spool_cut_tails``, ``spool_cut_bytes``, ``spool_corrupt``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

from ..mapping import Enriched
from ..natsconn import STARTUP_WAIT, Connection, describe_error, parse_url
from ..ops.logs import at
from ..wire import Encoder, Message
from .errors import DataError, Dropped
from .outbox import Outbox, OutboxError, OutboxFull

_log = logging.getLogger(__name__)

#: the replayer's window: messages published before their PubAcks are awaited
REPLAY_WINDOW = 64
REPLAY_BYTES = 16 << 20
#: the replayer's back-off while JetStream does not answer (doubling)
REPLAY_RETRY_FIRST = 0.2
REPLAY_RETRY_MAX = 5.0
#: a spooled subject's part after the prefix (sensor tokens, then the kind)
_SUFFIX = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.(?:alert|flow|event)")


class NatsSink:
    def __init__(self, url: str, *, sensor: str, check: bool = True,
                 spool_dir: str | None = None, spool_max_bytes: int = 1 << 30,
                 spool_fsync: str = "always") -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ValueError("a nats:// sink needs the NATS client: pip install 'ingest[nats]' (nats-py)") from None
        self.url = parse_url(url)
        self.name = self.url.redacted()
        self.encoder = Encoder(self.url.prefix, sensor, msg_bytes=self.url.msg_bytes)
        self.conn = Connection(self.url, name=f"sink {self.name}", sink=self.name)
        self._stream_ok = False
        #: the batch being written: the messages made so far, and what makes
        #: the rest (None once all are made); a retry sends the same ones
        self._pending: tuple[Enriched, list[Message], Iterator[Message] | None] | None = None
        self.published = 0  # messages JetStream acknowledged
        self.duplicates = 0  # of which it already had (a retried publish)
        self.spool: Outbox | None = None
        self._spooling = False  # batches go to the spool (JetStream away, or the spool not replayed yet)
        self.spooled = 0  # messages put into the spool
        self.replayed = 0  # messages published from it
        self.refused = 0  # spooled messages that could never be published (dropped from the spool)
        self._order = asyncio.Lock()  # a write against the replayer's switch back to direct publishing
        self._connecting = asyncio.Lock()
        self._replayer: asyncio.Task | None = None
        self._replay_it: Iterator[tuple[int, dict[str, Any], bytes]] | None = None
        self._kick = asyncio.Event()
        if spool_dir is not None:
            try:
                self.spool = Outbox(spool_dir, spool_max_bytes, fsync=spool_fsync)
            except (OutboxError, OSError) as e:
                raise ValueError(f"sink {self.name}: spool: {e}") from None
            self._spooling = self.spool.count > 0  # what an earlier run left goes first
            if self.spool.cut_tails:
                _log.warning(f"sink {self.name}: spool {spool_dir}: {self.spool.cut_tails} torn "
                             f"tail{'s' if self.spool.cut_tails != 1 else ''} cut ({self.spool.cut_bytes} bytes: records a crash left half written)", extra=at(None, sink=self.name))
            if self._spooling:
                _log.info(f"sink {self.name}: spool {spool_dir} holds {self.spool.count} messages "
                          "from an earlier run; replaying them first", extra=at(None, sink=self.name))
        if check:
            try:
                self.check()
            except BaseException:
                if self.spool is not None:
                    self.spool.close()
                raise

    @property
    def hold_file_input(self) -> bool:
        """File readers wait while the sink spools (the runtime asks)."""
        return self._spooling

    def check(self) -> None:
        """Connect once, create or check the stream, disconnect (start-up,
        before the event loop runs).  Raises ConnectionError or ValueError."""

        async def probe() -> None:
            conn = Connection(self.url, name=f"sink {self.name}", sink=self.name)
            await conn.connect()
            try:
                # with a spool, a JetStream not ready yet is spooled for at once, not waited for
                await conn.settle(conn.ensure_stream, within=0 if self.spool is not None else STARTUP_WAIT)
            finally:
                await conn.close()

        try:
            asyncio.run(probe())
        except ConnectionError as e:
            if self.spool is None:
                raise ValueError(f"sink {self.name}: {e}") from None
            # with a spool a broker that is away is no reason not to start
            _log.warning(f"sink {self.name}: {e}; spooling to {self.spool.directory} until "
                         "JetStream answers", extra=at(None, sink=self.name))
            self._spooling = True
        except ValueError as e:
            raise ValueError(f"sink {self.name}: {e}") from None
        except Exception as e:  # JetStream not enabled, not ready, no permission, ...
            why = f"JetStream stream {self.url.stream}: {describe_error(e)}"
            if self.spool is None:
                raise ValueError(f"sink {self.name}: {why}") from None
            _log.warning(f"sink {self.name}: {why}; spooling to {self.spool.directory} until "
                         "JetStream answers", extra=at(None, sink=self.name))
            self._spooling = True

    async def _connect(self) -> None:
        async with self._connecting:  # the replayer and a probe never make two connections
            if self.conn.nc is None:
                await self.conn.connect()
                self.encoder.max_payload = self.conn.max_payload

    async def _ready(self) -> Any:
        if self.conn.nc is None:
            await self._connect()
        if not self.conn.connected:
            raise ConnectionError(f"{self.name}: not connected (reconnecting)")
        if not self._stream_ok:
            await self.conn.ensure_stream()
            self._stream_ok = True
        return self.conn.js

    def _messages(self, item: Enriched) -> list[Message]:
        """Every message of item, all made (tests, and a retry's view)."""
        made, rest = self._plan(item)
        if rest is not None:
            made.extend(rest)
            self._pending = (item, made, None)
        return made

    def _plan(self, item: Enriched) -> tuple[list[Message], Iterator[Message] | None]:
        if self._pending is None or self._pending[0] is not item:
            self._pending = None
            rest = self.encoder.messages(item)  # renders and checks the whole batch (DataError)
            self._pending = (item, [], rest)
        return self._pending[1], self._pending[2]

    async def write(self, item: Enriched) -> None:
        if self.spool is None:
            await self._publish(item)
            return
        async with self._order:
            if not self._spooling:
                try:
                    await self._publish(item)
                    return
                except DataError:  # the data, not JetStream: the runtime isolates the record
                    raise
                except Exception as e:  # JetStream away: spool this batch and every later one
                    self._spooling = True
                    self._kick.set()
                    _log.error(f"sink {self.name}: {e}; spooling to {self.spool.directory} until "
                               "JetStream answers", extra=at(None, sink=self.name))
            await self._to_spool(item)

    async def _to_spool(self, item: Enriched) -> None:
        """Every message of item into the spool (all or none, one sync)."""
        assert self.spool is not None
        msgs = self._messages(item)  # the ones a failed publish tried, ids and all (DataError: nothing made)
        plen = len(self.url.prefix) + 1
        recs = [(m.payload, {"k": m.subject[plen:], "h": m.headers, "n": m.count, "a": m.alerts}) for m in msgs]
        try:
            await asyncio.to_thread(self.spool.append_many, recs)
        except OutboxFull as e:
            self._pending = None
            raise Dropped("spool_full", f"{e} ({len(msgs)} messages)") from None
        except OSError as e:  # the disk: a failure of the sink, the runtime retries the same batch
            raise OSError(e.errno, f"spool {self.spool.directory}: {e.strerror or e}") from None
        self._pending = None
        self.spooled += len(msgs)

    async def _publish(self, item: Enriched) -> None:
        from nats.errors import MaxPayloadError
        from nats.js.errors import NoStreamResponseError

        js = await self._ready()
        made, rest = self._plan(item)
        futures: list[asyncio.Future] = []
        stream = self.url.stream
        try:
            for m in made:  # a retry: what an earlier attempt made (and may have stored) goes again
                futures.append(await js.publish_async(m.subject, m.payload, headers=dict(m.headers), stream=stream))
            if rest is not None:
                for m in rest:
                    made.append(m)
                    futures.append(await js.publish_async(m.subject, m.payload, headers=dict(m.headers),
                                                           stream=stream))
                    # let the client write it out now: JetStream stores it while the next one is cut
                    await asyncio.sleep(0)
                self._pending = (item, made, None)
            acks = await asyncio.wait_for(asyncio.gather(*futures), self.url.ack_timeout)
        except MaxPayloadError:
            # the server we reconnected to takes less: cut the batch anew (its
            # assigned keys change, the collector's stores still take each record once)
            self._pending = None
            self.encoder.max_payload = self.conn.max_payload
            raise
        except NoStreamResponseError:
            self._stream_ok = False  # the stream was deleted: create it again on the retry
            raise ConnectionError(f"{self.name}: no JetStream stream answers for {self.url.subjects}") from None
        except TimeoutError:
            await self.conn.drop()  # nothing of this batch may go out ahead of its retry
            raise TimeoutError(f"{self.name}: JetStream did not acknowledge {len(futures)} messages within "
                               f"{self.url.ack_timeout:g} s") from None
        except Exception as e:  # reduced to one line: nats-py may quote the URL, secrets and all
            await self.conn.drop()
            raise ConnectionError(f"{self.name}: {describe_error(e)}") from None
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()
        self.published += len(acks)
        self.duplicates += sum(1 for a in acks if a.duplicate)
        self._pending = None

    async def probe(self) -> bool:
        """Whether a write could go through now: connected (nats-py
        reconnects by itself), or, never connected yet, a connection made now."""
        if self.conn.nc is None:
            try:
                await self._connect()
            except ConnectionError:
                return False
        return self.conn.connected

    # --- the spool's replayer ----------------------------------------------
    async def start(self) -> None:
        """(the runtime, before the sources start) Start the replayer."""
        if self.spool is not None and self._replayer is None:
            self._replayer = asyncio.create_task(self._replay_loop(), name=f"replay {self.name}")

    async def _replay_loop(self) -> None:
        assert self.spool is not None
        delay = REPLAY_RETRY_FIRST
        said: str | None = None
        while True:
            if not self._spooling:
                self._kick.clear()
                await self._kick.wait()
                continue
            try:
                await self._ready()
                await self._replay_window()
            except Exception as e:  # JetStream still away: try again later
                await asyncio.to_thread(self._forget_window)  # the window is resent
                why = describe_error(e) if not isinstance(e, (ConnectionError, TimeoutError)) else str(e)
                if why != said:  # one line per distinct cause, not one per attempt
                    said = why
                    _log.info(f"sink {self.name}: spool replay waits: {why}", extra=at(None, sink=self.name))
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPLAY_RETRY_MAX)
                continue
            delay = REPLAY_RETRY_FIRST
            said = None
            if self.spool.count == 0:
                async with self._order:  # no write is between "empty" and "publish directly"
                    if self.spool.count == 0:
                        self._spooling = False
                        _log.info(f"sink {self.name}: spool replayed ({self.replayed} messages so far); "
                                  "publishing directly", extra=at(None, sink=self.name))

    def _read_window(self) -> list[tuple[int, dict[str, Any], bytes]]:
        """(thread) The next spooled messages, at most a window's worth.  One
        iteration of the spool serves window after window (each record is
        read once); it is begun anew after a failure (the window is resent)
        and when it has reached the end."""
        assert self.spool is not None
        if self._replay_it is None:
            self._replay_it = self.spool.pending()
        out: list[tuple[int, dict[str, Any], bytes]] = []
        size = 0
        for seq, meta, payload in self._replay_it:
            out.append((seq, meta, bytes(payload)))
            size += len(payload)
            if len(out) >= REPLAY_WINDOW or size >= REPLAY_BYTES:
                return out
        self._replay_it = None  # the end: records appended later need a new iteration
        return out

    def _forget_window(self) -> None:
        it, self._replay_it = self._replay_it, None
        close = getattr(it, "close", None)
        if close is not None:
            try:
                close()  # releases the segment it reads
            except ValueError:  # still running in a thread (shutdown): it ends with the spool's close
                pass

    def _spooled_message(self, meta: dict[str, Any], payload: bytes) -> tuple[str, dict[str, str]] | None:
        """The subject and headers of a spooled message, or None if it
        cannot be published (damaged meta, too large for the server now)."""
        suffix, headers = meta.get("k"), meta.get("h")
        if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix) or not isinstance(headers, dict):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) and "\r" not in k + v and "\n" not in k + v
                   for k, v in headers.items()):
            return None
        if len(payload) + sum(len(k) + len(v) + 4 for k, v in headers.items()) > self.conn.max_payload:
            return None
        return f"{self.url.prefix}.{suffix}", headers

    async def _replay_window(self) -> None:
        """Publish the oldest spooled messages, pipelined; acknowledge them
        in the spool once JetStream acknowledged every one."""
        assert self.spool is not None
        js = await self._ready()
        window = await asyncio.to_thread(self._read_window)
        if not window:
            return
        futures: list[asyncio.Future] = []
        refused = 0
        try:
            for _, meta, payload in window:
                sh = self._spooled_message(meta, payload)
                if sh is None:
                    refused += 1
                    continue
                futures.append(await js.publish_async(sh[0], payload, headers=dict(sh[1]), stream=self.url.stream))
                await asyncio.sleep(0)
            acks = await asyncio.wait_for(asyncio.gather(*futures), self.url.ack_timeout)
        except TimeoutError:
            await self.conn.drop()  # the window is resent whole, in order, on a fresh connection
            raise TimeoutError(f"JetStream did not acknowledge {len(futures)} replayed messages within "
                               f"{self.url.ack_timeout:g} s") from None
        except Exception as e:
            await self.conn.drop()
            raise ConnectionError(describe_error(e)) from None
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()
        await asyncio.to_thread(self.spool.ack, window[-1][0])
        if refused:
            self.refused += refused
            _log.error(f"sink {self.name}: {refused} spooled messages cannot be published "
                       f"(damaged, or larger than the server takes); dropped from the spool ({self.refused} so far)", extra=at(None, sink=self.name))
        self.replayed += len(acks)
        self.published += len(acks)
        self.duplicates += sum(1 for a in acks if a.duplicate)

    def stats(self) -> dict[str, int]:
        """The spool's gauges and counters, for the stats lines."""
        if self.spool is None:
            return {}
        box = self.spool
        return {"spool_bytes": box.bytes, "spool_count": box.count, "spool_spooled": self.spooled,
                "spool_replayed": self.replayed, "spool_refused": self.refused,
                "spool_cut_tails": box.cut_tails, "spool_cut_bytes": box.cut_bytes, "spool_corrupt": box.corrupt}

    async def aclose(self) -> None:
        if self._replayer is not None:
            self._replayer.cancel()
            try:
                await self._replayer
            except BaseException:  # cancelled (what it did not acknowledge is replayed next time)
                pass
            self._replayer = None
        await self.conn.close()
        if self.spool is not None:
            await asyncio.to_thread(self._forget_window)
            await asyncio.to_thread(self.spool.close)
