"""The Sink protocol and the URL scheme that builds sinks."""

from __future__ import annotations

from typing import Protocol

from ..mapping import Enriched
from .errors import DataError, SinkGone

__all__ = ["DataError", "Sink", "SinkGone", "open_sink", "sink_files"]


class Sink(Protocol):
    """Takes enriched batches; returning from ``write`` is the acknowledgement.

    ``write`` raises :class:`DataError` when the data is at fault and any
    other exception when the sink is down (see DataError)."""

    name: str

    async def write(self, item: Enriched) -> None: ...

    async def aclose(self) -> None:
        """Flush and close; called once after the last write."""


def open_sink(url: str, *, profile: str = "eve", allow_foreign: bool = False,
              sensor: str | None = None, spool: tuple[str, int, str] | None = None,
              correlate_slack: float | None = None) -> Sink:
    """Build a sink from ``jsonl:PATH``, ``jsonl:-``, ``sqlite:PATH``,
    ``postgresql://...`` (``postgres://...``), ``null:`` or ``nats://...``
    (``tls://...``).  ``allow_foreign`` accepts output files another user
    owns or may write (``--allow-foreign-outputs``; see ingest.safefile).
    ``sensor`` is this process's sensor name (``--sensor-name``; None: the
    host name): what a store writes in the ``sensor`` column of a batch that
    names none, and the NATS subjects.  ``spool``: (directory, bound in
    bytes, fsync policy) of a nats:// sink's spool (``--spool-dir``; see
    ingest.sinks.nats).  ``correlate_slack``: seconds an alert may lie outside
    its flow's start..end and still be linked to it (SQL stores;
    ``--correlate-slack``, None: ingest.flows.correlate.DEFAULT_SLACK_S)."""
    from ..flows.correlate import DEFAULT_SLACK_S

    slack = DEFAULT_SLACK_S if correlate_slack is None else correlate_slack
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ValueError(f"sink {url!r}: expected SCHEME:ARG (jsonl:PATH, sqlite:PATH, "
                         "postgresql://..., null:, nats://...)")
    if scheme in ("nats", "tls") and rest.startswith("//"):
        from ..config import default_sensor_name
        from .nats import NatsSink  # nats-py is imported only when a NATS URL is used

        if spool is None:
            return NatsSink(url, sensor=sensor or default_sensor_name())
        return NatsSink(url, sensor=sensor or default_sensor_name(), spool_dir=spool[0], spool_max_bytes=spool[1],
                        spool_fsync=spool[2])
    if scheme == "null":
        from .null import NullSink

        return NullSink()
    if scheme == "jsonl":
        from .jsonl import JsonlSink

        if not rest:
            raise ValueError("sink jsonl: needs a path, or - for stdout")
        return JsonlSink(rest, profile=profile, allow_foreign=allow_foreign)
    if scheme == "sqlite":
        from .sqlite import SqliteSink

        if not rest:
            raise ValueError("sink sqlite: needs a database path")
        return SqliteSink(rest, allow_foreign=allow_foreign, sensor=sensor, correlate_slack=slack)
    if scheme in ("postgresql", "postgres"):
        # psycopg is imported only here, when a PostgreSQL URL is used
        from .postgresql import PostgresSink, redact

        if not rest.startswith("//"):
            raise ValueError(f"sink {redact(url)}: expected postgresql://[user@]host[:port]/dbname[?...]")
        return PostgresSink(url, sensor=sensor, correlate_slack=slack)
    raise ValueError(f"unknown sink {scheme!r} (known: jsonl, sqlite, postgresql, null, nats)")


def sink_files(url: str) -> list[str]:
    """The files a sink URL writes (none for ``null:`` and ``jsonl:-``): the
    SQLite store with its -wal, -shm and -journal files, a JSON-lines file."""
    scheme, _, rest = url.partition(":")
    if scheme == "jsonl" and rest and rest != "-":
        return [rest]
    if scheme == "sqlite" and rest:
        return [rest] + [rest + suffix for suffix in ("-wal", "-shm", "-journal")]
    return []
