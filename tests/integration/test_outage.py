"""Sink outages on a real ``ingest listen`` process: the backlog drains as
soon as the sink is back, and the counters stay true when shutdown runs out
of time."""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import time

from ingest import deadletter
from ingest.encode import encode_alertpkt
from ingest.sinks.sqlite import SqliteSink

from ._util import snort_send, wait_until


def test_backlog_drains_when_the_sink_is_back_not_after_the_backoff(tmp_path, run_ingest):
    """The JSON-lines file cannot grow (the process's file-size limit, a real
    EFBIG from the kernel, as a full file system gives ENOSPC); once it can,
    the waiting batch is written at the next probe, not when a back-off that
    has grown to 8 s ends."""
    sock, out = tmp_path / "snort_alert", tmp_path / "alerts.json"
    # The limit holds for every file the process writes, its stderr too: the
    # output starts larger than stderr will ever grow here.
    out.write_bytes(b'{"earlier":true}\n' * 65536)
    out.chmod(0o640)
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}"], wait_for=[sock])
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size, hard))
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=0)])
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i) for i in range(1, 51)])
    wait_until(lambda: "retrying in 8.0s" in p.stderr(), p, "a long back-off")
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_until(lambda: len(out.read_bytes().splitlines()) == 65536 + 51, p, "the backlog")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    # the retry was woken by a probe, not by the end of the 8 s back-off (no
    # timing is asserted: the machine is shared and noisy)
    assert "is back (probe); retrying now" in p.stderr() and st["sink_probe_recoveries"] >= 1
    lines = [json.loads(x) for x in out.read_bytes().splitlines()[65536:]]
    assert sorted(x["ingest"]["event_id"] for x in lines) == list(range(51))


def test_sqlite_probe_sees_a_lock_taken_and_released(tmp_path):
    db = tmp_path / "a.db"
    sink = SqliteSink(str(db))
    try:
        lock = sqlite3.connect(db, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        sink._last_error = sqlite3.OperationalError("database is locked")
        sink._last_error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # what a write that timed out raises
        assert asyncio.run(sink.probe()) is False
        lock.rollback()
        lock.close()
        assert asyncio.run(sink.probe()) is True
    finally:
        asyncio.run(sink.aclose())


def test_counters_stay_true_when_shutdown_runs_out_of_time(tmp_path, run_ingest):
    """The store is locked through shutdown and released only once ingest
    has given up: every alert is stored or dead-lettered, never both, and
    the counters say exactly which."""
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--batch-max", "10", "--drain-timeout", "1"], wait_for=[sock])
    lock = sqlite3.connect(db, timeout=60)
    lock.execute("BEGIN EXCLUSIVE")
    n = 100
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i) for i in range(n)])
    wait_until(lambda: "retrying in" in p.stderr(), p, "the first failed write")
    p.proc.send_signal(__import__("signal").SIGTERM)
    end = time.monotonic() + 120
    while "could not deliver" not in p.stderr() and p.proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    lock.rollback()  # the store is back: a write still running would commit now
    lock.close()
    rc = p.proc.wait(timeout=120)
    st = p.final_stats()
    assert rc == 1, p.stderr()
    stored = [r[0] for r in sqlite3.connect(db).execute("SELECT event_id FROM alerts")]
    kept = [json.loads(x)["ingest"]["event_id"] for _h, d in deadletter.read(str(dl)) for x in d.splitlines()]
    assert not set(stored) & set(kept), "alerts both stored and counted as not delivered"
    assert sorted(stored + kept) == list(range(n))
    assert st["dispatched"].get(f"sqlite:{db}", 0) == len(stored)
    assert sum(st["dropped"].values()) == len(kept)


def test_a_jsonl_batch_cut_short_at_the_drain_timeout_is_not_left_half_written(tmp_path, run_ingest):
    """The JSON-lines file fills up in the middle of a batch (here the
    process's file-size limit: the kernel's short write, then EFBIG, as a
    full disk gives) and stays full through shutdown: the batch goes to the
    dead-letter file, so its lines already written are taken back out.
    Otherwise they would be both in the output and counted as not
    delivered, and the output would end in a torn line that the next run's
    first line is glued to."""

    sock, out, dl = tmp_path / "snort_alert", tmp_path / "out.json", tmp_path / "dead.bin"
    out.write_bytes(b'{"earlier": 1}\n' * 20000)  # an output with history
    out.chmod(0o640)
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}", "--dead-letter", str(dl),
                    "--drain-timeout", "1", "--linger-ms", "50"], wait_for=[sock])
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size + 5000, hard))
    n = 60
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i, msg="m" * 80) for i in range(n)])
    wait_until(lambda: "retrying in" in p.stderr(), p, "the failed write")
    rc, st = p.stop()
    assert rc == 1, p.stderr()
    data = out.read_bytes()
    assert data.endswith(b"\n"), "the output ends in a torn line"
    written = [json.loads(x)["ingest"]["event_id"] for x in data.splitlines() if b'"earlier"' not in x]
    kept = [json.loads(x)["ingest"]["event_id"] for _h, d in deadletter.read(str(dl)) for x in d.splitlines()]
    assert not set(written) & set(kept), "alerts both written and counted as not delivered"
    assert sorted(written + kept) == list(range(n))
    assert sum(st["dropped"].values()) == len(kept)
