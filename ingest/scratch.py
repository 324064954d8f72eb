"""Output buffers reused across calls, never while someone still holds them.

A fresh multi-megabyte numpy array costs a page fault and a page of zeroing
by the kernel for every 4 KiB the C core then writes into it: for the
Unified2 reader and the JSON renderer that was most of the time (issue 10).
The C core writes into caller-owned buffers, so the caller can hand it the
same pages again, as long as nothing returned from the previous call still
points into them.

The ownership rule (the one used by ``unified2`` and ``render``):

* what a call returns is **yours for as long as you hold it**: results are
  views of a scratch buffer, and a buffer is reused only when no view of it
  is alive any more (its reference count says so: numpy views keep a
  reference to the array that owns the memory, and so does every view
  derived from them, ``bytes``/``tobytes`` copies do not);
* so keeping a result (or any slice of it) is always safe: the next call
  then gets other memory; dropping results as you go is what makes the next
  call reuse warm pages;
* each thread has its own ``slots`` buffers (two: the usual loop
  ``for res in iter_read(...)`` still holds the previous result while the
  next one is decoded); a buffer grows geometrically and never shrinks, and
  one larger than ``keep_bytes`` is handed out but not kept.

``release()`` drops the calling thread's buffers (memory back to the
system).
"""

from __future__ import annotations

import sys
import threading

import numpy as np


class Scratch:
    """Per-thread reusable uint8 buffers (see the module docstring)."""

    def __init__(self, slots: int = 2, keep_bytes: int = 256 << 20) -> None:
        self.slots = slots
        self.keep_bytes = keep_bytes
        self._local = threading.local()
        #: fresh buffers allocated (for tests and benchmarks)
        self.allocations = 0

    def _bufs(self) -> list[np.ndarray]:
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = []
        return bufs

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of at least nbytes that no earlier result holds.
        Its contents are undefined (the C core writes every byte it
        reports)."""
        bufs = self._bufs()
        for i in range(len(bufs)):
            if sys.getrefcount(bufs[i]) > 2:  # the list slot + the argument
                continue
            if len(bufs[i]) >= nbytes:
                return bufs[i]
            # free but too small: grow geometrically (the old one is freed)
            new = max(int(nbytes), 2 * len(bufs[i]))
            bufs[i] = np.empty(0, np.uint8)
            self.allocations += 1
            buf = np.empty(new, dtype=np.uint8)
            if new <= self.keep_bytes:
                bufs[i] = buf
            else:
                del bufs[i]
            return buf
        self.allocations += 1
        buf = np.empty(max(int(nbytes), 1), dtype=np.uint8)
        if len(bufs) < self.slots and len(buf) <= self.keep_bytes:
            bufs.append(buf)
        return buf

    def release(self) -> None:
        """Forget the calling thread's buffers (held results stay valid)."""
        self._local.bufs = []
