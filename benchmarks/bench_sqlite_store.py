"""Rows/s into the SQLite store: its C writer against its peers, measured
in the same run, rounds interleaved, ratios paired (median of the
within-round ratios, with their range):

(a) ``SqliteSink.write`` with the C writer (csrc/sqlite.c): from the batch
    to a committed transaction -- columns built with numpy, a prepared
    INSERT bound from them in C with the GIL released;
(b) ``SqliteSink.write`` with ``INGEST_SQLITE_NATIVE=0``: the same sink
    through sqlite3's ``executemany`` of row tuples (what it did before);
(c) bare sqlite3 ``executemany`` of the same rows already built as Python
    tuples (the Python client's limit when rows are free), same statement,
    same schema and indexes, one transaction per batch.

Every writer writes BATCHES batches of BATCH EVE alerts (generated: varied
signatures, addresses, flow ids; as benchmarks/bench_postgresql.py) into a
new store in a temp dir (WAL, synchronous=NORMAL, the store's five indexes
and unique keys), timed from the first write to the last commit (opening
the store and its closing checkpoint are not in the rate).  CPU is the
process's CPU time per row (every thread).  Run:

    PYTHONPATH=. python benchmarks/bench_sqlite_store.py [--batches 40] [--batch 4096] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time

import numpy as np

from benchmarks.bench_postgresql import eve_batch
from ingest.bench.common import ratio
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.sinks import rows as R
from ingest.sinks import sqlite as S


def _median_range(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--correlate", action="store_true",
                    help="instead: alerts and the flows they belong to, batch after batch: the time per "
                         "batch as the store grows (flat means per-record cost O(log n))")
    ap.add_argument("--correlate-1m", type=int, default=0, metavar="FLOWS",
                    help="instead: alerts/s into a store holding FLOWS NetFlow flows (every alert linked) "
                         "against the same alerts into a store without flows, paired per round")
    ap.add_argument("--index-costs", action="store_true",
                    help="instead: the C writer's time per row with each secondary index alone, all, none")
    a = ap.parse_args()
    if not S.native_ok():
        raise SystemExit("bench_sqlite_store: the C writer is not usable here (INGEST_SQLITE_NATIVE=0, or "
                         "Python's sqlite3 loads another SQLite copy)")
    items = [Enricher().apply(decode_lines(eve_batch(a.batch, k)).batch) for k in range(a.batches)]
    rows = [R.alert_rows(it, "bench") for it in items]
    total = a.batch * a.batches
    tmp = tempfile.mkdtemp(prefix="sqlite-bench-")

    def sink_run(native: bool, path: str) -> tuple[float, float]:
        os.environ["INGEST_SQLITE_NATIVE"] = "1" if native else "0"
        S.native_ok.cache_clear()
        sink = S.SqliteSink(path, sensor="bench")
        assert (sink._native is not None) == native

        async def go() -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            for it in items:
                await sink.write(it)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            await sink.aclose()
            return took, cpu

        return asyncio.run(go())

    def bare_run(path: str) -> tuple[float, float]:
        asyncio.run(S.SqliteSink(path, sensor="bench").aclose())  # the schema
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{S.WRITER_CACHE_KIB}")  # as the sink's
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in rows:
            db.execute("BEGIN")
            db.executemany(S._INSERT, batch)
            db.execute("COMMIT")
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        db.close()
        return took, cpu

    if a.index_costs:
        index_costs(items, tmp, a.runs)
        return
    if a.correlate_1m:
        correlate_paired(a.correlate_1m, a.batches, a.batch, a.runs, tmp)
        return
    if a.correlate:
        correlate_growth(a.batches, a.batch, tmp)
        return

    writers = {
        "(a) sqlite: sink, C writer": lambda p: sink_run(True, p),
        "(b) sqlite: sink, executemany": lambda p: sink_run(False, p),
        "(c) bare sqlite3 executemany, rows free": bare_run,
    }
    rates: dict[str, list[float]] = {k: [] for k in writers}
    cpus: dict[str, list[float]] = {k: [] for k in writers}
    try:
        for k in range(a.runs):
            names = list(writers)
            names = names[k % len(names):] + names[:k % len(names)]  # each writer first in turn
            for name in names:
                path = os.path.join(tmp, f"r{k}.db")
                took, cpu = writers[name](path)
                c = sqlite3.connect(path)
                got = c.execute("SELECT count(*) FROM alerts").fetchone()[0]
                c.close()
                assert got == total, (name, got, total)
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
                rates[name].append(total / took)
                cpus[name].append(cpu / total * 1e6)
    finally:
        os.environ.pop("INGEST_SQLITE_NATIVE", None)
        S.native_ok.cache_clear()
        shutil.rmtree(tmp, ignore_errors=True)
    A, B_, C = writers
    print(f"SQLite store: {a.batches} batches of {a.batch} EVE alerts per run, {a.runs} rounds, "
          f"SQLite {S.native_version()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'writer':42} {'rows/s (median)':>16} {'CPU us/row':>11}")
    for name in writers:
        print(f"{name:42} {statistics.median(rates[name]):>16,.0f} {statistics.median(cpus[name]):>11.2f}")
    print(f"(a)/(b) paired: {_median_range([x / y for x, y in zip(rates[A], rates[B_], strict=True)])}")
    print(f"(a)/(c) paired: {_median_range([x / y for x, y in zip(rates[A], rates[C], strict=True)])}")


SECONDARY = ("alerts_ts", "alerts_sig", "alerts_flow", "alerts_tuple")
#: their definitions (alerts_flow is no longer made by the store: measured here)
_INDEX_COLS = {"alerts_ts": "(ts_us)", "alerts_sig": "(gid, sid)",
               "alerts_flow": "(flow_id) WHERE flow_id IS NOT NULL",
               "alerts_tuple": "(tuple_key, ts_us) WHERE tuple_key IS NOT NULL"}


def index_costs(items: list, tmp: str, runs: int) -> None:
    """What each secondary index costs the C writer: microseconds per row
    of the alerts INSERT alone (rows built beforehand), with every index, none
    of the three, and each alone (the unique keys stay: they are the
    exactly-once guarantee).  Interleaved rounds, medians."""
    cols = [R.alert_arrays(it, "bench") for it in items]
    sets = {"all": SECONDARY, "none": (), **{f"{ix} alone": (ix,) for ix in SECONDARY},
            **{f"all but {ix}": tuple(x for x in SECONDARY if x != ix) for ix in SECONDARY}}
    got: dict[str, list[float]] = {k: [] for k in sets}
    try:
        for _ in range(runs):
            for name, keep in sets.items():
                path = os.path.join(tmp, "x.db")
                sink = S.SqliteSink(path, sensor="bench")
                for ix in SECONDARY:
                    if ix not in keep:
                        sink._db.execute(f"DROP INDEX IF EXISTS {ix}")
                    else:  # a store made without it (index policy): made here to measure it
                        sink._db.execute(f"CREATE INDEX IF NOT EXISTS {ix} ON alerts {_INDEX_COLS[ix]}")
                nd, st = sink._native, sink._stmts[1]
                assert nd is not None
                t0 = time.perf_counter()
                for c in cols:
                    nd.exec("BEGIN")
                    nd.insert(st, c, S._types(c))
                    nd.exec("COMMIT")
                got[name].append((time.perf_counter() - t0) / sum(len(c[0].values) for c in cols) * 1e6)
                asyncio.run(sink.aclose())
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"SQLite store, C writer, alerts INSERT only: {len(cols)} batches, {runs} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in sets:
        print(f"{name:22} {statistics.median(got[name]):6.2f} us/row  "
              f"(paired vs all: {_median_range([x / y for x, y in zip(got[name], got['all'], strict=True)])})")


def correlate_growth(batches: int, n: int, tmp: str) -> None:
    """Batches of n Snort-like alerts, each followed (a batch later, as
    exporters report at a flow's end) by a batch of n // 4 flows that hold
    them: 4 alerts per flow, every alert linked.  Prints the time per row
    (alerts and flows) of the first and the last tenth of the batches."""
    import json

    from ingest import batch as B
    from ingest.eve import parse_ts

    t0 = parse_ts("2026-12-04T12:00:00.000000+0000")
    assert t0 is not None
    path = os.path.join(tmp, "c.db")
    sink = S.SqliteSink(path, sensor="bench")
    rng = np.random.default_rng(7)
    times: list[float] = []

    def alerts(k: int):
        a = B.empty(n)
        f = np.arange(n) // 4 + k * (n // 4)  # the flow of each alert
        a["ts_us"] = t0 + f * 1000 + (np.arange(n) % 4) * 100
        ip = np.zeros((n, 16), np.uint8)
        ip[:, 10:12] = 0xFF
        ip[:, 12:16] = np.array([10, 0, 0, 1], np.uint8)
        a["src_addr"] = ip.view("V16").reshape(-1)
        ip[:, 12:16] = np.array([192, 0, 2, 1], np.uint8)
        a["dst_addr"] = ip.view("V16").reshape(-1)
        a["src_port"] = 1024 + f % 60000
        a["dst_port"] = 80 + f // 60000
        a["proto"], a["ip_ver"], a["flags"] = 6, 4, B.F_ADDRS | B.F_PORTS
        a["gid"], a["sid"], a["rev"], a["priority"] = 1, rng.integers(1000, 1400, n), 1, rng.integers(1, 4, n)
        a["source"], a["msg_idx"], a["app_idx"] = B.SRC_SNORT, -1, -1
        return Enricher().apply(B.AlertBatch(a, [], "bench"))

    def flows(k: int):
        lines = []
        for j in range(k * (n // 4), (k + 1) * (n // 4)):
            st = t0 + j * 1000
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st // 1_000_000))
            lines.append(json.dumps({"event_type": "flow", "flow_id": j + 1, "src_ip": "192.0.2.1",
                                     "src_port": 80 + j // 60000, "dest_ip": "10.0.0.1",
                                     "dest_port": 1024 + j % 60000, "proto": "TCP",
                                     "flow": {"start": f"{ts}.{st % 1_000_000:06d}+0000",
                                              "end": f"{ts}.{(st + 400) % 1_000_000:06d}+0000"}}))
        return Enricher().apply(decode_lines(("\n".join(lines) + "\n").encode()).batch)

    async def go() -> None:
        for k in range(batches):
            items = [alerts(k), flows(k)]
            t = time.perf_counter()
            for it in items:
                await sink.write(it)
            times.append((time.perf_counter() - t) / (n + n // 4) * 1e6)
        await sink.aclose()

    try:
        asyncio.run(go())
        c = sqlite3.connect(path)
        linked, total = c.execute("SELECT count(flow_ref), count(*) FROM alerts").fetchone()
        c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tenth = max(1, batches // 10)
    print(f"correlation as the store grows: {batches} x ({n} alerts + {n // 4} flows), "
          f"{linked:,} of {total:,} alerts linked, load average {os.getloadavg()[0]:.1f}")
    print(f"first {tenth} batches: {statistics.median(times[:tenth]):.2f} us/row; "
          f"last {tenth}: {statistics.median(times[-tenth:]):.2f} us/row")


def correlate_paired(nflows: int, batches: int, n: int, rounds: int, tmp: str) -> None:
    """The correlation goal of issue 12: alerts/s into a store that holds
    ``nflows`` NetFlow flows, every alert linked to one of them (its
    5-tuple and time), against the same alerts into a store that holds no
    flow (correlation then costs one index probe a batch: Snort alone).
    Per round, ``batches`` batches of ``n`` alerts to each store in turn
    (interleaved), alerts/s from the first write to the last commit; the
    ratio with/without within the round.  The flows go in first (column-
    wise, ingest.sinks.rows.flow_record_arrays), and are not timed."""
    from ingest import batch as B
    from ingest.eve import parse_ts
    from ingest.flows import record as FR

    t0 = parse_ts("2026-12-04T12:00:00.000000+0000")
    assert t0 is not None
    rng = np.random.default_rng(11)

    def endpoints(j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """flow j: 10.a.b.c:port <-> 192.0.2.1:443 (distinct 5-tuples), starting t0 + j ms."""
        k = len(j)
        src = np.zeros((k, 16), np.uint8)
        src[:, 10:12] = 0xFF
        src[:, 12] = 10
        src[:, 13] = (j >> 16) & 0xFF
        src[:, 14] = (j >> 8) & 0xFF
        src[:, 15] = j & 0xFF
        dst = np.zeros((k, 16), np.uint8)
        dst[:, 10:12] = 0xFF
        dst[:, 12:16] = np.array([192, 0, 2, 1], np.uint8)
        return src.view("V16").reshape(-1), dst.view("V16").reshape(-1), 1024 + (j >> 24)

    def flow_item(j0: int, k: int):
        j = np.arange(j0, j0 + k, dtype=np.int64)
        r = FR.empty(k)
        r["src_addr"], r["dst_addr"], r["src_port"] = endpoints(j)
        r["dst_port"], r["proto"], r["ip_ver"] = 443, 6, 4
        r["start_us"] = t0 + j * 1000
        r["end_us"] = r["start_us"] + 500
        r["pkts"], r["bytes"], r["source"] = 10, 1000, FR.FLOW_SRC_IPFIX
        r["flags"] = FR.FF_ADDRS | FR.FF_PORTS
        return Enricher().apply(B.AlertBatch(B.empty(0), [], "bench",
                                             events=FR.event_batch(FR.FlowBatch(r, [], "bench"))))

    def alert_item(j: np.ndarray):
        a = B.empty(len(j))
        a["src_addr"], a["dst_addr"], a["src_port"] = endpoints(j)
        a["dst_port"], a["proto"], a["ip_ver"], a["flags"] = 443, 6, 4, B.F_ADDRS | B.F_PORTS
        a["ts_us"] = t0 + j * 1000 + 100
        a["gid"], a["sid"], a["rev"], a["priority"] = 1, rng.integers(1000, 1400, len(j)), 1, rng.integers(1, 4, len(j))
        a["source"], a["msg_idx"], a["app_idx"] = B.SRC_SNORT, -1, -1
        return Enricher().apply(B.AlertBatch(a, [], "bench"))

    with_path, without_path = os.path.join(tmp, "with.db"), os.path.join(tmp, "without.db")
    sinks = {"with": S.SqliteSink(with_path, sensor="bench"), "without": S.SqliteSink(without_path, sensor="bench")}
    try:
        t = time.perf_counter()
        for j0 in range(0, nflows, 8192):
            sinks["with"]._write_item(flow_item(j0, min(8192, nflows - j0)))
        fill = time.perf_counter() - t
        print(f"{nflows:,} flows stored column-wise in {fill:.1f} s ({nflows / fill:,.0f} flows/s)", flush=True)
        ratios: dict[str, list[float]] = {"recent": [], "random": []}
        cpu_ratios: dict[str, list[float]] = {"recent": [], "random": []}
        rates: dict[str, list[float]] = {"recent": [], "random": [], "without": []}
        recent = batches * n  # the newest flows: what live alerts belong to
        for r in range(rounds):
            for pattern in ("recent", "random"):
                # recent: alerts of the newest flows (live traffic); random: of flows
                # anywhere in the store (the worst case: every link touches its own page)
                if pattern == "recent":
                    js = [np.sort(rng.choice(recent, n, replace=False)) + (nflows - recent) for _ in range(batches)]
                else:
                    js = [np.sort(rng.choice(nflows, n, replace=False)) for _ in range(batches)]
                items = [alert_item(j) for j in js]
                got, cpu = {}, {}
                for name in (("with", "without") if r % 2 == 0 else ("without", "with")):
                    sink = sinks[name]
                    t, c = time.perf_counter(), time.process_time()
                    for it in items:
                        sink._write_item(it)
                    got[name] = batches * n / (time.perf_counter() - t)
                    cpu[name] = time.process_time() - c
                rates[pattern].append(got["with"])
                rates["without"].append(got["without"])
                ratios[pattern].append(got["with"] / got["without"])
                cpu_ratios[pattern].append(ratio(cpu["without"], cpu["with"]))
                print(f"round {r + 1} ({pattern}): with {nflows:,} flows {got['with']:,.0f} alerts/s, without "
                      f"flows {got['without']:,.0f} alerts/s, ratio {ratios[pattern][-1]:.3f}; CPU "
                      f"{cpu['with'] * 1e6 / (batches * n):.1f} vs {cpu['without'] * 1e6 / (batches * n):.1f} "
                      f"us/alert", flush=True)
        c = sqlite3.connect(with_path)
        linked, total = c.execute("SELECT count(flow_ref), count(*) FROM alerts").fetchone()
        c.close()
    finally:
        for sink in sinks.values():
            asyncio.run(sink.aclose())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"alerts linked in the store with flows: {linked:,} of {total:,}; load average {os.getloadavg()[0]:.1f}")
    for pattern in ("recent", "random"):
        cr = [x for x in cpu_ratios[pattern] if x == x]  # (NaN: a peer at 0 CPU s)
        print(f"{pattern}: with/without median {_median_range(ratios[pattern])}; alerts/s with "
              f"{statistics.median(rates[pattern]):,.0f}, without {statistics.median(rates['without']):,.0f}; "
              f"by CPU time (rate with / without) {_median_range(cr) if cr else 'n/a'}")


if __name__ == "__main__":
    main()
