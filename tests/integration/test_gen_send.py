"""The C sending loop (csrc/gen.c) against real bound unix datagram sockets.

Only counts, sizes and contents are asserted, never how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ingest import gen

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    # sun_path is 108 bytes: keep the name short whatever tmp_path is.
    return str(tmp_path / "s")


class Drain:
    """A bound datagram socket drained by a thread that records every datagram's
    length and its 4-byte stamp at `stamp_at`."""

    def __init__(self, path: str, expect: int, stamp_at: int, fmt: str = "<I") -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(10.0)  # a bound on a broken sender, not a timing claim
        self.expect, self.stamp_at, self.fmt = expect, stamp_at, fmt
        self.lengths: list[int] = []
        self.stamps: list[int] = []
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while len(self.lengths) < self.expect:
                d = self.sock.recv(1 << 17)
                self.lengths.append(len(d))
                self.stamps.append(struct.unpack_from(self.fmt, d, self.stamp_at)[0])
                self.heads.append(d[:256])
        except OSError:
            pass

    def join(self) -> None:
        self.thread.join(20)
        self.sock.close()


@pytest.mark.parametrize("mode", ["sendto", "mmsg"])
def test_snort_sender_delivers_every_datagram_full_size(sock_path: str, mode: str) -> None:
    templates, specs = gen.build_templates("snort", 5, seed=1)
    n = 300
    drain = Drain(sock_path, n, stamp_at=65848)
    sender = gen.sender_for("snort", sock_path, templates, mode=mode)
    res = sender.run(n)
    drain.join()
    assert (res.sent, res.dropped, res.errors) == (n, 0, 0)
    assert drain.lengths == [65864] * n
    # every alert carries its own event id, in send order
    assert drain.stamps == list(range(1, n + 1))
    # templates are cycled in order
    msgs = [h.split(b"\0", 1)[0].decode() for h in drain.heads]
    assert msgs == [specs[i % 5].msg for i in range(n)]


@pytest.mark.parametrize("kind", ["snort", "barnyard2"])
def test_one_hot_buffer_sends_exactly_the_templates(tmp_path: Path, kind: str) -> None:
    """Snort's one static Alertpkt (the default): every datagram is byte for
    byte what the templates, sent from where they lie, give (stamps and
    send times included, apart from the times themselves)."""
    templates, _ = gen.build_templates(kind, 7, seed=4)
    tlen, n = templates.shape[1], 40
    _v, _l, _mode, ev_off, _be = gen.KINDS[kind]
    got = {}
    for hot in (True, False):
        path = str(tmp_path / ("h" if hot else "c"))
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(path)
        rx.settimeout(10.0)  # a bound on a broken sender, not a timing claim
        out: list[bytes] = []
        t = threading.Thread(target=lambda rx=rx, out=out: out.extend(rx.recv(1 << 17) for _ in range(n)),
                             daemon=True)
        t.start()
        sender = gen.sender_for(kind, path, templates, hot=hot)
        assert (sender._hot is not None) == hot
        assert sender.run(n).sent == n
        t.join(20)
        rx.close()
        got[hot] = out
    assert len(got[True]) == len(got[False]) == n
    assert got[True] == got[False]
    assert all(len(d) == tlen for d in got[True])
    # the stamp is in the copied part, and the zero area stayed zero
    head, tail = gen.senders.hot_span(templates, ((ev_off, 4),))
    assert head <= tail and not (head <= ev_off < tail)


def test_hot_buffer_refuses_a_stamp_outside_what_it_copies(sock_path: str) -> None:
    from ingest.native import ffi, lib

    tpl = np.zeros((1, 64), np.uint8)
    hot = np.zeros(64, np.uint8)
    res = ffi.new("struct ingest_gen_result *")
    rc = lib.ingest_gen_dgram(sock_path.encode(), ffi.from_buffer("uint8_t[]", tpl, require_writable=True),
                              64, 1, 1, 0.0, 1.0, lib.INGEST_GEN_SENDTO, 20, -1, ffi.NULL, res,
                              ffi.from_buffer("uint8_t[]", hot, require_writable=True), 16, 48)
    assert rc == lib.INGEST_EINVAL  # the event id at 20 would be left out of the copy


def test_barnyard2_connects_and_stamps_big_endian(sock_path: str) -> None:
    templates, _ = gen.build_templates("barnyard2", 3, seed=2)
    drain = Drain(sock_path, 50, stamp_at=1820, fmt="!I")
    res = gen.sender_for("barnyard2", sock_path, templates).run(50)
    drain.join()
    assert res.sent == 50
    assert drain.lengths == [1856] * 50
    assert drain.stamps == list(range(1, 51))


def test_without_stamp_templates_go_out_unchanged(sock_path: str) -> None:
    templates, _ = gen.build_templates("snort3", 2, seed=3)
    drain = Drain(sock_path, 4, stamp_at=65848)
    gen.sender_for("snort3", sock_path, templates, stamp=False).run(4)
    drain.join()
    assert drain.stamps == [1, 2, 1, 2]  # the templates' own event ids


def test_dontwait_counts_drops_when_nobody_drains(sock_path: str) -> None:
    templates, _ = gen.build_templates("snort", 2, seed=4)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    try:
        res = gen.sender_for("snort", sock_path, templates, mode="dontwait").run(100)
        assert res.sent + res.dropped + res.errors == 100
        assert res.errors == 0
        assert res.dropped > 0  # 64 KiB datagrams: only a handful fit in flight
        assert res.sent > 0
        # exactly the sent ones are queued, whole
        rx.setblocking(False)
        queued = []
        while True:
            try:
                queued.append(len(rx.recv(1 << 17)))
            except BlockingIOError:
                break
        assert queued == [65864] * res.sent
    finally:
        rx.close()


def test_nobody_bound_counts_errors_like_snort(sock_path: str) -> None:
    templates, _ = gen.build_templates("snort", 1, seed=5)
    res = gen.sender_for("snort", sock_path, templates).run(20)
    assert (res.sent, res.errors) == (0, 20)
    assert res.last_error.startswith("ENOENT")


def test_barnyard2_connect_failure_is_fatal(sock_path: str) -> None:
    templates, _ = gen.build_templates("barnyard2", 1, seed=5)
    with pytest.raises(gen.GenError, match="ENOENT"):
        gen.sender_for("barnyard2", sock_path, templates).run(1)


def test_blocked_sender_stops_when_asked(sock_path: str) -> None:
    """A blocking sender facing a reader that never reads is stuck, as Snort is;
    stop() still gets it out, with the alerts it did send counted."""
    templates, _ = gen.build_templates("snort", 1, seed=6)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    sender = gen.sender_for("snort", sock_path, templates)
    box: list[gen.SendResult] = []
    t = threading.Thread(target=lambda: box.append(sender.run(1000)))
    t.start()
    try:
        t.join(0.5)
        assert t.is_alive()  # blocked, not dropping
        sender.stop()
        t.join(10)
        assert not t.is_alive()
        res = box[0]
        assert res.interrupted and not res.timed_out
        assert res.dropped == 0 and res.errors == 0
        assert 0 < res.sent < 1000
    finally:
        sender.stop()
        t.join(10)
        rx.close()


def test_time_limit_bounds_a_blocked_sender(sock_path: str) -> None:
    templates, _ = gen.build_templates("snort", 1, seed=6)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    try:
        res = gen.sender_for("snort", sock_path, templates).run(1000, time_limit=0.2)
        assert res.timed_out and res.sent < 1000
    finally:
        rx.close()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    templates, _ = gen.build_templates("snort", 1, seed=1)
    with pytest.raises(gen.GenError, match="bad arguments"):
        gen.Sender("/" + "x" * 120, templates).run(1)  # longer than sun_path
    with pytest.raises(gen.GenError, match="bad arguments"):
        gen.Sender(str(tmp_path / "s"), templates, stamp_offset=65862).run(1)  # stamp past end
    with pytest.raises(ValueError):
        gen.Sender(str(tmp_path / "s"), np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError):
        gen.Sender(str(tmp_path / "s"), templates, mode="fast")


def test_ingest_gen_command(sock_path: str) -> None:
    drain = Drain(sock_path, 40, stamp_at=65848)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "ingest", "gen", "--to", sock_path, "--kind", "snort",
         "--count", "40", "--seed", "9", "--templates", "8", "--json"],
        env=env, capture_output=True, text=True, timeout=60)
    drain.join()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["sent"] == 40 and report["dropped"] == 0 and report["errors"] == 0
    assert report["kind"] == "snort" and report["mode"] == "sendto"
    assert drain.lengths == [65864] * 40


def test_ingest_gen_stops_on_ctrl_c(sock_path: str) -> None:
    """Unbounded and blocked (nobody reads): Ctrl-C still ends it, with a report."""
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "gen", "--to", sock_path, "--count", "0", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first datagrams are queued once the sender runs
        rx.settimeout(30)
        rx.recv(1 << 17)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rx.close()
    assert proc.returncode == 130, err  # interrupted: the shell's status for Ctrl-C
    report = json.loads(out)
    assert report["interrupted"] and report["sent"] >= 1 and report["errors"] == 0
