"""Datagram sockets that Snort (``-A unsock``) and Barnyard2 (``alert_unixsock``)
send Alertpkt datagrams to: bound here, drained on a dedicated thread.

The reader thread calls recvmmsg and the batch decoder with the GIL released
and never waits on a sink: Snort's sender blocks its packet thread while our
receive queue is full, so the only thing between the socket and the decoder
is the runtime's bounded queue, and when that is full the raw datagrams go to
the dead-letter file (counted as dropped "queue_full") instead of stalling
the sensor.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

import numpy as np

from ..alertpkt import SLOT_SIZE, SNORT_APPID_LEN, SNORT_LEN, SlotDecoder
from ..batch import ALERT_DTYPE
from ..deadletter import DeadLetter
from ..ops.logs import at
from ..ops.peercred import PeerPolicy, RefusalLog, enable_passcred, screen
from ..reader import ALERTPKT, NativeReader, drive
from ..reader import enabled as native_enabled
from ..sockets import BoundSocket, bind_unix, raise_rcvbuf, stop_receiving
from ..stats import Stats
from .barnyard2_events import RecentEvents
from .base import Submit

_log = logging.getLogger(__name__)

#: slots per batch (64 x 64 KiB = 4 MiB per socket); the reader keeps
#: collecting in C for up to ``linger_us`` until they are full
BATCH_SLOTS = 64
#: how often a blocked reader looks at its stop flag
POLL_SECONDS = 0.2
#: bound on the shutdown drain (the queue is finite once SHUT_RD refuses
#: new datagrams; this only guards against surprises)
DRAIN_SECONDS = 10.0


#: the 64 KiB Alertpkt variants (FORMATS.md 1.2): pkth.caplen at 264, pkt[65535]
#: at 292, one pad byte, the event at 65828
_CAPLEN_OFF, _PKT_OFF, _EVENT_OFF = 264, 292, 65828


def _zero_tail(slot: np.ndarray, n: int) -> tuple[int, int] | None:
    """The unused part of a 64 KiB Alertpkt's packet area (after caplen
    bytes, up to the event), if it is all zeros as Snort leaves it: the
    dead-letter file need not store it (``elide``), which keeps an entry at
    about 0.5-2 KB instead of 64 KiB."""
    if n not in (SNORT_LEN, SNORT_APPID_LEN):
        return None
    caplen = int(slot[_CAPLEN_OFF:_CAPLEN_OFF + 4].view("=u4")[0])  # host order, as sent
    start = _PKT_OFF + min(caplen, 65535)
    if start >= _EVENT_OFF or slot[start:_EVENT_OFF].any():
        return None  # nothing to leave out, or not zeros (kept as sent)
    return start, _EVENT_OFF - start


def keep_raw(deadletter: DeadLetter, origin: str, reason: str, slot: np.ndarray, n: int,
             meta: dict | None = None) -> None:
    """Dead-letter one received datagram (n bytes of slot), compactly
    (``meta``: more header members, e.g. the sender's pid/uid/gid)."""
    deadletter.write(origin, reason, slot[:n], elide=_zero_tail(slot, n), meta=meta)


def compact(dec: SlotDecoder, good: np.ndarray) -> int:
    """Move the slots listed in good (ascending) to the front, in order;
    returns their number.  Only after a credentialed receive refused some
    senders (rare): the batch decoder then sees only the allowed ones."""
    for j, i in enumerate(good.tolist()):
        if i != j:
            k = min(int(dec.lens[i]), dec.slot_size)
            dec.slots[j, :k] = dec.slots[i, :k]
            dec.lens[j] = dec.lens[i]
            dec.flags[j] = dec.flags[i]
    return len(good)


def handle_slots(dec: SlotDecoder, n: int, origin: str, submit: Submit, stats: Stats,
                 deadletter: DeadLetter, acks: list | None = None,
                 wait_for_room: Callable[[], bool] | None = None,
                 events: RecentEvents | None = None, decoded: np.ndarray | None = None) -> int:
    """Decode n received slots and hand the alerts on; dead-letter and count
    what cannot be used.  Returns the number of alerts submitted.

    When the queue is full: with ``wait_for_room`` (an acknowledged sender,
    who is waiting for us anyway) wait until it returns False (stopping);
    without it (a datagram sender that must never be blocked by us) the raw
    datagrams go to the dead-letter file, counted as dropped ``queue_full``.
    ``events``: drop Barnyard2's repeated events (see barnyard2_events).
    ``decoded``: the alerts a native reader already decoded from these n
    slots (``dec`` holds the rest of what C wrote); None decodes here.
    """
    nbytes = n * ALERT_DTYPE.itemsize  # what the alerts will hold (the raw datagrams are not kept)
    reserved = submit.reserve(n, nbytes=nbytes)
    while not reserved and wait_for_room is not None and wait_for_room():
        reserved = submit.reserve(n, timeout=0.2, nbytes=nbytes)
    if not reserved:
        stats.add_input(n, 0)
        for i in range(n):
            keep_raw(deadletter, origin, "queue_full", dec.slots[i], min(int(dec.lens[i]), dec.slot_size))
        stats.add_dropped("queue_full", n)
        return 0
    k = 0
    try:
        res = dec.decode(n, origin) if decoded is None else dec.result(n, decoded, origin)
        for i, reason in res.rejected:
            keep_raw(deadletter, origin, reason, dec.slots[i], min(int(dec.lens[i]), dec.slot_size))
            stats.add_malformed(reason)
        for i, reason in res.anomalies:
            keep_raw(deadletter, origin, reason, dec.slots[i], int(dec.lens[i]))
            stats.add_anomaly(reason)
        if events is not None and len(res.batch):
            res.batch.alerts = events.drop_repeats(res.batch.alerts, stats)
            if not len(res.batch):
                for ack in acks or ():  # only repeats of stored events: release the sender
                    ack()
        k = len(res.batch)
        stats.add_input(n, k)
        if k:
            if acks:
                res.batch.acks.extend(acks)
            submit.submit(res.batch)
    finally:
        # places reserved but not filled by an alert (rejects, errors) go back
        submit.release(n - k)
    return k


class DatagramSource:
    """``--snort PATH`` / ``--barnyard2 PATH``: a bound SOCK_DGRAM socket."""

    def __init__(self, path: str, kind: str = "snort", *, mode: int = 0o660,
                 group: str | None = None, slots: int = BATCH_SLOTS,
                 linger_us: int = 2000, peers: PeerPolicy | None = None) -> None:
        self.kind = kind
        self.origin = f"{kind}:{os.path.abspath(path)}"
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_DGRAM, mode=mode, group=group)
        self.rcvbuf = raise_rcvbuf(self.bound.sock)
        # SO_RCVTIMEO bounds how long recvmmsg blocks, so the thread sees stop()
        tv = struct.pack("@ll", 0, int(POLL_SECONDS * 1e6))
        self.bound.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        self._slots = slots
        self._linger_us = linger_us
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        #: the C reader thread and its ring (ingest.reader), or the old
        #: Python reader with INGEST_NATIVE_READER=0
        self.native = native_enabled()
        self.reader: NativeReader | None = None
        self.events = RecentEvents()
        #: peer credentials: None = not asked for (no SO_PASSCRED)
        self.peers = peers
        if peers is not None:
            enable_passcred(self.bound.sock)

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(submit, stats, deadletter), name=f"ingest-{self.kind}", daemon=True
        )
        self._thread.start()

    def _run(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        if self.native:
            self._run_native(submit, stats, deadletter)
            return
        dec = SlotDecoder(self._slots, SLOT_SIZE)
        refusals = None
        if self.peers is not None:
            dec.with_credentials(*(self.peers.arrays() if self.peers.active else (None, None)))
            refusals = RefusalLog(self.origin)

            def keep(i: int, reason: str, meta: dict) -> None:
                keep_raw(deadletter, self.origin, reason, dec.slots[i],
                         min(int(dec.lens[i]), dec.slot_size), meta=meta)
        sock = self.bound.sock
        fd = sock.fileno()
        drain_until = 0.0
        while True:
            stopping = self._stop.is_set()
            if stopping and self.bound.adopted:
                return  # the manager holds the socket: what is queued waits for the next process
            if stopping and not drain_until:
                # Refuse new datagrams (senders get EPIPE), then take what the
                # kernel already queued: nothing that was accepted is lost.
                stop_receiving(sock)
                drain_until = time.monotonic() + DRAIN_SECONDS
            try:
                n = dec.recv(fd, 0 if stopping else self._linger_us)
            except OSError as e:
                # the socket itself failed: this reader cannot go on, and the
                # runtime stops the process (never a bound socket nobody reads,
                # which would block Snort's packet thread)
                self.error = e
                stats.internal_errors += 1
                raise
            if n and refusals is not None:
                good = screen(dec, n, self.origin, stats, refusals, keep)
                if good is not None:
                    n = compact(dec, good)
                    if n == 0:  # all refused: read on (when stopping, until the queue is empty)
                        continue
            if n == 0:
                if stopping:
                    return
                continue
            try:
                handle_slots(dec, n, self.origin, submit, stats, deadletter, events=self.events)
            except Exception as e:  # a bug, not input: report it, keep draining
                stats.internal_errors += 1
                _log.error(f"{self.origin}: internal error: {e!r}", extra=at(self.origin))
            if stopping and time.monotonic() > drain_until:
                _log.warning(f"{self.origin}: stopped draining after {DRAIN_SECONDS}s", extra=at(self.origin))
                return

    def _run_native(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        """Take the native reader's batches off its ring (ingest.reader): the
        C thread receives and decodes; this thread names the strings, screens
        the senders, dead-letters and submits, as the old loop did."""
        creds = None
        refusals = None
        if self.peers is not None:
            creds = self.peers.arrays() if self.peers.active else (None, None)
            refusals = RefusalLog(self.origin)
        reader = NativeReader(self.bound.sock.fileno(), self._slots, SLOT_SIZE, mode=ALERTPKT,
                              linger_us=self._linger_us, credentials=creds)
        self.reader = reader
        err = drive(reader, self._stop,
                    lambda idx: self._handle_batch(reader, idx, refusals, submit, stats, deadletter), stats,
                    origin=self.origin, adopted=self.bound.adopted, poll=POLL_SECONDS,
                    drain_seconds=DRAIN_SECONDS)
        if err is not None:
            # the socket itself failed: this reader cannot go on, and the
            # runtime stops the process (never a bound socket nobody reads)
            self.error = err
            raise err

    def _handle_batch(self, reader: NativeReader, idx: int, refusals: RefusalLog | None,
                      submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec, n, k = reader.batch(idx)
        if refusals is not None:
            def keep(i: int, reason: str, meta: dict) -> None:
                keep_raw(deadletter, self.origin, reason, dec.slots[i],
                         min(int(dec.lens[i]), dec.slot_size), meta=meta)
            good = screen(dec, n, self.origin, stats, refusals, keep)
            if good is not None:  # C left such a batch undecoded (k == -1)
                n = compact(dec, good)
                if n == 0:
                    return
        handle_slots(dec, n, self.origin, submit, stats, deadletter, events=self.events,
                     decoded=reader.decoded(idx, k) if k >= 0 else None)

    def native_failure(self) -> BaseException | None:
        """The native reader's socket error, the moment its thread ended so
        (reader_health shows the input dead at once, before this thread has
        noticed)."""
        reader = self.reader
        return reader.failure() if reader is not None else None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.bound.remove()
