"""``jsonl:PATH`` / ``jsonl:-``: one JSON object per line (EVE or Trisul profile).

The batch is rendered by the C core in one call and written with one
``write`` per batch, in a worker thread so a slow disk never blocks the
event loop.  The file is opened O_APPEND|O_NOFOLLOW with mode 0640 through
:mod:`ingest.safefile`: a symlink planted at the path is refused, never
written through, and so is an existing file another user owns or may write.

``reopen`` (SIGHUP, after logrotate moved the file) runs on the sink's own
thread, so it falls between two batch writes; a batch whose write was cut
short and is being retried is finished in the old file first.  The new file
is opened by the same ``_open`` as the first, with the same rules; if that
fails, the sink keeps writing to the file it has open.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from ..mapping import Enriched
from ..ops.logs import at
from ..render import render_buffer
from ..safefile import open_output
from .errors import DataError, SinkGone

_log = logging.getLogger(__name__)


class JsonlSink:
    def __init__(self, path: str, *, profile: str = "eve", allow_foreign: bool = False) -> None:
        self.name = f"jsonl:{path}"
        self.profile = profile
        self.path = path
        self.allow_foreign = allow_foreign
        if path == "-":
            self._fd = 1
            self._own = False
        else:
            self._fd = self._open()
            self._own = True
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-jsonl")
        #: a batch being written: (item, its bytes, how many are written,
        #: the file's size before its first byte)
        self._pending: tuple[Enriched, bytes | memoryview, int, int] | None = None
        self._completed: Enriched | None = None  # finished by a probe: its retry is a no-op
        self._completed_span: tuple[int, int] = (0, 0)  # where the probe-finished batch lies
        self._reopen_wanted = False
        self._gone = False  # stdout whose reader went away: no write can ever succeed

    def _open(self) -> int:
        """The one place the output file is opened (at start and on reopen):
        never a link, FIFO, or a file another user owns or may write."""
        return open_output(self.path, what="JSON-lines sink", mode=0o640, allow_foreign=self.allow_foreign)

    def _reopen_now(self) -> None:
        fd = self._open()  # raises: the old descriptor stays in use
        old, self._fd = self._fd, fd
        os.close(old)

    def _reopen(self) -> bool:
        if not self._own:
            return False  # stdout
        if self._pending is not None:
            # a batch is half written to the old file: finish it there first
            self._reopen_wanted = True
            return True
        self._reopen_now()
        return True

    async def reopen(self) -> bool:
        """Reopen the path (logrotate); False for stdout.  Runs between two
        batch writes, on the sink's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._reopen)

    def _write_item(self, item: Enriched) -> None:
        # A retried batch (after a failed or partial write) resumes where the
        # last attempt stopped: no torn line, no line written twice.
        if self._completed is item:
            self._completed = None
            return
        if self._gone:
            raise SinkGone("standard output was closed (its reader went away)")
        if self._pending is None or self._pending[0] is not item:
            try:
                data: bytes | memoryview = render_buffer(item.batch, self.profile, item.categories,
                                                         item.extra_strings, item.references)
            except (ValueError, TypeError, UnicodeError, OverflowError) as e:
                # nothing is written yet: a record that cannot be rendered is the data's fault
                raise DataError(f"cannot render: {e!r}") from e
            ev = item.batch.events
            if ev is not None and ev.count:
                # non-alert events (EVE flow, dns, stats ...): verbatim, in the same write
                data = bytes(data) + ev.lines if len(data) else ev.lines
            start = os.lseek(self._fd, 0, os.SEEK_END) if self._own else 0
            self._pending = (item, data, 0, start)
        _, data, done, start = self._pending
        view = memoryview(data)
        while done < len(data):
            try:
                done += os.write(self._fd, view[done:])
            except BrokenPipeError:
                if self._own:
                    raise  # a file cannot give EPIPE; whatever it is, it is "down"
                # stdout's reader went away (| head): it never comes back
                self._gone = True
                raise SinkGone("standard output was closed (its reader went away)") from None
            finally:
                self._pending = (item, data, done, start)
        self._pending = None
        self._completed_span = (start, start + len(data))
        if self._reopen_wanted:
            self._reopen_wanted = False
            try:
                self._reopen_now()
            except OSError as e:  # the batch is written: report, never fail it
                _log.error(f"reopening {self.name} failed ({e}); it keeps writing to the file "
                           "it had open", extra=at(None, sink=self.name))

    def _probe(self) -> bool:
        """After a failed write: try the rest of that batch's bytes once (they
        are rendered already, so this costs one write call).  True when the
        batch is now complete: the runtime's retry then has nothing to do."""
        if self._pending is None or self._gone:
            return False  # it failed before writing anything: no cheap test
        item = self._pending[0]
        try:
            self._write_item(item)
        except OSError:
            return False
        self._completed = item
        return True

    def _abandon(self) -> None:
        """The runtime gave up on the batch this sink could not finish (the
        shutdown drain timed out): it goes to the dead-letter file, so what
        of it is in the output is taken back out.  Otherwise those lines
        would be both written and counted as not delivered, and the file
        would end in a torn line that the next run's first line is glued
        to.  Only when nothing else was appended since (the file's size is
        where our bytes end); stdout cannot be taken back."""
        if self._pending is not None:
            _item, _data, done, start = self._pending
            end = start + done
        elif self._completed is not None:
            start, end = self._completed_span
        else:
            return
        self._pending = None
        self._completed = None
        if not self._own or end == start:
            return
        try:
            if os.fstat(self._fd).st_size == end:
                os.ftruncate(self._fd, start)
                return
        except OSError as e:
            _log.error(f"{self.name}: could not take back a batch cut short ({e}); "
                       f"bytes {start}-{end} hold part of it", extra=at(None, sink=self.name))
            return
        _log.error(f"{self.name}: the file grew under a batch cut short; bytes {start}-{end} "
                   "hold part of it", extra=at(None, sink=self.name))

    async def abandon(self) -> None:
        """See ``_abandon`` (runs on the sink's thread)."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._abandon)

    async def probe(self) -> bool:
        """Whether the file takes writes again (see ``_probe``)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._probe)

    async def write(self, item: Enriched) -> None:
        # Rendering (C, GIL released) and the write run on the sink's thread.
        await asyncio.get_running_loop().run_in_executor(self._pool, self._write_item, item)

    async def aclose(self) -> None:
        def close() -> None:
            if self._own:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    if e.errno != errno.EINVAL:  # EINVAL: a device (/dev/null), nothing to sync
                        raise
                finally:
                    os.close(self._fd)

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown()
