"""The bench's ratios survive a peer measured at zero CPU: a short run on a
fast machine can finish below the kernel's CPU tick (CI saw exactly this:
ZeroDivisionError in the paired CPU ratio of a 300-alert run)."""

from __future__ import annotations

import math

import pytest

from ingest.bench.common import paired_median, ratio
from ingest.bench.harness import Run, _report, format_report, goals


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
    assert rows["ingest-null"]["paired_rate_vs_a"] == 1.0
    text = format_report(rep)
    assert "unpinned" in text  # every row's placement is said


def test_headline_ratios_are_paired_not_best_of_n() -> None:
    """A receiver's lucky round must not be compared with another's lucky
    round: (c)/(a) within each round is 0.5 and 0.6, whatever the best runs
    of each would say (best (c) 90/s against best (a) 100/s: 0.9)."""
    def run(receiver: str, e2e: float, cpu: float) -> Run:
        return Run(receiver, sent=90, received=90, send_s=0.5, e2e_s=e2e, cpu_s=cpu, maxrss_kb=1024)

    runs = {"recv_count": [run("recv_count", 0.9, 0.1), run("recv_count", 1.5, 0.1)],
            "ingest-null": [run("ingest-null", 1.8, 0.2), run("ingest-null", 2.5, 0.3)]}
    rep = _report("snort", 90, 2, None, runs, None, None, "same")
    r = {x["receiver"]: x for x in rep["rows"]}["ingest-null"]
    assert r["paired_rate_vs_a"] == pytest.approx(0.55)
    assert r["paired_rate_vs_a_range"] == pytest.approx([0.5, 0.6])
    assert r["paired_cpu_vs_a"] == pytest.approx(2.5)
    assert "rate_vs_a" not in r and "cpu_vs_a" not in r
    assert r["alerts_per_s"] == pytest.approx((90 / 1.8 + 90 / 2.5) / 2)  # the median of two
    assert r["placement"].startswith("same core")
    text = format_report(rep | {"goals": goals(rep)})
    assert "0.55 (0.50-0.60)" in text
    assert "NOT met  1 socket: (c) null: >= 0.9 of the bare C receiver (a) [same core" in text
    assert "goals (issue 10" in text


def test_multisocket_goals_say_met_or_not_per_socket_count() -> None:
    from ingest.bench.multisocket import format_multisocket
    from ingest.bench.multisocket import goals as ms_goals

    def row(n: int, receiver: str, v: float) -> dict:
        return {"sockets": n, "receiver": receiver, "label": receiver, "alerts": n, "alerts_per_s": 1.0,
                "cpu_us_per_alert": 1.0, "peak_rss_mib": 1.0, "completion": "stats line",
                "paired_rate_vs_bare": v, "paired_rate_vs_bare_range": [v, v],
                "paired_cpu_vs_bare": float("nan"), "paired_cpu_vs_bare_range": [0, 0]}

    ms = {"placement": "unpinned", "count_per_socket": 1, "repeat": 1, "sender": "s",
          "loadavg_1min": [0.0, 0.0],
          "rows": [row(2, "x", 0.1), row(4, "x", 0.85), row(8, "x", 0.79), row(8, "y", float("nan"))]}
    got = {(g[0].split(":")[0], g[1]) for g in ms_goals(ms)}
    assert got == {("4 sockets", True), ("8 sockets", False)}  # no goal at 2, none from a NaN
    assert all(g[2].endswith("a first look, not the verdict") for g in ms_goals(ms))  # one round
    assert not any("first look" in g[2] for g in ms_goals(ms | {"repeat": 3}))
    assert any("0.85 (0.85-0.85)" in line for line in format_multisocket(ms))


@pytest.mark.parametrize(("argv", "want"), [
    (["--quick"], ((4, 8), 2_000, ("ingest-py",), 1)),
    ([], ((1, 2, 4, 8), 20_000, ("ingest-c", "ingest-py"), 3)),
    (["--sockets", "2,8", "--multisocket-alerts", "50", "--multisocket-receivers", "ingest-c"],
     ((2, 8), 50, ("ingest-c",), 3)),
    (["--quick", "--no-multisocket"], ((), 2_000, ("ingest-py",), 1)),
])
def test_bench_cli_multisocket_plan(monkeypatch, argv: list[str], want: tuple) -> None:
    """--quick measures the two goal rows in one short round; the full run
    every socket count with both readers (what run_bench is asked)."""
    import ingest.bench as bench_mod
    from ingest.bench.common import BenchError
    from ingest.cli import build_parser

    seen: dict = {}

    def fake(**kw):
        seen.update(kw)
        raise BenchError("stop here")

    monkeypatch.setattr(bench_mod, "run_bench", fake)
    args = build_parser().parse_args(["bench", *argv])
    assert bench_mod.run(args) == 1
    assert (seen["multisocket_sockets"], seen["multisocket_alerts"], seen["multisocket_receivers"],
            seen["multisocket_repeat"]) == want
