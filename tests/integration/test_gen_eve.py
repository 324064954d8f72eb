"""``ingest gen --kind eve-dgram/eve-stream`` (csrc/gen.c, ingest_gen_lines)
against real ``ingest listen`` processes and real bound sockets.

Only counts and contents are asserted, never how long anything took.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ingest import gen

from ._eve_proc import REPO, Ingest

RECORDS = gen.eve_records(50, seed=3)
ALERTS = sum(json.loads(r)["event_type"] == "alert" for r in RECORDS)
#: live mode drops records anywhere in the cycle: with alerts only, the rows
#: stored say how many arrived
ONLY_ALERTS = [r for r in RECORDS if json.loads(r)["event_type"] == "alert"]


def _listen_and_send(tmp_path: Path, kind: str, *, offline: bool, n: int) -> tuple[gen.SendResult, dict]:
    sock = str(tmp_path / "e")
    ing = Ingest(tmp_path, f"--{kind}", sock)
    recs = RECORDS if offline else ONLY_ALERTS
    try:
        res = gen.LineSender(sock, recs, stream=kind == "eve-stream", offline=offline).run(
            n, time_limit=60)
        assert res.sent + res.dropped + res.errors == n and res.errors == 0
        ing.wait_count(_alerts(res.sent) if offline else res.sent)
    finally:
        st = ing.stop()
    return res, st


def _alerts(sent: int) -> int:
    """Alerts among the first `sent` records sent (they are cycled)."""
    full, rest = divmod(sent, len(RECORDS))
    return full * ALERTS + sum(json.loads(r)["event_type"] == "alert" for r in RECORDS[:rest])


@pytest.mark.parametrize("kind", ["eve-dgram", "eve-stream"])
def test_offline_every_record_arrives_intact(tmp_path: Path, kind: str) -> None:
    n = 3 * len(RECORDS) + 7
    res, st = _listen_and_send(tmp_path, kind, offline=True, n=n)
    assert (res.sent, res.dropped) == (n, 0)
    assert st["received"] == n and not st["malformed"]
    assert st["decoded"] == _alerts(n)


@pytest.mark.parametrize("kind", ["eve-dgram", "eve-stream"])
def test_live_what_was_sent_arrives_intact(tmp_path: Path, kind: str) -> None:
    """Live mode may drop when the reader lags; whatever was sent arrives whole."""
    n = 2000
    res, st = _listen_and_send(tmp_path, kind, offline=False, n=n)
    assert res.sent > 0
    assert st["received"] == st["decoded"] == res.sent and not st["malformed"]


def test_dgram_records_byte_for_byte(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(10.0)
    got: list[bytes] = []

    def drain() -> None:
        try:
            while len(got) < 120:
                got.append(rx.recv(1 << 18))
        except OSError:
            pass

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    res = gen.LineSender(path, RECORDS, stream=False, offline=True).run(120)
    t.join(20)
    rx.close()
    assert (res.sent, res.dropped, res.errors) == (120, 0, 0)
    assert got == [RECORDS[i % len(RECORDS)] for i in range(120)]


def test_live_dgram_drops_are_counted_when_nobody_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    try:
        res = gen.LineSender(path, RECORDS, stream=False).run(3000)
        assert res.sent + res.dropped == 3000 and res.errors == 0
        assert res.dropped > 0 and res.sent > 0
        rx.setblocking(False)
        queued = []
        while True:
            try:
                queued.append(rx.recv(1 << 18))
            except BlockingIOError:
                break
        # exactly the sent ones are queued, whole, in order from the first record
        assert len(queued) == res.sent
        assert queued[:5] == RECORDS[:5]
    finally:
        rx.close()


def test_live_stream_drops_are_counted_and_lines_stay_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    try:
        res = gen.LineSender(path, RECORDS, stream=True).run(50_000)
        assert res.sent + res.dropped == 50_000 and res.errors == 0
        assert res.dropped > 0 and res.sent > 0
        conn, _ = ls.accept()
        conn.setblocking(False)
        buf = b""
        while True:
            try:
                d = conn.recv(1 << 20)
            except BlockingIOError:
                break
            if not d:
                break
            buf += d
        conn.close()
        lines = buf.split(b"\n")
        assert lines[-1] == b""  # a cut send was finished, not left half-written
        assert len(lines) - 1 == res.sent
        assert [ln + b"\n" for ln in lines[:-1]] == [RECORDS[i % len(RECORDS)]
                                                     for i in range(res.sent)]
    finally:
        ls.close()


def test_offline_blocked_sender_stops_when_asked(tmp_path: Path) -> None:
    path = str(tmp_path / "d")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    try:
        res = gen.LineSender(path, RECORDS, stream=False, offline=True).run(100_000,
                                                                           time_limit=0.3)
        assert res.timed_out and res.dropped == 0 and res.errors == 0
        assert 0 < res.sent < 100_000
    finally:
        rx.close()


def test_connect_failure_and_bad_records(tmp_path: Path) -> None:
    with pytest.raises(gen.GenError, match="ENOENT"):
        gen.LineSender(str(tmp_path / "none"), RECORDS, stream=True).run(1)
    with pytest.raises(ValueError):
        gen.LineSender(str(tmp_path / "s"), [b"x\n", b""], stream=False)


def test_ingest_gen_eve_command(tmp_path: Path) -> None:
    sock = str(tmp_path / "e")
    ing = Ingest(tmp_path, "--eve-stream", sock)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "ingest", "gen", "--to", sock, "--kind", "eve-stream",
             "--offline", "--count", "300", "--templates", "40", "--json"],
            env={**env, "INGEST_SHARED_DATA": str(tmp_path / "nodata")},
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        assert rep["sent"] == 300 and rep["dropped"] == 0 and rep["mode"] == "offline"
        assert rep["records"] == "generated"
        recs = gen.eve_records(40, seed=1)  # what the command generates without shared data
        alerts = sum(json.loads(r)["event_type"] == "alert" for r in recs)
        full, rest = divmod(300, 40)
        ing.wait_count(full * alerts + sum(json.loads(r)["event_type"] == "alert"
                                           for r in recs[:rest]))
    finally:
        st = ing.stop()
    assert st["received"] == 300 and not st["malformed"]
    bad = subprocess.run([sys.executable, "-m", "ingest", "gen", "--to", sock, "--kind",
                          "eve-dgram", "--mode", "sendto"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2
