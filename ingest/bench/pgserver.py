"""A private PostgreSQL server: its own cluster, started from the Debian
``postgresql`` package's binaries (``initdb``/``pg_ctl``), in a temp
directory, on a free port, with a private Unix socket directory.  Used by
``ingest bench`` (the PostgreSQL rows) and by the tests (tests/pg.py);
never by the runtime.

PostgreSQL refuses to run as root: when run as root, the cluster belongs to
``nobody`` (its directory is made for it and handed over); otherwise to the
user running it.  Local (Unix socket) connections are trusted; TCP
connections on 127.0.0.1 need the superuser's password (scram-sha-256).
``INGEST_PG_BIN`` names another binary directory.
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
    durability of PostgreSQL itself (the benchmark keeps it on).
    ``settings`` are added to postgresql.conf (name -> value as written
    there)."""

    def __init__(self, bin_dir: pathlib.Path, *, fsync: bool = False,
                 settings: dict[str, str] | None = None) -> None:
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
            **(settings or {}),
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
