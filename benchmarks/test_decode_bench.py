"""Micro-benchmarks of the Alertpkt batch decoder on slots already in memory.

    pytest benchmarks/test_decode_bench.py                      # run
    pytest benchmarks/ --benchmark-autosave                     # keep a baseline
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=mean:10%

Each round decodes one batch of NSLOTS received slots (templates from
``ingest gen``: a realistic mix of IPv4/IPv6/ICMP/802.1Q); alerts/s is
NSLOTS / mean time, reported in ``extra_info``.  The target for the C decoder
is at least 2 M alerts/s on one core (issue 2): it must touch only the headers
it needs, never the 64 KiB packet area.  No assertion is made on time.
"""

from __future__ import annotations

import numpy as np
import pytest

from ingest import alertpkt, gen
from ingest.native import ffi, lib

NSLOTS = 256


def _loaded(kind: str) -> alertpkt.SlotDecoder:
    templates, _ = gen.build_templates(kind, NSLOTS, seed=1, base_time=1_795_000_000)
    dec = alertpkt.SlotDecoder(NSLOTS)
    tlen = templates.shape[1]
    dec.slots[:, :tlen] = templates
    dec.lens[:] = tlen
    return dec


def _rate(benchmark) -> None:
    benchmark.extra_info["alerts_per_round"] = NSLOTS
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None and stats.mean > 0:
        benchmark.extra_info["alerts_per_s"] = NSLOTS / stats.mean


@pytest.mark.parametrize("kind", ["snort", "snort-appid", "barnyard2"])
def test_c_decoder(benchmark, kind: str) -> None:
    """ingest_alertpkt_decode alone: slots -> canonical alert columns."""
    dec = _loaded(kind)
    out = np.empty(NSLOTS, dtype=alertpkt.B.ALERT_DTYPE)
    args = (ffi.from_buffer("uint8_t[]", dec.buf), dec.slot_size, NSLOTS,
            ffi.from_buffer("uint32_t[]", dec.lens), ffi.from_buffer("uint8_t[]", dec.flags),
            ffi.from_buffer("struct ingest_alert[]", out, require_writable=True), NSLOTS,
            ffi.new("uint32_t[]", NSLOTS), ffi.new("uint8_t[]", NSLOTS),
            # the message keys the runtime asks for (one hash per alertmsg)
            ffi.new("uint64_t[]", NSLOTS), ffi.new("uint32_t[]", NSLOTS))
    n = benchmark(lib.ingest_alertpkt_decode, *args)
    _rate(benchmark)
    assert n == NSLOTS


@pytest.mark.parametrize("kind", ["snort", "barnyard2"])
def test_slot_decoder(benchmark, kind: str) -> None:
    """SlotDecoder.decode: the C decoder plus the batch's string table, as the
    runtime calls it."""
    dec = _loaded(kind)
    result = benchmark(dec.decode, NSLOTS)
    _rate(benchmark)
    assert len(result.batch) == NSLOTS and not result.rejected
