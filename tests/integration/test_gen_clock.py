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


#: EVE records as a capture has them: times of 2020, in a local zone
OLD = 1_600_000_000.0


def _eve_stored(tmp_path: Path, run_ingest, kind: str, *gen_args: str) -> tuple[float, float, list, list]:
    """gen --kind eve-* (the records of an old capture, cycled) into a real
    listen: (t0, t1, alert times, flow (start_us, end_us, ts) rows)."""
    from ingest.gen import eve_records

    recs = eve_records(40, seed=5, base_time=OLD)
    src = tmp_path / "old-eve.json"
    src.write_bytes(b"".join(recs))
    sock, db = tmp_path / f"{kind}.sock", tmp_path / f"{kind}.db"
    p = run_ingest(["listen", f"--{kind}", str(sock), "--sink", f"sqlite:{db}",
                    "--stats-interval", "0"], wait_for=[sock])
    t0 = time.time()
    g = _gen("--to", str(sock), "--kind", kind, "--eve-file", str(src), "--offline",
             "--count", "200", "--rate", "2000", *gen_args)
    t1 = time.time()
    assert g.returncode == 0, g.stderr
    rc, st = p.stop()
    assert rc == 0 and st["received"] == 200 and not st["malformed"], st
    con = sqlite3.connect(db)
    try:
        alerts = [t for (t,) in con.execute("SELECT ts_us FROM alerts ORDER BY id")]
        flows = con.execute("SELECT start_us, end_us FROM flows").fetchall()
    finally:
        con.close()
    return t0, t1, alerts, flows


@pytest.mark.parametrize("kind", ["eve-dgram", "eve-stream"])
def test_eve_records_carry_their_send_time(tmp_path, run_ingest, kind):
    """Cycled EVE records go out with their send time (a flow's start/end
    moved with it), not the capture's times repeated every cycle."""
    t0, t1, alerts, flows = _eve_stored(tmp_path, run_ingest, kind)
    ts = [t / 1e6 for t in alerts]
    assert len(ts) > 100
    assert all(t0 - 0.001 <= t <= t1 + 0.001 for t in ts), (t0, min(ts), max(ts), t1)
    assert ts == sorted(ts) and len(set(ts)) == len(ts)  # each its own send time
    assert flows and all(t0 - 120 <= s / 1e6 <= e / 1e6 <= t1 + 0.001 for s, e in flows), flows


def test_eve_clock_template_sends_the_records_as_they_are(tmp_path, run_ingest):
    _t0, _t1, alerts, _flows = _eve_stored(tmp_path, run_ingest, "eve-dgram", "--clock", "template")
    ts = [t / 1e6 for t in alerts]
    assert all(OLD <= t < OLD + 3600 for t in ts)
    assert len(set(ts)) < len(ts)  # the 40 records' times, cycled


@pytest.mark.parametrize("args,why", [
    (["--kind", "snort", "--offline"], "--offline is not for --kind snort"),
    (["--kind", "barnyard2", "--eve-file", "x.json"], "--eve-file is not for --kind barnyard2"),
    (["--kind", "eve-dgram", "--mode", "mmsg"], "--mode is not for --kind eve-dgram"),
    (["--kind", "eve-stream", "--no-stamp"], "--no-stamp is not for --kind eve-stream"),
    (["--kind", "unified2", "--mode", "sendto"], "--mode is not for --kind unified2"),
    (["--kind", "unified2", "--no-stamp"], "--no-stamp is not for --kind unified2"),
    (["--kind", "snort3", "--rotate-events", "5"], "--rotate-events is not for --kind snort3"),
    (["--kind", "eve-dgram", "--rotate-bytes", "1000"], "--rotate-bytes is not for --kind eve-dgram"),
])
def test_an_option_the_kind_does_not_take_is_refused(tmp_path, args, why):
    """Never silently ignored: exit 2, nothing sent or written."""
    sock = tmp_path / "s.sock"
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock))
    try:
        to = str(tmp_path / "snort.u2") if "unified2" in args else str(sock)
        g = _gen("--to", to, "--count", "5", *args)
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1 << 17)
    finally:
        s.close()
    assert g.returncode == 2, g.stderr
    assert why in g.stderr and g.stdout == ""
    assert not list(tmp_path.glob("snort.u2.*"))


@pytest.mark.parametrize("kind,sock_type", [("barnyard2", "seqpacket"), ("eve-dgram", "stream"),
                                            ("eve-stream", "dgram")])
def test_a_socket_of_the_wrong_type_is_a_usage_error(tmp_path, kind, sock_type):
    """A --barnyard2-sync (seqpacket) or stream socket given to a datagram
    kind, or the reverse: exit 2 saying what the kind needs."""
    import socket

    sock = tmp_path / "s.sock"
    t = {"seqpacket": socket.SOCK_SEQPACKET, "stream": socket.SOCK_STREAM,
         "dgram": socket.SOCK_DGRAM}[sock_type]
    s = socket.socket(socket.AF_UNIX, t)
    s.bind(str(sock))
    if t != socket.SOCK_DGRAM:
        s.listen(4)
    try:
        g = _gen("--to", str(sock), "--kind", kind, "--count", "1")
    finally:
        s.close()
    assert g.returncode == 2, g.stderr
    assert f"--to {sock}: not a" in g.stderr and f"--kind {kind} needs" in g.stderr
