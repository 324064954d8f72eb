"""Creating the Unix socket files the engines write to, safely.

Rules (README "Socket files"):

* The path must fit ``sun_path`` (107 bytes + NUL); Snort would silently
  truncate it, we refuse it with a clear error.
* Whatever is at the path: nothing -> create; a socket nobody is bound to
  (connect() is refused) -> stale, replaced; a socket somebody is bound to ->
  error "in use"; a regular file, directory or symlink -> error, never touched.
* The socket is bound inside a private 0700 directory next to the target,
  given its mode and group there, and then renamed into place.  rename()
  replaces a stale socket atomically and never follows a symlink, so nothing
  is ever created or chmod'ed through a link an attacker planted, and the
  socket is never reachable with looser permissions than asked for.  The
  private directory is held by a descriptor from the moment it exists and
  checked to be ours (owner, 0700) through it; bind goes through
  ``/proc/self/fd/N/s`` and chown/chmod/rename are relative to the
  descriptor, so renaming the directory away and planting a link in its
  place (possible in a parent others may write) reaches nothing.
* A parent directory every user may write and that is not sticky is warned
  about at start-up: anyone there can swap the socket.  ``watch_sockets``
  checks every few seconds that each path still is our socket (same inode);
  a replaced or removed socket is an error in the log and in the stats
  (``socket_replaced``).
* On exit the file is removed only if it is still the one we created (same
  inode).
* A socket the service manager passed (systemd socket activation,
  ``ingest.ops.systemd``) is handed out by ``bind_unix`` for its path
  instead of binding one: its file, mode and owner are the manager's, and
  ingest never unlinks, chmods or shuts it down (``BoundSocket.adopted``).
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .ops.logs import at
from .safefile import dir_open_to_all

_log = logging.getLogger(__name__)

SUN_PATH_MAX = 107  # bytes, without the terminating NUL


class SocketPathError(RuntimeError):
    """The socket path cannot be used (too long, occupied, in use)."""


@dataclass
class BoundSocket:
    sock: socket.socket
    path: str
    inode: int
    dev: int = 0
    #: passed by the service manager, which owns it: never unlinked, never
    #: shut down (the next process reads what is queued)
    adopted: bool = False

    def still_ours(self) -> bool:
        """Whether the path still is the socket we bound (not replaced, not removed)."""
        if self.adopted and not self.inode:
            return True  # not bound to a path we could look at
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        return stat.S_ISSOCK(st.st_mode) and (st.st_ino, st.st_dev) == (self.inode, self.dev)

    def remove(self) -> None:
        """Close the socket and unlink its file if it is still ours."""
        try:
            if not self.adopted and self.still_ours():
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.close()


#: how often watch_sockets looks at the socket paths
SOCKET_CHECK_SECONDS = 2.0


async def watch_sockets(sources: Iterable[Any], stats: Any,
                        interval: float = SOCKET_CHECK_SECONDS) -> None:
    """Until cancelled: say (log line, ``socket_replaced`` counter) when a
    socket path no longer is the socket we bound; say again if it comes
    back and is lost again."""
    bound = [(b, s.origin) for s in sources if isinstance(b := getattr(s, "bound", None), BoundSocket)]
    lost: set[str] = set()
    while bound:
        await asyncio.sleep(interval)
        for b, origin in bound:
            if b.still_ours():
                lost.discard(b.path)
            elif b.path not in lost:
                lost.add(b.path)
                stats.add_extra("socket_replaced")
                _log.error(f"socket {b.path} is no longer ours (replaced or removed by "
                           "someone else): engines writing there do not reach ingest", extra=at(origin))


#: sockets the service manager passed, by (type, absolute path of the input
#: they serve): ``bind_unix`` hands each out once instead of binding
_passed: dict[tuple[int, str], BoundSocket] = {}


def pass_sockets(socks: dict[tuple[int, str], BoundSocket]) -> None:
    """Register the sockets the service manager passed (ingest.ops.systemd),
    each for the input path it serves."""
    _passed.update(socks)


def _check_target(path: str, kind: int) -> bool:
    """Whether path holds a stale socket (True), nothing (False), or raise
    SocketPathError for anything we must not replace."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise SocketPathError(f"{path} is a symbolic link; refusing to replace it")
    if not stat.S_ISSOCK(st.st_mode):
        what = "directory" if stat.S_ISDIR(st.st_mode) else "regular file" if stat.S_ISREG(st.st_mode) else "non-socket file"
        raise SocketPathError(f"{path} exists and is a {what}, not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, kind)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True  # stale: nobody is bound
    except FileNotFoundError:
        return False  # went away meanwhile
    except OSError as e:
        # EACCES (another user's live socket), EAGAIN/timeout (a full
        # listen backlog), EPROTOTYPE (a live socket of another type): all
        # mean somebody may be using it.  Only "refused" proves it stale.
        raise SocketPathError(
            f"{path} is a socket that may be in use ({e.strerror or e}); refusing to replace it"
        ) from None
    finally:
        probe.close()
    raise SocketPathError(f"{path} is a socket in use by another process (is another ingest running?)")


def _private_dir_ok(dfd: int) -> bool:
    st = os.fstat(dfd)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700


def bind_unix(path: str, kind: int = socket.SOCK_DGRAM, *, mode: int = 0o660,
              group: str | int | None = None, backlog: int = 64) -> BoundSocket:
    """Create, bind (and for stream/seqpacket, listen on) a Unix socket at
    path; or, when the service manager passed one for path, that one."""
    path = os.path.abspath(path)
    held = _passed.pop((kind, path), None)
    if held is not None:
        return held
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise SocketPathError(
            f"{path} is {len(os.fsencode(path))} bytes; a Unix socket path is at most "
            f"{SUN_PATH_MAX} bytes (Snort would silently truncate it). Use a shorter path."
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise SocketPathError(f"directory {parent} does not exist")
    if dir_open_to_all(os.stat(parent)):
        _log.warning(f"{parent} is writable by every user and not sticky: anyone can "
                     f"replace the socket {path}; use a directory only ingest and the engine can write")
    gid = -1
    if group is not None:
        try:
            gid = int(group) if isinstance(group, int) or str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise SocketPathError(f"no such group: {group}") from None
    _check_target(path, kind)

    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        tmpdir = tempfile.mkdtemp(prefix=".ing", dir=parent)  # mode 0700
        dfd = os.open(tmpdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if not _private_dir_ok(dfd):
                raise SocketPathError(f"the private directory {tmpdir} was replaced; refusing to bind")
            via_fd = f"/proc/self/fd/{dfd}"
            if os.path.isdir(via_fd):
                # through the descriptor: whatever the name points to now
                sock.bind(f"{via_fd}/s")
                inode, dev = _finish_in_private_dir(dfd, path, kind, mode, gid)
            else:
                inode, dev = _bind_without_proc(sock, path, tmpdir, kind, mode, gid)
        finally:
            try:
                os.unlink("s", dir_fd=dfd)
            except OSError:
                pass
            try:
                d, n = os.fstat(dfd), os.lstat(tmpdir)
                if (d.st_dev, d.st_ino) == (n.st_dev, n.st_ino):  # remove ours, nothing else
                    os.rmdir(tmpdir)
            except OSError:
                pass
            os.close(dfd)
        if kind != socket.SOCK_DGRAM:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return BoundSocket(sock, path, inode, dev)


def _finish_in_private_dir(dfd: int, path: str, kind: int, mode: int, gid: int) -> tuple[int, int]:
    """Group and mode for the socket "s" in our private directory (relative
    to its descriptor: nobody else can put anything there), then rename it
    into place."""
    st = os.stat("s", dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketPathError(f"could not bind {path}: the private directory was tampered with")
    if gid != -1:
        os.chown("s", -1, gid, dir_fd=dfd, follow_symlinks=False)
    os.chmod("s", mode, dir_fd=dfd)
    if not _private_dir_ok(dfd):
        raise SocketPathError(f"could not bind {path}: the private directory was tampered with")
    _check_target(path, kind)  # again: close the window since the first look
    os.rename("s", path, src_dir_fd=dfd)
    return st.st_ino, st.st_dev


def _bind_without_proc(sock: socket.socket, path: str, tmpdir: str, kind: int, mode: int,
                       gid: int) -> tuple[int, int]:
    """No /proc: bind by name in the private directory, or in place when
    that name does not fit sun_path (with a umask that gives nobody access
    until chmod; bind() never follows or replaces what is at the path, so a
    stale socket is removed first, re-checked just before)."""
    tmp = os.path.join(tmpdir, "s")
    if len(os.fsencode(tmp)) <= SUN_PATH_MAX:
        sock.bind(tmp)
        target = tmp
    else:
        if _check_target(path, kind):
            os.unlink(path)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        target = path
    st = os.lstat(target)
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketPathError(f"could not bind {path}: {target} is not the socket just bound")
    if gid != -1:
        os.chown(target, -1, gid, follow_symlinks=False)
    if os.lstat(target).st_ino != st.st_ino:
        raise SocketPathError(f"could not bind {path}: {target} was replaced")
    os.chmod(target, mode)
    if target != path:
        _check_target(path, kind)
        os.rename(tmp, path)
    return st.st_ino, st.st_dev


def stop_receiving(sock: socket.socket) -> None:
    """Refuse whatever a peer sends from now on (it gets EPIPE, as when we
    are gone) and make the descriptor non-blocking, so that what the kernel
    already accepted can be read to its end: the shutdown drain of every
    datagram and seqpacket reader."""
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    os.set_blocking(sock.fileno(), False)


def _read_sysctl(name: str) -> int | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


def raise_rcvbuf(sock: socket.socket, want: int = 32 << 20) -> int:
    """Set SO_RCVBUF as high as allowed (SO_RCVBUFFORCE when privileged);
    returns what the kernel granted."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, want)  # SO_RCVBUFFORCE, needs CAP_NET_ADMIN
    except OSError:
        rmem_max = _read_sysctl("net.core.rmem_max") or want
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, min(want, rmem_max))
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


_warned: set[str] = set()

#: below these, a burst at IDS rates overflows the kernel queue
MIN_DGRAM_QLEN = 512
MIN_RMEM_MAX = 8 << 20


def warn_kernel_limits() -> list[str]:
    """Warn once per setting, with the exact sysctl line, when the kernel's
    limits are too small for datagram alerts at rate."""
    msgs = []
    qlen = _read_sysctl("net.unix.max_dgram_qlen")
    if qlen is not None and qlen < MIN_DGRAM_QLEN and "qlen" not in _warned:
        _warned.add("qlen")
        msgs.append(
            f"net.unix.max_dgram_qlen is {qlen}: a datagram sender blocks "
            f"(Snort) or drops (Suricata) after {qlen} queued alerts. Raise it with: "
            f"sysctl -w net.unix.max_dgram_qlen={MIN_DGRAM_QLEN}"
        )
    rmem = _read_sysctl("net.core.rmem_max")
    if rmem is not None and rmem < MIN_RMEM_MAX and "rmem" not in _warned:
        _warned.add("rmem")
        msgs.append(
            f"net.core.rmem_max is {rmem}: SO_RCVBUF is capped there. "
            f"Raise it with: sysctl -w net.core.rmem_max={MIN_RMEM_MAX}"
        )
    for m in msgs:
        _log.warning(m)
    return msgs
