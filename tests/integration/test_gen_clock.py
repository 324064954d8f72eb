"""``ingest gen`` stamps every alert with its send time (the wall clock, as a
sensor does), so a store filled by gen looks like a real one; ``--clock
template`` keeps the seeded template times.  Checked end to end: gen sends
into a real ``ingest listen`` and the times are read back from its store;
the Unified2 spool is read back with the batch reader."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import unified2

from ..conftest import ROOT

pytestmark = pytest.mark.slow


def _gen(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ingest", "gen", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _stored(tmp_path: Path, run_ingest, kind: str, *gen_args: str) -> tuple[float, float, list]:
    sock, db = tmp_path / f"{kind}.sock", tmp_path / f"{kind}.db"
    opt = "--barnyard2" if kind.startswith("barnyard2") else "--snort"
    p = run_ingest(["listen", opt, str(sock), "--sink", f"sqlite:{db}", "--stats-interval", "0"],
                   wait_for=[sock])
    t0 = time.time()
    g = _gen("--to", str(sock), "--kind", kind, "--count", "300", "--templates", "4",
             "--rate", "3000", *gen_args)
    t1 = time.time()
    assert g.returncode == 0, g.stderr
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 300
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT event_id, ts_us FROM alerts ORDER BY event_id").fetchall()
    finally:
        con.close()
    return t0, t1, rows


@pytest.mark.parametrize("kind,mode", [("snort", None), ("barnyard2", None), ("snort3", "mmsg")])
def test_alerts_carry_their_send_time(tmp_path, run_ingest, kind, mode):
    t0, t1, rows = _stored(tmp_path, run_ingest, kind, *(["--mode", mode] if mode else []))
    assert [e for e, _ in rows] == list(range(1, 301))
    ts = [t / 1e6 for _, t in rows]
    assert all(t0 - 0.001 <= t <= t1 + 0.001 for t in ts), (t0, min(ts), max(ts), t1)
    assert ts == sorted(ts)  # sent in event-id order, stamped as sent
    assert len(set(ts)) > 4  # not the 4 templates' times cycled


def test_clock_template_keeps_the_seeded_times(tmp_path, run_ingest):
    _t0, _t1, rows = _stored(tmp_path, run_ingest, "snort", "--clock", "template")
    ts = [t for _, t in rows]
    assert len(set(ts)) == 4 and ts[:4] == ts[4:8]


def test_unified2_events_carry_their_write_time(tmp_path):
    t0 = time.time()
    g = _gen("--kind", "unified2", "--to", str(tmp_path / "snort.u2"), "--count", "300",
             "--rate", "3000")
    t1 = time.time()
    assert g.returncode == 0, g.stderr
    (f,) = tmp_path.glob("snort.u2.*")
    res = unified2.read(str(f))
    ts = (res.alerts["ts_us"] / 1e6).tolist()
    assert len(ts) == 300
    assert all(t0 - 0.001 <= t <= t1 + 0.001 for t in ts), (t0, min(ts), max(ts), t1)
    assert ts == sorted(ts) and len(set(ts)) > 250
    assert (res.alerts["ts_us"] % 1000 != 0).any()  # real microseconds, not i ms steps
    # each packet record carries its event's time
    pk = res.packets
    assert len(pk) > 250
    by_event = dict(zip(res.alerts["event_id"].tolist(), res.alerts["ts_us"].tolist(), strict=True))
    for eid, sec, usec in zip(pk["event_id"].tolist(), pk["packet_second"].tolist(),
                              pk["packet_microsecond"].tolist(), strict=True):
        assert sec * 1_000_000 + usec == by_event[eid]


def test_clock_is_not_for_eve(tmp_path):
    sock = tmp_path / "s.sock"
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock))
    try:
        g = _gen("--to", str(sock), "--kind", "eve-dgram", "--clock", "send", "--count", "1")
    finally:
        s.close()
    assert g.returncode == 2 and "--clock is not for eve-*" in g.stderr
