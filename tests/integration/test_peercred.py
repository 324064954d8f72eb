"""Peer-credential allow-lists, end to end: two local users created here
(root only; skipped otherwise), each sending from a child process that has
dropped to its uid, to all four socket kinds (Snort datagrams, EVE
datagrams, an EVE stream, Barnyard2's sync seqpacket).  The refused user's
alerts are not stored; the allowed user's are; the counters, the log and
the dead-letter file say who was refused."""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import traceback

import pytest

from ingest import deadletter
from ingest.encode import encode_alertpkt, ether_ipv4

from ..eve_records import ALERT
from ._util import rows, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="creating a second local user needs root and useradd")


@contextlib.contextmanager
def local_user():
    """A throw-away system user with its own group: (name, uid, gid)."""
    name = "ingpc" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        yield name, pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)  # if userdel left it


@pytest.fixture
def two_users():
    with local_user() as a, local_user() as b:
        yield a, b


@pytest.fixture
def sockdir():
    """Sockets where the other users can reach them (pytest's tmp_path is
    private to root)."""
    d = tempfile.mkdtemp(prefix="ingest-pc-")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(uid: int, gid: int, fn) -> int:
    """Run fn in a forked child that has dropped to uid/gid (no
    supplementary groups); returns the child's pid after it exited 0."""
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = fn() or 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"sender as uid {uid} failed"
    return pid


PKT = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)


ALL = ("snort", "eve_dgram", "eve_stream", "barnyard2_sync")


def send_all(paths: dict[str, str], base: int, ack_expected: bool = True, kinds=ALL):
    """What one user sends: 3 Snort datagrams (sids base+0..2), 3 EVE
    datagrams (base+10..), 3 EVE lines on a stream (base+20..), 1
    acknowledged Barnyard2 alert (base+30), to the inputs named in kinds."""
    def run() -> int:
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for i in range(3):
            if "snort" in kinds:
                d.sendto(encode_alertpkt("snort", sid=base + i, msg="snort", event_id=base + i, packet=PKT),
                         paths["snort"])
            if "eve_dgram" in kinds:
                d.sendto(ALERT % (base + 10 + i, base + 10 + i, i), paths["eve_dgram"])
        d.close()
        if "eve_stream" in kinds:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(paths["eve_stream"])
            with contextlib.suppress(OSError):  # a refused connection may be closed under us
                s.sendall(b"".join(ALERT % (base + 20 + i, base + 20 + i, i) + b"\n" for i in range(3)))
            s.close()
        if "barnyard2_sync" not in kinds:
            return 0
        q = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        q.connect(paths["barnyard2_sync"])
        q.settimeout(30)
        got = b""
        with contextlib.suppress(OSError):
            q.send(encode_alertpkt("barnyard2", sid=base + 30, msg="sync", event_id=base + 30, packet=PKT))
            got = q.recv(1)  # the ack (allowed) or the end of a refused connection
        q.close()
        return 0 if (len(got) == 1) == ack_expected else 3
    return run


def _start(run_ingest, tmp_path, sockdir, extra: list[str]):
    paths = {k: os.path.join(sockdir, k) for k in ("snort", "eve_dgram", "eve_stream", "barnyard2_sync")}
    db, dl = tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", paths["snort"], "--eve-dgram", paths["eve_dgram"],
                    "--eve-stream", paths["eve_stream"], "--barnyard2-sync", paths["barnyard2_sync"],
                    "--socket-mode", "0666", "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--stats-interval", "0", *extra],
                   wait_for=[pathlib.Path(v) for v in paths.values()])
    return p, paths, db, dl


def _sids(db) -> set[int]:
    return {r["sid"] for r in rows(db, "SELECT sid FROM alerts")}


def test_refused_user_stored_nothing_on_all_four_socket_kinds(tmp_path, run_ingest, two_users, sockdir):
    (a_name, a_uid, a_gid), (b_name, b_uid, b_gid) = two_users
    p, paths, db, dl = _start(run_ingest, tmp_path, sockdir, ["--allow-uid", a_name])
    a_pid = as_user(a_uid, a_gid, send_all(paths, 1000, ack_expected=True))
    b_pid = as_user(b_uid, b_gid, send_all(paths, 2000, ack_expected=False))
    want = {1000, 1001, 1002, 1010, 1011, 1012, 1020, 1021, 1022, 1030}
    wait_until(lambda: _sids(db) >= want, p, "the allowed user's alerts")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert _sids(db) == want  # nothing of user b's
    origin = {k: f"{k.replace('_', '-')}:{v}" for k, v in paths.items()}
    assert st["peer_refused"] == {origin["snort"]: 3, origin["eve_dgram"]: 3, origin["eve_stream"]: 1,
                                  origin["barnyard2_sync"]: 1}
    assert st["peer_unknown"] == {}
    assert st["dropped"] == {"peer_refused": 6}  # the datagrams (connections are not input)
    assert st["senders"] == {str(a_uid): 10}
    entries = [h for h, _ in deadletter.read(str(dl))]
    assert len(entries) == 6
    assert {(h["reason"], h["uid"], h["gid"], h["pid"]) for h in entries} == {
        ("peer_refused", b_uid, b_gid, b_pid)}
    assert sorted(h["origin"] for h in entries) == sorted([origin["snort"]] * 3 + [origin["eve_dgram"]] * 3)
    err = p.stderr()
    for k in paths:  # said once per input and uid (the three datagrams in one line)
        lines = [ln for ln in err.splitlines() if f"{origin[k]}: refused" in ln]
        assert len(lines) == 1 and f"uid {b_uid} gid {b_gid}" in lines[0], err
    assert str(a_pid) not in err


def test_per_input_lists_and_groups(tmp_path, run_ingest, two_users, sockdir):
    """--allow-gid admits by primary group; ID:PATH gives one input its own
    list (the global entries then do not apply to it)."""
    (_a_name, a_uid, a_gid), (b_name, b_uid, b_gid) = two_users
    stream = os.path.join(sockdir, "eve_stream")
    p, paths, db, _dl = _start(run_ingest, tmp_path, sockdir,
                               ["--allow-gid", str(a_gid), "--allow-uid", f"{b_name}:{stream}"])
    as_user(a_uid, a_gid, send_all(paths, 1000, kinds=("snort", "eve_dgram", "barnyard2_sync")))
    as_user(b_uid, b_gid, send_all(paths, 2000, kinds=("eve_stream",)))
    as_user(a_uid, a_gid, send_all(paths, 3000, kinds=("eve_stream",)))  # a: refused on the stream only
    want = {1000, 1001, 1002, 1010, 1011, 1012, 1030, 2020, 2021, 2022}
    wait_until(lambda: _sids(db) >= want, p, "the allowed alerts")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert _sids(db) == want
    assert st["peer_refused"] == {f"eve-stream:{stream}": 1}
    assert st["senders"] == {str(a_uid): 7, str(b_uid): 3}


def test_unknown_user_or_group_is_a_startup_error(tmp_path, run_ingest, sockdir):
    s = os.path.join(sockdir, "snort")
    for flag in (["--allow-uid", "no-such-user-ingest"], ["--allow-gid", "no-such-group-ingest"],
                 ["--allow-uid", f"0:{sockdir}/elsewhere"]):
        p = run_ingest(["listen", "--snort", s, "--sink", "null:", *flag])
        assert p.proc.wait(timeout=60) == 2
        assert "no such" in p.stderr() or "not one of the socket inputs" in p.stderr()
        assert not os.path.exists(s)  # nothing was bound
