"""Memory is bounded in bytes: the peak RSS (VmHWM) of a real ``ingest
listen`` process under hostile loads stays within what its configured budget
(``--max-queue-bytes``) allows, whatever the senders push."""

from __future__ import annotations

import socket
import sqlite3
import threading

from ingest import deadletter

from ._util import count, wait_until

BUDGET = 64 << 20
#: what the process may hold beyond its budget: a dispatched batch and the
#: copies its rendering makes (budget / 16 each), per-connection starting
#: buffers, the decoder's scratch, allocator slack
SLACK = 48 << 20


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) << 10
    raise KeyError(key)


def _connect(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    return s


def test_no_newline_connections_stay_within_the_budget(tmp_path, run_ingest):
    """40 senders that never end their line: each would hold up to
    --eve-max-line (16 MiB) of buffer; together they get the budget's half."""
    sock, db, dl = tmp_path / "eve.sock", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--eve-stream", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--max-queue-bytes", str(BUDGET)], wait_for=[sock])
    base = _status(p.proc.pid, "VmRSS")
    conns = [_connect(sock) for _ in range(40)]
    chunk = b"x" * (1 << 20)

    def push(s: socket.socket) -> None:
        s.sendall(b'{"event_type":"alert","pad":"')
        for _ in range(8):  # 8 MiB each, no newline: 320 MiB in all
            s.sendall(chunk)

    senders = [threading.Thread(target=push, args=(s,)) for s in conns]
    for t in senders:
        t.start()
    for t in senders:
        t.join(120)
    hwm = _status(p.proc.pid, "VmHWM")
    # a valid record from one of them still gets through afterwards
    conns[0].sendall(b'"}\n' + b'{"timestamp":"2024-05-01T12:00:00+0000","event_type":"alert","alert":'
                     b'{"gid":1,"signature_id":5,"rev":1,"signature":"s","severity":2}}\n')
    wait_until(lambda: count(db) == 1, p, "the record after the long lines")
    for s in conns:
        s.close()
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert hwm - base <= BUDGET + SLACK, f"peak RSS {hwm >> 20} MiB, {base >> 20} MiB at start"
    # the lines that could not be held are counted, never silently lost
    assert st["dropped"].get("queue_full", 0) + st["malformed"].get("torn_record", 0) >= 1
    assert st["dropped"].get("queue_full", 0) == sum(h["reason"] == "queue_full" for h, _ in deadletter.read(str(dl)))


def test_a_backlog_of_large_records_stays_within_the_budget(tmp_path, run_ingest):
    """300 one-MiB records while the store is locked: without a byte bound
    they all wait in memory (the queue's bound in alerts is 1,000,000)."""
    sock, db, dl = tmp_path / "eve.sock", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--eve-stream", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--max-queue-bytes", str(BUDGET), "--stats-interval", "0.2"], wait_for=[sock])
    base = _status(p.proc.pid, "VmRSS")
    lock = sqlite3.connect(db, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # the store takes nothing: everything waits in the queue
    n = 300
    pad = b"p" * (1 << 20)
    s = _connect(sock)
    for i in range(n):
        s.sendall(b'{"timestamp":"2024-05-01T12:00:00+0000","flow_id":%d,"event_type":"alert","alert":'
                  b'{"gid":1,"signature_id":5,"rev":1,"signature":"s","severity":2},"pad":"%s"}\n' % (i + 1, pad))
    s.close()
    wait_until(lambda: f"stats received={n} " in p.stderr(), p, "every record read")
    hwm = _status(p.proc.pid, "VmHWM")
    lock.rollback()
    lock.close()
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert hwm - base <= BUDGET + SLACK, f"peak RSS {hwm >> 20} MiB, {base >> 20} MiB at start"
    # every record is stored or counted (and kept) as dropped queue_full
    stored = count(db)
    assert st["decoded"] == stored and stored + st["dropped"]["queue_full"] == n
    assert st["dropped"]["queue_full"] == deadletter_reasons(dl).count("queue_full")


def deadletter_reasons(dl) -> list[str]:
    return [h["reason"] for h, _ in deadletter.read(str(dl))]
