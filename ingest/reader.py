"""A native reader: one thread of the C core per datagram socket that keeps
receiving (and, for Alertpkt, decoding) into a bounded ring of batches
without ever taking the GIL (csrc/recv.c, ``ingest_reader_*``).

The Python side takes whole batches off the ring at its own pace
(:meth:`NativeReader.take` blocks with the GIL released) and gives each
back when it has handed its alerts on (:meth:`NativeReader.release`).  All
memory is allocated here, once, before the thread starts: ``batches`` ring
batches of ``nslots`` slots each (a :class:`~ingest.alertpkt.SlotDecoder`
per batch, so the Python half works on a batch exactly as on the old
reader's one decoder) plus, for Alertpkt, an alert array per batch.  For
Snort's 64 KiB datagrams that is ``batches x nslots x 65,936 B``: 4 x 64
slots = 16.9 MB per socket (the old reader: 4.2 MB), see :func:`ring_bytes`.

When every batch is waiting for Python (the ring is full) the C thread
waits for one to come back: the kernel queue fills and the sender sees the
back-pressure of a busy receiver, as it did when the reader itself was busy
in Python.  The queue-full policy of the runtime is unchanged: a batch
taken off the ring while the runtime's queue is full is dead-lettered
(``queue_full``), so the ring only stays full while Python cannot even do
that; ``full_waits``/``full_ns`` count those waits.

``INGEST_NATIVE_READER=0`` in the environment selects the old reader (a
Python thread calling recvmmsg), kept for comparison (``ingest bench``)
and as a fallback; ``INGEST_NATIVE_READER=all`` also gives ``--eve-dgram``
a C reader (see :func:`enabled`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .alertpkt import SlotDecoder
from .batch import ALERT_DTYPE
from .native import ffi, lib
from .ops.logs import at

_log = logging.getLogger(__name__)

#: ring batches per socket
RING_BATCHES = 4
#: take() returned: the reader ended and every batch was taken
END = -1

RAW = lib.INGEST_READER_RAW
ALERTPKT = lib.INGEST_READER_ALERTPKT

_STATES = {lib.INGEST_READER_NEW: "new", lib.INGEST_READER_RUNNING: "running",
           lib.INGEST_READER_ENDED: "ended", lib.INGEST_READER_FAILED: "failed"}


def enabled(eve: bool = False) -> bool:
    """Use the native reader?  ``INGEST_NATIVE_READER``: unset or 0, for no
    socket (the default: a Python thread calling the C receive and decode);
    1, for the Snort/Barnyard2 datagram sockets; ``all``, for
    ``--eve-dgram`` too.  The C thread is opt-in: on an idle machine it was
    no faster than the Python reader and cost more CPU per alert, and the
    30 s JetStream outage test saw the sender held up in 1 of 4 full CI runs
    with it, never with the Python reader (BENCHMARKS.md, "Quiet-machine
    runs at the end of stop 17"; README, "How it works")."""
    value = os.environ.get("INGEST_NATIVE_READER", "0").strip().lower()
    if value in ("", "0", "no", "off", "false"):
        return False
    return value == "all" if eve else True


def ring_bytes(nslots: int, slot_size: int, batches: int = RING_BATCHES, mode: int = ALERTPKT) -> int:
    """The memory of one socket's ring, in bytes (slots, per-slot arrays,
    credentials, and the decoded alerts)."""
    per_slot = slot_size + 4 + 1 + 1 + 4 + 8 + 4 + lib.INGEST_CRED_CMSG_SIZE + 12
    if mode == ALERTPKT:
        per_slot += ALERT_DTYPE.itemsize
    return batches * nslots * per_slot + int(lib.ingest_reader_size())


class NativeReader:
    """The C reader thread over ``fd`` and its ring (see the module)."""

    def __init__(self, fd: int, nslots: int, slot_size: int, *, mode: int = RAW, linger_us: int = 0,
                 credentials: tuple[np.ndarray | None, np.ndarray | None] | None = None,
                 batches: int = RING_BATCHES) -> None:
        if batches < 1:
            raise ValueError("a ring needs at least one batch")
        self.nslots, self.slot_size, self.mode = nslots, slot_size, mode
        #: one SlotDecoder per ring batch; they share one message cache
        self.decoders = [SlotDecoder(nslots, slot_size) for _ in range(batches)]
        for d in self.decoders[1:]:
            d._msg_cache = self.decoders[0]._msg_cache
        self._keep: list = []  # every cffi buffer the C side points into
        creds = credentials is not None
        if creds:
            assert credentials is not None
            for d in self.decoders:
                d.with_credentials(*credentials)
        self.alerts = [np.zeros(nslots, dtype=ALERT_DTYPE) for _ in range(batches)] if mode == ALERTPKT else []
        self._batches = ffi.new("struct ingest_ring_batch[]", batches)
        for b, d in enumerate(self.decoders):
            x = self._batches[b]
            x.slots, x.lens, x.flags = d._c_buf, d._c_lens, d._c_flags
            if creds:
                assert d._cred_args is not None
                x.cmsgs, _size, x.pids, x.uids, x.gids = d._cred_args[:5]
            if mode == ALERTPKT:
                a = ffi.from_buffer("struct ingest_alert[]", self.alerts[b], require_writable=True)
                self._keep.append(a)
                x.alerts, x.slot_of, x.status = a, d._c_slot_of, d._c_status
                x.msg_key, x.msg_first = d._c_msg_key, d._c_msg_first
        self._cfg = ffi.new("struct ingest_reader_cfg *")
        self._cfg.fd, self._cfg.mode, self._cfg.linger_us = fd, mode, linger_us
        self._cfg.creds, self._cfg.slot_size, self._cfg.nslots = int(creds), slot_size, nslots
        if creds:
            d0 = self.decoders[0]
            au, ag = d0._allow
            self._cfg.allow_uids, self._cfg.n_allow_uids = d0._cred_args[5], len(au)  # type: ignore[index]
            self._cfg.allow_gids, self._cfg.n_allow_gids = d0._cred_args[7], len(ag)  # type: ignore[index]
        self._last: dict = {}
        self._counted = 0  # full_waits already counted into stats (account)
        self._lock = threading.Lock()  # info() from any thread vs. destroy
        self._join_lock = threading.Lock()  # pthread_join once, whoever calls join()
        self._info = ffi.new("struct ingest_reader_info *")
        size = int(lib.ingest_reader_size())
        self._mem_arr = np.zeros((size + 7) // 8, dtype=np.uint64)
        self._mem = ffi.from_buffer("uint8_t[]", self._mem_arr, require_writable=True)
        rc = lib.ingest_reader_init(self._mem, size, self._cfg, self._batches, batches)
        if rc != 0:
            raise ValueError(f"ingest_reader_init refused its arguments ({rc}); "
                             "does the socket have SO_RCVTIMEO?")
        self._started = self._joined = False
        self._destroyed = False

    def start(self) -> None:
        if lib.ingest_reader_start(self._mem) != 0:
            err = ffi.errno
            raise OSError(err, f"cannot start the reader thread: {os.strerror(err)}")
        self._started = True

    def take(self, timeout: float) -> int | None:
        """The index of the next received batch; None after ``timeout``
        seconds without one; END once the reader ended and the ring is
        empty.  The GIL is released while it waits."""
        rc = lib.ingest_reader_take(self._mem, max(1, int(timeout * 1000)))
        if rc >= 0:
            return int(rc)
        if rc == lib.INGEST_EAGAIN:
            return None
        if rc == lib.INGEST_EEOF:
            return END
        raise ValueError(f"ingest_reader_take: {rc}")

    def batch(self, idx: int) -> tuple[SlotDecoder, int, int]:
        """Batch idx's decoder (its slots hold the datagrams), datagram count
        n and decoded alert count k (-1: not decoded)."""
        x = self._batches[idx]
        return self.decoders[idx], int(x.n), int(x.k)

    def decoded(self, idx: int, k: int) -> np.ndarray:
        """A copy of batch idx's k decoded alerts (the ring's array is reused)."""
        return self.alerts[idx][:k].copy()

    def release(self, idx: int) -> None:
        if lib.ingest_reader_release(self._mem, idx) != 0:
            raise ValueError(f"batch {idx} was not taken")

    def stop(self, drain: bool = False) -> None:
        """Ask the thread to stop: at once, or (drain) after it shut the
        socket for reading and read what was queued.  Keep taking until END
        either way."""
        lib.ingest_reader_stop(self._mem, lib.INGEST_READER_STOP_DRAIN if drain else lib.INGEST_READER_STOP_NOW)

    def join(self) -> None:
        """Stop (at once) and wait for the thread; then free its lock.
        Only after this may the ring's memory go."""
        with self._join_lock:  # two callers must not pthread_join one thread twice
            if self._started and not self._joined:
                self.stop()
                lib.ingest_reader_join(self._mem)
                self._joined = True
        self.info()  # what it did, for after
        with self._lock:
            if not self._destroyed:
                lib.ingest_reader_destroy(self._mem)
                self._destroyed = True

    def info(self) -> dict:
        """state (new/running/ended/failed), errno, ready batches, capacity,
        batches and datagrams received, full_waits and full_s (time the C
        thread waited for a free batch)."""
        with self._lock:
            if self._destroyed:
                return dict(self._last)
            lib.ingest_reader_get_info(self._mem, self._info)
            i = self._info
            self._last = {"state": _STATES.get(i.state, str(i.state)), "errno": int(i.err), "ready": int(i.ready),
                          "capacity": int(i.capacity), "batches": int(i.batches),
                          "datagrams": int(i.datagrams), "full_waits": int(i.full_waits),
                          "full_s": i.full_ns / 1e9}
            return dict(self._last)

    def account(self, stats) -> None:
        """Count into ``stats`` (extra ``reader_ring_full``) the times the C
        thread found the ring full since the last call: Python was the
        bottleneck then, and the sender felt it."""
        with self._lock:
            if self._destroyed:
                waits = int(self._last.get("full_waits", 0))
            else:
                lib.ingest_reader_get_info(self._mem, self._info)
                waits = int(self._info.full_waits)
        if waits > self._counted:
            stats.add_extra("reader_ring_full", waits - self._counted)
            self._counted = waits

    def failure(self) -> OSError | None:
        """The socket error that ended the thread, if it failed."""
        i = self.info()
        if i["state"] != "failed":
            return None
        err = i["errno"]
        return OSError(err, f"recvmmsg failed: {os.strerror(err)}")

    def __del__(self) -> None:  # the thread must never outlive its memory
        try:
            self.join()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def drive(reader: NativeReader, stop: threading.Event, handle: Callable[[int], None], stats: Any, *,
          origin: str, adopted: bool, poll: float, drain_seconds: float) -> BaseException | None:
    """The loop a source runs over its native reader, on the source's
    thread, until the reader has ended and every batch was taken:
    ``handle(idx)`` each batch (the source's half: strings, screening,
    dead letters, submit), then give it back.  On ``stop``: drain what the
    kernel already accepted -- the C thread shuts the socket for reading
    itself, between two receives, and senders get EPIPE as when we are gone
    -- unless the socket was ``adopted`` (systemd holds it: what is queued
    waits for the next process); after ``drain_seconds``, stop at once.
    A batch whose handling raises is a bug, not input: counted
    (``internal_errors``), logged, and the next batch flows.  Returns the
    socket's failure, if the C thread ended on one (counted too)."""
    drain_until = 0.0
    try:
        reader.start()
        while True:
            if stop.is_set() and not drain_until:
                drain_until = time.monotonic() + drain_seconds
                reader.stop(drain=not adopted)
            elif drain_until and time.monotonic() > drain_until:
                _log.warning(f"{origin}: stopped draining after {drain_seconds}s", extra=at(origin))
                reader.stop()
                drain_until = float("inf")
            idx = reader.take(poll)
            if idx is None:
                continue
            if idx == END:
                break
            try:
                handle(idx)
            except Exception as e:  # a bug, not input: report it, keep draining
                stats.internal_errors += 1
                _log.error(f"{origin}: internal error: {e!r}", extra=at(origin))
            finally:
                reader.release(idx)
                reader.account(stats)  # everything kept was copied out of the slots
    finally:
        reader.join()
        reader.account(stats)
    err = reader.failure()
    if err is not None:
        stats.internal_errors += 1
    return err
