"""The numpy dtype must match the C struct byte for byte."""

import numpy as np
from ingest._native import ffi, lib

from ingest import batch as B


def test_dtype_matches_c_struct():
    assert B.ALERT_DTYPE.itemsize == ffi.sizeof("struct ingest_alert")
    for name in B.ALERT_DTYPE.names:
        assert B.ALERT_DTYPE.fields[name][1] == ffi.offsetof("struct ingest_alert", name), name
    c_fields = [name for name, _ in ffi.typeof("struct ingest_alert").fields]
    assert list(B.ALERT_DTYPE.names) == c_fields


def test_constants_match_c():
    assert (B.SRC_SNORT, B.SRC_SNORT_APPID, B.SRC_BARNYARD2, B.SRC_BARNYARD2_32,
            B.SRC_UNIFIED2, B.SRC_EVE) == (
        lib.INGEST_SRC_SNORT, lib.INGEST_SRC_SNORT_APPID, lib.INGEST_SRC_BARNYARD2,
        lib.INGEST_SRC_BARNYARD2_32, lib.INGEST_SRC_UNIFIED2, lib.INGEST_SRC_EVE)
    assert (B.F_PACKET, B.F_ADDRS, B.F_PORTS, B.F_ICMP, B.F_VLAN, B.F_PKT_ANOMALY) == (
        lib.INGEST_F_PACKET, lib.INGEST_F_ADDRS, lib.INGEST_F_PORTS, lib.INGEST_F_ICMP,
        lib.INGEST_F_VLAN, lib.INGEST_F_PKT_ANOMALY)
    assert (B.ACTION_ALLOWED, B.ACTION_BLOCKED) == (lib.INGEST_ACTION_ALLOWED, lib.INGEST_ACTION_BLOCKED)


def test_abi_version_stamped():
    import ingest._native as n

    from ingest import native

    assert n.lib.ingest_abi_version() == native.ABI_VERSION


def test_concat_rebases_string_indices():
    a = B.empty(2)
    a["msg_idx"] = [0, -1]
    b = B.empty(1)
    b["msg_idx"] = [0]
    b["app_idx"] = [1]
    extra = np.array([0], np.int32)
    merged = B.AlertBatch.concat([
        B.AlertBatch(a, ["first"], "x"),
        B.AlertBatch(b, ["second", "app"], "x", extra=extra),
    ])
    assert merged.strings == ["first", "second", "app"]
    assert merged.alerts["msg_idx"].tolist() == [0, -1, 1]
    assert merged.alerts["app_idx"].tolist() == [-1, -1, 2]
    assert merged.extra.tolist() == [-1, -1, 1]
    assert merged.raw is None
