"""Helpers shared by the process-level tests: send like Snort, wait for a
condition on a running ``ingest``, read a store back."""

from __future__ import annotations

import os
import pathlib
import socket
import sqlite3
import time

#: a deadline against hangs, never a performance assertion
DEADLINE = 60.0


def snort_send(path, dgrams) -> None:
    """Send like Snort: unconnected, blocking sendto of the full struct, flags 0."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for d in dgrams:
            s.sendto(d, str(path))
    finally:
        s.close()


def wait_until(cond, p, what: str, deadline: float = DEADLINE) -> None:
    """Poll ``cond`` until true; fail at once (with its stderr) when the
    ``ingest`` process ``p`` exits, or after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not cond():
        if p.proc.poll() is not None:
            raise AssertionError(f"ingest exited ({p.proc.returncode}) waiting for {what}: {p.stderr()}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}: {p.stderr()[-3000:]}")
        time.sleep(0.02)


def count(db, sql="SELECT count(*) FROM alerts") -> int:
    """A count from a SQLite store that may not exist (or have its tables) yet."""
    got = sqlite_rows(db, sql)
    return got[0][0] if got else 0


def event_ids(db) -> list[int]:
    """The stored alerts' event ids, in order ([] before the store exists)."""
    return [r[0] for r in sqlite_rows(db, "SELECT event_id FROM alerts ORDER BY event_id")]


def sqlite_rows(db, sql: str) -> list[tuple]:
    """Rows of a SQLite store that may not exist (or have its tables) yet."""
    if not os.path.exists(db):
        return []
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()
    except sqlite3.OperationalError:
        return []


def rows(db, sql="SELECT * FROM alerts_v ORDER BY id") -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def procs_with_cwd_under(root) -> list[int]:
    """The processes whose working directory is below ``root`` (what a
    benchmark left running there)."""
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "cwd").startswith(str(root)):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


# A native reader thread that dies: the failure is injected (once the file
# named by the first argument exists, every datagram socket's descriptor is
# replaced by /dev/null under its C reader, whose next recvmmsg fails with
# ENOTSOCK: a socket error no test can cause from outside); run as
# ``python -c READER_FAULT TRIGGER ingest-args...``.
READER_FAULT = """
import os, sys, threading, time
os.environ["INGEST_NATIVE_READER"] = "1"  # the C reader thread (opt-in) is the one broken here
import ingest.reader as R
from ingest.cli import main
trigger = sys.argv.pop(1)
fds = []
real = R.NativeReader.__init__
def init(self, fd, *args, **kw):
    fds.append(fd)
    real(self, fd, *args, **kw)
R.NativeReader.__init__ = init
def watch():
    while not os.path.exists(trigger):
        time.sleep(0.01)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd in fds:
        os.dup2(null, fd)
threading.Thread(target=watch, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""
