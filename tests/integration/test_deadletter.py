"""The dead-letter file keeps what the counters say it keeps: entries that
rotation overwrote are counted, and 64 KiB Alertpkts are kept compactly
(and exactly)."""

from __future__ import annotations

import sqlite3
import struct
import time

from ingest import deadletter
from ingest.encode import encode_alertpkt, ether_ipv4

from ._util import snort_send


def entries(path) -> list[tuple[dict, bytes]]:
    return list(deadletter.read(str(path))) if path.exists() else []


def test_entries_rotated_away_are_counted(tmp_path, run_ingest):
    sock, dl = tmp_path / "snort_alert", tmp_path / "dead.bin"
    # a .1 left by an earlier run: overwriting it loses its entries too
    with open(str(dl) + ".1", "wb") as f:
        for _i in range(7):
            f.write(b'{"ts": "x", "origin": "earlier", "reason": "bad_length", "length": 3}\nold\n')
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", str(dl),
                    "--dead-letter-max-bytes", "20000", "--stats-interval", "0.2"], wait_for=[sock])
    junk = [b"%04d" % i + b"j" * 996 for i in range(100)]  # 1,000 bytes: bad_length
    snort_send(sock, junk)
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["malformed"] == {"bad_length": 100} and st["dead_letters"] == 100
    kept = [e for e in entries(tmp_path / "dead.bin.1") if e[0]["origin"] != "earlier"] + entries(dl)
    assert st["dead_letters_rotated"] == 100 - len(kept) + 7  # ours overwritten, and the earlier run's 7
    assert [d for _h, d in kept] == junk[100 - len(kept):]  # the newest ones are the ones kept
    assert "older entries rotated away" in p.stderr()


def test_queue_full_alertpkts_are_kept_compactly_and_exactly(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--max-queue", "1", "--linger-ms", "100"], wait_for=[sock])
    n = 200
    pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1234, 80, payload=b"GET / HTTP/1.1\r\n" * 20)
    sent = [encode_alertpkt(v, sid=1, event_id=i, packet=pkt)
            for i, v in zip(range(n), ["snort", "snort-appid"] * n, strict=False)]
    # the store is busy: the first batch (an empty queue takes any one) waits
    # for it, and the queue is full for every later datagram
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    snort_send(sock, sent)
    time.sleep(0.5)
    lock.execute("ROLLBACK")
    lock.close()
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    dead = [(h, d) for h, d in entries(dl) if h["reason"] == "queue_full"]
    assert st["dropped"]["queue_full"] == len(dead) > 0
    for h, d in dead:
        eid = struct.unpack_from("<I", d, 65848)[0]
        assert d == sent[eid]  # byte for byte, once read back
        assert h["length"] < 2048 and h["elided"][0] == 292 + len(pkt)
    # at most 2 KiB a datagram on disk, not 64 KiB
    assert dl.stat().st_size < 2048 * len(dead) + 200 * (st["malformed"].get("bad_length", 0) + 1)
    assert st["dead_letters_rotated"] == 0


def test_eve_file_is_not_read_past_a_record_the_dead_letter_file_cannot_keep(tmp_path, run_ingest):
    """A followed file is the buffer: a rejected record is passed only once
    it is in the dead-letter file.  While that file cannot grow (a real
    EFBIG from the process's file-size limit, as a full disk gives ENOSPC)
    the follower holds there and acknowledges nothing past it; once it can,
    the record is kept and everything flows, exactly once."""
    import json
    import resource
    import sqlite3

    from ._store import eve_lines
    from ._util import wait_until

    eve, db, dl = tmp_path / "eve.json", tmp_path / "a.db", tmp_path / "dead.bin"
    alerts = [x for x in eve_lines(6) if '"alert"' in x]
    eve.write_text("")
    earlier = b'{"ts": "x", "origin": "earlier", "reason": "bad_length", "length": 3}\nold\n'
    dl.write_bytes(earlier * 100)
    dl.chmod(0o600)
    p = run_ingest(["listen", "--eve-file", str(eve), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--stats-interval", "0"])
    wait_until(lambda: "listening on" in p.stderr(), p, "start-up")
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (dl.stat().st_size, hard))
    with open(eve, "a") as f:  # written in one go: one batch
        f.write("\n".join(alerts[:3] + ['{"timestamp": "broken'] + alerts[3:]) + "\n")
    wait_until(lambda: "cannot keep rejected input" in p.stderr(), p, "the reject held")

    def count() -> int:
        if not db.exists():
            return 0
        c = sqlite3.connect(db)
        try:
            return c.execute("SELECT count(*) FROM alerts").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            c.close()

    time.sleep(1.5)  # (not a timing assertion: a chance for a wrong ack to show)
    assert count() == 0  # the batch with the reject is held whole
    bm = tmp_path / ".eve.json.ingest-bookmark"
    offsets = [f["offset"] for f in json.loads(bm.read_text())["files"].values()]
    assert offsets == [0], "the bookmark moved past a record that was not kept"
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_until(lambda: "writable again" in p.stderr() and count() == 6, p, "the dead-letter file back")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["malformed"] == {"invalid_json": 1} and st["dispatched"] == {f"sqlite:{db}": 6}
    assert st["dead_letter_errors"] == 1 and st["dead_letters"] == 1
    kept = [e for e in entries(dl) if e[0]["origin"] != "earlier"]
    assert [(h["reason"], raw) for h, raw in kept] == [("invalid_json", b'{"timestamp": "broken')]
    assert json.loads(bm.read_text())["files"].popitem()[1]["offset"] == eve.stat().st_size


_SHORT_WRITE = r"""
import os, resource, signal, sys
from ingest import deadletter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: a short write, then EFBIG
path, limit = sys.argv[1], int(sys.argv[2])
dl = deadletter.DeadLetter(path, max_bytes=64 << 20)
dl.open()
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # the disk fills up
kept = sum(dl.write("test", "bad_length", bytes([65 + i % 26]) * 5000) for i in range(20))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # room again
kept += sum(dl.write("test", "later", b"L" * 100) for i in range(3))
dl.close()
print(kept, dl.errors)
"""


def test_a_short_write_on_a_full_disk_leaves_only_whole_entries(tmp_path):
    """A write cut short (disk full; here the file-size limit, which the
    kernel enforces the same way: a short write, then an error) must not
    leave a torn entry that the counters call kept, after which every entry
    written once there is room again would be unreadable."""
    import os
    import subprocess
    import sys

    from ..conftest import ROOT

    dl = tmp_path / "dead.bin"
    out = subprocess.run([sys.executable, "-c", _SHORT_WRITE, str(dl), str(5000 * 7 + 1234)], check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout.split()
    kept, errors = int(out[0]), int(out[1])
    got = entries(dl)
    assert errors >= 1 and kept + errors == 23
    assert len(got) == kept, f"the file holds {len(got)} entries, the counters say {kept}"
    assert [h["reason"] for h, _data in got[-3:]] == ["later"] * 3 and got[-1][1] == b"L" * 100
