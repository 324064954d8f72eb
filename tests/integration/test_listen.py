"""``ingest listen`` as a process, fed by real senders over real sockets,
read back from the real sinks."""

from __future__ import annotations

import gzip
import json
import os
import socket
import sqlite3
import stat
import struct
import time

import pytest

from ingest import deadletter
from ingest.alertpkt import split_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4, ether_ipv6

from ..conftest import shared_file
from ._util import rows, snort_send


@pytest.mark.parametrize("native", ["1", "0"], ids=["native-reader", "python-reader"])
def test_roundtrip_every_variant_into_sqlite_and_jsonl(tmp_path, run_ingest, monkeypatch, native):
    # the C reader thread (the default), and the old Python reader kept
    # behind INGEST_NATIVE_READER=0 (ingest.reader)
    monkeypatch.setenv("INGEST_NATIVE_READER", native)
    s0, s1, by = tmp_path / "0_snort_alert", tmp_path / "1_snort_alert", tmp_path / "barnyard2_alert"
    db, out = tmp_path / "alerts.db", tmp_path / "alerts.json"
    p = run_ingest(["listen", "--snort", str(s0), "--snort", str(s1), "--barnyard2", str(by),
                    "--sink", f"sqlite:{db}", "--sink", f"jsonl:{out}", "--stats-interval", "0"],
                   wait_for=[s0, s1, by])
    pkt4 = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443)
    pkt6 = ether_ipv6("2001:db8::10", "2001:db8::20", 17, 5000, 53)
    snort_send(s0, [encode_alertpkt("snort", msg="ET TROJAN beacon", sid=2000001, rev=2, priority=1,
                                    class_id=5, event_id=1, ts_sec=1764266630, ts_usec=5, packet=pkt4)])
    snort_send(s1, [encode_alertpkt("snort3", msg="v6 dns", sid=2000002, event_id=2,
                                    ts_sec=1764266631, packet=pkt6)])
    snort_send(s1, [encode_alertpkt("snort-appid", msg="appid", sid=2000003, app_name="SSH",
                                    ts_sec=1764266632, packet=pkt4)])
    snort_send(by, [encode_alertpkt("barnyard2", msg="by2", sid=2000004, sensor_id=3, event_id=9,
                                    ts_sec=1764266633, packet=pkt4),
                    encode_alertpkt("barnyard2-32", msg="by2-32", sid=2000005, ts_sec=1764266634,
                                    packet=ether_ipv4("10.0.0.1", "10.0.0.2", 1, 8, 0))])
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["received"] == 5 and st["decoded"] == 5 and st["malformed"] == {}
    assert st["dispatched"] == {f"sqlite:{db}": 5, f"jsonl:{out}": 5}
    for path in (s0, s1, by):
        assert not path.exists()  # socket files removed on exit
    got = sorted(rows(db), key=lambda r: r["sid"])
    assert [r["sid"] for r in got] == [2000001, 2000002, 2000003, 2000004, 2000005]
    r = got[0]
    assert (r["source"], r["src_ip"], r["src_port"], r["dest_ip"], r["dest_port"], r["proto"]) == (
        "snort", "192.0.2.1", 40000, "198.51.100.7", 443, 6)
    assert (r["signature"], r["priority"], r["class_id"], r["timestamp"]) == (
        "ET TROJAN beacon", 1, 5, "2025-11-27T18:03:50.000005+0000")
    assert (got[1]["ip_ver"], got[1]["src_ip"], got[1]["dest_port"]) == (6, "2001:db8::10", 53)
    assert got[2]["app_name"] == "SSH"
    assert (got[3]["source"], got[3]["sensor_id"], got[3]["event_id"]) == ("barnyard2", 3, 9)
    assert (got[4]["icmp_type"], got[4]["icmp_code"], got[4]["src_port"]) == (8, 0, None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["alert"]["signature_id"] for x in lines) == [r["sid"] for r in got]
    assert all(x["event_type"] == "alert" and x["timestamp"].endswith("+0000") for x in lines)


def test_reference_datagrams_end_to_end(tmp_path, run_ingest):
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    total = 0
    for name, size in [("snort2", 65864), ("snort2-appid", 65928), ("snort3", 65864), ("barnyard2", 1856)]:
        dgrams = split_datagrams(gzip.open(shared_file(f"alertpkt/{name}.bin.gz")).read(), size)
        snort_send(sock, dgrams)
        total += len(dgrams)
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == total == 96
    assert rows(db, "SELECT count(*) AS n FROM alerts")[0]["n"] == 96
    exp = [json.loads(x) for x in shared_file("alertpkt/snort3.expected.jsonl").read_text().splitlines()]
    got = rows(db, "SELECT * FROM alerts_v WHERE source='snort' AND app_name IS NULL ORDER BY id")
    by_event = {}
    for r in got:
        by_event.setdefault(r["event_id"], []).append(r)
    for e in exp:
        cands = [r for r in by_event[e["event_id"]] if r["signature"] == e["msg"]]
        assert cands, e
        assert cands[0]["src_ip"] == e.get("src_ip")


def test_bad_input_is_counted_dead_lettered_and_valid_input_flows(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl)],
                   wait_for=[sock])
    pkt = ether_ipv4("10.9.9.9", "10.8.8.8", 6, 1, 2)
    good = [encode_alertpkt("snort", sid=100 + i, msg="ok", packet=pkt) for i in range(3)]
    hostile = encode_alertpkt("snort", sid=200, msg="hostile", packet=pkt, nethdr=0xFFFFFF00)
    snort_send(sock, [b"junk", good[0], b"\0" * 1855, good[1], b"X" * 70000, hostile, good[2]])
    rc, st = p.stop()
    assert rc == 0
    assert st["malformed"] == {"bad_length": 2, "truncated": 1}
    assert st["anomalies"] == {"bad_offset": 1}
    assert st["received"] == 7 and st["decoded"] == 4
    got = rows(db)
    assert sorted(r["sid"] for r in got) == [100, 101, 102, 200]
    hostile_row = next(r for r in got if r["sid"] == 200)
    assert hostile_row["src_ip"] is None and hostile_row["signature"] == "hostile"
    entries = list(deadletter.read(str(dl)))
    assert [h["reason"] for h, _ in entries] == ["bad_length", "bad_length", "truncated", "bad_offset"]
    assert entries[0][1] == b"junk" and len(entries[1][1]) == 1855
    assert entries[3][1] == hostile
    assert all(h["origin"] == f"snort:{sock}" for h, _ in entries)
    assert stat.S_IMODE(os.stat(dl).st_mode) == 0o600


def test_shutdown_loses_nothing_that_was_queued(tmp_path, run_ingest):
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--linger-ms", "50"],
                   wait_for=[sock])
    n = 3000
    pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 17, 1, 2)
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i, packet=pkt) for i in range(n)])
    # every sendto has returned: the last datagrams sit in the kernel queue now
    rc, st = p.stop()
    assert rc == 0
    assert st["decoded"] == n and st["dropped"] == {}
    got = rows(db, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM alerts")[0]
    assert got == {"n": n, "d": n}


def test_full_queue_dead_letters_instead_of_blocking(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--max-queue", "1", "--linger-ms", "100"], wait_for=[sock])
    n = 200
    # the store is busy: the first batch (an empty queue takes any one)
    # waits for it, and the queue is full for every later datagram
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i) for i in range(n)])
    time.sleep(0.5)
    lock.execute("ROLLBACK")
    lock.close()
    rc, st = p.stop()
    assert rc == 0
    stored = rows(db, "SELECT event_id FROM alerts")
    dead = [d for h, d in deadletter.read(str(dl)) if h["reason"] == "queue_full"]
    assert st["dropped"].get("queue_full", 0) == len(dead) > 0
    # nothing silently lost: every alert is either stored or kept raw
    ids = {r["event_id"] for r in stored} | {struct.unpack_from("<I", d, 65848)[0] for d in dead}
    assert ids == set(range(n)) and len(stored) + len(dead) == n


def test_barnyard2_sync_acknowledges_only_stored_alerts(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "barnyard2_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}",
                    "--dead-letter", str(dl)], wait_for=[sock])
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(str(sock))
    c.settimeout(10)
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    for i in range(5):
        c.send(encode_alertpkt("barnyard2", sid=300 + i, msg="sync", event_id=i, packet=pkt))
        assert len(c.recv(1)) == 1  # barnyard2 waits for this byte
        # the ack means: in the store already
        assert rows(db, f"SELECT count(*) AS n FROM alerts WHERE sid={300 + i}")[0]["n"] == 1
    c.send(b"\0" * 100)  # undecodable: dead-lettered, then acknowledged
    assert len(c.recv(1)) == 1
    c.close()
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 5 and st["malformed"] == {"bad_length": 1}
    assert [h["reason"] for h, _ in deadletter.read(str(dl))] == ["bad_length"]


def test_jsonl_stdout_and_trisul_profile(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "jsonl:-", "--format", "trisul"],
                   wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=42, msg="trisul me",
                                      packet=ether_ipv4("1.2.3.4", "5.6.7.8", 17, 1000, 53))])
    rc, _ = p.stop()
    assert rc == 0
    rec = json.loads(p.stdout.decode().splitlines()[0])
    assert (rec["SigIDKey"], rec["SigIDLabel"], rec["Protocol"], rec["DestPort"]) == ("42", "trisul me", 17, 53)


# --- socket files -----------------------------------------------------------------

def test_socket_mode_and_stale_socket(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(sock))
    stale.close()  # the file stays: a stale socket nobody is bound to
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--socket-mode", "0640"],
                   wait_for=[sock])
    # the stale file was replaced atomically by a live one
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    snort_send(sock, [encode_alertpkt("snort", sid=1)])
    rc, stats = p.stop()
    assert rc == 0 and stats["decoded"] == 1
    assert not [x for x in os.listdir(tmp_path) if x.startswith(".ing")]  # no private dirs left


def test_default_socket_mode_is_0660(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:"], wait_for=[sock])
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o660
    assert p.stop()[0] == 0


@pytest.mark.parametrize("occupant", ["file", "symlink", "dir", "live"])
def test_refuses_to_replace_what_is_not_a_stale_socket(tmp_path, run_ingest, occupant):
    sock = tmp_path / "snort_alert"
    target = tmp_path / "precious"
    target.write_text("keep me")
    live = None
    if occupant == "file":
        sock.write_text("not a socket")
    elif occupant == "symlink":
        sock.symlink_to(target)
    elif occupant == "dir":
        sock.mkdir()
    else:
        live = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        live.bind(str(sock))
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:"])
    assert p.proc.wait(timeout=20) == 2
    err = p.stderr()
    assert "ingest: error:" in err
    assert {"file": "regular file", "symlink": "symbolic link", "dir": "directory", "live": "in use"}[occupant] in err
    assert target.read_text() == "keep me"
    if occupant == "file":
        assert sock.read_text() == "not a socket"
    if occupant == "symlink":
        assert sock.is_symlink()
    if live is not None:
        live.close()


def test_socket_path_too_long(tmp_path, run_ingest):
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    p = run_ingest(["listen", "--snort", str(deep / "snort_alert"), "--sink", "null:"])
    assert p.proc.wait(timeout=20) == 2
    assert "at most 107 bytes" in p.stderr()


def test_kernel_limit_warning_names_the_sysctl(tmp_path, run_ingest):
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        qlen = int(f.read())
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:"], wait_for=[sock])
    p.stop()
    if qlen < 512:
        assert "sysctl -w net.unix.max_dgram_qlen=512" in p.stderr()
    else:
        assert "max_dgram_qlen" not in p.stderr()


# --- ingest run --------------------------------------------------------------------

def test_run_on_defaults_creates_run_dir_and_store(tmp_path, run_ingest):
    p = run_ingest(["run", "--stats-interval", "0"],
                   wait_for=[tmp_path / "run" / "snort_alert", tmp_path / "run" / "barnyard2_alert"])
    snort_send(tmp_path / "run" / "snort_alert", [encode_alertpkt("snort", sid=5, msg="hello")])
    snort_send(tmp_path / "run" / "barnyard2_alert", [encode_alertpkt("barnyard2", sid=6, msg="by2")])
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 2
    assert sorted(r["signature"] for r in rows(tmp_path / "alerts.db")) == ["by2", "hello"]


def test_run_with_config_file_and_flag_override(tmp_path, run_ingest):
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(f'snort = ["{tmp_path}/a.sock"]\nsinks = ["jsonl:{tmp_path}/from-file.json"]\n'
                   f'socket_mode = "0600"\nstats_interval = 0\n')
    p = run_ingest(["run", "--config", str(cfg), "--sink", f"jsonl:{tmp_path}/from-flag.json"],
                   wait_for=[tmp_path / "a.sock"])
    assert stat.S_IMODE(os.lstat(tmp_path / "a.sock").st_mode) == 0o600
    snort_send(tmp_path / "a.sock", [encode_alertpkt("snort", sid=8)])
    assert p.stop()[0] == 0
    assert not (tmp_path / "from-file.json").exists()
    assert json.loads((tmp_path / "from-flag.json").read_text())["alert"]["signature_id"] == 8


def test_bad_config_is_a_clear_error(tmp_path, run_ingest):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('snortt = ["x"]\n')
    p = run_ingest(["run", "--config", str(cfg)])
    assert p.proc.wait(timeout=20) == 2
    assert "unknown configuration key 'snortt'" in p.stderr()


def test_periodic_stats_line(tmp_path, run_ingest):
    import time

    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--stats-interval", "0.2"],
                   wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=1), b"bad"])
    deadline = time.monotonic() + 10
    while "decoded=1 malformed=bad_length:1" not in p.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    rc, _ = p.stop()
    assert rc == 0
    line = next(x for x in p.stderr().splitlines() if "decoded=1 malformed=bad_length:1" in x)
    assert line.startswith("ingest: stats received=2 ") and "dispatched=null:1" in line


def test_failing_sink_is_retried_and_loses_nothing(tmp_path, run_ingest):
    import time

    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--sink", f"jsonl:{tmp_path}/a.json"],
                   wait_for=[sock])
    lock = sqlite3.connect(db, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # the store is locked past its busy timeout (5 s)
    snort_send(sock, [encode_alertpkt("snort", sid=9, event_id=i) for i in range(20)])
    deadline = time.monotonic() + 20
    while "retrying" not in p.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    lock.rollback()
    lock.close()
    rc, st = p.stop()
    assert rc == 0
    assert st["sink_errors"][f"sqlite:{db}"] >= 1
    assert st["dispatched"] == {f"sqlite:{db}": 20, f"jsonl:{tmp_path}/a.json": 20}
    assert rows(db, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM alerts")[0] == {"n": 20, "d": 20}
    # the other sink was not written twice while the store was retried
    assert len((tmp_path / "a.json").read_text().splitlines()) == 20


# --- review findings: edges where alerts could be lost or wrongly acknowledged ---

def test_dead_letter_symlink_is_a_startup_error(tmp_path, run_ingest):
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "dead.bin").symlink_to(tmp_path / "elsewhere")
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", str(tmp_path / "dead.bin")])
    assert p.proc.wait(timeout=20) == 2
    assert "dead-letter file" in p.stderr()
    assert not sock.exists() and (tmp_path / "elsewhere").read_text() == ""


def test_dead_letter_write_failures_are_counted_and_alerts_flow(tmp_path, run_ingest):
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    # /dev/full opens fine and fails every write with ENOSPC
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", "/dev/full"],
                   wait_for=[sock])
    snort_send(sock, [b"junk", encode_alertpkt("snort", sid=1), b"junk2", encode_alertpkt("snort", sid=2)])
    rc, st = p.stop()
    assert rc == 0
    assert st["malformed"] == {"bad_length": 2} and st["dead_letter_errors"] == 2
    assert st["internal_errors"] == 0
    assert sorted(r["sid"] for r in rows(db)) == [1, 2]
    assert "No space left on device" in p.stderr()


def _sync_client(sock):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(str(sock))
    c.settimeout(30)
    return c


def test_barnyard2_sync_waits_for_room_never_acks_unstored(tmp_path, run_ingest):
    import threading
    import time

    sock, db, dl = tmp_path / "by2", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}",
                    "--dead-letter", str(dl), "--max-queue", "1"], wait_for=[sock])
    lock = sqlite3.connect(db, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # the store cannot take anything for now
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)
    clients = [_sync_client(sock) for _ in range(3)]
    acked = []

    def run(i, c):
        c.send(encode_alertpkt("barnyard2", sid=500 + i, event_id=i, packet=pkt))
        if c.recv(1):
            acked.append(i)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    assert acked == []  # nothing is stored yet, so nothing may be acknowledged
    lock.rollback()
    lock.close()
    for t in threads:
        t.join(30)
    assert sorted(acked) == [0, 1, 2]
    for c in clients:
        c.close()
    rc, st = p.stop()
    assert rc == 0 and st["dropped"] == {} and not dl.exists()  # nothing to keep: never created
    assert sorted(r["sid"] for r in rows(db)) == [500, 501, 502]


def test_barnyard2_sync_ack_still_sent_for_alert_in_flight_at_shutdown(tmp_path, run_ingest):
    import signal
    import time

    sock, db = tmp_path / "by2", tmp_path / "a.db"
    p = run_ingest(["listen", "--barnyard2-sync", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    lock = sqlite3.connect(db, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    c = _sync_client(sock)
    c.send(encode_alertpkt("barnyard2", sid=77, packet=ether_ipv4("10.1.1.1", "10.2.2.2")))
    time.sleep(0.5)
    p.proc.send_signal(signal.SIGTERM)  # shutdown begins while the alert waits for the store
    time.sleep(0.5)
    lock.rollback()
    lock.close()
    assert c.recv(1) == b"\x01"  # stored, then acknowledged: no resend, no duplicate
    c.close()
    assert p.proc.wait(timeout=30) == 0
    assert [r["sid"] for r in rows(db)] == [77]


def test_failing_sink_at_shutdown_keeps_alerts_in_dead_letter(tmp_path, run_ingest):
    sock, dl = tmp_path / "snort_alert", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "jsonl:/dev/full", "--dead-letter", str(dl),
                    "--drain-timeout", "1"], wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=900 + i, event_id=i) for i in range(3)])
    rc, st = p.stop()
    assert rc == 1  # could not deliver: says so
    assert st["dropped"] == {"sink_failed": 3}
    kept = [json.loads(line) for h, d in deadletter.read(str(dl)) for line in d.splitlines()]
    assert sorted(x["alert"]["signature_id"] for x in kept) == [900, 901, 902]


def test_sigterm_mid_stream_every_accepted_datagram_is_stored(tmp_path, run_ingest):
    """Datagrams the kernel accepted (sendto returned) before the socket
    was shut are all stored: the reader drains after refusing new ones."""
    import threading

    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    accepted = []
    started = threading.Event()

    def sender():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 17, 1, 2)
        tmpl = bytearray(encode_alertpkt("snort", sid=1, packet=pkt))
        for i in range(200000):
            struct.pack_into("<I", tmpl, 65848, i)  # event_id
            try:
                s.sendto(tmpl, str(sock))
            except OSError:
                break
            accepted.append(i)
            if i == 200:
                started.set()
        s.close()

    t = threading.Thread(target=sender)
    t.start()
    started.wait(20)
    rc, st = p.stop()
    t.join(30)
    assert rc == 0
    stored = {r["event_id"] for r in rows(db, "SELECT event_id FROM alerts")}
    assert len(accepted) > 200
    assert stored == set(accepted)


def test_socket_group_is_applied(tmp_path, run_ingest):
    import grp

    other = next((g for g in grp.getgrall() if g.gr_gid != os.getgid()), None)
    if other is None:
        pytest.skip("no second group on this machine")
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--socket-group", other.gr_name],
                   wait_for=[sock])
    st = os.lstat(sock)
    assert st.st_gid == other.gr_gid and stat.S_IMODE(st.st_mode) == 0o660
    assert p.stop()[0] == 0


def test_stale_socket_replaced_at_a_path_too_long_for_the_private_dir(tmp_path, run_ingest):
    # 105 bytes: fits sun_path, but <dir>/.ingXXXXXXXX/s does not, so ingest
    # binds in place and must remove the stale socket itself
    base = str(tmp_path)
    name = "s" * (105 - len(base) - 1 - len("/snort_alert"))
    d = tmp_path / name
    d.mkdir()
    sock = d / "snort_alert"
    assert len(str(sock)) == 105
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(sock))
    stale.close()
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:"], wait_for=[sock])
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o660
    snort_send(sock, [encode_alertpkt("snort", sid=3)])
    rc, st = p.stop()
    assert rc == 0 and st["decoded"] == 1


def test_sensor_name_in_every_row(tmp_path, run_ingest):
    """``--sensor-name`` reaches the store's ``sensor`` column of alerts and
    flows; a store written by two sensors keeps both sensors' copies of
    the same event (every unique key includes the sensor)."""
    sock, db, eve = tmp_path / "snort_alert", tmp_path / "alerts.db", tmp_path / "eve.json"
    eve.write_text(json.dumps({"timestamp": "2024-05-01T12:00:00+0000", "event_type": "flow",
                               "flow_id": 5, "src_ip": "10.0.0.1", "src_port": 1,
                               "flow": {"pkts_toserver": 1}}) + "\n")
    dgram = encode_alertpkt("snort", msg="m", sid=1, event_id=1, ts_sec=1764266630)
    for name in ("dmz-1", "dmz.2"):
        p = run_ingest(["listen", "--snort", str(sock), "--eve-file", str(eve), "--sensor-name", name,
                        "--bookmark-dir", str(tmp_path), "--sink", f"sqlite:{db}", "--stats-interval", "0"],
                       wait_for=[sock])
        snort_send(sock, [dgram])
        deadline = time.monotonic() + 60  # the follower has read eve.json (a hang guard, no timing)
        while not rows(db, f"SELECT id FROM flows WHERE sensor = '{name}'"):
            assert time.monotonic() < deadline, p.stderr()
            time.sleep(0.05)
        rc, st = p.stop()
        assert rc == 0 and st["dispatched"] == {f"sqlite:{db}": 1}, p.stderr()
        (tmp_path / next(f for f in os.listdir(tmp_path) if f.endswith(".ingest-bookmark"))).unlink()
    assert [(r["sensor"], r["sid"]) for r in rows(db)] == [("dmz-1", 1), ("dmz.2", 1)]
    assert [r["sensor"] for r in rows(db, "SELECT sensor FROM flows ORDER BY id")] == ["dmz-1", "dmz.2"]


def test_bad_sensor_name_is_refused_before_anything_is_bound(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sensor-name", "a b"])
    assert p.proc.wait(timeout=30) == 2
    assert "argument --sensor-name: 'a b' is no sensor name" in p.stderr()
    assert not sock.exists()
