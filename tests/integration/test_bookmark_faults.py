"""A bookmark that cannot be written (its directory removed, the disk full)
does not stop the alerts: the follower keeps storing, says so once, counts
it, writes the newest position once it can, and exits 1 if it never could
(a restart would read again from the last position saved)."""

from __future__ import annotations

import json
import shutil

import pytest

from ..unit import u2writer as W
from ._store import eve_lines
from ._util import count, wait_until

pytestmark = pytest.mark.slow


def alerts(n: int, first: int = 0) -> str:
    lines = [x for x in eve_lines(first + n) if '"alert"' in x][first:]
    return "\n".join(lines) + "\n"


def remove_dir(d, p) -> None:
    """Remove a bookmark directory while ingest may be writing a bookmark
    into it (a temporary file appears or is renamed away under rmtree's
    feet): again until it is gone."""
    def gone() -> bool:
        shutil.rmtree(d, ignore_errors=True)
        return not d.exists()

    wait_until(gone, p, f"{d} removed")


@pytest.mark.parametrize("back", [True, False], ids=["directory-back", "never-back"])
def test_eve_file_bookmark_that_cannot_be_written(tmp_path, run_ingest, back):
    eve, db, bm = tmp_path / "eve.json", tmp_path / "a.db", tmp_path / "bm"
    bm.mkdir()
    eve.write_text(alerts(3))
    p = run_ingest(["listen", "--eve-file", str(eve), "--bookmark-dir", str(bm), "--sink", f"sqlite:{db}",
                    "--dead-letter", "", "--stats-interval", "0"])
    wait_until(lambda: count(db) == 3, p, "the first alerts")
    remove_dir(bm, p)
    with open(eve, "a") as f:
        f.write(alerts(3, 3))
    wait_until(lambda: count(db) == 6 and "cannot write the bookmark" in p.stderr(), p, "alerts, no bookmark")
    if back:
        bm.mkdir()
        with open(eve, "a") as f:
            f.write(alerts(1, 6))
        wait_until(lambda: "written again" in p.stderr(), p, "the bookmark written again")
    rc, st = p.stop()
    err = p.stderr()
    assert "Traceback" not in err and st["reader_failed"] == {}, err
    assert st["dispatched"] == {f"sqlite:{db}": 7 if back else 6}
    assert st["bookmark_errors"] >= 1
    if back:
        assert rc == 0, err
        (saved,) = json.loads(next(bm.iterdir()).read_text())["files"].values()
        assert saved["offset"] == eve.stat().st_size
    else:
        assert rc == 1 and "the bookmark could not be written" in err, err


def test_unified2_bookmark_that_cannot_be_written_keeps_the_spool(tmp_path, run_ingest):
    """A finished spool file is deleted only once the bookmark has moved past it on disk."""
    spool, db, bm = tmp_path / "spool", tmp_path / "a.db", tmp_path / "bm"
    spool.mkdir()
    bm.mkdir()
    ev = [W.event_v4(104, event_id=i, sec=1_700_000_000 + i, sid=2000 + i)
          + W.packet(event_id=i, event_second=1_700_000_000 + i, data=b"p" * 40) for i in (1, 2, 3)]
    (spool / "snort.u2.100").write_bytes(ev[0])
    p = run_ingest(["listen", "--unified2", str(spool / "snort.u2"), "--unified2-bookmark", str(bm / "b"),
                    "--unified2-after", "delete", "--sink", f"sqlite:{db}", "--dead-letter", "",
                    "--stats-interval", "0"])
    wait_until(lambda: count(db) == 1, p, "the first event")
    remove_dir(bm, p)
    (spool / "snort.u2.200").write_bytes(ev[1])
    wait_until(lambda: count(db) == 2 and "cannot write the bookmark" in p.stderr(), p, "the second event")
    assert (spool / "snort.u2.100").exists()  # not retired: the bookmark on disk does not say it was read
    rc, st = p.stop()
    assert rc == 1 and "Traceback" not in p.stderr(), p.stderr()
    assert st["bookmark_errors"] >= 1 and st["reader_failed"] == {}
