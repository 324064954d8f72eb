"""The dead-letter file: every input we could not turn into an alert, raw.

Format (append-only, one entry per rejected input)::

    {"ts": "...", "origin": "snort:/run/snort_alert", "reason": "bad_length", "length": 1234}\n
    <length raw bytes>\n

A JSON header line, the raw bytes exactly as received, and a newline, so the
file can be inspected with ``head`` and replayed with :func:`read`.  The file
is size-bounded: past ``max_bytes`` it is rotated to ``PATH.1`` (one previous
generation kept), so it never grows without bound.  The entries a rotation
overwrites (the previous ``PATH.1``) are counted in ``rotated`` and reported
in the stats (``dead_letters_rotated``): the counters never claim more than
the files hold.  It is opened with O_NOFOLLOW and mode 0600 through
:mod:`ingest.safefile`: a symlink planted at the path is refused, never
written through, and so is an existing file that another user owns or may
write.  The file is created only when there is a first entry to keep; the
path is validated at start-up all the same.

A caller may leave out a span of the input that it knows is all zeros (a
64 KiB Snort Alertpkt carries ``caplen`` packet bytes and zeros up to 65,535):
the header then says ``"elided": [offset, count]``, ``length`` counts the
bytes stored, and :func:`read` puts the zeros back, so the entry is still
the datagram byte for byte, in 1-2 KB instead of 64 KiB.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .ops.logs import at
from .safefile import UnsafeFileError, check_output, open_output

_log = logging.getLogger(__name__)

WHAT = "dead-letter file"


class DeadLetter:
    def __init__(self, path: str | None, max_bytes: int = 64 << 20, *, allow_foreign: bool = False) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.allow_foreign = allow_foreign
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._entries = 0  # entries in the file at path
        self._entries_1: int | None = None  # entries in path.1 (None: not counted yet)
        self.count = 0
        #: entries lost to rotation (the overwritten path.1)
        self.rotated = 0
        #: entries that could not be written (disk full, ...): counted, never fatal
        self.errors = 0
        self.last_error: str | None = None

    def open(self) -> None:
        """Validate the path now (UnsafeFileError), so a bad or foreign path
        is a start-up error rather than a failure in a reader thread later.
        Nothing is created until there is something to keep."""
        if self.path is not None:
            check_output(self.path, what=WHAT, allow_foreign=self.allow_foreign)
            if os.path.lexists(self.path):
                if not os.access(self.path, os.W_OK):
                    raise UnsafeFileError(f"{WHAT} {self.path}: not writable")
            elif not os.access(os.path.dirname(os.path.abspath(self.path)), os.W_OK | os.X_OK):
                raise UnsafeFileError(f"{WHAT} {self.path}: cannot create files in its directory")

    def _open(self) -> int:
        assert self.path is not None
        try:
            fd = open_output(self.path, what=WHAT, mode=0o600, allow_foreign=self.allow_foreign)
        except UnsafeFileError as e:  # replaced since start-up: counted like any failed write
            raise OSError(errno.EPERM, str(e)) from None
        self._size = os.fstat(fd).st_size
        return fd

    def _open_counted(self) -> int:
        assert self.path is not None
        fd = self._open()
        # entries already there (an earlier run, or a file logrotate left)
        self._entries = _count_entries(self.path) if self._size else 0
        return fd

    def _rotate(self) -> None:
        assert self.path is not None and self._fd is not None
        os.close(self._fd)
        self._fd = None
        old = self.path + ".1"
        if self._entries_1 is None:  # a .1 we did not write: count what it holds once
            self._entries_1 = _count_entries(old) if os.path.lexists(old) else 0
        os.replace(self.path, old)
        self.rotated += self._entries_1
        self._entries_1 = self._entries
        self._fd = self._open_counted()

    def reopen(self) -> bool:
        """Close the file so the next entry opens the path again (SIGHUP,
        after logrotate moved it); returns whether there was a file."""
        with self._lock:
            if self.path is None:
                return False
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._entries_1 = None  # logrotate's doing: count path.1 afresh if we rotate
            return True

    def write(self, origin: str, reason: str, data: bytes | memoryview | np.ndarray,
              elide: tuple[int, int] | None = None, *, retry: bool = False,
              meta: dict[str, Any] | None = None) -> bool:
        """Append one raw input with its reason (thread-safe).  Never raises:
        a failed write is counted in ``errors`` (the caller is a reader thread
        that must keep draining its socket); returns whether it was kept.
        ``count`` counts the entries kept (or, with no path, counted only),
        so it never claims an entry the file does not hold; ``retry`` marks
        another attempt at an entry whose failure was already counted.

        ``elide`` = (offset, count): those bytes of data are all zeros and
        are not stored (:func:`read` restores them).  ``meta``: more header
        members (the NATS collector: the message's stream and sequence)."""
        with self._lock:
            if self.path is None:
                self.count += 1
                return False
            head_meta: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "origin": origin,
                                         "reason": reason, **(meta or {})}
            meta = head_meta
            if elide is not None:
                start, n = elide
                mv = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data
                parts = [bytes(mv[:start]), bytes(mv[start + n:])]
                meta["length"] = len(parts[0]) + len(parts[1])
                meta["elided"] = [start, n]
            else:
                parts = [bytes(data)]
                meta["length"] = len(parts[0])
            head = json.dumps(meta).encode() + b"\n"
            size = len(head) + meta["length"] + 1
            try:
                if self._fd is None:
                    self._fd = self._open_counted()
                if self._size and self._size + size > self.max_bytes:
                    self._rotate()
                    assert self._fd is not None
                start = os.lseek(self._fd, 0, os.SEEK_END)  # where O_APPEND puts it (one writer)
                done = os.writev(self._fd, [head, *parts, b"\n"])
                if done != size:  # a short write (the disk filled up): never leave a torn entry
                    os.ftruncate(self._fd, start)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self._size += size
                self._entries += 1
                self.count += 1
                return True
            except OSError as e:
                if not retry:
                    self.errors += 1
                self.last_error = f"{self.path}: {e.strerror or e}"
                return False

    def keep(self, origin: str, reason: str, data: bytes | memoryview | np.ndarray,
             hold: Callable[[], bool] | None = None) -> bool:
        """:meth:`write` for a reader that must not move past input it could
        not keep.  Socket readers (``hold`` None) must keep draining: a failed
        write is counted and they go on (True).  A file reader passes
        ``hold`` (true while it may wait): its file is the buffer, so it waits
        here, retrying once a second, until the entry is kept (True) or it
        is stopping (False: the caller acknowledges nothing past this input,
        which the next run reads again).  A disabled file (no path) keeps
        nothing and holds nothing."""
        if self.write(origin, reason, data) or hold is None or self.path is None:
            return True
        _log.error(f"{origin}: cannot keep rejected input in the {WHAT} ({self.last_error}); "
                   f"not reading past it until it can be kept", extra=at(origin))
        while hold():
            time.sleep(1.0)
            if self.write(origin, reason, data, retry=True):
                _log.info(f"{origin}: {WHAT} writable again; reading on", extra=at(origin))
                return True
        return False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    if e.errno != errno.EINVAL:  # EINVAL: not a file that syncs (a device)
                        self.errors += 1
                        self.last_error = f"{self.path}: {e.strerror or e}"
                finally:
                    os.close(self._fd)
                    self._fd = None


def _count_entries(path: str) -> int:
    """Entries in a dead-letter file (headers only; the data is skipped)."""
    n = 0
    try:
        with open(path, "rb") as f:
            while True:
                line = f.readline()
                if not line:
                    return n
                try:
                    length = int(json.loads(line)["length"])
                except (ValueError, KeyError, TypeError):
                    return n  # not ours, or cut by a crash: count what is certain
                f.seek(length + 1, os.SEEK_CUR)
                n += 1
    except OSError:
        return n


def read(path: str) -> Iterator[tuple[dict, bytes]]:
    """Iterate (header, raw bytes) over a dead-letter file; elided zeros
    are put back, so the bytes are the input as received."""
    with open(path, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                return
            head = json.loads(line)
            data = f.read(head["length"])
            f.read(1)
            if "elided" in head:
                start, n = head["elided"]
                data = data[:start] + bytes(n) + data[start:]
            yield head, data
