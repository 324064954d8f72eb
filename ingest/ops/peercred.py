"""Who may write: peer-credential allow-lists for the sockets we bind.

File mode and group decide who can open a socket file; the allow-lists
decide whose alerts are taken, from the credentials the kernel vouches for
(as D-Bus and systemd-journald do):

* stream and seqpacket inputs (``--eve-stream``, ``--barnyard2-sync``): the
  connecting process's ``SO_PEERCRED`` (its uid and gid when it called
  connect()), checked once, at accept; a refused connection is closed before
  anything is read from it.
* datagram inputs (``--snort``, ``--barnyard2``, ``--eve-dgram``): the socket
  gets ``SO_PASSCRED`` and every datagram arrives with the sender's
  ``SCM_CREDENTIALS`` (pid, uid, gid at the time of the send), read and
  checked in C in the batch receive (``ingest_recv_batch_creds``).  A
  datagram from a refused sender (``peer_refused``) or without credentials
  (``peer_unknown``) is dropped before it is decoded, counted and
  dead-lettered with the sender's pid/uid/gid.

A sender is allowed when its uid is on the uid list **or** its gid is on the
gid list.  The gid is the process's own (effective at connect() for a
connection, real for a datagram), never its supplementary groups: add a
service user's primary group, or name the user.  Root (or anyone with
CAP_SYS_ADMIN / CAP_SETUID) can claim another identity in SCM_CREDENTIALS,
so the lists keep out unprivileged processes, not root.

Syntax (``--allow-uid``/``--allow-gid``, repeatable; TOML ``allow_uid`` /
``allow_gid`` lists): ``ID`` applies to every socket input; ``ID:PATH``
only to the input bound at PATH.  An input named by at least one ``ID:PATH``
entry uses its own entries only (the global ones do not add to it), so one
socket can be narrower than the rest.  Names are resolved once, at
start-up; an unknown user or group, or a PATH that is no socket input, is a
start-up error (exit 2).  User and group names never hold ``:``, so the
first ``:`` always separates the PATH.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .logs import at

_log = logging.getLogger(__name__)

#: SO_PEERCRED's struct ucred: pid, uid, gid
_UCRED = struct.Struct("=iII")
#: the uid/gid of a datagram without credentials
NOBODY = 0xFFFFFFFF


@dataclass(frozen=True)
class PeerPolicy:
    """The allow-list of one input: empty means everyone may write."""

    uids: frozenset[int] = frozenset()
    gids: frozenset[int] = frozenset()
    #: as given (names kept), for messages
    described: str = ""

    @property
    def active(self) -> bool:
        return bool(self.uids or self.gids)

    def allows(self, uid: int, gid: int) -> bool:
        return not self.active or uid in self.uids or gid in self.gids

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The lists as uint32 arrays for the C receive (sorted, for a stable order)."""
        return (np.array(sorted(self.uids), dtype=np.uint32),
                np.array(sorted(self.gids), dtype=np.uint32))


def _resolve(text: str, kind: str) -> int:
    text = text.strip()
    if not text:
        raise ValueError(f"--allow-{kind}: empty {('user' if kind == 'uid' else 'group')}")
    if text.isdigit():
        v = int(text)
        if v >= NOBODY:
            raise ValueError(f"--allow-{kind} {text}: not a valid id (0 to {NOBODY - 1})")
        return v
    try:
        return pwd.getpwnam(text).pw_uid if kind == "uid" else grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"--allow-{kind} {text}: no such {'user' if kind == 'uid' else 'group'}") from None


def split_entry(entry: str) -> tuple[str, str | None]:
    """``ID`` -> (ID, None); ``ID:PATH`` -> (ID, PATH)."""
    ident, sep, path = entry.partition(":")
    if sep and not path:
        raise ValueError(f"--allow-uid/--allow-gid {entry!r}: nothing after ':' (give ID or ID:PATH)")
    return ident, (path if sep else None)


def policies(allow_uid: Iterable[str], allow_gid: Iterable[str],
             inputs: Iterable[str]) -> dict[str, PeerPolicy]:
    """The policy of every socket input (by absolute path) from the
    ``--allow-uid``/``--allow-gid`` entries; ValueError for an unknown name
    or a PATH that names no input."""
    paths = {os.path.abspath(p) for p in inputs}
    glob: dict[str, set[int]] = {"uid": set(), "gid": set()}
    per: dict[str, dict[str, set[int]]] = {}
    text: dict[str | None, list[str]] = {}
    for kind, entries in (("uid", allow_uid), ("gid", allow_gid)):
        for entry in entries:
            ident, path = split_entry(entry)
            v = _resolve(ident, kind)
            if path is None:
                glob[kind].add(v)
                text.setdefault(None, []).append(f"{kind} {ident}")
                continue
            ap = os.path.abspath(path)
            if ap not in paths:
                raise ValueError(f"--allow-{kind} {entry}: {path} is not one of the socket inputs "
                                 "(--snort, --barnyard2, --barnyard2-sync, --eve-dgram, --eve-stream)")
            per.setdefault(ap, {"uid": set(), "gid": set()})[kind].add(v)
            text.setdefault(ap, []).append(f"{kind} {ident}")
    out = {}
    for p in paths:
        src, key = (per[p], p) if p in per else (glob, None)
        out[p] = PeerPolicy(frozenset(src["uid"]), frozenset(src["gid"]), ", ".join(text.get(key, [])))
    return out


def peer_cred(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of a connected Unix socket's peer (SO_PEERCRED)."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def enable_passcred(sock: socket.socket) -> None:
    """Have the kernel attach the sender's credentials to every datagram."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)


#: a refused uid is logged at once, then at most once per this many seconds
REFUSAL_LOG_SECONDS = 60.0
#: distinct uids remembered for the rate limit (more: the oldest is forgotten)
REFUSAL_LOG_UIDS = 1024


@dataclass
class RefusalLog:
    """Says once per uid that its writes are refused, then at most once per
    ``interval`` how many more were (a refused sender retrying in a loop
    must not flood the log)."""

    origin: str
    what: str = "datagram"
    interval: float = REFUSAL_LOG_SECONDS
    _seen: dict[int, list[float | int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, reason: str, uid: int, pid: int, gid: int, n: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            ent = self._seen.get(uid)
            if ent is None:
                if len(self._seen) >= REFUSAL_LOG_UIDS:
                    self._seen.pop(next(iter(self._seen)))
                self._seen[uid] = [now, 0]
                say = f"{n} {self.what}{'s' if n != 1 else ''}"
            else:
                ent[1] = int(ent[1]) + n
                if now - float(ent[0]) < self.interval:
                    return
                say = f"{ent[1]} more {self.what}s in the last {now - float(ent[0]):.0f}s"
                ent[0], ent[1] = now, 0
        who = ("a sender without credentials" if reason == "peer_unknown"
               else f"uid {uid} gid {gid} (pid {pid})")
        _log.warning(f"{self.origin}: refused {say} from {who}: not on the allow-list ({reason})",
                     extra=at(self.origin, uid=uid, gid=gid, pid=pid, reason=reason))


def screen(dec, n: int, origin: str, stats, refusals: RefusalLog,
           keep) -> np.ndarray | None:
    """After a credentialed receive of n datagrams (``dec``: a SlotDecoder
    after ``with_credentials``): count the senders, and drop what C flagged.
    Returns None when every datagram may pass (the common case: one vector
    test per batch), else the indices of those that may.  Each dropped one
    is counted (``peer_refused`` / ``peer_unknown``: dropped, and per input)
    and handed to ``keep(i, reason, meta)`` (the dead-letter file) with the
    sender's pid/uid/gid."""
    from ..native import lib

    flags = dec.flags[:n]
    bad = flags & (lib.INGEST_SLOT_NOCRED | lib.INGEST_SLOT_REFUSED)
    if not bad.any():
        stats.add_senders(dec.uids[:n])
        return None
    good = np.flatnonzero(bad == 0)
    per: dict[tuple[str, int], list[int]] = {}
    for i in np.flatnonzero(bad).tolist():
        reason = "peer_unknown" if flags[i] & lib.INGEST_SLOT_NOCRED else "peer_refused"
        pid, uid, gid = int(dec.pids[i]), int(dec.uids[i]), int(dec.gids[i])
        keep(i, reason, {"pid": pid, "uid": uid, "gid": gid})
        ent = per.setdefault((reason, uid), [0, pid, gid])
        ent[0] += 1
    for (reason, uid), (count, pid, gid) in per.items():
        refusals.note(reason, uid, pid, gid, count)
        stats.add_peer(origin, reason, count)
    stats.add_input(n - len(good), 0)
    if len(good):
        stats.add_senders(dec.uids[good])
    return good


def refuse_peer(sock: socket.socket, policy: PeerPolicy, origin: str, stats,
                refusals: RefusalLog) -> int:
    """At accept: the connected peer's uid if the policy allows it; else
    the connection is closed (nothing was read from it), counted
    ``peer_refused`` and logged (rate-limited), and -1 is returned."""
    try:
        pid, uid, gid = peer_cred(sock)
    except OSError:
        pid, uid, gid = 0, NOBODY, NOBODY
    if not policy.active or (uid != NOBODY and policy.allows(uid, gid)):
        return uid
    sock.close()
    stats.add_peer(origin, "peer_refused")
    refusals.note("peer_refused", uid, pid, gid)
    return -1
