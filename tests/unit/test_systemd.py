"""ingest.ops.systemd on real sockets: matching passed descriptors to the
inputs, sd_listen_fds' environment rules, sd_notify to path and abstract
addresses."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from ingest.ops import systemd as sd
from ingest.ops.systemd import ActivationError, ListenFd, SocketInput
from ingest.sockets import bind_unix, pass_sockets
from ingest.stats import Stats

DGRAM, STREAM, SEQPACKET = socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_SEQPACKET


@pytest.fixture
def bound(tmp_path):
    """bound(type, name) -> (raw fd, path): a Unix socket bound (and for
    stream/seqpacket listening) in tmp_path, detached as a manager passes it."""
    made: list[int] = []

    def make(kind: int, name: str, listen: bool = True) -> tuple[int, str]:
        path = str(tmp_path / name)
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(path)
        if kind != DGRAM and listen:
            s.listen(8)
        fd = s.detach()
        made.append(fd)
        return fd, path

    yield make
    for fd in made:
        try:
            os.close(fd)
        except OSError:
            pass  # adopted and closed by the test


def inp(kind: str, path: str) -> SocketInput:
    t = {"snort": DGRAM, "barnyard2": DGRAM, "eve-dgram": DGRAM, "eve-stream": STREAM,
         "barnyard2-sync": SEQPACKET}[kind]
    return SocketInput(kind, os.path.abspath(path), t)


def close_all(adopted) -> None:
    for b in adopted.values():
        b.remove()


def test_matched_by_path_then_by_name(bound, tmp_path):
    fd1, p1 = bound(DGRAM, "snort_alert")
    fd2, p2 = bound(STREAM, "eve.sock")
    fd3, _ = bound(SEQPACKET, "elsewhere")  # bound somewhere else: matched by its name
    inputs = [inp("snort", p1), inp("eve-stream", p2), inp("barnyard2-sync", str(tmp_path / "by2"))]
    got = sd.adopt_sockets(inputs, [ListenFd(fd3, "barnyard2-sync"), ListenFd(fd1, "unknown"),
                                    ListenFd(fd2, "snort")])  # a misleading name: the path wins
    try:
        assert {i.kind: b.sock.fileno() for i, b in got.items()} == {
            "snort": fd1, "eve-stream": fd2, "barnyard2-sync": fd3}
        assert all(b.adopted for b in got.values())
        assert os.get_inheritable(fd1) is False
    finally:
        close_all(got)


def test_matched_by_file_name(bound, tmp_path):
    fd, _ = bound(DGRAM, "x")
    got = sd.adopt_sockets([inp("snort", str(tmp_path / "sub" / "0_snort_alert"))], [ListenFd(fd, "0_snort_alert")])
    close_all(got)
    assert len(got) == 1


def test_wrong_type_is_refused_and_says_which(bound):
    fd, p = bound(DGRAM, "eve.sock")
    with pytest.raises(ActivationError, match=r"passed socket \d+ .* is a datagram \(ListenDatagram=\) socket; "
                                              r"--eve-stream .*eve.sock needs a stream \(ListenStream=\)"):
        sd.adopt_sockets([inp("eve-stream", p)], [ListenFd(fd, "eve-stream")])
    with pytest.raises(OSError):
        os.fstat(fd)  # closed on the error: nothing half-adopted


def test_not_listening_is_refused(bound):
    fd, p = bound(STREAM, "eve.sock", listen=False)
    with pytest.raises(ActivationError, match="not listening.*Accept=no"):
        sd.adopt_sockets([inp("eve-stream", p)], [ListenFd(fd, "eve-stream")])


def test_extra_socket_is_refused(bound):
    fd1, p1 = bound(DGRAM, "snort_alert")
    fd2, _ = bound(DGRAM, "other")
    with pytest.raises(ActivationError, match=r"FileDescriptorName=stray, bound to .*other\): no input takes it"):
        sd.adopt_sockets([inp("snort", p1)], [ListenFd(fd1, "snort"), ListenFd(fd2, "stray")])


def test_missing_socket_is_refused(bound, tmp_path):
    fd, p = bound(DGRAM, "snort_alert")
    with pytest.raises(ActivationError, match=r"none for --eve-stream .*eve.sock"):
        sd.adopt_sockets([inp("snort", p), inp("eve-stream", str(tmp_path / "eve.sock"))], [ListenFd(fd, "snort")])


def test_ambiguous_name_is_refused(bound, tmp_path):
    fd, _ = bound(DGRAM, "x")
    with pytest.raises(ActivationError, match="could serve --snort .*a, --snort .*b"):
        sd.adopt_sockets([inp("snort", str(tmp_path / "a")), inp("snort", str(tmp_path / "b"))],
                         [ListenFd(fd, "snort")])


def test_not_a_unix_socket_is_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    fd = s.detach()
    try:
        with pytest.raises(ActivationError, match="AF_INET socket; ingest's inputs are Unix sockets"):
            sd.adopt_sockets([inp("snort", "/nonexistent/s")], [ListenFd(fd, "snort")])
    finally:
        os.close(fd)


def test_adopted_socket_is_handed_out_never_unlinked_nor_chmoded(bound):
    fd, p = bound(DGRAM, "snort_alert")
    os.chmod(p, 0o620)
    got = sd.adopt_sockets([inp("snort", p)], [ListenFd(fd, "snort")])
    pass_sockets({(i.type, i.path): b for i, b in got.items()})
    b = bind_unix(p, DGRAM, mode=0o600)  # what a source does: gets the passed socket
    assert b.adopted and b.sock.fileno() == fd and b.still_ours()
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o620
    b.remove()
    assert stat.S_ISSOCK(os.lstat(p).st_mode)  # still there: it is the manager's


def test_listen_fds_environment_rules():
    other = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert sd.listen_fds(other) == [] and other == {}  # inherited: not ours, and unset
    assert sd.listen_fds({}) == []
    with pytest.raises(ActivationError, match="names 1 descriptors, LISTEN_FDS says 2"):
        sd.listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a"})
    with pytest.raises(ActivationError, match="not numbers"):
        sd.listen_fds({"LISTEN_PID": "x", "LISTEN_FDS": "1"})
    kept = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    sd.listen_fds(kept, unset_environment=False)
    assert "LISTEN_FDS" in kept


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_to_path_and_abstract_address(tmp_path, abstract):
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"ingest-test-{os.getpid()}-{id(rx)}"
        rx.bind("\0" + name)
        value = "@" + name
    else:
        rx.bind(str(tmp_path / "notify"))
        value = str(tmp_path / "notify")
    rx.settimeout(5)
    n = sd.Notifier.from_environment({"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "2000000"})
    assert n is not None and n.watchdog_usec == 2_000_000
    try:
        assert n.ready("ok")
        assert rx.recv(4096).decode().split("\n") == ["READY=1", f"MAINPID={os.getpid()}", "STATUS=ok"]
        n.watchdog()
        assert rx.recv(4096) == b"WATCHDOG=1"
        n.stopping()
        assert rx.recv(4096).startswith(b"STOPPING=1\n")
    finally:
        n.close()
        rx.close()


def test_notify_environment_rules(tmp_path, caplog):
    assert sd.Notifier.from_environment({}) is None
    assert sd.Notifier.from_environment({"NOTIFY_SOCKET": "relative"}) is None
    n = sd.Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "1000",
                                      "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n is not None and n.watchdog_usec == 0  # the watchdog is another process's
    assert not n.send("STATUS=x") and not n.send("STATUS=y")  # a manager gone: never fatal
    assert caplog.text.count("cannot notify the service manager") == 1
    n.close()


def test_status_line_has_rates():
    st = Stats()
    r = sd.Rates(st)
    st.add_input(100, 90)
    st.dispatched["sqlite:a.db"] = 90
    st.add_dropped("queue_full", 10)
    line = r.line()
    assert line.startswith("received ") and "/s, decoded " in line and "sqlite:a.db " in line
    assert "dropped 10 malformed 0 (total)" in line
