"""``ingest top`` for real: in an 80x24 tmux pane, against a real
``ingest listen --metrics`` fed by real senders; the captured screen is
asserted, then ``q`` must end it and give the shell its screen back."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.ops.top import shorten

from ..conftest import ROOT
from ._util import snort_send

DEADLINE = 60.0

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """One detached 80x24 tmux session on a server of its own."""

    def __init__(self, cwd: str, env: dict[str, str]) -> None:
        self.sock = f"ingest-top-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-c", cwd, "bash --norc --noprofile")
        self.tmux("set-option", "-g", "status", "off")  # all 24 rows are the pane's

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True, capture_output=True, text=True,
                              env=self.env, timeout=20).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "0")

    def show(self, what: str) -> str:
        return self.tmux("display-message", "-p", "-t", "0", what).strip()

    def wait(self, cond, what: str, ingest=None) -> str:
        """The screen once ``cond(screen)`` holds; fails after DEADLINE, or at
        once when the ``ingest`` process watched has exited."""
        end = time.monotonic() + DEADLINE
        while True:
            s = self.screen()
            if cond(s):
                return s
            if ingest is not None and ingest.proc.poll() is not None:
                raise AssertionError(f"ingest exited ({ingest.proc.returncode}): {ingest.stderr()}")
            if time.monotonic() > end:
                raise AssertionError(f"{what}: never on screen; last screen:\n{s}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, env=self.env, timeout=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def row(screen: str, name: str) -> list[str]:
    """The cells of the screen row that starts with ``name``."""
    for line in screen.splitlines():
        if line.startswith(name):
            return line[len(name):].split()
    raise AssertionError(f"no row {name!r} in:\n{screen}")


def test_top_shows_a_real_ingest_and_quits_on_q(tmp_path, run_ingest):
    # short socket paths: the 80-column screen shows input names whole
    short = tempfile.mkdtemp(prefix="top")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PS1"] = "$ "
    env.setdefault("TERM", "xterm-256color")
    env.pop("TMUX", None)
    pane = Pane(str(tmp_path), env)
    try:
        port = free_port()
        rc_file = tmp_path / "top.rc"
        # top first: nothing listens there yet, and it must say so and keep trying
        pane.send(f"python -m ingest top 127.0.0.1:{port}; echo $? > {rc_file}", "Enter")
        pane.wait(lambda s: f"cannot reach 127.0.0.1:{port}" in s, "the unreachable endpoint")
        assert pane.show("#{alternate_on}") == "1"

        snort, eve = os.path.join(short, "s"), os.path.join(short, "e")
        p = run_ingest(["listen", "--snort", snort, "--eve-stream", eve, "--sink", f"jsonl:{tmp_path / 'o.json'}",
                        "--metrics", f"127.0.0.1:{port}", "--stats-interval", "0"])
        names = [shorten(f"snort:{snort}", 30), shorten(f"eve-stream:{eve}", 30)]
        screen = pane.wait(lambda s: all(n in s for n in names) and "cannot reach" not in s,
                           "both inputs, once ingest is up", p)
        assert "jsonl:" in screen and "INPUT" in screen and "SINK" in screen

        pkt = ether_ipv4("192.0.2.77", "198.51.100.7", 6, 40000, 443)
        alert = encode_alertpkt("snort", msg="ET TOP live beacon", sid=2009001, rev=3, priority=1, packet=pkt)

        def busy(s: str) -> bool:
            snort_send(snort, [alert] * 50)  # a steady trickle while we look
            cells = row(s, names[0])
            return cells[0] not in ("-", "0") and "ET TOP live beacon" in s

        screen = pane.wait(busy, "a non-zero snort rate and the signature", p)
        rx_per_s = row(screen, names[0])[0]
        assert re.fullmatch(r"[0-9.]+[kMG]?", rx_per_s) and float(rx_per_s.rstrip("kMG")) > 0, screen
        assert "1:2009001:3 ET TOP live beacon" in screen and "192.0.2.77" in screen
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)

        pane.send("q")
        end = time.monotonic() + DEADLINE
        while not (rc_file.exists() and rc_file.read_text().strip()):
            assert time.monotonic() < end, f"top did not end on q:\n{pane.screen()}"
            time.sleep(0.1)
        assert rc_file.read_text().strip() == "0"
        assert pane.show("#{alternate_on}") == "0"  # the shell has its screen back
        assert pane.show("#{pane_current_command}") == "bash"
        assert "INPUT" not in pane.screen()
        rc, st = p.stop()
        assert rc == 0 and st["received"] >= 50
    finally:
        pane.kill()
        shutil.rmtree(short, ignore_errors=True)


def test_top_reads_an_endpoint_on_a_unix_socket(tmp_path, run_ingest):
    """``ingest top unix:PATH``: the same document over ``--metrics unix:PATH``."""
    from ingest.ops.top import fetch, parse_endpoint

    snort, metrics = tmp_path / "s", tmp_path / "metrics.sock"
    p = run_ingest(["listen", "--snort", str(snort), "--sink", f"jsonl:{tmp_path / 'o.json'}",
                    "--metrics", f"unix:{metrics}", "--stats-interval", "0"], wait_for=[snort, metrics])
    snort_send(snort, [encode_alertpkt("snort", msg="m", sid=1)])
    end = time.monotonic() + DEADLINE
    while not (doc := fetch(parse_endpoint(f"unix:{metrics}")))["inputs"]:  # counted once it has sent
        assert time.monotonic() < end, doc
        time.sleep(0.1)
    assert doc["version"] == 1 and doc["pid"] == p.proc.pid
    assert list(doc["inputs"]) == [f"snort:{snort}"] and doc["inputs"][f"snort:{snort}"]["kind"] == "snort"
    rc, _ = p.stop()
    assert rc == 0
