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
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from dataclasses import dataclass

import numpy as np

from ..deadletter import DeadLetter
from ..eve import EveDecoder, split_lines
from ..sockets import BoundSocket, bind_unix
from ..stats import Stats
from .base import Submit
from .eve import handle_records

#: default longest accepted line; Suricata's own limit for a record is 10 MiB
MAX_LINE = 16 << 20
#: initial per-connection buffer (grows up to max_line + 1 for long lines)
CHUNK = 2 << 20
#: bytes of an oversized line kept in the dead-letter file
DEADLETTER_HEAD = 64 << 10
POLL_SECONDS = 0.2
#: read up to this much from one connection before decoding it as one batch
READ_TARGET = 1 << 20
#: most lines decoded in one call
LINES_PER_BATCH = 4096


@dataclass
class _Conn:
    sock: socket.socket
    buf: np.ndarray
    fill: int = 0
    skipping: bool = False  # inside an oversized line: discard up to '\n'


class EveStreamSource:
    """``--eve-stream PATH``: Suricata ``eve-log`` with ``filetype: unix_stream``."""

    kind = "eve-stream"

    def __init__(self, path: str, *, mode: int = 0o660, group: str | None = None,
                 event_types: tuple[str, ...] = (), max_line: int = MAX_LINE) -> None:
        self.origin = f"eve-stream:{os.path.abspath(path)}"
        self.bound: BoundSocket = bind_unix(path, socket.SOCK_STREAM, mode=mode, group=group, backlog=128)
        self.event_types = event_types
        self.max_line = max_line
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.connections = 0  # accepted so far

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._thread = threading.Thread(target=self._run, args=(submit, stats, deadletter),
                                        name="ingest-eve-stream", daemon=True)
        self._thread.start()

    def _run(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec = EveDecoder(4096, event_types=self.event_types, resync=True)
        sel = selectors.DefaultSelector()
        lsock = self.bound.sock
        lsock.setblocking(False)
        sel.register(lsock, selectors.EVENT_READ, None)
        conns: dict[int, _Conn] = {}
        try:
            while True:
                stopping = self._stop.is_set()
                events = sel.select(0 if stopping else POLL_SECONDS)
                if stopping and not events:
                    break
                for key, _ in events:
                    if key.data is None:
                        self._accept(lsock, sel, conns)
                    else:
                        self._read(key.data, sel, conns, dec, submit, stats, deadletter)
        except BaseException as e:
            self.error = e
            raise
        finally:
            for c in list(conns.values()):
                self._close(c, sel, conns, stats, deadletter)
            sel.close()

    def _accept(self, lsock: socket.socket, sel: selectors.BaseSelector, conns: dict[int, _Conn]) -> None:
        while True:
            try:
                s, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            s.setblocking(False)
            c = _Conn(s, np.empty(min(CHUNK, self.max_line + 1), np.uint8))
            conns[s.fileno()] = c
            sel.register(s, selectors.EVENT_READ, c)
            self.connections += 1

    def _close(self, c: _Conn, sel: selectors.BaseSelector, conns: dict[int, _Conn],
               stats: Stats, deadletter: DeadLetter) -> None:
        if c.fill and not c.skipping:
            # the peer went away in the middle of a record
            deadletter.write(self.origin, "torn_record", c.buf[:c.fill].tobytes())
            stats.add_malformed("torn_record")
        conns.pop(c.sock.fileno(), None)
        sel.unregister(c.sock)
        c.sock.close()

    def _read(self, c: _Conn, sel: selectors.BaseSelector, conns: dict[int, _Conn], dec: EveDecoder,
              submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        for _ in range(64):  # bounded, so one busy peer cannot starve the others
            if c.fill > self.max_line and not c.skipping:
                # no newline within max_line bytes: an oversized record
                deadletter.write(self.origin, "oversized", c.buf[:DEADLETTER_HEAD].tobytes())
                stats.add_malformed("oversized")
                c.skipping = True
                c.fill = 0
            if c.fill == len(c.buf):
                if len(c.buf) <= self.max_line:
                    grown = np.empty(min(2 * len(c.buf), self.max_line + 1), np.uint8)
                    grown[:c.fill] = c.buf[:c.fill]
                    c.buf = grown
                else:  # no newline within max_line bytes: oversized record
                    if not c.skipping:
                        deadletter.write(self.origin, "oversized", c.buf[:DEADLETTER_HEAD].tobytes())
                        stats.add_malformed("oversized")
                    c.skipping = True
                    c.fill = 0
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
            if got == 0:
                if eof:
                    self._close(c, sel, conns, stats, deadletter)
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
                big = lens > self.max_line + 1  # (+1: the newline)
                if big.any():
                    for o in offs[big].tolist():
                        deadletter.write(self.origin, "oversized", c.buf[o:o + DEADLETTER_HEAD].tobytes())
                        stats.add_malformed("oversized")
                    keep = ~big
                    offs, lens = offs[keep], lens[keep]
                if len(offs):
                    handle_records(dec, c.buf, offs, lens, len(offs), self.origin, submit, stats, deadletter)
                pos += consumed
                if len(big) < LINES_PER_BATCH:
                    break
            if pos:
                rest = c.fill - pos
                if rest:
                    c.buf[:rest] = c.buf[pos:c.fill]
                c.fill = rest
            if eof:
                self._close(c, sel, conns, stats, deadletter)
                return
            if drained:
                return  # the socket is empty for now

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.bound.remove()
