"""``--barnyard2-sync PATH``: Barnyard2's ``alert_unixsock: PATH sync`` mode.

Barnyard2 connects with SOCK_SEQPACKET, sends one Alertpkt, and waits for a
one-byte acknowledgement before the next.  We send that byte only once every
sink has the alert (the batch's ack callback, run by the runtime after all
sinks acknowledged), which makes this path lossless end to end: an alert we
did not store is never acknowledged, and Barnyard2 keeps its waldo behind it.

A datagram we cannot decode is dead-lettered (stored) and then acknowledged,
so a bad record cannot wedge the sender.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading

from ..alertpkt import SLOT_SIZE, SlotDecoder
from ..deadletter import DeadLetter
from ..sockets import BoundSocket, bind_unix
from ..stats import Stats
from .base import Submit
from .dgram import POLL_SECONDS, handle_slots

ACK = b"\x01"
MAX_CONNECTIONS = 16


class SeqpacketSource:
    def __init__(self, path: str, *, mode: int = 0o660, group: str | None = None) -> None:
        self.origin = f"barnyard2-sync:{os.path.abspath(path)}"
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_SEQPACKET, mode=mode, group=group)
        self.bound.sock.settimeout(POLL_SECONDS)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        t = threading.Thread(target=self._accept, args=(submit, stats, deadletter),
                             name="ingest-barnyard2-sync", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.bound.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            with self._lock:
                if len(self._conns) >= MAX_CONNECTIONS:
                    stats.add_dropped("too_many_connections")
                    conn.close()
                    continue
                self._conns.append(conn)
            conn.setblocking(True)
            tv = struct.pack("@ll", 0, int(POLL_SECONDS * 1e6))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            t = threading.Thread(target=self._serve, args=(conn, submit, stats, deadletter),
                                 name="ingest-barnyard2-conn", daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec = SlotDecoder(1, SLOT_SIZE)
        fd = conn.fileno()

        def ack() -> None:
            try:
                conn.send(ACK)
            except OSError:
                # the sender went away after sending: the alert is stored, and
                # Barnyard2 will resend it from its waldo (at-least-once)
                stats.add_dropped("ack_undeliverable")

        def room() -> bool:
            return not self._stop.is_set()

        while not self._stop.is_set():
            try:
                n = dec.recv(fd)
            except OSError:
                break
            if n == 0:
                continue
            if dec.lens[0] == 0:  # orderly shutdown by the peer
                break
            try:
                # Never dead-letter for a full queue here: Barnyard2 waits
                # for our ack anyway, so we wait for room instead.
                k = handle_slots(dec, 1, self.origin, submit, stats, deadletter, acks=[ack],
                                 wait_for_room=room)
            except Exception as e:  # a bug, not input: report it, keep serving
                stats.internal_errors += 1
                print(f"ingest: error: {self.origin}: internal error: {e!r}", file=sys.stderr, flush=True)
                continue
            if k == 0 and dec.status[0] != 0:
                ack()  # undecodable and kept in the dead-letter file: release the sender
            # k == 0 with a good status: stopping while the queue was full;
            # no ack, so Barnyard2 resends it after we restart.
        if self._stop.is_set():
            return  # stays open until close(): acks for queued alerts still go out
        with self._lock:  # the peer went away: forget the connection
            if conn in self._conns:
                self._conns.remove(conn)
        conn.close()

    def stop(self) -> None:
        # Stop reading; a sync sender has at most one unacknowledged alert
        # (in our queue, acked once stored), so nothing is lost.
        self._stop.set()
        for t in list(self._threads):
            t.join()

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self.bound.remove()
