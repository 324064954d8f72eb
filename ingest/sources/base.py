"""What every source gets from the runtime, and the Source protocol."""

from __future__ import annotations

from typing import Protocol

from ..batch import AlertBatch
from ..deadletter import DeadLetter
from ..stats import Stats


class Submit(Protocol):
    """Hands a batch to the runtime from any thread.

    ``reserve(n)`` is asked first: False means the runtime's bounded queue is
    full (in alerts or in bytes), and a socket source must dead-letter the
    raw input instead of blocking (a blocked reader would block Snort's
    packet thread); a file source waits, and says so (``file=True``): it is
    also refused while a sink spools (its file is then the buffer, and its
    bookmark stays where it is).  Per-connection line buffers are charged to
    the same byte budget with ``reserve_buffer``.
    """

    def reserve(self, n: int, timeout: float = 0.0, nbytes: int = 0, *, file: bool = False) -> bool:
        """Take n places in the queue, if there is also room for about
        ``nbytes`` more bytes; wait up to timeout seconds for room."""

    def submit(self, batch: AlertBatch) -> None: ...

    def release(self, n: int) -> None:
        """Give back n reserved places that produced no alert."""

    def reserve_buffer(self, nbytes: int, force: bool = False) -> bool:
        """Charge a line buffer to the byte budget (False: no room)."""

    def release_buffer(self, nbytes: int) -> None:
        """Give back line-buffer bytes."""


class Source(Protocol):
    """Owns one socket or file; drains it on its own thread(s)."""

    origin: str

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        """Start reading (returns at once)."""

    def stop(self) -> None:
        """Stop reading, after taking what the kernel already queued.  Blocks
        until the reader threads have finished; call from a worker thread."""

    def close(self) -> None:
        """Release the socket/file (removes socket files we created)."""
