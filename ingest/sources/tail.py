"""Following a growing log file with a crash-safe bookmark: Suricata's
eve.json (``--eve-file PATH``, :class:`EveFileSource`) and Zeek's conn.log
(``--zeek-conn PATH``, ingest.sources.zeek) share one implementation,
:class:`FileFollower`; a source says only how a batch of complete lines
becomes records and what its files look like.  Below, "EVE" reads as
"the source's records" and the counters' ``eve_file_`` prefix is the
source's own (``zeek_conn_`` for conn.log).

* **Identity** of a file = (st_dev, st_ino, fingerprint), the fingerprint
  being its first ``FP_LEN`` bytes (a file is not read before it has that
  many; no EVE record is shorter).  Inode reuse and copytruncate are told
  apart from "the same file, grown" by the fingerprint (Filebeat 9's rule).
* **Position** = byte offset just past the last complete line handed on.
  An unterminated last line is never consumed: it is read again, whole,
  once Suricata has finished writing it.
* **Bookmark**: written atomically (ingest.bookmark) from batch acks only,
  i.e. after every sink acknowledged everything before it; writes are
  coalesced (at most one per ``SAVE_INTERVAL``; what was coalesced is
  saved once the reader is idle, and at close).  A crash
  can therefore re-read a little: every alert carries a replay key
  (identity hash XOR offset), so the SQLite store ignores what it already
  has; JSON-lines sinks are at-least-once.
* **Rename rotation** (logrotate + SIGHUP, or a move): the open descriptor
  keeps following the old file wherever it went; it is drained to its end
  and only then abandoned, once the new file at PATH has data (Suricata has
  reopened) or it has been idle ``ROTATE_WAIT`` seconds.
* **copytruncate**: same inode, but smaller than our offset or with another
  fingerprint.  The copy (a sibling ``PATH.*`` / ``PATH-*`` with our
  fingerprint) is read from our offset to its end first, so what Suricata
  wrote between our last read and the copy is not lost; then PATH is read
  from 0.
* **Several files**: PATH may be a glob, for Suricata's threaded output
  (``eve.*.json``) or timestamped files (``eve.json.*``): every match is
  followed on its own, with its own entry in the one bookmark.
* On restart, a bookmarked file is looked for by identity at PATH, then
  among PATH's rotated siblings, and resumed; the remaining part of a file
  rotated away while we were down is drained before the new PATH.  A file
  copytruncated while we were down is found by its fingerprint in the copy
  (a sibling with a new inode), finished there from the bookmarked offset
  under its old identity (same replay keys), then PATH is read from 0
  (counted ``eve_file_copy_resumed``).  A rotated sibling that is in no
  bookmark entry, is no copy of a bookmarked file, holds EVE records and was
  written after the bookmark's last save was created and rotated away while
  we were down (two rotations in one downtime): it is read from its start
  (``eve_file_unseen_rotated``).
* **Every file is in the bookmark from the moment it is first opened**
  (at its starting offset, before a line of it is read), so a follower
  killed before its first acknowledgement still finds the file among the
  rotated siblings after a restart and finishes it.  The files present at
  start-up are opened and recorded in the main thread, before ingest says
  it is listening.
* **What is opened**: PATH (and every glob match) may be a symbolic link,
  followed to a regular file (Suricata's eve.json often is one); rotated
  siblings and bookmarked paths are never followed.  Everything is opened
  ``O_NONBLOCK`` and read only if ``fstat`` says regular file: a FIFO,
  directory or socket at PATH or among the siblings is logged once, counted
  (``malformed.not_regular_file``) and skipped; it cannot block the reader
  or shutdown (:mod:`ingest.safefile`).
* The bookmark is validated in full at start-up (types, keys, the hex
  fingerprint, offsets >= 0, each entry's key matching its identity): a
  damaged one is a start-up error naming the file and the field.  A
  bookmarked offset past the end of its file (it shrank while we were
  down) is logged, counted (``eve_file_offset_past_end``) and the file is
  read from 0; a file that shrinks under the follower is copytruncate
  (below).
"""

from __future__ import annotations

import functools
import glob as globmod
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import bookmark
from ..deadletter import DeadLetter
from ..eve import EveDecoder, EveResult, split_lines
from ..ops.logs import at
from ..safefile import NotRegularFile, open_input
from ..stats import Stats
from .base import Submit
from .eve import handle_records

_log = logging.getLogger(__name__)

FP_LEN = 64
CHUNK = 4 << 20
LINES_PER_BATCH = 4096
MAX_LINE = 16 << 20
POLL_SECONDS = 0.25
ROTATE_WAIT = 5.0
SAVE_INTERVAL = 0.1
MAX_ENTRIES = 64
#: glob mode: a file that is not the newest match and has been idle this long is closed
IDLE_CLOSE = 300.0
#: file times come from a coarse clock: a file written just after a look at
#: PATH may carry a time a little before it
LOOK_MARGIN = 1.0


def _ident_key(dev: int, ino: int, fp: bytes) -> str:
    return f"{dev}:{ino}:{hashlib.blake2b(fp, digest_size=8).hexdigest()}"


def _replay_base(dev: int, ino: int, fp: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(f"{dev}:{ino}:".encode() + fp, digest_size=8).digest(), "little")


@dataclass
class _File:
    path: str
    fd: int
    dev: int
    ino: int
    fp: bytes
    offset: int
    key: str
    base: int  # replay-key base
    idle_since: float = 0.0
    gone_since: float | None = None  # when we noticed it is no longer at its path
    skipping: bool = False  # inside an oversized line

    @classmethod
    def open(cls, path: str, offset: int = 0, expect: tuple[int, int, bytes] | None = None, *,
             follow: bool = False, fp_len: int = FP_LEN) -> _File | None:
        """Open path if it has a full fingerprint (and, with expect, is that
        file).  Raises NotRegularFile for a FIFO, directory, socket, or a
        symbolic link when not ``follow``."""
        try:
            fd = open_input(path, follow_symlinks=follow)
        except NotRegularFile:
            raise
        except OSError:
            return None
        st = os.fstat(fd)
        fp = os.pread(fd, fp_len, 0)
        if len(fp) < fp_len or (expect is not None and (st.st_dev, st.st_ino, fp) != expect):
            os.close(fd)
            return None
        return cls(path, fd, st.st_dev, st.st_ino, fp, offset, _ident_key(st.st_dev, st.st_ino, fp),
                   _replay_base(st.st_dev, st.st_ino, fp), time.monotonic())

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncated(self) -> bool:
        """copytruncate (or a rewrite) happened under us."""
        return self.size() < self.offset or os.pread(self.fd, len(self.fp), 0) != self.fp

    def close(self) -> None:
        os.close(self.fd)


class FileFollower:
    """Follow a text log of newline-terminated records (a path or a glob)
    with the identity / bookmark / rotation rules of this module's
    docstring.  One implementation for every followed log: a subclass says
    only how a batch of complete lines becomes records (:meth:`_handle`),
    what its files look like (:attr:`fp_len`, :meth:`_looks_like_records`,
    :meth:`_sibling_prefix`) and how its counters and options are named."""

    kind = "file"
    #: the counters' prefix (``<prefix>_truncations``, ``<prefix>_unseen_rotated``, ...)
    counter_prefix = "file"
    #: the option that names the start position, for the bookmark's error message
    start_option = "--start"
    thread_name = "ingest-file"
    #: bytes of a file's start that make its fingerprint (a file is not read before it has them)
    fp_len = FP_LEN

    def __init__(self, path: str, *, bookmark_path: str | None = None, start: str = "beginning",
                 max_line: int = MAX_LINE, poll: float = POLL_SECONDS,
                 rotate_wait: float = ROTATE_WAIT) -> None:
        self.path = os.path.abspath(path)
        self.is_glob = globmod.has_magic(self.path)
        self.origin = f"{self.kind}:{self.path}"
        d, b = os.path.split(self.path)
        self.bookmark_path = bookmark_path or os.path.join(d, f".{b.replace('*', '_')}.ingest-bookmark")
        if start not in ("beginning", "end"):
            raise ValueError("start must be 'beginning' or 'end'")
        self.start_at = start
        self.max_line = max_line
        self.poll = poll
        self.rotate_wait = rotate_wait
        self._saver = bookmark.Saver(self.bookmark_path, self.origin)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # acknowledged positions (event-loop thread) and when they were saved
        bdir = os.path.dirname(os.path.abspath(self.bookmark_path))
        if not os.access(bdir, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write the bookmark in {bdir} (for {self.path}); "
                             "give a writable --bookmark-dir")
        # In the main thread, before anything is announced: a damaged bookmark
        # is a start-up error (never restart silently, never a dying reader),
        # and the files there are now are opened and recorded.
        state = self._load_bookmark()
        self._had_bookmark = state is not None
        #: wall-clock time of the last look at PATH: a rotated sibling written
        #: after it may have been at PATH unseen (_unseen_rotated)
        self._looked: float = 0.0
        if state is not None:
            self._looked = state.get("looked") or os.stat(self.bookmark_path).st_mtime
        self._entries: dict[str, dict] = dict((state or {}).get("files", {}))
        self._cap = max(MAX_ENTRIES, len(self._entries))  # see _prune
        self._dirty = False
        self._last_save = 0.0
        self._lock = threading.Lock()
        self._done: dict[tuple[int, int, bytes], int] = {}
        self._newest: str | None = None
        self._refused: set[tuple[str, int, int]] = set()
        #: counters noted before the runtime's Stats is there (start())
        self._early: list[str] = []
        self._stats: Stats | None = None
        self._files: list[_File] = []
        try:
            self._files = self._resume()
            for f in self._files:
                _log.info(f"{self.origin}: resuming {f.path} at byte {f.offset}", extra=at(self.origin))
            self._discover(self._files, not self._had_bookmark, save=False)
            self.flush_bookmark()
        except BaseException:
            self._close_files()
            raise

    def _load_bookmark(self) -> dict | None:
        state = bookmark.load(self.bookmark_path)
        if state is None:
            return None
        c = bookmark.Checker(self.bookmark_path,
                             f"move it away to start over as {self.start_option} {self.start_at} says")
        c.keys(state, "", {"version", "path", "files"}, {"looked"})
        looked = state.get("looked")
        if looked is not None and (type(looked) not in (int, float) or not 0 <= looked < float("inf")):
            raise c.fail("looked", f"must be a time (seconds since the epoch), not {looked!r}")
        c.version(state, 1)
        c.text(state, "path")
        files = state["files"]
        if not isinstance(files, dict):
            raise c.fail("files", "is not a JSON object")
        for key, e in files.items():
            where = f"files.{key}"
            c.keys(e, where, {"path", "dev", "ino", "fp", "offset"})
            if not os.path.isabs(c.text(e, "path", where)):
                raise c.fail(f"{where}.path", "must be an absolute path")
            dev, ino = c.uint(e, "dev", where), c.uint(e, "ino", where)
            c.uint(e, "offset", where)
            fp = c.text(e, "fp", where)
            if len(fp) != 2 * self.fp_len or not all(ch in "0123456789abcdef" for ch in fp):
                raise c.fail(f"{where}.fp", f"must be {2 * self.fp_len} lowercase hex digits")
            assert dev is not None and ino is not None
            if _ident_key(dev, ino, bytes.fromhex(fp)) != key:
                raise c.fail(where, "does not match its dev, ino and fp")
        return state

    def _note(self, counter: str, msg: str) -> None:
        """Log now; count once the runtime's Stats is there."""
        _log.info(f"{self.origin}: {msg}", extra=at(self.origin))
        self._early.append(counter)

    def _flush_early(self) -> None:
        if self._stats is None:
            return
        for counter in self._early:
            if counter == "not_regular_file":
                self._stats.add_malformed(counter)
            else:
                self._stats.add_extra(counter)
        self._early.clear()

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    # --- bookmark (acks run on the event loop, after every sink returned) ---
    def _ack(self, ident: tuple[str, str, int, int, bytes], offset: int) -> None:
        key, path, dev, ino, fp = ident
        entry = {"path": path, "dev": dev, "ino": ino, "fp": fp.hex(), "offset": offset}
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry  # most recent last
            self._prune()
            self._dirty = True
            if time.monotonic() - self._last_save >= SAVE_INTERVAL:
                self._save()

    def _record_open(self, f: _File, save: bool = True) -> None:
        """Put a file in the bookmark the moment it is first opened (at its
        starting offset), unless it is there already: a follower killed
        before its first ack must still find it after a rotation."""
        with self._lock:
            if f.key in self._entries:
                return
            self._entries[f.key] = {"path": f.path, "dev": f.dev, "ino": f.ino, "fp": f.fp.hex(),
                                    "offset": f.offset}
            self._prune()
            self._dirty = True
            if save:
                self._save()

    def _prune(self) -> None:
        """Keep the bookmark small without forgetting a file that would be
        read again: past the cap, the oldest entries of files no longer at
        any path we follow (rotated away, deleted) go first.  A file still
        matched by the glob is never forgotten (a restart would read it
        again from 0), so a glob over many files keeps an entry each; the
        cap then moves up, so the next look is MAX_ENTRIES entries later."""
        if len(self._entries) <= self._cap:
            return
        live = set()
        for p in self._current_paths():
            try:
                st = os.stat(p)
            except OSError:
                continue
            live.add((st.st_dev, st.st_ino))
        for key, e in list(self._entries.items()):  # oldest first
            if len(self._entries) <= MAX_ENTRIES:
                break
            if (e["dev"], e["ino"]) not in live:
                del self._entries[key]
        self._cap = max(MAX_ENTRIES, len(self._entries) + MAX_ENTRIES)

    def _save(self) -> None:
        # a failed write keeps _dirty: the next ack or idle flush tries again
        if self._saver.save({"version": 1, "path": self.path, "files": self._entries,
                             "looked": self._looked}, self._stats):
            self._dirty = False
        self._last_save = time.monotonic()

    def lag(self) -> dict[str, int]:
        """Bytes not yet acknowledged per followed file still at its path
        (its size minus its bookmark offset), for the metrics endpoint (any
        thread)."""
        with self._lock:
            entries = [dict(e) for e in self._entries.values()]
        out: dict[str, int] = {}
        for e in entries:
            try:
                st = os.stat(e["path"])
            except OSError:
                continue  # rotated away or removed: no longer at a path to name
            if (st.st_dev, st.st_ino) == (e["dev"], e["ino"]):
                out[e["path"]] = max(st.st_size - int(e["offset"]), 0)
        return out

    @property
    def bookmark_stale(self) -> bool:
        """The bookmark on disk is behind what was acknowledged (see bookmark.Saver)."""
        return self._saver.stale

    def flush_bookmark(self, *, due_only: bool = False) -> None:
        """Save acknowledged positions not saved yet (``due_only``: only if
        SAVE_INTERVAL has passed since the last save)."""
        with self._lock:
            if self._dirty and not (due_only and time.monotonic() - self._last_save < SAVE_INTERVAL):
                self._save()

    # --- reading ---------------------------------------------------------
    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._stats = stats
        self._flush_early()
        self._thread = threading.Thread(target=self._run, args=(submit, stats, deadletter),
                                        name=self.thread_name, daemon=True)
        self._thread.start()

    def _sibling_prefix(self) -> str:
        """What the name of a rotated copy of PATH starts with: PATH's own
        name (eve.json.1, eve.json-20261204), up to a glob's first ``*``."""
        return os.path.basename(self.path).split("*")[0]

    def _looks_like_records(self, head: bytes) -> bool:
        """A file's first bytes say it holds this log's records (a
        compressed or foreign sibling does not)."""
        raise NotImplementedError

    def _siblings(self) -> list[str]:
        d, b = os.path.split(self.path)
        try:
            names = os.listdir(d)
        except OSError:
            return []
        prefix = self._sibling_prefix()
        return [os.path.join(d, n) for n in names if n != b and n.startswith(prefix)]

    def _current_paths(self) -> list[str]:
        """PATH or the glob's matches: whatever is there (a FIFO too: opening
        it is refused and said once, rather than ignored in silence)."""
        if self.is_glob:
            return sorted(globmod.glob(self.path))
        return [self.path] if os.path.exists(self.path) else []

    def _resume(self) -> list[_File]:
        """Re-open every bookmarked file that still has unread data.  Only
        PATH (or the glob's matches, links followed) and PATH's siblings
        (links not followed) are candidates, whatever path an entry names."""
        files: list[_File] = []
        current = self._current_paths()
        cands = [(p, True) for p in current] + [(p, False) for p in self._siblings() if p not in current]
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            expect = (e["dev"], e["ino"], bytes.fromhex(e["fp"]))
            found = None
            for p, follow in sorted(cands, key=lambda c: c[0] != e["path"]):  # its own path first
                try:
                    found = _File.open(p, e["offset"], expect, follow=follow, fp_len=self.fp_len)
                except NotRegularFile:
                    continue  # cannot be the file we followed
                if found is not None:
                    break
            if found is None:
                found = self._copy_of(e, [p for p, follow in cands if not follow])
            if found is None:
                continue  # gone (deleted / compressed): nothing more to read from it
            size = found.size()
            if found.path not in current:
                if size < found.offset:
                    self._note(f"{self.counter_prefix}_offset_past_end",
                               f"bookmark offset {found.offset} is past the end of {found.path} ({size} "
                               "bytes): it shrank while ingest was down; reading it from the start")
                    found.offset = 0
                elif size == found.offset:
                    found.close()  # fully read and rotated away
                    continue
            # at PATH, a shrunk file is copytruncate: _check reads the rest from the copy
            files.append(found)
        if self._had_bookmark:
            files += self._unseen_rotated(files, self._looked)
        return files

    def _unseen_rotated(self, files: list[_File], since: float) -> list[_File]:
        """Files that were at PATH only between two looks at it (created and
        rotated away while ingest was down, or while it was busy draining a
        backlog: eve.json -> eve.json.1 -> eve.json.2), so never opened and
        in no bookmark entry.  A rotated sibling that is no followed,
        finished or bookmarked file nor a copy of one, holds EVE records (its
        first byte is '{': not a compressed copy) and was written after
        ``since`` (the last look at PATH, less a margin for the coarse file
        clock) is one of them: read from its start (the store's replay keys
        make a re-read harmless).  Not for a glob (its matches are looked at
        directly)."""
        if self.is_glob:
            return []
        with self._lock:
            entries = list(self._entries.values())
        # an identity is the inode *and* its first bytes: copytruncate gives
        # one inode several contents, each a file of its own
        fps = {bytes.fromhex(e["fp"]) for e in entries} | {f.fp for f in files} | {fp for *_, fp in self._done}
        out: list[_File] = []
        for p in sorted(self._siblings()):
            try:
                if os.lstat(p).st_mtime < since - LOOK_MARGIN:
                    continue
                f = _File.open(p, fp_len=self.fp_len)  # regular files only, links not followed
            except (OSError, NotRegularFile):
                continue
            if f is None:
                continue
            if f.fp in fps or not self._looks_like_records(f.fp):  # known, a copy of a known one, or not ours
                f.close()
                continue
            fps.add(f.fp)
            self._note(f"{self.counter_prefix}_unseen_rotated",
                       f"{p} was at {self.path} only while ingest was not looking (down, or busy); "
                       "reading it from the start")
            self._flush_early()
            self._record_open(f, save=False)
            out.append(f)
        return out

    def _copy_of(self, e: dict, siblings: list[str]) -> _File | None:
        """copytruncate while ingest was down: the bookmarked file's inode now
        holds new content (or is gone), and what was written after our last
        read is only in the copy logrotate made, a sibling with a new inode
        but the file's first bytes.  Followed under the bookmarked identity
        (its replay keys stay those of the original, so the store keeps
        each alert once), from the bookmarked offset; links not followed."""
        fp, offset = bytes.fromhex(e["fp"]), e["offset"]
        for p in sorted(siblings):
            try:
                fd = open_input(p)
            except OSError:
                continue
            try:
                if os.pread(fd, self.fp_len, 0) == fp and os.fstat(fd).st_size > offset:  # (equal: all read)
                    key = _ident_key(e["dev"], e["ino"], fp)
                    self._note(f"{self.counter_prefix}_copy_resumed",
                               f"{e['path']} was truncated while ingest was down (copytruncate); "
                               f"reading the rest of it from its copy {p} at byte {offset}")
                    return _File(p, os.dup(fd), e["dev"], e["ino"], fp, offset, key,
                                 _replay_base(e["dev"], e["ino"], fp), time.monotonic())
            finally:
                os.close(fd)
        return None

    def _decoder(self) -> Any:
        """The reader thread's decoding state, handed to every :meth:`_handle`."""
        return None

    def _handle(self, dec: Any, f: _File, data: bytes, offs: np.ndarray, lens: np.ndarray,
                start: int, submit: Submit, stats: Stats, deadletter: DeadLetter,
                acks: list) -> bool:
        """Decode the complete lines ``data[offs[i]:offs[i]+lens[i]]`` of f
        (``data[0]`` is at byte ``start`` of the file) and hand them on with
        ``acks`` (the bookmark past them) in the same batch, or alone if
        nothing came of them.  False: stopping while the queue was full --
        nothing was handed on, the lines are read again next time."""
        raise NotImplementedError

    def _run(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec = self._decoder()
        files = self._files  # opened (and recorded) at start-up
        try:
            while True:
                stopping = self._stop.is_set()
                progressed = False
                for f in list(files):
                    progressed |= self._drain(f, dec, submit, stats, deadletter)
                if stopping:
                    break
                self._discover(files, False)
                for f in list(files):
                    self._check(f, files, dec, submit, stats, deadletter)
                if not progressed:
                    # the last acks of a burst were coalesced: save them now
                    # that the file is quiet, not only at the next ack or exit
                    self.flush_bookmark(due_only=True)
                    self._stop.wait(self.poll)
        except BaseException as e:
            self.error = e
            raise
        finally:
            self._close_files()

    def _discover(self, files: list[_File], first: bool, save: bool = True) -> None:
        """Start following files at PATH (or matching the glob) not yet followed."""
        looking = time.time()
        known = {(f.dev, f.ino, f.fp) for f in files}
        paths = self._current_paths()
        new = False
        if self.is_glob:
            mtimes = {}
            for p in paths:
                try:
                    mtimes[p] = os.stat(p).st_mtime
                except OSError:
                    pass
            self._newest = max(mtimes, key=mtimes.__getitem__) if mtimes else None
        for p in paths:
            try:
                st = os.stat(p)
            except OSError:
                continue
            if any((st.st_dev, st.st_ino) == (k[0], k[1]) for k in known):
                continue
            try:
                f = _File.open(p, follow=True, fp_len=self.fp_len)
            except NotRegularFile as e:
                if (p, st.st_dev, st.st_ino) not in self._refused:
                    self._refused.add((p, st.st_dev, st.st_ino))
                    self._note("not_regular_file", f"{p} is {e.strerror}; skipped")
                    self._flush_early()  # in the reader thread: counted at once
                continue
            if f is None or (f.dev, f.ino, f.fp) in known:
                if f is not None:
                    f.close()
                continue
            done = self._done.get((f.dev, f.ino, f.fp))
            if done is not None:  # finished earlier (e.g. renamed within the glob)
                if f.size() <= done:
                    f.close()
                    continue
                f.offset = done
            if first and self.start_at == "end":
                f.offset = f.size()
            self._record_open(f, save)
            files.append(f)
            new = True
        if new and not first:
            # PATH has a new file: a rotation since the last look.  If there
            # were two, the file between them was never seen at PATH.
            files += self._unseen_rotated(files, self._looked)
        self._looked = looking

    def _check(self, f: _File, files: list[_File], dec: Any, submit: Submit, stats: Stats,
               deadletter: DeadLetter) -> None:
        """Rotation and truncation of one followed file."""
        try:
            st = os.stat(f.path)
            here = (st.st_dev, st.st_ino) == (f.dev, f.ino)
        except OSError:
            st, here = None, False
        if here:
            if f.truncated() and not self._after_truncate(f, dec, submit, stats, deadletter):
                files.remove(f)  # too short to identify yet: discovery picks it up again
                f.close()
            elif (self.is_glob and f.path != self._newest and f.size() <= f.offset
                  and time.monotonic() - f.idle_since >= IDLE_CLOSE):
                # an old timestamped file Suricata has moved on from: stop holding
                # it open; discovery re-opens it at this offset if it ever grows
                files.remove(f)
                self._done[(f.dev, f.ino, f.fp)] = f.offset
                f.close()
            return
        # renamed or deleted: the descriptor still reads it; finish it first.
        # Suricata writes to it until it reopens PATH (SIGHUP), so it is let go
        # only once PATH has a new file with data, or rotate_wait after the
        # move was noticed (never counted from the last read: a quiet file
        # moved away may still get its last lines).
        now = time.monotonic()
        if f.gone_since is None:
            f.gone_since = now
        if f.size() > f.offset:
            return
        replaced = st is not None and st.st_size >= self.fp_len
        if replaced or now - f.gone_since >= self.rotate_wait:
            files.remove(f)
            self._done[(f.dev, f.ino, f.fp)] = f.offset
            f.close()

    def _after_truncate(self, f: _File, dec: Any, submit: Submit, stats: Stats,
                        deadletter: DeadLetter) -> bool:
        """copytruncate: read the rest from the copy, then start PATH again at 0."""
        for p in self._siblings():
            try:
                fd = open_input(p)  # never blocks on a FIFO, never follows a link
            except OSError:
                continue
            try:
                if os.pread(fd, self.fp_len, 0) == f.fp and os.fstat(fd).st_size >= f.offset:
                    copy = _File(p, os.dup(fd), f.dev, f.ino, f.fp, f.offset, f.key, f.base)
                    while self._drain(copy, dec, submit, stats, deadletter):
                        pass
                    copy.close()
                    break
            finally:
                os.close(fd)
        _log.info(f"{self.origin}: {f.path} was truncated (copytruncate); reading it from the start", extra=at(self.origin))
        stats.add_extra(f"{self.counter_prefix}_truncations", 1)
        fp = os.pread(f.fd, self.fp_len, 0)
        if len(fp) < self.fp_len:
            return False  # not enough for a fingerprint yet
        f.fp, f.offset = fp, 0
        f.key = _ident_key(f.dev, f.ino, fp)
        f.base = _replay_base(f.dev, f.ino, fp)
        self._record_open(f)  # the new content is a new file: recorded before it is read
        return True

    def _drain(self, f: _File, dec: Any, submit: Submit, stats: Stats,
               deadletter: DeadLetter) -> bool:
        """Hand on every complete line past f.offset; True if anything was read."""
        if not f.key:
            return False
        progressed = False
        chunk = CHUNK
        while True:
            data = os.pread(f.fd, chunk, f.offset)
            if not data:
                break
            if os.pread(f.fd, len(f.fp), 0) != f.fp:
                # truncated (and perhaps rewritten) under us: what was just read
                # may be new content at an old offset; _check starts it over
                break
            if f.skipping:
                nl = data.find(b"\n")
                if nl < 0:
                    f.offset += len(data)
                    continue
                f.skipping = False
                f.offset += nl + 1
                self._ack_later(f, f.offset, submit)
                continue
            offs, lens, consumed = split_lines(data, cap=LINES_PER_BATCH)
            if not len(offs):
                if len(data) < chunk:
                    break  # an unterminated last line: wait for the rest
                if chunk <= self.max_line:
                    # the line may still be within --eve-max-line: read more
                    # of it, never more than the bound + its newline
                    chunk = min(2 * chunk, self.max_line + 1)
                    continue
                if not deadletter.keep(self.origin, "oversized", data[:64 << 10],
                                       hold=lambda: not self._stop.is_set()):
                    return progressed  # stopping: the line is read again next run
                stats.add_malformed("oversized")
                f.skipping = True
                f.offset += len(data)
                continue
            big = lens > self.max_line + 1  # complete lines past the bound (+1: the newline)
            if big.any():
                # the same bound as a stream's, whether the line came in
                # one read or several: each is kept (its head) and counted
                for o in offs[big].tolist():
                    if not deadletter.keep(self.origin, "oversized", data[o:o + (64 << 10)],
                                           hold=lambda: not self._stop.is_set()):
                        return progressed  # stopping: read again next run
                    stats.add_malformed("oversized")
                offs, lens = offs[~big], lens[~big]
            start = f.offset
            end = start + consumed
            # the identity as it is now (a truncation changes f later)
            ident = (f.key, f.path, f.dev, f.ino, f.fp)
            if not self._handle(dec, f, data, offs, lens, start, submit, stats, deadletter,
                                [functools.partial(self._ack, ident, end)]):
                return progressed  # stopping while the queue is full: re-read next time
            f.offset = end
            f.idle_since = time.monotonic()
            progressed = True
        return progressed

    def _ack_later(self, f: _File, offset: int, submit: Submit) -> None:
        """Move the bookmark past skipped bytes, in order with the batches."""
        from ..batch import AlertBatch, empty

        submit.reserve(0)
        ident = (f.key, f.path, f.dev, f.ino, f.fp)
        submit.submit(AlertBatch(empty(0), acks=[lambda: self._ack(ident, offset)], origin=self.origin))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._close_files()  # never started (start-up failed), or finished
        self.flush_bookmark()


class EveFileSource(FileFollower):
    """``--eve-file PATH``: follow eve.json (or a glob of Suricata's files)."""

    kind = "eve-file"
    counter_prefix = "eve_file"
    start_option = "--eve-file-start"
    thread_name = "ingest-eve-file"

    def __init__(self, path: str, *, bookmark_path: str | None = None, start: str = "beginning",
                 event_types: tuple[str, ...] = (), max_line: int = MAX_LINE,
                 poll: float = POLL_SECONDS, rotate_wait: float = ROTATE_WAIT) -> None:
        self.event_types = event_types
        super().__init__(path, bookmark_path=bookmark_path, start=start, max_line=max_line, poll=poll,
                         rotate_wait=rotate_wait)

    def _looks_like_records(self, head: bytes) -> bool:
        return head.startswith(b"{")  # an EVE record (not a compressed copy)

    def _decoder(self) -> EveDecoder:
        return EveDecoder(LINES_PER_BATCH, event_types=self.event_types)

    def _handle(self, dec: EveDecoder, f: _File, data: bytes, offs: np.ndarray, lens: np.ndarray,
                start: int, submit: Submit, stats: Stats, deadletter: DeadLetter,
                acks: list) -> bool:
        res = handle_records(
            dec, data, offs, lens, len(offs), self.origin, submit, stats, deadletter,
            block=lambda: not self._stop.is_set(), acks=acks,
            keys=functools.partial(self._keys, f.base, start),
        )
        return res is not None

    @staticmethod
    def _keys(base: int, start: int, res: EveResult) -> np.ndarray:
        off = res.alert_offsets.astype(np.uint64) + np.uint64(start)
        keys = (np.uint64(base) ^ off).view(np.int64)
        keys[keys == 0] = 1
        return keys
