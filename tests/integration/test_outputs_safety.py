"""Output files another local user could reach, with a real ``ingest
listen``: foreign or loose outputs are refused at start-up (or accepted with
--allow-foreign-outputs), and the dead-letter file appears only when there
is something to keep."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from ingest.encode import encode_alertpkt

from ._util import snort_send

pytestmark = pytest.mark.slow

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a file to another user")


def refused(p) -> str:
    try:
        rc = p.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest started on an unsafe output: {p.stderr()}")
    err = p.stderr()
    assert rc == 2, err
    return err


def _args(tmp_path, out_dir, which: str) -> tuple[list[str], object]:
    """listen args whose `which` output lives in out_dir; the others are harmless."""
    target = out_dir / {"sqlite": "alerts.db", "jsonl": "alerts.json", "deadletter": "dead.bin"}[which]
    sinks = {"sqlite": f"sqlite:{target}", "jsonl": f"jsonl:{target}", "deadletter": "null:"}[which]
    dl = str(target) if which == "deadletter" else ""
    return ["listen", "--snort", str(tmp_path / "snort_alert"), "--sink", sinks, "--dead-letter", dl,
            "--stats-interval", "0"], target


@pytest.mark.parametrize("which", ["sqlite", "jsonl", "deadletter"])
@pytest.mark.parametrize("problem", [
    pytest.param("foreign_owner", marks=root_only), "group_writable", "world_writable",
])
def test_existing_output_another_user_can_reach_is_refused(tmp_path, run_ingest, which, problem):
    args, target = _args(tmp_path, tmp_path, which)
    target.write_bytes(b"")
    if problem == "foreign_owner":
        os.chown(target, NOBODY, NOBODY)
        os.chmod(target, 0o600)
    else:
        os.chmod(target, 0o620 if problem == "group_writable" else 0o606)
    before = os.stat(target)
    err = refused(run_ingest(args))
    assert f"{target}" in err and "--allow-foreign-outputs" in err
    assert ("owned by uid 65534" in err) if problem == "foreign_owner" else ("writable by its group or by others" in err)
    after = os.stat(target)
    assert (after.st_uid, after.st_mode, after.st_size) == (before.st_uid, before.st_mode, 0)
    assert not (tmp_path / "snort_alert").exists()  # nothing left bound


@pytest.mark.parametrize("which", ["sqlite", "jsonl", "deadletter"])
def test_output_in_a_world_writable_non_sticky_directory_is_refused(tmp_path, run_ingest, which):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    args, target = _args(tmp_path, shared, which)
    err = refused(run_ingest(args))
    assert "every user may write and is not sticky" in err
    assert not target.exists()


def test_sticky_world_writable_directory_is_fine(tmp_path, run_ingest):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    args, target = _args(tmp_path, shared, "sqlite")
    p = run_ingest(args, wait_for=[tmp_path / "snort_alert"])
    assert p.stop()[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


@root_only
def test_foreign_sqlite_wal_is_refused(tmp_path, run_ingest):
    args, target = _args(tmp_path, tmp_path, "sqlite")
    wal = tmp_path / "alerts.db-wal"
    wal.write_bytes(b"")
    os.chown(wal, NOBODY, NOBODY)
    err = refused(run_ingest(args))
    assert f"{wal} is owned by uid 65534" in err


@root_only
@pytest.mark.parametrize("which", ["sqlite", "jsonl", "deadletter"])
def test_allow_foreign_outputs_accepts_them(tmp_path, run_ingest, which):
    args, target = _args(tmp_path, tmp_path, which)
    if which == "sqlite":
        import sqlite3

        sqlite3.connect(target).close()
    else:
        target.write_bytes(b"")
    os.chown(target, NOBODY, NOBODY)
    os.chmod(target, 0o666)
    p = run_ingest(args + ["--allow-foreign-outputs"], wait_for=[tmp_path / "snort_alert"])
    snort_send(tmp_path / "snort_alert", [encode_alertpkt("snort", sid=5), b"junk"])
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 1 and st["malformed"] == {"bad_length": 1}
    assert target.stat().st_size > 0


@pytest.mark.parametrize("occupant", ["fifo", "dir"])
def test_output_that_is_no_regular_file_is_refused(tmp_path, run_ingest, occupant):
    args, target = _args(tmp_path, tmp_path, "jsonl")
    if occupant == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    err = refused(run_ingest(args))
    assert f"JSON-lines sink {target} is a {'FIFO' if occupant == 'fifo' else 'directory'}, not a regular file" in err


# --- the dead-letter file is created only when there is something to keep ----------

def test_dead_letter_file_is_created_on_the_first_entry(tmp_path, run_ingest):
    sock, dl = tmp_path / "snort_alert", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", str(dl)], wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=1)])
    time.sleep(0.3)
    assert not dl.exists()
    snort_send(sock, [b"junk"])
    rc, st = p.stop()
    assert rc == 0 and st["dead_letters"] == 1
    assert stat.S_IMODE(dl.stat().st_mode) == 0o600


def test_a_clean_run_leaves_no_dead_letter_file(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:"], wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=1)])
    assert p.stop()[0] == 0
    assert not (tmp_path / "ingest-deadletter.bin").exists()


@pytest.mark.parametrize("where", ["missing_dir", "foreign"])
def test_a_bad_dead_letter_path_is_still_a_startup_error(tmp_path, run_ingest, where):
    if where == "foreign":
        if os.geteuid() != 0:
            pytest.skip("needs root to chown")
        dl = tmp_path / "dead.bin"
        dl.write_bytes(b"")
        os.chown(dl, NOBODY, NOBODY)
    else:
        dl = tmp_path / "nowhere" / "dead.bin"
    err = refused(run_ingest(["listen", "--snort", str(tmp_path / "s"), "--sink", "null:", "--dead-letter", str(dl)]))
    assert "dead-letter file" in err
