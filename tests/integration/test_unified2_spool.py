"""Real processes: ``ingest decode`` / ``ingest pcap`` and the spool follower
killed with SIGKILL while a writer appends and rotates."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "unit"))
import u2writer as W  # noqa: E402

from ..conftest import SHARED  # noqa: E402
from ._util import event_ids  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ENV = {**os.environ, "PYTHONPATH": ROOT}
DATA = str(SHARED / "unified2" / "djcas9-unified2-current.log")

pytestmark = pytest.mark.slow


def ingest(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], env=ENV, capture_output=True,
                          timeout=120, **kw)


def test_decode_cli_to_jsonl(tmp_path):
    if not os.path.exists(DATA):
        pytest.skip("real file absent")
    out = tmp_path / "a.jsonl"
    p = ingest("decode", DATA, "--sink", f"jsonl:{out}")
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 5675
    assert json.loads(lines[0])["http"]["hostname"] == "notify9.dropbox.com"
    p = ingest("decode", DATA, "--format", "eve")  # a Unified2 file read as EVE: no EVE record in it
    assert p.returncode == 2 and b"no valid EVE record" in p.stderr and not p.stdout


def test_pcap_cli(tmp_path):
    f = tmp_path / "u2"
    f.write_bytes(W.event_v4(7) + W.packet(data=b"x" * 42) + W.packet(data=b"y" * 10))
    p = ingest("pcap", str(f), "-o", str(tmp_path / "o.pcap"))
    assert p.returncode == 0 and b"wrote 2 packets" in p.stderr
    assert (tmp_path / "o.pcap").stat().st_size == 24 + 16 + 42 + 16 + 10


def test_pcap_in_spool_is_named(tmp_path):
    f = tmp_path / "snort.log.1"
    f.write_bytes(bytes.fromhex("d4c3b2a1") + b"\x02\x00\x04\x00" + b"\0" * 40)
    p = ingest("decode", str(f), "--format", "unified2")
    assert b"this is a pcap file, not Unified2" in p.stderr


def _writer(directory: str, n_events: int, seed: int, done: threading.Event) -> None:
    """Append events (each with a packet, some with extra-data) in random
    slices, rotating to a new spool file every ~40 events."""
    rng = random.Random(seed)
    suffix = 1_700_000_000
    f = open(os.path.join(directory, f"snort.u2.{suffix}"), "ab")
    try:
        for i in range(1, n_events + 1):
            rec = W.event_v4(104, event_id=i, sec=1_700_000_000 + i, sid=1000 + i % 7)
            rec += W.packet(event_id=i, event_second=1_700_000_000 + i, data=bytes(rng.randrange(40, 200)))
            if i % 3 == 0:
                rec += W.extra(info_type=9, data=b"/x%d" % i, event_id=i, event_second=1_700_000_000 + i)
            pos = 0
            while pos < len(rec):  # torn writes: the follower sees partial records
                k = rng.randrange(1, 80)
                f.write(rec[pos: pos + k])
                f.flush()
                pos += k
                if rng.random() < 0.05:
                    time.sleep(0.002)
            if i % 40 == 0 and i < n_events:
                f.close()
                suffix += 1
                f = open(os.path.join(directory, f"snort.u2.{suffix}"), "ab")
            if i % 10 == 0:
                time.sleep(0.01)
    finally:
        f.close()
        done.set()


def test_sigkill_follower_loses_nothing_duplicates_nothing(tmp_path):
    n = 400
    spool = tmp_path / "spool"
    spool.mkdir()
    db = str(tmp_path / "alerts.db")
    rng = random.Random(1234)  # the seed is in the test name's output on failure
    done = threading.Event()
    t = threading.Thread(target=_writer, args=(str(spool), n, 99, done), daemon=True)
    t.start()
    args = [sys.executable, "-m", "ingest", "listen", "--unified2", str(spool / "snort.u2"),
            "--sink", f"sqlite:{db}", "--dead-letter", "", "--stats-interval", "0"]
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=tmp_path)
        if kills < 6:
            time.sleep(rng.uniform(0.3, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            kills += 1
            continue
        # last run: let it finish (signal handlers are set once it says so)
        assert b"listening on" in proc.stderr.readline()
        time.sleep(1.0)  # the runtime installs its SIGTERM handler just after that line
        while time.monotonic() < deadline and (not done.is_set() or len(event_ids(db)) < n):
            time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        break
    got = event_ids(db)
    assert len(got) == len(set(got)), "duplicate alerts"
    assert got == list(range(1, n + 1))
    bm = json.loads((spool / "snort.u2.ingest-bookmark").read_text())
    newest = max((f for f in os.listdir(spool) if f[len("snort.u2."):].isdigit()),
                 key=lambda f: int(f.rsplit(".", 1)[1]))
    assert bm["file"] == newest and bm["offset"] == (spool / newest).stat().st_size


def test_follower_waits_on_partial_then_declares_truncation(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    db = str(tmp_path / "a.db")
    first = W.event_v4(104, event_id=1) + W.packet(event_id=1)
    partial = W.event_v4(104, event_id=2)[:30]
    (spool / "u2.100").write_bytes(first + partial)
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "listen", "--unified2", str(spool / "u2"),
                             "--sink", f"sqlite:{db}", "--dead-letter", "", "--stats-interval", "0",
                             "--unified2-after", "archive", "--unified2-archive", str(tmp_path / "arch")],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        for _ in range(100):
            if event_ids(db) == [1]:
                break
            time.sleep(0.1)
        assert event_ids(db) == [1]
        time.sleep(1.0)
        assert (spool / "u2.100").exists()  # still waiting for the rest
        (spool / "u2.200").write_bytes(W.event_v4(7, event_id=3))
        for _ in range(100):
            if event_ids(db) == [1, 3] and not (spool / "u2.100").exists():
                break
            time.sleep(0.1)
        assert event_ids(db) == [1, 3]
        assert (tmp_path / "arch" / "u2.100").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert b"truncated record at offset 164" in err
