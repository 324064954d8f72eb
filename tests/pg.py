"""A real PostgreSQL server for the tests: its own cluster, started from the
Debian ``postgresql`` package's binaries (``initdb``/``pg_ctl``), in a temp
directory, on a free port, with a private Unix socket directory
(``ingest.bench.pgserver``, shared with ``ingest bench``).

PostgreSQL refuses to run as root: when the tests run as root, the cluster
belongs to ``nobody`` (its directory is made for it and handed over);
otherwise to the user running the tests.  Local (Unix socket) connections
are trusted; TCP connections on 127.0.0.1 need the superuser's password
(scram-sha-256), so the credential paths (URL, passfile) are exercised
for real.

``pg_server`` (session scope, re-exported by tests/conftest.py) starts one
cluster for the whole run; ``pg_url`` gives each test a database of its
own.  Both skip cleanly, with the reason, when the binaries or psycopg are
missing (CI installs them: .ci/run).  ``INGEST_PG_BIN`` names another
binary directory.
"""

from __future__ import annotations

import contextlib
import pathlib
import socket
import time
from collections.abc import Iterator

import pytest

from ingest.bench.pgserver import PASSWORD, SUPERUSER, PgServer, find_bin_dir, free_port

__all__ = ["PASSWORD", "SUPERUSER", "CommitCutter", "PgServer", "find_bin_dir", "free_port", "need_postgresql",
           "pg_server", "pg_url", "wait_until"]


def need_postgresql() -> pathlib.Path:
    """The binary directory, or skip (with the reason) when PostgreSQL or
    psycopg is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'ingest[postgresql]')")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; or set INGEST_PG_BIN)")
    return bin_dir


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(need_postgresql())
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database of its own for one test, as a Unix-socket URL."""
    name = pg_server.new_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def wait_until(cond, what: str, timeout: float = 60.0) -> None:
    """A hang guard, never a timing assertion."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class CommitCutter:
    """A TCP proxy in front of the server that can lose a COMMIT's answer:
    with ``cut_next_commit`` set, it forwards the next ``COMMIT`` query to
    the server, waits until the server has answered it (so the transaction
    *has* committed), and then closes the client's connection without
    passing the answer on: the client cannot know whether its commit
    happened.  Everything else passes through unchanged."""

    def __init__(self, server: PgServer) -> None:
        import threading

        self.server = server
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.cut_next_commit = False
        self.cuts = 0
        self._threading = threading
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: str) -> str:
        return (f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"
                "?sslmode=disable&connect_timeout=5")

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.server.port))
            self._threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions on one thread (select), so that only this thread
        ever reads the server's answer to a COMMIT it cuts."""
        import select

        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [])
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    upstream.sendall(data)
                    if self.cut_next_commit and b"COMMIT\x00" in data:  # simple query 'Q' "COMMIT"
                        self.cut_next_commit = False
                        answer = b""
                        while b"COMMIT\x00" not in answer:  # CommandComplete: it committed
                            more = upstream.recv(65536)
                            if not more:
                                break
                            answer += more
                        self.cuts += 1
                        break  # the answer is never passed on
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()
