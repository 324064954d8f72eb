"""The dead-letter file keeps what the counters say it keeps: entries that
rotation overwrote are counted, and 64 KiB Alertpkts are kept compactly
(and exactly)."""

from __future__ import annotations

import socket
import struct

from ingest import deadletter
from ingest.encode import encode_alertpkt, ether_ipv4


def snort_send(path, dgrams) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for d in dgrams:
            s.sendto(d, str(path))
    finally:
        s.close()


def entries(path) -> list[tuple[dict, bytes]]:
    return list(deadletter.read(str(path))) if path.exists() else []


def test_entries_rotated_away_are_counted(tmp_path, run_ingest):
    sock, dl = tmp_path / "snort_alert", tmp_path / "dead.bin"
    # a .1 left by an earlier run: overwriting it loses its entries too
    with open(str(dl) + ".1", "wb") as f:
        for _i in range(7):
            f.write(b'{"ts": "x", "origin": "earlier", "reason": "bad_length", "length": 3}\nold\n')
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--dead-letter", str(dl),
                    "--dead-letter-max-bytes", "20000", "--stats-interval", "0.2"], wait_for=[sock])
    junk = [b"%04d" % i + b"j" * 996 for i in range(100)]  # 1,000 bytes: bad_length
    snort_send(sock, junk)
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    assert st["malformed"] == {"bad_length": 100} and st["dead_letters"] == 100
    kept = [e for e in entries(tmp_path / "dead.bin.1") if e[0]["origin"] != "earlier"] + entries(dl)
    assert st["dead_letters_rotated"] == 100 - len(kept) + 7  # ours overwritten, and the earlier run's 7
    assert [d for _h, d in kept] == junk[100 - len(kept):]  # the newest ones are the ones kept
    assert "older entries rotated away" in p.stderr()


def test_queue_full_alertpkts_are_kept_compactly_and_exactly(tmp_path, run_ingest):
    sock, db, dl = tmp_path / "snort_alert", tmp_path / "a.db", tmp_path / "dead.bin"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                    "--max-queue", "1", "--linger-ms", "100"], wait_for=[sock])
    n = 200
    pkt = ether_ipv4("10.0.0.1", "10.0.0.2", 6, 1234, 80, payload=b"GET / HTTP/1.1\r\n" * 20)
    sent = [encode_alertpkt(v, sid=1, event_id=i, packet=pkt)
            for i, v in zip(range(n), ["snort", "snort-appid"] * n, strict=False)]
    snort_send(sock, sent)
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    dead = [(h, d) for h, d in entries(dl) if h["reason"] == "queue_full"]
    assert st["dropped"]["queue_full"] == len(dead) > 0
    for h, d in dead:
        eid = struct.unpack_from("<I", d, 65848)[0]
        assert d == sent[eid]  # byte for byte, once read back
        assert h["length"] < 2048 and h["elided"][0] == 292 + len(pkt)
    # at most 2 KiB a datagram on disk, not 64 KiB
    assert dl.stat().st_size < 2048 * len(dead) + 200 * (st["malformed"].get("bad_length", 0) + 1)
    assert st["dead_letters_rotated"] == 0
