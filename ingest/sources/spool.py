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

The bookmark is a JSON document: {"spool", "file", "inode", "offset",
"open_event_offset", "read_offset", "version"}.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

from .. import batch as B
from .. import bookmark as BM
from ..batch import AlertBatch
from ..deadletter import DeadLetter
from ..stats import Stats
from ..unified2 import Decoder, Unified2Result, decode
from .base import Submit

BOOKMARK_VERSION = 1


def list_spool(directory: str, prefix: str) -> list[tuple[int, str]]:
    """(suffix, name) of the spool files, in numeric suffix order."""
    out = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    lead = prefix + "."
    for name in names:
        if name.startswith(lead):
            suffix = name[len(lead):]
            if suffix.isdigit():
                out.append((int(suffix), name))
    out.sort()
    return out


class SpoolSource:
    """A Unified2 spool directory follower (see module docstring)."""

    def __init__(self, spec: str, *, bookmark: str | None = None, start: str = "beginning",
                 after: str = "keep", archive_dir: str | None = None, poll: float = 0.1,
                 event_timeout: float = 0.5, chunk_size: int = 4 << 20, log=sys.stderr) -> None:
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
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # --- Source protocol ------------------------------------------------
    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._thread = threading.Thread(target=self._run, args=(submit, stats), daemon=True,
                                        name=f"ingest-spool-{self.prefix}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        pass

    # --- positions ------------------------------------------------------
    def _say(self, msg: str) -> None:
        print(f"ingest: {self.origin}: {msg}", file=self.log, flush=True)

    def _initial(self) -> tuple[str | None, int]:
        """(file name, offset) to start from: the bookmark if there is one."""
        state = BM.load(self.bookmark_path)
        files = list_spool(self.directory, self.prefix)
        if state is not None:
            name, ino, off = state.get("file"), state.get("inode"), int(state.get("offset", 0))
            path = os.path.join(self.directory, name or "")
            if name and os.path.isfile(path):
                if os.stat(path).st_ino == ino:
                    return name, off
                self._say(f"bookmarked {name} was replaced (inode changed); reading it from the start")
                return name, 0
            # gone (deleted/archived after it was read): the next one after it
            suffix = int(name.rsplit(".", 1)[-1]) if name and name.rsplit(".", 1)[-1].isdigit() else -1
            later = [n for s, n in files if s > suffix]
            return (later[0] if later else None), 0
        if not files:
            return None, 0
        if self.start_at == "beginning":
            return files[0][1], 0
        # end: after the last complete record of the newest file
        name = files[-1][1]
        with open(os.path.join(self.directory, name), "rb") as f:
            res = decode(f.read())
        return name, res.resume_offset

    def _next_file(self, name: str | None) -> str | None:
        files = list_spool(self.directory, self.prefix)
        if name is None:
            return files[0][1] if files else None
        cur = int(name.rsplit(".", 1)[-1])
        later = [n for s, n in files if s > cur]
        return later[0] if later else None

    # --- the reader thread ---------------------------------------------
    def _run(self, submit: Submit, stats: Stats) -> None:
        try:
            name, offset = self._initial()
            while not self._stop.is_set():
                if name is None:
                    name = self._next_file(None)
                    offset = 0
                    if name is None:
                        self._stop.wait(self.poll)
                        continue
                name = self._follow(name, offset, submit, stats)
                offset = 0
        except BaseException as e:  # reported by the runtime
            self.error = e
            raise

    def _follow(self, name: str, offset: int, submit: Submit, stats: Stats) -> str | None:
        """Tail one file until a newer one exists and this one is drained.
        Returns the next file's name (None when stopping)."""
        path = os.path.join(self.directory, name)
        try:
            f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            return self._next_file(name)
        with f:
            ino = os.fstat(f.fileno()).st_ino
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
                nino = os.stat(nxt).st_ino
            except FileNotFoundError:
                nino = None
            state.update(file=done, inode=nino, offset=0, open_event_offset=None, read_offset=0)

        def ack() -> None:
            BM.save(self.bookmark_path, state)
            if done is not None:
                self._retire(name)

        return ack

    def _retire(self, name: str) -> None:
        path = os.path.join(self.directory, name)
        try:
            if self.after == "delete":
                os.unlink(path)
            elif self.after == "archive":
                assert self.archive_dir is not None
                os.makedirs(self.archive_dir, exist_ok=True)
                shutil.move(path, os.path.join(self.archive_dir, name))
        except FileNotFoundError:
            pass

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
        # Files can wait: a full queue blocks the reader (never drops).
        while not submit.reserve(len(batch)):
            if self._stop.wait(0.05):
                # at shutdown the queue drains; keep trying
                time.sleep(0.01)
        batch.acks.append(ack)
        submit.submit(batch)
