"""No C decoder reads past the length it is given.

Each input is placed so that its last byte is the last readable one (the next
page is PROT_NONE, as after a memory-mapped file whose size is a multiple of
the page size), in a child process: an over-read is a SIGSEGV there, in any
build, and fails the test.
"""

from __future__ import annotations

import gzip
import pathlib
import struct

import pytest

from ..conftest import SHARED
from .guardpage import run_child

REPRO = SHARED.parent / "repro"

# Every record type a writer produces, with a length plausible for it: the
# resynchroniser's checks of packet (2, 3) and extra-data (110) headers look
# into the body, the others only at the header.
_PLAUSIBLE = {2: 28 + 64, 3: 28 + 64, 110: 32 + 4, 7: 52, 72: 76, 104: 60, 105: 84, 111: 124,
              112: 148, 114: 160}


def _synthetic(tmp: pathlib.Path) -> list[pathlib.Path]:
    """A bad header (insane length), filler, then a plausible header cut at
    every length from 0 to 40 bytes, at the very end of the buffer."""
    out = []
    bad = struct.pack(">II", 104, 0xFFFFFFFF) + bytes(24)
    for rtype, length in _PLAUSIBLE.items():
        body = struct.pack(">IIIIIII", 4, length, 0, 0, 0, 0, length - 28)  # both readings
        full = struct.pack(">II", rtype, length) + body
        blob = b"".join(bad + bytes(k % 7) + full[:k] for k in range(0, 41))
        p = tmp / f"synthetic-{rtype}.u2"
        p.write_bytes(blob)
        out.append(p)
    return out


def _check(kind: str, files: list[pathlib.Path]) -> None:
    r = run_child(kind, files)
    assert r.returncode == 0, (f"{kind} decoder died with {r.returncode} (a read past the end of the "
                               f"buffer?)\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")


def test_unified2_resync_never_reads_past_the_buffer(tmp_path):
    # The class of u2_resync_guardpage.py: a resynchronisation that meets a
    # plausible header in the last bytes of a mapped file.
    _check("unified2", _synthetic(tmp_path))


def test_unified2_repro_files_at_a_page_end():
    files = [REPRO / "u2_resync_overread_min.u2", REPRO / "u2_resync_overread.bin",
             *sorted(REPRO.glob("unified2-unpatched-crash-*"))]
    files = [f for f in files if f.exists()]
    if not files:
        pytest.skip(f"reproducers not present: {REPRO}")
    _check("unified2", files)


def test_unified2_real_spools_at_a_page_end():
    files = [SHARED / "real" / "snort-2.9.19" / "snort.u2.1796162408",
             SHARED / "real" / "snort-3.12.2.0" / "unified2.log"]
    files = [f for f in files if f.exists()]
    if not files:
        pytest.skip("shared data not present")
    _check("unified2", files)


def test_alertpkt_reads_only_its_datagram(tmp_path):
    # Every variant, with every header offset pointing at the last bytes.
    files = []
    from ingest.encode import encode_alertpkt

    for variant in ("snort", "snort-appid", "barnyard2", "barnyard2-32"):
        for caplen in (0, 1, 40, 1514, 65535, 0xFFFFFFFF):
            top = min(caplen, 65535) - 1
            d = encode_alertpkt(variant, packet=b"\x46\x60" * 32, caplen=caplen, val=0,
                                nethdr=max(0, top), transhdr=max(0, top - 1), dlthdr=max(0, top - 13),
                                data=max(0, top))
            p = tmp_path / f"{variant}-{caplen}.bin"
            p.write_bytes(d)
            files.append(p)
    _check("alertpkt", files)


def test_eve_reads_only_its_records(tmp_path):
    files = []
    cases = [b'{"event_type":"alert","timestamp":"2024-01-01T00:00:00.000000+0000","alert":{"signature_id":1,'
             b'"signature":"\\u00e9t\\u00e9 \xc3\xa9","category":"x"},"src_ip":"10.0.0.1","dest_ip":"::1"}',
             b'{"a":"\\u12', b'{"a":1e', b'[' * 200, b'"\xf0\x9f\x98', b'{"timestamp":"2024-01-01T00:00:00.1',
             # ingest's own rendered alert (the NATS wire decoder reads its "ingest" member)
             b'{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"alert","alert":{"gid":1,'
             b'"signature_id":1,"rev":1,"severity":1,"references":["u"]},"ingest":{"source":"snort",'
             b'"sensor_id":0,"event_id":1,"class_id":0,"app_name":"x\\u00e9","packet_anomaly":true}}']
    for i, c in enumerate(cases):
        p = tmp_path / f"eve-{i}.json"
        p.write_bytes(c)
        files.append(p)
    big = SHARED / "real" / "suricata-7.0.0" / "big-eve.json.gz"
    if big.exists():
        p = tmp_path / "big.json"
        p.write_bytes(gzip.open(big).read()[:60000])
        files.append(p)
    _check("eve", files)
