"""What a sink raises when the data, not the sink, is at fault (a module of
its own so that every sink can import it without importing the sink
factory in ``base``)."""

from __future__ import annotations


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


class SinkGone(Exception):
    """A sink that can never take another write: ``jsonl:-`` whose reader
    went away (standard output closed, EPIPE).  Retrying cannot help and
    waiting would hold every later batch back from the other sinks, so the
    runtime stops the process as on SIGTERM: the batch it failed on, and
    whatever the drain cannot write to it, go to the dead-letter file
    (``sink_failed``), the other sinks get everything, exit 1."""


class Dropped(Exception):
    """A sink's ``write`` raises this when it cannot keep the batch and
    never will, though it is not down: the NATS sink whose JetStream is
    away and whose spool is full (``--spool-max-bytes``).  The runtime keeps
    the batch in the dead-letter file (EVE JSON), counts its alerts as
    dropped for ``reason`` (never silently), and acknowledges the batch,
    as for a record the sink refused."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
