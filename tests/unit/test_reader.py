"""The native reader (csrc/recv.c ingest_reader_*, ingest/reader.py): a C
thread that receives and decodes into a bounded ring of batches, over real
sockets.  The CI's sanitizer pass runs these under ASan+UBSan: a stop under
load, a failure and the ring-full wait must leave no thread and touch no
freed memory."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import numpy as np
import pytest

from ingest.alertpkt import SLOT_SIZE, decode_datagrams
from ingest.encode import encode_alertpkt
from ingest.native import lib
from ingest.reader import ALERTPKT, END, RAW, NativeReader, ring_bytes
from ingest.stats import Stats

DEADLINE = 30.0  # generous: a wait, never a speed


def _pair(rcvtimeo: bool = True) -> tuple[socket.socket, socket.socket]:
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    if rcvtimeo:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 100_000))
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return rx, tx


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _wait(cond, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.005)


def _take_all(r: NativeReader, want: int) -> list[tuple[int, int, bytes]]:
    """(n, k, first datagram's bytes) per batch until want datagrams came."""
    got: list[tuple[int, int, bytes]] = []
    end = time.monotonic() + DEADLINE
    while sum(g[0] for g in got) < want:
        assert time.monotonic() < end, f"only {sum(g[0] for g in got)} of {want}"
        idx = r.take(0.2)
        if idx is None:
            continue
        assert idx != END
        dec, n, k = r.batch(idx)
        got.append((n, k, dec.slots[0, :int(dec.lens[0])].tobytes()))
        r.release(idx)
    return got


def test_decoded_batches_equal_the_python_decoder() -> None:
    dgrams = [encode_alertpkt(v, msg=f"m{i % 3}", sid=1000 + i, event_id=i, ts_sec=1764266630 + i)
              for i, v in enumerate(["snort", "snort-appid", "barnyard2", "barnyard2-32", "snort3"] * 4)]
    dgrams.insert(7, b"\0" * 100)  # no Alertpkt has this size: rejected, not decoded into an alert
    rx, tx = _pair()
    r = NativeReader(rx.fileno(), 8, SLOT_SIZE, mode=ALERTPKT)
    with rx, tx:
        for d in dgrams:
            tx.send(d)
        r.start()
        alerts, statuses, msgs = [], [], []
        seen = 0
        end = time.monotonic() + DEADLINE
        while seen < len(dgrams):
            assert time.monotonic() < end
            idx = r.take(0.2)
            if idx is None:
                continue
            dec, n, k = r.batch(idx)
            assert k >= 0  # no credentials asked for: C decoded every batch
            res = dec.result(n, r.decoded(idx, k))
            alerts.append(res.batch.alerts)
            msgs += [res.batch.strings[j] for j in res.batch.alerts["msg_idx"].tolist()]
            statuses += [(seen + i, why) for i, why in res.rejected]
            seen += n
            r.release(idx)
        r.stop()
        assert r.take(1.0) == END
        r.join()
    want = decode_datagrams(dgrams)
    got = np.concatenate(alerts)
    assert [(i, why) for i, why in want.rejected] == statuses == [(7, "bad_length")]
    for col in ("sid", "gid", "event_id", "ts_us", "source", "src_addr", "dst_port", "flags"):
        assert (got[col] == want.batch.alerts[col]).all(), col
    assert msgs == [want.batch.strings[j] for j in want.batch.alerts["msg_idx"].tolist()]
    info = r.info()
    assert info["state"] == "ended" and info["datagrams"] == len(dgrams)


def test_a_full_ring_waits_and_loses_nothing() -> None:
    """Two batches of one slot, nobody taking: the C thread fills both, then
    counts that it found the ring full and waits; every datagram comes out
    afterwards, in order (the back-pressure is the socket's queue)."""
    rx, tx = _pair()
    r = NativeReader(rx.fileno(), 1, 4096, mode=RAW, batches=2)
    with rx, tx:
        for i in range(6):
            tx.send(b"%d" % i + b"." * 100)
        r.start()
        _wait(lambda: r.info()["full_waits"] >= 1 and r.info()["ready"] == 2, "the ring fills")
        time.sleep(0.05)
        info = r.info()
        assert info["ready"] == 2 and info["datagrams"] == 2 and info["state"] == "running"
        got = _take_all(r, 6)
        assert [g[2][:1] for g in got] == [b"0", b"1", b"2", b"3", b"4", b"5"]
        assert all(k == -1 for _, k, _ in got)  # raw mode decodes nothing
        r.stop()
        assert r.take(1.0) == END
        r.join()
    info = r.info()
    assert info["full_waits"] >= 1 and info["full_s"] > 0 and info["datagrams"] == 6
    stats = Stats()
    r.account(stats)  # what an operator sees: the count, once
    r.account(stats)
    assert stats.extra["reader_ring_full"] == info["full_waits"]


def test_stop_under_load_drains_and_leaves_no_thread(tmp_path) -> None:
    """A sender keeps sending while the reader is told to drain: the C thread
    shuts the socket (the sender then gets EPIPE/ECONNREFUSED), every
    datagram the kernel accepted comes out, and the thread is gone."""
    path = str(tmp_path / "s")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 100_000))
    before = _threads()
    dgram = encode_alertpkt("snort", sid=5, event_id=1)
    sent = [0]
    done = threading.Event()

    def send() -> None:
        tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            while True:
                try:
                    tx.sendto(dgram, path)
                    sent[0] += 1
                except OSError:  # the reader shut the socket: the end
                    return
        finally:
            tx.close()
            done.set()

    r = NativeReader(rx.fileno(), 16, SLOT_SIZE, mode=ALERTPKT, linger_us=1000)
    r.start()
    assert _threads() == before + 1
    t = threading.Thread(target=send)
    t.start()
    received = 0
    taken = 0
    stopping = False
    end = time.monotonic() + DEADLINE
    while True:
        assert time.monotonic() < end
        if taken == 20 and not stopping:
            r.stop(drain=True)
            stopping = True
        idx = r.take(0.2)
        if idx is None:
            continue
        if idx == END:
            break
        _, n, k = r.batch(idx)
        assert k == n  # every one decoded
        received += n
        taken += 1
        r.release(idx)
    r.join()
    t.join(DEADLINE)
    assert done.is_set()
    rx.close()
    assert received == sent[0] and received > 0
    # the C thread was joined; the sender's OS thread may take a moment
    # longer to leave /proc after Python's join
    _wait(lambda: _threads() == before, "every thread gone")
    assert r.info()["state"] == "ended"


def test_a_failing_socket_ends_the_reader_at_once_with_its_error() -> None:
    rx, tx = _pair()
    r = NativeReader(rx.fileno(), 4, 4096)
    with rx, tx:
        tx.send(b"before")
        r.start()
        assert _take_all(r, 1)[0][2] == b"before"
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, rx.fileno())  # the socket goes: recvmmsg fails (ENOTSOCK)
            end = time.monotonic() + DEADLINE
            while (idx := r.take(0.2)) != END:
                assert idx is None and time.monotonic() < end
            err = r.failure()
            assert isinstance(err, OSError) and err.errno == 88  # ENOTSOCK
            assert r.info()["state"] == "failed"
            r.join()
            assert r.failure() is not None  # still known after the join
        finally:
            os.close(null)


def test_credentials_screen_in_c_and_leave_refused_batches_undecoded() -> None:
    rx, tx = _pair()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    me = np.array([os.getuid()], dtype=np.uint32)
    other = np.array([os.getuid() + 1], dtype=np.uint32)
    dgram = encode_alertpkt("barnyard2", sid=7, event_id=3)
    with rx, tx:
        for allow, decoded in ((me, True), (other, False)):
            r = NativeReader(rx.fileno(), 4, SLOT_SIZE, mode=ALERTPKT, credentials=(allow, None))
            tx.send(dgram)
            r.start()
            idx = None
            end = time.monotonic() + DEADLINE
            while idx is None:
                assert time.monotonic() < end
                idx = r.take(0.2)
            dec, n, k = r.batch(idx)
            assert n == 1 and int(dec.uids[0]) == os.getuid() and int(dec.pids[0]) == os.getpid()
            assert (k == 1) is decoded
            assert bool(dec.flags[0] & lib.INGEST_SLOT_REFUSED) is (not decoded)
            r.release(idx)
            r.join()


def test_setup_refuses_what_the_thread_could_not_stop_on_or_write_to() -> None:
    rx, tx = _pair(rcvtimeo=False)
    with rx, tx:
        with pytest.raises(ValueError, match="SO_RCVTIMEO"):
            NativeReader(rx.fileno(), 4, 4096)
    rx, tx = _pair()
    with rx, tx:
        with pytest.raises(ValueError):
            NativeReader(rx.fileno(), 257, 4096)  # more slots than one recvmmsg takes
        with pytest.raises(ValueError):
            NativeReader(rx.fileno(), 4, 4096, batches=0)
        r = NativeReader(rx.fileno(), 4, 4096)
        with pytest.raises(ValueError):
            r.release(0)  # never taken
        r.join()  # never started: nothing to wait for


def test_ring_memory_is_stated() -> None:
    # 4 batches of 64 Snort slots: about 17 MB per socket, the figure README states
    assert 16.5e6 < ring_bytes(64, SLOT_SIZE) < 17.5e6
