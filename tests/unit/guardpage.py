"""Inputs laid out so that their last byte is the last readable byte.

``guarded(data)`` copies data to the end of an anonymous mapping whose next
page is PROT_NONE, as happens to a memory-mapped spool file whose size is a
multiple of the page size: any read past the end is a SIGSEGV, in a normal
build too (ASan only sees heap buffers).  The C decoders are then driven over
such buffers in a child process (``python -m tests.unit.guardpage KIND FILE...``),
so an over-read fails the calling test instead of killing pytest.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class Guarded:
    """data at the very end of readable memory; ``view`` is a writable memoryview."""

    def __init__(self, data: bytes) -> None:
        size = max(PAGE, -(-len(data) // PAGE) * PAGE)
        self._len = size + PAGE
        p = _libc.mmap(None, self._len, mmap.PROT_READ | mmap.PROT_WRITE,
                       mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if p in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        self._p = p
        if _libc.mprotect(p + size, PAGE, 0) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
        start = p + size - len(data)
        ctypes.memmove(start, data, len(data))
        self.view = memoryview((ctypes.c_ubyte * len(data)).from_address(start)).cast("B")

    def close(self) -> None:
        # Views of the mapping may still exist (cffi buffers): leave it
        # mapped; the child process is short-lived.
        pass


def run_child(kind: str, files: list[pathlib.Path], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run this module in a child process; the test asserts on its result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "tests.unit.guardpage", kind, *map(str, files)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ---- what the child does --------------------------------------------------------

def _unified2(data: bytes) -> None:
    from ingest import unified2 as U
    from ingest.native import ffi, lib

    # prefixes of the input end at the guard page (every one of the last
    # 64, a sample of the rest): the batch decoder, the resynchroniser from
    # every late start, and a streaming decode + unwind see each one
    n0 = len(data)
    ends = sorted(set(range(max(0, n0 - 64), n0 + 1)) | set(range(0, n0, max(1, n0 // 128))))
    for end in ends:
        if end == 0:
            continue
        g = Guarded(data[:end])
        try:
            n = len(g.view)
            c = ffi.from_buffer("uint8_t[]", g.view)
            U.decode(g.view)
            for start in sorted(set(range(max(0, n - 48), n)) | set(range(0, n, max(1, n // 16)))):
                lib.ingest_u2_resync(c, n, start)
            rows = U._Rows(n, copy_pool=True)
            stop, reason = ffi.new("size_t *"), ffi.new("int *")
            lib.ingest_u2_decode(c, n, 0, 0, rows.out, stop, reason)
            lib.ingest_u2_unwind(c, stop[0], rows.out)
        finally:
            g.close()


def _alertpkt(data: bytes) -> None:
    from ingest.alertpkt import SlotDecoder

    # one slot exactly as long as the datagram, ending at the guard page
    g = Guarded(data)
    try:
        import numpy as np

        dec = SlotDecoder(1, len(data))
        from ingest.native import ffi, lib
        alerts = np.empty(1, dtype=__import__("ingest.batch", fromlist=["x"]).ALERT_DTYPE)
        lens = np.array([len(data)], dtype=np.uint32)
        lib.ingest_alertpkt_decode(ffi.from_buffer("uint8_t[]", g.view), len(data), 1,
                                   ffi.from_buffer("uint32_t[]", lens), ffi.NULL,
                                   ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True),
                                   1, dec._c_slot_of, dec._c_status, dec._c_msg_key, dec._c_msg_first)
    finally:
        g.close()


def _eve(data: bytes) -> None:
    import numpy as np

    from ingest.native import ffi, lib

    for cut in range(0, len(data), max(1, len(data) // 256)):
        g = Guarded(data[:len(data) - cut])
        try:
            n = len(g.view)
            c = ffi.from_buffer("uint8_t[]", g.view)
            offs = np.zeros(n + 1, dtype=np.uint64)
            lens = np.zeros(n + 1, dtype=np.uint32)
            consumed = ffi.new("size_t *")
            lib.ingest_eve_lines(c, n, 0, ffi.from_buffer("uint64_t[]", offs, require_writable=True),
                                 ffi.from_buffer("uint32_t[]", lens, require_writable=True), n + 1, consumed)
            # the whole buffer as one record, with no newline after it
            recs = ffi.new("struct ingest_eve_rec[1]")
            alerts = ffi.new("struct ingest_alert[1]")
            ext = ffi.new("struct ingest_eve_alert[1]")
            o = np.zeros(1, dtype=np.uint64)
            ln = np.array([n], dtype=np.uint32)
            lib.ingest_eve_decode(c, n, ffi.from_buffer("uint64_t[]", o), ffi.from_buffer("uint32_t[]", ln),
                                  ffi.NULL, 1, ffi.NULL, 0, recs, alerts, ext, 1)
            # and as one of ingest's own rendered alerts (the NATS wire decoder)
            lib.ingest_eve_decode_wire(c, n, ffi.from_buffer("uint64_t[]", o), ffi.from_buffer("uint32_t[]", ln),
                                       1, recs, alerts, ext, ffi.new("struct ingest_eve_wire[1]"), 1)
            lib.ingest_eve_parse_ts(c, n, ffi.new("int64_t *"))
        finally:
            g.close()


def main(argv: list[str]) -> int:
    kind, files = argv[0], argv[1:]
    fn = {"unified2": _unified2, "alertpkt": _alertpkt, "eve": _eve}[kind]
    for f in files:
        fn(pathlib.Path(f).read_bytes())
    print(f"ok {len(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
