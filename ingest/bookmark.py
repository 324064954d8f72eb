"""Crash-safe bookmarks (the engines call them waldo files).

A bookmark is a small JSON document written atomically: a temporary file in
the same directory (O_EXCL|O_NOFOLLOW, mode 0600), fsync, rename over the
bookmark, fsync of the directory.  A crash leaves either the old or the new
bookmark, never a torn one, and nothing is written through a symlink planted
at the path.  Sources move a bookmark only from a batch's ack, i.e. after
every sink has acknowledged what is before it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .ops.logs import at
from .safefile import NotRegularFile, open_input

_log = logging.getLogger(__name__)


def write_atomic(path: str, data: bytes) -> None:
    """Replace path with data atomically and durably."""
    d = os.path.dirname(os.path.abspath(path))
    # random, not the pid: a crash leaves a temp file behind and a restarted
    # process (in a container) often gets the same pid
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(path: str, state: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(state, sort_keys=True).encode() + b"\n")


class Saver:
    """Writes one follower's bookmark, and survives failing to.

    A bookmark that cannot be written (its directory removed, the disk full)
    is no reason to stop storing alerts: the position is kept in memory, the
    failure is said once per episode and counted (``bookmark_errors``), and
    the next save writes the newest position again.  ``stale`` tells whether
    what is on disk is behind (a restart now would read again from the last
    position saved; the SQLite store keeps each alert once, JSON-lines sinks
    would get the re-read records twice): the runtime exits 1 when a
    follower closes with a stale bookmark."""

    def __init__(self, path: str, origin: str) -> None:
        self.path = path
        self.origin = origin
        self.stale = False

    def save(self, state: dict[str, Any], stats=None) -> bool:
        try:
            save(self.path, state)
        except OSError as e:
            if stats is not None:
                stats.add_extra("bookmark_errors")
            if not self.stale:
                _log.error(f"{self.origin}: cannot write the bookmark {self.path} "
                           f"({e.strerror or e}); positions are kept in memory and written again at the next "
                           "acknowledgement (a restart now would read again from the last position saved)", extra=at(self.origin))
            self.stale = True
            return False
        if self.stale:
            _log.info(f"{self.origin}: bookmark {self.path} written again", extra=at(self.origin))
            self.stale = False
        return True


#: a bookmark is a few hundred bytes; anything far larger is not ours
MAX_BYTES = 1 << 20


class BookmarkError(ValueError):
    """A bookmark that cannot be trusted: the message names the file and the field."""


def load(path: str) -> dict[str, Any] | None:
    """The saved state, or None if there is no bookmark yet.  A bookmark that
    does not parse raises BookmarkError (never silently restart from zero);
    so does a symbolic link, FIFO or other non-regular file at the path
    (read without following or blocking)."""
    try:
        fd = open_input(path)
    except FileNotFoundError:
        return None
    except NotRegularFile as e:
        raise BookmarkError(f"bookmark {path} is {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise BookmarkError(f"bookmark {path} is damaged: larger than {MAX_BYTES} bytes")
    try:
        state = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BookmarkError(f"bookmark {path} is damaged: {e}") from None
    if not isinstance(state, dict):
        raise BookmarkError(f"bookmark {path} is damaged: not a JSON object")
    return state


# --- validation: every field a source will use, checked once at start-up ----

class Checker:
    """Field checks for one bookmark; each failure names the file and the field.

    JSON booleans are not integers here (Python's bool is an int subclass)."""

    def __init__(self, path: str, hint: str = "") -> None:
        self.path = path
        self.hint = hint

    def fail(self, field: str, why: str) -> BookmarkError:
        return BookmarkError(f"bookmark {self.path} is damaged: field {field!r} {why}"
                             + (f" ({self.hint})" if self.hint else ""))

    def keys(self, obj: Any, where: str, required: set[str],
             optional: frozenset[str] | set[str] = frozenset()) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(where or "(top level)", "is not a JSON object")
        missing = sorted(required - obj.keys())
        if missing:
            raise self.fail(_join(where, missing[0]), "is missing")
        unknown = sorted(obj.keys() - required - optional)
        if unknown:
            raise self.fail(_join(where, unknown[0]), "is not a bookmark field")
        return obj

    def uint(self, obj: dict, key: str, where: str = "", *, nullable: bool = False) -> int | None:
        v = obj.get(key)
        if v is None and nullable:
            return None
        if type(v) is not int or v < 0:
            raise self.fail(_join(where, key), f"must be an integer >= 0, not {_show(v)}")
        return v

    def text(self, obj: dict, key: str, where: str = "") -> str:
        v = obj.get(key)
        if not isinstance(v, str) or not v or "\0" in v:
            raise self.fail(_join(where, key), f"must be a non-empty string without NUL, not {_show(v)}")
        return v

    def version(self, obj: dict, want: int) -> None:
        v = obj.get("version")
        if type(v) is not int or v != want:
            raise self.fail("version", f"must be {want}, not {_show(v)}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."
