"""Run ``ingest listen`` the way systemd runs it, with the real
``systemd-socket-activate`` (Debian's systemd package) binding the sockets.

``systemd-socket-activate`` without ``--accept`` waits for the first
activity on a socket and then *execs* the program with ``LISTEN_FDS``/
``LISTEN_PID``/``LISTEN_FDNAMES`` set: it is gone once the program runs, so
on its own it cannot restart anything (the sockets would close with the
program).  It takes one socket type per invocation, and passes through
descriptors it was given itself (``sd_listen_fds``), so one invocation per
type is nested.  For restarts the innermost program is a three-line POSIX
shell loop (:data:`HOLDER`) that keeps the descriptors open and starts
ingest again each time it exits, with ``LISTEN_PID`` set to the new
process: exactly what systemd's ``Restart=`` does with a socket unit's
descriptors.  The binding and naming are systemd's own code.

The service manager's notify socket is played by :class:`NotifyListener`
(a real datagram socket, path given as ``NOTIFY_SOCKET``), which records
every READY=1, STOPPING=1, WATCHDOG=1 and STATUS= line with its time.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ACTIVATE = shutil.which("systemd-socket-activate")

#: the holder: $1 is a directory (ingest.pid is written there, "stop" ends the
#: loop), the rest the command.  Each run is `exec`ed by its own sh, so the
#: pid written and LISTEN_PID are the pid ingest runs as.
HOLDER = r'''
dir=$1; shift
while [ ! -e "$dir/stop" ]; do
  sh -c 'echo $$ >"$0/ingest.pid.tmp" && mv "$0/ingest.pid.tmp" "$0/ingest.pid"; LISTEN_PID=$$; export LISTEN_PID; exec "$@"' "$dir" "$@"
done
'''


def need_activate() -> str:
    if ACTIVATE is None:
        pytest.skip("systemd-socket-activate not installed (Debian package systemd)")
    return ACTIVATE


def activate_argv(sockets: list[tuple[str, str | None, str]], program: list[str],
                  env: dict[str, str]) -> list[str]:
    """Nested systemd-socket-activate invocations, one per socket:
    (type: datagram|stream|seqpacket, FileDescriptorName or None, path).
    The outermost (first) socket is the one whose activity starts it all."""
    argv: list[str] = []
    names: list[str] = []
    for i, (kind, name, path) in enumerate(sockets):
        names.append(name or "")
        argv += [need_activate(), "-l", path]
        if kind == "datagram":
            argv.append("--datagram")
        elif kind == "seqpacket":
            argv.append("--seqpacket")
        # each invocation names every descriptor it passes (its own and the
        # ones passed to it, in order); an empty name list is left out
        if any(names):
            argv.append("--fdname=" + ":".join(n or "unknown" for n in names))
        if i == len(sockets) - 1:  # the one that execs the program passes the environment
            for k, v in env.items():
                argv += ["-E", f"{k}={v}"]
        argv.append("--")
    return argv + program


def ingest_env(notify: pathlib.Path | None, **extra: str) -> dict[str, str]:
    env = {"PYTHONPATH": str(REPO), "HOME": os.environ.get("HOME", "/"),
           "OPENBLAS_NUM_THREADS": "1", **extra}
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
    return env


class NotifyListener:
    """The service manager's side of sd_notify: a datagram socket at path,
    read on a thread.  ``messages``: (monotonic time, {field: value})."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_field(self, key: str, value: str | None = None) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if key in m and (value is None or m[key] == value)]

    def ready_pids(self) -> list[int]:
        return [int(m["MAINPID"]) for _, m in self.with_field("READY", "1")]

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def wait(cond, what: str, proc: subprocess.Popen | None = None, errfile: pathlib.Path | None = None,
         deadline: float = 60.0) -> None:
    """Poll cond; fail when proc exits first or after deadline (a guard
    against hangs, never a performance assertion)."""
    end = time.monotonic() + deadline
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) waiting for {what}: {_tail(errfile)}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}: {_tail(errfile)}")
        time.sleep(0.02)


def _tail(p: pathlib.Path | None) -> str:
    if p is None or not p.exists():
        return ""
    return p.read_text(errors="replace")[-4000:]


class Holder:
    """systemd-socket-activate binding ``sockets`` and the restart loop
    running ``python -m ingest listen ARGS`` (see the module docstring);
    ``netns``: inside ``unshare -n`` with ``net.unix.max_dgram_qlen`` set."""

    def __init__(self, tmp: pathlib.Path, sockets: list[tuple[str, str | None, str]], args: list[str],
                 notify: pathlib.Path, *, qlen: int | None = None, extra_env: dict[str, str] | None = None,
                 loop: bool = True) -> None:
        self.dir = tmp
        self.loop = loop
        self.err = tmp / "holder.err"
        program = [sys.executable, "-m", "ingest", "listen", *args]
        if loop:
            program = ["sh", "-c", HOLDER, "holder", str(tmp), *program]
        argv = activate_argv(sockets, program, ingest_env(notify, **(extra_env or {})))
        if qlen is not None:
            argv = ["unshare", "-n", "sh", "-c", f'sysctl -qw net.unix.max_dgram_qlen={qlen} && exec "$@"',
                    "netns", *argv]
        self._errf = open(self.err, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._errf, cwd=tmp)

    def ingest_pid(self) -> int | None:
        if not self.loop:
            return self.proc.pid  # systemd-socket-activate execs ingest in its place
        try:
            return int((self.dir / "ingest.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 60.0) -> int:
        (self.dir / "stop").touch()
        pid = self.ingest_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout)
        finally:
            self._errf.close()

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the end (ingest exiting by itself, without the loop)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self._errf.close()

    def kill(self) -> None:
        (self.dir / "stop").touch()
        pid = self.ingest_pid()
        for p in (pid, self.proc.pid):
            if p is not None:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait()
        self._errf.close()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")
