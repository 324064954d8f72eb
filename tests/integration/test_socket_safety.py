"""Socket files another local user could reach: a socket in a directory
anyone may write is warned about, a socket swapped under us is reported (and
left alone at exit), and winning the race against the private-directory bind
reaches nothing."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def test_socket_in_a_world_writable_directory_is_warned_about(tmp_path, run_ingest):
    d = tmp_path / "run"
    d.mkdir()
    os.chmod(d, 0o777)
    sock = d / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", ""], wait_for=[sock])
    assert p.stop()[0] == 0
    assert f"warning: {d} is writable by every user and not sticky" in p.stderr()
    os.chmod(d, 0o1777)
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", ""], wait_for=[sock])
    assert p.stop()[0] == 0
    assert "not sticky" not in p.stderr()


def test_a_swapped_socket_is_reported_and_left_alone(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", "",
                    "--stats-interval", "0.3"], wait_for=[sock])
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    squatter.bind(str(tmp_path / "squat"))
    os.rename(tmp_path / "squat", sock)          # engines now write to the squatter
    ino = os.lstat(sock).st_ino
    end = time.monotonic() + 30
    # the log says so, and so does the periodic stats line (an operator watches that one)
    while not ("is no longer ours" in p.stderr()
               and any(x.startswith("ingest: stats ") and "socket_replaced=1" in x for x in p.stderr().splitlines())):
        assert time.monotonic() < end and p.proc.poll() is None, p.stderr()
        time.sleep(0.1)
    rc, st = p.stop()
    squatter.close()
    assert rc == 0 and st["socket_replaced"] == 1
    assert f"socket {sock} is no longer ours" in p.stderr()
    assert os.lstat(sock).st_ino == ino             # not ours: not removed at exit


_RACE = r'''
import os, socket, sys
from ingest.sockets import bind_unix

parent, trap, group = sys.argv[1], sys.argv[2], int(sys.argv[3])

def attacker(event, args):
    # the worst moment: just before ingest chowns/chmods the socket it bound
    # in its private directory, rename that directory away and put a link
    # to a directory of the attacker's in its place
    if event in ("os.chmod", "os.chown"):
        for n in os.listdir(parent):
            if n.startswith(".ing") and not os.path.islink(os.path.join(parent, n)):
                os.rename(os.path.join(parent, n), os.path.join(parent, "moved" + n))
                os.symlink(trap, os.path.join(parent, n))

sys.addaudithook(attacker)
try:
    b = bind_unix(os.path.join(parent, "snort_alert"), socket.SOCK_DGRAM, mode=0o666, group=group)
    print("bound", oct(os.lstat(b.path).st_mode & 0o777))
except Exception as e:
    print("refused", e)
'''


def test_private_directory_swapped_before_chmod_reaches_nothing(tmp_path):
    """An attacker who wins the race in a directory others may write (the
    private directory renamed away, a link planted in its place, right
    before chown/chmod) must not get ingest to chmod or chown their target."""
    parent = tmp_path / "run"
    parent.mkdir()
    os.chmod(parent, 0o777)
    trap = tmp_path / "trap"
    trap.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("secret")
    os.chmod(victim, 0o600)
    (trap / "s").symlink_to(victim)
    other_gid = 1 if os.getgid() != 1 else 2
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", _RACE, str(parent), str(trap), str(other_gid)],
                       env=dict(os.environ, PYTHONPATH=repo), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = os.stat(victim)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == os.getgid(), r.stdout
    assert victim.read_text() == "secret"
    if r.stdout.startswith("bound"):  # ... and the socket got exactly what was asked
        assert r.stdout.split()[1] == "0o666"
