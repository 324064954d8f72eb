"""Helpers for the EVE integration tests: a real ``ingest listen`` process."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

from ..conftest import SHARED
from ._util import count, wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = SHARED
EVE = DATA / "eve"
#: generous: a deadline against hangs, never a performance assertion
DEADLINE = 120.0


class Ingest:
    def __init__(self, tmp: pathlib.Path, *args: str, db: str = "a.db") -> None:
        self.tmp = tmp
        self.db = tmp / db
        self.dl = tmp / "deadletter.bin"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.stderr_path = tmp / f"ingest-{time.monotonic_ns()}.err"
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "listen", *args, "--sink", f"sqlite:{self.db}",
             "--dead-letter", str(self.dl), "--stats-interval", "0"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._err, cwd=tmp,
        )
        self.wait_for(lambda: b"listening on" in self.stderr_path.read_bytes())

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, cond, what: str = "condition") -> None:
        wait_until(cond, self, what, DEADLINE)

    def count(self, sql: str = "SELECT count(*) FROM alerts") -> int:
        return count(self.db, sql)

    def wait_count(self, n: int, sql: str = "SELECT count(*) FROM alerts") -> None:
        self.wait_for(lambda: self.count(sql) >= n, f"{n} rows from {sql}")

    def stop(self) -> dict:
        """SIGTERM, wait, and return the final stats."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=DEADLINE)
        self._err.close()
        err = self.stderr_path.read_text()
        assert rc == 0, err
        line = next(ln for ln in err.splitlines() if ln.startswith("ingest: final stats "))
        return json.loads(line[len("ingest: final stats "):])

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=DEADLINE)
        self._err.close()


def query(db: pathlib.Path, sql: str) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()
