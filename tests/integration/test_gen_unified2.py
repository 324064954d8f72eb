"""``ingest gen --kind unified2`` writes a spool Snort-style; both the batch
reader and a real ``ingest listen --unified2`` follower read it back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

from ingest import unified2
from ingest.gen import alert_specs

from ..conftest import ROOT


def _gen(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "ingest", "gen", "--kind", "unified2", "--json", *args],
                         cwd=cwd, env=env, capture_output=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_spool_files_rotate_and_decode_to_the_templates(tmp_path):
    res = _gen(["--to", str(tmp_path / "snort.u2"), "--count", "1000", "--rotate-events", "300",
                "--templates", "64", "--seed", "3"], tmp_path)
    assert res["events"] == 1000 and len(res["files"]) == 4
    suffixes = [int(p.rsplit(".", 1)[1]) for p in res["files"]]
    assert suffixes == sorted(set(suffixes))  # unique, increasing, like Snort's stamps
    specs = alert_specs(64, 3, kind="snort")
    got = []
    packets = 0
    for path in res["files"]:
        r = unified2.read(path)
        assert r.resume_offset == os.path.getsize(path) and not r.errors
        got.extend(zip(r.alerts["event_id"].tolist(), r.alerts["sid"].tolist(), strict=True))
        packets += len(r.packets)
        assert (r.packet_event >= 0).all()  # every packet joined to its event
    assert [e for e, _ in got] == list(range(1, 1001))
    assert [s for _, s in got] == [specs[i % 64].sid for i in range(1000)]
    assert packets == res["packets"] == sum(1 for i in range(1000) if specs[i % 64].packet is not None)


def test_runs_into_one_spool_add_files_after_every_file_there(tmp_path):
    """A second run in the same second (or after one that rotated faster than
    a file a second) failed with 'File exists'; each run's files now come
    after every file already in the spool, as a follower reads them."""
    spool = tmp_path / "snort.u2"
    future = int(time.time()) + 100
    (tmp_path / f"snort.u2.{future}").write_bytes(b"")  # an earlier run's name, ahead of the clock
    runs = [_gen(["--to", str(spool), "--count", str(n), *extra], tmp_path)
            for n, extra in ((5, []), (7, []), (900, ["--rotate-events", "300"]))]
    files = [f for r in runs for f in r["files"]]
    suffixes = [int(f.rsplit(".", 1)[1]) for f in files]
    assert suffixes == sorted(set(suffixes)) and suffixes[0] > future
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"snort.u2.{future}", *(os.path.basename(f) for f in files)])
    assert sum(len(unified2.read(f).alerts) for f in files) == 912


def test_follower_stores_every_event_written_while_it_runs(tmp_path, run_ingest):
    db = tmp_path / "a.db"
    p = run_ingest(["listen", "--unified2", str(tmp_path / "snort.u2"), "--sink", f"sqlite:{db}",
                    "--stats-interval", "0.2"], wait_for=[])
    deadline = time.monotonic() + 20
    while "ingest: listening on" not in p.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    res = _gen(["--to", str(tmp_path / "snort.u2"), "--count", "600", "--rate", "1500",
                "--rotate-events", "250"], tmp_path)
    assert res["events"] == 600 and len(res["files"]) == 3
    deadline = time.monotonic() + 30
    n = 0
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as con:
                n = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        except sqlite3.OperationalError:
            n = 0
        if n >= 600:
            break
        time.sleep(0.2)
    rc, st = p.stop()
    assert rc == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT event_id) FROM alerts").fetchone()
    assert rows == (600, 600)
