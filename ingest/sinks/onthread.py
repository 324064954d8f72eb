"""The asyncio face of a store whose driver blocks (SQLite, PostgreSQL).

Such a sink keeps one connection on one thread of its own (``_pool``, a
one-worker ThreadPoolExecutor): row building and the transaction both run
there, so the event loop never waits on the database and the connection is
only ever used from the thread that made it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ..mapping import Enriched


class OnThreadSink:
    """``write`` and ``probe`` of the Sink protocol, run on ``_pool``; a
    failed write is kept in ``_last_error`` for the sink's ``_probe`` to
    decide what a retry needs (a lock, room on disk, a connection)."""

    _pool: ThreadPoolExecutor
    _last_error: BaseException | None

    def _write_item(self, item: Enriched) -> None:
        raise NotImplementedError

    def _probe(self) -> bool:
        raise NotImplementedError

    async def write(self, item: Enriched) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write_item, item)
        except BaseException as e:
            self._last_error = e
            raise

    async def probe(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._probe)
