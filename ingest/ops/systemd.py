"""Running under systemd: socket activation and the notify protocol.

Both protocols are small and stable (``sd_listen_fds(3)``, ``sd_notify(3)``),
so they are implemented here rather than pulling in libsystemd:

* **Socket activation.**  The service manager binds the sockets (the
  ``ingest-*.socket`` units in ``contrib/systemd/``), keeps them open across
  restarts of the service, and passes them at start as descriptors 3, 4, ...
  with ``LISTEN_FDS`` (how many), ``LISTEN_PID`` (for which process: a
  variable inherited by a child is not for it) and ``LISTEN_FDNAMES``
  (``FileDescriptorName=`` of each, colon-separated).  Because the socket
  outlives the process, what a sender writes while ingest restarts waits in
  the kernel's queue and is read by the next process: a restart loses
  nothing and Snort's sends never fail (they may block for as long as the
  restart takes, as they do when ingest is busy).

  :func:`adopt_sockets` matches every passed descriptor to one socket input
  of the configuration (``--snort``, ``--barnyard2``, ``--barnyard2-sync``,
  ``--eve-dgram``, ``--eve-stream``): first by the path it is bound to
  (``getsockname``) being the input's path, then by its name being the
  input's kind (``snort``, ``eve-stream``, ...) or the file name of the
  input's path.  Each is checked to be an ``AF_UNIX`` socket of the type the
  input needs (and listening, for stream and seqpacket: ``Accept=no``).  A
  descriptor no input takes, an input with no descriptor (when any was
  passed: a half-activated configuration would bind some sockets itself,
  behind the manager's back), a name that fits several inputs, or a wrong
  type is a start-up error (exit 2) that says which and what to change.

  An adopted socket belongs to the manager: ingest never unlinks, chmods or
  chowns its file, never shuts it down (that would refuse senders for the
  next process too), and at exit leaves unread datagrams and pending
  connections where they are, for the next process.
* **Notifications** (``NOTIFY_SOCKET``, a path or an ``@abstract`` name):
  ``READY=1`` once every source runs (``Type=notify``: units ordered after
  ingest start only then), ``STOPPING=1`` when shutdown begins,
  ``WATCHDOG=1`` every ``WATCHDOG_USEC``/2 from the event loop (a wedged loop
  stops petting and systemd restarts the service), and ``STATUS=`` with the
  rates, which ``systemctl status`` shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..sockets import BoundSocket, pass_sockets
from .logs import at

_log = logging.getLogger("ingest.systemd")

#: the first passed descriptor (SD_LISTEN_FDS_START)
LISTEN_FDS_START = 3
#: how often STATUS= is refreshed (systemctl status shows the last one)
STATUS_SECONDS = 5.0

_TYPE_NAMES: dict[int, str] = {socket.SOCK_DGRAM: "datagram (ListenDatagram=)",
               socket.SOCK_STREAM: "stream (ListenStream=)",
               socket.SOCK_SEQPACKET: "seqpacket (ListenSequentialPacket=)"}


class ActivationError(ValueError):
    """The passed sockets do not fit the configuration (exit 2)."""


@dataclass
class ListenFd:
    """One descriptor passed by the service manager."""

    fd: int
    name: str  # FileDescriptorName= ("unknown" when the manager gave none)


def listen_fds(environ: dict[str, str] | None = None, *, unset_environment: bool = True) -> list[ListenFd]:
    """The descriptors passed with ``LISTEN_FDS`` for this process
    (``sd_listen_fds_with_names``): [] when none were, or when ``LISTEN_PID``
    names another process (the variables were inherited).  Each descriptor is
    made close-on-exec.  ``unset_environment``: remove the variables, so that
    nothing this process starts believes they are for it."""
    env = os.environ if environ is None else environ
    pid_s, n_s, names_s = env.get("LISTEN_PID"), env.get("LISTEN_FDS"), env.get("LISTEN_FDNAMES")
    if unset_environment:
        for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(k, None)
    if pid_s is None or n_s is None:
        return []
    try:
        pid, n = int(pid_s), int(n_s)
    except ValueError:
        raise ActivationError(f"LISTEN_PID={pid_s!r} LISTEN_FDS={n_s!r} are not numbers") from None
    if pid != os.getpid():
        return []  # meant for the process that started us
    if n < 0 or n > 4096:
        raise ActivationError(f"LISTEN_FDS={n} is out of range")
    names = names_s.split(":") if names_s else []
    if names and len(names) != n:
        raise ActivationError(f"LISTEN_FDNAMES names {len(names)} descriptors, LISTEN_FDS says {n}")
    out = []
    for i in range(n):
        fd = LISTEN_FDS_START + i
        try:
            os.set_inheritable(fd, False)  # CLOEXEC
        except OSError as e:
            raise ActivationError(f"passed descriptor {fd} is not open ({e.strerror})") from None
        out.append(ListenFd(fd, names[i] if names else "unknown"))
    return out


@dataclass(frozen=True)
class SocketInput:
    """A socket input of the configuration that a passed descriptor can serve."""

    kind: str  # snort | barnyard2 | barnyard2-sync | eve-dgram | eve-stream
    path: str  # absolute
    type: int  # socket.SOCK_DGRAM / SOCK_STREAM / SOCK_SEQPACKET

    @property
    def flag(self) -> str:
        return f"--{self.kind} {self.path}"


def socket_inputs(cfg: Any) -> list[SocketInput]:
    """The socket inputs a Config names, in the order ingest binds them."""
    spec = (("snort", cfg.snort, socket.SOCK_DGRAM), ("barnyard2", cfg.barnyard2, socket.SOCK_DGRAM),
            ("barnyard2-sync", cfg.barnyard2_sync, socket.SOCK_SEQPACKET),
            ("eve-dgram", cfg.eve_dgram, socket.SOCK_DGRAM), ("eve-stream", cfg.eve_stream, socket.SOCK_STREAM))
    return [SocketInput(kind, os.path.abspath(p), t) for kind, paths, t in spec for p in paths]


def _describe(fd: ListenFd, path: str | None) -> str:
    where = f"bound to {path}" if path else "not bound to a path"
    return f"passed socket {fd.fd} (FileDescriptorName={fd.name}, {where})"


def _bound_path(sock: socket.socket) -> str | None:
    """The file a Unix socket is bound to (None: unnamed or abstract)."""
    name = sock.getsockname()
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not isinstance(name, str) or not name or name.startswith("\0"):
        return None
    return os.path.abspath(name)


def adopt_sockets(inputs: Sequence[SocketInput], fds: Iterable[ListenFd]) -> dict[SocketInput, BoundSocket]:
    """Match the passed descriptors to the socket inputs (see the module
    docstring); ActivationError when they do not fit one to one.  Nothing
    is changed on a socket until every one matched (on an error, the
    descriptors are closed and the sockets stay as the manager made them)."""
    fds = list(fds)
    if not fds:
        return {}
    socks: list[tuple[ListenFd, socket.socket, str | None]] = []
    try:
        for fd in fds:
            try:
                s = socket.socket(fileno=fd.fd)
            except OSError as e:
                raise ActivationError(f"passed descriptor {fd.fd} (FileDescriptorName={fd.name}) is not a "
                                      f"socket ({e.strerror})") from None
            if s.family != socket.AF_UNIX:
                s.detach()
                raise ActivationError(f"passed descriptor {fd.fd} (FileDescriptorName={fd.name}) is a "
                                      f"{s.family.name} socket; ingest's inputs are Unix sockets "
                                      "(ListenDatagram=/ListenStream=/ListenSequentialPacket= with a path)")
            socks.append((fd, s, _bound_path(s)))
        matched = _match(inputs, [(fd, path) for fd, _, path in socks])
        out: dict[SocketInput, BoundSocket] = {}
        for (fd, s, path), inp in zip(socks, matched, strict=True):
            _check_type(fd, s, path, inp)
        for (_, s, path), inp in zip(socks, matched, strict=True):
            out[inp] = _adopted(s, path)
        return out
    except BaseException:
        for _, s, _ in socks:
            s.close()
        raise


def _match(inputs: Sequence[SocketInput], fds: list[tuple[ListenFd, str | None]]) -> list[SocketInput]:
    """For each passed descriptor (in order) the input it serves."""
    free = list(inputs)
    got: list[SocketInput | None] = [None] * len(fds)
    # 1. by the bound path: unambiguous, and what the units do by default
    for i, (_, path) in enumerate(fds):
        hit = next((inp for inp in free if path is not None and inp.path == path), None)
        if hit is not None:
            got[i] = hit
            free.remove(hit)
    # 2. by FileDescriptorName: the input's kind, or its file name
    for i, (fd, path) in enumerate(fds):
        if got[i] is not None:
            continue
        cands = [inp for inp in free if fd.name in (inp.kind, os.path.basename(inp.path))]
        if len(cands) > 1:
            raise ActivationError(
                f"{_describe(fd, path)} could serve {', '.join(c.flag for c in cands)}: give each socket unit "
                "the path of its input (ListenDatagram=/ListenStream=...) or a FileDescriptorName= that is the "
                "input's file name")
        if cands:
            got[i] = cands[0]
            free.remove(cands[0])
            if path is not None and path != cands[0].path:
                _log.info(f"{_describe(fd, path)} serves {cands[0].flag} by its name",
                          extra=at(f"{cands[0].kind}:{cands[0].path}"))
    extra = [_describe(fd, path) for (fd, path), g in zip(fds, got, strict=True) if g is None]
    if extra:
        names = ", ".join(f"{i.flag}" for i in free) or "none is left"
        raise ActivationError(
            f"{'; '.join(extra)}: no input takes it (inputs without a socket: {names}). Name the input with "
            "the socket's path, or set the socket unit's FileDescriptorName= to the input's kind "
            "(snort, barnyard2, barnyard2-sync, eve-dgram, eve-stream)")
    if free:
        raise ActivationError(
            f"sockets were passed by the service manager, but none for {', '.join(i.flag for i in free)}. "
            "Add a socket unit for it (and Sockets= in ingest.service), or remove the input: ingest does not "
            "bind some sockets itself while the manager holds the others")
    return [g for g in got if g is not None]


def _check_type(fd: ListenFd, s: socket.socket, path: str | None, inp: SocketInput) -> None:
    stype = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    if stype != inp.type:
        have = _TYPE_NAMES.get(stype, f"type {stype}")
        raise ActivationError(f"{_describe(fd, path)} is a {have} socket; {inp.flag} needs a "
                              f"{_TYPE_NAMES[inp.type]} socket")
    if inp.type != socket.SOCK_DGRAM and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ActivationError(f"{_describe(fd, path)} is not listening: {inp.flag} needs the listening socket "
                              "(Accept=no in the socket unit)")


def _adopted(s: socket.socket, path: str | None) -> BoundSocket:
    # The sources set their own timeouts; a previous process may have left
    # the (shared) descriptor non-blocking.
    os.set_blocking(s.fileno(), True)
    inode = dev = 0
    if path is not None:
        try:
            st = os.lstat(path)
            if stat.S_ISSOCK(st.st_mode):
                inode, dev = st.st_ino, st.st_dev  # watched like our own (socket_replaced)
        except OSError:
            pass
    return BoundSocket(s, path or "", inode, dev, adopted=True)


def adopt_from_environment(cfg: Any) -> int:
    """Match the descriptors passed to this process to cfg's socket inputs
    (:func:`adopt_sockets`) and hand them to ``bind_unix``, which then
    returns them instead of binding.  Returns how many were adopted."""
    adopted = adopt_sockets(socket_inputs(cfg), listen_fds())
    pass_sockets({(inp.type, inp.path): b for inp, b in adopted.items()})
    return len(adopted)


# --- sd_notify -------------------------------------------------------------------

def notify_address(value: str | None) -> str | bytes | None:
    """NOTIFY_SOCKET as an address for sendto: a path, or an abstract name
    (``@name`` -> ``\\0name``); None when unset or not usable."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return value
    return None  # vsock: and others: not for us


class Notifier:
    """Sends sd_notify(3) messages to the service manager (fire and forget:
    a manager that went away never stops ingest)."""

    def __init__(self, address: str | bytes, *, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False
        self.sent = 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Notifier | None:
        """A notifier for NOTIFY_SOCKET (None when not run by a manager that
        listens).  The watchdog is on when WATCHDOG_USEC is set and
        WATCHDOG_PID, if set, is this process."""
        env = os.environ if environ is None else environ
        addr = notify_address(env.get("NOTIFY_SOCKET"))
        if addr is None:
            return None
        usec = 0
        wpid = env.get("WATCHDOG_PID")
        try:
            if wpid is None or int(wpid) == os.getpid():
                usec = max(int(env.get("WATCHDOG_USEC", "0")), 0)
        except ValueError:
            usec = 0
        return cls(addr, watchdog_usec=usec)

    def send(self, *fields: str) -> bool:
        """One notification (fields joined by newlines); False if it failed."""
        msg = "\n".join(fields).encode()
        try:
            self._sock.sendto(msg, self.address)
        except OSError as e:
            if not self._failed:  # once: a manager gone is no reason to flood the log
                self._failed = True
                _log.warning(f"cannot notify the service manager at NOTIFY_SOCKET ({e.strerror})")
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: draining what was read, flushing sinks")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        self._sock.close()

    async def run(self, stats: Any) -> None:
        """Until cancelled, on the event loop: WATCHDOG=1 every
        WATCHDOG_USEC/2 (when set) and STATUS= with the rates every
        STATUS_SECONDS."""
        rates = Rates(stats)
        period = STATUS_SECONDS
        if self.watchdog_usec:
            period = min(period, self.watchdog_usec / 2e6)
        next_status = time.monotonic() + STATUS_SECONDS
        while True:
            await asyncio.sleep(period)
            if self.watchdog_usec:
                self.watchdog()
            now = time.monotonic()
            if now >= next_status:
                self.status(rates.line())
                next_status = now + STATUS_SECONDS


class Rates:
    """Per-second rates between two looks at the stats, as one short line."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats
        self._last = (time.monotonic(), stats.snapshot())

    def line(self) -> str:
        now, snap = time.monotonic(), self.stats.snapshot()
        t0, prev = self._last
        self._last = (now, snap)
        dt = max(now - t0, 1e-3)

        def rate(a: int, b: int) -> str:
            return f"{(a - b) / dt:.0f}/s"

        out = [f"received {rate(snap['received'], prev['received'])}",
               f"decoded {rate(snap['decoded'], prev['decoded'])}"]
        for sink, n in sorted(snap["dispatched"].items()):
            out.append(f"{sink} {rate(n, prev['dispatched'].get(sink, 0))}")
        dropped = sum(snap["dropped"].values())
        malformed = sum(snap["malformed"].values())
        out.append(f"queue {snap['queue_depth']}")
        if dropped or malformed:
            out.append(f"dropped {dropped} malformed {malformed} (total)")
        return ", ".join(out)
