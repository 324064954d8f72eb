"""The command line as a user meets it: what a config file binds, how a
mistake is reported (the subcommand's usage, the file and line, one line for
a start-up error), the exit-code rule, and output into a closed pipe."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import cli

from ..conftest import ROOT
from ._store import make_store

pytestmark = pytest.mark.slow


def ingest(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def usage_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process on argv, expect argparse's exit 2, return stderr."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


# --- ingest run --config -------------------------------------------------------

def test_run_with_a_config_binds_only_what_the_file_names(tmp_path, run_ingest):
    sock = tmp_path / "mine.sock"
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(f'snort = "{sock}"\nsink = "null:"\ndead_letter = ""\n')
    p = run_ingest(["run", "--config", str(cfg)], wait_for=[sock])
    assert "listening on snort:" in p.stderr()
    rc, _ = p.stop()
    assert rc == 0
    assert not (tmp_path / "run").exists()  # no ./run/snort_alert, ./run/barnyard2_alert
    assert "barnyard2" not in p.stderr()


def test_sink_key_is_sink_and_sinks_an_alias(tmp_path):
    out1, out2 = tmp_path / "one.json", tmp_path / "two.json"
    (tmp_path / "a.toml").write_text(f'sink = "jsonl:{out1}"\n')
    (tmp_path / "b.toml").write_text(f'sinks = ["jsonl:{out1}", "jsonl:{out2}"]\n')
    (tmp_path / "c.toml").write_text(f'sink = "jsonl:{out1}"\nsinks = ["jsonl:{out2}"]\n')
    a = cli.parse_args(["listen", "--config", str(tmp_path / "a.toml")])
    b = cli.parse_args(["listen", "--config", str(tmp_path / "b.toml")])
    assert a.sink_urls == (f"jsonl:{out1}",)
    assert b.sink_urls == (f"jsonl:{out1}", f"jsonl:{out2}")
    with pytest.raises(ValueError, match=r"c\.toml:2: give 'sink' or its alias 'sinks'"):
        cli.parse_args(["listen", "--config", str(tmp_path / "c.toml")])
    # a flag replaces the file's list
    c = cli.parse_args(["listen", "--config", str(tmp_path / "b.toml"), "--sink", "null:"])
    assert c.sink_urls == ("null:",)


# --- mistakes ----------------------------------------------------------------------

@pytest.mark.parametrize("argv,prog", [
    (["listen", "--snrt", "x"], "ingest listen"),
    (["run", "--sink", "null:", "--bogus"], "ingest run"),
    (["gen", "--to", "x", "--cuont", "5"], "ingest gen"),
    (["query", "flows", "--min-sev", "1", "--colour"], "ingest query flows"),
    (["decode", "f.u2", "--formt", "eve"], "ingest decode"),
    (["bench", "--quik"], "ingest bench"),
])
def test_misspelled_flag_prints_the_subcommands_usage(capsys, argv, prog):
    err = usage_error(capsys, argv)
    assert err.startswith(f"usage: {prog} ")
    assert f"{prog}: error: unrecognized arguments: " in err


def test_toml_errors_name_the_file_and_line(tmp_path):
    bad = {
        "syntax.toml": ('snort = ["a"]\nstats_interval = \n', r"syntax\.toml:2:\d+: invalid TOML"),
        "key.toml": ('snort = ["a"]\n\n  snrot = ["b"]\n', r"key\.toml:3: unknown configuration key 'snrot'"),
        "value.toml": ('snort = ["a"]\nmax_queue = -5\n', r"value\.toml:2: max_queue: must be >= 1, not -5"),
        "type.toml": ('stats_interval = "ten"\n', r"type\.toml:1: stats_interval: must be a number"),
        "list.toml": ('snort = 5\n', r"list\.toml:1: snort: must be a non-empty string or a list"),
        "mode.toml": ('socket_mode = "0999"\n', r"mode\.toml:1: socket_mode: '0999' is not an octal mode"),
        "choice.toml": ('format = "xml"\n', r"choice\.toml:1: format: must be eve or trisul"),
        "binary.toml": ('snort = "\xff"\n', r"binary\.toml:1: not UTF-8 text"),
        # named as the file names it: the key is sink (its field is sinks)
        "alias.toml": ('snort = "s"\n[sink]\nx = 1\n', r"alias\.toml:2: sink: must be a non-empty string"),
    }
    for name, (text, pattern) in bad.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        with pytest.raises(ValueError, match=pattern):
            cli.parse_args(["listen", "--config", str(path)])
    with pytest.raises(ValueError, match=r"cannot read the configuration file .*absent\.toml"):
        cli.parse_args(["listen", "--config", str(tmp_path / "absent.toml")])


def test_run_with_a_config_that_names_no_input(tmp_path):
    """One line, exit 2, and the advice fits: the defaults are 'ingest run'
    *without* --config (the old text told a user of 'ingest run --config'
    to use 'ingest run')."""
    cfg = tmp_path / "empty.toml"
    cfg.write_text('sink = "null:"\n')
    p = ingest("run", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert "no input given" in p.stderr and "'ingest run' without --config" in p.stderr
    assert not (tmp_path / "run").exists()


def test_toml_error_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('snort = ["a.sock"]\nstats_interval = -1\n')
    p = ingest("run", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"ingest: error: {cfg}:2: stats_interval: must be >= 0, not -1"]


@pytest.mark.parametrize("argv,flag", [
    (["listen", "--stats-interval", "-1"], "--stats-interval"),
    (["listen", "--stats-interval", "nan"], "--stats-interval"),
    (["listen", "--max-queue", "0"], "--max-queue"),
    (["listen", "--batch-max", "-5"], "--batch-max"),
    (["listen", "--dead-letter-max-bytes", "-1"], "--dead-letter-max-bytes"),
    (["listen", "--eve-max-line", "0"], "--eve-max-line"),
    (["listen", "--linger-ms", "-1"], "--linger-ms"),
    (["run", "--drain-timeout", "inf"], "--drain-timeout"),
    (["listen", "--socket-mode", "1777"], "--socket-mode"),
    (["query", "flows", "--min-severity", "0"], "--min-severity"),
    (["query", "flows", "--limit", "-1"], "--limit"),
    (["gen", "--to", "x", "--count", "-1"], "--count"),
    (["gen", "--to", "x", "--rate", "-5"], "--rate"),
    (["gen", "--to", "x", "--templates", "0"], "--templates"),
    (["gen", "--to", "x", "--kind", "unified2", "--rotate-bytes", "0"], "--rotate-bytes"),
    (["bench", "--repeat", "0"], "--repeat"),
    (["bench", "--unified2-alerts", "-3"], "--unified2-alerts"),
    (["bench", "--latency-rates", "x"], "--latency-rates"),
    (["bench", "--loss-rates", "1000,-1"], "--loss-rates"),
    (["bench", "--receivers", "ingest-null,bogus"], "--receivers"),
    (["bench", "--peers", "/nonexistent-peers"], "--peers"),
])
def test_invalid_values_are_refused_with_exit_2(capsys, argv, flag):
    err = usage_error(capsys, argv)
    assert f"error: argument {flag}: " in err and "Traceback" not in err


def test_a_bound_is_printed_as_it_is_written(capsys, tmp_path):
    """'must be >= 1048576 (1 MiB)', not '>= 1.04858e+06'."""
    err = usage_error(capsys, ["listen", "--snort", "s", "--max-queue-bytes", "100"])
    assert "argument --max-queue-bytes: must be >= 1048576 (1 MiB), not 100" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text('snort = "s"\nmax_queue_bytes = 100\n')
    with pytest.raises(ValueError, match=r"c\.toml:2: max_queue_bytes: must be >= 1048576 \(1 MiB\), not 100$"):
        cli.parse_args(["listen", "--config", str(cfg)])


def test_paths_that_cannot_work_are_refused_before_binding(tmp_path):
    sock = tmp_path / "s.sock"
    (tmp_path / "afile").write_text("")
    for extra, msg in [
        (["--unified2", str(tmp_path / "nodir" / "snort.u2")], "nodir does not exist"),
        (["--eve-file", str(tmp_path / "nodir" / "eve.json")], "nodir does not exist"),
        (["--unified2", str(tmp_path / "snort.u2"), "--unified2-after", "archive",
          "--unified2-archive", str(tmp_path / "afile")], "afile is not a directory"),
        (["--eve-file", str(tmp_path / "eve.json"), "--bookmark-dir", str(tmp_path / "nobm")],
         "nobm does not exist"),
        (["--maps", str(tmp_path / "nomaps")], "nomaps does not exist"),
        # on main this ran, every bookmark write failed, and a restart read the spool again
        (["--unified2", str(tmp_path / "snort.u2"), "--unified2-bookmark",
          str(tmp_path / "nobmdir" / "u2.bookmark")], "nobmdir does not exist"),
        # the store named, not its -wal file
        (["--sink", f"sqlite:{tmp_path / 'nodb' / 'a.db'}"], f"SQLite store {tmp_path / 'nodb' / 'a.db'}: "),
    ]:
        p = ingest("listen", "--snort", str(sock), "--sink", "null:", *extra, cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert p.stderr.startswith("ingest: error: ") and msg in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert not sock.exists()


def test_start_up_error_is_one_line_after_no_warning(tmp_path):
    """The kernel-limit warnings come only once everything is open."""
    p = ingest("listen", "--snort", str(tmp_path / "s.sock"), "--sink", "bogus:x", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        "ingest: error: unknown sink 'bogus' (known: jsonl, sqlite, postgresql, null, nats)"]


# --- ingest gen: errors on stderr, the exit-code rule -------------------------------

def test_gen_to_nothing_is_an_input_error_on_stderr(tmp_path):
    p = ingest("gen", "--to", str(tmp_path / "absent.sock"), "--count", "3")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("ingest gen: error: --to ") and "No such file" in p.stderr
    (tmp_path / "file").write_text("x")
    p = ingest("gen", "--to", str(tmp_path / "file"), "--count", "3")
    assert p.returncode == 2 and "not a socket" in p.stderr
    p = ingest("gen", "--kind", "unified2", "--to", str(tmp_path / "nodir" / "snort.u2"))
    assert p.returncode == 2 and "nodir does not exist" in p.stderr


def test_gen_failed_sends_are_a_runtime_error_on_stderr(tmp_path):
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(stale))
    s.close()  # the file stays, nobody receives: every send is refused
    p = ingest("gen", "--to", str(stale), "--count", "3", "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["errors"] == 3
    assert p.stderr.startswith("ingest gen: error: 3 of 3 sends failed (last: ECONNREFUSED")


def test_query_exit_codes(tmp_path):
    p = ingest("query", "flows", "--db", str(tmp_path / "absent.db"))
    assert p.returncode == 2 and "unable to open database" in p.stderr
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    p = ingest("query", "flows", "--db", str(tmp_path / "junk.db"))
    assert p.returncode == 2 and "not a database" in p.stderr


# --- closed pipes -------------------------------------------------------------------

def _first_line_then_close(args: list[str], cwd: Path) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "ingest", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    rc = proc.wait(timeout=60)
    assert first, err
    return rc, err


@pytest.fixture(scope="module")
def eve_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), 3000)


def test_query_into_a_closed_pipe_ends_quietly(eve_store, tmp_path):
    rc, err = _first_line_then_close(["query", "flows", "--db", str(eve_store), "--limit", "0",
                                      "--min-severity", "3"], tmp_path)
    assert err == ""
    assert rc == -signal.SIGPIPE  # as cat: killed by SIGPIPE (141 in the shell)


def test_decode_into_a_closed_pipe_ends_quietly(tmp_path):
    spool = tmp_path / "snort.u2"
    p = ingest("gen", "--kind", "unified2", "--to", str(spool), "--count", "5000")
    assert p.returncode == 0, p.stderr
    (f,) = tmp_path.glob("snort.u2.*")
    rc, err = _first_line_then_close(["decode", str(f)], tmp_path)
    assert err == ""
    assert rc == -signal.SIGPIPE


def test_listen_to_a_closed_stdout_stops_and_loses_nothing(tmp_path):
    """`ingest listen --sink jsonl:- --sink sqlite:... | head -1`: once the
    reader of stdout is gone, no write there can ever succeed; the process
    stops as on SIGTERM (one line says why) instead of retrying forever and
    holding every batch back from the store: the store has every alert,
    what stdout did not get is in the dead-letter file, exit 1."""
    from ingest.deadletter import read as read_deadletters
    from ingest.encode import encode_alertpkt

    sock, db, dl = tmp_path / "s.sock", tmp_path / "a.db", tmp_path / "dl.bin"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ingest", "listen", "--snort", str(sock),
                                 "--sink", "jsonl:-", "--sink", f"sqlite:{db}", "--dead-letter",
                                 str(dl), "--stats-interval", "0"], cwd=tmp_path, env=env,
                                stdout=w, stderr=err)
    os.close(w)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in (tmp_path / "err.txt").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()
            time.sleep(0.02)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sent = 0
        try:
            while proc.poll() is None and sent < 50:
                sent += 1
                s.sendto(encode_alertpkt("snort", sid=sent, event_id=sent), str(sock))
                time.sleep(0.01)
        except OSError:
            pass  # the socket is gone: it stopped
        finally:
            s.close()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "err.txt").read_text()
    assert rc == 1, text
    assert "sink jsonl:-: standard output was closed" in text and "Traceback" not in text
    final = json.loads(text.split("ingest: final stats ")[1])
    con = sqlite3.connect(db)
    stored = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
    con.close()
    assert stored == final["decoded"] > 0
    assert final["dropped"] == {"sink_failed": final["decoded"] - final["dispatched"].get("jsonl:-", 0)}
    kept = sum(len(data.splitlines()) for _head, data in read_deadletters(str(dl)))
    assert kept == final["dropped"]["sink_failed"]


def test_query_flows_table_shows_ipv6_and_portless_endpoints_unambiguously(tmp_path):
    """An IPv6 address's colons swallowed the port ('2001:db8::1:80') and an
    ICMP flow printed '10.0.0.1:None'."""
    from ..eve_records import ALERT, FLOW

    lines = [ALERT % (1, 1, 1), FLOW % 1]
    for fid, a, b in ((2, b'"2001:db8::1"', b'"2001:db8::2"'),):
        lines += [x.replace(b'"10.0.0.1"', a).replace(b'"10.0.0.2"', b) for x in (ALERT % (fid, 2, 2), FLOW % fid)]
    icmp = [x.replace(b'"src_port":1234,', b"").replace(b'"dest_port":80,', b"").replace(b'"TCP"', b'"ICMP"')
            for x in (ALERT % (3, 3, 3), FLOW % 3)]
    f = tmp_path / "eve.json"
    f.write_bytes(b"\n".join(lines + icmp) + b"\n")
    db = tmp_path / "a.db"
    assert ingest("decode", "--sink", f"sqlite:{db}", str(f)).returncode == 0
    p = ingest("query", "flows", "--db", str(db), "--min-severity", "2")
    assert p.returncode == 0, p.stderr
    rows = {ln.split()[0]: ln.split()[2:4] for ln in p.stdout.splitlines()[1:]}
    assert rows == {"1": ["10.0.0.1:1234", "10.0.0.2:80"], "2": ["[2001:db8::1]:1234", "[2001:db8::2]:80"],
                    "3": ["10.0.0.1", "10.0.0.2"]}
