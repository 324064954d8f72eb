"""``ingest bench`` PostgreSQL rows: the central side of many sensors.

Each run starts its own PostgreSQL cluster (the Debian binaries,
:mod:`ingest.bench.pgserver`, ``fsync`` on, ``track_commit_timestamp``
on so that every row's commit time can be read back) and its own
``nats-server -js`` (:mod:`ingest.bench.nats`), both in the bench's
temporary directories on free ports; without them (or psycopg, nats-py)
the rows are skipped with one line saying why.

**Collector -> PostgreSQL** (rows/s, paired rounds):

* a JetStream stream is loaded once with ``alerts`` Snort alerts, published
  by the ``nats://`` sink itself (8,192-alert batches: exactly the messages
  a sensor publishes, headers and replay keys included);
* ``ingest collect URL --durable benchN --sink postgresql://...`` drains
  it (a new durable each round, so each round reads the whole stream);
  timed from its "collecting from" line (the sinks are open, the consumer
  exists) to the commit time PostgreSQL recorded for the last of its rows;
  its shutdown after that (SIGTERM to exit) is reported apart;
* the peer, a bare psycopg binary ``COPY`` of *the same rows*: a child
  process reads every message of the stream, decodes and enriches them as
  the collector does and builds the very rows the store would hold as
  Python tuples (untimed), then ``write_row`` s them into the same, emptied
  ``alerts`` table, one ``COPY`` + ``COMMIT`` per ``--batch-max`` (8,192)
  rows; timed from its first COPY to the commit time of its last row.
  (It writes no signatures and decodes nothing while timed: the client's
  and the server's limit for these rows.)

Both into the store's schema (its indexes and unique keys), the table
emptied before every run, the order of the two alternating by round; the
ratio is taken within each round, its median and range reported.

**Latency** (Unix socket -> committed PostgreSQL row): as the NATS latency
rows (:func:`ingest.bench.nats.latency_run`), the collector writing to
PostgreSQL, fed Barnyard2's 1,856-byte Alertpkts (as the NATS listen rows:
a busy 2-core machine cannot take 10 k/s of Snort's 64 KiB ones): the sender stamps each alert with its CLOCK_MONOTONIC send
time, a sensor publishes to JetStream, ``ingest collect`` stores, and the
harness polls ``alerts`` every millisecond for new rows; the moment a row
is first seen minus its send time is its latency.  The same rows' commit
times (as PostgreSQL recorded them) give a second figure without the
poll's granularity, and the times JetStream stored their messages split
it: send -> stored is the sensor's share (linger, render, publish,
PubAck), the rest the collector's (fetch, decode, queue, the COPY
transaction and its commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from .. import gen
from .common import BenchError, Setup, proc_cpu, proc_hwm_kb, wait4
from .nats import LISTEN_KIND, Server, bench_item, latency_run
from .nats import missing as nats_missing

LABELS = {
    "collect": "ingest collect -> postgresql:",
    "bare-copy": "bare psycopg binary COPY, same rows",
}
#: rows per sink write in ingest collect (the runtime's --batch-max default),
#: and so per COPY of the peer
BATCH = 8192
#: the datagrams of the latency rows
LATENCY_KIND = LISTEN_KIND
#: what the issue asks of these rows (``ingest bench`` says whether they met it)
GOAL_RATE = 100_000.0
GOAL_RATIO = 0.8
GOAL_P99_MS = 100.0
GOAL_P99_AT = 10_000.0


def missing() -> str | None:
    """Why the PostgreSQL rows cannot run here (None: they can)."""
    why = nats_missing()
    if why is not None:
        return why
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'ingest[postgresql]')"
    from .pgserver import find_bin_dir

    if find_bin_dir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql; or set INGEST_PG_BIN)"
    return None


class Store:
    """A private PostgreSQL cluster with one database holding the store's
    schema (made by the postgresql: sink itself)."""

    def __init__(self) -> None:
        from ..sinks.base import open_sink
        from .pgserver import PgServer, find_bin_dir

        bin_dir = find_bin_dir()
        assert bin_dir is not None
        self.server = PgServer(bin_dir, fsync=True, settings={"track_commit_timestamp": "on"})
        try:
            self.server.start()
            self.url = self.server.url(self.server.new_database())
            asyncio.run(open_sink(self.url, sensor="bench").aclose())  # the schema
        except BaseException:
            self.server.cleanup()
            raise
        import psycopg

        self.conn = psycopg.connect(self.url, autocommit=True)

    def empty(self) -> None:
        self.conn.execute("TRUNCATE alerts, signatures, flows RESTART IDENTITY")

    def one(self, sql: str) -> Any:
        row = self.conn.execute(sql).fetchone()
        assert row is not None
        return row[0]

    def count(self) -> int:
        return int(self.one("SELECT count(*) FROM alerts"))

    def max_id(self) -> int:
        return int(self.one("SELECT coalesce(max(id), 0) FROM alerts"))

    def commits(self) -> list[tuple[float, int]]:
        """(commit time, rows) of every transaction that wrote alerts, in order."""
        got = self.conn.execute(
            "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS t, count(*) FROM alerts "
            "GROUP BY xmin::text, t ORDER BY t").fetchall()
        return [(float(t), int(n)) for t, n in got]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        self.server.cleanup()


# ---- the stream -------------------------------------------------------------

def load_stream(url: str, kind: str, seed: int, alerts: int) -> int:
    """Publish about ``alerts`` alerts through the nats:// sink (8,192 per
    batch); returns how many."""
    from ..sinks.nats import NatsSink

    item = bench_item(kind, seed)
    batches = max(1, math.ceil(alerts / len(item.batch)))
    sink = NatsSink(url, sensor="bench")

    async def go() -> None:
        for _ in range(batches):
            await sink.write(item)  # a new replay key per record each time: new rows, new message ids
        await sink.aclose()

    asyncio.run(go())
    return batches * len(item.batch)


# ---- the peer: bare psycopg COPY of the same rows ----------------------------

def copy_peer(argv: list[str]) -> None:
    """``python -m ingest.bench.postgresql copy NATS_URL DURABLE PG_URL BATCH``:
    read the whole stream, build the rows the store would hold, then time
    a bare binary COPY of them (one COPY + COMMIT per BATCH rows)."""
    import nats
    import psycopg

    from ..mapping import Enricher
    from ..natsconn import parse_url
    from ..sinks import rows as R
    from ..sinks.postgresql import ALERT_NAMES, ALERT_TYPES
    from ..wire import Decoder

    nats_url, durable, pg_url, batch = argv[0], argv[1], argv[2], int(argv[3])
    url = parse_url(nats_url)
    decoder = Decoder(url.prefix)
    enricher = Enricher()
    rows: list[tuple] = []

    async def read() -> None:
        nc = await nats.connect(list(url.servers))
        js = nc.jetstream()
        psub = await js.pull_subscribe(url.subjects, durable=durable, stream=url.stream)
        while True:
            try:
                msgs = await psub.fetch(256, timeout=1.0)
            except TimeoutError:
                break
            for m in msgs:
                dec = decoder.decode(m.subject, m.headers, m.data)
                item = enricher.apply(dec.batch)
                rows.extend(R.alert_rows(item, R.sensor_of(item, "bench")))
                await m.ack()
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
        await nc.close()

    asyncio.run(read())
    conn = psycopg.connect(pg_url)
    sql = f"COPY alerts ({ALERT_NAMES}) FROM STDIN (FORMAT BINARY)"
    t0, c0 = time.time(), time.process_time()
    for i in range(0, len(rows), batch):
        with conn.cursor() as cur, cur.copy(sql) as cp:
            cp.set_types(ALERT_TYPES)
            for r in rows[i:i + batch]:
                cp.write_row(r)
        conn.commit()
    t1, cpu = time.time(), time.process_time() - c0
    conn.close()
    print(json.dumps({"rows": len(rows), "t0": t0, "t1": t1, "cpu_s": cpu,
                      "maxrss_kb": proc_hwm_kb(os.getpid())}))


# ---- one run of each -----------------------------------------------------------

class _Stderr:
    """A child's stderr read on a thread; notes (wall time, CPU of the
    child) when the first line containing ``marker`` arrived."""

    def __init__(self, proc: subprocess.Popen, marker: bytes) -> None:
        self.proc = proc
        self.marker = marker
        self.lines: list[bytes] = []
        self.at: tuple[float, float] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-stderr")
        self._thread.start()

    def _run(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if self.at is None and self.marker in line:
                now = time.time()
                try:
                    cpu = proc_cpu(self.proc.pid)
                except OSError:
                    cpu = 0.0
                self.at = (now, cpu)
            self.lines.append(line)

    def text(self) -> str:
        self._thread.join(10)
        return b"".join(self.lines).decode(errors="replace")


def _rate(rows: int, t0: float, commits: list[tuple[float, int]]) -> dict[str, Any]:
    end = commits[-1][0]
    return {"rows": rows, "seconds": end - t0, "rows_per_s": rows / (end - t0) if end > t0 else float("nan"),
            "transactions": len(commits), "rows_per_transaction": rows / len(commits)}


def collect_run(s: Setup, store: Store, nats_url: str, durable: str, rows: int) -> dict[str, Any]:
    """``ingest collect`` draining the loaded stream into the emptied store."""
    store.empty()
    cmd = [sys.executable, "-m", "ingest", "collect", nats_url, "--durable", durable, "--sink", store.url,
           "--stats-interval", "0", "--dead-letter", str(s.workdir / "collect-dl.bin")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=s.workdir, env=s.env, start_new_session=True)
    err = _Stderr(proc, b"collecting from")
    try:
        deadline = time.monotonic() + max(60.0, s.time_limit)
        while store.max_id() < rows or store.count() < rows:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"ingest collect stored {store.count()} of {rows} rows: {err.text()[-2000:]}")
            time.sleep(0.02)
        done_cpu = proc_cpu(proc.pid)
        peak = proc_hwm_kb(proc.pid)
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        if wait4(proc, 60.0) is None:
            raise BenchError("ingest collect did not stop within 60 s of SIGTERM")
        shutdown = time.monotonic() - t_term
        if proc.returncode != 0:
            raise BenchError(f"ingest collect exited {proc.returncode}: {err.text()[-2000:]}")
        if err.at is None:
            raise BenchError(f"ingest collect never said it was collecting: {err.text()[-2000:]}")
        got = store.count()
        if got != rows:
            raise BenchError(f"ingest collect: {got} rows stored, {rows} published")
        t0, cpu0 = err.at
        row = _rate(rows, t0, store.commits())
        row.update(cpu_s_per_million=(done_cpu - cpu0) / rows * 1e6, peak_rss_mib=peak / 1024,
                   shutdown_s=shutdown)
        return row
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.text()
        if proc.stderr is not None:
            proc.stderr.close()


def copy_run(s: Setup, store: Store, nats_url: str, durable: str, rows: int) -> dict[str, Any]:
    store.empty()
    r = subprocess.run([sys.executable, "-m", "ingest.bench.postgresql", "copy", nats_url, durable, store.url,
                        str(BATCH)], capture_output=True, text=True, env=s.env, cwd=s.workdir,
                       timeout=max(120.0, s.time_limit * 4))
    if r.returncode != 0:
        raise BenchError(f"the bare COPY peer failed: {r.stderr[-2000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["rows"] != rows or store.count() != rows:
        raise BenchError(f"the bare COPY peer wrote {store.count()} rows ({out['rows']} read), {rows} published")
    row = _rate(rows, out["t0"], store.commits())
    row.update(cpu_s_per_million=out["cpu_s"] / rows * 1e6, peak_rss_mib=out["maxrss_kb"] / 1024,
               client_seconds=out["t1"] - out["t0"])
    return row


def run_throughput(s: Setup, server: Server, store: Store, *, alerts: int, repeat: int, seed: int,
                   progress: Callable[[str], None] | None) -> dict[str, Any]:
    nats_url = f"{server.url}/benchpg"
    rows = load_stream(nats_url, s.kind, seed, alerts)
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in LABELS}
    for rep in range(repeat):
        order = list(LABELS) if rep % 2 == 0 else list(reversed(LABELS))
        for who in order:
            fn = collect_run if who == "collect" else copy_run
            row = fn(s, store, nats_url, f"bench{who.replace('-', '')}{rep}", rows)
            runs[who].append(row)
            if progress:
                progress(f"round {rep + 1}/{repeat} PostgreSQL {who:9s} {row['rows_per_s']:10,.0f} rows/s "
                         f"({row['transactions']} commits" +
                         (f"; shutdown {row['shutdown_s']:.2f} s)" if "shutdown_s" in row else ")"))
    ratios = [c["rows_per_s"] / b["rows_per_s"] for c, b in zip(runs["collect"], runs["bare-copy"], strict=True)]
    out_rows = []
    for who, rs in runs.items():
        out_rows.append({"receiver": who, "label": LABELS[who], "rows_per_s": max(r["rows_per_s"] for r in rs),
                         "cpu_s_per_million": min(r["cpu_s_per_million"] for r in rs),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs})
    coll = out_rows[0]
    coll.update(peer="bare-copy", paired_rate_vs_copy=statistics.median(ratios), paired_rate_runs=ratios,
                shutdown_s=statistics.median(r["shutdown_s"] for r in runs["collect"]))
    return {"rows_per_run": rows, "repeat": repeat, "batch": BATCH, "kind": s.kind, "rows": out_rows}


# ---- latency ------------------------------------------------------------------

class PgRowWatcher:
    """Polls the store every millisecond on a thread: when each new row
    was first seen, minus its time (the sender's monotonic send time).

    Row ids are not committed in their order: the sink writes two batches
    at once (two connections, as two collectors would), so a batch with
    lower ids may commit after one with higher ids.  The poll reads every
    row above ``floor``, the highest id below which every id has been seen,
    and remembers those seen above it; an id still missing after GAP_S
    seconds (one a rolled-back transaction took, never to be committed) is
    passed over."""

    GAP_S = 30.0

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.lat: list[np.ndarray] = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-pg-watch")
        self._thread.start()

    def _run(self) -> None:
        floor = 0
        above: set[int] = set()  # ids seen above floor
        gap_since: float | None = None  # since when floor + 1 has been missing with rows above it
        cur = self.conn.cursor()
        while not self._stop.is_set():
            got = cur.execute("SELECT id, ts_us FROM alerts WHERE id > %s ORDER BY id", (floor,)).fetchall()
            now = time.monotonic()
            new = [(i, ts) for i, ts in got if i not in above]
            if new:
                above.update(i for i, _ in new)
                ts = np.fromiter((r[1] for r in new), np.int64, len(new))
                self.lat.append(now - ts / 1e6)
                self.seen += len(new)
            moved = floor
            while floor + 1 in above:
                above.discard(floor + 1)
                floor += 1
            if above:
                if gap_since is None or floor != moved:
                    gap_since = now
                elif now - gap_since > self.GAP_S:  # a hole no commit will fill
                    floor = min(above) - 1
                    gap_since = None
            else:
                gap_since = None
            time.sleep(0.001)

    def stop(self) -> np.ndarray:
        self._stop.set()
        self._thread.join(10)
        self.conn.close()
        return np.concatenate(self.lat) if self.lat else np.zeros(0)


def commit_latencies(store: Store) -> np.ndarray:
    """Every row's commit time (PostgreSQL's clock, wall time) minus its
    send time (monotonic, turned into wall time on this one machine)."""
    offset = time.time() - time.monotonic()
    got = store.conn.execute(
        "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8, ts_us FROM alerts").fetchall()
    return np.asarray([t - (ts / 1e6 + offset) for t, ts in got], dtype=np.float64)


def stored_latencies(nats_url: str) -> np.ndarray:
    """Every alert's time into JetStream: the time the stream stored its
    message (the server's clock, wall time) minus its send time (the
    alert's time, monotonic, turned into wall time on this one machine):
    the sensor's share of the latency (linger, render, publish, PubAck)."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from ..natsconn import parse_url

    url = parse_url(nats_url)
    offset = time.time() - time.monotonic()
    out: list[float] = []

    async def go() -> None:
        nc = await nats.connect(list(url.servers))
        js = nc.jetstream()
        psub = await js.pull_subscribe(url.subjects, stream=url.stream,
                                       config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL,
                                                             ack_policy=AckPolicy.NONE))  # no max_ack_pending stop
        while True:
            try:
                msgs = await psub.fetch(256, timeout=1.0)
            except TimeoutError:
                break
            for m in msgs:
                stored = m.metadata.timestamp.timestamp()
                for line in m.data.splitlines():
                    sent = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
                    out.append(stored - (sent + offset))
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
        await nc.close()

    asyncio.run(go())
    return np.asarray(out, dtype=np.float64)


def run_latency(s: Setup, server: Server, store: Store, *, rates: tuple[float, ...], seconds: float,
                progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    from .latency import percentiles

    # Barnyard2's 1,856-byte Alertpkt, as the NATS listen rows: a busy
    # 2-core machine cannot take 10 k/s of Snort's 64 KiB datagrams, and
    # the goal is about the path after the socket
    templates, _ = gen.build_templates(LATENCY_KIND, 256, 1)
    s = dataclasses.replace(s, kind=LATENCY_KIND, templates=templates, mode=None)
    out = []
    for i, rate in enumerate(rates):
        store.empty()
        n = max(1, int(rate * seconds))
        r = latency_run(s, server, rate=rate, count=n, tag=f"pg{i}", sink=store.url,
                        watcher=lambda: PgRowWatcher(store.url),
                        inspect=lambda u: {f"stored_{k}": v for k, v in percentiles(stored_latencies(u)).items()})
        c = percentiles(commit_latencies(store))
        commits = store.commits()
        r.update(commit_p50_ms=c["p50_ms"], commit_p99_ms=c["p99_ms"], commit_max_ms=c["max_ms"],
                 commits=len(commits), rows_per_commit=n / max(1, len(commits)))
        out.append(r)
        if progress:
            progress(f"PostgreSQL latency {rate:8,.0f}/s socket->row p50 {r['p50_ms']:7.2f} ms "
                     f"p99 {r['p99_ms']:7.2f} ms max {r['max_ms']:7.2f} ms (commit p99 {r['commit_p99_ms']:.2f} ms; "
                     f"into JetStream p99 {r['stored_p99_ms']:.2f} ms)")
    return out


def run_postgresql(s: Setup, *, alerts: int, repeat: int, latency_rates: tuple[float, ...] = (1000, 10000),
                   latency_seconds: float = 5.0, seed: int = 1, progress=None) -> dict[str, Any]:
    """The PostgreSQL rows (``{"missing": why}`` when they cannot run here)."""
    why = missing()
    if why is not None:
        return {"missing": why}
    server = Server(s.workdir / "nats-pg")
    try:
        store = Store()
        try:
            out: dict[str, Any] = {"throughput": run_throughput(s, server, store, alerts=alerts, repeat=repeat,
                                                                seed=seed, progress=progress)}
            server.delete_streams()
            out["latency"] = run_latency(s, server, store, rates=latency_rates, seconds=latency_seconds,
                                         progress=progress)
            out["postgresql"] = store.one("SHOW server_version")
            return out
        finally:
            store.close()
    finally:
        server.stop()


def goals(d: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, what was measured) of every goal the issue sets these rows."""
    if "missing" in d:
        return []
    coll = d["throughput"]["rows"][0]
    copy = d["throughput"]["rows"][1]
    out = [(f"collector -> PostgreSQL >= {GOAL_RATIO} of bare COPY", coll["paired_rate_vs_copy"] >= GOAL_RATIO,
            f"{coll['paired_rate_vs_copy']:.2f}"),
           (f"collector -> PostgreSQL >= {GOAL_RATE:,.0f} rows/s", coll["rows_per_s"] >= GOAL_RATE,
            f"{coll['rows_per_s']:,.0f} rows/s (bare COPY here: {copy['rows_per_s']:,.0f})")]
    for r in d["latency"]:
        if r["rate"] == GOAL_P99_AT:
            # the goal is for that rate: a sender held back below it (a
            # machine too busy to take 10 k Alertpkts/s) did not test it
            reached = r["sender_rate"] >= 0.9 * GOAL_P99_AT
            out.append((f"socket -> PostgreSQL row p99 < {GOAL_P99_MS:.0f} ms at {GOAL_P99_AT:,.0f}/s",
                        reached and r["p99_ms"] < GOAL_P99_MS,
                        f"{r['p99_ms']:.1f} ms" + ("" if reached else
                                                   f" (but the sender reached only {r['sender_rate']:,.0f}/s)")))
    return out


def format_postgresql(d: dict[str, Any]) -> list[str]:
    if "missing" in d:
        return ["", f"PostgreSQL (collector -> PostgreSQL): skipped: {d['missing']}"]
    t = d["throughput"]
    lines = ["", f"PostgreSQL {d.get('postgresql', '')} (fsync on), ingest collect draining JetStream "
                 f"({t['rows_per_run']:,} {t['kind']} alerts published by the nats:// sink) against a bare "
                 f"psycopg COPY of the same rows ({t['batch']:,} per commit), {t['repeat']} round(s), best of:",
             f"{'writer':40s} {'rows/s':>10s} {'CPU s/M':>8s} {'RSS MiB':>8s} {'rate/peer':>10s} {'range':>12s}"]
    for r in t["rows"]:
        if "paired_rate_vs_copy" in r:
            pr = f"{r['paired_rate_vs_copy']:10.2f} {min(r['paired_rate_runs']):5.2f}-{max(r['paired_rate_runs']):5.2f}"
        else:
            pr = f"{'-':>10s} {'':12s}"
        lines.append(f"{r['label']:40s} {r['rows_per_s']:10,.0f} {r['cpu_s_per_million']:8.2f} "
                     f"{r['peak_rss_mib']:8.1f} {pr:>23s}")
    c = t["rows"][0]
    lines.append(f"  (ingest collect: {statistics.median(r['rows_per_transaction'] for r in c['runs']):,.0f} rows "
                 f"per commit; its shutdown after the last row: {c['shutdown_s']:.2f} s)")
    lines.append(f"Unix socket ({LATENCY_KIND} Alertpkts) -> sensor -> JetStream -> ingest collect -> committed "
                 "PostgreSQL row:")
    for r in d["latency"]:
        lines.append(f"  {r['rate']:8,.0f} alerts/s: p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                     f"max {r['max_ms']:7.2f} ms  ({r['alerts']:,} alerts, sent at {r['sender_rate']:,.0f}/s)")
        lines.append(f"  {'':8s}  of which send -> stored in JetStream: p50 {r['stored_p50_ms']:7.2f} ms  "
                     f"p99 {r['stored_p99_ms']:7.2f} ms; send -> commit (PostgreSQL's time): p50 "
                     f"{r['commit_p50_ms']:.2f} ms  p99 {r['commit_p99_ms']:.2f} ms; "
                     f"{r['rows_per_commit']:,.1f} rows per commit")
    return lines


__all__ = ["LABELS", "format_postgresql", "goals", "missing", "run_postgresql"]

if __name__ == "__main__":
    if sys.argv[1:2] == ["copy"]:
        copy_peer(sys.argv[2:])
    else:
        sys.exit("usage: python -m ingest.bench.postgresql copy NATS_URL DURABLE PG_URL BATCH")
