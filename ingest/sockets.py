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
  socket is never reachable with looser permissions than asked for.
* On exit the file is removed only if it is still the one we created (same
  inode).
"""

from __future__ import annotations

import grp
import os
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass

SUN_PATH_MAX = 107  # bytes, without the terminating NUL


class SocketPathError(RuntimeError):
    """The socket path cannot be used (too long, occupied, in use)."""


@dataclass
class BoundSocket:
    sock: socket.socket
    path: str
    inode: int

    def remove(self) -> None:
        """Close the socket and unlink its file if it is still ours."""
        try:
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and st.st_ino == self.inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.close()


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


def bind_unix(path: str, kind: int = socket.SOCK_DGRAM, *, mode: int = 0o660,
              group: str | int | None = None, backlog: int = 64) -> BoundSocket:
    """Create, bind (and for stream/seqpacket, listen on) a Unix socket at path."""
    path = os.path.abspath(path)
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise SocketPathError(
            f"{path} is {len(os.fsencode(path))} bytes; a Unix socket path is at most "
            f"{SUN_PATH_MAX} bytes (Snort would silently truncate it). Use a shorter path."
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise SocketPathError(f"directory {parent} does not exist")
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
        tmp = os.path.join(tmpdir, "s")
        direct = len(os.fsencode(tmp)) > SUN_PATH_MAX
        try:
            if direct:
                # The private directory's name does not fit sun_path: bind in
                # place with a umask that gives nobody access until chmod.
                # bind() never follows or replaces what is at the path, so a
                # stale socket is removed first (re-checked just before).
                if _check_target(path, kind):
                    os.unlink(path)
                old = os.umask(0o177)
                try:
                    sock.bind(path)
                finally:
                    os.umask(old)
                target = path
            else:
                sock.bind(tmp)
                target = tmp
            if gid != -1:
                os.chown(target, -1, gid)
            os.chmod(target, mode)
            inode = os.lstat(target).st_ino
            if not direct:
                _check_target(path, kind)  # again: close the window since the first look
                os.rename(tmp, path)
        finally:
            try:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
            except OSError:
                pass
            os.rmdir(tmpdir)
        if kind != socket.SOCK_DGRAM:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return BoundSocket(sock, path, inode)


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


def warn_kernel_limits(out=sys.stderr) -> list[str]:
    """Warn once per setting, with the exact sysctl line, when the kernel's
    limits are too small for datagram alerts at rate."""
    msgs = []
    qlen = _read_sysctl("net.unix.max_dgram_qlen")
    if qlen is not None and qlen < MIN_DGRAM_QLEN and "qlen" not in _warned:
        _warned.add("qlen")
        msgs.append(
            f"ingest: warning: net.unix.max_dgram_qlen is {qlen}: a datagram sender blocks "
            f"(Snort) or drops (Suricata) after {qlen} queued alerts. Raise it with: "
            f"sysctl -w net.unix.max_dgram_qlen={MIN_DGRAM_QLEN}"
        )
    rmem = _read_sysctl("net.core.rmem_max")
    if rmem is not None and rmem < MIN_RMEM_MAX and "rmem" not in _warned:
        _warned.add("rmem")
        msgs.append(
            f"ingest: warning: net.core.rmem_max is {rmem}: SO_RCVBUF is capped there. "
            f"Raise it with: sysctl -w net.core.rmem_max={MIN_RMEM_MAX}"
        )
    for m in msgs:
        print(m, file=out, flush=True)
    return msgs
