"""``ingest bench`` from an installed (non-editable) package, with the
checkout nowhere on sys.path: the peers' sources ship as package data and
are found, compiled and run from the installed tree.

The package is built as a source distribution from a copy of the checkout's
files (so the checkout gets no build/ or egg-info) and installed from it
with ``pip install --target``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (C core, recv_count peer)"),
]


def _copy_checkout(dest: Path) -> None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True, timeout=60)
        names = [n for n in out.stdout.decode().split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = []
    if not names:  # not a git checkout: everything but build products
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", "*.so", ".*cache"))
        return
    for n in names:
        src = ROOT / n
        if src.is_file():
            (dest / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / n)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("installed")
    src, site, dist = base / "src", base / "site", base / "dist"
    _copy_checkout(src)
    # through a source distribution, as a user installing a release gets it:
    # it must carry everything the build reads (the C headers among them)
    p = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)], cwd=src,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    shutil.rmtree(src)
    (sdist,) = dist.iterdir()
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-compile", "--target", str(site), str(sdist)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert p.returncode == 0, p.stderr
    return site


def _env(site: Path) -> dict[str, str]:
    # only the installed tree: not the checkout, not a PYTHONPATH of the caller
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return env


def _python(site: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # -P: neither the working directory nor a script's directory joins sys.path
    return subprocess.run([sys.executable, "-P", *args], cwd=cwd, env=_env(site),
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_the_one_that_runs(installed, tmp_path):
    p = _python(installed, tmp_path, "-c",
                "import ingest, ingest.bench as b; print(ingest.__file__); print(b.DEFAULT_PEERS)")
    assert p.returncode == 0, p.stderr
    mod, peers = p.stdout.split()
    assert Path(mod).is_relative_to(installed)
    assert sorted(x.name for x in Path(peers).iterdir()) == ["naive_recv.py", "recv_count.c"]
    assert not Path(mod).is_relative_to(ROOT)


def test_bench_runs_from_the_installed_package(installed, tmp_path):
    p = _python(installed, tmp_path, "-m", "ingest", "bench", "--json",
                "--receivers", "recv_count,naive_recv,ingest-null", "--count", "200",
                "--repeat", "1", "--no-latency", "--no-loss", "--no-eve", "--no-nats", "--no-postgresql",
                "--no-decoder",
                "--unified2-alerts", "200")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert [r["receiver"] for r in rep["rows"]] == ["recv_count", "naive_recv", "ingest-null"]
    assert all(r["runs"][0]["received"] == 200 for r in rep["rows"])
    assert "ingest" in {r["reader"] for r in rep["unified2"]["rows"]}
    assert "git" not in rep["versions"]  # an installed package reports no checkout's commit
