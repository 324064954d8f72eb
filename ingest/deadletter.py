"""The dead-letter file: every input we could not turn into an alert, raw.

Format (append-only, one entry per rejected input)::

    {"ts": "...", "origin": "snort:/run/snort_alert", "reason": "bad_length", "length": 1234}\n
    <length raw bytes>\n

A JSON header line, the raw bytes exactly as received, and a newline, so the
file can be inspected with ``head`` and replayed with :func:`read`.  The file
is size-bounded: past ``max_bytes`` it is rotated to ``PATH.1`` (one previous
generation kept), so it never grows without bound.  It is opened with
O_NOFOLLOW and mode 0600: a symlink planted at the path is refused, never
written through.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Iterator

import numpy as np


class DeadLetter:
    def __init__(self, path: str | None, max_bytes: int = 64 << 20) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self.count = 0
        #: entries that could not be written (disk full, ...): counted, never fatal
        self.errors = 0
        self.last_error: str | None = None

    def open(self) -> None:
        """Open (create) the file now, so a bad path is a start-up error
        rather than a failure in a reader thread later."""
        if self.path is not None and self._fd is None:
            with self._lock:
                self._fd = self._open()

    def _open(self) -> int:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(fd).st_size
        return fd

    def reopen(self) -> bool:
        """Close the file so the next entry opens the path again (SIGHUP,
        after logrotate moved it); returns whether there was a file."""
        with self._lock:
            if self.path is None:
                return False
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            return True

    def write(self, origin: str, reason: str, data: bytes | memoryview | np.ndarray) -> bool:
        """Append one raw input with its reason (thread-safe).  Never raises:
        a failed write is counted in ``errors`` (the caller is a reader thread
        that must keep draining its socket); returns whether it was kept."""
        with self._lock:
            self.count += 1
            if self.path is None:
                return False
            head = json.dumps(
                {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "origin": origin, "reason": reason,
                 "length": len(data)}
            ).encode() + b"\n"
            try:
                if self._fd is None:
                    self._fd = self._open()
                if self._size and self._size + len(head) + len(data) + 1 > self.max_bytes:
                    os.close(self._fd)
                    self._fd = None
                    os.replace(self.path, self.path + ".1")
                    self._fd = self._open()
                os.writev(self._fd, [head, bytes(data), b"\n"])
                self._size += len(head) + len(data) + 1
                return True
            except OSError as e:
                self.errors += 1
                self.last_error = f"{self.path}: {e.strerror or e}"
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


def read(path: str) -> Iterator[tuple[dict, bytes]]:
    """Iterate (header, raw bytes) over a dead-letter file."""
    with open(path, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                return
            head = json.loads(line)
            data = f.read(head["length"])
            f.read(1)
            yield head, data
