"""Shared test helpers: shared data location, a seeded RNG, and a running
``ingest`` process."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A shell starts a background job (`cmd &` in a script, nohup) with SIGINT
# ignored, and every process the tests start would inherit that: the Ctrl-C
# tests' processes would then never see their SIGINT.  A handler here is reset
# to the default in each child at exec, so the children behave as in a
# terminal wherever pytest runs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
#: the one place tests find the shared data set: $INGEST_SHARED_DATA, else
#: ../shared/data beside the checkout (CI lays a copy there).  Never a
#: machine's absolute path (tests/unit/test_no_machine_paths.py).
SHARED = pathlib.Path(os.environ.get("INGEST_SHARED_DATA") or ROOT.parent / "shared" / "data")


def shared_file(rel: str) -> pathlib.Path:
    """A file from ../shared/data, or skip the test cleanly when absent."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


class Rand(random.Random):
    """random.Random whose repr shows the seed, so a failure can be replayed."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"Rand(seed={self.seed_value})"


@pytest.fixture
def rand() -> Rand:
    seed = int(os.environ.get("INGEST_TEST_SEED", random.randrange(1 << 32)))
    return Rand(seed)


class IngestProcess:
    """``python -m ingest ARGS`` started in a directory, stopped with SIGTERM."""

    def __init__(self, args: list[str], cwd: pathlib.Path, wait_for: list[pathlib.Path] | None) -> None:
        self.cwd = cwd
        self.stderr_path = cwd / f"ingest-stderr-{time.monotonic_ns()}.txt"
        self._err = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", *args], cwd=cwd, stdout=subprocess.PIPE,
            stderr=self._err, env=env,
        )
        if wait_for is None:
            return
        deadline = time.monotonic() + 20
        # ready: the sockets exist and every sink is open ("listening on")
        while not (all(p.exists() for p in wait_for) and "ingest: listening on" in self.stderr()):
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited early ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"socket(s) never appeared: {self.stderr()}")
            time.sleep(0.02)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, dict]:
        """Signal, wait, and return (exit code, final stats)."""
        self.proc.send_signal(sig)
        try:
            self.stdout = self.proc.communicate(timeout=timeout)[0]
        finally:
            self._err.close()
        return self.proc.returncode, self.final_stats()

    def final_stats(self) -> dict:
        for line in self.stderr().splitlines():
            if line.startswith("ingest: final stats "):
                return json.loads(line[len("ingest: final stats "):])
        return {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def run_ingest(tmp_path):
    started: list[IngestProcess] = []

    def start(args: list[str], wait_for: list[pathlib.Path] | None = None) -> IngestProcess:
        p = IngestProcess(args, tmp_path, wait_for)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


# A real PostgreSQL server (tests/pg.py): one cluster per test session,
# a database per test; skipped cleanly without the server binaries.
from .pg import pg_server, pg_url  # noqa: E402, F401


# --- NATS JetStream (tests/natsserver.py) ------------------------------------
@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """One nats-server -js for the whole session (tests use their own
    subject prefix and stream: tests.natsserver.unique_prefix)."""
    from .natsserver import NatsServer, need_nats, wait_jetstream

    need_nats()
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    wait_jetstream([server.url])
    yield server
    server.stop()


@pytest.fixture
def nats_cluster(tmp_path_factory):
    """A fresh 3-node JetStream cluster (a test may kill its nodes)."""
    from .natsserver import Cluster, need_nats

    need_nats()
    cluster = Cluster(tmp_path_factory.mktemp("natscluster"))
    yield cluster
    cluster.stop()
