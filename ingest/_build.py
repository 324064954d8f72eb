"""cffi builder for ingest._native (out-of-line API mode).

The declarations are not repeated here: csrc/ingest.h is their one source.
``cdefs()`` reads the section of the header between its ``cffi: begin`` and
``cffi: end`` markers and turns every ``#define NAME value`` into
``#define NAME ...`` (cffi then takes the value from the compiled C, so a
constant cannot drift either).  setup.py points cffi_modules at
``ffibuilder``.
"""

from __future__ import annotations

import os
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"
HEADER = CSRC / "ingest.h"

#: one C file per native concern, in the order of csrc/ingest.h
SOURCES = ["recv.c", "hash.c", "alertpkt.c", "format.c", "eve.c", "unified2.c", "gen.c", "pgcopy.c", "sqlite.c", "netflow.c", "zeek.c"]

_BEGIN = "/* ---- cffi: begin ---- */"
_END = "/* ---- cffi: end ---- */"
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]+(.*))?$")


def cdefs(header: pathlib.Path = HEADER) -> str:
    """The cffi declarations: the marked section of the header, with every
    object-like macro's value left to the compiler."""
    text = header.read_text()
    try:
        start = text.index(_BEGIN) + len(_BEGIN)
        end = text.index(_END, start)
    except ValueError:
        raise SystemExit(f"ingest: {header} lacks the cffi markers {_BEGIN!r} ... {_END!r}") from None
    # comments go first (one may run on after a #define); declarations hold
    # no string literals, so this cannot cut one
    section = re.sub(r"/\*.*?\*/", " ", text[start:end], flags=re.S)
    section = re.sub(r"//[^\n]*", "", section)
    out = []
    for line in section.splitlines():
        m = _DEFINE.match(line)
        if m is None:
            if line.lstrip().startswith("#"):
                raise SystemExit(f"ingest: {header}: cffi cannot take this line: {line.strip()!r}")
            out.append(line)
        elif "(" in m.group(1):
            raise SystemExit(f"ingest: {header}: a macro with arguments in the cffi section: {line!r}")
        else:
            # the value goes: cffi asks the compiler
            out.append(f"#define {m.group(1)} ...")
    return "\n".join(out) + "\n"


def _compile_args() -> list[str]:
    """-O2 by default; INGEST_SANITIZE=1 builds with ASan+UBSan, INGEST_DEBUG=1
    with -O0 -g, for the CI pass over the unit suite."""
    args = ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    if os.environ.get("INGEST_SANITIZE"):
        args += ["-O1", "-g", "-fno-omit-frame-pointer",
                 "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    elif os.environ.get("INGEST_DEBUG"):
        args += ["-O0", "-g"]
    else:
        args += ["-O2"]
    return args


def _link_args() -> list[str]:
    if os.environ.get("INGEST_SANITIZE"):
        return ["-fsanitize=address,undefined"]
    return []


def _require_compiler() -> None:
    """Fail early, in plain words, when there is no C compiler."""
    import shlex
    import shutil
    import sysconfig

    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = shlex.split(cc)[0] if cc else "cc"
    if shutil.which(exe) is None:
        raise SystemExit(
            f"ingest: no C compiler found ({exe!r}); the native core in csrc/ must be "
            "compiled. Install one (Debian: apt-get install gcc python3-dev) and retry."
        )


def _require_sqlite() -> None:
    """csrc/sqlite.c links the system's SQLite library (the copy Python's
    sqlite3 module uses: README, "The SQLite store"); say so plainly when
    its header is missing rather than fail in the middle of a compile."""
    import subprocess
    import sysconfig

    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    probe = subprocess.run([*cc.split(), "-E", "-x", "c", "-"], input=b"#include <sqlite3.h>\n",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if probe.returncode != 0:
        raise SystemExit(
            "ingest: sqlite3.h not found; the native core links the system SQLite library. "
            "Install its headers (Debian: apt-get install libsqlite3-dev) and retry."
        )


_require_compiler()
_require_sqlite()

ffibuilder = FFI()
ffibuilder.cdef(cdefs())

ffibuilder.set_source(
    "ingest._native",
    '#include "ingest.h"\n',
    # setuptools wants source paths relative to the directory it runs in.
    sources=[os.path.relpath(CSRC / name) for name in SOURCES],
    include_dirs=[os.path.relpath(CSRC)],
    # the system SQLite, the same shared library Python's _sqlite3 loads
    libraries=["sqlite3"],
    # a header change rebuilds every C file
    depends=[os.path.relpath(CSRC / h) for h in ("ingest.h", "jsonw.h", "cols.h")],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
