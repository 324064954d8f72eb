"""``--unified2 DIR/PREFIX``: follow a Snort/Suricata/Barnyard2 Unified2 spool.

Spool files are ``DIR/PREFIX.<unix-time>``, taken in the numeric order of
the suffix.  One reader thread tails the current file:

* complete records are decoded in batches by the C core; the last event of
  what has been read stays open until the next event arrives or nothing new
  has come for ``event_timeout`` seconds, so an event is never emitted
  without its packets, nor held until the next record (py-idstools #54);
* a partial record at the end of the newest file is waited for; it is
  declared truncated (counted, logged) only once a newer file exists, as
  barnyard2 does;
* every batch carries an ack that writes the bookmark (file, inode, byte
  offset of the first record not yet emitted = the first record of any
  still-open event) atomically, via :mod:`ingest.bookmark`.  The runtime
  runs acks in order and only after every sink took the batch, so a restart
  resumes exactly after the last acknowledged event.
* a fully read file can be deleted or moved to an archive directory, again
  only from the ack (after the bookmark has moved past it).

* spool entries are opened ``O_NONBLOCK|O_NOFOLLOW`` and read only if
  they are regular files (:mod:`ingest.safefile`): a FIFO, directory,
  socket or symbolic link named like a spool file is logged, counted
  (``malformed.not_regular_file``) and skipped; it can never block the
  reader or shutdown.
* a file shrinking under the follower (or a bookmark offset past the end of
  its file) is logged, counted (``unified2_file_shrank`` /
  ``unified2_offset_past_end``) and the file is read again from its start:
  a Unified2 spool file is append-only, so a shorter one was rewritten, and
  the SQLite store ignores events it already has (JSON sinks may repeat
  them).

The bookmark is a JSON document: {"spool", "file", "inode", "offset",
"open_event_offset", "read_offset", "version"}.  It is validated in full when
the source is built (main thread, before anything is announced): ``file``
must be a bare ``PREFIX.<digits>`` name of this spool, every number an
integer >= 0; anything else is a damaged bookmark (start-up error), so a
tampered bookmark can never make ingest read, delete or move a file outside
the spool.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import threading
import time
from typing import Any

from .. import batch as B
from .. import bookmark as BM
from ..batch import AlertBatch
from ..deadletter import DeadLetter
from ..ops.logs import at
from ..safefile import NotRegularFile, open_input
from ..stats import Stats
from ..unified2 import Decoder, Unified2Result, decode
from .base import Submit

_log = logging.getLogger(__name__)

BOOKMARK_VERSION = 1


class _Refused(Exception):
    """A finished file that is not ours to delete or move."""


class _Stopped(Exception):
    """Stopping while the queue has no room: what was read and not handed on
    stays on disk, behind the bookmark, for the next run."""

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes '²' and '٣'


def spool_suffix(name: str, prefix: str) -> int | None:
    """The numeric suffix of a spool file name ``PREFIX.<digits>``, or None
    for any other name (another prefix, a separator, a path, NUL...)."""
    lead = prefix + "."
    if not name.startswith(lead):
        return None
    suffix = name[len(lead):]
    return int(suffix) if _DIGITS.fullmatch(suffix) else None


def list_spool(directory: str, prefix: str) -> list[tuple[int, str]]:
    """(suffix, name) of the spool files, in numeric suffix order."""
    out = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        suffix = spool_suffix(name, prefix)
        if suffix is not None:
            out.append((suffix, name))
    out.sort()
    return out


class SpoolSource:
    """A Unified2 spool directory follower (see module docstring)."""

    def __init__(self, spec: str, *, bookmark: str | None = None, start: str = "beginning",
                 after: str = "keep", archive_dir: str | None = None, poll: float = 0.1,
                 event_timeout: float = 0.5, chunk_size: int = 4 << 20) -> None:
        directory, prefix = os.path.split(os.path.abspath(spec))
        if not prefix:
            raise ValueError(f"--unified2 {spec!r}: expected DIR/PREFIX (e.g. /var/log/snort/snort.u2)")
        if start not in ("beginning", "end"):
            raise ValueError("start must be 'beginning' or 'end'")
        if after not in ("keep", "delete", "archive"):
            raise ValueError("after must be 'keep', 'delete' or 'archive'")
        if after == "archive" and not archive_dir:
            raise ValueError("archiving needs an archive directory")
        self.directory, self.prefix = directory, prefix
        self.origin = f"unified2:{os.path.join(directory, prefix)}"
        self.bookmark_path = bookmark or os.path.join(directory, f"{prefix}.ingest-bookmark")
        self.start_at = start
        self.after = after
        self.archive_dir = archive_dir
        self.poll = poll
        self.event_timeout = event_timeout
        self.chunk_size = chunk_size
        self._saver = BM.Saver(self.bookmark_path, self.origin)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats = Stats()
        #: spool files are read in suffix order after this one (-1: from the first)
        self._after_suffix = -1
        self._skipped: set[tuple[str, int]] = set()
        self.error: BaseException | None = None
        # in the main thread, before anything is announced: a damaged
        # bookmark is a start-up error, never a reader thread that dies
        self._state = self._load_bookmark()
        st = self._state
        #: (file name, offset) of the last acknowledged position (metrics)
        self._acked: tuple[str | None, int] | None = (
            (st["file"], st["offset"]) if st else (None, 0) if start == "beginning" else None)

    def lag(self) -> dict[str, int]:
        """Bytes of the spool behind the last acknowledged position: the rest
        of that file and every later one (metrics endpoint, any thread)."""
        acked = self._acked
        if acked is None:
            return {}
        name, offset = acked
        at = spool_suffix(name, self.prefix) if name is not None else None
        total = 0
        for suffix, fname in list_spool(self.directory, self.prefix):
            if at is not None and suffix < at:
                continue  # read and acknowledged (kept: --unified2-after keep)
            try:
                size = os.stat(os.path.join(self.directory, fname)).st_size
            except OSError:
                continue
            total += max(size - offset, 0) if fname == name else size
        return {os.path.join(self.directory, self.prefix): total}

    def _load_bookmark(self) -> dict[str, Any] | None:
        state = BM.load(self.bookmark_path)
        if state is None:
            return None
        c = BM.Checker(self.bookmark_path, f"move it away to start over as --unified2-start {self.start_at} says")
        c.keys(state, "", {"version", "file", "inode", "offset"}, {"spool", "open_event_offset", "read_offset"})
        c.version(state, BOOKMARK_VERSION)
        name = c.text(state, "file")
        if spool_suffix(name, self.prefix) is None:
            raise c.fail("file", f"must be a file name {self.prefix}.<digits> in {self.directory}, "
                                 f"not {name!r}")
        c.uint(state, "inode", nullable=True)
        c.uint(state, "offset")
        c.uint(state, "open_event_offset", nullable=True)
        if "read_offset" in state:
            c.uint(state, "read_offset")
        if "spool" in state:
            c.text(state, "spool")
        return state

    # --- Source protocol ------------------------------------------------
    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._stats = stats
        self._thread = threading.Thread(target=self._run, args=(submit, stats), daemon=True,
                                        name=f"ingest-spool-{self.prefix}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        pass

    @property
    def bookmark_stale(self) -> bool:
        """The bookmark on disk is behind what was acknowledged (see bookmark.Saver)."""
        return self._saver.stale

    # --- positions ------------------------------------------------------
    def _say(self, msg: str) -> None:
        _log.info(f"{self.origin}: {msg}", extra=at(self.origin))

    def _open(self, name: str, stats: Stats) -> int | None:
        """A descriptor on spool file name, or None (gone, or not a regular
        file: said once and counted)."""
        path = os.path.join(self.directory, name)
        try:
            return open_input(path)
        except FileNotFoundError:
            return None
        except NotRegularFile as e:
            try:
                key = (name, os.lstat(path).st_ino)
            except OSError:
                key = (name, -1)
            if key not in self._skipped:
                self._skipped.add(key)
                stats.add_malformed("not_regular_file")
                self._say(f"{name} is {e.strerror}; skipped")
            return None

    def _initial(self, stats: Stats) -> tuple[str | None, int]:
        """(file name, offset) to start from: the bookmark if there is one."""
        state = self._state
        files = list_spool(self.directory, self.prefix)
        if state is not None:
            name, ino, off = state["file"], state["inode"], state["offset"]
            fd = self._open(name, stats)
            if fd is None:
                # gone: the next one after it.  (A finished file is retired only
                # after the bookmark has moved to the next one, so this is
                # somebody else's doing: said, never silent.)
                if not os.path.lexists(os.path.join(self.directory, name)):
                    self._say(f"bookmarked {name} is no longer in the spool; continuing with the file after it")
                self._after_suffix = spool_suffix(name, self.prefix) or 0
                return None, 0
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            if st.st_ino != ino:
                self._say(f"bookmarked {name} was replaced (inode changed); reading it from the start")
                return name, 0
            if off > st.st_size:
                stats.add_extra("unified2_offset_past_end")
                self._say(f"bookmark offset {off} is past the end of {name} ({st.st_size} bytes): "
                          "the file shrank or the bookmark is wrong; reading it from the start")
                return name, 0
            return name, off
        if not files:
            return None, 0
        if self.start_at == "beginning":
            return files[0][1], 0
        # end: after the last complete record of the newest file (or, if
        # that is no regular file, the start of whatever comes after it)
        name = files[-1][1]
        self._after_suffix = files[-1][0]
        fd = self._open(name, stats)
        if fd is None:
            return None, 0
        with os.fdopen(fd, "rb") as f:
            res = decode(f.read())
        return name, res.resume_offset

    def _next_file(self, name: str | None) -> str | None:
        files = list_spool(self.directory, self.prefix)
        cur = self._after_suffix if name is None else spool_suffix(name, self.prefix)
        later = [n for s, n in files if s > (cur if cur is not None else -1)]
        return later[0] if later else None

    def _wait_next(self, name: str) -> str | None:
        """The file after name, once there is one (None when stopping)."""
        while not self._stop.is_set():
            nxt = self._next_file(name)
            if nxt is not None:
                return nxt
            self._stop.wait(self.poll)
        return None

    # --- the reader thread ---------------------------------------------
    def _run(self, submit: Submit, stats: Stats) -> None:
        try:
            name, offset = self._initial(stats)
            while not self._stop.is_set():
                if name is None:
                    name = self._next_file(None)
                    offset = 0
                    if name is None:
                        self._stop.wait(self.poll)
                        continue
                name = self._follow(name, offset, submit, stats)
                offset = 0
        except _Stopped:
            return
        except BaseException as e:  # reported by the runtime
            self.error = e
            raise

    def _follow(self, name: str, offset: int, submit: Submit, stats: Stats) -> str | None:
        """Tail one file until a newer one exists and this one is drained.
        Returns the next file's name (None when stopping)."""
        fd = self._open(name, stats)
        if fd is None:  # gone or not a file: wait for the one after it
            return self._wait_next(name)
        with os.fdopen(fd, "rb", buffering=0) as f:
            ino = os.fstat(fd).st_ino
            f.seek(offset)
            dec = Decoder(offset, self.chunk_size, self.origin)
            last_data = time.monotonic()
            while True:
                if self._stop.is_set():
                    return None  # any open event stays for the next run
                got = dec.fill(f)
                if got:
                    last_data = time.monotonic()
                    res = dec.decode(final=False)
                    self._emit(res, name, ino, dec, submit, stats)
                    if res.fatal:
                        return self._abandon(name, ino, res, submit, stats)
                    continue
                size = os.fstat(fd).st_size
                if size < dec.base + dec.n:
                    # append-only file now shorter than what was read: rewritten
                    stats.add_extra("unified2_file_shrank")
                    self._say(f"{name} shrank to {size} bytes under the follower (read up to "
                              f"{dec.base + dec.n}); reading it again from the start")
                    f.seek(0)
                    dec = Decoder(0, self.chunk_size, self.origin)
                    continue
                nxt = self._next_file(name)
                idle = time.monotonic() - last_data >= self.event_timeout
                if nxt is not None:
                    # the writer moved on: take what is left, then declare
                    # anything incomplete as truncated
                    got = dec.fill(f)
                    if got:
                        continue
                    res = dec.decode(final=True)
                    if dec.held:
                        stats.add_malformed("truncated")
                        self._say(f"{name}: truncated record at offset {dec.base} "
                                  f"({dec.held} bytes) and a newer file exists; moving on")
                    self._emit(res, name, ino, dec, submit, stats, done=nxt)
                    return nxt
                if idle and dec.held:
                    res = dec.decode(final=True)  # close the open event
                    if len(res.alerts) or len(res.packets) or len(res.extra):
                        self._emit(res, name, ino, dec, submit, stats)
                        continue
                self._stop.wait(self.poll)

    def _abandon(self, name: str, ino: int, res: Unified2Result, submit: Submit,
                 stats: Stats) -> str | None:
        """A pcap or unrecoverable garbage: say so once, skip the rest of the
        file once a newer one exists."""
        for _off, msg in res.errors:
            self._say(f"{name}: {msg}")
        stats.add_malformed("not_unified2")
        while not self._stop.is_set():
            nxt = self._next_file(name)
            if nxt is not None:
                self._submit(AlertBatch(B.empty(0), [], self.origin),
                             self._ack(name, ino, res.resume_offset, res.resume_offset, nxt), submit)
                return nxt
            self._stop.wait(self.poll * 5)
        return None

    def _ack(self, name: str, ino: int, offset: int, read_offset: int, done: str | None = None):
        state = {
            "version": BOOKMARK_VERSION,
            "spool": os.path.join(self.directory, self.prefix),
            "file": name, "inode": ino, "offset": offset,
            "open_event_offset": offset if read_offset > offset else None,
            "read_offset": read_offset,
        }
        if done is not None:  # the file is finished: point at the next one
            nxt = os.path.join(self.directory, done)
            try:
                nino = os.lstat(nxt).st_ino
            except FileNotFoundError:
                nino = None
            state.update(file=done, inode=nino, offset=0, open_event_offset=None, read_offset=0)

        def ack() -> None:
            # a failed write is said and counted; the next ack writes a newer
            # state.  A finished file is retired only once the bookmark has
            # moved past it on disk.
            self._acked = (name if done is None else done, 0 if done is not None else offset)
            if self._saver.save(state, self._stats) and done is not None:
                self._retire(name, ino)

        return ack

    def _retire(self, name: str, ino: int) -> None:
        """Delete or archive a finished spool file, and nothing else: the name
        is checked again here, and the entry must still be the regular file
        that was read (same inode).  Archiving never replaces what is in the
        archive directory and never follows a link there."""
        if self.after == "keep":
            return
        path = os.path.join(self.directory, name)
        try:
            if spool_suffix(name, self.prefix) is None or os.path.basename(path) != name:
                raise _Refused(f"{name!r} is not a spool file name")
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
                raise _Refused(f"{name} is no longer the file that was read")
            if self.after == "delete":
                os.unlink(path)  # unlink never follows: at worst it removes a planted link
            else:
                self._archive(name, path)
        except FileNotFoundError:
            pass
        except (OSError, _Refused) as e:
            self._stats.add_extra("unified2_retire_failed")
            what = "delete" if self.after == "delete" else "archive"
            self._say(f"could not {what} {name}: {e}; it stays in the spool")

    def _archive(self, name: str, path: str) -> None:
        assert self.archive_dir is not None
        os.makedirs(self.archive_dir, mode=0o750, exist_ok=True)
        dst = os.path.join(self.archive_dir, name)
        try:
            # link() fails on anything already at dst (file, link, directory):
            # a rename that cannot overwrite
            os.link(path, dst, follow_symlinks=False)
        except FileExistsError:
            raise _Refused(f"{dst} already exists") from None
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            self._copy(path, dst)  # another file system, or not allowed to link
        os.unlink(path)

    @staticmethod
    def _copy(path: str, dst: str) -> None:
        src = open_input(path)
        try:
            try:
                out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                raise _Refused(f"{dst} already exists") from None
            try:
                while os.sendfile(out, src, None, 1 << 24):
                    pass
                os.fsync(out)
            except BaseException:
                os.close(out)
                os.unlink(dst)
                raise
            os.close(out)
        finally:
            os.close(src)

    def _emit(self, res: Unified2Result, name: str, ino: int, dec: Decoder, submit: Submit,
              stats: Stats, done: str | None = None) -> None:
        nrec = sum(res.record_counts.values())
        stats.add_input(nrec, len(res.alerts))
        for reason, n in (("unknown_record_type", res.unknown), ("malformed_record", res.malformed),
                          ("orphan_packet", res.orphan_packets), ("orphan_extra_data", res.orphan_extra)):
            if n:
                stats.add_anomaly(reason, n)
        if res.appstat:
            stats.extra["unified2_appstat_skipped"] += res.appstat
        for _off, msg in res.errors:
            if not res.fatal:
                self._say(f"{name}: {msg}")
        batch = res.batch if len(res.alerts) else AlertBatch(B.empty(0), [], self.origin)
        read_offset = dec.base + dec.held
        self._submit(batch, self._ack(name, ino, res.resume_offset, read_offset, done), submit)

    def _submit(self, batch: AlertBatch, ack, submit: Submit) -> None:
        # Files can wait: a full queue (or a sink that spools) blocks the
        # reader, which never drops.  But not past a stop: the sink may be
        # down for good, and the batch is still on disk, behind the bookmark
        # (its ack never runs), so the next run reads it again (_Stopped
        # ends the reader quietly).
        while not submit.reserve(len(batch), file=True):
            if self._stop.wait(0.05):
                raise _Stopped
        batch.acks.append(ack)
        submit.submit(batch)
