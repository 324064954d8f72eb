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
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

from ..mapping import Enriched
from ..natsconn import Connection, describe_error, parse_url
from ..wire import Encoder, Message


class NatsSink:
    def __init__(self, url: str, *, sensor: str, log=sys.stderr, check: bool = True) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ValueError("a nats:// sink needs the NATS client: pip install 'ingest[nats]' (nats-py)") from None
        self.url = parse_url(url)
        self.name = self.url.redacted()
        self.log = log
        self.encoder = Encoder(self.url.prefix, sensor, msg_bytes=self.url.msg_bytes)
        self.conn = Connection(self.url, name=f"sink {self.name}", log=log)
        self._stream_ok = False
        #: the batch being written: the messages made so far, and what makes
        #: the rest (None once all are made); a retry sends the same ones
        self._pending: tuple[Enriched, list[Message], Iterator[Message] | None] | None = None
        self.published = 0  # messages JetStream acknowledged
        self.duplicates = 0  # of which it already had (a retried publish)
        if check:
            self.check()

    def check(self) -> None:
        """Connect once, create or check the stream, disconnect (start-up,
        before the event loop runs).  Raises ConnectionError or ValueError."""

        async def probe() -> None:
            conn = Connection(self.url, name=f"sink {self.name}", log=self.log)
            await conn.connect()
            try:
                await conn.settle(conn.ensure_stream)
            finally:
                await conn.close()

        try:
            asyncio.run(probe())
        except ConnectionError as e:
            raise ValueError(f"sink {self.name}: {e}") from None
        except ValueError as e:
            raise ValueError(f"sink {self.name}: {e}") from None
        except Exception as e:  # JetStream not enabled, no permission, ...
            raise ValueError(f"sink {self.name}: JetStream stream {self.url.stream}: {describe_error(e)}") from None

    async def _ready(self) -> Any:
        if self.conn.nc is None:
            await self.conn.connect()
            self.encoder.max_payload = self.conn.max_payload
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
            raise TimeoutError(f"{self.name}: JetStream did not acknowledge {len(futures)} messages within "
                               f"{self.url.ack_timeout:g} s") from None
        except Exception as e:  # reduced to one line: nats-py may quote the URL, secrets and all
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
                await self.conn.connect()
            except ConnectionError:
                return False
            self.encoder.max_payload = self.conn.max_payload
        return self.conn.connected

    async def aclose(self) -> None:
        await self.conn.close()
