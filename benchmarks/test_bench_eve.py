"""Micro-benchmark of the EVE batch decoder (pytest-benchmark; not collected by default).

    PYTHONPATH=. python -m pytest benchmarks/test_bench_eve.py --benchmark-only

One batch of 4096 real ~1.1 KB Suricata alert lines (from the shared data,
else built-in ones), decoded by: the C extractor alone; the whole
EveDecoder.decode (alerts, texts, verbatim pool); orjson.loads per line;
json.loads per line (the naive baseline).  Lines/s = 4096 / mean.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import orjson
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_eve import corpus  # noqa: E402
from ingest._native import ffi, lib  # noqa: E402

from ingest import batch as B  # noqa: E402
from ingest.eve import EveDecoder, split_lines  # noqa: E402

N = 4096


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    path, _avg = corpus(tmp_path_factory.mktemp("eve"))
    base = path.read_bytes().splitlines(keepends=True)
    data = b"".join(base[i % len(base)] for i in range(N))
    offs, lens, _ = split_lines(data, cap=N)
    assert len(offs) == N
    return data, offs, lens


def test_c_extractor(benchmark, lines):
    data, offs, lens = lines
    dec = EveDecoder(N)
    alerts = np.empty(N, B.ALERT_DTYPE)
    args = (ffi.from_buffer("uint8_t[]", data), len(data), ffi.from_buffer("uint64_t[]", offs),
            ffi.from_buffer("uint32_t[]", lens), ffi.NULL, N, ffi.NULL, 0, dec._c_recs,
            ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True), dec._c_ext, N)
    assert benchmark(lib.ingest_eve_decode, *args) == N


def test_eve_decoder(benchmark, lines):
    data, offs, lens = lines
    dec = EveDecoder(N)
    res = benchmark(dec.decode, data, offs, lens)
    assert len(res.batch) == N


def test_orjson_per_line(benchmark, lines):
    parts = lines[0].splitlines()
    out = benchmark(lambda: [orjson.loads(x) for x in parts])
    assert len(out) == N


def test_stdlib_json_per_line(benchmark, lines):
    parts = lines[0].splitlines()
    out = benchmark(lambda: [json.loads(x) for x in parts])
    assert len(out) == N
