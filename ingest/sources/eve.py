"""Suricata EVE over a unix_dgram socket (``--eve-dgram PATH``), and what every
EVE source shares: handing decoded records on, naming bad input, and keeping
Suricata's own counters from its ``stats`` events.

Suricata is the client: it connects to the socket we bind and, in live mode,
sends with MSG_DONTWAIT, silently dropping an event whenever our receive
queue is full (FORMATS.md section 5).  So the reader thread only drains:
recvmmsg into caller-owned 256 KiB slots (an EVE record can be ~200 KiB; a
bigger one is cut by the kernel, flagged MSG_TRUNC, counted and
dead-lettered, never passed on), one C call decodes the whole batch, and the
batch goes to the runtime's bounded queue.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..alertpkt import SlotDecoder
from ..batch import AlertBatch, empty
from ..deadletter import DeadLetter
from ..eve import EveDecoder, EveResult
from ..ops.logs import at
from ..ops.peercred import PeerPolicy, RefusalLog, enable_passcred, screen
from ..reader import RAW, RING_BATCHES, NativeReader, drive
from ..reader import enabled as native_enabled
from ..sockets import BoundSocket, bind_unix, raise_rcvbuf, stop_receiving, warn_kernel_limits
from ..stats import Stats
from .base import Submit

_log = logging.getLogger(__name__)

#: one datagram slot: larger than any datagram Suricata can send (its
#: SO_SNDBUF - 32 = 212960 by default), so a cut record is always detected
SLOT_SIZE = 256 * 1024
#: datagrams per recvmmsg call (slots are calloc'ed: untouched pages cost nothing)
BATCH_SLOTS = 256
POLL_SECONDS = 0.2
#: bound on the shutdown drain (the queue is finite once SHUT_RD refuses
#: new datagrams; this only guards against surprises)
DRAIN_SECONDS = 10.0
#: after the first datagram, collect for up to this long (ingest_recv_batch),
#: when the kernel queue is short (see EveDgramSource)
LINGER_US = 2000

#: Suricata counters reported next to ours (besides every "*drop*" counter)
_KEEP = {"capture.kernel_packets", "capture.errors", "decoder.pkts", "detect.alert",
         "detect.alerts_suppressed", "uptime"}
#: A stats event comes from whoever can write to the socket, so what it may
#: add to our counters is bounded: names as Suricata writes them (dotted
#: words, thread names such as ``W#01-eth0``; never a newline that would
#: forge a log line), values a Suricata counter can hold (uint64), and at
#: most this many distinct names for the life of the process (first come;
#: a real Suricata has a few dozen drop counters, per thread with
#: ``threads: yes``).  The rest is counted ``suricata_counters_ignored``.
MAX_SURICATA_COUNTERS = 256
_COUNTER_NAME = re.compile(r"[A-Za-z0-9_.#:-]{1,160}\Z")


def _read_qlen() -> int | None:
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def suricata_counters(stats_event: dict[str, Any]) -> dict[str, int]:
    """Suricata's drop counters (and a few totals) from one ``stats`` event,
    flattened to dotted names (e.g. ``capture.kernel_drops``)."""
    return _counters(stats_event)[0]


def _counters(stats_event: dict[str, Any]) -> tuple[dict[str, int], int]:
    """suricata_counters, and how many counter-like members were refused
    (a name or value no Suricata counter has)."""
    out: dict[str, int] = {}
    refused = 0

    def walk(d: dict[str, Any], prefix: str) -> None:
        nonlocal refused
        for k, v in d.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, name + ".")
            elif "drop" in k or name in _KEEP:
                if type(v) is int and 0 <= v < 1 << 64 and _COUNTER_NAME.match(name):
                    out[name] = v
                else:
                    refused += 1

    s = stats_event.get("stats")
    if isinstance(s, dict):
        walk(s, "")
    return out, refused


def handle_records(dec: EveDecoder, buf: Any, offs: np.ndarray, lens: np.ndarray, n: int,
                   origin: str, submit: Submit, stats: Stats, deadletter: DeadLetter, *,
                   slot_flags: np.ndarray | None = None, block: Callable[[], bool] | None = None,
                   acks: list | None = None,
                   keys: Callable[[EveResult], np.ndarray] | None = None) -> EveResult | None:
    """Decode n records and hand everything on.

    Queue full: with ``block`` (files: the data waits on disk) wait while
    ``block()`` is true; otherwise (sockets) dead-letter the raw records as
    ``queue_full`` rather than stall the reader (Suricata would drop them
    unseen).  Rejected records are dead-lettered and counted by reason.
    ``acks`` (bookmarks) always travel in a batch, even an empty one, so they
    run in order after everything before them was acknowledged.
    """
    while not submit.reserve(n, nbytes=int(lens[:n].sum()), file=block is not None):
        if block is None:
            stats.add_input(n, 0)
            for i in range(n):
                o = int(offs[i])
                deadletter.write(origin, "queue_full", memoryview(buf).cast("B")[o:o + min(int(lens[i]), SLOT_SIZE)])
            stats.add_dropped("queue_full", n)
            return None
        if not block():
            return None
        time.sleep(0.01)
    try:
        res = dec.decode(buf, offs, lens, n, slot_flags, origin)
    except Exception as e:  # a bug must cost the record that triggers it, never its batch
        _log.error(f"{origin}: decoding a batch failed ({e!r}); decoding its {n} records "
                   f"one by one (those that fail again go to the dead-letter file)", extra=at(origin))
        res = _decode_each(dec, buf, offs, lens, n, slot_flags, origin)
    for _i, reason, raw in res.rejected:
        # a file reader (block) never moves past a record it could not keep
        if not deadletter.keep(origin, reason, raw, hold=block):
            submit.release(n)
            return None  # stopping: nothing of this batch is acknowledged
    for _i, reason, _raw in res.rejected:
        stats.add_malformed(reason)
    for name in ("filtered", "empty"):
        if res.counts.get(name):
            stats.add_extra(f"eve_{name}", res.counts[name])
    batch = res.batch
    stats.add_input(n, len(batch))
    if batch.events is not None:
        stats.add_extra("eve_events", batch.events.count)
        # flow and netflow events passed on (their rows are made when a store asks)
        evs = batch.events
        stats.add_extra("eve_flows", evs.pending_flows if evs.flows_pending else len(evs.flows))
    for ev in res.stats:
        counters, ignored = _counters(ev)
        for name, v in counters.items():
            # Suricata's counters are cumulative: a gauge each, bounded in number
            if not stats.set_gauge("suricata." + name, v, group="suricata", cap=MAX_SURICATA_COUNTERS):
                ignored += 1
        if ignored:
            stats.add_extra("suricata_counters_ignored", ignored)
    if keys is not None and len(batch):
        batch.keys = keys(res)
    used = batch.queued()
    if acks:
        batch.acks.extend(acks)
    if used or acks:
        submit.submit(batch)
    submit.release(n - used)
    return res


def _decode_each(dec: EveDecoder, buf: Any, offs: np.ndarray, lens: np.ndarray, n: int,
                 slot_flags: np.ndarray | None, origin: str) -> EveResult:
    """The records of a batch whose decode raised, decoded one at a time: a
    record that raises again is rejected alone (``internal_error``), its
    neighbours are decoded as usual.  Only ever runs after an unexpected
    exception (a bug), so its per-record cost does not matter."""
    mv = memoryview(buf).cast("B")
    batches: list[AlertBatch] = []
    out = EveResult(AlertBatch(empty(0), [], origin), records=n)
    aoffs: list[np.ndarray] = []
    for i in range(n):
        one = slice(i, i + 1)
        try:
            r = dec.decode(buf, offs[one], lens[one], 1, None if slot_flags is None else slot_flags[one], origin)
        except Exception:
            o = int(offs[i])
            out.rejected.append((i, "internal_error", bytes(mv[o:o + min(int(lens[i]), SLOT_SIZE)])))
            out.counts["internal_error"] = out.counts.get("internal_error", 0) + 1
            continue
        batches.append(r.batch)
        aoffs.append(r.alert_offsets)
        out.rejected.extend((i, reason, raw) for _j, reason, raw in r.rejected)
        out.stats.extend(r.stats)
        for name, c in r.counts.items():
            out.counts[name] = out.counts.get(name, 0) + c
    if batches:
        out.batch = AlertBatch.concat(batches)
        out.alert_offsets = np.concatenate(aoffs)
    return out


class EveDgramSource:
    """``--eve-dgram PATH``: Suricata ``eve-log`` with ``filetype: unix_dgram``."""

    kind = "eve-dgram"

    def __init__(self, path: str, *, mode: int = 0o660, group: str | None = None,
                 event_types: tuple[str, ...] = (), slots: int = BATCH_SLOTS,
                 peers: PeerPolicy | None = None) -> None:
        self.origin = f"eve-dgram:{os.path.abspath(path)}"
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_DGRAM, mode=mode, group=group)
        self.rcvbuf = raise_rcvbuf(self.bound.sock)
        warn_kernel_limits()
        tv = struct.pack("@ll", 0, int(POLL_SECONDS * 1e6))
        self.bound.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        self.event_types = event_types
        self._slots = slots
        # With a short kernel queue (max_dgram_qlen < slots) one recvmmsg sees
        # only a handful of datagrams: then linger in C (GIL released) so a
        # batch still fills.  With a long queue, MSG_WAITFORONE alone fills
        # batches, and lingering would only add a wake-up per datagram.
        qlen = _read_qlen()
        self._linger_us = LINGER_US if qlen is not None and qlen < slots else 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        #: the C reader thread and its ring (ingest.reader) with
        #: INGEST_NATIVE_READER=all; else this thread calls recvmmsg itself
        self.native = native_enabled(eve=True)
        self.reader: NativeReader | None = None
        #: peer credentials: None = not asked for (no SO_PASSCRED)
        self.peers = peers
        if peers is not None:
            enable_passcred(self.bound.sock)

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._thread = threading.Thread(target=self._run, args=(submit, stats, deadletter),
                                        name="ingest-eve-dgram", daemon=True)
        self._thread.start()

    def _run(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        if self.native:
            self._run_native(submit, stats, deadletter)
            return
        slots = SlotDecoder(self._slots, SLOT_SIZE, small_pages=True)  # reused for every recvmmsg
        dec = EveDecoder(self._slots, event_types=self.event_types)
        offs = np.arange(self._slots, dtype=np.uint64) * np.uint64(SLOT_SIZE)
        fd = self.bound.sock.fileno()
        shut = False
        refusals = None
        if self.peers is not None:
            slots.with_credentials(*(self.peers.arrays() if self.peers.active else (None, None)))
            refusals = RefusalLog(self.origin)

            def keep(i: int, reason: str, meta: dict) -> None:
                deadletter.write(self.origin, reason, slots.slots[i, :min(int(slots.lens[i]), SLOT_SIZE)],
                                 meta=meta)
        try:
            while True:
                stopping = self._stop.is_set()
                if stopping and self.bound.adopted:
                    return  # the manager holds the socket: what is queued waits for the next process
                if stopping and not shut:
                    # Refuse new datagrams (Suricata gets EPIPE and counts a
                    # drop, as when we are gone), then drain what the kernel
                    # already accepted: nothing accepted is lost.
                    stop_receiving(self.bound.sock)
                    shut = True
                n = slots.recv(fd, 0 if stopping else self._linger_us)
                if n == 0:
                    if stopping:
                        return
                    continue
                # a cut datagram is passed with its slot's bytes only (flagged)
                lens = np.minimum(slots.lens[:n], SLOT_SIZE)
                these, flags = offs, slots.flags
                if refusals is not None:
                    good = screen(slots, n, self.origin, stats, refusals, keep)
                    if good is not None:  # some refused: the others, where they lie
                        these, lens, flags, n = offs[good], lens[good], flags[good], len(good)
                        if n == 0:
                            continue
                handle_records(dec, slots.buf, these, lens, n, self.origin, submit, stats,
                               deadletter, slot_flags=flags)
        except BaseException as e:  # never silently: the runtime reports it
            self.error = e
            raise

    def _run_native(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        """The C reader thread (ingest.reader) receives into its ring of
        batches; this thread takes them off, decodes and submits."""
        creds = None
        refusals = None
        if self.peers is not None:
            creds = self.peers.arrays() if self.peers.active else (None, None)
            refusals = RefusalLog(self.origin)
        nslots = max(1, self._slots // RING_BATCHES)  # the old reader's slot memory, split in four
        reader = NativeReader(self.bound.sock.fileno(), nslots, SLOT_SIZE, mode=RAW,
                              linger_us=self._linger_us if self._linger_us and nslots > 1 else 0,
                              credentials=creds)
        self.reader = reader
        dec = EveDecoder(nslots, event_types=self.event_types)
        offs = np.arange(nslots, dtype=np.uint64) * np.uint64(SLOT_SIZE)

        def handle(idx: int) -> None:
            slots, n, _k = reader.batch(idx)
            lens = np.minimum(slots.lens[:n], SLOT_SIZE)  # a cut datagram: its slot's bytes (flagged)
            these, flags = offs, slots.flags
            if refusals is not None:
                def keep(i: int, reason: str, meta: dict, slots: SlotDecoder = slots) -> None:
                    deadletter.write(self.origin, reason,
                                     slots.slots[i, :min(int(slots.lens[i]), SLOT_SIZE)], meta=meta)
                good = screen(slots, n, self.origin, stats, refusals, keep)
                if good is not None:  # some refused: the others, where they lie
                    these, lens, flags, n = offs[good], lens[good], flags[good], len(good)
            if n:
                handle_records(dec, slots.buf, these, lens, n, self.origin, submit, stats,
                               deadletter, slot_flags=flags)

        err = drive(reader, self._stop, handle, stats, origin=self.origin, adopted=self.bound.adopted,
                    poll=POLL_SECONDS, drain_seconds=DRAIN_SECONDS)
        if err is not None:
            self.error = err
            raise err

    def native_failure(self) -> BaseException | None:
        """The C reader's socket error, as soon as its thread ended so."""
        reader = self.reader
        return reader.failure() if reader is not None else None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.bound.remove()
