"""NetFlow v9 / IPFIX: decode in process, and end to end over UDP against nfcapd.

    PYTHONPATH=. python benchmarks/bench_netflow.py [--rounds 5] [--packets 20000] [--rate 5000]

Packets are built by ingest.gen.netflow (a v9 packet and an IPFIX packet,
each 30 IPv4 flows of pmacct's layout: absolute times, 64-bit counters, ~1.4 KB).

(1) In process, per round: ``ingest_nf_decode`` alone (the C call on 64
    received slots, templates known) and ``NetflowDecoder.decode`` (the
    wrapper: C, then the FlowBatch with its strings), records/s, best of
    the round's repetitions.
(2) End to end, per round and per receiver in turn: the same IPFIX export
    (its template first, then ``--packets`` data packets) sent over UDP on
    127.0.0.1 at ``--rate`` packets/s to (a) nfcapd (nfdump's collector,
    writing its own files) and (b) ``ingest listen --netflow ... --sink
    sqlite:``; flows each one kept (nfdump -R counts nfcapd's; the store's
    count for ingest), and the time from the first send until the last flow
    was stored (ingest) / the export ended (nfcapd keeps up or drops: its
    count says which).  The ratio is ingest's flows kept / nfcapd's, paired
    within the round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def build(version: int) -> tuple[bytes, bytes]:
    from ingest.gen import netflow as G

    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8)]
    flows = [G.Flow(src=f"10.0.{i}.1", sport=1000 + i) for i in range(30)]
    if version == 9:
        return (G.v9([G.v9_template(256, fields)], seq=0),
                G.v9([G.v9_data(256, fields, flows)], seq=1))
    return (G.ipfix([G.ipfix_template(256, fields)], seq=0),
            G.ipfix([G.ipfix_data(256, fields, flows)], seq=0))


def decode_rates(version: int, reps: int = 30) -> tuple[float, float]:
    from ingest.flows.netflow import NetflowDecoder
    from ingest.native import ffi, lib

    tpl, data = build(version)
    d = NetflowDecoder(64)
    d.decode(d.load([tpl]), now=0.0)
    n = d.load([data] * 64)
    p = d._p
    held, nheld, consumed = ffi.new("struct ingest_nf_held[]", 64), ffi.new("unsigned *"), ffi.new("unsigned *")
    best_c = best_w = float("inf")
    k = 0
    for _ in range(reps):
        t = time.perf_counter()
        k = lib.ingest_nf_decode(d.state, p["slots"], d.slot_size, n, p["lens"], p["flags"], p["peers"], 1,
                                 p["out"], d.out_cap, p["flow_slot"], p["app_off"], p["app_len"], p["status"],
                                 held, 64, nheld, consumed)
        best_c = min(best_c, time.perf_counter() - t)
        t = time.perf_counter()
        r = d.decode(n, now=0.0)
        best_w = min(best_w, time.perf_counter() - t)
    assert k == 64 * 30 and len(r.batch) == 64 * 30
    return k / best_c, k / best_w


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, tpl: bytes, data: bytes, packets: int, rate: float) -> float:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    t0 = time.perf_counter()
    s.sendto(tpl, ("127.0.0.1", port))
    for i in range(packets):
        s.sendto(data, ("127.0.0.1", port))
        if rate:
            ahead = (i + 1) / rate - (time.perf_counter() - t0)
            if ahead > 0.001:
                time.sleep(ahead)
    s.close()
    return time.perf_counter() - t0


def run_nfcapd(tmp: str, tpl: bytes, data: bytes, packets: int, rate: float) -> tuple[int, float]:
    d = tempfile.mkdtemp(dir=tmp)
    port = free_port()
    p = subprocess.Popen([shutil.which("nfcapd") or "nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    took = send(port, tpl, data, packets, rate)
    time.sleep(1.0)
    p.terminate()
    p.wait()
    out = subprocess.run(["nfdump", "-R", d, "-q", "-o", "fmt:%pkt"], capture_output=True, text=True)
    return len(out.stdout.splitlines()), took


def run_ingest(tmp: str, tpl: bytes, data: bytes, packets: int, rate: float) -> tuple[int, float]:
    db = os.path.join(tempfile.mkdtemp(dir=tmp), "a.db")
    p = subprocess.Popen([sys.executable, "-m", "ingest", "listen", "--netflow", "udp://127.0.0.1:0",
                          "--sink", f"sqlite:{db}", "--dead-letter", "", "--stats-interval", "0"],
                         stderr=subprocess.PIPE, text=True)
    line = ""
    while "listening on" not in line:
        line = p.stderr.readline()
    port = int(line.split("netflow:udp://127.0.0.1:")[1].split(";")[0].split(",")[0])
    t0 = time.perf_counter()
    send(port, tpl, data, packets, rate)
    last, same_since = -1, time.perf_counter()
    want = 30 * packets
    # until every flow is stored, or nothing more came for 5 s (the rest was lost)
    while last < want and time.perf_counter() - same_since < 5.0:
        try:
            c = sqlite3.connect(db)
            n = c.execute("SELECT count(*) FROM flows").fetchone()[0]
            c.close()
        except sqlite3.Error:
            n = 0
        if n != last:
            last, same_since = n, time.perf_counter()
            done = same_since - t0
        time.sleep(0.05)
    p.terminate()
    p.communicate(timeout=60)
    return last, done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=5000.0, help="packets/s sent (0: as fast as possible)")
    ap.add_argument("--no-e2e", action="store_true")
    ns = ap.parse_args()
    for v in (9, 10):
        rates = [decode_rates(v) for _ in range(ns.rounds)]
        c = [r[0] for r in rates]
        w = [r[1] for r in rates]
        print(f"decode v{v}: C {statistics.median(c) / 1e6:.2f} M records/s (range {min(c) / 1e6:.2f}-"
              f"{max(c) / 1e6:.2f}); wrapper {statistics.median(w) / 1e6:.2f} M/s "
              f"(range {min(w) / 1e6:.2f}-{max(w) / 1e6:.2f})")
    if ns.no_e2e or not shutil.which("nfcapd"):
        return 0
    tpl, data = build(10)
    want = 30 * ns.packets
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ns.rounds):
            nf, nf_t = run_nfcapd(tmp, tpl, data, ns.packets, ns.rate)
            ing, ing_t = run_ingest(tmp, tpl, data, ns.packets, ns.rate)
            ratios.append(ing / nf if nf else float("nan"))
            print(f"round {r + 1}: sent {want} flows at {ns.rate:.0f} pkt/s ({30 * ns.rate:.0f} flows/s): "
                  f"nfcapd kept {nf} (sending took {nf_t:.2f} s), ingest->sqlite kept {ing} "
                  f"(all stored {ing_t:.2f} s after the first send)")
    print(f"ingest/nfcapd flows kept: median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
