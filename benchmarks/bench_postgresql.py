"""Rows/s into the PostgreSQL store against its peers, measured in the same
run (interleaved round by round, best of RUNS):

(a) ``PostgresSink.write`` (ingest.sinks.postgresql): from the batch to a
    committed transaction -- rows built with numpy, the binary COPY stream
    written by C (csrc/pgcopy.c), one COPY + COMMIT per batch;
(b) bare psycopg ``COPY ... FROM STDIN (FORMAT BINARY)``, ``write_row`` of
    the same rows already built as Python tuples (what the client costs
    when the rows are free), one COPY + COMMIT per batch;
(c) psycopg ``executemany`` of ``INSERT`` (the same pre-built rows),
    one COMMIT per batch (a quarter of the rows: it is slow);
(d) ``SqliteSink.write`` (the embedded store), the same batches, into a
    file in the temp directory.

Every writer writes BATCHES batches of BATCH EVE alerts (generated, varied
signatures, addresses, flow ids) into the same, empty ``alerts`` table
(the store's schema with its unique keys; emptied before every run).  The
server is started here from the Debian binaries (ingest/bench/pgserver.py) with fsync
on, on the same machine, unless ``--url`` names one.  The order of the
writers rotates from round to round (none always runs first).  Run:

    PYTHONPATH=. python benchmarks/bench_postgresql.py [--batches 50] [--batch 4096] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

import numpy as np

from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.sinks import rows as R
from ingest.sinks.base import open_sink


def eve_batch(n: int, seed: int) -> bytes:
    """n EVE alerts; batch ``seed`` follows batch seed - 1 in time (alerts
    arrive in time order, 1 ms apart), as a sensor's do."""
    rng = np.random.default_rng(seed)
    out = []
    t0 = 1_795_370_400_000_000 + seed * n * 1000  # 2026-11-22T18:00:00Z, in microseconds
    for i in range(n):
        sid = int(rng.integers(2_000_000, 2_000_400))
        sec, us = divmod(t0 + i * 1000, 1_000_000)
        out.append(json.dumps({
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{us:06d}+0000",
            "event_type": "alert",
            "flow_id": int(rng.integers(1, 1 << 50)), "src_ip": f"10.{i % 250}.{(i >> 8) % 250}.{i % 200 + 1}",
            "src_port": int(rng.integers(1024, 65535)), "dest_ip": "192.0.2.7", "dest_port": 443,
            "proto": "TCP", "app_proto": "tls",
            "alert": {"action": "allowed", "gid": 1, "signature_id": sid, "rev": 3,
                      "signature": f"ET POLICY test signature {sid}", "category": "Potentially Bad Traffic",
                      "severity": int(rng.integers(1, 4))}}))
    return ("\n".join(out) + "\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", default=None, help="an existing server's database (else one is started)")
    a = ap.parse_args()
    server = None
    url = a.url
    if url is None:
        from ingest.bench.pgserver import PgServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit("bench_postgresql: no PostgreSQL server binaries (apt-get install postgresql)")
        server = PgServer(bin_dir, fsync=True)
        server.start()
        url = server.url(server.new_database())
    try:
        run(url, a)
    finally:
        if server is not None:
            server.cleanup()


def run(url: str, a: argparse.Namespace) -> None:
    import psycopg

    from ingest.sinks.postgresql import ALERT_NAMES, ALERT_TYPES

    items = [Enricher().apply(decode_lines(eve_batch(a.batch, k)).batch) for k in range(a.batches)]
    rows = [R.alert_rows(it, "bench") for it in items]
    total = a.batch * a.batches
    tmp = tempfile.mkdtemp(prefix="pg-bench-")
    asyncio.run(open_sink(url, sensor="bench").aclose())  # the schema
    conn = psycopg.connect(url)

    def empty() -> None:
        conn.execute("TRUNCATE alerts, signatures")
        conn.commit()

    def sink_run(target: str) -> float:
        sink = open_sink(target, sensor="bench")

        async def go() -> float:
            t0 = time.perf_counter()
            for it in items:
                await sink.write(it)
            took = time.perf_counter() - t0
            await sink.aclose()
            return took

        return asyncio.run(go())

    def copy_run() -> float:
        t0 = time.perf_counter()
        for batch in rows:
            with conn.cursor() as cur:
                with cur.copy(f"COPY alerts ({ALERT_NAMES}) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(ALERT_TYPES)
                    for r in batch:
                        cp.write_row(r)
            conn.commit()
        return time.perf_counter() - t0

    sql = f"INSERT INTO alerts ({ALERT_NAMES}) VALUES ({', '.join(['%s'] * len(R.ALERT_COLUMNS))})"
    quarter = max(1, len(rows) // 4)

    def executemany_run() -> float:
        t0 = time.perf_counter()
        for batch in rows[:quarter]:
            with conn.cursor() as cur:
                cur.executemany(sql, batch)
            conn.commit()
        return time.perf_counter() - t0

    writers = {
        "(a) ingest postgresql: sink (C binary COPY)": (lambda: sink_run(url), total),
        "(b) bare psycopg binary COPY, write_row": (copy_run, total),
        "(c) psycopg executemany INSERT": (executemany_run, a.batch * quarter),
        "(d) ingest sqlite: sink": (None, total),
    }
    best: dict[str, float] = {}
    ratios: list[float] = []
    for k in range(a.runs):
        round_rate: dict[str, float] = {}
        names = list(writers)
        names = names[k % len(names):] + names[:k % len(names)]  # each writer first in turn
        for name in names:
            fn, n = writers[name]
            if fn is None:
                db = os.path.join(tmp, f"run{k}.db")
                took = sink_run(f"sqlite:{db}")
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
            else:
                empty()
                took = fn()
                got = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
                conn.commit()
                assert got == n, (name, got, n)
            round_rate[name] = n / took
            best[name] = max(best.get(name, 0.0), n / took)
        ratios.append(round_rate["(a) ingest postgresql: sink (C binary COPY)"]
                      / round_rate["(b) bare psycopg binary COPY, write_row"])
    conn.close()
    os.rmdir(tmp)
    print(f"PostgreSQL store: {a.batches} batches of {a.batch} EVE alerts per run, best of {a.runs}")
    print(f"{'writer':48} {'rows/s':>10}  vs (b)")
    b = best["(b) bare psycopg binary COPY, write_row"]
    for name in writers:
        rate = best[name]
        print(f"{name:48} {rate:>10,.0f}  {rate / b:5.2f}")
    print(f"(a)/(b) per round: {', '.join(f'{r:.2f}' for r in ratios)} (median {sorted(ratios)[len(ratios) // 2]:.2f})")


if __name__ == "__main__":
    main()
