"""The C core's interface: one source of declarations, checked inputs."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from ingest import _build
from ingest import batch as B
from ingest.native import ABI_VERSION, ffi, lib


def test_cffi_declarations_are_read_from_the_header():
    """_build.py repeats nothing: every declaration cffi sees is the header's,
    and every constant's value comes from the compiler."""
    text = _build.HEADER.read_text()
    section = text[text.index("cffi: begin"): text.index("cffi: end")]
    cdefs = _build.cdefs()
    for name, value in re.findall(r"^#define (INGEST_\w+)[ \t]+([^/\n]+)", section, re.M):
        assert f"#define {name} ..." in cdefs
        value = value.strip()
        if re.fullmatch(r"\(?-?\d+u?\)?|0x[0-9a-fA-F]+u?", value):
            assert getattr(lib, name) == int(value.strip("()u"), 0), name
    for fn in re.findall(r"^[a-z][\w ]*?\**\b(ingest_\w+)\(", section, re.M):
        assert hasattr(lib, fn), fn
    for struct in re.findall(r"^struct (ingest_\w+) \{", section, re.M):
        assert ffi.sizeof(f"struct {struct}") > 0
    assert "#define INGEST_ABI_VERSION ..." in cdefs and lib.ingest_abi_version() == ABI_VERSION
    # the builder itself holds no declaration
    assert "struct ingest_alert {" not in pathlib.Path(_build.__file__).read_text()


def test_builder_refuses_a_header_cffi_cannot_take(tmp_path):
    h = tmp_path / "ingest.h"
    h.write_text("/* ---- cffi: begin ---- */\n#if X\nint f(void);\n#endif\n/* ---- cffi: end ---- */\n")
    with pytest.raises(SystemExit, match="cffi cannot take"):
        _build.cdefs(h)
    h.write_text("int f(void);\n")
    with pytest.raises(SystemExit, match="markers"):
        _build.cdefs(h)


def _table(pool: bytes, off: list[int], lens: list[int], pool_len: int | None = None):
    t = ffi.new("struct ingest_strtab *")
    keep = [np.frombuffer(pool or b"\0", np.uint8), np.array(off, np.uint32), np.array(lens, np.uint32)]
    t.pool = ffi.from_buffer("uint8_t[]", keep[0])
    t.off = ffi.from_buffer("uint32_t[]", keep[1])
    t.len = ffi.from_buffer("uint32_t[]", keep[2])
    t.pool_len = len(pool) if pool_len is None else pool_len
    t.count = len(off)
    return t, keep


@pytest.mark.parametrize("off,lens", [([0, 4], [4, 1]), ([5], [0]), ([0], [6]), ([0xFFFFFFFF], [2])])
def test_formatter_refuses_a_string_outside_its_pool(off, lens):
    t, keep = _table(b"abcd", off, lens)
    alerts = np.zeros(1, dtype=B.ALERT_DTYPE)
    alerts["msg_idx"] = len(off) - 1
    out = np.zeros(4096, np.uint8)
    rc = lib.ingest_format_json(ffi.from_buffer("struct ingest_alert[]", alerts), 1, t, ffi.NULL,
                                lib.INGEST_FMT_EVE, ffi.from_buffer("uint8_t[]", out), len(out), ffi.NULL)
    assert rc == lib.INGEST_EINVAL


def test_formatter_never_writes_past_its_buffer():
    t, keep = _table(b"x" * 300, [0], [300])
    alerts = np.zeros(3, dtype=B.ALERT_DTYPE)
    alerts["msg_idx"] = 0
    alerts["flags"] = B.F_ADDRS | B.F_PORTS | B.F_VLAN
    c_alerts = ffi.from_buffer("struct ingest_alert[]", alerts)
    full = np.zeros(1 << 16, np.uint8)
    n = lib.ingest_format_json(c_alerts, 3, t, ffi.NULL, lib.INGEST_FMT_EVE,
                               ffi.from_buffer("uint8_t[]", full), len(full), ffi.NULL)
    assert n > 0
    for cap in range(0, n, 7):
        out = np.full(cap + 64, 0xAA, np.uint8)
        rc = lib.ingest_format_json(c_alerts, 3, t, ffi.NULL, lib.INGEST_FMT_EVE,
                                    ffi.from_buffer("uint8_t[]", out), cap, ffi.NULL)
        assert rc == lib.INGEST_ENOSPC
        assert (out[cap:] == 0xAA).all(), f"wrote past {cap}"
