"""Helpers for the NATS tests: real ``ingest`` processes (sensors publishing
to JetStream, collectors), and JetStream read back with nats-py."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

from ._util import count  # noqa: F401  (the store count the NATS tests share with the others)

REPO = pathlib.Path(__file__).resolve().parents[2]
#: generous: a deadline against hangs, never a performance assertion
DEADLINE = 180.0


class Proc:
    """``python -m ingest ARGS`` in ``cwd``, its stderr in a file."""

    def __init__(self, cwd: pathlib.Path, *args: str, ready: str | None = None) -> None:
        self.cwd = cwd
        self.args = args
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.err_path = cwd / f"ingest-{time.monotonic_ns()}.err"
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ingest", *args], env=env, cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        if ready:
            try:
                wait_for(lambda: ready.encode() in self.err_path.read_bytes(), f"{ready!r}", self)
            except BaseException:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                self._err.close()
                raise

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self, expect_rc: int | None = 0) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=DEADLINE)
        self._err.close()
        if expect_rc is not None:
            assert rc == expect_rc, self.stderr()
        return final_stats(self.stderr())

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=DEADLINE)
        self._err.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def final_stats(err: str) -> dict:
    for line in err.splitlines():
        if line.startswith("ingest: final stats "):
            return json.loads(line[len("ingest: final stats "):])
    return {}


def wait_for(cond, what: str = "condition", proc: Proc | None = None, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if proc is not None and not proc.alive():
            raise AssertionError(f"ingest exited ({proc.proc.returncode}): {proc.stderr()[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}" + (f": {proc.stderr()[-3000:]}" if proc else ""))
        time.sleep(0.05)


def query(db: pathlib.Path, sql: str, args: tuple = ()) -> list[tuple]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def collector(cwd: pathlib.Path, url: str, *args: str, durable: str = "central") -> Proc:
    return Proc(cwd, "collect", url, "--durable", durable, "--stats-interval", "1", *args,
                ready="ingest: collecting from")


def js_run(servers: str, fn):
    """Run ``await fn(js)`` against a JetStream connection."""
    import nats

    async def go():
        nc = await nats.connect([f"nats://{u}" for u in servers.split(",")], connect_timeout=2)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def consumer_state(servers: str, stream: str, durable: str) -> tuple[int, int]:
    """(num_pending, num_ack_pending) of a durable consumer."""

    async def info(js):
        ci = await js.consumer_info(stream, durable)
        return ci.num_pending, ci.num_ack_pending

    return js_run(servers, info)
