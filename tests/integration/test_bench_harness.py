"""The benchmark peers and the ``ingest bench`` harness, on a few hundred alerts.

These check that every receiver gets every alert and that the harness leaves
nothing behind, also when interrupted; they never look at how fast anything was.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import bench, gen

from ._util import procs_with_cwd_under

ROOT = Path(__file__).resolve().parents[2]
PEERS = bench.DEFAULT_PEERS

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))


def _wait_for(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _run_peer(cmd: list[str], sock: str, kind: str, n: int) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        _wait_for(lambda: os.path.exists(sock), "the peer to bind")
        templates, _ = gen.build_templates(kind, 16, seed=2)
        res = gen.sender_for(kind, sock, templates).run(n, time_limit=30)
        assert res.sent == n
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert not os.path.exists(sock)  # the peer removed its socket
    return json.loads(out)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_recv_count_counts_every_datagram(tmp_path: Path) -> None:
    exe = tmp_path / "recv_count"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(exe),
                    str(PEERS / "recv_count.c")], check=True, timeout=120)
    sock = str(tmp_path / "s")
    rep = _run_peer([str(exe), sock, "500"], sock, "snort", 500)
    assert rep["peer"] == "recv_count"
    assert rep["received"] == 500 and rep["bytes"] == 500 * 65864 and rep["truncated"] == 0
    assert rep["maxrss_kb"] > 0


@pytest.mark.parametrize("kind", ["snort", "barnyard2"])
def test_naive_recv_decodes_every_datagram(tmp_path: Path, kind: str) -> None:
    sock = str(tmp_path / "s")
    rep = _run_peer([sys.executable, str(PEERS / "naive_recv.py"), sock, "300"], sock, kind, 300)
    assert rep["peer"] == "naive_recv"
    assert rep["received"] == rep["decoded"] == 300


def test_naive_decoder_reads_the_fields() -> None:
    sys.path.insert(0, str(PEERS))
    try:
        import naive_recv
    finally:
        sys.path.remove(str(PEERS))
    templates, specs = gen.build_templates("snort", 50, seed=3, base_time=1_795_000_000)
    for raw, s in zip(templates, specs, strict=True):
        ts, gid, sid, rev, cls, prio, eid, msg, src, dst, proto, sport, dport = \
            naive_recv.decode(raw.tobytes())
        assert (gid, sid, rev, cls, prio, eid, msg) == \
               (s.gid, s.sid, s.rev, s.class_id, s.priority, s.event_id, s.msg)
        assert ts == s.ts_sec * 1_000_000 + s.ts_usec
        if s.ip_ver == 4:
            assert (src, dst, proto) == (s.src, s.dst, s.proto)
            if s.proto in (6, 17):
                assert (sport, dport) == (s.sport, s.dport)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_bench_measures_every_receiver_and_cleans_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    # pinned (sender and receivers on one core; the placement every row reports)
    rep = bench.run_bench(count=300, repeat=1, peers_dir=PEERS, decoder=False, time_limit=60,
                          placement="same")
    rows = {r["receiver"]: r for r in rep["rows"]}
    assert set(rows) == set(bench.RECEIVERS)
    for r in rows.values():
        (run,) = r["runs"]
        assert run["sent"] == run["received"] == 300
        assert r["alerts_per_s"] > 0 and r["peak_rss_mib"] > 0
        assert "paired_rate_vs_a" in r and "paired_cpu_vs_b" in r
        assert r["placement"].startswith("same core")
    assert "shutdown_s" in rows["ingest-sqlite"] and "stored_alerts_per_s" in rows["ingest-sqlite"]
    assert rows["ingest-sqlite"]["runs"][0]["detail"]["rows"] == 300
    assert list(tmp_path.iterdir()) == []  # the work directory is gone
    text = bench.format_report(rep)
    assert "(a) C recvmmsg" in text and "(d) ingest listen sqlite:" in text


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_bench_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    env = _env()
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "bench", "--count", "100000000", "--repeat", "1",
         "--receivers", "naive_recv", "--peers", str(PEERS), "--no-decoder"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        # interrupt it while a receiver is bound and alerts are flowing
        _wait_for(lambda: list(tmp_path.glob("ingest-bench-*/alert.sock")), "a bound receiver")
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert list(tmp_path.iterdir()) == []
    assert procs_with_cwd_under(tmp_path) == []


@pytest.mark.parametrize("fever", [True, False])
def test_bench_eve_rows_measure_every_receiver_and_clean_up(tmp_path: Path, monkeypatch,
                                                           fever: bool) -> None:
    if fever and shutil.which("fever") is None:
        pytest.skip("fever not installed")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    if not fever:
        real = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "fever"
                            else real(name, *a, **k))
    rep = bench.run_bench(count=10, repeat=1, receivers=(), peers_dir=PEERS, decoder=False,
                          time_limit=60, eve_records=500)
    eve = rep["eve"]
    rows = {r["receiver"]: r for r in eve["rows"]}
    assert set(rows) == {"ingest-eve-stream", "fever", "stream-count", "ingest-eve-dgram", "naive-json",
                         "bare-c", "ingest-eve-dgram-native"}
    for name in ("ingest-eve-stream", "stream-count", "ingest-eve-dgram", "naive-json", "bare-c",
                 "ingest-eve-dgram-native"):
        (run,) = rows[name]["runs"]
        assert run["received"] == 500 and run["records_per_s"] > 0
    # ingest's clock stops at its stats line, its shutdown is reported apart
    for name in ("ingest-eve-stream", "ingest-eve-dgram", "ingest-eve-dgram-native"):
        assert rows[name]["completion"] == "stats line"
        assert rows[name]["shutdown_s"] >= 0
        (run,) = rows[name]["runs"]
        assert run["shutdown_s"] >= 0
    assert rows["naive-json"]["completion"] == "exit on its count" and "shutdown_s" not in rows["naive-json"]
    # unix_stream rows are paired with the stream limit (read + count lines) of the same round
    assert rows["stream-count"]["socket"] == "unix_stream"
    assert rows["ingest-eve-stream"]["paired_rate_vs_bare"] > 0
    assert "paired_rate_vs_peer" in rows["ingest-eve-dgram"]
    # both ingest dgram readers are paired with the bare C receiver of the same round
    assert "paired_rate_vs_bare" in rows["ingest-eve-dgram"] and "paired_rate_vs_bare" in rows["ingest-eve-dgram-native"]
    if fever:
        # lossless FEVER, timed to the end marker it forwarded after the last record
        assert rows["fever"]["records_per_s"] > 0
        assert rows["fever"]["completion"] == "end marker forwarded"
        assert "shutdown_s" not in rows["fever"]
        assert "paired_rate_vs_peer" in rows["ingest-eve-stream"]
        assert rows["fever"]["paired_rate_vs_bare"] > 0
        assert any(g["goal"].startswith("EVE unix_stream >= 3.0x FEVER (lossless") for g in rep["goals"])
    else:
        assert rows["fever"]["missing"] == "fever not installed"
        assert eve["fever"] == "fever not installed"
    text = bench.format_report(rep)
    assert "EVE sockets" in text and "Python recv+json.loads" in text
    assert ("fever not installed" in text) != fever
    assert list(tmp_path.iterdir()) == []  # the work directory is gone
    assert procs_with_cwd_under(tmp_path) == []


def test_interrupted_eve_rows_leave_nothing_behind(tmp_path: Path) -> None:
    env = _env()
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "bench", "--receivers", "none", "--peers", str(PEERS),
         "--no-decoder", "--no-latency", "--no-loss", "--no-unified2", "--repeat", "1",
         "--eve-records", "100000000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        _wait_for(lambda: list(tmp_path.glob("ingest-bench-*/eve.sock")), "a bound EVE receiver")
        time.sleep(0.5)  # records are flowing
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert list(tmp_path.iterdir()) == []
    assert procs_with_cwd_under(tmp_path) == []


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_bench_multisocket_rows_measure_every_receiver_and_clean_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    rep = bench.run_bench(count=10, repeat=1, receivers=(), peers_dir=PEERS, decoder=False,
                          time_limit=60, multisocket_sockets=(1, 4), multisocket_alerts=300)
    ms = rep["multisocket"]
    rows = {(r["receiver"], r["sockets"]): r for r in ms["rows"]}
    assert set(rows) == {(r, n) for r in ("bare", "ingest-c", "ingest-py") for n in (1, 4)}
    for (receiver, n), r in rows.items():
        (run,) = r["runs"]
        assert run["alerts"] == n * 300 and r["alerts_per_s"] > 0 and r["cpu_us_per_alert"] >= 0
        if receiver == "bare":
            assert r["completion"] == "exit on its count" and "paired_rate_vs_bare" not in r
        else:  # timed to its stats line, the shutdown apart, paired with the same round's bare
            assert r["completion"] == "stats line" and r["shutdown_s"] >= 0
            assert r["paired_rate_vs_bare"] > 0 and len(r["paired_rate_vs_bare_range"]) == 2
            assert "paired_cpu_vs_bare" in r
    goals = [g for g in rep["goals"] if g["goal"].startswith("4 sockets")]
    assert len(goals) == 2  # each reader
    assert all(g["measured"].endswith("one round: a first look, not the verdict") for g in goals)
    assert not [g for g in rep["goals"] if g["goal"].startswith(("1 sockets", "8 sockets"))]
    text = bench.format_report(rep)
    assert "multi-socket Alertpkt" in text and "ingest null:, C readers" in text
    assert "4 sockets: ingest null:, Python readers >= 0.85 of 4 bare C receivers" in text
    assert list(tmp_path.iterdir()) == []  # the work directory is gone
    assert procs_with_cwd_under(tmp_path) == []
