"""base64, the JSON renderer's packet encoding (csrc/jsonw.h ``jw_b64``),
against Python's binascii in the same run.

Three encoders over the same random bytes, one call per packet, rounds
interleaved; ratios are paired (median of the within-round ratios, range):

* ``jw_b64`` as the C core has it (two output characters per lookup in a
  4096-entry pair table), compiled from csrc/jsonw.h with gcc at run time;
* the 6-bit loop it replaced (one lookup per character), same compiler;
* ``binascii.b2a_base64(data, newline=False)`` (what ``base64.b64encode``
  calls), one call per packet.

    python -m benchmarks.bench_base64 [--rounds 5]
"""

from __future__ import annotations

import argparse
import binascii
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CSRC = Path(__file__).resolve().parent.parent / "csrc"

SOURCE = r"""
#include "jsonw.h"
/* the loop jw_b64 had before the pair table (one lookup per character) */
static void b64_6bit(struct jsonw *w, const uint8_t *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!jw_room(w, (n + 2) / 3 * 4 + 2))
        return;
    uint8_t *o = w->p;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        o[0] = (uint8_t)tab[v >> 18];
        o[1] = (uint8_t)tab[(v >> 12) & 63];
        o[2] = (uint8_t)tab[(v >> 6) & 63];
        o[3] = (uint8_t)tab[v & 63];
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        o[0] = (uint8_t)tab[v >> 18];
        o[1] = (uint8_t)tab[(v >> 12) & 63];
        o[2] = i + 1 < n ? (uint8_t)tab[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    *o++ = '"';
    w->p = o;
}
/* reps packets of n bytes each, from consecutive slices of s (reps * n bytes) */
long enc(int which, const uint8_t *s, size_t n, long reps, uint8_t *out, size_t cap)
{
    struct jsonw w = jw_init(out, cap);
    for (long r = 0; r < reps; r++) {
        w = jw_init(out, cap);
        if (which)
            jw_b64(&w, s + (size_t)r * n, n);
        else
            b64_6bit(&w, s + (size_t)r * n, n);
    }
    return w.full ? -1 : (long)(w.p - out);
}
"""


def build(directory: str) -> ctypes.CDLL:
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        raise SystemExit("bench_base64: no C compiler")
    src = Path(directory) / "b64.c"
    src.write_text(SOURCE)
    so = Path(directory) / "b64.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{CSRC}", str(src), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.enc.restype = ctypes.c_long
    lib.enc.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_char_p,
                        ctypes.c_size_t]
    return lib


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=int, default=16, help="bytes encoded per encoder per round")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        lib = build(d)
        print(f"python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}; "
              f"{ns.mb} MB per encoder per round, {ns.rounds} rounds, interleaved")
        print(f"{'packet':>8s} {'pair table':>12s} {'6-bit loop':>12s} {'binascii':>12s}"
              f"   pair/binascii (range)   pair/6-bit (range)")
        for size in (60, 590, 1514, 65535):
            reps = max(1, ns.mb * 1_000_000 // size)
            data = os.urandom(size * reps)
            out = ctypes.create_string_buffer(size * 2 + 16)
            # every encoder agrees with binascii, tail padding included
            for which in (0, 1):
                k = lib.enc(which, data, size, 1, out, len(out))
                assert out.raw[1: k - 1] == binascii.b2a_base64(data[:size], newline=False)
            views = [memoryview(data)[i * size: (i + 1) * size] for i in range(reps)]
            rates: dict[str, list[float]] = {"pair": [], "6bit": [], "py": []}
            for rnd in range(ns.rounds):
                order = ["pair", "6bit", "py"] if rnd % 2 == 0 else ["py", "6bit", "pair"]
                for who in order:
                    t0 = time.perf_counter()
                    if who == "py":
                        b2a = binascii.b2a_base64
                        for v in views:
                            b2a(v, newline=False)
                    else:
                        lib.enc(1 if who == "pair" else 0, data, size, reps, out, len(out))
                    rates[who].append(size * reps / max(time.perf_counter() - t0, 1e-9) / 1e6)

            def paired(a: str, b: str, rates: dict[str, list[float]] = rates) -> str:
                r = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
                return f"{statistics.median(r):5.2f} ({min(r):.2f}-{max(r):.2f})"

            med = {k: statistics.median(v) for k, v in rates.items()}
            print(f"{size:6d} B {med['pair']:7.0f} MB/s {med['6bit']:7.0f} MB/s {med['py']:7.0f} MB/s"
                  f"   {paired('pair', 'py'):>20s}   {paired('pair', '6bit'):>18s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
