"""The Sink protocol and the URL scheme that builds sinks."""

from __future__ import annotations

from typing import Protocol

from ..mapping import Enriched


class DataError(Exception):
    """A sink's ``write`` raises this when the batch's *data*, not the sink,
    is at fault, so writing the same records again can never succeed: a
    value the store cannot bind or encode, a constraint or trigger that
    refuses a row, a record that cannot be rendered.  The runtime then
    isolates the records at fault (it writes halves of the batch again, down
    to single records), dead-letters those with reason ``sink_rejected`` and
    delivers the rest; the batch is acknowledged once every part is stored
    or dead-lettered.  A sink must leave nothing of a batch it refused this
    way half-written (SQLite: the transaction is rolled back).

    Any other exception means the sink is *down* (database locked, disk
    full, I/O error, peer unreachable): the same batch is retried with
    backoff until it succeeds (or the shutdown drain timeout passes)."""


class Sink(Protocol):
    """Takes enriched batches; returning from ``write`` is the acknowledgement.

    ``write`` raises :class:`DataError` when the data is at fault and any
    other exception when the sink is down (see DataError)."""

    name: str

    async def write(self, item: Enriched) -> None: ...

    async def aclose(self) -> None:
        """Flush and close; called once after the last write."""


def open_sink(url: str, *, profile: str = "eve") -> Sink:
    """Build a sink from ``jsonl:PATH``, ``jsonl:-``, ``sqlite:PATH`` or ``null:``."""
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ValueError(f"sink {url!r}: expected SCHEME:ARG (jsonl:PATH, sqlite:PATH, null:)")
    if scheme == "null":
        from .null import NullSink

        return NullSink()
    if scheme == "jsonl":
        from .jsonl import JsonlSink

        if not rest:
            raise ValueError("sink jsonl: needs a path, or - for stdout")
        return JsonlSink(rest, profile=profile)
    if scheme == "sqlite":
        from .sqlite import SqliteSink

        if not rest:
            raise ValueError("sink sqlite: needs a database path")
        return SqliteSink(rest)
    raise ValueError(f"unknown sink {scheme!r} (known: jsonl, sqlite, null)")
