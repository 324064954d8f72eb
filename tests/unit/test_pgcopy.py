"""The PostgreSQL binary COPY writer (csrc/pgcopy.c through
ingest.sinks.pgcopy): every row it writes reads back, field by field, as
the store columns say (checked against a reader written from PostgreSQL's
documentation of the format), and every caller mistake is refused, never
read or written out of bounds."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.mapping import Enricher
from ingest.native import ffi, lib
from ingest.sinks import pgcopy
from ingest.sinks import rows as R
from ingest.sinks.postgresql import ALERT_TYPES


def read_copy(data: bytes, types: list[str]) -> list[tuple]:
    """PostgreSQL's binary COPY format, read back (its documentation, "COPY",
    "Binary Format")."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\0"
    flags, ext = struct.unpack_from(">ii", data, 11)
    assert flags == 0 and ext == 0
    at, out = 19, []
    while True:
        (n,) = struct.unpack_from(">h", data, at)
        at += 2
        if n == -1:
            assert at == len(data), "bytes after the trailer"
            return out
        assert n == len(types)
        row = []
        for t in types:
            (ln,) = struct.unpack_from(">i", data, at)
            at += 4
            if ln == -1:
                row.append(None)
                continue
            raw = data[at:at + ln]
            assert len(raw) == ln
            at += ln
            if t == "int8":
                assert ln == 8
                row.append(struct.unpack(">q", raw)[0])
            elif t == "int4":
                assert ln == 4
                row.append(struct.unpack(">i", raw)[0])
            else:
                row.append(raw.decode("utf-8"))
        out.append(tuple(row))


def _item(n: int, rng: np.random.Generator):
    a = B.empty(n)
    a["ts_us"] = rng.integers(-(1 << 62), 1 << 62, n)
    a["flow_id"] = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    for f in ("sensor_id", "event_id", "gid", "sid", "rev", "class_id", "priority"):
        a[f] = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    for f in ("src_port", "dst_port", "vlan"):
        a[f] = rng.integers(0, 1 << 16, n)
    a["source"] = rng.integers(0, 8, n)
    a["action"] = rng.integers(0, 4, n)
    a["proto"] = rng.integers(0, 256, n)
    a["ip_ver"] = rng.choice([4, 6], n)
    a["flags"] = rng.integers(0, 64, n)
    a["src_addr"] = rng.integers(0, 256, (n, 16), dtype=np.uint8).view("V16").reshape(-1)
    a["dst_addr"] = rng.integers(0, 256, (n, 16), dtype=np.uint8).view("V16").reshape(-1)
    strings = ["sig \u00e9\u4e2d", "app\0x", "", "cat"]
    a["msg_idx"] = rng.integers(-1, len(strings), n)
    a["app_idx"] = rng.integers(-1, len(strings), n)
    keys = rng.integers(-(1 << 63), 1 << 63, n, dtype=np.int64)
    keys[rng.random(n) < 0.3] = 0
    b = B.AlertBatch(a, strings, "t", keys=keys)
    return Enricher({i: f"class \u00fc{i}" for i in range(0, 40, 3)}).apply(b)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(0, 2**32 - 1))
@example(1, 0)  # a text table holding only "": no bytes, still a table
def test_alert_rows_read_back_as_the_store_columns(n, seed):
    item = _item(n, np.random.default_rng(seed))
    data = bytes(pgcopy.encode(R.alert_arrays(item, "sensor.1"), ALERT_TYPES))
    assert read_copy(data, list(ALERT_TYPES)) == R.alert_rows(item, "sensor.1")


def test_every_kind_and_null():
    ints = R.IntColumn(np.array([1, -(1 << 63), (1 << 63) - 1], np.int64), np.array([1, 1, 0], bool))
    small = R.IntColumn(np.array([-(1 << 31), 0, (1 << 31) - 1], np.int64))
    text = R.TextColumn(np.array([1, -1, 0], np.int32), R.TextTable(["a\0b", "\u20ac"]))
    ascii_ = R.AsciiColumn(np.array([b"10.0.0.1", b"", b"x" * 46], "S46"), np.array([1, 1, 0], bool))
    data = bytes(pgcopy.encode([ints, small, text, ascii_], ["int8", "int4", "text", "text"]))
    assert read_copy(data, ["int8", "int4", "text", "text"]) == [
        (1, -(1 << 31), "\u20ac", "10.0.0.1"),
        (-(1 << 63), 0, None, ""),
        (None, (1 << 31) - 1, "a\ufffdb", None)]


def test_no_rows_is_header_and_trailer():
    data = bytes(pgcopy.encode([R.IntColumn(np.zeros(0, np.int64))], ["int8"]))
    assert data == b"PGCOPY\n\xff\r\n\0" + bytes(8) + b"\xff\xff"
    assert read_copy(data, ["int8"]) == []


def test_an_int4_out_of_range_is_the_datas_fault():
    col = R.IntColumn(np.array([1, 1 << 31], np.int64))
    with pytest.raises(OverflowError, match="row 1"):
        pgcopy.encode([col], ["int4"])


def test_wrong_types_are_refused():
    with pytest.raises(ValueError, match="cannot be text"):
        pgcopy.encode([R.IntColumn(np.zeros(1, np.int64))], ["text"])
    with pytest.raises(ValueError, match="cannot be int8"):
        pgcopy.encode([R.TextColumn(np.zeros(1, np.int32), R.TextTable(["a"]))], ["int8"])
    with pytest.raises(ValueError, match="values, not"):
        pgcopy.encode([R.IntColumn(np.zeros(1, np.int64)), R.IntColumn(np.zeros(2, np.int64))],
                      ["int8", "int8"])


def _raw_text_column(idx: list[int], data: bytes, off: list[int], lens: list[int]):
    """A C column descriptor with whatever numbers the caller gives."""
    keep = [np.array(idx, np.int32), np.frombuffer(data or b"\0", np.uint8),
            np.array(off, np.uint32), np.array(lens, np.uint32)]
    c = ffi.new("struct ingest_pgcol[]", 1)
    c[0].kind = lib.INGEST_PGCOL_TEXT
    c[0].values = ffi.from_buffer("int32_t[]", keep[0])
    c[0].tdata = ffi.from_buffer("uint8_t[]", keep[1])
    c[0].toff = ffi.from_buffer("uint32_t[]", keep[2])
    c[0].tlen = ffi.from_buffer("uint32_t[]", keep[3])
    c[0].tdata_len = len(data)
    c[0].tcount = len(off)
    return c, keep


@pytest.mark.parametrize("idx,data,off,lens", [
    ([2], b"ab", [0, 1], [1, 1]),          # an index past the table
    ([0], b"ab", [1], [2]),                # an entry running past tdata
    ([0], b"ab", [3], [0]),                # an entry starting past tdata
    ([0], b"ab", [0xFFFFFFFF], [2]),       # offset + length wrapping around
])
def test_c_refuses_text_outside_its_table(idx, data, off, lens):
    c, _keep = _raw_text_column(idx, data, off, lens)
    assert lib.ingest_pgcopy_size(c, 1, len(idx)) == lib.INGEST_EINVAL
    out = np.zeros(64, np.uint8)
    assert lib.ingest_pgcopy_encode(c, 1, len(idx), ffi.from_buffer("uint8_t[]", out), 64,
                                    ffi.NULL) == lib.INGEST_EINVAL


def test_c_never_writes_past_the_buffer():
    col = R.TextColumn(np.zeros(5, np.int32), R.TextTable(["hello world"]))
    full = bytes(pgcopy.encode([col], ["text"]))
    c, _keep = _raw_text_column([0] * 5, b"hello world", [0], [11])
    for cap in range(len(full)):
        out = np.full(len(full) + 8, 0xAA, np.uint8)
        rc = lib.ingest_pgcopy_encode(c, 1, 5, ffi.from_buffer("uint8_t[]", out), cap, ffi.NULL)
        assert rc == lib.INGEST_ENOSPC
        assert (out[cap:] == 0xAA).all(), cap
    out = np.zeros(len(full), np.uint8)
    assert lib.ingest_pgcopy_encode(c, 1, 5, ffi.from_buffer("uint8_t[]", out), len(full), ffi.NULL) == len(full)
    assert bytes(out) == full


def test_c_refuses_bad_descriptors():
    c = ffi.new("struct ingest_pgcol[]", 1)
    c[0].kind = 99
    assert lib.ingest_pgcopy_size(c, 1, 0) == lib.INGEST_EINVAL
    c[0].kind = lib.INGEST_PGCOL_INT8  # rows but no values
    assert lib.ingest_pgcopy_size(c, 1, 3) == lib.INGEST_EINVAL
    c[0].kind = lib.INGEST_PGCOL_FIXED  # width 0
    c[0].values = ffi.new("char[]", 4)
    assert lib.ingest_pgcopy_size(c, 1, 1) == lib.INGEST_EINVAL
    assert lib.ingest_pgcopy_size(c, lib.INGEST_PGCOPY_MAX_COLUMNS + 1, 0) == lib.INGEST_EINVAL


def test_psycopg_is_imported_only_for_a_postgresql_url(tmp_path):
    """The single-host path (the CLI, the SQLite store, a batch written)
    never imports psycopg: it is an optional extra."""
    import subprocess
    import sys

    from ..conftest import ROOT

    code = (
        "import asyncio, sys\n"
        "import ingest.cli, ingest.query, ingest.sinks.postgresql, ingest.sinks.pgcopy\n"
        "from ingest.sinks.base import open_sink\n"
        "from ingest.eve import decode_lines\n"
        "from ingest.mapping import Enricher\n"
        f"s = open_sink('sqlite:{tmp_path / 'a.db'}', sensor='x')\n"
        "item = Enricher().apply(decode_lines(b'{\"timestamp\": \"2024-01-01T00:00:00+0000\", "
        "\"event_type\": \"alert\", \"alert\": {\"signature_id\": 1}}\\n').batch)\n"
        "async def go():\n"
        "    await s.write(item)\n"
        "    await s.aclose()\n"
        "asyncio.run(go())\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
        "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
