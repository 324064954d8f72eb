"""The point of socket activation: restarts lose nothing.

Five restarts of ``ingest listen`` while a Snort-like sender pushes Alertpkt
datagrams at 2000/s and a Suricata-like sender writes EVE lines over a
unix_stream socket at 1000/s, run twice in the same test:

* **activated**: the sockets are bound by the real ``systemd-socket-activate``
  and held across restarts (``_activation.Holder``).  Datagrams sent while
  no ingest runs wait in the kernel queue; EVE connections made then wait in
  the listen backlog.  Expected: every alert sent is stored, once.
* **self-bound** (ingest binds its sockets, the old way): while it is down,
  the socket file is gone and Snort's ``sendto`` fails (ENOENT or
  ECONNREFUSED: Snort ignores the error and the alert is lost), Suricata's
  reconnect fails and it drops the line.  Expected: > 0 lost.

Both run in a private network namespace (``unshare -n``) with
``net.unix.max_dgram_qlen`` raised there (it is per namespace), so the
kernel can queue the datagrams of a restart; the Snort-like sender raises
its own SO_SNDBUF (SO_SNDBUFFORCE) for the same reason (a 64 KiB Alertpkt
is charged to the sender: with the default, 4 fit, and then a blocking
sendto waits, as Snort's packet thread does).  Skipped when not root or
without systemd-socket-activate.  The figures are printed (run with -s)
and stated in README "Running under systemd".
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4

from ._activation import Holder, NotifyListener, ingest_env, need_activate, wait
from ._util import sqlite_rows

SNORT_RATE = 2000
EVE_RATE = 1000
RESTARTS = 5
#: how long each ingest runs before it is restarted
RUN_SECONDS = 1.5
QLEN = 65536
SNDBUF = 64 << 20
EVENT_ID_OFF = 65848  # Alertpkt event.event_id (FORMATS.md 1.2)
SO_SNDBUFFORCE = 32

EVE_LINE = (b'{"timestamp":"2025-11-27T18:03:50.123456+0000","flow_id":%d,"event_type":"alert",'
            b'"src_ip":"10.0.0.1","src_port":1234,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP",'
            b'"alert":{"action":"allowed","gid":1,"signature_id":2000001,"rev":1,"signature":"restart %d",'
            b'"category":"Misc","severity":2}}\n')


def _need_netns() -> None:
    need_activate()
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private network namespace for net.unix.max_dgram_qlen)")
    r = subprocess.run(["unshare", "-n", "sh", "-c", f"sysctl -qw net.unix.max_dgram_qlen={QLEN}"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot raise max_dgram_qlen in a private network namespace: {r.stderr.decode().strip()}")


class SnortSender(threading.Thread):
    """Like Snort's alert_unixsock: an unbound, unconnected, blocking
    datagram socket; sendto of the full struct, flags 0, errors ignored (the
    alert is lost).  Event ids 0, 1, 2, ... paced at ``rate``."""

    def __init__(self, path: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        self.sent = 0  # sendto attempted
        self.ok: list[int] = []
        self.failed: dict[str, int] = {}
        self.done_at: list[float] = []  # when each successful sendto returned
        self.halt = threading.Event()
        pkt = ether_ipv4("10.1.0.1", "10.2.0.2", 6, 40000, 80, b"GET / HTTP/1.1\r\n")
        self.template = bytearray(encode_alertpkt("snort", sid=2000002, msg="restart", packet=pkt))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.halt.is_set():
            due = t0 + self.sent / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            i = self.sent
            struct.pack_into("=I", self.template, EVENT_ID_OFF, i)
            self.sent += 1
            try:
                self.sock.sendto(self.template, self.path)
            except OSError as e:
                name = errno.errorcode.get(e.errno or 0, str(e.errno))
                self.failed[name] = self.failed.get(name, 0) + 1
                continue
            self.ok.append(i)
            self.done_at.append(time.monotonic())
        self.sock.close()


class EveSender(threading.Thread):
    """Like Suricata's eve-log unix_stream writer (FORMATS.md section 5): one
    send per record; on an error the socket is closed and, at most every
    500 ms, reconnected and the send retried once; otherwise the record is
    dropped.  Sends block (Suricata's offline mode; in live mode it would
    also drop on EAGAIN, which is about speed, not restarts)."""

    RECONNECT_MIN = 0.5

    def __init__(self, path: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        self.sent = 0
        self.ok: list[int] = []
        self.dropped = 0
        self.halt = threading.Event()
        self.sock: socket.socket | None = None
        self.last_connect = 0.0

    def _connect(self) -> bool:
        self.last_connect = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            return False
        self.sock = s
        return True

    def _send(self, line: bytes) -> bool:
        assert self.sock is not None
        try:
            return self.sock.send(line) == len(line)  # a short send: Suricata drops the rest
        except OSError:
            self.sock.close()
            self.sock = None
            return False

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.halt.is_set():
            due = t0 + self.sent / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            i = self.sent
            self.sent += 1
            line = EVE_LINE % (i + 1, i)  # flow_id 0 would be stored as NULL
            if self.sock is not None and self._send(line):
                self.ok.append(i)
                continue
            if time.monotonic() - self.last_connect >= self.RECONNECT_MIN and self._connect() and self._send(line):
                self.ok.append(i)
            else:
                self.dropped += 1
        if self.sock is not None:
            self.sock.close()


def _stored(db) -> tuple[list[int], list[int]]:
    snort = [r[0] for r in sqlite_rows(db, "SELECT event_id FROM alerts WHERE source = 'snort'")]
    eve = [r[0] - 1 for r in sqlite_rows(db, "SELECT flow_id FROM alerts WHERE source = 'eve'")]
    return snort, eve


def _args(tmp, snort, eve, db) -> list[str]:
    return ["--snort", snort, "--eve-stream", eve, "--sink", f"sqlite:{db}",
            "--dead-letter", str(tmp / "dl.bin"), "--stats-interval", "0"]


def _run_activated(tmp) -> dict:
    snort, eve, db = str(tmp / "snort_alert"), str(tmp / "eve.sock"), tmp / "a.db"
    notify = NotifyListener(tmp / "notify.sock")
    holder = Holder(tmp, [("datagram", "snort", snort), ("stream", "eve-stream", eve)],
                    _args(tmp, snort, eve, db), notify.path, qlen=QLEN)
    s_send, e_send = SnortSender(snort, SNORT_RATE), EveSender(eve, EVE_RATE)
    try:
        wait(lambda: os.path.exists(snort), "systemd-socket-activate to bind", holder.proc, holder.err)
        s_send.start()  # its first datagram activates (and waits in the queue)
        wait(lambda: len(notify.ready_pids()) == 1, "READY=1", holder.proc, holder.err)
        e_send.start()
        downtime = []
        for r in range(RESTARTS):
            time.sleep(RUN_SECONDS)
            pid = notify.ready_pids()[-1]
            t_stop = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            wait(lambda r=r: len(notify.ready_pids()) == r + 2, f"READY=1 after restart {r + 1}",
                 holder.proc, holder.err)
            t_ready = notify.with_field("READY", "1")[-1][0]
            downtime.append((t_stop, t_ready))
            assert notify.ready_pids()[-1] != pid
        time.sleep(RUN_SECONDS)
        s_send.halt.set()
        e_send.halt.set()
        s_send.join()
        e_send.join()
        wait(lambda: tuple(map(len, _stored(db))) == (len(s_send.ok), len(e_send.ok)),
             "every alert sent to be stored", holder.proc, holder.err)
        assert holder.stop() == 0, holder.stderr()
    finally:
        if holder.proc.poll() is None:
            holder.kill()
        notify.close()
    # sends that completed while the old ingest was stopping or the new one starting
    during = sum(1 for t in s_send.done_at if any(a <= t <= b for a, b in downtime))
    err = holder.stderr()
    return {"sender": s_send, "eve": e_send, "stored": _stored(db), "stderr": err,
            "during_restarts": during, "stopping": len(notify.with_field("STOPPING", "1")),
            "downtime": sum(b - a for a, b in downtime)}


def _run_self_bound(tmp) -> dict:
    snort, eve, db = str(tmp / "snort_alert"), str(tmp / "eve.sock"), tmp / "a.db"
    notify = NotifyListener(tmp / "notify.sock")
    env = dict(os.environ, **ingest_env(notify.path))
    errs = []

    def start(n: int) -> subprocess.Popen:
        errf = tmp / f"ingest-{n}.err"
        errs.append(errf)
        with open(errf, "wb") as f:
            return subprocess.Popen(
                ["unshare", "-n", "sh", "-c", f'sysctl -qw net.unix.max_dgram_qlen={QLEN} && exec "$@"', "netns",
                 sys.executable, "-m", "ingest", "listen", *_args(tmp, snort, eve, db)],
                env=env, stdout=subprocess.DEVNULL, stderr=f, cwd=tmp)

    s_send, e_send = SnortSender(snort, SNORT_RATE), EveSender(eve, EVE_RATE)
    procs = [start(0)]
    try:
        wait(lambda: len(notify.ready_pids()) == 1, "READY=1", procs[0], errs[0])
        s_send.start()
        e_send.start()
        for r in range(RESTARTS):
            time.sleep(RUN_SECONDS)
            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait(60) == 0, errs[-1].read_text()
            procs.append(start(r + 1))
            wait(lambda r=r: len(notify.ready_pids()) == r + 2, f"READY=1 after restart {r + 1}",
                 procs[-1], errs[-1])
        time.sleep(RUN_SECONDS)
        s_send.halt.set()
        e_send.halt.set()
        s_send.join()
        e_send.join()
        wait(lambda: tuple(map(len, _stored(db))) == (len(s_send.ok), len(e_send.ok)),
             "every alert sent to be stored", procs[-1], errs[-1])
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(60) == 0, errs[-1].read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        notify.close()
    return {"sender": s_send, "eve": e_send, "stored": _stored(db),
            "stderr": "".join(e.read_text(errors="replace") for e in errs)}


def _check_stored(res: dict) -> None:
    """Whatever the senders got through is stored exactly once, nothing else."""
    snort, eve = res["stored"]
    assert len(snort) == len(set(snort)) and len(eve) == len(set(eve)), "an alert was stored twice"
    assert sorted(snort) == res["sender"].ok
    assert sorted(eve) == res["eve"].ok
    assert "Traceback" not in res["stderr"], res["stderr"]


def test_restarts_lose_nothing_with_socket_activation_and_do_without(tmp_path):
    _need_netns()
    (tmp_path / "act").mkdir()
    (tmp_path / "own").mkdir()
    act = _run_activated(tmp_path / "act")
    own = _run_self_bound(tmp_path / "own")
    for res in (act, own):
        _check_stored(res)
    sa, ea, so, eo = act["sender"], act["eve"], own["sender"], own["eve"]
    report = (
        f"\nrestart test, {RESTARTS} restarts, Snort Alertpkt at {SNORT_RATE}/s, EVE stream at {EVE_RATE}/s:\n"
        f"  socket activation (systemd-socket-activate): Snort {sa.sent} sent, {len(sa.ok)} stored, "
        f"{sa.sent - len(sa.ok)} lost {sa.failed}; EVE {ea.sent} sent, {len(ea.ok)} stored, {ea.dropped} lost; "
        f"{act['during_restarts']} datagrams accepted by the kernel in the {act['downtime']:.1f} s "
        f"from each SIGTERM to the next READY=1\n"
        f"  ingest binding its own sockets: Snort {so.sent} sent, {len(so.ok)} stored, "
        f"{so.sent - len(so.ok)} lost {so.failed}; EVE {eo.sent} sent, {len(eo.ok)} stored, {eo.dropped} lost\n")
    print(report)
    # activation: every send succeeded (some waited), and every one is stored
    assert sa.failed == {} and ea.dropped == 0, report + act["stderr"][-3000:]
    assert act["stopping"] == RESTARTS + 1 and act["stderr"].count("ingest: final stats") == RESTARTS + 1
    assert act["stderr"].count("adopted 2 sockets from the service manager") == RESTARTS + 1
    # without: the sends made while ingest was down failed; the alerts are gone
    assert so.failed and so.sent > len(so.ok), report
    assert set(so.failed) <= {"ENOENT", "ECONNREFUSED", "EPIPE"}, report
