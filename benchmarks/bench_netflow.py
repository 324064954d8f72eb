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

Other modes (BENCHMARKS.md, "Sustained, against nfcapd"): ``--sustain
SECONDS`` steps the rate until nfcapd loses (then ingest at nfcapd's 0-loss
rate, then ingest's own); ``--ceiling FLOWS`` ingest's SQLite write against
a bare insert of the same rows (no index, no key; C and executemany);
``--before TREE`` the same export into ingest built in another tree and
this one; ``--sender c`` replays with benchmarks/netflow_sender.c
(sendmmsg) instead of a Python loop, ``--sender-max N`` measures the sender
alone.  Receivers' CPU per flow is their user + system time (wait4).
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


def distinct_packets(count: int) -> list[bytes]:
    """``count`` IPFIX data packets of 30 distinct flows each (addresses,
    ports and times differ: every flow has a 5-tuple and an index entry of
    its own), template 256 as build(10) makes it."""
    from ingest.gen import netflow as G

    fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8)]
    out = []
    for p in range(count):
        flows = [G.Flow(src=f"10.{p >> 8 & 255}.{p & 255}.{i + 1}", sport=1000 + i, dport=443,
                        start_ms=1_700_000_000_000 + p * 10, end_ms=1_700_000_001_000 + p * 10) for i in range(30)]
        out.append(G.ipfix([G.ipfix_data(256, fields, flows)], seq=p * 30))
    return out


def store_rates(packets: int = 640, batch: int = 64) -> tuple[float, float]:
    """In process, the same decoded NetFlow batches into a fresh SQLite store
    (C writer, correlation on) two ways: (a) as the source handed them on
    before (a Python row tuple and a JSON line per flow: record.store_rows,
    json_lines) and (b) as records, column-wise (record.event_batch,
    rows.flow_record_arrays).  Flows/s from the decoded batch to committed
    rows, each way timed over every batch."""
    import asyncio

    from ingest.batch import AlertBatch, EventBatch
    from ingest.batch import empty as empty_alerts
    from ingest.flows import record as R
    from ingest.flows.netflow import NetflowDecoder
    from ingest.mapping import Enriched
    from ingest.sinks.sqlite import SqliteSink

    tpl, _ = build(10)
    pk = distinct_packets(packets)
    d = NetflowDecoder(batch)
    d.decode(d.load([tpl]), now=0.0)
    batches = [d.decode(d.load(pk[i:i + batch]), now=0.0).batch for i in range(0, packets, batch)]
    nflows = sum(len(b) for b in batches)

    def rows_way(fb: R.FlowBatch) -> EventBatch:
        rows = R.store_rows(fb)
        return EventBatch(R.json_lines(fb, rows), len(fb), rows, R.event_types(fb), list(range(len(fb))))

    out = []
    for way in (rows_way, R.event_batch):
        with tempfile.TemporaryDirectory() as tmp:
            sink = SqliteSink(os.path.join(tmp, "s.db"), sensor="bench")
            t = time.perf_counter()
            for fb in batches:
                ev = way(fb)
                sink._write_item(Enriched(AlertBatch(empty_alerts(0), [], "bench", events=ev), None, []))
            out.append(nflows / (time.perf_counter() - t))
            asyncio.run(sink.aclose())
    return out[0], out[1]


def store_batches(flows: int, batch: int = 8192) -> list:
    """Decoded IPFIX FlowBatches of ``batch`` records (the runtime's
    default batch_max), ``flows`` in all: the 30,000 distinct flows of
    distinct_packets(1000) (what the end-to-end sender cycles), each cycle
    10 s later (the same 5-tuples again, as an exporter reports them)."""
    from ingest.flows import record as FR
    from ingest.flows.netflow import NetflowDecoder

    tpl, _ = build(10)
    pk = distinct_packets(1000)
    d = NetflowDecoder(64)
    d.decode(d.load([tpl]), now=0.0)
    one = FR.FlowBatch.concat([d.decode(d.load(pk[i:i + 64]), now=0.0).batch for i in range(0, len(pk), 64)])
    parts = []
    for cycle in range(-(-flows // len(one))):
        r = one.records.copy()
        r["start_us"] += cycle * 10_000_000
        r["end_us"] += cycle * 10_000_000
        parts.append(FR.FlowBatch(r, one.strings, one.origin))
    every = FR.FlowBatch.concat(parts).subset(slice(0, flows))
    return [every.subset(slice(i, i + batch)) for i in range(0, flows, batch)]


def ceiling_round(batches: list, tmp: str) -> dict[str, tuple[float, float]]:
    """The same flow records into three fresh SQLite stores, in turn, one
    transaction per batch, WAL, synchronous=NORMAL, the writer's 32 MiB page
    cache (the sink's pragmas), each way timed over every batch:

    * ``ingest``: the SQLite sink's write of the batch (SqliteSink._write_item:
      the flows columns built with numpy, bound in C, the flows key and
      indexes, correlation, COMMIT): what ``ingest listen`` does per batch;
    * ``bare C``: ingest's C writer (csrc/sqlite.c) inserting the same columns,
      built before the clock starts, into a table of the same columns with
      no index and no key;
    * ``bare executemany``: Python's sqlite3 ``executemany`` of the same rows
      as tuples, built before the clock starts, into the same bare table.

    Returns way -> (flows/s, CPU microseconds per flow of this process)."""
    from ingest.batch import AlertBatch
    from ingest.batch import empty as empty_alerts
    from ingest.flows import record as FR
    from ingest.mapping import Enriched
    from ingest.sinks import rows as R
    from ingest.sinks import sqlite as S

    n = sum(len(b) for b in batches)
    names = ", ".join(f'"{c}"' for c in R.FLOW_COLUMNS)
    insert = f"INSERT INTO flows ({names}) VALUES ({', '.join('?' * len(R.FLOW_COLUMNS))})"
    out = {}
    d = tempfile.mkdtemp(dir=tmp)
    # ingest
    sink = S.SqliteSink(os.path.join(d, "ingest.db"), sensor="bench")
    assert sink._db is not None
    # the bare table: the columns of ingest's flows table with their declared types, no key, no index
    bare_ddl = "CREATE TABLE flows ({})".format(", ".join(
        f'"{name}" {typ}' + (" PRIMARY KEY" if pk else "")
        for _, name, typ, _, _, pk in sink._db.execute("PRAGMA table_info(flows)")))
    items = [Enriched(AlertBatch(empty_alerts(0), [], "bench", events=FR.event_batch(fb)), None, []) for fb in batches]
    t, c = time.perf_counter(), time.process_time()
    for it in items:
        sink._write_item(it)
    out["ingest"] = (n / (time.perf_counter() - t), 1e6 * (time.process_time() - c) / n)
    import asyncio

    asyncio.run(sink.aclose())
    # bare C
    path = os.path.join(d, "bare_c.db")

    def bare_db(p: str) -> sqlite3.Connection:
        db = sqlite3.connect(p, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{S.WRITER_CACHE_KIB}")
        db.execute(bare_ddl)
        return db

    bare_db(path).close()
    nd = S._NativeDB(path, S.BUSY_TIMEOUT_MS)
    nd.exec("PRAGMA synchronous=NORMAL")
    nd.exec(f"PRAGMA cache_size=-{S.WRITER_CACHE_KIB}")
    st = nd.prepare(insert)
    cols = [R.flow_record_arrays(fb, "bench") for fb in batches]
    types = [S._types(x) for x in cols]
    t, c = time.perf_counter(), time.process_time()
    for x, ty in zip(cols, types, strict=True):
        nd.exec("BEGIN")
        nd.insert(st, x, ty)
        nd.exec("COMMIT")
    out["bare C"] = (n / (time.perf_counter() - t), 1e6 * (time.process_time() - c) / n)
    nd.close()
    del cols
    # bare executemany
    db = bare_db(os.path.join(d, "bare_py.db"))
    rows = [R.flow_record_rows(fb, "bench") for fb in batches]
    t, c = time.perf_counter(), time.process_time()
    for r in rows:
        db.execute("BEGIN")
        db.executemany(insert, r)
        db.execute("COMMIT")
    out["bare executemany"] = (n / (time.perf_counter() - t), 1e6 * (time.process_time() - c) / n)
    db.close()
    shutil.rmtree(d)
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the C sender (benchmarks/netflow_sender.c), when --sender c built it
C_SENDER: str | None = None


def build_sender(tmp: str) -> str:
    exe = os.path.join(tmp, "netflow_sender")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "netflow_sender.c")], check=True)
    return exe


def send(port: int, tpl: bytes, data: bytes | list[bytes], packets: int, rate: float) -> float:
    """The template, then ``packets`` data packets (cycling through ``data``
    when it is a list) at ``rate`` packets/s (0: as fast as possible); the
    seconds it took.  With C_SENDER, the C sender sends them (sendmmsg)."""
    pool = data if isinstance(data, list) else [data]
    if C_SENDER is not None:
        with tempfile.NamedTemporaryFile(suffix=".pkts") as f:
            f.write(b"".join(len(p).to_bytes(4, "big") + p for p in [tpl, *pool]))
            f.flush()
            out = subprocess.run([C_SENDER, str(port), f.name, str(packets), str(rate)], check=True,
                                 capture_output=True, text=True).stdout
        return float(out.split("seconds=")[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    t0 = time.perf_counter()
    s.sendto(tpl, ("127.0.0.1", port))
    k = len(pool)
    for i in range(packets):
        s.sendto(pool[i % k], ("127.0.0.1", port))
        if rate:
            ahead = (i + 1) / rate - (time.perf_counter() - t0)
            if ahead > 0.001:
                time.sleep(ahead)
    s.close()
    return time.perf_counter() - t0


#: both receivers get this socket receive buffer (ingest asks for it itself)
RCVBUF = 32 << 20


#: CPU seconds (user + system) of the last receiver process run_nfcapd / run_ingest ran
LAST_CPU = [0.0]
#: more arguments for ``ingest listen`` (--ingest-args)
INGEST_ARGS: list[str] = []


def reap(p: subprocess.Popen) -> float:
    """Wait for the child and return its CPU seconds (user + system)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime


def run_nfcapd(tmp: str, tpl: bytes, data: bytes | list[bytes], packets: int, rate: float) -> tuple[int, float]:
    d = tempfile.mkdtemp(dir=tmp)
    port = free_port()
    p = subprocess.Popen([shutil.which("nfcapd") or "nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", d,
                          "-B", str(RCVBUF)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    took = send(port, tpl, data, packets, rate)
    time.sleep(1.0)
    p.terminate()
    LAST_CPU[0] = reap(p)
    out = subprocess.run(["nfdump", "-R", d, "-q", "-o", "fmt:%pkt"], capture_output=True, text=True)
    return len(out.stdout.splitlines()), took


def run_ingest(tmp: str, tpl: bytes, data: bytes | list[bytes], packets: int, rate: float,
               tree: str | None = None) -> tuple[int, float]:
    """``ingest listen --netflow ... --sink sqlite:`` (from ``tree``, a
    built source tree, if given) gets the export: (flows stored, seconds
    from the first send to the last row committed)."""
    db = os.path.join(tempfile.mkdtemp(dir=tmp), "a.db")
    env = dict(os.environ, PYTHONPATH=tree) if tree else None
    p = subprocess.Popen([sys.executable, "-m", "ingest", "listen", "--netflow", "udp://127.0.0.1:0",
                          "--sink", f"sqlite:{db}", "--dead-letter", "", "--stats-interval", "0", *INGEST_ARGS],
                         stderr=subprocess.PIPE, text=True, env=env, cwd=tree)
    line = ""
    while "listening on" not in line:
        line = p.stderr.readline()
        if not line:  # it exited before listening
            raise SystemExit(f"ingest listen exited (status {p.wait()}) before listening")
    port = int(line.split("netflow:udp://127.0.0.1:")[1].split(";")[0].split(",")[0])
    t0 = time.perf_counter()
    send(port, tpl, data, packets, rate)
    last, same_since = -1, time.perf_counter()
    done = 0.0
    want = 30 * packets
    # until every flow is stored, or nothing more came for 5 s (the rest was lost)
    while last < want and time.perf_counter() - same_since < 5.0:
        try:
            c = sqlite3.connect(db)
            n = c.execute("SELECT max(id) FROM flows").fetchone()[0] or 0
            c.close()
        except sqlite3.Error:
            n = 0
        if n != last:
            last, same_since = n, time.perf_counter()
            done = same_since - t0
        time.sleep(0.05)
    p.terminate()
    assert p.stderr is not None
    p.stderr.read()
    LAST_CPU[0] = reap(p)
    return last, done


def sustained(tmp: str, seconds: float, rates: list[float], pool: int) -> tuple[float, int, float, int, float]:
    """Step the packet rate up until nfcapd loses flows over a ``seconds``
    long export; then ingest at the highest rate nfcapd kept whole.
    Returns (rate, nfcapd kept, nfcapd flows/s, ingest kept, ingest flows/s):
    flows/s is flows kept over the time from the first send to the last
    flow written (nfcapd: the send's end; ingest: the last row committed)."""
    tpl, _ = build(10)
    data = distinct_packets(pool)
    best = None
    for rate in rates:
        packets = int(rate * seconds)
        nf, took = run_nfcapd(tmp, tpl, data, packets, rate)
        print(f"  nfcapd at {rate:,.0f} pkt/s ({30 * rate:,.0f} flows/s, {30 * packets:,} flows in "
              f"{took:.1f} s): kept {nf:,}, CPU {1e6 * LAST_CPU[0] / max(nf, 1):.2f} us/flow "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        if nf < 30 * packets:
            break
        best = (rate, packets, nf, took)
    if best is None:
        raise SystemExit("nfcapd lost flows at the lowest rate")
    rate, packets, nf, took = best
    ing, ing_t = run_ingest(tmp, tpl, data, packets, rate)
    print(f"  ingest at {rate:,.0f} pkt/s: kept {ing:,} of {30 * packets:,}, the last stored "
          f"{ing_t:.1f} s after the first send, CPU {1e6 * LAST_CPU[0] / max(ing, 1):.2f} us/flow", flush=True)
    return rate, nf, nf / took, ing, ing / ing_t if ing_t else 0.0


def ingest_steps(tmp: str, seconds: float, rates: list[float], pool: int) -> float:
    """The highest of ``rates`` (packets/s) at which ingest stores every
    flow of a ``seconds`` long export, the last within 2 s of the send's end
    (it keeps pace rather than draining a backlog); 0 if none."""
    tpl, _ = build(10)
    data = distinct_packets(pool)
    best = 0.0
    for rate in rates:
        packets = int(rate * seconds)
        ing, ing_t = run_ingest(tmp, tpl, data, packets, rate)
        ok = ing == 30 * packets and ing_t <= seconds + 2.0
        print(f"  ingest at {rate:,.0f} pkt/s ({30 * rate:,.0f} flows/s): kept {ing:,} of {30 * packets:,}, "
              f"the last stored {ing_t:.1f} s after the first send: {'kept pace' if ok else 'fell behind'}, "
              f"CPU {1e6 * LAST_CPU[0] / max(ing, 1):.2f} us/flow (load {os.getloadavg()[0]:.1f})",
              flush=True)
        if not ok:
            break
        best = rate
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=5000.0, help="packets/s sent (0: as fast as possible)")
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--store", action="store_true",
                    help="in process into SQLite: row tuples (before) vs records column-wise, paired per round")
    ap.add_argument("--sustain", type=float, default=0.0, metavar="SECONDS",
                    help="end to end at a sustained rate: step --rates until nfcapd loses, then ingest")
    ap.add_argument("--rates", default="1000,2000,4000,8000,16000,32000,64000",
                    help="packet rates (30 flows each) to step through with --sustain")
    ap.add_argument("--ingest-rates", default="250,500,1000,1500,2000,3000,4000",
                    help="packet rates to step ingest alone through with --sustain (its own 0-loss rate)")
    ap.add_argument("--ceiling", type=int, default=0, metavar="FLOWS",
                    help="in process: FLOWS flow records into SQLite by ingest's sink vs a bare insert "
                         "(no index, no key; C and executemany), paired per round")
    ap.add_argument("--batch", type=int, default=8192, help="--ceiling: flows per transaction (batch_max's default)")
    ap.add_argument("--sender", choices=("python", "c"), default="python",
                    help="who replays the export: a Python sendto loop, or benchmarks/netflow_sender.c "
                         "(sendmmsg, built with cc at start)")
    ap.add_argument("--ingest-args", default="", help="more arguments for ingest listen (e.g. '--batch-max 65536')")
    ap.add_argument("--sender-max", type=int, default=0, metavar="PACKETS",
                    help="only measure the sender: PACKETS data packets flat out to a socket nobody reads")
    ap.add_argument("--before", metavar="TREE",
                    help="paired before/after, end to end: per round the same --sustain SECONDS export at "
                         "--rate packets/s to ingest built in TREE, then to this tree's; stored flows/s "
                         "and CPU per flow")
    ns = ap.parse_args()
    global C_SENDER
    INGEST_ARGS.extend(ns.ingest_args.split())
    keep = tempfile.TemporaryDirectory()
    if ns.sender == "c":
        C_SENDER = build_sender(keep.name)
    if ns.sender_max:
        tpl, _ = build(10)
        data = distinct_packets(1000)
        for r in range(ns.rounds):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
                sink.bind(("127.0.0.1", 0))
                took = send(sink.getsockname()[1], tpl, data, ns.sender_max, 0)
            print(f"round {r + 1}: {ns.sender} sender, {ns.sender_max:,} packets in {took:.2f} s: "
                  f"{ns.sender_max / took:,.0f} pkt/s = {30 * ns.sender_max / took:,.0f} flows/s", flush=True)
        return 0
    if ns.before:
        tpl, _ = build(10)
        data = distinct_packets(1000)
        packets = int(ns.rate * (ns.sustain or 10))
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        got: list[tuple[float, float, float, float]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(ns.rounds):
                res = []
                for tree in (ns.before, here):
                    n, t = run_ingest(tmp, tpl, data, packets, ns.rate, tree)
                    res.append((n / t if t else 0.0, 1e6 * LAST_CPU[0] / max(n, 1), n))
                got.append((res[0][0], res[1][0], res[0][1], res[1][1]))
                print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}): before {res[0][2]:,} of {30 * packets:,} "
                      f"stored at {res[0][0]:,.0f} flows/s, CPU {res[0][1]:.2f} us/flow; after {res[1][2]:,} at "
                      f"{res[1][0]:,.0f} flows/s, CPU {res[1][1]:.2f} us/flow", flush=True)
        from ingest.bench.common import ratio

        q = [ratio(a, b) for b, a, _, _ in got]
        c = [ratio(a, b) for _, _, b, a in got]
        print(f"after/before stored flows/s: median {statistics.median(q):.2f} (range {min(q):.2f}-{max(q):.2f}); "
              f"CPU per flow after/before: median {statistics.median(c):.2f} (range {min(c):.2f}-{max(c):.2f})")
        return 0
    if ns.ceiling:
        batches = store_batches(ns.ceiling, ns.batch)
        per: dict[str, list[tuple[float, float]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(ns.rounds):
                res = ceiling_round(batches, tmp)
                for way, v in res.items():
                    per.setdefault(way, []).append(v)
                print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}): " + "; ".join(
                    f"{way} {fs:,.0f} flows/s, {cpu:.2f} us CPU/flow" for way, (fs, cpu) in res.items()), flush=True)
        from ingest.bench.common import ratio

        for way in ("bare C", "bare executemany"):
            q = [ratio(a[0], b[0]) for a, b in zip(per["ingest"], per[way], strict=True)]
            print(f"ingest / {way}, flows/s: median {statistics.median(q):.3f} (range {min(q):.3f}-{max(q):.3f})")
        for way, v in per.items():
            print(f"{way}: best {max(x[0] for x in v):,.0f} flows/s, CPU median "
                  f"{statistics.median(x[1] for x in v):.2f} us/flow")
        return 0
    if ns.store:
        ratios = []
        for r in range(ns.rounds):
            before, after = store_rates()
            ratios.append(after / before)
            print(f"round {r + 1}: rows {before:,.0f} flows/s, records {after:,.0f} flows/s, "
                  f"ratio {after / before:.2f}", flush=True)
        print(f"records/rows: median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")
        return 0
    if ns.sustain:
        rates = [float(x) for x in ns.rates.split(",")]
        res = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(ns.rounds):
                print(f"round {r + 1}:", flush=True)
                res.append(sustained(tmp, ns.sustain, rates, 1000))
                own = ingest_steps(tmp, ns.sustain, [float(x) for x in ns.ingest_rates.split(",")], 1000)
                print(f"  ingest's own highest rate with 0 loss, keeping pace: {own:,.0f} pkt/s "
                      f"({30 * own:,.0f} flows/s)", flush=True)
        ratios = [x[4] / x[2] for x in res]
        print(f"ingest/nfcapd flows/s at nfcapd's 0-loss rate: median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}); ingest lost "
              f"{sum(30 * int(x[0] * ns.sustain) - x[3] for x in res)} flows in all")
        return 0
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
