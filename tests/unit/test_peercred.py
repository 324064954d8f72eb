"""The credentialed batch receive (csrc/recv.c ingest_recv_batch_creds) over
real socketpairs, and the allow-list parsing (ingest.ops.peercred)."""

from __future__ import annotations

import os
import pwd
import socket
import struct

import numpy as np
import pytest

from ingest.alertpkt import SlotDecoder
from ingest.native import ffi, lib
from ingest.ops.peercred import NOBODY, PeerPolicy, RefusalLog, policies, screen, split_entry
from ingest.sources.dgram import compact
from ingest.stats import Stats

NOCRED, REFUSED = lib.INGEST_SLOT_NOCRED, lib.INGEST_SLOT_REFUSED


def _pair(passcred: bool = True) -> tuple[socket.socket, socket.socket]:
    rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    if passcred:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    rx.settimeout(0.5)  # SO_RCVTIMEO: recv returns 0 rather than block
    return rx, tx


def _send_as(tx: socket.socket, data: bytes, uid: int, gid: int) -> None:
    """Send claiming uid/gid in SCM_CREDENTIALS (the kernel allows it to root only)."""
    cred = struct.pack("=iII", os.getpid(), uid, gid)
    tx.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, cred)])


def test_every_datagram_comes_with_its_sender() -> None:
    rx, tx = _pair()
    with rx, tx:
        for i in range(5):
            tx.send(b"x" * (i + 1))
        dec = SlotDecoder(8, 4096)
        dec.with_credentials()
        n = dec.recv(rx.fileno())
        assert n == 5
        assert dec.lens[:n].tolist() == [1, 2, 3, 4, 5]
        assert dec.pids[:n].tolist() == [os.getpid()] * 5
        assert dec.uids[:n].tolist() == [os.getuid()] * 5
        assert dec.gids[:n].tolist() == [os.getgid()] * 5
        assert not dec.flags[:n].any()


def test_no_passcred_means_unknown_sender() -> None:
    rx, tx = _pair(passcred=False)
    with rx, tx:
        tx.send(b"hello")
        dec = SlotDecoder(4, 4096)
        dec.with_credentials()
        assert dec.recv(rx.fileno()) == 1
        assert dec.flags[0] == NOCRED
        assert (int(dec.pids[0]), int(dec.uids[0]), int(dec.gids[0])) == (0, NOBODY, NOBODY)


@pytest.mark.parametrize("uids, gids, refused", [
    ([], [], False),                      # no list: everyone
    ("me", [], False),                    # our uid
    ("other", [], True),                  # another uid only
    ("other", "me", False),               # our gid is on the gid list
    ([], "other", True),
])
def test_allow_list_checked_in_c(uids, gids, refused) -> None:
    me_u, me_g = os.getuid(), os.getgid()

    def arr(spec, me):
        if spec == "me":
            return np.array([me], np.uint32)
        if spec == "other":
            return np.array([me + 4242, me + 4243], np.uint32)
        return None

    rx, tx = _pair()
    with rx, tx:
        tx.send(b"a")
        tx.send(b"b")
        dec = SlotDecoder(4, 4096)
        dec.with_credentials(arr(uids, me_u), arr(gids, me_g))
        assert dec.recv(rx.fileno()) == 2
        assert dec.flags[:2].tolist() == [REFUSED if refused else 0] * 2


def test_passed_descriptors_are_closed() -> None:
    """A peer passing descriptors (SCM_RIGHTS) must not make us hold them."""
    rx, tx = _pair()
    with rx, tx:
        before = len(os.listdir("/proc/self/fd"))
        r, w = os.pipe()
        try:
            for _ in range(3):
                tx.sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("ii", r, w))])
        finally:
            os.close(r)
            os.close(w)
        dec = SlotDecoder(4, 4096)
        dec.with_credentials()
        assert dec.recv(rx.fileno()) == 3
        assert dec.uids[:3].tolist() == [os.getuid()] * 3  # the credentials came first
        assert len(os.listdir("/proc/self/fd")) == before


def test_bad_arguments_are_refused() -> None:
    buf = np.zeros(4096, np.uint8)
    lens = np.zeros(1, np.uint32)
    flags = np.zeros(1, np.uint8)
    cm = np.zeros(16, np.uint64).view(np.uint8)
    ids = np.zeros(1, np.uint32)
    pids = np.zeros(1, np.int32)

    def call(cmsg_size: int, cmsgs=cm, allow_n: int = 0) -> int:
        return lib.ingest_recv_batch_creds(
            0, ffi.from_buffer("uint8_t[]", buf), 4096, 1, ffi.from_buffer("uint32_t[]", lens),
            ffi.from_buffer("uint8_t[]", flags), 0, ffi.from_buffer("uint8_t[]", cmsgs), cmsg_size,
            ffi.from_buffer("int32_t[]", pids), ffi.from_buffer("uint32_t[]", ids),
            ffi.from_buffer("uint32_t[]", ids), ffi.NULL, allow_n, ffi.NULL, 0)

    assert call(16) == lib.INGEST_EINVAL  # no room for the credentials
    assert call(36) == lib.INGEST_EINVAL  # not a multiple of the word size
    assert call(64, cm[1:]) == lib.INGEST_EINVAL  # misaligned control buffers
    assert call(64, allow_n=1) == lib.INGEST_EINVAL  # a list length without the list


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="claiming another uid in SCM_CREDENTIALS needs root")


@needs_root
def test_mixed_batch_screened_and_compacted(caplog) -> None:
    """Refused and unknown datagrams leave the batch (counted, kept with
    their sender); the allowed ones move to the front, in order."""
    rx, tx = _pair()
    with rx, tx:
        plan = [(0, b"ok-0"), (5001, b"bad-1"), (0, b"ok-2"), (5002, b"bad-3"), (0, b"ok-4")]
        for uid, data in plan:
            _send_as(tx, data, uid, 0 if uid == 0 else uid)
        dec = SlotDecoder(8, 4096)
        dec.with_credentials(np.array([0], np.uint32), None)
        n = dec.recv(rx.fileno())
        assert n == 5
        assert dec.flags[:n].tolist() == [0, REFUSED, 0, REFUSED, 0]
        stats = Stats()
        kept: list[tuple[int, str, dict]] = []
        caplog.set_level("INFO", logger="ingest")
        good = screen(dec, n, "snort:/x", stats, RefusalLog("snort:/x"), lambda i, r, m: kept.append((i, r, m)))
        assert good is not None and good.tolist() == [0, 2, 4]
        assert [(i, r, m["uid"], m["pid"]) for i, r, m in kept] == [
            (1, "peer_refused", 5001, os.getpid()), (3, "peer_refused", 5002, os.getpid())]
        assert compact(dec, good) == 3
        assert [bytes(dec.slots[j, :dec.lens[j]]) for j in range(3)] == [b"ok-0", b"ok-2", b"ok-4"]
        s = stats.snapshot()
        assert s["peer_refused"] == {"snort:/x": 2}
        assert s["dropped"] == {"peer_refused": 2}
        assert s["senders"] == {"0": 3}
        assert s["received"] == 2  # the refused ones; the others are counted when decoded
        assert "uid 5001" in caplog.text and "uid 5002" in caplog.text
        assert {getattr(r, "input", None) for r in caplog.records} == {"snort:/x"}


def test_refusals_logged_once_per_uid_then_rate_limited(caplog) -> None:
    caplog.set_level("INFO", logger="ingest")
    log = RefusalLog("eve-stream:/s", "connection", interval=3600)
    for _ in range(50):
        log.note("peer_refused", 1234, 99, 1234)
    log.note("peer_refused", 4321, 98, 4321)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "refused 1 connection from uid 1234 gid 1234 (pid 99)" in lines[0]
    assert "uid 4321" in lines[1]


def test_policies_global_and_per_input(tmp_path) -> None:
    a, b = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    root = pwd.getpwuid(0).pw_name
    pol = policies([root, f"1001:{b}"], ["7"], [a, b])
    assert pol[a] == PeerPolicy(frozenset({0}), frozenset({7}), f"uid {root}, gid 7")
    assert pol[b].uids == frozenset({1001}) and pol[b].gids == frozenset()  # its own entries only
    assert pol[b].allows(1001, 5) and not pol[b].allows(0, 7)
    assert not policies([], [], [a])[a].active
    with pytest.raises(ValueError, match="no such user"):
        policies(["no-such-user-ingest"], [], [a])
    with pytest.raises(ValueError, match="no such group"):
        policies([], ["no-such-group-ingest"], [a])
    with pytest.raises(ValueError, match="not one of the socket inputs"):
        policies([f"0:{tmp_path}/c.sock"], [], [a])
    with pytest.raises(ValueError, match="not a valid id"):
        policies([str(NOBODY)], [], [a])
    assert split_entry("snort:/run/x:y") == ("snort", "/run/x:y")
