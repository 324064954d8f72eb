"""The latency, loss, Unified2 and plot parts of ``ingest bench`` on tiny runs.

They check the structure of what is measured and that nothing is left
behind; they never look at how fast or how late anything was.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest import bench, gen
from ingest.bench import latency as bench_latency
from ingest.bench import plot as bench_plot
from ingest.bench import unified2 as bench_unified2

from ._util import procs_with_cwd_under
from .test_bench_harness import PEERS, _env, _wait_for

pytestmark = pytest.mark.slow
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def test_sender_stamps_its_monotonic_send_time(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    try:
        for kind in ("snort", "barnyard2"):
            templates, _ = gen.build_templates(kind, 4, seed=5)
            t0 = time.monotonic()
            res = gen.sender_for(kind, path, templates, mode="sendto",
                                 time_stamp=True).run(3, time_limit=10)
            t1 = time.monotonic()
            assert res.sent == 3
            off = gen.time_offset(kind)
            fmt = ">II" if gen.KINDS[kind][4] else "<II"
            for _ in range(3):
                dg = rx.recv(70000)
                sec, usec = struct.unpack_from(fmt, dg, off)
                assert t0 - 1e-5 <= sec + usec * 1e-6 <= t1 + 1e-5
    finally:
        rx.close()


def test_overlapping_stamps_are_refused(tmp_path: Path) -> None:
    templates, _ = gen.build_templates("snort", 2, seed=5)
    with pytest.raises(gen.GenError, match="bad arguments"):
        gen.Sender(str(tmp_path / "s"), templates, mode="mmsg", stamp_offset=100,
                   time_offset=98).run(1)


def test_jsonl_latencies_reads_lines_split_across_chunks() -> None:
    line = b'{"timestamp":"1970-01-01T00:16:40.250000+0000","event_type":"alert"}\n'
    data = line * 3
    chunks = [(1000.5, data[:30]), (1000.75, data[30:100]), (1001.0, data[100:])]
    lat = bench_latency.jsonl_latencies(chunks)
    # the first line completes in the 2nd chunk, the others in the 3rd
    assert lat.tolist() == pytest.approx([0.5, 0.75, 0.75])
    p = bench_latency.percentiles(lat)
    assert p["n"] == 3 and p["p50_ms"] <= p["p99_ms"] <= p["max_ms"]
    assert math.isnan(bench_latency.percentiles(np.array([]))["p50_ms"])


@needs_gcc
def test_latency_rows_have_sane_structure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    plan = bench_latency.LatencyPlan(rates=(400.0,), seconds=0.5)
    rep = bench.run_bench(receivers=(), repeat=1, peers_dir=PEERS, decoder=False,
                          latency=plan, time_limit=30)
    rows = rep["latency"]["rows"]
    assert [r["receiver"] for r in rows] == list(bench_latency.LATENCY_RECEIVERS)
    for r in rows:
        assert r["rate"] == 400.0 and r["alerts"] == r["n"] == 200
        assert 0 <= r["p50_ms"] <= r["p99_ms"] <= r["max_ms"] < 60_000
    assert list(tmp_path.iterdir()) == []
    text = bench.format_report(rep)
    assert "end-to-end latency" in text and "linger 0" in text


@needs_gcc
def test_loss_rows_account_for_every_alert(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    plan = bench_latency.LossPlan(rates=(2000.0,), seconds=0.2, kinds=("barnyard2",),
                                  tuned_qlen=64)
    rep = bench.run_bench(receivers=(), repeat=1, peers_dir=PEERS, decoder=False, loss=plan,
                          time_limit=30)
    loss = rep["loss"]
    assert loss["default_qlen"] == bench_latency.default_qlen()
    assert isinstance(loss["tuned_note"], str)
    qlens = {r["qlen"] for r in loss["rows"]}
    wrapper, _ = bench_latency.tuned_qlen_wrapper(64)
    assert qlens == ({loss["default_qlen"], 64} if wrapper else {loss["default_qlen"]})
    for r in loss["rows"]:
        assert r["attempted"] == 400 == r["sent"] + r["dropped"]
        assert r["received"] == r["sent"] and r["lost_after_accept"] == 0
        assert 0.0 <= r["loss_pct"] <= 100.0
        assert r["datagram_bytes"] == 1856
    assert list(tmp_path.iterdir()) == []
    assert "loss under Suricata live-mode semantics" in bench.format_report(rep)


def test_unified2_rows_read_the_same_events(tmp_path: Path) -> None:
    env = _env()
    rep = bench_unified2.run_unified2(tmp_path, env, alerts=600, repeat=1, time_limit=60)
    rows = {r["reader"]: r for r in rep["rows"]}
    assert "ingest" in rows
    if bench_unified2.idstools_version() is not None:
        assert rows["idstools"]["events"] == rows["ingest"]["events"] == 600
        assert "paired_rate_vs_b" in rows["ingest"]
    assert rows["ingest"]["events"] == 600 and rows["ingest"]["peak_rss_mib"] > 0
    assert list(tmp_path.iterdir()) == []  # the spool file is removed


def _fake_report() -> dict:
    lat = [{"receiver": k, "label": v, "rate": rt, "alerts": 10, "n": 10, "p50_ms": 0.1 * i + 0.1,
            "p99_ms": 0.3 * i + 0.2, "max_ms": 1.0}
           for rt in (1000.0, 10000.0)
           for i, (k, v) in enumerate(bench_latency.LATENCY_LABELS.items())]
    return {
        "kind": "snort", "datagram_bytes": 65864, "send_mode": "sendto",
        "machine": {"nproc": 2, "kernel": "test"},
        "rows": [{"label": v, "alerts_per_s": 1000.0 * (i + 1)}
                 for i, v in enumerate(bench.LABELS.values())],
        "latency": {"rates": [1000.0, 10000.0], "rows": lat},
        "loss": {"rows": [{"label": "(c) ingest listen null:", "qlen": 10, "rate": 30000.0,
                           "loss_pct": 2.5, "datagram_bytes": 1856}]},
        "unified2": {"alerts": 10, "rows": [{"label": "(c) ingest unified2.iter_read",
                                             "events_per_s": 1e6}]},
    }


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench.png"
    bench_plot.plot(_fake_report(), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(bench_plot.PlotUnavailable, match="matplotlib"):
        bench_plot.check_available()


@needs_gcc
@pytest.mark.parametrize("phase", ["latency", "loss"])
def test_interrupted_latency_and_loss_leave_nothing_behind(tmp_path: Path, phase: str) -> None:
    env = _env()
    env["TMPDIR"] = str(tmp_path)
    common = [sys.executable, "-m", "ingest", "bench", "--receivers", "none", "--peers",
              str(PEERS), "--no-decoder", "--no-unified2"]
    if phase == "latency":
        args = ["--no-loss", "--latency-rates", "100", "--latency-seconds", "1000"]
        sock = "lat.sock"
    else:
        args = ["--no-latency", "--loss-rates", "100", "--loss-seconds", "1000"]
        sock = "loss.sock"
    proc = subprocess.Popen(common + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        _wait_for(lambda: list(tmp_path.glob(f"ingest-bench-*/{sock}")), "a bound receiver")
        time.sleep(0.5)  # alerts are flowing
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert list(tmp_path.iterdir()) == []
    _wait_for(lambda: procs_with_cwd_under(tmp_path) == [], "the receivers to be gone", 10)
    assert os.path.isdir(tmp_path)
