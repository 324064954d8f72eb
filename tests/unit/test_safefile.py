"""ingest.safefile on real files, FIFOs, sockets and links."""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest

from ingest import bookmark
from ingest.safefile import NotRegularFile, UnsafeFileError, check_output, open_input, open_output


def _opens_at_once(path, **kw):
    """open_input(path), failing the test instead of hanging if it blocks."""
    out: list = []

    def run() -> None:
        try:
            out.append(open_input(str(path), **kw))
        except OSError as e:
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert out, "open_input blocked"
    return out[0]


def test_open_input_regular_file(tmp_path):
    f = tmp_path / "a"
    f.write_bytes(b"x" * 10)
    fd = _opens_at_once(f)
    try:
        assert os.read(fd, 100) == b"x" * 10 and os.get_blocking(fd)
    finally:
        os.close(fd)


def test_open_input_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "sock"))
    try:
        for name, what in (("fifo", "a FIFO"), ("dir", "a directory"), ("sock", "not a regular file")):
            e = _opens_at_once(tmp_path / name)
            assert isinstance(e, NotRegularFile) and what in str(e), (name, e)
    finally:
        s.close()


def test_open_input_links_only_when_asked(tmp_path):
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to(tmp_path / "fifo")
    assert isinstance(_opens_at_once(tmp_path / "link"), NotRegularFile)
    fd = _opens_at_once(tmp_path / "link", follow_symlinks=True)
    os.close(fd)
    assert isinstance(_opens_at_once(tmp_path / "to_fifo", follow_symlinks=True), NotRegularFile)
    assert isinstance(_opens_at_once(tmp_path / "missing"), FileNotFoundError)


def test_open_output_creates_with_the_mode_asked(tmp_path):
    fd = open_output(str(tmp_path / "out"), what="test output", mode=0o640)
    os.close(fd)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_open_output_refuses_a_file_others_may_write(tmp_path, mode):
    out = tmp_path / "out"
    out.write_bytes(b"")
    os.chmod(out, mode)
    with pytest.raises(UnsafeFileError, match="writable by its group or by others"):
        open_output(str(out), what="test output", mode=0o640)
    os.close(open_output(str(out), what="test output", mode=0o640, allow_foreign=True))


def test_open_output_refuses_links_and_fifos_whatever_the_flag(tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(UnsafeFileError):
            open_output(str(tmp_path / name), what="test output", mode=0o600, allow_foreign=True)


def test_character_devices_are_fine(tmp_path):
    os.close(open_output("/dev/null", what="test output", mode=0o600))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_open_output_refuses_another_users_file(tmp_path):
    out = tmp_path / "out"
    out.write_bytes(b"")
    os.chown(out, 65534, 65534)
    os.chmod(out, 0o600)
    with pytest.raises(UnsafeFileError, match="owned by uid 65534"):
        check_output(str(out), what="test output")


def test_world_writable_directory_needs_the_sticky_bit(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(UnsafeFileError, match="not sticky"):
        check_output(str(d / "out"), what="test output")
    os.chmod(d, 0o1777)
    check_output(str(d / "out"), what="test output")


def test_bookmark_checker_names_the_field():
    c = bookmark.Checker("/x/bm")
    with pytest.raises(bookmark.BookmarkError, match=r"bookmark /x/bm is damaged: field 'a.offset'"):
        c.uint({"offset": True}, "offset", "a")  # a JSON true is no offset
    assert c.uint({"offset": 0}, "offset") == 0
    assert c.uint({"inode": None}, "inode", nullable=True) is None


def test_bookmark_that_is_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "bm")
    with pytest.raises(bookmark.BookmarkError, match="FIFO"):
        bookmark.load(str(tmp_path / "bm"))
