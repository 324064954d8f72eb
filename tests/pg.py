"""A real PostgreSQL server for the tests: its own cluster, started from the
Debian ``postgresql`` package's binaries (``initdb``/``pg_ctl``), in a temp
directory, on a free port, with a private Unix socket directory.

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
import itertools
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

#: the superuser's name and password (TCP connections need the password)
SUPERUSER = "ingest_test"
PASSWORD = "s3cret-for-tests-only"


def find_bin_dir() -> pathlib.Path | None:
    """$INGEST_PG_BIN, else the newest /usr/lib/postgresql/<version>/bin
    (Debian), else the directory of an ``initdb`` on PATH."""
    env = os.environ.get("INGEST_PG_BIN")
    if env:
        return pathlib.Path(env) if (pathlib.Path(env) / "initdb").exists() else None
    base = pathlib.Path("/usr/lib/postgresql")
    if base.is_dir():
        versions = sorted((d for d in base.iterdir() if (d / "bin" / "initdb").exists()),
                          key=lambda d: [int(x) for x in d.name.split(".") if x.isdigit()])
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("initdb")
    return pathlib.Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in its own directory.  ``fsync`` off by
    default: the tests restart the server cleanly, they never test the
    durability of PostgreSQL itself (the benchmark keeps it on)."""

    def __init__(self, bin_dir: pathlib.Path, *, fsync: bool = False) -> None:
        self.bin = bin_dir
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ingest-pg-"))
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.fsync = fsync
        self._run_as: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.root, 0o700)
        self._as_owner(["mkdir", "-m", "0700", str(self.sockdir)])
        pwfile = self.root / "pw"
        self._as_owner(["sh", "-c", f"umask 077 && printf '%s\\n' '{PASSWORD}' > {pwfile}"])
        self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                        f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                        "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "fsync": "on" if fsync else "off",
            "synchronous_commit": "on",
            "full_page_writes": "on" if fsync else "off",
            "max_connections": "50",
            "shared_buffers": "64MB",
        }
        with open(self.data / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        self._dbs = itertools.count()

    def _as_owner(self, argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, **self._run_as)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                               "-w", "-t", "60", *args], check=check)

    def start(self) -> None:
        try:
            self.pg_ctl("start")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"pg_ctl start failed: {e.stderr}\n{self.log_text()}") from None

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode, check=False)

    def restart(self, mode: str = "fast") -> None:
        self.pg_ctl("restart", "-m", mode)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash, not a shutdown)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 9)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, db: str = "postgres", *, tcp: bool = False, password: bool = False) -> str:
        """A postgresql:// URL: over the Unix socket (trusted), or over TCP
        (with the password in the URL when ``password``)."""
        if tcp:
            cred = f"{SUPERUSER}:{PASSWORD}" if password else SUPERUSER
            return f"postgresql://{cred}@127.0.0.1:{self.port}/{db}"
        return f"postgresql://{SUPERUSER}@/{db}?host={self.sockdir}&port={self.port}"

    def sql(self, sql: str, db: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as c:
            cur = c.execute(sql)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._dbs)}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


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
