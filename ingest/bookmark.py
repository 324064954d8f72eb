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
import os
from typing import Any


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


def load(path: str) -> dict[str, Any] | None:
    """The saved state, or None if there is no bookmark yet.  A bookmark that
    does not parse raises ValueError (never silently restart from zero)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"bookmark {path} is damaged: {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"bookmark {path} is damaged: not a JSON object")
    return state
