"""Opening the files other people can reach: the inputs we follow and the
outputs that hold alerts.

Inputs (spool files, eve.json, the copies logrotate leaves beside it) are
opened ``O_RDONLY|O_NONBLOCK`` and accepted only if ``fstat`` on the open
descriptor says regular file.  ``O_NONBLOCK`` is what keeps a FIFO planted
under a spool name from blocking ``open()`` forever (and with it the reader
thread and every shutdown); checking the descriptor rather than the name
leaves no window between the check and the use.  Whether a symbolic link
is followed is the caller's choice (:func:`open_input`).

Outputs (the SQLite store and its -wal/-shm files, JSON lines, dead
letters) must not be readable or replaceable by another local user, so an
output is refused when

* it is a symbolic link, or anything but a regular file or a character
  device (``/dev/null`` and ``/dev/full`` are fine: they keep nothing);
* it already exists and is owned by another user, or writable by its group
  or by others;
* its directory is writable by every user and not sticky (``/tmp`` without
  the sticky bit): anyone could swap the file.

``allow_foreign=True`` (``--allow-foreign-outputs``) accepts the last two
for a deployment that shares output files on purpose; links and FIFOs are
refused whatever the flag says.  The ownership checks are made on the
descriptor after ``open()``, so a file swapped between a check and the
open is caught too.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from collections.abc import Sequence

#: outputs: the flag that accepts foreign ownership / loose modes (named in errors)
ALLOW_FOREIGN_FLAG = "--allow-foreign-outputs"


class UnsafeFileError(ValueError):
    """A path ingest must not read or write (the message says why)."""


class NotRegularFile(OSError):
    """An input that is not a regular file (a FIFO, directory, socket, link...)."""


def kind(mode: int) -> str:
    """'a FIFO', 'a directory', ... for a st_mode."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_input(path: str, *, follow_symlinks: bool = False) -> int:
    """Open a file to read without blocking and only if it is a regular file.

    Returns a descriptor (blocking mode restored, close-on-exec).  Raises
    FileNotFoundError when there is nothing at path, NotRegularFile for a
    FIFO / directory / socket / device, and for a symbolic link unless
    ``follow_symlinks`` (then the file it points to must be regular).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise NotRegularFile(errno.ELOOP, "a symbolic link (not followed here)", path) from None
        if e.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket cannot be open()ed
            raise NotRegularFile(e.errno, "not a regular file", path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{kind(st.st_mode)}, not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def dir_open_to_all(st: os.stat_result) -> bool:
    """Anyone may create, rename and delete entries (o+w without the sticky bit)."""
    return bool(st.st_mode & stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _refuse(what: str, path: str, why: str) -> UnsafeFileError:
    return UnsafeFileError(f"{what} {path} {why}; another user could read, replace or delete "
                           f"the alerts. Fix it, or pass {ALLOW_FOREIGN_FLAG} if this is deliberate")


def _check_owner(st: os.stat_result, what: str, path: str, writable: str, sticky_ok: bool) -> None:
    """Refuse what another user owns, or what its group or others may write
    (unless ``sticky_ok`` and it is sticky: a directory whose entries only
    their owners may delete or replace); ``writable`` says the latter."""
    if st.st_uid != os.geteuid():
        raise _refuse(what, path, f"is owned by {_user(st.st_uid)}, not by this process "
                                  f"({_user(os.geteuid())})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        raise _refuse(what, path, f"{writable} (mode {stat.S_IMODE(st.st_mode):04o})")


def _check_stat(st: os.stat_result, what: str, path: str, allow_foreign: bool) -> None:
    if stat.S_ISCHR(st.st_mode):
        return  # /dev/null, /dev/full, a terminal: nothing is kept there
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{what} {path} is {kind(st.st_mode)}, not a regular file")
    if not allow_foreign:
        _check_owner(st, what, path, "is writable by its group or by others", sticky_ok=False)


def _check_parent(path: str, what: str, allow_foreign: bool) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(parent)
    except FileNotFoundError:
        raise UnsafeFileError(f"{what} {path}: directory {parent} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(f"{what} {path}: {parent} is not a directory")
    if not allow_foreign and dir_open_to_all(st):
        raise _refuse(what, path, f"is in {parent}, which every user may write and is not sticky")


def check_output(path: str, *, what: str, allow_foreign: bool = False) -> None:
    """Validate an output path without creating anything (see module doc).
    Raises UnsafeFileError."""
    _check_parent(path, what, allow_foreign)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{what} {path} is a symbolic link; refusing to write through it")
    _check_stat(st, what, path, allow_foreign)


def check_output_dir(path: str, *, what: str, allow_foreign: bool = False) -> None:
    """Validate a directory we move alert files into (the Unified2 archive):
    if it exists it must be a directory (it may be reached through a link the
    administrator made) that this process owns and that neither its group
    nor others may write unless it is sticky (otherwise they could delete or
    replace what we put there); if it does not exist yet (created on first
    use) the nearest existing parent must not be open to every user.  Raises
    UnsafeFileError."""
    if not os.path.exists(path):
        # created on first use, with any missing parents: the nearest one
        # that exists decides who else could reach into it
        up = os.path.dirname(os.path.abspath(path))
        while not os.path.lexists(up):
            up = os.path.dirname(up)
        if not os.path.isdir(up):
            raise UnsafeFileError(f"{what} {path}: {up} is not a directory")
        if not allow_foreign and dir_open_to_all(os.stat(up)):
            raise _refuse(what, path, f"would be made in {up}, which every user may write and is not sticky")
        return
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(f"{what}: {path} is not a directory (it is {kind(st.st_mode)})")
    if not allow_foreign:
        _check_owner(st, what, path, "may be written by its group or by others and is not sticky", sticky_ok=True)


def open_output(path: str, *, what: str, mode: int, flags: int = os.O_WRONLY | os.O_APPEND,
                allow_foreign: bool = False) -> int:
    """Open (create with ``mode``) an output file; never through a symbolic
    link, never a FIFO, never a file another user owns or can write."""
    check_output(path, what=what, allow_foreign=allow_foreign)  # the clear message, before open()
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFileError(f"{what} {path} is a symbolic link; refusing to write through it") from None
        if e.errno == errno.ENXIO:  # a FIFO nobody reads
            raise UnsafeFileError(f"{what} {path} is a FIFO, not a regular file") from None
        raise
    try:
        _check_stat(os.fstat(fd), what, path, allow_foreign)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _where(path: str) -> tuple[str, tuple[int, int] | None]:
    """A path's real location (its directory's links resolved; the name
    itself is not followed) and, when it exists, its (device, inode)
    (followed: an input may be a link to the file)."""
    d, name = os.path.split(os.path.abspath(path))
    real = os.path.join(os.path.realpath(d), name)
    try:
        st = os.stat(path)
    except OSError:
        return real, None
    return real, (st.st_dev, st.st_ino) if not stat.S_ISCHR(st.st_mode) else None


def check_apart(outputs: Sequence[tuple[str, str]], inputs: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse two outputs that are one file, and an output that is one of
    the inputs.  ``outputs``/``inputs`` are (what, path); an input path may
    be a glob (every file it matches, now or later).  Raises UnsafeFileError.

    An output that is an input makes ingest read what it writes, without
    end: a JSON-lines sink (or the dead-letter file) appending to the
    eve.json it follows or decodes grows it until the disk is full.  Two
    outputs in one file interleave a store with JSON lines (a corrupt
    store), or write every alert twice.  Character devices (/dev/null)
    keep nothing and may be named any number of times."""
    import fnmatch
    import glob as globmod

    seen: list[tuple[str, str, tuple[int, int] | None]] = []
    for what, path in outputs:
        if path in ("", "-"):
            continue
        real, ident = _where(path)
        try:
            if stat.S_ISCHR(os.stat(path).st_mode):
                continue
        except OSError:
            pass
        for w, r, i in seen:
            if real == r or (ident is not None and ident == i):
                raise UnsafeFileError(f"{what} and {w} name the same file ({path}): "
                                      "give each output its own file")
        seen.append((what, real, ident))
    for what, path in inputs:
        if globmod.has_magic(os.path.basename(path)):
            d, pat = os.path.split(os.path.abspath(path))
            pattern = os.path.join(os.path.realpath(d), pat)
            clash = [w for w, r, _i in seen if fnmatch.fnmatchcase(r, pattern)]
            matches = globmod.glob(path)
        else:
            clash = []
            matches = [path]
        for m in matches:
            real, ident = _where(m)
            clash += [w for w, r, i in seen if real == r or (ident is not None and ident == i)]
        if clash:
            raise UnsafeFileError(f"{clash[0]} is also the input {what}: ingest would read what it "
                                  "writes, without end; write the output somewhere else")
