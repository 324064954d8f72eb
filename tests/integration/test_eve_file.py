"""The eve.json follower as a real process: rotation, copytruncate, threaded
files, kill -9 and restart, with every alert in the store exactly once."""

from __future__ import annotations

import os
import shutil

import pytest

from ._eve_proc import EVE, Ingest, query

ZEUS = EVE / "zeus-suricata-7.0.7" / "eve.json"
SURI703 = EVE / "sashalarso-suricata-7.0.3" / "out.json"


@pytest.fixture
def zeus_lines():
    if not ZEUS.exists():
        pytest.skip(f"shared data not present: {ZEUS}")
    return ZEUS.read_bytes().splitlines(keepends=True)


def alerts_in(lines) -> int:
    return sum(b'"event_type":"alert"' in ln for ln in lines)


def append(path, lines) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(lines))


def exact_once(ing: Ingest, want: int) -> None:
    """want alerts stored, none twice (replay keys are unique per input line)."""
    assert query(ing.db, "SELECT count(*), count(DISTINCT replay_key) FROM alerts")[0] == (want, want)


def test_follow_grow_and_unterminated_last_line(tmp_path, zeus_lines):
    eve = tmp_path / "eve.json"
    append(eve, zeus_lines[:300])
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    n1 = alerts_in(zeus_lines[:300])
    ing.wait_count(n1)
    # Suricata mid-write: half a line must wait until it is complete
    line = zeus_lines[300]
    with open(eve, "ab") as f:
        f.write(line[:100])
        f.flush()
        append(eve, [])
    with open(eve, "ab") as f:
        f.write(line[100:])
    append(eve, zeus_lines[301:])
    ing.wait_count(656)
    st = ing.stop()
    assert not st["malformed"]
    exact_once(ing, 656)
    assert query(ing.db, "SELECT count(*) FROM flows")[0][0] == 205


def test_rename_rotation_drains_the_old_file(tmp_path, zeus_lines):
    eve = tmp_path / "eve.json"
    a, b, c = zeus_lines[:200], zeus_lines[200:500], zeus_lines[500:]
    append(eve, a)
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(alerts_in(a))
    os.rename(eve, tmp_path / "eve.json.1")        # logrotate moves it ...
    append(tmp_path / "eve.json.1", b)             # ... Suricata still writes the old one until SIGHUP
    append(eve, c)                                 # ... then reopens eve.json
    ing.wait_count(656)
    ing.stop()
    exact_once(ing, 656)


def test_copytruncate_reads_the_rest_from_the_copy(tmp_path, zeus_lines):
    eve = tmp_path / "eve.json"
    # part C must not start with the same 64 bytes as part A (the fingerprint)
    a, b, c = zeus_lines[:200], zeus_lines[200:400], zeus_lines[400:]
    assert a[0][:64] != c[0][:64]
    append(eve, a)
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(alerts_in(a))
    append(eve, b)                                 # written just before the copy ...
    shutil.copyfile(eve, tmp_path / "eve.json.1")  # logrotate copytruncate
    with open(eve, "r+b") as f:
        f.truncate(0)
    append(eve, c)
    ing.wait_count(656)
    st = ing.stop()
    exact_once(ing, 656)
    assert st.get("eve_file_truncations") == 1


def test_threaded_files_by_glob(tmp_path, zeus_lines):
    if not SURI703.exists():
        pytest.skip("shared data not present")
    append(tmp_path / "eve.1.json", zeus_lines)
    append(tmp_path / "eve.2.json", SURI703.read_bytes().splitlines(keepends=True))
    ing = Ingest(tmp_path, "--eve-file", str(tmp_path / "eve.*.json"))
    ing.wait_count(656 + 226)
    ing.stop()
    exact_once(ing, 656 + 226)


def test_kill9_and_restart_lose_and_duplicate_nothing(tmp_path, zeus_lines):
    """Kill -9 while alerts flow, rotate while down, restart: every alert once."""
    eve = tmp_path / "eve.json"
    rounds = 6
    total = 0
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    for r in range(rounds):
        append(eve, zeus_lines)
        total += 656
        if r == 2:
            ing.wait_count(1)
            ing.kill9()                            # somewhere in the middle of the backlog
            os.rename(eve, tmp_path / "eve.json.1")  # and the file rotates while we are down
            ing = Ingest(tmp_path, "--eve-file", str(eve))
    ing.wait_count(total)
    ing.kill9()                                    # once more, after everything is stored
    ing = Ingest(tmp_path, "--eve-file", str(eve))
    append(eve, zeus_lines)
    total += 656
    ing.wait_count(total)
    ing.stop()
    exact_once(ing, total)


def test_glob_closes_idle_old_files_and_reopens_them_if_they_grow(tmp_path, zeus_lines, monkeypatch):
    """Timestamped files: an old, idle one is not held open, and is resumed at its offset if written again."""
    import threading
    import time

    from ingest.deadletter import DeadLetter
    from ingest.sources import tail
    from ingest.stats import Stats

    monkeypatch.setattr(tail, "IDLE_CLOSE", 0.0)
    old, new = tmp_path / "eve.json.1700000000", tmp_path / "eve.json.1700003600"
    append(old, zeus_lines[:100])
    os.utime(old, (1, 1))
    append(new, zeus_lines[100:200])

    class Sub:
        def __init__(self):
            self.alerts = 0
            self.lock = threading.Lock()

        def reserve(self, n, timeout=0.0, nbytes=0, file=False):
            return True

        def submit(self, b):
            with self.lock:
                self.alerts += len(b)
            for ack in b.acks:
                ack()

        def release(self, n):
            pass

    src = tail.EveFileSource(str(tmp_path / "eve.json.*"), poll=0.01)
    sub = Sub()
    src.start(sub, Stats(), DeadLetter(None))
    end = time.monotonic() + 60

    def wait(cond):
        while not cond():
            assert time.monotonic() < end and src.error is None, src.error
            time.sleep(0.02)

    wait(lambda: sub.alerts == alerts_in(zeus_lines[:200]))
    wait(lambda: any(k[1] == os.stat(old).st_ino for k in src._done))  # closed, offset kept
    append(old, zeus_lines[200:300])  # ... and written again
    wait(lambda: sub.alerts == alerts_in(zeus_lines[:300]))
    src.stop()
    src.close()
    assert sub.alerts == alerts_in(zeus_lines[:300])


def test_a_glob_over_many_files_reads_none_twice_after_a_restart(tmp_path):
    """More timestamped files than the bookmark's cap: a file still matched by
    the glob is never forgotten, so a restart reads none of them again."""
    from ._store import eve_lines

    alerts = [x for x in eve_lines(81) if '"alert"' in x]
    for i, line in enumerate(alerts[:80]):
        (tmp_path / f"eve.{1000 + i}.json").write_text(line + "\n")
    pattern = str(tmp_path / "eve.*.json")
    ing = Ingest(tmp_path, "--eve-file", pattern)
    ing.wait_count(80)
    assert ing.stop()["dispatched"] == {f"sqlite:{ing.db}": 80}
    ing = Ingest(tmp_path, "--eve-file", pattern)
    (tmp_path / "eve.2000.json").write_text(alerts[80] + "\n")  # found after the start-up files were read
    ing.wait_count(81)
    assert ing.stop()["dispatched"] == {f"sqlite:{ing.db}": 1}, "files read again after the restart"
    exact_once(ing, 81)


@pytest.mark.parametrize("line_bytes", [0, 1_500_000, 6_000_000], ids=["in-one-chunk", "1.5MB", "past-a-chunk"])
def test_a_line_longer_than_eve_max_line_is_refused_whatever_its_size(tmp_path, zeus_lines, line_bytes):
    """--eve-max-line bounds a followed file's lines as it bounds a stream's:
    a complete line past it is `oversized` (dead-lettered, counted) whether it
    fits in one read or spans several; the alerts around it are stored and
    the bookmark moves past it."""
    longest = max(len(ln) for ln in zeus_lines)
    max_line = 1 << 20 if line_bytes else longest + 16  # every real line fits
    line_bytes = line_bytes or 2 * longest
    big = b'{"event_type":"alert","pad":"' + b"x" * line_bytes + b'"}\n'
    head, tail = zeus_lines[:300], zeus_lines[300:]
    eve = tmp_path / "eve.json"
    append(eve, head + [big] + tail)
    ing = Ingest(tmp_path, "--eve-file", str(eve), "--eve-max-line", str(max_line))
    ing.wait_count(656)
    st = ing.stop()
    assert st["malformed"] == {"oversized": 1}, st
    exact_once(ing, 656)
