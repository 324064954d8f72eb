"""Connections a peer can hold on a real ``ingest listen`` process: the
descriptor limit, squatters, idle connections, and a reader thread that dies."""

from __future__ import annotations

import os
import pathlib
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time

from ingest.encode import encode_alertpkt, ether_ipv4

from ..conftest import ROOT
from ._util import READER_FAULT, count, wait_until
from .test_signals import ALERT


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _connect(path, kind=socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, kind)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        raise
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_eve_stream_out_of_descriptors_backs_off_and_keeps_serving(tmp_path, run_ingest):
    sock, db = tmp_path / "eve.sock", tmp_path / "a.db"
    p = run_ingest(["listen", "--eve-stream", str(sock), "--sink", f"sqlite:{db}",
                    "--stats-interval", "0.3"], wait_for=[sock])
    first = _connect(sock)
    first.sendall(ALERT % 1)
    wait_until(lambda: count(db) == 1, p, "the first record")
    # room for 4 more descriptors: the 5th connection onwards cannot be accepted
    limit = _open_fds(p.proc.pid) + 4
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    crowd = [_connect(sock) for _ in range(20)]
    wait_until(lambda: "accept_failed=" in p.stderr(), p, "accept_failed in the stats line")
    first.sendall(ALERT % 2)  # the connections it has are still served
    wait_until(lambda: count(db) == 2, p, "a record while out of descriptors")
    for i, s in enumerate(crowd):  # the ones still in the backlog are taken once there is room
        s.sendall(ALERT % (100 + i))
        s.close()
    first.close()
    wait_until(lambda: count(db) == 22, p, "every queued connection's record")
    late = _connect(sock)
    late.sendall(ALERT % 3)
    late.close()
    wait_until(lambda: count(db) == 23, p, "a new connection's record")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["accept_failed"] >= 1 and st["reader_failed"] == {}
    assert "accept failed (Too many open files)" in p.stderr()


def test_barnyard2_sync_out_of_descriptors_backs_off_and_keeps_serving(tmp_path, run_ingest):
    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}"],
                   wait_for=[sock])
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    real = _connect(sock, socket.SOCK_SEQPACKET)
    real.settimeout(30)
    real.send(encode_alertpkt("barnyard2", sid=1, event_id=1, packet=pkt))
    assert real.recv(1) == b"\x01"
    limit = _open_fds(p.proc.pid) + 3
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    crowd = [_connect(sock, socket.SOCK_SEQPACKET) for _ in range(10)]
    wait_until(lambda: "accept failed" in p.stderr(), p, "the accept failure")
    real.send(encode_alertpkt("barnyard2", sid=1, event_id=2, packet=pkt))
    assert real.recv(1) == b"\x01"  # still served
    for s in crowd:
        s.close()
    late = _connect(sock, socket.SOCK_SEQPACKET)
    late.settimeout(30)
    late.send(encode_alertpkt("barnyard2", sid=1, event_id=3, packet=pkt))
    assert late.recv(1) == b"\x01"  # accepted once descriptors were free again
    late.close()
    real.close()
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["accept_failed"] >= 1 and st["decoded"] == 3


def test_barnyard2_sync_squatters_cannot_lock_barnyard2_out(tmp_path, run_ingest):
    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    squatters = [_connect(sock, socket.SOCK_SEQPACKET) for _ in range(64)]  # the default cap
    time.sleep(1.2)  # idle long enough to be made room for
    real = _connect(sock, socket.SOCK_SEQPACKET)
    real.settimeout(30)
    real.send(encode_alertpkt("barnyard2", sid=9, event_id=1, packet=ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)))
    assert real.recv(1) == b"\x01"
    real.close()
    assert sum(_closed_by_peer(s) for s in squatters) >= 1
    for s in squatters:
        s.close()
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 1 and st["connections_evicted"] >= 1, p.stderr()


def test_eve_stream_connections_are_capped_and_idle_ones_closed(tmp_path, run_ingest):
    sock, db = tmp_path / "eve.sock", tmp_path / "a.db"
    p = run_ingest(["listen", "--eve-stream", str(sock), "--sink", f"sqlite:{db}", "--max-connections", "8",
                    "--idle-timeout", "2"], wait_for=[sock])
    squatters = [_connect(sock) for _ in range(40)]
    wait_until(lambda: sum(_closed_by_peer(s) for s in squatters) >= 32, p, "the connections past the cap closed")
    assert _open_fds(p.proc.pid) < 40
    wait_until(lambda: all(_closed_by_peer(s) for s in squatters), p, "the idle ones closed")
    for s in squatters:
        s.close()
    real = _connect(sock)
    real.sendall(ALERT % 1)
    wait_until(lambda: count(db) == 1, p, "the sender's record")
    real.close()
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["connections_idle_closed"] >= 1 and st["connections_refused"] + st.get("connections_evicted", 0) >= 32


# A reader thread that dies (_util.READER_FAULT: its socket fails under it);
# the process, its runtime, its stats and its exit status are real.
_FAULT = READER_FAULT


def test_a_dead_reader_stops_the_process_at_once_with_exit_1(tmp_path):
    snort, by2, db = tmp_path / "snort_alert", tmp_path / "barnyard2_alert", tmp_path / "a.db"
    trigger = tmp_path / "fail-now"
    err = tmp_path / "err.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(err, "wb") as ef:
        proc = subprocess.Popen([sys.executable, "-c", _FAULT, str(trigger), "listen", "--snort", str(snort),
                                 "--barnyard2", str(by2), "--sink", f"sqlite:{db}"],
                                stderr=ef, stdout=subprocess.DEVNULL, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while b"listening on" not in err.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.02)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(encode_alertpkt("snort", sid=1, event_id=1), str(snort))
            s.close()
            deadline = time.monotonic() + 30
            while count(db) < 1:
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.02)
            pathlib.Path(trigger).touch()
            rc = proc.wait(timeout=30)  # by itself: no signal is sent
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    text = err.read_text()
    assert rc == 1, text
    assert f"reader snort:{snort} died" in text or f"reader barnyard2:{by2} died" in text
    line = next(x for x in text.splitlines() if x.startswith("ingest: stats ") and "reader_failed=" in x)
    assert "Socket operation on non-socket" in text and line
    assert not snort.exists() and not by2.exists()  # nobody is left writing into an unread socket
    c = __import__("sqlite3").connect(db)
    assert c.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    c.close()


def test_barnyard2_sync_peer_that_never_reads_its_acks_cannot_freeze_the_process(tmp_path, run_ingest):
    """A connection that sends alerts without reading the acknowledgements
    (no real Barnyard2 does: it waits for each one) fills its socket's send
    buffer; the acknowledgement must not then block the event loop (and with
    it every source, every sink and SIGTERM).  The alerts are stored; the
    misbehaving connection is closed, counted ``acks_undeliverable``."""
    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    rude = _connect(sock, socket.SOCK_SEQPACKET)
    rude.settimeout(5)
    sent = 0
    try:
        for i in range(1, 5001):
            rude.send(encode_alertpkt("barnyard2", sid=1, event_id=i, ts_sec=1700000000 + i, packet=pkt))
            sent = i
    except OSError:
        pass  # closed by ingest (or its receive queue stayed full): both are fine
    assert sent > 100  # more acks than the socket has room for
    real = _connect(sock, socket.SOCK_SEQPACKET)
    real.settimeout(30)
    real.send(encode_alertpkt("barnyard2", sid=2, event_id=1, ts_sec=1600000000, packet=pkt))
    assert real.recv(1) == b"\x01"  # still served
    real.close()
    wait_until(lambda: count(db, "SELECT count(*) FROM alerts WHERE sid = 2") == 1, p, "the real sender's alert")
    rc, st = p.stop(timeout=60)
    rude.close()
    assert rc == 0, p.stderr()
    assert st["acks_undeliverable"] >= 1 and "does not read its acknowledgements" in p.stderr(), st
    # every alert the rude peer got into the kernel is stored or counted
    assert count(db, "SELECT count(*) FROM alerts WHERE sid = 1") + sum(st["dropped"].values()) >= sent, st


def test_barnyard2_sync_sigterm_counts_every_alert_the_kernel_accepted(tmp_path, run_ingest):
    """SIGTERM while the store is busy: from then on a sender's alert is
    either refused by the kernel (the connection is shut for reading, as the
    datagram sources do) or read, stored or counted; never accepted and then
    dropped unseen with the connection."""
    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    conns = [_connect(sock, socket.SOCK_SEQPACKET) for _ in range(4)]
    for i, c in enumerate(conns):  # one acknowledged alert each: they are served
        c.settimeout(30)
        c.send(encode_alertpkt("barnyard2", sid=1, event_id=1, sensor_id=i, ts_sec=1700000000, packet=pkt))
        assert c.recv(1) == b"\x01"
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")  # the drain waits for the store
    accepted = 4
    conns[0].send(encode_alertpkt("barnyard2", sid=1, event_id=2, sensor_id=0, ts_sec=1700000000, packet=pkt))
    accepted += 1
    p.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in p.stderr() or _sleep(1.0), p, "the stop to begin")
    for i, c in enumerate(conns[1:], 1):
        try:
            c.send(encode_alertpkt("barnyard2", sid=1, event_id=3, sensor_id=i, ts_sec=1700000000, packet=pkt))
            accepted += 1
        except OSError:
            pass  # refused: the sender knows, and resends after the restart
    lock.execute("ROLLBACK")
    lock.close()
    rc, st = p.stop()
    for c in conns:
        c.close()
    assert rc == 0, p.stderr()
    assert count(db) + sum(st["dropped"].values()) == accepted, (count(db), accepted, st)


def _sleep(s: float) -> bool:
    time.sleep(s)
    return True


def test_barnyard2_sync_peer_closing_with_unread_acks_loses_nothing_it_sent(tmp_path, run_ingest):
    """A peer that closes while an acknowledgement sits unread in its socket
    makes the kernel report ECONNRESET once, *before* the alerts it sent that
    are still queued on our side: those must still be read and stored."""
    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}", "--max-queue", "1"],
                   wait_for=[sock])
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    peer = _connect(sock, socket.SOCK_SEQPACKET)
    peer.send(encode_alertpkt("barnyard2", sid=1, event_id=1, ts_sec=1700000000, packet=pkt))
    wait_until(lambda: count(db) == 1, p, "the first alert")  # its ack stays unread
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")  # the store waits ...
    other = _connect(sock, socket.SOCK_SEQPACKET)
    other.settimeout(30)
    other.send(encode_alertpkt("barnyard2", sid=2, event_id=1, ts_sec=1700000000, packet=pkt))
    time.sleep(0.5)  # ... with another connection's alert: the queue (1 alert) is full
    for i in range(2, 21):  # the peer's alerts wait in the kernel
        peer.send(encode_alertpkt("barnyard2", sid=1, event_id=i, ts_sec=1700000000, packet=pkt))
    time.sleep(0.5)
    peer.close()
    time.sleep(0.2)
    lock.execute("ROLLBACK")
    lock.close()
    assert other.recv(1) == b"\x01"
    other.close()
    wait_until(lambda: count(db) == 21, p, "every alert the peer sent")
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 21, p.stderr()
