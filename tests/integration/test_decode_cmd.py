"""``ingest decode`` and ``ingest pcap`` as a new user runs them: EVE files
(the same records as ``listen --eve-file``), standard input for every format,
a spool glob with the bookmark and a stray file in it, and inputs that are
missing or not seekable."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4

from ..conftest import ROOT
from ..eve_records import ALERT, FLOW
from ..unit import u2writer as W

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def ingest(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], env=ENV, capture_output=True,
                          timeout=120, **kw)


def table(db, sql: str) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return sorted(c.execute(sql).fetchall(), key=repr)
    finally:
        c.close()


def eve_file(path) -> list[bytes]:
    lines = []
    for i in range(40):
        lines.append(ALERT % (i + 1, 100 + i % 7, 100 + i % 7))
        if i % 4 == 0:
            lines.append(FLOW % (i + 1))
        if i % 10 == 0:
            lines.append(b'{"event_type":"dns","dns":{"rrname":"n%d"}}' % i)
    lines.insert(5, b"not json at all")
    lines.insert(9, b'{"event_type":"flow","flow_id":9,"flow":{"pkts_toserver":1' + b"0" * 4400 + b"}}")
    lines.insert(12, b'{"event_type":"tls",\r"tls":{"sni":"x"}}')  # raw CR: one line on output
    lines.append(b'{"timestamp":"2025-11-27T18:03:51+0000","event_type":"stats","stats":{"uptime":3}}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def test_decode_eve_gives_what_listen_eve_file_gives(tmp_path):
    """Alerts (with their replay keys), flows and passthrough events: the
    store and the JSON lines are the same whether the file is decoded or
    followed.  On 09d7916 every EVE file was 'not supported in this build'."""
    eve = tmp_path / "eve.json"
    eve_file(eve)
    p = ingest("decode", str(eve), "--sink", f"sqlite:{tmp_path / 'd.db'}", "--sink", f"jsonl:{tmp_path / 'd.json'}")
    assert p.returncode == 0, p.stderr
    assert b"line 6: invalid_json" in p.stderr and b"line 10: unparsable" in p.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "listen", "--eve-file", str(eve), "--sink", f"sqlite:{tmp_path / 'l.db'}",
         "--sink", f"jsonl:{tmp_path / 'l.json'}", "--dead-letter", str(tmp_path / "dl.bin"),
         "--stats-interval", "0"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        want = table(tmp_path / "d.db", "SELECT count(*) FROM alerts")[0][0]
        assert want == 40
        end = time.monotonic() + 60
        while not (tmp_path / "l.json").exists() or \
                (tmp_path / "l.json").read_bytes().count(b"\n") < (tmp_path / "d.json").read_bytes().count(b"\n"):
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    cols = "ts_us, timestamp, source, gid, sid, rev, category, priority, action, src_ip, dest_port, flow_id, replay_key"
    assert table(tmp_path / "d.db", f"SELECT {cols} FROM alerts") == table(tmp_path / "l.db", f"SELECT {cols} FROM alerts")
    assert table(tmp_path / "d.db", "SELECT * FROM flows") == table(tmp_path / "l.db", "SELECT * FROM flows")
    assert len(table(tmp_path / "d.db", "SELECT * FROM flows")) == 10
    d = (tmp_path / "d.json").read_bytes().splitlines()
    assert sorted(d) == sorted((tmp_path / "l.json").read_bytes().splitlines())
    assert b'{"event_type":"tls", "tls":{"sni":"x"}}' in d
    # decoding the same file into the same store again adds nothing (replay keys)
    p = ingest("decode", "--format", "eve", str(eve), "--sink", f"sqlite:{tmp_path / 'd.db'}")
    assert p.returncode == 0
    assert table(tmp_path / "d.db", "SELECT count(*) FROM alerts") == [(40,)]


def _u2(tmp_path, name: str, first: int, n: int):
    f = tmp_path / name
    f.write_bytes(b"".join(W.event_v4(7, event_id=first + i, sid=1000 + first + i) + W.packet(event_id=first + i, data=b"x" * 42)
                          for i in range(n)))
    return f


def _alertpkts(tmp_path):
    f = tmp_path / "dgrams.bin"
    f.write_bytes(b"".join(encode_alertpkt("barnyard2", msg=f"m{i}", sid=500 + i, event_id=i, ts_sec=1700000000,
                                           packet=ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1, 2)) for i in range(3)))
    return f


def test_decode_reads_standard_input_for_every_format(tmp_path):
    u2 = _u2(tmp_path, "snort.u2.1700000000", 1, 5)
    ap = _alertpkts(tmp_path)
    eve = tmp_path / "eve.json"
    eve_file(eve)
    gz = tmp_path / "eve.json.gz"
    gz.write_bytes(gzip.compress(eve.read_bytes()))
    for f, fmt in ((u2, "unified2"), (ap, "alertpkt"), (eve, "eve"), (gz, "eve")):
        ref = ingest("decode", str(f if f != gz else eve))
        assert ref.returncode == 0, ref.stderr
        for args in (["-"], ["-", "--format", fmt]):
            with open(f, "rb") as stdin:  # a pipe would do the same: no seek, no size
                p = ingest("decode", *args, stdin=stdin)
            assert p.returncode == 0, (f, args, p.stderr)
            assert p.stdout == ref.stdout and p.stdout, (f, args)
    p = subprocess.run(f"cat {u2} | {sys.executable} -m ingest decode -", shell=True, env=ENV, capture_output=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.count(b"\n") == 5


def test_decode_a_spool_glob_skips_the_bookmark_and_reports_strays(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    _u2(spool, "snort.u2.1700000000", 1, 3)
    _u2(spool, "snort.u2.1700000010", 4, 2)
    mark = {"file": "snort.u2.1700000010", "inode": 1, "offset": 0, "open_event_offset": None,
            "read_offset": 0, "spool": str(spool / "snort.u2"), "version": 1}
    (spool / "snort.u2.ingest-bookmark").write_text(json.dumps(mark, sort_keys=True) + "\n")
    # a bookmark kept under another name (--unified2-bookmark) is told by its content
    (spool / "snort.u2.saved-position").write_text(json.dumps(mark, sort_keys=True) + "\n")
    expanded = sorted(str(p) for p in spool.iterdir())
    p = ingest("decode", *expanded)  # what the shell gives for spool/snort.u2.*
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["alert"]["signature_id"] for x in p.stdout.splitlines()] == [1001, 1002, 1003, 1004, 1005]
    assert p.stderr.count(b"an ingest bookmark, not alert data: skipped") == 2, p.stderr
    assert b"error" not in p.stderr and b"line 1" not in p.stderr
    # a quoted glob is expanded by ingest (numeric suffix order), same result
    q = ingest("decode", str(spool / "snort.u2.*"))
    assert q.returncode == 0 and q.stdout == p.stdout
    # a stray file is reported and skipped; the others are still decoded
    (spool / "snort.u2.notes").write_text("a text file somebody left here\n")
    (spool / "snort.u2.pcap").write_bytes(bytes.fromhex("d4c3b2a1") + b"\x02\x00\x04\x00" + b"\0" * 40)
    r = ingest("decode", str(spool / "snort.u2.*"))
    assert r.stdout == p.stdout
    assert b"snort.u2.notes: not recognised" in r.stderr and b"this is a pcap file" in r.stderr
    assert r.returncode == 2  # an input could not be decoded (like grep with a missing file)


def test_a_glob_takes_only_regular_files_a_named_fifo_streams(tmp_path):
    """A FIFO, socket or directory matched by a spool glob is reported and
    skipped (it would block open() forever); a FIFO named on the command
    line is read as a stream, as cat reads it (``<(zcat spool.gz)``)."""
    import socket
    import threading

    spool = tmp_path / "spool"
    spool.mkdir()
    _u2(spool, "snort.u2.1700000000", 1, 2)
    _u2(spool, "snort.u2.1700000020", 3, 1)
    os.mkfifo(spool / "snort.u2.1700000010")  # nobody ever writes it
    (spool / "snort.u2.1700000015").mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(spool / "snort.u2.1700000017"))
    try:
        r = ingest("decode", str(spool / "snort.u2.*"))
    finally:
        s.close()
    assert [json.loads(x)["alert"]["signature_id"] for x in r.stdout.splitlines()] == [1001, 1002, 1003]
    assert r.stderr.count(b"matched by a glob but not a regular file") == 3, r.stderr
    assert r.returncode == 2
    fifo = tmp_path / "named.fifo"
    os.mkfifo(fifo)
    data = (spool / "snort.u2.1700000000").read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=feed)
    t.start()
    try:
        n = ingest("decode", str(fifo))
    finally:
        t.join(5)
    assert n.returncode == 0, n.stderr
    assert [json.loads(x)["alert"]["signature_id"] for x in n.stdout.splitlines()] == [1001, 1002]


def test_decode_exit_codes(tmp_path):
    u2 = _u2(tmp_path, "u2", 1, 1)
    p = ingest("decode", str(tmp_path / "missing"), str(u2))
    assert p.returncode == 2 and b"missing: no such file" in p.stderr and p.stdout.count(b"\n") == 1
    p = ingest("decode", str(u2), "--sink", f"jsonl:{tmp_path / 'no' / 'dir' / 'x.json'}")
    assert p.returncode == 2 and b"ingest: error:" in p.stderr
    p = ingest("decode", str(tmp_path))
    assert p.returncode == 2 and b"is a directory" in p.stderr


@pytest.mark.parametrize("line,reason", [
    (b'{"event_type":"flow","flow_id":9,"flow":{"pkts_toserver":1' + b"0" * 4400 + b"}}", b"unparsable"),
    (b'{"timestamp":"yesterday","event_type":"alert","alert":{"signature_id":1}}', b"bad_timestamp"),
    (b'{"timestamp":"2025-11-27T18:03:51+0000","event_type":"alert","alert":{}}', b"bad_alert"),
], ids=["unparsable", "bad_timestamp", "bad_alert"])
def test_an_eve_file_of_one_bad_event_is_still_eve(tmp_path, line, reason):
    """A record that is an EVE event but fails (too big an integer, a bad
    alert) is that record's failure, reported with its line: exit 0 as for
    the same record among others, not 'no valid EVE record (is it EVE
    JSON?)' with exit 2 as if the file were something else."""
    f = tmp_path / "eve.json"
    f.write_bytes(line + b"\n")
    p = ingest("decode", "--sink", "null:", str(f))
    assert p.returncode == 0, p.stderr
    assert b"line 1: " + reason in p.stderr and b"1 record rejected (" in p.stderr
    assert b"is it EVE JSON" not in p.stderr
    f.write_bytes(b"[1, 2]\nnot json\n")  # nothing here is an EVE event: not an EVE file
    p = ingest("decode", "--format", "eve", "--sink", "null:", str(f))
    assert p.returncode == 2 and b"no valid EVE record" in p.stderr and b"2 records rejected" in p.stderr


def test_pcap_missing_input_fails_and_leaves_no_output(tmp_path):
    u2 = _u2(tmp_path, "u2", 1, 2)
    out = tmp_path / "out.pcap"
    p = ingest("pcap", str(u2), str(tmp_path / "missing"), "-o", str(out))
    assert p.returncode == 2 and b"no such file" in p.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["u2"]
    out.write_bytes(b"an older capture")
    p = ingest("pcap", str(tmp_path / "missing"), "-o", str(out))
    assert p.returncode == 2 and out.read_bytes() == b"an older capture"  # never clobbered by a failure
    p = ingest("pcap", str(tmp_path), "-o", str(out))
    assert p.returncode == 2 and b"is a directory" in p.stderr


def test_pcap_reads_a_pipe_and_standard_input(tmp_path):
    """On 09d7916 a non-seekable input gave 'wrote 0 packets', exit 0."""
    u2 = _u2(tmp_path, "u2", 1, 3)
    ref = ingest("pcap", str(u2), "-o", str(tmp_path / "ref.pcap"))
    assert ref.returncode == 0 and b"wrote 3 packets" in ref.stderr
    for arg in ("-", "/dev/stdin"):
        out = tmp_path / "p.pcap"
        p = subprocess.run(f"cat {u2} | {sys.executable} -m ingest pcap {arg} -o {out}", shell=True, env=ENV,
                           capture_output=True, timeout=120)
        assert p.returncode == 0 and b"wrote 3 packets" in p.stderr, p.stderr
        assert out.read_bytes() == (tmp_path / "ref.pcap").read_bytes()
        out.unlink()


def test_pcap_to_standard_output(tmp_path):
    """-o - is standard output (for | tcpdump -r -), as - is standard input:
    on main it wrote a file named '-' and the README's promise that pcap
    writes to a pipe as cat does was not true."""
    u2 = _u2(tmp_path, "u2", 1, 3)
    ref = ingest("pcap", str(u2), "-o", str(tmp_path / "ref.pcap"))
    assert ref.returncode == 0
    p = ingest("pcap", str(u2), "-o", "-", cwd=tmp_path)
    assert p.returncode == 0 and b"wrote 3 packets to standard output" in p.stderr, p.stderr
    assert p.stdout == (tmp_path / "ref.pcap").read_bytes()
    assert not (tmp_path / "-").exists()
    # into a closed pipe: quietly, as cat
    big = _u2(tmp_path, "big", 1, 3000)
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "pcap", str(big), "-o", "-"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(24)  # the pcap header
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == -signal.SIGPIPE and err == b""
    # never binary onto a terminal
    import pty

    leader, follower = pty.openpty()
    try:
        t = subprocess.run([sys.executable, "-m", "ingest", "pcap", str(u2), "-o", "-"], env=ENV,
                           stdout=follower, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert t.returncode == 2 and b"standard output is a terminal" in t.stderr


@pytest.mark.parametrize("junk", [b"", b"not unified2 at all, just text\n"])
def test_pcap_of_no_unified2(tmp_path, junk):
    f = tmp_path / "f"
    f.write_bytes(junk)
    out = tmp_path / "o.pcap"
    p = ingest("pcap", str(f), "-o", str(out))
    if junk:
        assert p.returncode == 2 and not out.exists()
    else:  # an empty spool file: a valid, empty pcap
        assert p.returncode == 0 and out.stat().st_size == 24


def test_decode_into_a_store_that_refuses_some_records(tmp_path):
    """The records a sink refuses are named on stderr and the exit code is
    1; every other record is stored (not one batch lost with them)."""
    import asyncio

    from ingest.sinks.sqlite import SqliteSink

    db = tmp_path / "a.db"
    asyncio.run(SqliteSink(str(db)).aclose())
    c = sqlite3.connect(db)
    c.execute("CREATE TRIGGER t BEFORE INSERT ON alerts WHEN NEW.sid = 103 BEGIN SELECT RAISE(ABORT, 'not 103'); END")
    c.close()
    eve = tmp_path / "eve.json"
    eve_file(eve)
    p = ingest("decode", str(eve), "--sink", f"sqlite:{db}")
    assert p.returncode == 1 and b"refused a record" in p.stderr and b"not 103" in p.stderr
    assert table(db, "SELECT count(*) FROM alerts") == [(40 - 6,)]  # sid 103 is every 7th alert
    assert table(db, "SELECT count(*) FROM flows") == [(10,)]


@pytest.mark.parametrize("lead", [b"\xef\xbb\xbf", b"\n" * 100, b"\xef\xbb\xbf\r\n" + b" \r\n" * 40],
                         ids=["bom", "blank-lines", "bom-crlf-blank"])
def test_decode_an_eve_file_that_starts_with_a_bom_or_blank_lines(tmp_path, lead):
    """An eve.json saved by a Windows editor (UTF-8 byte order mark, CRLF)
    or starting with more blank lines than the sniffed head is still EVE:
    every record is decoded, the first one too (on the landed main the
    file was 'not recognised', and with --format eve its first alert was
    invalid_json)."""
    lines = [ALERT % (i, i, i) for i in range(1, 4)]
    f = tmp_path / "eve.json"
    f.write_bytes(lead + b"\r\n".join(lines) + b"\r\n")
    db = tmp_path / "a.db"
    for fmt in ("auto", "eve"):
        r = ingest("decode", str(f), "--format", fmt, "--sink", "jsonl:-", "--sink", f"sqlite:{db}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == lines, r.stderr
        assert b"invalid_json" not in r.stderr
    assert table(db, "SELECT sid FROM alerts") == [(1,), (2,), (3,)]


def test_a_store_that_is_no_database_is_one_error_line(tmp_path):
    """--sink sqlite:FILE naming a file that is not SQLite (alerts.json by
    mistake): exit 2 with one line, for decode as for listen (on the landed
    main both printed a traceback)."""
    eve = tmp_path / "eve.json"
    eve.write_bytes(ALERT % (1, 1, 1) + b"\n")
    bad = tmp_path / "alerts.json"
    bad.write_bytes(b'{"not":"a database"}\n' * 100)
    bad.chmod(0o640)
    for args in (["decode", str(eve)], ["listen", "--eve-file", str(eve), "--dead-letter", ""]):
        r = ingest(*args, "--sink", f"sqlite:{bad}")
        err = r.stderr.decode()
        assert r.returncode == 2, err
        assert "Traceback" not in err and f"ingest: error: SQLite store {bad}" in err, err
        assert "not a database" in err
    assert bad.read_bytes() == b'{"not":"a database"}\n' * 100


def test_decode_into_a_store_that_stays_locked_fails_with_one_line(tmp_path):
    """The store is down (locked by another writer past the busy timeout)
    while decode writes: exit 1, one line naming the sink and the input,
    no traceback (on the landed main: a traceback)."""
    eve = tmp_path / "eve.json"
    eve.write_bytes(b"".join(ALERT % (i, i, i) + b"\n" for i in range(10)))
    db = tmp_path / "a.db"
    assert ingest("decode", str(eve), "--sink", f"sqlite:{db}").returncode == 0
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        r = ingest("decode", str(eve), "--sink", f"sqlite:{db}", "--sink", "null:")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err
    assert f"ingest: error: sink sqlite:{db} failed while decoding {eve}" in err and "locked" in err, err


def test_an_output_that_is_an_input_is_refused(tmp_path):
    """decode FILE --sink jsonl:FILE (or a link to it) read its own output
    without end (the landed main grew a 3-record file to 33 MB in 10 s and
    on until the disk was full); so did listen --eve-file with a JSON-lines
    sink or the dead-letter file on the followed file.  Two outputs in one
    file (a store and JSON lines: a corrupt store) are refused too."""
    eve = tmp_path / "eve.json"
    eve.write_bytes(ALERT % (1, 1, 1) + b"\n")
    eve.chmod(0o640)
    (tmp_path / "link.json").symlink_to(eve)
    before = eve.read_bytes()
    cases = [["decode", str(eve), "--sink", f"jsonl:{eve}"],
             ["decode", str(tmp_path / "link.json"), "--sink", "null:", "--sink", f"jsonl:{eve}"],
             ["decode", str(tmp_path / "*.json"), "--sink", f"jsonl:{eve}"],
             ["decode", str(eve), "--sink", f"sqlite:{tmp_path / 'a.db'}", "--sink", f"jsonl:{tmp_path / 'a.db'}"],
             ["listen", "--eve-file", str(eve), "--sink", f"jsonl:{eve}", "--dead-letter", ""],
             ["listen", "--eve-file", str(tmp_path / "link.json"), "--sink", f"jsonl:{eve}", "--dead-letter", ""],
             ["listen", "--eve-file", str(tmp_path / "eve*.json"), "--sink", "null:",
              "--dead-letter", str(tmp_path / "eve-dead.json")],
             ["listen", "--unified2", str(tmp_path / "snort.u2"), "--sink", f"jsonl:{tmp_path / 'snort.u2.17'}",
              "--dead-letter", ""],
             ["listen", "--eve-file", str(eve), "--sink", f"jsonl:{tmp_path / 'o.json'}",
              "--dead-letter", str(tmp_path / "o.json")]]
    for args in cases:
        r = ingest(*args)
        err = r.stderr.decode()
        assert r.returncode == 2, (args, err)
        assert "ingest: error:" in err and ("same file" in err or "read what it writes" in err), (args, err)
    assert eve.read_bytes() == before
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "snort.u2.17").exists()
    # /dev/null may be every output at once
    r = ingest("decode", str(eve), "--sink", "jsonl:/dev/null", "--sink", "jsonl:/dev/null")
    assert r.returncode == 0, r.stderr


def _wait_reading_a_pipe(pid: int) -> None:
    """Until a thread of pid sleeps in a pipe read (it has started and
    waits for more input: a Ctrl-C then is one the command handles, not
    one that cuts the interpreter's start-up short)."""
    start = time.monotonic()
    shown = False  # some kernels hide wchan ("0"): then a generous pause instead
    while time.monotonic() < start + 60:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/wchan") as f:
                    where = f.read()
            except OSError:
                continue
            shown = shown or where not in ("", "0")
            if "pipe" in where:
                time.sleep(0.2)  # (the input read so far decoded too)
                return
        if not shown and time.monotonic() > start + 1:
            time.sleep(3)
            return
        time.sleep(0.05)
    raise AssertionError("the command never waited on its input")


@pytest.mark.parametrize("cmd", [["decode", "-"], ["pcap", "-", "-o", "out.pcap"]])
def test_ctrl_c_is_one_line_and_130_and_leaves_nothing(tmp_path, cmd):
    """Ctrl-C while reading a pipe: 'ingest CMD: interrupted', exit 130 (as
    gen and bench), not a KeyboardInterrupt traceback; pcap leaves neither
    OUT.pcap nor its temporary file."""
    u2 = _u2(tmp_path, "u2", 1, 3)
    data = u2.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "ingest", *cmd], env=ENV, cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data[:len(data) // 2])  # half a file: the command waits for the rest
    proc.stdin.flush()
    _wait_reading_a_pipe(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().splitlines()[-1] == f"ingest {cmd[0]}: interrupted" and b"Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["u2"]
