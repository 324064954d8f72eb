"""No file of the project names a machine's absolute path.

A test or tool that finds the shared data through ``/<machine>/shared/data``
silently skips (or fails) on every other machine; data is found through
tests/conftest.py (``SHARED``, ``shared_file``) or, in the package,
``ingest.gen.shared`` ($INGEST_SHARED_DATA, else ../shared/data beside the
checkout).  Deployment paths in examples (/var/log/snort, /run/ingest, ...)
are conventions, not a machine's, and are allowed."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: roots that only exist on some machine: a home, a work or scratch area, a
#: mount; and any absolute path to a shared/data directory
_ROOTS = "|".join(["work", "home", "Users", "root", "mnt", "media", "scratch"])
MACHINE_PATH = re.compile(
    r"(?<![\w.~$})\]])/(?:(?:" + _ROOTS + r")/[\w.-]|[\w.-]+/shared/data\b)")
SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache",
             ".ruff_cache", ".benchmarks", ".hypothesis"}


def _files() -> list[pathlib.Path]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True, timeout=60)
        names = [n for n in out.stdout.decode().split("\0") if n]
        return [ROOT / n for n in names if (ROOT / n).is_file()]
    except (OSError, subprocess.SubprocessError):  # not a git checkout: walk it
        found = []
        for d, dirs, files in os.walk(ROOT):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.endswith(".egg-info")]
            found += [pathlib.Path(d, f) for f in files]
        return found


def test_the_pattern_finds_what_it_should():
    bad = ["/" + "work/shared/data/maps", "x = '/" + "home/alice/eve.json'",
           "/" + "srv/shared/data/unified2", "(/" + "Users/bob/data)"]
    good = ["../shared/data/maps", "$(pwd)/../shared/data", "/var/log/snort/snort_alert",
            "/run/ingest/eve.sock", "INGEST_SHARED_DATA", "/proc/sys/net/unix/max_dgram_qlen"]
    assert all(MACHINE_PATH.search(s) for s in bad)
    assert not any(MACHINE_PATH.search(s) for s in good)


def test_no_machine_paths_in_the_tree():
    hits = []
    for path in _files():
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (a compiled module, an image)
            continue
        for no, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()[:120]}")
    assert hits == [], "machine paths:\n" + "\n".join(hits)
