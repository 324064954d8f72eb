"""``ingest listen`` under socket activation with the real
``systemd-socket-activate``, and the unit files of ``contrib/systemd/``.
(The restart test is test_systemd_restart.py.)"""

from __future__ import annotations

import configparser
import os
import pathlib
import shlex
import shutil
import socket
import stat
import subprocess

import pytest

from ingest.cli import build_parser, config_from_args
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.ops.systemd import ListenFd, _match, socket_inputs

from ._activation import REPO, Holder, NotifyListener, need_activate, wait
from ._util import sqlite_rows

UNITS = REPO / "contrib" / "systemd"
SOCKET_UNITS = ("ingest-snort.socket", "ingest-eve.socket", "ingest-barnyard2-sync.socket")
EVE = (b'{"timestamp":"2025-11-27T18:03:50.123456+0000","flow_id":7,"event_type":"alert","src_ip":"10.0.0.1",'
       b'"src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP","alert":{"action":"allowed","gid":1,'
       b'"signature_id":3000001,"rev":1,"signature":"via the eve socket","category":"","severity":1}}\n')


# --- the unit files -------------------------------------------------------------

def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


def test_unit_files_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    # verify insists that ExecStart's program exists: point it at one that does
    exe = tmp_path / "bin" / "ingest"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    for name in ("ingest.service", *SOCKET_UNITS):
        text = (UNITS / name).read_text().replace("/usr/local/bin/ingest", str(exe))
        (tmp_path / name).write_text(text)
    r = subprocess.run([tool, "verify", *(f"./{n}" for n in ("ingest.service", *SOCKET_UNITS))],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    about_ours = [ln for ln in (r.stdout + r.stderr).splitlines()
                  if any(n in ln for n in ("ingest.service", *SOCKET_UNITS))]
    assert r.returncode == 0 and not about_ours, r.stdout + r.stderr


def test_units_pass_every_socket_to_the_input_it_serves():
    """ExecStart's inputs and the socket units fit one another under
    ingest's own matching (by path, else by FileDescriptorName)."""
    svc = _unit("ingest.service")["Service"]
    assert svc["Type"] == "notify" and svc["Sockets"].split() == list(SOCKET_UNITS)
    for key in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp", "ReadWritePaths", "User", "WatchdogSec"):
        assert svc.get(key), key
    argv = shlex.split(svc["ExecStart"].replace("\\\n", " "))
    cfg = config_from_args(build_parser().parse_args(argv[1:]))
    kinds = {"ListenDatagram": socket.SOCK_DGRAM, "ListenStream": socket.SOCK_STREAM,
             "ListenSequentialPacket": socket.SOCK_SEQPACKET}
    passed = []
    for name in SOCKET_UNITS:
        sec = _unit(name)["Socket"]
        assert sec["Service"] == "ingest.service" and sec.get("Accept", "no") == "no"
        assert sec["SocketMode"] == "0660" and sec["SocketGroup"]
        (key, path), = [(k, v) for k, v in sec.items() if k in kinds]
        passed.append((ListenFd(-1, sec["FileDescriptorName"]), path, kinds[key]))
    inputs = socket_inputs(cfg)
    for by_path in (True, False):  # each fits by its path, and by its name alone
        got = _match(inputs, [(fd, path if by_path else None) for fd, path, _ in passed])
        assert [g.type for g in got] == [t for _, _, t in passed]
        assert [g.path for g in got] == [p for _, p, _ in passed]


# --- adoption, for real -----------------------------------------------------------

def _poke(path: pathlib.Path) -> None:
    """systemd-socket-activate starts its program on the first activity."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(encode_alertpkt("snort", sid=1000, msg="first", event_id=1), str(path))
    s.close()


def test_adopts_all_three_kinds_notifies_and_leaves_the_sockets_alone(tmp_path):
    need_activate()
    snort, by2, eve = tmp_path / "snort_alert", tmp_path / "by2.sock", tmp_path / "eve.sock"
    db = tmp_path / "a.db"
    notify = NotifyListener(tmp_path / "notify.sock")
    # snort by its path, barnyard2-sync by its name, eve-stream by its path
    holder = Holder(tmp_path, [("datagram", "snort", str(snort)), ("seqpacket", "barnyard2-sync", str(by2)),
                               ("stream", None, str(eve))],
                    ["--snort", str(snort), "--barnyard2-sync", str(tmp_path / "elsewhere" / "by2"),
                     "--eve-stream", str(eve), "--sink", f"sqlite:{db}", "--dead-letter", str(tmp_path / "dl"),
                     "--stats-interval", "0"],
                    notify.path, extra_env={"WATCHDOG_USEC": "200000"}, loop=False)
    try:
        wait(lambda: snort.exists(), "the snort socket", holder.proc, holder.err)
        modes = {}
        _poke(snort)
        wait(lambda: notify.ready_pids() == [holder.proc.pid], "READY=1 from ingest", holder.proc, holder.err)
        for p in (snort, by2, eve):
            modes[p] = os.lstat(p)
        # Barnyard2's acknowledged mode: the ack comes once the alert is stored
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(str(by2))
        c.send(encode_alertpkt("barnyard2", sid=1001, msg="by2 sync", event_id=2,
                               packet=ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1, 2)))
        c.settimeout(60)
        assert c.recv(16) == b"\x01"
        c.close()
        e = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        e.connect(str(eve))
        e.sendall(EVE)
        e.close()
        wait(lambda: len(sqlite_rows(db, "SELECT sid FROM alerts")) == 3, "3 alerts", holder.proc, holder.err)
        wait(lambda: len(notify.with_field("WATCHDOG", "1")) >= 3, "WATCHDOG=1 every 100 ms", holder.proc,
             holder.err)
        assert holder.stop() == 0, holder.stderr()
    finally:
        if holder.proc.poll() is None:
            holder.kill()
        notify.close()
    err = holder.stderr()
    assert "adopted 3 sockets from the service manager" in err, err
    assert sorted(r[0] for r in sqlite_rows(db, "SELECT sid FROM alerts")) == [1000, 1001, 3000001]
    assert len(notify.with_field("STOPPING", "1")) == 1
    # never unlinked, chmod'ed or replaced: the manager's files, as it made them
    for p, st in modes.items():
        now = os.lstat(p)
        assert stat.S_ISSOCK(now.st_mode) and (now.st_ino, now.st_mode) == (st.st_ino, st.st_mode), p


@pytest.mark.parametrize("case", ["missing", "extra", "wrong-type"])
def test_sockets_that_do_not_fit_are_exit_2(tmp_path, case):
    need_activate()
    sock = tmp_path / "s.sock"
    other = tmp_path / "other.sock"
    fdname, args, expect = {
        "missing": ("snort", ["--snort", str(sock), "--eve-stream", str(other)],
                    f"none for --eve-stream {other}"),
        "extra": ("stray", ["--snort", str(other)], "FileDescriptorName=stray"),
        "wrong-type": ("eve-stream", ["--eve-stream", str(sock)], "needs a stream (ListenStream=) socket"),
    }[case]
    notify = NotifyListener(tmp_path / "notify.sock")
    holder = Holder(tmp_path, [("datagram", fdname, str(sock))],
                    [*args, "--sink", f"sqlite:{tmp_path / 'a.db'}", "--dead-letter", ""], notify.path, loop=False)
    try:
        wait(lambda: sock.exists(), "the socket", holder.proc, holder.err)
        _poke(sock)
        assert holder.wait(60) == 2, holder.stderr()
    finally:
        if holder.proc.poll() is None:
            holder.kill()
        notify.close()
    err = holder.stderr()
    assert expect in err and "ingest: error:" in err, err
    assert not other.exists()  # nothing was bound behind the manager's back
    assert notify.ready_pids() == []
