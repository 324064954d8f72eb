"""The bench's ratios survive a peer measured at zero CPU: a short run on a
fast machine can finish below the kernel's CPU tick (CI saw exactly this:
ZeroDivisionError in the paired CPU ratio of a 300-alert run)."""

from __future__ import annotations

import math

import pytest

from ingest.bench.common import paired_median, ratio
from ingest.bench.harness import Run, _report, format_report


def test_ratio_and_paired_median_skip_a_zero_peer() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(3.0, 0.0))
    assert paired_median([(2.0, 1.0), (9.0, 0.0), (4.0, 1.0)]) == 3.0
    assert math.isnan(paired_median([(2.0, 0.0)]))
    assert math.isnan(paired_median([]))


def test_report_with_a_peer_at_zero_cpu_formats() -> None:
    def run(receiver: str, cpu: float) -> Run:
        return Run(receiver, sent=300, received=300, send_s=0.01, e2e_s=0.02, cpu_s=cpu,
                   maxrss_kb=1024)

    runs = {"recv_count": [run("recv_count", 0.0), run("recv_count", 0.01)],
            "naive_recv": [run("naive_recv", 0.0), run("naive_recv", 0.0)],
            "ingest-null": [run("ingest-null", 0.02), run("ingest-null", 0.03)]}
    rep = _report("snort", 300, 2, None, runs, None, None)
    rows = {r["receiver"]: r for r in rep["rows"]}
    assert rows["ingest-null"]["paired_cpu_vs_a"] == pytest.approx(3.0) # only the round with a non-zero peer
    assert math.isnan(rows["ingest-null"]["paired_cpu_vs_b"])
    assert math.isnan(rows["ingest-null"]["cpu_vs_b"])
    assert rows["ingest-null"]["rate_vs_a"] == 1.0
    text = format_report(rep)
    assert "nan" in text
