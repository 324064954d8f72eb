"""The outbox: a bounded, crash-safe local spool of payloads that could not
be sent yet (a broker that is down or slow), replayed in order later.

It is generic: opaque payloads with a small JSON ``meta`` dict each; it
knows nothing of NATS or of alerts.  ::

    box = Outbox("/var/spool/ingest", 1 << 30)       # creates the directory 0700
    seq = box.append(payload, {"n": 512})            # OutboxFull past the bound
    seqs = box.append_many([(p1, m1), (p2, m2)])     # all or none, one sync
    for seq, meta, payload in box.pending():         # oldest first, unacknowledged only
        send(payload, meta)
        box.ack(seq)                                 # everything <= seq is done
    box.close()

On disk
-------
The directory holds only

* segment files ``seg-<first sequence number, 20 digits>``: a 24-byte header
  (``INGESTOB``, version, the first sequence number again), then records,
  each ``<body length u32> <crc32 u32> <seq u64> <meta length u32>`` + the
  meta JSON + the payload.  The CRC covers the three numbers and the body,
  so a torn or flipped record is never taken for data.  Records are only
  ever appended, sequence numbers ascend by one;
* ``acked``: two 16-byte slots (``OBAK``, the highest acknowledged sequence
  number, a CRC), written alternately in place (the older slot is
  overwritten), so a torn write damages one slot and the other still
  holds the previous acknowledgement.

A segment is removed as a whole once every record in it is acknowledged; a
new one is begun when the current one would pass ``segment_bytes``, and at
every open (an outbox never appends to a file it did not create in this
process).  Memory does not grow with the spool: what is kept per segment is
its name, first/last sequence number and size; payloads are read back from
disk one record at a time when replayed.

The bound
---------
``max_bytes`` bounds the bytes of the segment files (headers included, and
acknowledged records of a segment that still holds unacknowledged ones:
space is freed a segment at a time).  An ``append`` that would pass it
raises :class:`OutboxFull` and stores nothing; the caller counts that as a
drop by reason (never silent).  ``segment_bytes`` defaults to 1/16 of the
bound (64 KiB .. 64 MiB), so at most that much acknowledged data is held
back by a partly replayed segment.

fsync policy (``fsync=``)
-------------------------
* ``"always"`` (the default): every ``append`` is ``fdatasync``-ed before
  it returns (and a new segment's directory entry before its first
  record), every ``ack`` too.  A returned ``append`` survives a power loss.
  It costs about 0.5 ms per append here (2,200 appends/s of 4 KiB, 500/s of
  512 KiB = 260 MB/s); a caller that appends whole batches pays it once per
  batch, and batches grow while it waits, so the rate it sustains is
  bounded by bytes, not by appends.
* ``"segment"``: a segment is synced when it is finished (the
  next one begins) and at ``close``.  A process crash (kill -9, OOM) loses
  nothing that was appended (it is in the kernel's page cache); a power
  loss or kernel crash may lose the records of the segment being written.
* ``"never"``: the kernel writes when it likes (kill -9 still loses
  nothing; a power loss may lose anything not yet written back).

Under every policy a crash can only *repeat* acknowledged records, never
lose unacknowledged ones: an acknowledgement that did not reach the disk
replays records again (at-least-once), and a segment is removed only after
the acknowledgement that covers it was written.  Measured costs are in
BENCHMARKS.md ("Outbox").

Crash recovery and untrusted contents
-------------------------------------
The directory is configured; its contents are not trusted.  At open:

* the directory is created 0700 if absent; an existing one must be a real
  directory (not a symbolic link) owned by this user with no group or other
  permission bits, and is locked (``flock``: one process per outbox);
* only names of the two forms above are ever read, truncated or deleted;
  anything else is left alone and counted (``foreign``);
* every file is opened ``O_NOFOLLOW|O_NONBLOCK`` relative to the
  directory's descriptor and must be a regular file owned by this user
  with mode 0600 (a symbolic link, FIFO, directory or foreign file under
  one of our names is refused: :class:`OutboxError`, nothing touched), and a
  segment must start with our header naming the same sequence number;
* every record is checked (length within the file, sequence, CRC); the
  first bad one ends its segment: the file is truncated there and the cut
  counted (``cut_tails``/``cut_bytes``: a torn tail after a crash; in any
  segment but the newest, data damaged on disk).  A segment cut at its
  creation (shorter than its header) is removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FSYNC_POLICIES", "Outbox", "OutboxError", "OutboxFull"]

FSYNC_POLICIES = ("always", "segment", "never")

MAGIC = b"INGESTOB"
VERSION = 1
SEG_HEAD = struct.Struct("<8sIIQ")  # magic, version, flags (0), first seq
REC_HEAD = struct.Struct("<IIQI")  # body length, crc32, seq, meta length
_REC_SUM = struct.Struct("<IQI")  # what the crc covers besides the body
ACK_SLOT = struct.Struct("<4sQI")  # b"OBAK", acknowledged seq, crc32 of the first two
ACK_MAGIC = b"OBAK"
ACK_NAME = "acked"
SEGMENT_RE = re.compile(r"seg-([0-9]{20})\Z")
#: a record's meta is a dict (ids, headers): bigger is not ours
MAX_META = 1 << 20
#: buffers per writev call (the kernel's IOV_MAX is 1024), a multiple of 3
_IOV = 1020
#: the CRC of a body is computed over chunks this large (bounded reads)
_CHUNK = 1 << 20


#: ``bytes`` for annotations inside Outbox, whose ``bytes`` is a property
_Bytes = bytes


class OutboxError(Exception):
    """The outbox cannot be used: its directory or a file in it is not
    safe or not ours (the message names it and says why), or it is in use
    by another process."""


class OutboxFull(Exception):
    """``append`` would pass ``max_bytes``: nothing was stored."""


@dataclass
class _Segment:
    name: str
    first: int
    last: int  # first - 1 while empty
    size: int  # bytes in the file (header included)


def _seg_name(first: int) -> str:
    return f"seg-{first:020d}"


def _ack_slot(seq: int) -> bytes:
    head = ACK_MAGIC + struct.pack("<Q", seq)
    return ACK_SLOT.pack(ACK_MAGIC, seq, zlib.crc32(head))


def _read_ack_slot(raw: bytes) -> int | None:
    if len(raw) != ACK_SLOT.size:
        return None
    magic, seq, crc = ACK_SLOT.unpack(raw)
    if magic != ACK_MAGIC or crc != zlib.crc32(raw[:12]):
        return None
    return int(seq)


def _pread_full(fd: int, n: int, offset: int) -> bytes:
    """n bytes at offset, or fewer only at the end of the file."""
    parts = []
    while n > 0:
        b = os.pread(fd, n, offset)
        if not b:
            break
        parts.append(b)
        n -= len(b)
        offset += len(b)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _body_crc(fd: int, head_sum: bytes, offset: int, n: int) -> int | None:
    """CRC of head_sum + the n body bytes at offset, read in bounded
    chunks; None if the file ends first."""
    crc = zlib.crc32(head_sum)
    while n > 0:
        b = os.pread(fd, min(n, _CHUNK), offset)
        if not b:
            return None
        crc = zlib.crc32(b, crc)
        n -= len(b)
        offset += len(b)
    return crc


class Outbox:
    """A bounded, crash-safe spool of payloads (see the module doc).

    Thread-safe: ``append``, ``ack`` and a ``pending`` iteration may run on
    different threads at once (an iteration sees records appended while it
    runs).  All calls do blocking file I/O: from asyncio, call them in a
    thread.

    :param directory: created 0700 if absent (its parent must exist).
    :param max_bytes: bound of the segment files' bytes (>= 64 KiB).
    :param fsync: ``"always"`` | ``"segment"`` | ``"never"`` (module doc).
    :param segment_bytes: size at which a new segment is begun (default
        max_bytes / 16, within 64 KiB .. 64 MiB).
    :raises OutboxError: the directory or a file in it is unsafe or not
        ours, or another process has the outbox open.
    """

    def __init__(self, directory: str, max_bytes: int, *, fsync: str = "always",
                 segment_bytes: int | None = None) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if max_bytes < 64 << 10:
            raise ValueError("max_bytes must be at least 64 KiB")
        if segment_bytes is None:
            segment_bytes = min(max(max_bytes // 16, 64 << 10), 64 << 20)
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be at least 4096")
        self.directory = directory
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        #: entries in the directory that are not ours (left alone)
        self.foreign = 0
        #: segments cut at open (a torn tail, damaged data) and the bytes cut
        self.cut_tails = 0
        self.cut_bytes = 0
        #: records found damaged while replaying (their segment's rest skipped)
        self.corrupt = 0
        #: appends refused by the bound
        self.full = 0
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []  # oldest first
        self._tail_fd: int | None = None  # the segment being appended to (the last one)
        self._bytes = 0
        self._closed = False
        self._dfd = self._open_dir(directory)
        try:
            try:
                fcntl.flock(self._dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutboxError(f"outbox {directory} is in use by another process") from None
            self._ack_fd, self.acked = self._open_acked()
            try:
                self._scan()
            except BaseException:
                os.close(self._ack_fd)
                raise
        except BaseException:
            os.close(self._dfd)
            raise
        last = self._segments[-1].last if self._segments else 0
        self._next = max(self.acked, last) + 1

    # --- opening ------------------------------------------------------------
    @staticmethod
    def _open_dir(directory: str) -> int:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise OutboxError(f"outbox {directory}: its parent directory does not exist") from None
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OutboxError(f"outbox {directory} is not a directory (a symbolic link or a file); "
                                  "name the real directory") from None
            raise OutboxError(f"outbox {directory}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                raise OutboxError(f"outbox {directory} is owned by uid {st.st_uid}, not by this "
                                  f"process (uid {os.geteuid()}); it holds alerts: use a directory of your own")
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise OutboxError(f"outbox {directory} has mode {stat.S_IMODE(st.st_mode):04o}; it holds "
                                  f"alerts and must be private: chmod 700 {directory}")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_file(self, name: str, flags: int) -> int:
        """One of our files, relative to the directory: never through a
        link, never blocking on a FIFO, and only a private file of ours."""
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=self._dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OutboxError(f"outbox {self.directory}: {name} is a symbolic link; not ours, "
                                  "refusing to follow it (remove it)") from None
            if e.errno in (errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
                raise OutboxError(f"outbox {self.directory}: {name} is not a regular file; not ours "
                                  "(remove it)") from None
            raise
        try:
            st = os.fstat(fd)
            why = None
            if not stat.S_ISREG(st.st_mode):
                why = "is not a regular file"
            elif st.st_uid != os.geteuid():
                why = f"is owned by uid {st.st_uid}"
            elif stat.S_IMODE(st.st_mode) & 0o077:
                why = f"has mode {stat.S_IMODE(st.st_mode):04o}, not 0600"
            if why:
                raise OutboxError(f"outbox {self.directory}: {name} {why}; not ours (remove it)")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_acked(self) -> tuple[int, int]:
        fd = self._open_file(ACK_NAME, os.O_RDWR | os.O_CREAT)
        try:
            size = os.fstat(fd).st_size
            if size > 2 * ACK_SLOT.size:
                raise OutboxError(f"outbox {self.directory}: {ACK_NAME} has {size} bytes, not "
                                  f"{2 * ACK_SLOT.size}; not ours (remove it)")
            raw = _pread_full(fd, 2 * ACK_SLOT.size, 0)
            slots = [_read_ack_slot(raw[i:i + ACK_SLOT.size]) for i in (0, ACK_SLOT.size)]
            acked = max((s for s in slots if s is not None), default=0)
            self._ack_slots = [s if s is not None else -1 for s in slots]
            if size < 2 * ACK_SLOT.size:  # new, or cut while it was made
                self._ack_slots = [acked, -1]
                self._write_slot(fd, 0, acked)
                os.pwrite(fd, bytes(ACK_SLOT.size), ACK_SLOT.size)
                if self.fsync != "never":
                    os.fdatasync(fd)
                    os.fsync(self._dfd)
        except BaseException:
            os.close(fd)
            raise
        return fd, acked

    def _write_slot(self, fd: int, i: int, seq: int) -> None:
        if os.pwrite(fd, _ack_slot(seq), i * ACK_SLOT.size) != ACK_SLOT.size:
            raise OSError(errno.ENOSPC, "short write of the acknowledgement")
        self._ack_slots[i] = seq

    def _scan(self) -> None:
        found: list[tuple[int, str]] = []
        for name in os.listdir(self._dfd):
            m = SEGMENT_RE.match(name)
            if m:
                found.append((int(m.group(1)), name))
            elif name != ACK_NAME:
                self.foreign += 1
        found.sort()
        for first, name in found:
            seg = self._check_segment(name, first, last_one=name == found[-1][1])
            if seg is None:
                continue
            if self._segments and seg.first <= self._segments[-1].last:
                raise OutboxError(f"outbox {self.directory}: {name} overlaps "
                                  f"{self._segments[-1].name}; not ours (remove it)")
            if seg.last < seg.first or seg.last <= self.acked:  # empty, or acknowledged before a crash
                os.unlink(name, dir_fd=self._dfd)
                continue
            self._segments.append(seg)
            self._bytes += seg.size

    def _check_segment(self, name: str, first: int, last_one: bool) -> _Segment | None:
        """Validate a segment, cut it at its first bad record; None if it was
        removed (cut at its creation, before its header was whole)."""
        fd = self._open_file(name, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            head = _pread_full(fd, SEG_HEAD.size, 0)
            want = SEG_HEAD.pack(MAGIC, VERSION, 0, first)
            if len(head) < SEG_HEAD.size and want.startswith(head):
                # a crash while the segment was being begun: it holds nothing
                self.cut_tails += 1
                self.cut_bytes += size
                os.unlink(name, dir_fd=self._dfd)
                return None
            if head != want:
                raise OutboxError(f"outbox {self.directory}: {name} is not an outbox segment of "
                                  "this version (bad header); not ours (remove it)")
            pos, seq = SEG_HEAD.size, first
            while pos < size:
                rec = _pread_full(fd, REC_HEAD.size, pos)
                if len(rec) < REC_HEAD.size:
                    break
                body_len, crc, rseq, meta_len = REC_HEAD.unpack(rec)
                if (rseq != seq or meta_len > min(body_len, MAX_META)
                        or body_len > size - pos - REC_HEAD.size):
                    break
                if _body_crc(fd, _REC_SUM.pack(body_len, rseq, meta_len), pos + REC_HEAD.size,
                             body_len) != crc:
                    break
                pos += REC_HEAD.size + body_len
                seq += 1
            if pos < size:
                self.cut_tails += 1
                self.cut_bytes += size - pos
                os.ftruncate(fd, pos)
                if self.fsync != "never":
                    os.fdatasync(fd)
            return _Segment(name, first, seq - 1, pos)
        finally:
            os.close(fd)

    # --- the API --------------------------------------------------------------
    @property
    def bytes(self) -> int:
        """Bytes of the segment files (what ``max_bytes`` bounds)."""
        return self._bytes

    @property
    def count(self) -> int:
        """Records not yet acknowledged."""
        with self._lock:
            return sum(max(0, s.last - max(s.first - 1, self.acked)) for s in self._segments)

    def append(self, payload: _Bytes | bytearray | memoryview, meta: dict[str, Any] | None = None) -> int:
        """Store payload with its meta (a JSON-able dict, at most 1 MiB as
        JSON); returns its sequence number once it is written (and synced,
        under ``fsync="always"``).  Raises :class:`OutboxFull` (nothing
        stored) when it would pass ``max_bytes``, OSError when the disk
        refuses (nothing stored: a short write is cut back)."""
        return self.append_many([(payload, meta)])[0]

    def append_many(self, records: Sequence[tuple[_Bytes | bytearray | memoryview, dict[str, Any] | None]],
                    ) -> list[int]:
        """:meth:`append` for several records at once, all or none: one
        write, one sync (under ``fsync="always"``); their sequence numbers
        are consecutive.  They go into one segment (which may then pass
        ``segment_bytes``)."""
        metas = [json.dumps(m, separators=(",", ":")).encode() if m else b"" for _, m in records]
        for m in metas:
            if len(m) > MAX_META:
                raise ValueError(f"meta of {len(m)} bytes (at most {MAX_META})")
        sizes = [len(m) + len(p) for (p, _), m in zip(records, metas, strict=True)]
        if any(n > 0xFFFFFFFF for n in sizes):
            raise OutboxFull("a record of more than 4 GiB")
        total = sum(sizes) + REC_HEAD.size * len(sizes)
        if not records:
            return []
        with self._lock:
            if self._closed:
                raise ValueError("outbox is closed")
            tail = self._segments[-1] if self._tail_fd is not None else None
            new = tail is None or (tail.last >= tail.first and tail.size + total > self.segment_bytes)
            if self._bytes + total + (SEG_HEAD.size if new else 0) > self.max_bytes:
                self.full += 1
                raise OutboxFull(f"outbox {self.directory}: {self._bytes} bytes held, {total} more "
                                 f"would pass the bound of {self.max_bytes}")
            first = self._next
            if new:
                tail = self._begin_segment(first)
            assert tail is not None and self._tail_fd is not None
            parts: list[Any] = []
            for i, ((payload, _), meta_b, body_len) in enumerate(zip(records, metas, sizes, strict=True)):
                s = _REC_SUM.pack(body_len, first + i, len(meta_b))
                crc = zlib.crc32(payload, zlib.crc32(meta_b, zlib.crc32(s)))
                parts += [REC_HEAD.pack(body_len, crc, first + i, len(meta_b)), meta_b, payload]
            try:
                for k in range(0, len(parts), _IOV):  # writev takes at most IOV_MAX buffers
                    chunk = parts[k:k + _IOV]
                    if os.writev(self._tail_fd, chunk) != sum(len(b) for b in chunk):
                        # the disk filled up: never leave a torn record behind
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                if self.fsync == "always":
                    os.fdatasync(self._tail_fd)
            except BaseException:
                try:
                    os.ftruncate(self._tail_fd, tail.size)
                except OSError:
                    pass
                raise
            tail.last = first + len(records) - 1
            tail.size += total
            self._bytes += total
            self._next = tail.last + 1
            return list(range(first, self._next))

    def _begin_segment(self, first: int) -> _Segment:
        """Finish the current segment (synced now under "segment") and
        begin a new one whose first record will be ``first``."""
        self._finish_tail()
        name = _seg_name(first)
        try:
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=self._dfd)
        except FileExistsError:  # planted since the scan: never ours to touch
            raise OutboxError(f"outbox {self.directory}: {name} appeared from elsewhere; refusing to "
                              "write next to it (remove it)") from None
        try:
            os.fchmod(fd, 0o600)  # whatever the umask says
            head = SEG_HEAD.pack(MAGIC, VERSION, 0, first)
            if os.write(fd, head) != len(head):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if self.fsync == "always":
                os.fdatasync(fd)
                os.fsync(self._dfd)
        except BaseException:
            os.close(fd)
            os.unlink(name, dir_fd=self._dfd)
            raise
        seg = _Segment(name, first, first - 1, SEG_HEAD.size)
        self._segments.append(seg)
        self._bytes += seg.size
        self._tail_fd = fd
        return seg

    def _finish_tail(self) -> None:
        if self._tail_fd is None:
            return
        fd, self._tail_fd = self._tail_fd, None
        try:
            if self.fsync == "segment":
                os.fdatasync(fd)
                os.fsync(self._dfd)  # its directory entry too
        finally:
            os.close(fd)

    def ack(self, seq: int) -> None:
        """Everything up to ``seq`` is done: it is never returned by
        ``pending`` again, and segments that hold nothing else are removed.
        The acknowledgement is written before any segment is removed, so a
        crash can repeat records, never lose one."""
        with self._lock:
            if self._closed:
                raise ValueError("outbox is closed")
            seq = min(seq, self._next - 1)
            if seq <= self.acked:
                return
            # overwrite the older slot: the newer one still holds the
            # previous acknowledgement if this write is torn
            i = 0 if self._ack_slots[0] <= self._ack_slots[1] else 1
            self._write_slot(self._ack_fd, i, seq)
            if self.fsync == "always":
                os.fdatasync(self._ack_fd)
            self.acked = seq
            while self._segments and self._segments[0].last <= seq:
                seg = self._segments.pop(0)
                if not self._segments and self._tail_fd is not None:
                    os.close(self._tail_fd)  # the next append begins a new segment
                    self._tail_fd = None
                os.unlink(seg.name, dir_fd=self._dfd)
                self._bytes -= seg.size

    def pending(self, after: int = 0) -> Iterator[tuple[int, dict[str, Any], _Bytes]]:
        """(seq, meta, payload) of every record after ``after`` that is not
        acknowledged, oldest first, read from disk one at a time; records
        appended while iterating are included.  A record found damaged
        (its CRC, after the open's check passed: the disk or someone else)
        is counted in ``corrupt`` and the rest of its segment skipped."""
        done = after
        fd: int | None = None
        cur: str | None = None
        pos = 0
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    done = max(done, self.acked)
                    seg = next((s for s in self._segments if s.last > done), None)
                    if seg is None:
                        return
                    name, end = seg.name, seg.size
                if name != cur:
                    if fd is not None:
                        os.close(fd)
                        fd = None
                    cur = name
                    try:
                        fd = self._open_file(name, os.O_RDONLY)
                    except FileNotFoundError:  # acknowledged and removed meanwhile
                        continue
                    pos = SEG_HEAD.size
                assert fd is not None
                while pos < end:
                    rec = self._read_record(fd, pos, end, done)
                    if rec is None:  # damaged since it was written: skip the rest of this segment
                        self.corrupt += 1
                        done = max(done, seg.last)
                        break
                    seq, meta, payload, pos = rec
                    if meta is not None:
                        yield seq, meta, payload
                        done = max(seq, self.acked)  # the caller may have acknowledged further
        finally:
            if fd is not None:
                os.close(fd)

    @staticmethod
    def _read_record(fd: int, pos: int, end: int,
                     done: int) -> tuple[int, dict[str, Any] | None, _Bytes, int] | None:
        """The record at pos: (seq, meta, payload, where the next one
        starts), or None if it is not whole and sound.  A record at or
        before ``done`` is skipped without reading its body (meta None)."""
        head = _pread_full(fd, REC_HEAD.size, pos)
        if len(head) != REC_HEAD.size:
            return None
        body_len, crc, seq, meta_len = REC_HEAD.unpack(head)
        start = pos + REC_HEAD.size
        if meta_len > body_len or start + body_len > end:
            return None
        if seq <= done:
            return seq, None, b"", start + body_len
        body = _pread_full(fd, body_len, start)
        if len(body) != body_len or zlib.crc32(body, zlib.crc32(_REC_SUM.pack(body_len, seq, meta_len))) != crc:
            return None
        try:
            meta = json.loads(body[:meta_len]) if meta_len else {}
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        return seq, meta, body[meta_len:], start + body_len

    def close(self) -> None:
        """Sync (unless ``fsync="never"``) and release the outbox."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.fsync != "never":
                    if self._tail_fd is not None:
                        os.fdatasync(self._tail_fd)
                    os.fdatasync(self._ack_fd)
                    os.fsync(self._dfd)
            finally:
                if self._tail_fd is not None:
                    os.close(self._tail_fd)
                    self._tail_fd = None
                os.close(self._ack_fd)
                os.close(self._dfd)  # releases the lock

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
