"""Address text from the C core (csrc/jsonw.h, no printf): RFC 5952 for
IPv6, checked against Python's ipaddress and the C library's inet_ntop over
many addresses, in both the JSON renderer and the store's text columns."""

from __future__ import annotations

import ipaddress
import json
import socket

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.render import format_addrs_ascii, render_json

MAPPED = bytes(10) + b"\xff\xff"

# groups drawn mostly from zero and a few edge values, so runs of zeros (and
# ties between equal runs) are common; the rest uniformly
_group = st.one_of(st.just(0), st.just(0), st.sampled_from([1, 0xF, 0x10, 0xFF, 0x100, 0xFFF, 0x1000, 0xFFFF]),
                   st.integers(0, 0xFFFF))
v6_addrs = st.one_of(
    st.lists(_group, min_size=8, max_size=8).map(lambda g: b"".join(x.to_bytes(2, "big") for x in g)),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=4, max_size=4).map(lambda q: MAPPED + q),
)


def _texts(addrs: list[bytes], ip_ver: int) -> tuple[list[str], list[str]]:
    """(store text, JSON src_ip) of each address as an alert of ip_ver."""
    a = B.empty(len(addrs))
    a["src_addr"] = np.frombuffer(b"".join(addrs), dtype="V16")
    a["dst_addr"] = a["src_addr"]
    a["ip_ver"] = ip_ver
    a["flags"] = B.F_ADDRS
    src, dst = format_addrs_ascii(a)
    assert src.tolist() == dst.tolist()
    lines = render_json(B.AlertBatch(a)).splitlines()
    return [s.decode() for s in src.tolist()], [json.loads(x)["src_ip"] for x in lines]


def _expected_v6(raw: bytes) -> str:
    if raw.startswith(MAPPED):
        # RFC 5952 section 5; ipaddress writes this form only from 3.13 on
        return socket.inet_ntop(socket.AF_INET6, raw)
    return str(ipaddress.IPv6Address(raw))


@settings(max_examples=150, deadline=None)
@given(st.lists(v6_addrs, min_size=1, max_size=64))
@example([bytes(16), bytes(15) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(12), MAPPED + bytes(4),
          # ties: the first of two equal runs; a lone zero group is not compressed
          b"\x20\x01" + bytes(4) + b"\x00\x01" + bytes(4) + b"\x00\x01\x00\x01",
          b"\x20\x01\x0d\xb8\x00\x00\x00\x01\x00\x01\x00\x01\x00\x01\x00\x01",
          bytes(12) + b"\x01\x02\x03\x04", b"\xfe\x80" + bytes(13) + b"\x01",
          b"\xff" * 16, bytes(10) + b"\xff\xfe" + bytes(4)])
def test_ipv6_text_is_rfc5952(addrs):
    store, js = _texts(addrs, 6)
    for raw, s, j in zip(addrs, store, js, strict=True):
        want = _expected_v6(raw)
        assert s == want == j, raw.hex()
        assert ipaddress.IPv6Address(s).packed == raw  # round trip
        # inet_ntop agrees too, except that it writes the deprecated
        # IPv4-compatible ::/96 in mixed notation (::1.2.3.4)
        ntop = socket.inet_ntop(socket.AF_INET6, raw)
        if not (raw[:12] == bytes(12) and "." in ntop):
            assert s == ntop, raw.hex()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=64))
def test_ipv4_text(quads):
    store, js = _texts([MAPPED + q for q in quads], 4)
    want = [socket.inet_ntop(socket.AF_INET, q) for q in quads]
    assert store == want == js


def test_mapped_without_version_stays_dotted():
    """Rows with no ip_ver (older producers) keep their IPv4 text."""
    store, js = _texts([MAPPED + b"\x0a\x00\x00\x01"], 0)
    assert store == js == ["10.0.0.1"]
