"""Suricata EVE over a unix_stream socket (``--eve-stream PATH``).

We bind and listen; any number of Suricata processes (or reconnects) may be
connected at once.  One reader thread multiplexes them with a selector: each
connection has its own line buffer, every recv is split into complete lines
in C and the lines are decoded as one batch.

Suricata treats a short ``send()`` as success and drops the rest of the line
(FORMATS.md section 5), so a line can be torn and glued to the next record.
Such a line is resynchronised at its next ``{"timestamp":`` (the torn head
is counted and dead-lettered as ``torn_record``, the record after it
survives).  A line longer than ``max_line`` is discarded up to the next
newline (``oversized``), and an unterminated line at disconnect is a
``torn_record``.  Every one of them is counted.

Resources a peer can hold are bounded:

* **Connections**: at most ``max_connections``.  When a new one arrives at
  the cap, the connection idle the longest (one that never sent a complete
  line first) is closed to make room, provided it has been idle at least
  ``EVICT_MIN_IDLE``; otherwise the newcomer is refused.  Connections that
  send nothing for ``idle_timeout`` seconds are closed.  Both are harmless to
  Suricata, which reconnects and resends when a write fails (FORMATS.md
  section 5); they keep squatters from locking it out.
* **Memory**: a connection's line buffer starts at ``INITIAL_BUF`` and
  grows within the runtime's byte budget (``--max-queue-bytes``; line
  buffers may take at most half of it): to ``READ_TARGET`` while the
  connection keeps it full (a busy sender: fewer, larger batches), and
  further only for a longer line.  When the budget has no room for a long
  line, that line is dropped (``queue_full``, its head dead-lettered) as a
  full queue would drop it.  A buffer grown for a long line shrinks back
  once the line is done; one grown for a busy sender, once it goes quiet.
* **File descriptors**: accept() failing for want of them (EMFILE, ENFILE)
  is counted (``accept_failed``) and retried after a back-off, while the
  connections we have keep being served.

Shutdown loses nothing the kernel accepted: the listening socket is shut
for reading (new connections are refused) and the connections already
completed are accepted; then every connection is shut for reading (its
sender gets EPIPE from now on), read to its end, and closed.  A listening
socket the service manager passed (socket activation) is left alone: the
connections it has not handed over yet wait for the next process, and a
sender that got EPIPE reconnects to the same socket at once.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..deadletter import DeadLetter
from ..eve import EveDecoder, split_lines
from ..ops.logs import at
from ..ops.peercred import PeerPolicy, RefusalLog, refuse_peer
from ..sockets import BoundSocket, bind_unix
from ..stats import Stats
from .base import Submit
from .eve import handle_records

_log = logging.getLogger(__name__)

#: default longest accepted line; Suricata's own limit for a record is 10 MiB
MAX_LINE = 16 << 20
#: a connection's line buffer to start with (about what a unix stream socket
#: queues); it grows only while a longer line is being received
INITIAL_BUF = 256 << 10
#: bytes of an oversized line kept in the dead-letter file
DEADLETTER_HEAD = 64 << 10
POLL_SECONDS = 0.2
#: read up to this much from one connection before decoding it as one batch
#: (a busy connection's buffer grows to this size, budget permitting)
READ_TARGET = 1 << 20
#: most lines decoded in one call
LINES_PER_BATCH = 4096
#: default bound on simultaneous connections per socket
MAX_CONNECTIONS = 64
#: default: close a connection that sent nothing for this long (Suricata reconnects)
IDLE_TIMEOUT = 120.0
#: a connection idle for less than this is never closed to make room
EVICT_MIN_IDLE = 1.0
#: back-off after accept() failed for want of descriptors (doubles up to the max)
ACCEPT_BACKOFF = 0.05
ACCEPT_BACKOFF_MAX = 2.0
#: bound on the shutdown drain (every sender is refused more data by then)
DRAIN_SECONDS = 10.0
#: accept() errors that mean "no resources now", not "broken socket"
RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


@dataclass
class _Conn:
    sock: socket.socket
    buf: np.ndarray
    last_rx: float
    fill: int = 0
    skipping: bool = False  # inside an oversized or dropped line: discard up to '\n'
    lines: int = 0  # complete lines received
    charged: int = 0  # bytes of buf charged to the runtime's budget
    draining: bool = field(default=False)
    uid: int = -1  # the peer's (SO_PEERCRED), when credentials are asked for


class EveStreamSource:
    """``--eve-stream PATH``: Suricata ``eve-log`` with ``filetype: unix_stream``."""

    kind = "eve-stream"

    def __init__(self, path: str, *, mode: int = 0o660, group: str | None = None,
                 event_types: tuple[str, ...] = (), max_line: int = MAX_LINE,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT,
                 peers: PeerPolicy | None = None) -> None:
        self.origin = f"eve-stream:{os.path.abspath(path)}"
        #: peer credentials: None = not asked for; else checked at accept
        self.peers = peers
        self._refusals = RefusalLog(self.origin, "connection")
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_STREAM, mode=mode, group=group, backlog=128)
        self.event_types = event_types
        self.max_line = max_line
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.connections = 0  # accepted so far
        self._conns: dict[int, _Conn] = {}
        self._accept_delay = ACCEPT_BACKOFF
        self._accept_resume = 0.0

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._submit, self._stats, self._dl = submit, stats, deadletter
        self._dec = EveDecoder(4096, event_types=self.event_types, resync=True)
        self._sel = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, name="ingest-eve-stream", daemon=True)
        self._thread.start()


    # --- the reader thread ----------------------------------------------
    def _run(self) -> None:
        sel, lsock = self._sel, self.bound.sock
        lsock.setblocking(False)
        sel.register(lsock, selectors.EVENT_READ, None)
        listening = True
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if not listening and now >= self._accept_resume:
                    sel.register(lsock, selectors.EVENT_READ, None)
                    listening = True
                timeout = POLL_SECONDS if listening else min(POLL_SECONDS, self._accept_resume - now)
                for key, _ in sel.select(max(timeout, 0.0)):
                    if key.data is None:
                        if not self._accept():
                            sel.unregister(lsock)  # out of descriptors: back off
                            listening = False
                    else:
                        self._read(key.data)
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 1.0
            self._drain(listening)
        except BaseException as e:  # the runtime notices the dead thread and stops
            self.error = e
            raise
        finally:
            for c in list(self._conns.values()):
                self._close(c)
            sel.close()

    def _accept(self, draining: bool = False) -> bool:
        """Accept what is pending; False when accept() ran out of resources."""
        lsock = self.bound.sock
        while True:
            try:
                s, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno not in RESOURCE_ERRNOS:
                    raise
                self._stats.add_extra("accept_failed")
                if self._accept_delay == ACCEPT_BACKOFF:  # once per episode, not per retry
                    _log.error(f"{self.origin}: accept failed ({e.strerror}); retrying with back-off, "
                              f"the {len(self._conns)} open connections are still served", extra=at(self.origin))
                self._accept_resume = time.monotonic() + self._accept_delay
                self._accept_delay = min(self._accept_delay * 2, ACCEPT_BACKOFF_MAX)
                return False
            self._accept_delay = ACCEPT_BACKOFF
            uid = -1
            if self.peers is not None:
                uid = refuse_peer(s, self.peers, self.origin, self._stats, self._refusals)
                if uid < 0:
                    continue
            if not draining and len(self._conns) >= self.max_connections and not self._evict():
                self._stats.add_extra("connections_refused")
                s.close()
                continue
            s.setblocking(False)
            if draining:
                self._shut(s)
            self._submit.reserve_buffer(INITIAL_BUF, force=True)  # bounded by max_connections
            c = _Conn(s, np.empty(INITIAL_BUF, np.uint8), time.monotonic(), charged=INITIAL_BUF,
                      draining=draining, uid=uid)
            self._conns[s.fileno()] = c
            self._sel.register(s, selectors.EVENT_READ, c)
            self.connections += 1

    def _evict(self) -> bool:
        """Close the connection idle the longest (never-sent ones first) to
        make room for a new one; False if every connection is busy."""
        now = time.monotonic()
        idle = [c for c in self._conns.values() if now - c.last_rx >= EVICT_MIN_IDLE]
        if not idle:
            return False
        victim = min(idle, key=lambda c: (c.lines > 0, c.last_rx))
        self._stats.add_extra("connections_evicted")
        self._close(victim)
        return True

    def _sweep(self, now: float) -> None:
        for c in list(self._conns.values()):
            if self.idle_timeout > 0 and now - c.last_rx > self.idle_timeout:
                self._stats.add_extra("connections_idle_closed")
                self._close(c)
            elif len(c.buf) > INITIAL_BUF and c.fill <= INITIAL_BUF // 2 and now - c.last_rx > 1.0:
                self._resize(c, INITIAL_BUF)  # a busy sender went quiet: give the memory back

    @staticmethod
    def _shut(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RD)  # the sender gets EPIPE; what it sent stays readable
        except OSError:
            pass

    def _drain(self, listening: bool) -> None:
        """Stop: refuse new connections and new data, take everything the
        kernel accepted, then close."""
        lsock = self.bound.sock
        if listening:
            self._sel.unregister(lsock)
        if not self.bound.adopted:
            self._shut(lsock)  # connect() is refused from now on
            self._accept(draining=True)  # the connections the kernel completed before that
        # else the manager holds the listening socket: new and pending
        # connections wait in its backlog for the next process
        for c in self._conns.values():
            if not c.draining:
                self._shut(c.sock)
                c.draining = True
        deadline = time.monotonic() + DRAIN_SECONDS
        while self._conns and time.monotonic() < deadline:
            for key, _ in self._sel.select(POLL_SECONDS):
                self._read(key.data)
        if self._conns:
            _log.warning(f"{self.origin}: stopped draining after {DRAIN_SECONDS:.0f}s; "
                      f"{len(self._conns)} connections still had data", extra=at(self.origin))

    def _close(self, c: _Conn) -> None:
        if c.fill and not c.skipping:
            # the peer went away (or was closed) in the middle of a record
            self._dl.write(self.origin, "torn_record", c.buf[:c.fill].tobytes())
            self._stats.add_malformed("torn_record")
        self._conns.pop(c.sock.fileno(), None)
        self._sel.unregister(c.sock)
        c.sock.close()
        self._submit.release_buffer(c.charged)
        c.charged = 0

    def _resize(self, c: _Conn, size: int) -> bool:
        """Give c's buffer ``size`` bytes, within the budget when growing."""
        grow = size - len(c.buf)
        if grow > 0 and not self._submit.reserve_buffer(grow):
            return False
        buf = np.empty(size, np.uint8)
        buf[:c.fill] = c.buf[:c.fill]
        c.buf = buf
        if grow > 0:
            c.charged += grow
        else:
            self._submit.release_buffer(-grow)
            c.charged += grow
        return True

    def _drop_line(self, c: _Conn, reason: str, kind: str) -> None:
        """Discard the line being received up to its newline, keeping its head."""
        self._dl.write(self.origin, reason, c.buf[:min(c.fill, DEADLETTER_HEAD)].tobytes())
        if kind == "dropped":
            self._stats.add_dropped(reason)
        else:
            self._stats.add_malformed(reason)
        c.skipping = True
        c.fill = 0
        if len(c.buf) > INITIAL_BUF:
            self._resize(c, INITIAL_BUF)  # the rest of the line is only skipped

    def _read(self, c: _Conn) -> None:
        submit, stats, dl = self._submit, self._stats, self._dl
        for _ in range(64):  # bounded, so one busy peer cannot starve the others
            if c.fill == len(c.buf):
                # the line being received fills the buffer: grow it, if the
                # line may be that long and the budget has room
                if c.fill > self.max_line:
                    self._drop_line(c, "oversized", "malformed")
                elif not self._resize(c, min(2 * len(c.buf), self.max_line + 1)):
                    self._drop_line(c, "queue_full", "dropped")
            # Take what the socket holds (several recvs: a unix stream queue is
            # only ~200 KiB) and decode it as one batch.
            start = c.fill
            eof = drained = False
            while c.fill < len(c.buf):
                try:
                    got = c.sock.recv_into(c.buf[c.fill:].data)
                except (BlockingIOError, InterruptedError):
                    drained = True
                    break
                except ConnectionError:
                    got = 0
                if got == 0:
                    eof = True
                    break
                c.fill += got
                if c.fill - start >= READ_TARGET:
                    break
            got = c.fill - start
            busy = not (eof or drained) and c.fill == len(c.buf)  # more was waiting
            if got:
                c.last_rx = time.monotonic()
            else:
                if eof:
                    self._close(c)
                return
            if c.skipping:
                nl = c.buf[start:c.fill].tobytes().find(b"\n")
                if nl < 0:
                    c.fill = 0
                    continue
                c.skipping = False
                rest = c.fill - (start + nl + 1)
                c.buf[:rest] = c.buf[start + nl + 1:c.fill]
                c.fill = rest
            pos = 0
            while True:  # complete lines, at most LINES_PER_BATCH per decode
                offs, lens, consumed = split_lines(c.buf[pos:c.fill], base=pos, cap=LINES_PER_BATCH)
                c.lines += len(offs)
                big = lens > self.max_line + 1  # (+1: the newline)
                if big.any():
                    for o in offs[big].tolist():
                        dl.write(self.origin, "oversized", c.buf[o:o + DEADLETTER_HEAD].tobytes())
                        stats.add_malformed("oversized")
                    keep = ~big
                    offs, lens = offs[keep], lens[keep]
                if len(offs):
                    handle_records(self._dec, c.buf, offs, lens, len(offs), self.origin, submit, stats, dl)
                    if c.uid >= 0:
                        stats.add_senders(c.uid, len(offs))
                pos += consumed
                if len(big) < LINES_PER_BATCH:
                    break
            if pos:
                rest = c.fill - pos
                if rest:
                    c.buf[:rest] = c.buf[pos:c.fill]
                c.fill = rest
            if len(c.buf) > READ_TARGET and c.fill <= INITIAL_BUF // 2:
                self._resize(c, INITIAL_BUF)  # a long line is done: give the memory back
            elif busy and len(c.buf) < READ_TARGET and c.fill < len(c.buf) // 2:
                self._resize(c, min(2 * len(c.buf), READ_TARGET))  # fewer, larger batches (if the budget allows)
            if eof:
                self._close(c)
                return
            if drained:
                return  # the socket is empty for now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.bound.remove()
