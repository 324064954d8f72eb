"""The eve.json follower as a real process, against what an attacker or an
accident puts in its way: a symlinked eve.json, FIFOs and directories among
the rotated siblings, damaged bookmarks, and kill -9 before the first
bookmark while the file rotates."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest

from ._eve_proc import REPO, Ingest, query

pytestmark = pytest.mark.slow


def lines(start: int, n: int) -> list[bytes]:
    """n EVE alerts with signature ids start..start+n-1; every line's first
    64 bytes differ (the timestamp), so every file has its own fingerprint."""
    out = []
    for i in range(start, start + n):
        sec, us = divmod(i, 1_000_000)
        out.append(
            b'{"timestamp":"2024-01-01T00:%02d:%02d.%06d+0000","flow_id":%d,"in_iface":"eth0",'
            b'"event_type":"alert","src_ip":"10.0.0.1","src_port":1234,"dest_ip":"10.0.0.2",'
            b'"dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":%d,'
            b'"rev":1,"signature":"test","category":"c","severity":2}}\n'
            % (sec // 60 % 60, sec % 60, us, i + 1, i))
    return out


def append(path, data: list[bytes]) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(data))


def sids(db) -> list[int]:
    try:
        return [r[0] for r in query(db, "SELECT sid FROM alerts ORDER BY sid")]
    except sqlite3.OperationalError:  # not created yet
        return []


def exactly(db, want: Sequence[int]) -> None:
    got = sids(db)
    assert len(got) == len(set(got)), "an alert was stored twice"
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} of {len(want)} alerts lost, e.g. {missing[:5]}"
    assert got == list(want)


def test_symlinked_eve_json_is_followed(tmp_path):
    real = tmp_path / "suricata" / "eve-real.json"
    real.parent.mkdir()
    append(real, lines(0, 50))
    (tmp_path / "eve.json").symlink_to(real)
    ing = Ingest(tmp_path, "--eve-file", str(tmp_path / "eve.json"))
    ing.wait_count(50)
    append(real, lines(50, 10))
    ing.wait_count(60)
    ing.stop()
    exactly(ing.db, range(60))


def test_fifo_and_directory_among_the_siblings_do_not_block_copytruncate(tmp_path):
    eve = tmp_path / "eve.json"
    append(eve, lines(0, 100))
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(100)
    os.mkfifo(tmp_path / "eve.json.0")        # open() of it would block for ever
    (tmp_path / "eve.json.d").mkdir()          # pread() of it would raise EISDIR
    with open(eve, "r+b") as f:                # copytruncate (no copy this time)
        f.truncate(0)
    append(eve, lines(100, 50))
    ing.wait_count(150)
    st = ing.stop()                            # SIGTERM works
    exactly(ing.db, range(150))
    assert st["eve_file_truncations"] == 1


def test_fifo_at_path_is_said_counted_and_skipped(tmp_path):
    os.mkfifo(tmp_path / "eve.json")
    ing = Ingest(tmp_path, "--eve-file", str(tmp_path / "eve.json"))
    ing.wait_for(lambda: b"is a FIFO, not a regular file; skipped" in ing.stderr_path.read_bytes(),
                 "the FIFO to be named")
    os.unlink(tmp_path / "eve.json")
    append(tmp_path / "eve.json", lines(0, 20))  # a real file later is followed as usual
    ing.wait_count(20)
    st = ing.stop()
    assert st["malformed"] == {"not_regular_file": 1}


def _key(dev: int, ino: int, fp: bytes) -> str:
    return f"{dev}:{ino}:{hashlib.blake2b(fp, digest_size=8).hexdigest()}"


@pytest.mark.parametrize("change, field", [
    ({"offset": -1}, ".offset'"),
    ({"offset": "5"}, ".offset'"),
    ({"offset": False}, ".offset'"),
    ({"fp": "zz" * 64}, ".fp'"),
    ({"fp": "ab"}, ".fp'"),
    ({"dev": "1"}, ".dev'"),
    ({"ino": None}, ".ino'"),
    ({"path": "eve.json"}, ".path'"),
    ({"path": None}, ".path'"),
    ({"ino": 12345}, "does not match"),      # key no longer matches the identity
    ({"extra": 1}, ".extra'"),
])
def test_damaged_eve_bookmark_is_exit_2_naming_the_field(tmp_path, run_ingest, change, field):
    eve = tmp_path / "eve.json"
    append(eve, lines(0, 10))
    st = os.stat(eve)
    fp = eve.read_bytes()[:64]
    entry = {"path": str(eve), "dev": st.st_dev, "ino": st.st_ino, "fp": fp.hex(), "offset": 0}
    key = _key(st.st_dev, st.st_ino, fp)
    entry.update(change)
    bm = tmp_path / ".eve.json.ingest-bookmark"
    bm.write_text(json.dumps({"version": 1, "path": str(eve), "files": {key: entry}}))
    p = run_ingest(["listen", "--eve-file", str(eve), "--sink", f"sqlite:{tmp_path / 'a.db'}",
                    "--dead-letter", "", "--stats-interval", "0"])
    try:
        rc = p.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest kept running on a damaged bookmark: {p.stderr()}")
    err = p.stderr()
    assert rc == 2 and f"bookmark {bm} is damaged" in err and field in err, err


@pytest.mark.parametrize("doc", [{"version": 1, "path": "/x"}, {"version": 1, "path": "/x", "files": []},
                                 {"version": "1", "path": "/x", "files": {}}, ["files"]])
def test_damaged_eve_bookmark_structure_is_exit_2(tmp_path, run_ingest, doc):
    eve = tmp_path / "eve.json"
    append(eve, lines(0, 10))
    (tmp_path / ".eve.json.ingest-bookmark").write_text(json.dumps(doc))
    p = run_ingest(["listen", "--eve-file", str(eve), "--sink", "null:", "--dead-letter", ""])
    try:
        rc = p.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest kept running on a damaged bookmark: {p.stderr()}")
    assert rc == 2 and "is damaged" in p.stderr()


def test_rotated_file_shorter_than_its_bookmark_is_said_and_read_from_0(tmp_path):
    eve = tmp_path / "eve.json"
    append(eve, lines(0, 40))
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(40)
    ing.stop()
    # while down: rotated, and the rotated copy shrank (rewritten, same first line)
    os.rename(eve, tmp_path / "eve.json.1")
    with open(tmp_path / "eve.json.1", "r+b") as f:
        f.truncate(len(b"".join(lines(0, 10))))
    # (after a blank line: no new line starts where an old one did, so no
    # replay key of the first reading is reused)
    append(tmp_path / "eve.json.1", [b"\n", *lines(1000, 5)])
    append(eve, lines(2000, 5))
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(50)
    st = ing.stop()
    assert st["eve_file_offset_past_end"] == 1
    assert "it shrank while ingest was down; reading it from the start" in ing.stderr_path.read_text()
    exactly(ing.db, [*range(40), *range(1000, 1005), *range(2000, 2005)])


# --- item 17: killed before the first bookmark, rotated while down ---------------

def _start(tmp_path, eve, db) -> subprocess.Popen:
    err = open(tmp_path / f"ingest-{time.monotonic_ns()}.err", "wb")
    p = subprocess.Popen([sys.executable, "-m", "ingest", "listen", "--eve-file", str(eve), "--sink",
                          f"sqlite:{db}", "--dead-letter", "", "--stats-interval", "0"],
                         env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.DEVNULL,
                         stderr=err, cwd=tmp_path)
    err.close()
    p.err_path = err.name  # type: ignore[attr-defined]
    return p


def _err(p) -> str:
    with open(p.err_path, "rb") as f:
        return f.read().decode(errors="replace")


def _listening(p) -> None:
    end = time.monotonic() + 60
    while "listening on" not in _err(p):
        assert p.poll() is None, _err(p)
        assert time.monotonic() < end, "ingest never said it was listening"
        time.sleep(0.005)


def test_kill9_before_the_first_bookmark_loses_nothing_across_rotations(tmp_path):
    """A writer appends and rotates while ingest is killed with -9 again and
    again, often before it acknowledged anything: every alert ends up in
    the store exactly once."""
    eve, db = tmp_path / "eve.json", tmp_path / "a.db"
    rng = random.Random(11)
    lock = threading.Lock()
    written = [0]
    done = threading.Event()

    def writer() -> None:
        while not done.is_set():
            with lock:
                n = rng.randrange(20, 200)
                append(eve, lines(written[0], n))
                written[0] += n
            time.sleep(0.05)

    with lock:
        append(eve, lines(0, 2000))
        written[0] = 2000
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    rotations = 0
    try:
        for r in range(8):
            p = _start(tmp_path, eve, db)
            _listening(p)
            if r % 2:
                time.sleep(rng.uniform(0.0, 0.3))
            p.kill()
            p.wait()
            if r % 2 == 0:  # rotate while ingest is down (one rotation per downtime)
                with lock:
                    rotations += 1
                    os.rename(eve, tmp_path / f"eve.json.{rotations}")
                    append(eve, lines(written[0], 500))
                    written[0] += 500
    finally:
        done.set()
        t.join()
    p = _start(tmp_path, eve, db)
    _listening(p)
    end = time.monotonic() + 120
    while len(sids(db)) < written[0] and time.monotonic() < end:
        assert p.poll() is None, _err(p)
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0, _err(p)
    exactly(db, range(written[0]))
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(DISTINCT replay_key) FROM alerts").fetchone()[0] == written[0]
    finally:
        con.close()


def _restart_and_read(tmp_path, eve, db, want: int) -> subprocess.Popen:
    """Start ingest again, wait for ``want`` alerts, stop it (SIGTERM, exit 0)
    and check the store holds alerts 0 .. want-1 exactly once."""
    p = _start(tmp_path, eve, db)
    _listening(p)
    end = time.monotonic() + 60
    while len(sids(db)) < want and time.monotonic() < end:
        assert p.poll() is None, _err(p)
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0, _err(p)
    exactly(db, range(want))
    return p


@pytest.mark.parametrize("how", ["sigterm", "kill9", "kill9_before_any_ack"])
def test_copytruncate_while_ingest_is_down_loses_nothing(tmp_path, how):
    """logrotate's copytruncate runs while ingest is stopped (or killed):
    the lines written after ingest's last read are only in the copy (a new
    inode with the old file's first bytes).  The restart finds the copy by
    its fingerprint, finishes it from the bookmarked offset, then reads the
    truncated eve.json from 0: every alert exactly once."""
    eve, db = tmp_path / "eve.json", tmp_path / "a.db"
    first = 0 if how == "kill9_before_any_ack" else 1000
    append(eve, lines(0, 1000))
    p = _start(tmp_path, eve, db)
    _listening(p)
    if how == "kill9_before_any_ack":
        p.kill()  # the file is in the bookmark (offset 0) from its first open
    else:
        end = time.monotonic() + 60
        while len(sids(db)) < first:
            assert p.poll() is None and time.monotonic() < end, _err(p)
            time.sleep(0.05)
        time.sleep(0.5)  # the coalesced bookmark is saved once the reader is idle
        p.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    p.wait(timeout=60)
    append(eve, lines(1000, 500))  # written while ingest is down ...
    (tmp_path / "eve.json.1").write_bytes(eve.read_bytes())  # ... copied ...
    with open(eve, "r+b") as f:  # ... and truncated in place
        f.truncate(0)
    append(eve, lines(1500, 300))
    _restart_and_read(tmp_path, eve, db, 1800)


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_two_rotations_while_ingest_is_down_lose_nothing(tmp_path, how):
    """Two logrotate runs while ingest is stopped: eve.json (read) goes to
    .1 then .2, and the file Suricata wrote in between (never opened by
    ingest, so in no bookmark entry) goes to .1.  The restart finishes the
    bookmarked file and reads the unseen one (a rotated sibling written
    after ingest's last look at eve.json), then the new eve.json."""
    eve, db = tmp_path / "eve.json", tmp_path / "a.db"
    append(eve, lines(0, 1000))
    p = _start(tmp_path, eve, db)
    _listening(p)
    end = time.monotonic() + 60
    while len(sids(db)) < 1000:
        assert p.poll() is None and time.monotonic() < end, _err(p)
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    p.wait(timeout=60)
    append(eve, lines(1000, 100))
    os.rename(eve, tmp_path / "eve.json.1")          # rotation 1
    append(eve, lines(1100, 400))                    # the file ingest never sees at eve.json
    os.rename(tmp_path / "eve.json.1", tmp_path / "eve.json.2")
    os.rename(eve, tmp_path / "eve.json.1")          # rotation 2
    append(eve, lines(1500, 300))
    (tmp_path / "eve.json.3.gz").write_bytes(b"\x1f\x8b" + bytes(200))  # a compressed old one: not EVE
    p = _restart_and_read(tmp_path, eve, db, 1800)
    assert "eve.json.1 was at" in _err(p) and "eve.json.3.gz" not in _err(p)
