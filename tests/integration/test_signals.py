"""Signals on a real ``ingest listen`` process: SIGHUP (reload, logrotate)
and SIGTERM on an active unix_stream sender."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import struct
import threading
import time

from ingest import deadletter
from ingest.encode import encode_alertpkt, ether_ipv4

from ._util import DEADLINE, count, snort_send, wait_until

# --- SIGHUP -------------------------------------------------------------------

def test_sighup_without_maps_is_not_fatal(tmp_path, run_ingest):
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}"], wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i) for i in range(5)])
    wait_until(lambda: count(db) == 5, p, "5 alerts")
    for _ in range(3):
        p.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: p.stderr().count("ingest: SIGHUP") >= 1, p, "the SIGHUP line")
    snort_send(sock, [encode_alertpkt("snort", sid=2, event_id=i) for i in range(5)])
    wait_until(lambda: count(db) == 10, p, "10 alerts")
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["decoded"] == 10 and st["dropped"] == {}


def test_sighup_while_starting_up_is_not_fatal(tmp_path, run_ingest):
    """logrotate may send SIGHUP while ingest is still starting (its imports
    take a while, longer on a busy machine): from the moment the heavy
    imports run until it listens, a stream of SIGHUPs must not kill it (nor
    re-enter the start-up handler until it deadlocks or overflows the stack,
    as a handler that took threading.Event's lock did)."""
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", ""])
    maps = f"/proc/{p.proc.pid}/maps"
    end = time.monotonic() + DEADLINE
    while True:  # numpy's C module is mapped: the heavy imports are running
        try:
            with open(maps) as f:
                if "_multiarray_umath" in f.read():
                    break
        except OSError:
            pass
        assert p.proc.poll() is None and time.monotonic() < end, p.stderr()
        time.sleep(0.001)
    while "listening on" not in p.stderr():
        assert p.proc.poll() is None, f"killed by SIGHUP while starting ({p.proc.returncode}): {p.stderr()}"
        assert time.monotonic() < end, p.stderr()
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.002)
    rc, _st = p.stop()
    assert rc == 0, p.stderr()


def test_sighup_reopens_jsonl_and_dead_letter_for_logrotate(tmp_path, run_ingest):
    """logrotate's move + SIGHUP while a sender never pauses: every line lands
    whole in the old or the new file, none twice, none lost."""
    sock, out, dl = tmp_path / "snort_alert", tmp_path / "alerts.json", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}", "--dead-letter", str(dl),
                    "--linger-ms", "1"], wait_for=[sock])
    pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 17, 1, 2)
    tmpl = bytearray(encode_alertpkt("snort", sid=5, packet=pkt))
    sent, junk = [], []
    stop = threading.Event()

    def sender() -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        i = 0
        while not stop.is_set() or i < 400:
            struct.pack_into("<I", tmpl, 65848, i)  # event_id
            s.sendto(tmpl, str(sock))
            sent.append(i)
            if i % 10 == 0:
                s.sendto(b"junk%d" % i, str(sock))  # dead-lettered (bad_length)
                junk.append(i)
            i += 1
            if i % 50 == 0:
                time.sleep(0.005)
        s.close()

    t = threading.Thread(target=sender)
    t.start()
    try:
        wait_until(lambda: out.exists() and out.stat().st_size > 0 and dl.exists() and dl.stat().st_size > 0,
                   p, "first lines")
        os.rename(out, tmp_path / "alerts.json.1")
        os.rename(dl, tmp_path / "dead.bin.1")
        p.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: out.exists() and out.stat().st_size > 0 and dl.exists(), p, "the reopened files")
    finally:
        stop.set()
        t.join(30)
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    lines = []
    for path in (tmp_path / "alerts.json.1", out):
        data = path.read_bytes()
        assert data.endswith(b"\n")
        lines += [json.loads(x) for x in data.splitlines()]  # no torn line
    ids = [x["ingest"]["event_id"] for x in lines]
    assert len(ids) == len(set(ids)) and set(ids) == set(sent)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    kept = [d for f in ("dead.bin.1", "dead.bin") for _h, d in deadletter.read(str(tmp_path / f))]
    assert sorted(kept) == sorted(b"junk%d" % i for i in junk)
    assert st["malformed"] == {"bad_length": len(junk)} and st["dead_letters"] == len(junk)
    assert stat.S_IMODE(dl.stat().st_mode) == 0o600


def test_sighup_reopen_never_writes_through_a_planted_symlink(tmp_path, run_ingest):
    sock, out = tmp_path / "snort_alert", tmp_path / "alerts.json"
    victim = tmp_path / "victim"
    victim.write_text("")
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}"], wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=1)])
    wait_until(lambda: out.exists() and out.stat().st_size > 0, p, "the first line")
    os.rename(out, tmp_path / "alerts.json.1")
    out.symlink_to(victim)
    p.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "ingest: SIGHUP" in p.stderr(), p, "the SIGHUP line")
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=2)])
    rc, st = p.stop()
    assert rc == 0 and st["dispatched"] == {f"jsonl:{out}": 2}
    assert victim.read_text() == ""
    assert "alerts.json" in p.stderr() and "keeps writing" in p.stderr()
    # the alert after the refused reopen went on into the file we had open
    assert [json.loads(x)["ingest"]["event_id"] for x in (tmp_path / "alerts.json.1").read_text().splitlines()] \
        == [1, 2]


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(x for x in f if x.startswith("Threads:")).split()[1])


def test_sighup_burst_coalesces_into_one_reload_at_a_time(tmp_path, run_ingest):
    maps = tmp_path / "etc"
    maps.mkdir()
    with open(maps / "sid-msg.map", "w") as f:
        for sid in range(1, 100_001):
            f.write(f"{sid} || A fairly ordinary rule message number {sid} || url,example.com/{sid}\n")
    (maps / "classification.config").write_text("config classification: trojan-activity,A Network Trojan,1\n")
    sock, db = tmp_path / "snort_alert", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}",
                    "--sid-msg", str(maps / "sid-msg.map"), "--classification", str(maps / "classification.config")],
                   wait_for=[sock])
    snort_send(sock, [encode_alertpkt("snort", sid=7, class_id=1, event_id=1)])
    wait_until(lambda: count(db) == 1, p, "the first alert")  # every thread is running now
    base = _threads(p.proc.pid)
    most = base
    for _ in range(100):  # an operator's (or a script's) burst, spread over about a second
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.01)
        most = max(most, _threads(p.proc.pid))
    # one reload runs at a time, on one worker thread (a second may be queued behind it)
    assert most <= base + 1, f"{most - base} extra threads for a burst of SIGHUPs"
    wait_until(lambda: "maps reloaded" in p.stderr(), p, "a reload")
    seen = -1
    while seen != p.stderr().count("maps reloaded"):  # until no reload is left running
        seen = p.stderr().count("maps reloaded")
        time.sleep(1.5)
    assert 1 <= seen <= 20, p.stderr()  # one after the other, however many signals
    # a reload that fails keeps the old maps and says which file
    os.unlink(maps / "classification.config")
    os.mkdir(maps / "classification.config")
    p.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the old ones" in p.stderr(), p, "the reload error")
    assert "classification.config" in p.stderr().split("keeping the old ones")[1]
    snort_send(sock, [encode_alertpkt("snort", sid=7, class_id=1, event_id=2)])
    wait_until(lambda: count(db) == 2, p, "the alert")
    rc, _ = p.stop()
    assert rc == 0, p.stderr()
    c = sqlite3.connect(db)
    assert c.execute("SELECT category FROM alerts").fetchall() == [("A Network Trojan",)] * 2
    c.close()


# --- SIGTERM on an active unix_stream ------------------------------------------

ALERT = (b'{"timestamp":"2024-05-01T12:00:00.123456+0000","flow_id":%d,"event_type":"alert",'
         b'"src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP",'
         b'"alert":{"action":"allowed","gid":1,"signature_id":7,"rev":1,"signature":"T","category":"",'
         b'"severity":1}}\n')


def test_sigterm_on_active_eve_stream_stores_or_counts_every_accepted_record(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "eve.sock", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--eve-stream", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl)],
                   wait_for=[sock])
    accepted: list[int] = []
    lock = threading.Lock()
    go = threading.Event()
    ids = iter(range(1, 1 << 40))

    def sender() -> None:
        # like Suricata: connect, write records back to back; reconnect when
        # the connection is refused or broken
        while not go.is_set() or p.proc.poll() is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(sock))
            except OSError:
                s.close()
                if p.proc.poll() is not None:
                    return
                time.sleep(0.01)
                continue
            try:
                for _ in range(2000):
                    with lock:
                        i = next(ids)
                    s.sendall(ALERT % i)  # returned: the kernel accepted the whole record
                    with lock:
                        accepted.append(i)
            except OSError:
                pass
            finally:
                s.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: count(db) > 2000, p, "records flowing")
    go.set()
    rc, st = p.stop()
    for t in threads:
        t.join(30)
    assert rc == 0, p.stderr()
    stored = {r[0] for r in sqlite3.connect(db).execute("SELECT flow_id FROM alerts")}
    counted = 0
    # the dead-letter file exists only once something was kept in it
    for _h, data in deadletter.read(str(dl)) if dl.exists() else ():
        counted += 1
        for line in data.split(b"\n"):
            if line.startswith(b"{") and b'"flow_id":' in line:
                stored.add(int(line.split(b'"flow_id":')[1].split(b",")[0]))
    missing = set(accepted) - stored
    assert not missing, f"{len(missing)} accepted records neither stored nor counted"
    assert st["decoded"] == len({r[0] for r in sqlite3.connect(db).execute("SELECT flow_id FROM alerts")})
    assert sum(st["malformed"].values()) + sum(st["dropped"].values()) == counted
