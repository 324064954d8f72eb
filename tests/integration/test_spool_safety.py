"""The Unified2 spool follower as a real process, against spools and
bookmarks an attacker or an accident controls: tampered and damaged
bookmarks, FIFOs / directories / links named like spool files, files that
shrink, an archive directory with something in the way."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from ..unit import u2writer as W
from ._util import event_ids, wait_until

pytestmark = pytest.mark.slow

DEADLINE = 60.0


def events(*ids: int) -> bytes:
    return b"".join(W.event_v4(104, event_id=i, sec=1_700_000_000 + i, sid=2000 + i)
                    + W.packet(event_id=i, event_second=1_700_000_000 + i, data=b"p" * 40) for i in ids)


def listen(run_ingest, tmp_path, *extra: str, wait: bool = True):
    args = ["listen", "--unified2", str(tmp_path / "spool" / "snort.u2"), "--sink",
            f"sqlite:{tmp_path / 'a.db'}", "--dead-letter", "", "--stats-interval", "0", *extra]
    return run_ingest(args, wait_for=[] if wait else None)


def stop(p) -> tuple[int, dict]:
    """SIGTERM must work: a deadline, never a hang."""
    try:
        return p.stop(signal.SIGTERM, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"SIGTERM did not stop ingest: {p.stderr()}")


def expect_startup_error(p) -> str:
    try:
        rc = p.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest kept running instead of refusing the bookmark: {p.stderr()}")
    err = p.stderr()
    assert rc == 2, err
    assert "listening on" not in err
    return err


@pytest.fixture
def spool(tmp_path):
    d = tmp_path / "spool"
    d.mkdir()
    (d / "snort.u2.100").write_bytes(events(1))
    (d / "snort.u2.200").write_bytes(events(2))
    return d


def write_bookmark(spool, **fields) -> None:
    state = {"version": 1, "spool": str(spool / "snort.u2"), "file": "snort.u2.100",
             "inode": (spool / "snort.u2.100").stat().st_ino, "offset": 0,
             "open_event_offset": None, "read_offset": 0}
    state.update(fields)
    (spool / "snort.u2.ingest-bookmark").write_text(json.dumps(state))


# --- item 6: a bookmark names a file inside the spool, or it is damaged --------

@pytest.mark.parametrize("name", [
    "../victim/snort.u2.1",                # out of the spool
    "{victim}",                            # absolute path
    "snort.u2.100/../../victim/snort.u2.1",
    "other.u2.100",                        # another prefix
    "snort.u2.1\u0000",                    # NUL
    "snort.u2.\u0663",                     # a digit, but not an ASCII one
    "snort.u2.",
    "snort.u2.100.bak",
])
def test_tampered_bookmark_file_is_refused_and_nothing_outside_is_touched(tmp_path, spool, run_ingest, name):
    victim = tmp_path / "victim" / "snort.u2.1"
    victim.parent.mkdir()
    victim.write_bytes(events(99))
    write_bookmark(spool, file=name.format(victim=victim), inode=victim.stat().st_ino)
    p = listen(run_ingest, tmp_path, "--unified2-after", "delete", wait=False)
    err = expect_startup_error(p)
    assert "bookmark" in err and "'file'" in err and "damaged" in err
    assert victim.read_bytes() == events(99)  # neither read nor deleted
    assert event_ids(tmp_path / "a.db") == []
    assert (spool / "snort.u2.100").exists() and (spool / "snort.u2.200").exists()


# --- item 7: every field validated at start-up ---------------------------------

@pytest.mark.parametrize("change, field", [
    ({"offset": -1}, "'offset'"),
    ({"offset": "12"}, "'offset'"),
    ({"offset": True}, "'offset'"),
    ({"offset": 1.5}, "'offset'"),
    ({"inode": "123"}, "'inode'"),
    ({"inode": -4}, "'inode'"),
    ({"open_event_offset": -5}, "'open_event_offset'"),
    ({"read_offset": None}, "'read_offset'"),
    ({"version": 2}, "'version'"),
    ({"file": 7}, "'file'"),
    ({"offset": None}, "'offset'"),
    ({"extra": 1}, "'extra'"),
])
def test_damaged_bookmark_is_exit_2_naming_the_field(tmp_path, spool, run_ingest, change, field):
    write_bookmark(spool, **change)
    p = listen(run_ingest, tmp_path, wait=False)
    err = expect_startup_error(p)
    assert f"bookmark {spool / 'snort.u2.ingest-bookmark'} is damaged" in err
    assert field in err


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json", b"\xff\xfe", b'{"file": "snort.u2.100"}'])
def test_unparsable_bookmark_is_exit_2(tmp_path, spool, run_ingest, raw):
    (spool / "snort.u2.ingest-bookmark").write_bytes(raw)
    p = listen(run_ingest, tmp_path, wait=False)
    assert "is damaged" in expect_startup_error(p)


def test_bookmark_offset_past_the_end_is_said_counted_and_read_from_the_start(tmp_path, spool, run_ingest):
    write_bookmark(spool, offset=10_000)
    p = listen(run_ingest, tmp_path)
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2], p, "both events")
    rc, st = stop(p)
    assert rc == 0
    assert st["unified2_offset_past_end"] == 1
    assert "bookmark offset 10000 is past the end of snort.u2.100" in p.stderr()


def test_file_that_shrinks_under_the_follower_is_said_and_read_again(tmp_path, spool, run_ingest):
    (spool / "snort.u2.200").unlink()
    (spool / "snort.u2.100").write_bytes(events(1, 2, 3))
    p = listen(run_ingest, tmp_path)
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2, 3], p, "three events")
    with open(spool / "snort.u2.100", "r+b") as f:  # rewritten in place, shorter
        f.truncate(0)
        f.write(events(4))
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2, 3, 4], p, "the event after the shrink")
    rc, st = stop(p)
    assert rc == 0 and st["unified2_file_shrank"] == 1
    assert "snort.u2.100 shrank to" in p.stderr()


# --- item 8: only regular files are read; nothing blocks shutdown -----------------

def test_fifo_dir_socket_and_link_named_like_spool_files_are_skipped(tmp_path, spool, run_ingest):
    outside = tmp_path / "outside.u2"
    outside.write_bytes(events(77))
    os.mkfifo(spool / "snort.u2.50")                    # would block open() for ever
    (spool / "snort.u2.120").mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(spool / "snort.u2.140"))
    (spool / "snort.u2.160").symlink_to(outside)        # a link out of the spool
    (spool / "snort.u2.300").write_bytes(events(3))
    p = listen(run_ingest, tmp_path)
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2, 3], p, "the regular files' events")
    rc, st = stop(p)
    s.close()
    assert rc == 0
    assert st["malformed"]["not_regular_file"] == 4
    err = p.stderr()
    assert "snort.u2.50 is a FIFO, not a regular file; skipped" in err
    assert "snort.u2.120 is a directory" in err
    assert "snort.u2.160 is a symbolic link" in err
    assert 77 not in event_ids(tmp_path / "a.db")


def test_newest_spool_entry_a_fifo_does_not_block_sigterm(tmp_path, spool, run_ingest):
    os.mkfifo(spool / "snort.u2.300")
    p = listen(run_ingest, tmp_path, "--unified2-start", "end")
    time.sleep(0.5)
    (spool / "snort.u2.400").write_bytes(events(4))
    wait_until(lambda: event_ids(tmp_path / "a.db") == [4], p, "the file after the FIFO")
    rc, _ = stop(p)
    assert rc == 0


# --- retire: only the files that were read, never into something in the way -------

def test_delete_leaves_a_file_that_replaced_the_one_read(tmp_path, spool, run_ingest):
    (spool / "snort.u2.200").unlink()
    p = listen(run_ingest, tmp_path, "--unified2-after", "delete")
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1], p, "event 1")
    newcomer = tmp_path / "newcomer"
    newcomer.write_bytes(b"not read by ingest")
    os.replace(newcomer, spool / "snort.u2.100")        # another file under the same name
    (spool / "snort.u2.200").write_bytes(events(2))
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2], p, "event 2")
    wait_until(lambda: "could not delete snort.u2.100" in p.stderr(), p, "the refusal")
    rc, st = stop(p)
    assert rc == 0
    assert (spool / "snort.u2.100").read_bytes() == b"not read by ingest"
    assert st["unified2_retire_failed"] == 1
    assert "no longer the file that was read" in p.stderr()


@pytest.mark.parametrize("occupant", ["file", "link_to_dir", "link_to_file"])
def test_archive_never_overwrites_or_follows(tmp_path, spool, run_ingest, occupant):
    arch = tmp_path / "arch"
    arch.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep me")
    if occupant == "file":
        (arch / "snort.u2.100").write_text("archived earlier")
    elif occupant == "link_to_dir":
        (arch / "snort.u2.100").symlink_to(elsewhere)
    else:
        (arch / "snort.u2.100").symlink_to(elsewhere / "precious")
    p = listen(run_ingest, tmp_path, "--unified2-after", "archive", "--unified2-archive", str(arch))
    wait_until(lambda: event_ids(tmp_path / "a.db") == [1, 2], p, "both events")
    wait_until(lambda: "could not archive snort.u2.100" in p.stderr(), p, "the archive refusal")
    rc, st = stop(p)
    assert rc == 0 and st["unified2_retire_failed"] == 1
    assert os.listdir(elsewhere) == ["precious"] and (elsewhere / "precious").read_text() == "keep me"
    assert (spool / "snort.u2.100").read_bytes() == events(1)  # stays in the spool, whole
    if occupant == "file":
        assert (arch / "snort.u2.100").read_text() == "archived earlier"


def test_archive_moves_the_finished_file(tmp_path, spool, run_ingest):
    arch = tmp_path / "arch"
    p = listen(run_ingest, tmp_path, "--unified2-after", "archive", "--unified2-archive", str(arch))
    wait_until(lambda: (arch / "snort.u2.100").exists(), p, "the archived file")
    rc, _ = stop(p)
    assert rc == 0 and not (spool / "snort.u2.100").exists()
    assert (arch / "snort.u2.100").read_bytes() == events(1)


@pytest.mark.parametrize("case", ["other_owner", "group_writable", "missing_in_open_dir"])
def test_archive_directory_another_user_could_write_is_refused(tmp_path, spool, run_ingest, case):
    """Archived spool files are the alerts' record: a directory another user
    owns or may write (so could delete or replace them) is refused at
    start-up, as an output file would be, unless --allow-foreign-outputs."""
    if os.geteuid() != 0 and case == "other_owner":
        pytest.skip("needs root to give the directory to another user")
    arch = tmp_path / "arch"
    if case == "missing_in_open_dir":
        (tmp_path / "open").mkdir()
        (tmp_path / "open").chmod(0o777)
        arch = tmp_path / "open" / "deeper" / "arch"
    else:
        arch.mkdir()
        if case == "other_owner":
            os.chown(arch, 65534, 65534)
        else:
            arch.chmod(0o770)
    p = listen(run_ingest, tmp_path, "--unified2-after", "archive", "--unified2-archive", str(arch), wait=False)
    err = expect_startup_error(p)
    assert "--unified2-archive" in err and "--allow-foreign-outputs" in err, err
    assert (spool / "snort.u2.100").exists() and not os.path.exists(tmp_path / "a.db")
    p = listen(run_ingest, tmp_path, "--unified2-after", "archive", "--unified2-archive", str(arch),
               "--allow-foreign-outputs")
    wait_until(lambda: (arch / "snort.u2.100").exists(), p, "the archived file")
    rc, _ = stop(p)
    assert rc == 0


def test_sticky_world_writable_archive_directory_is_accepted(tmp_path, spool, run_ingest):
    arch = tmp_path / "arch"
    arch.mkdir()
    arch.chmod(0o1777)  # like /tmp: others cannot remove what we put there
    p = listen(run_ingest, tmp_path, "--unified2-after", "archive", "--unified2-archive", str(arch))
    wait_until(lambda: (arch / "snort.u2.100").exists(), p, "the archived file")
    rc, _ = stop(p)
    assert rc == 0


def test_decode_of_a_fifo_fails_at_once():
    """unified2.read / iter_read map regular files only (a FIFO would block open())."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        fifo = os.path.join(d, "snort.u2.1")
        os.mkfifo(fifo)
        code = ("import sys\nfrom ingest import unified2\n"
                "try:\n    unified2.read(sys.argv[1])\nexcept OSError as e:\n    print(e); sys.exit(3)\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        try:
            r = subprocess.run([sys.executable, "-c", code, fifo], env=env, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("unified2.read blocked on a FIFO")
        assert r.returncode == 3 and b"FIFO" in r.stdout


# --- file readers and a queue with no room --------------------------------------

def test_a_spool_file_with_more_events_than_max_queue_still_flows(tmp_path, spool, run_ingest):
    """One read of a spool file decodes every complete event in it: more
    than --max-queue.  An empty queue takes any one batch (as it does for
    the byte budget), never a reader that waits forever for room that can
    never be."""
    (spool / "snort.u2.300").write_bytes(events(*range(3, 503)))
    p = listen(run_ingest, tmp_path, "--max-queue", "50")
    wait_until(lambda: len(event_ids(tmp_path / "a.db")) == 502, p, "every event")
    rc, _ = stop(p)
    assert rc == 0


def test_sigterm_while_the_spool_reader_waits_for_room_stops_and_loses_nothing(tmp_path, spool, run_ingest):
    """The store is locked and the queue full: the spool reader waits for
    room.  SIGTERM must stop it (what it has not handed on stays on disk,
    behind the bookmark), the drain timeout bounds the rest, and a restart
    stores every event exactly once."""
    for k in range(3, 13):
        (spool / f"snort.u2.{k}00").write_bytes(events(*range(k * 100, k * 100 + 100)))
    db = tmp_path / "a.db"
    p = listen(run_ingest, tmp_path, "--max-queue", "50", "--drain-timeout", "1")
    wait_until(lambda: len(event_ids(db)) >= 2, p, "the first events")
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    time.sleep(1.0)  # the queue fills, the reader waits
    rc, st = stop(p)
    lock.execute("ROLLBACK")
    lock.close()
    assert rc in (0, 1), p.stderr()
    p = listen(run_ingest, tmp_path)
    want = [1, 2] + list(range(300, 1300))
    wait_until(lambda: event_ids(db) == want, p, "every event after the restart")
    rc, _ = stop(p)
    assert rc == 0


def test_bookmarked_file_gone_is_said(tmp_path, spool, run_ingest):
    write_bookmark(spool, file="snort.u2.150", inode=1)  # not in the spool (deleted by hand)
    p = listen(run_ingest, tmp_path)
    wait_until(lambda: event_ids(tmp_path / "a.db") == [2], p, "the file after it")
    rc, _ = stop(p)
    assert rc == 0 and "bookmarked snort.u2.150 is no longer in the spool" in p.stderr()


def test_two_inputs_sharing_one_bookmark_are_refused(tmp_path, spool, run_ingest):
    """The same spool twice (or two eve.json paths --bookmark-dir names
    alike) would overwrite each other's positions."""
    s = str(spool / "snort.u2")
    p = run_ingest(["listen", "--unified2", s, "--unified2", str(spool / ".." / "spool" / "snort.u2"),
                    "--sink", f"sqlite:{tmp_path / 'a.db'}"])
    err = expect_startup_error(p)
    assert "would share the bookmark" in err
    for d in ("a/b_c", "a/b", "bm"):
        (tmp_path / d).mkdir(parents=True)
    p = run_ingest(["listen", "--eve-file", str(tmp_path / "a/b_c/eve.json"), "--eve-file",
                    str(tmp_path / "a/b/c_eve.json"), "--bookmark-dir", str(tmp_path / "bm"),
                    "--sink", f"sqlite:{tmp_path / 'a.db'}"])
    err = expect_startup_error(p)
    assert "would share the bookmark" in err
