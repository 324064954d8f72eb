"""``--zeek-conn PATH``: follow Zeek's conn.log (a path or a glob) into flow
records, with the eve-file follower's identity / bookmark / rotation
machinery (:class:`ingest.sources.tail.FileFollower`, shared, not copied).

* **Format** per file, from its first bytes: ``{`` JSON
  (``LogAscii::use_json=T``), ``#separator`` TSV (Zeek's default); the TSV
  header (``#fields`` ...) is read from the file's start whenever the
  follower resumes in the middle of it (after a restart).
* **Fingerprint**: 128 bytes, not eve.json's 64: every TSV conn.log starts
  with the same 68 header bytes (``#separator`` ... ``#unset_field``); the
  ``#open`` time that follows tells two files apart.  (A JSON conn.log
  line is longer than 128 bytes.)
* **Rotation**: Zeek (``Log::rotation_interval``) renames conn.log to
  ``conn.YYYY-MM-DD-HH-MM-SS.log`` in the same directory and opens a new
  conn.log; logrotate would make ``conn.log.1``.  So the rotated siblings of
  ``DIR/conn.log`` are the names in DIR that start with ``conn.`` (the
  name up to its first dot, and the dot): both forms, never ``conn-summary``
  or ``dns.log``.  A sibling is only ever read as a rotated copy when its
  identity (device, inode, first 128 bytes) is one the bookmark knows, or,
  for a file rotated away while ingest was down, when it was written after
  the last look and starts like a conn.log (``{`` or ``#separator``): a
  compressed archive (zeekctl's ``conn.*.log.gz``) never is.  zeekctl's
  archive directories (``logs/YYYY-MM-DD/``) are other directories: not
  followed (point a glob at them to read them).
* **Records**: every line decoded (ingest.flows.zeek) becomes a flow row
  (source ``zeek``, the sensor of ``--sensor-name``); flows are keyed by
  (sensor, flow_id = hash of the uid, ...), so re-reading a line after a
  crash replaces its row: never a duplicate.  Bad lines are counted by
  reason (``malformed.zeek_*``), dead-lettered, and the next line flows.
"""

from __future__ import annotations

import os

import numpy as np

from ..batch import AlertBatch
from ..batch import empty as empty_alerts
from ..deadletter import DeadLetter
from ..flows import record as R
from ..flows.zeek import ZeekConnDecoder, detect, read_header
from ..stats import Stats
from .base import Submit
from .tail import MAX_LINE, POLL_SECONDS, ROTATE_WAIT, FileFollower, _File

#: bytes of a file's start that identify it (see the module's docstring)
ZEEK_FP_LEN = 128
#: the most of a TSV file's start read for its header on a resume
HEADER_MAX = 64 << 10


class ZeekConnSource(FileFollower):
    """``--zeek-conn PATH``: follow conn.log (or a glob of them)."""

    kind = "zeek-conn"
    counter_prefix = "zeek_conn"
    start_option = "--zeek-conn-start"
    thread_name = "ingest-zeek-conn"
    fp_len = ZEEK_FP_LEN

    def __init__(self, path: str, *, bookmark_path: str | None = None, start: str = "beginning",
                 max_line: int = MAX_LINE, poll: float = POLL_SECONDS,
                 rotate_wait: float = ROTATE_WAIT) -> None:
        #: per followed file (its identity key): its decoder (format + TSV header)
        self._decoders: dict[str, ZeekConnDecoder] = {}
        super().__init__(path, bookmark_path=bookmark_path, start=start, max_line=max_line, poll=poll,
                         rotate_wait=rotate_wait)

    def _sibling_prefix(self) -> str:
        base = os.path.basename(self.path)
        if self.is_glob:
            return base.split("*")[0]
        # conn.log -> conn.2026-12-04-10-00-00.log, conn.log.1; a leading dot
        # is part of the stem (.conn.log -> .conn.*, never every hidden file)
        dot = base.find(".", 1)
        return (base[:dot] if dot > 0 else base) + "."

    def _looks_like_records(self, head: bytes) -> bool:
        return detect(head) is not None

    def _decoder_for(self, f: _File, start: int) -> ZeekConnDecoder:
        dec = self._decoders.get(f.key)
        if dec is None:
            if len(self._decoders) >= 256:  # files long gone: their decoders go too
                self._decoders.clear()
            fmt = detect(f.fp)
            header = None
            if fmt == "tsv" and start > 0:
                # resuming mid-file: the header is at its start
                header = read_header(os.pread(f.fd, min(start, HEADER_MAX), 0))
            dec = self._decoders[f.key] = ZeekConnDecoder(fmt, header)
        return dec

    def _handle(self, dec: None, f: _File, data: bytes, offs: np.ndarray, lens: np.ndarray,
                start: int, submit: Submit, stats: Stats, deadletter: DeadLetter,
                acks: list) -> bool:
        n = len(offs)
        while not submit.reserve(n, nbytes=int(lens.sum()), file=True):
            if self._stop.is_set():
                return False
            self._stop.wait(0.01)
        zd = self._decoder_for(f, start)
        if start == 0:
            zd.fmt = detect(f.fp) or zd.fmt
        try:
            res = zd.decode(data, offs, lens, self.origin)
        except Exception:  # noqa: BLE001
            # the C decoder refused the chunk as a whole (its argument
            # checks): every line on its own in Python, where an error costs
            # only its line (internal_error); the reader never dies of input
            stats.add_extra("zeek_decode_fallback", 1)
            try:
                res = zd.decode(data, offs, lens, self.origin, native=False)
            except BaseException:
                submit.release(n)
                raise
        block = lambda: not self._stop.is_set()  # noqa: E731
        for _i, reason, raw in res.rejected:
            if not deadletter.keep(self.origin, reason, raw, hold=block):
                submit.release(n)
                return False  # stopping: nothing of this batch is acknowledged
        for _i, reason, _raw in res.rejected:
            stats.add_malformed(reason)
        k = len(res.batch)
        stats.add_input(n - res.headers, 0)
        if res.headers:
            stats.add_extra("zeek_header_lines", res.headers)
        batch = AlertBatch(empty_alerts(0), [], self.origin)
        if k:
            # the records ride as they are (as NetFlow's): the stores take
            # them column-wise, JSON sinks have their lines rendered on demand
            res.batch.texts = res.texts
            batch.events = R.event_batch(res.batch)
            stats.add_extra("zeek_flows", k)
        batch.acks.extend(acks)
        used = batch.queued()
        submit.submit(batch)
        submit.release(n - used)
        return True
