"""``--barnyard2-sync PATH``: Barnyard2's ``alert_unixsock: PATH sync`` mode.

Barnyard2 connects with SOCK_SEQPACKET, sends one Alertpkt, and waits for a
one-byte acknowledgement before the next.  We send that byte only once every
sink has the alert (the batch's ack callback, run by the runtime after all
sinks acknowledged), which makes this path lossless end to end: an alert we
did not store is never acknowledged, and Barnyard2 keeps its waldo behind it.

A datagram we cannot decode is dead-lettered (stored) and then acknowledged,
so a bad record cannot wedge the sender.

Connections: Barnyard2 connects once, at start-up, and treats a failed send
as fatal (FORMATS.md section 3.2), so a connection is never closed for being
idle (a quiet night is not a reason to kill the sender).  What bounds them is
``max_connections``: a connection arriving at the cap makes room by closing
the connection idle the longest that has no alert waiting for its
acknowledgement (one that never sent anything first, i.e. a squatter), if
it has been idle at least ``EVICT_MIN_IDLE``; otherwise the newcomer is
refused.  So idle squatters can never lock the real Barnyard2 out.
accept() failing for want of descriptors (EMFILE, ENFILE) is counted
(``accept_failed``) and retried after a back-off; the connections we have
are still served.

Acknowledgements are sent without blocking (they are sent from the event
loop): a real Barnyard2 reads each one before it sends the next alert, so
its socket always has room for the byte.  A peer that sends alerts without
reading its acknowledgements fills that room; it is closed (its alerts are
stored all the same) and counted ``acks_undeliverable``, never allowed to
block the event loop and with it every source, every sink and SIGTERM.

Shutdown loses nothing the kernel accepted: the listening socket is shut
for reading and the connections already completed are accepted; every
connection is shut for reading (its sender gets EPIPE from then on and
resends after our restart), and what it had already sent is read and
handed on (stored and acknowledged, or counted).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from ..alertpkt import SLOT_SIZE, SlotDecoder
from ..deadletter import DeadLetter
from ..ops.logs import at
from ..ops.peercred import PeerPolicy, RefusalLog, refuse_peer
from ..sockets import BoundSocket, bind_unix, stop_receiving
from ..stats import Stats
from .barnyard2_events import RecentEvents
from .base import Submit
from .dgram import POLL_SECONDS, handle_slots
from .stream import (
    ACCEPT_BACKOFF,
    ACCEPT_BACKOFF_MAX,
    EVICT_MIN_IDLE,
    MAX_CONNECTIONS,
    RESOURCE_ERRNOS,
)

_log = logging.getLogger(__name__)

ACK = b"\x01"


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    last_rx: float
    alerts: int = 0  # datagrams received
    awaiting: int = 0  # alerts queued, not yet acknowledged
    rude: bool = False  # does not read its acks (said once)
    uid: int = -1  # the peer's (SO_PEERCRED), when credentials are asked for


class SeqpacketSource:
    def __init__(self, path: str, *, mode: int = 0o660, group: str | None = None,
                 max_connections: int = MAX_CONNECTIONS, peers: PeerPolicy | None = None) -> None:
        self.origin = f"barnyard2-sync:{os.path.abspath(path)}"
        #: peer credentials: None = not asked for; else checked at accept
        self.peers = peers
        self._refusals = RefusalLog(self.origin, "connection")
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_SEQPACKET, mode=mode, group=group)
        self.bound.sock.settimeout(POLL_SECONDS)
        self.max_connections = max_connections
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.events = RecentEvents()  # shared by the connections of one Barnyard2

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._acceptor = threading.Thread(target=self._accept, args=(submit, stats, deadletter),
                                          name="ingest-barnyard2-sync", daemon=True)
        self._acceptor.start()

    def _accept(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        try:
            self._accept_loop(submit, stats, deadletter)
            self._accept_pending(submit, stats, deadletter)
        except BaseException as e:  # the runtime notices the dead thread and stops
            self.error = e
            raise

    def _accept_pending(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        """Stopping: refuse new connections, and take (and drain) the ones the
        kernel completed before that: their senders may have sent already.
        Not on a socket the service manager passed: it keeps them for the
        next process."""
        lsock = self.bound.sock
        if self.bound.adopted:
            return
        try:
            lsock.shutdown(socket.SHUT_RD)  # connect() is refused from now on
        except OSError:
            pass
        lsock.setblocking(False)
        while True:
            try:
                sock, _ = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:
                if e.errno in RESOURCE_ERRNOS:
                    return  # no descriptor for it: its sender is refused, and resends
                raise
            uid = self._check_peer(sock, stats)
            if uid is None:
                continue
            with self._lock:
                conn = _Conn(sock, time.monotonic(), uid=uid)
                self._conns.append(conn)
            self._spawn(conn, submit, stats, deadletter)

    def _check_peer(self, sock: socket.socket, stats: Stats) -> int | None:
        """The peer's uid (-1: credentials not asked for); None: refused and closed."""
        if self.peers is None:
            return -1
        uid = refuse_peer(sock, self.peers, self.origin, stats, self._refusals)
        return None if uid < 0 else uid

    def _spawn(self, conn: _Conn, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        conn.sock.setblocking(True)
        tv = struct.pack("@ll", 0, int(POLL_SECONDS * 1e6))
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        t = threading.Thread(target=self._serve, args=(conn, submit, stats, deadletter),
                             name="ingest-barnyard2-conn", daemon=True)
        t.start()
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(t)

    def _accept_loop(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        delay = ACCEPT_BACKOFF
        while not self._stop.is_set():
            try:
                sock, _ = self.bound.sock.accept()
            except TimeoutError:
                continue
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if self._stop.is_set():
                    return
                if e.errno not in RESOURCE_ERRNOS:
                    raise
                stats.add_extra("accept_failed")
                if delay == ACCEPT_BACKOFF:  # once per episode, not per retry
                    _log.error(f"{self.origin}: accept failed ({e.strerror}); retrying with back-off, "
                               f"the {len(self._conns)} open connections are still served", extra=at(self.origin))
                self._stop.wait(delay)
                delay = min(delay * 2, ACCEPT_BACKOFF_MAX)
                continue
            delay = ACCEPT_BACKOFF
            uid = self._check_peer(sock, stats)
            if uid is None:
                continue
            with self._lock:
                if len(self._conns) >= self.max_connections and not self._evict(stats):
                    stats.add_extra("connections_refused")
                    sock.close()
                    continue
                conn = _Conn(sock, time.monotonic(), uid=uid)
                self._conns.append(conn)
            self._spawn(conn, submit, stats, deadletter)

    def _evict(self, stats: Stats) -> bool:
        """Make room (lock held): close the longest idle connection with no
        alert waiting for its ack, never-sent first.  False: all busy."""
        now = time.monotonic()
        idle = [c for c in self._conns if not c.awaiting and now - c.last_rx >= EVICT_MIN_IDLE]
        if not idle:
            return False
        victim = min(idle, key=lambda c: (c.alerts > 0, c.last_rx))
        self._conns.remove(victim)
        try:
            victim.sock.shutdown(socket.SHUT_RDWR)  # its thread sees the end and closes it
        except OSError:
            pass
        stats.add_extra("connections_evicted")
        return True

    def _serve(self, conn: _Conn, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec = SlotDecoder(1, SLOT_SIZE)
        sock = conn.sock
        fd = sock.fileno()

        def ack() -> None:
            # Runs on the event loop: never block.  The alert is stored
            # either way; a sender that does not get its byte resends the
            # alert from its waldo (the store keeps one copy).
            conn.awaiting -= 1
            try:
                sock.send(ACK, socket.MSG_DONTWAIT)
            except BlockingIOError:
                # no room for one byte: the peer sends without reading its
                # acks (Barnyard2 never does); close it rather than wait
                stats.add_extra("acks_undeliverable")
                if not conn.rude:
                    conn.rude = True
                    _log.error(f"{self.origin}: a connection does not read its acknowledgements; "
                               "closing it", extra=at(self.origin))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            except OSError:
                stats.add_extra("acks_undeliverable")  # the sender went away after sending

        def room() -> bool:
            return not self._stop.is_set()

        shut = False
        resets = 0
        while True:
            stopping = self._stop.is_set()
            if stopping and not shut:
                # Refuse further alerts (the sender gets EPIPE and resends
                # after our restart); what it sent already is read below.
                stop_receiving(sock)
                shut = True
            try:
                n = dec.recv(fd)
            except ConnectionResetError:
                # The peer closed with acknowledgements unread: the kernel
                # reports that once, before the alerts it sent that are still
                # queued; those are read on the next turn, then the end.
                if resets:
                    break
                resets += 1
                continue
            except OSError:
                break
            resets = 0
            if n == 0:
                if stopping:
                    break  # drained
                continue
            if dec.lens[0] == 0:  # orderly shutdown by the peer (or evicted), or drained
                break
            conn.last_rx = time.monotonic()
            conn.alerts += 1
            conn.awaiting += 1
            try:
                # Never dead-letter for a full queue here: Barnyard2 waits
                # for our ack anyway, so we wait for room instead.
                k = handle_slots(dec, 1, self.origin, submit, stats, deadletter, acks=[ack],
                                 wait_for_room=room, events=self.events)
                if conn.uid >= 0:
                    stats.add_senders(conn.uid, 1)
            except Exception as e:  # a bug, not input: report it, keep serving
                conn.awaiting -= 1
                stats.internal_errors += 1
                _log.error(f"{self.origin}: internal error: {e!r}", extra=at(self.origin))
                continue
            if k == 0 and dec.status[0] != 0:
                ack()  # undecodable and kept in the dead-letter file: release the sender
            elif k == 0:
                # stopping while the queue was full: no ack, so Barnyard2
                # resends it after we restart
                conn.awaiting -= 1
        if self._stop.is_set():
            return  # stays open until close(): acks for queued alerts still go out
        with self._lock:  # the peer went away (or was evicted): forget the connection
            if conn in self._conns:
                self._conns.remove(conn)
        sock.close()

    def stop(self) -> None:
        # Stop reading: the acceptor takes the connections already completed,
        # every connection is drained (see _serve); their alerts are queued
        # and acknowledged once stored (the sockets stay open until close()).
        self._stop.set()
        acceptor = getattr(self, "_acceptor", None)
        if acceptor is not None:
            acceptor.join()  # no connection thread starts after this
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join()

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.sock.close()
            self._conns.clear()
        self.bound.remove()
