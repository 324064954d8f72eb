"""The metrics endpoint: Prometheus exposition, ``/healthz`` and ``/top.json``,
served from the running ``ingest listen`` / ``ingest collect`` process.

``--metrics [HOST:]PORT`` (127.0.0.1 when only a port is given; a warning
when the address is not a loopback one: the endpoint has no authentication)
or ``--metrics unix:PATH`` (a stream socket made like the input sockets,
mode 0660 and ``--socket-group``, removed on exit if still ours).

Nothing here runs per alert.  The counters are the runtime's own
:class:`~ingest.stats.Stats`, read at scrape time by a custom collector;
what only metrics need (the last-minute top signatures and talkers, the
event-id gaps, the latency histogram) is updated once per batch on the
event loop, with numpy, through the pipeline's ``on_taken`` /
``on_delivered`` hooks.

Paths: ``/metrics`` (Prometheus text format), ``/healthz``, ``/top.json``
(the contract ``ingest top`` reads; see README "Metrics").
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

from ..batch import F_ADDRS, SRC_SNORT, SRC_UNIFIED2, AlertBatch
from .address import DEFAULT_PORT, MetricsAddress, parse_address  # noqa: F401 (ingest.ops.metrics.* as before)

# --- /healthz -----------------------------------------------------------------
#: a sink is unhealthy once this many writes in a row failed (its retries
#: back off 0.5 s, 1 s, ...: about 1.5 s of failing) ...
HEALTH_SINK_FAILURES = 3
#: ... or once it has failed without a success in between for this long
HEALTH_SINK_SECONDS = 30.0

# --- /top.json ----------------------------------------------------------------
#: the last-minute window, in one-second buckets
WINDOW_S = 60
#: entries one bucket keeps per ring (signatures; talkers): past twice this,
#: the least counted are cut back to it.  Bound: 60 buckets x 2 rings x 256
#: entries (a signature entry holds its message, cut to MSG_MAX characters):
#: about 60 x 2 x 256 x ~0.5 KiB < 16 MiB in the worst case, a few KiB usually.
BUCKET_CAP = 128
MSG_MAX = 256
TOP_N = 10
#: the most signatures / talkers of one batch merged into a bucket
BATCH_CAP = BUCKET_CAP

# --- event-id gaps ------------------------------------------------------------
#: an event id this far below the highest seen means the engine restarted
#: (its ids start again), not that the alert came late
REORDER_WINDOW = 1 << 16
#: (input, sensor id) sequences followed at most; more are counted as ignored
MAX_SEQUENCES = 1024


#: the per-batch observers run over what accumulated, once this many alerts,
#: this many batches or this many seconds have passed, and at every scrape:
#: their numpy calls then cost per thousands of alerts, not per small batch
#: (bound: the pending batches hold at most about FLUSH_ALERTS alerts plus one
#: batch; they are views of batches the runtime already holds)
FLUSH_ALERTS = 8192
FLUSH_BATCHES = 256
FLUSH_SECONDS = 0.5


# --- per-batch observers --------------------------------------------------------
class _Bucket:
    __slots__ = ("second", "sigs", "talkers")

    def __init__(self) -> None:
        self.second = -1
        self.sigs: dict[int, list] = {}  # gid<<32|sid -> [count, rev, priority, msg]
        self.talkers: dict[bytes, int] = {}  # 16-byte address -> count


def _cut(d: dict, count) -> None:
    """Keep the BUCKET_CAP most counted entries of d."""
    keep = sorted(d.items(), key=lambda kv: count(kv[1]), reverse=True)[:BUCKET_CAP]
    d.clear()
    d.update(keep)


class LastMinute:
    """The top signatures and source addresses of the last minute: 60
    one-second buckets, each of at most 2 x BUCKET_CAP signatures and as
    many addresses (see BUCKET_CAP for the memory bound).  A count is exact
    unless one second saw more than BUCKET_CAP distinct signatures (or
    talkers) in one batch or twice that in the second: then the least
    counted of that second are dropped."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._buckets = [_Bucket() for _ in range(WINDOW_S)]
        self._lock = threading.Lock()

    def observe(self, batch: AlertBatch) -> None:
        a = batch.alerts
        if not len(a):
            return
        key = (a["gid"].astype(np.uint64) << np.uint64(32)) | a["sid"].astype(np.uint64)
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        if len(uniq) > BATCH_CAP:
            sel = np.argpartition(counts, -BATCH_CAP)[-BATCH_CAP:]
            uniq, first, counts = uniq[sel], first[sel], counts[sel]
        mask = (a["flags"] & F_ADDRS) != 0
        addrs = a["src_addr"][mask] if not mask.all() else a["src_addr"]
        t_uniq, t_counts = (np.unique(addrs, return_counts=True) if len(addrs)
                            else (np.empty(0, "V16"), np.empty(0, np.int64)))
        if len(t_uniq) > BATCH_CAP:
            sel = np.argpartition(t_counts, -BATCH_CAP)[-BATCH_CAP:]
            t_uniq, t_counts = t_uniq[sel], t_counts[sel]
        sec = int(self._clock())
        with self._lock:
            b = self._buckets[sec % WINDOW_S]
            if b.second != sec:
                b.second, b.sigs, b.talkers = sec, {}, {}
            sigs = b.sigs
            for k, i, c in zip(uniq.tolist(), first.tolist(), counts.tolist(), strict=True):
                e = sigs.get(k)
                if e is None:
                    row = a[i]
                    m = int(row["msg_idx"])
                    msg = batch.strings[m][:MSG_MAX] if m >= 0 else ""
                    sigs[k] = [c, int(row["rev"]), int(row["priority"]), msg]
                else:
                    e[0] += c
            if len(sigs) > 2 * BUCKET_CAP:
                _cut(sigs, lambda e: e[0])
            talkers = b.talkers
            for addr, c in zip(t_uniq.tolist(), t_counts.tolist(), strict=True):
                talkers[addr] = talkers.get(addr, 0) + c
            if len(talkers) > 2 * BUCKET_CAP:
                _cut(talkers, lambda n: n)

    def top(self, n: int = TOP_N) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The n most frequent signatures and source addresses of the last WINDOW_S seconds."""
        now = int(self._clock())
        sigs: Counter[int] = Counter()
        info: dict[int, list] = {}
        talkers: Counter[bytes] = Counter()
        with self._lock:
            for b in self._buckets:
                if now - WINDOW_S < b.second <= now:
                    for k, e in b.sigs.items():
                        sigs[k] += e[0]
                        if k not in info or b.second > info[k][4]:
                            info[k] = [*e, b.second]
                    talkers.update(b.talkers)
        top_sigs = [{"gid": k >> 32, "sid": k & 0xFFFFFFFF, "rev": info[k][1], "msg": info[k][3],
                     "priority": info[k][2], "count": c} for k, c in sigs.most_common(n)]
        top_talkers = [{"addr": _addr(a), "count": c} for a, c in talkers.most_common(n)]
        return top_sigs, top_talkers


def _addr(raw: bytes) -> str:
    a = ipaddress.IPv6Address(bytes(raw))
    return str(a.ipv4_mapped) if a.ipv4_mapped is not None else str(a)


class EventIdGaps:
    """Event ids that never arrived, per input and sensor id, for the
    engines that number their events in order (Snort, Barnyard2, Unified2).

    Per batch: the distinct ids above the highest seen so far extend the
    sequence; the ids skipped between them are counted as gaps (the sender
    lost them: a full socket queue, a Snort that could not send).  Ids at or
    below the highest (an engine's packet threads interleaving, a repeat)
    are counted as late; one more than REORDER_WINDOW below it starts the
    sequence again (the engine restarted: its ids start over), counted as a
    restart.  Holes inside the very first batch of a sequence count as
    gaps; ids before it are unknown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (origin, sensor_id) -> [highest, gaps, late, restarts]
        self.seq: dict[tuple[str, int], list[int]] = {}
        self.ignored = 0

    def observe(self, batch: AlertBatch) -> None:
        a = batch.alerts
        if not len(a):
            return
        src = a["source"]
        m = (src >= SRC_SNORT) & (src <= SRC_UNIFIED2)
        if not m.any():
            return
        if not m.all():
            a = a[m]
        sensors = a["sensor_id"]
        s0 = int(sensors[0])
        groups = [(s0, a["event_id"])] if (sensors == s0).all() else [
            (int(s), a["event_id"][sensors == s]) for s in np.unique(sensors).tolist()]
        with self._lock:
            for sensor, ev in groups:
                self._one(batch.origin, sensor, np.unique(ev).astype(np.int64))

    def _one(self, origin: str, sensor: int, ids: np.ndarray) -> None:
        key = (origin, sensor)
        st = self.seq.get(key)
        lo, hi = int(ids[0]), int(ids[-1])
        if st is None:
            if len(self.seq) >= MAX_SEQUENCES:
                self.ignored += 1
                return
            self.seq[key] = [hi, hi - lo + 1 - len(ids), 0, 0]
            return
        last = st[0]
        if hi <= last and last - hi > REORDER_WINDOW:  # the engine started over
            st[0], st[3] = hi, st[3] + 1
            st[1] += hi - lo + 1 - len(ids)
            return
        k = int(np.searchsorted(ids, last, side="right"))  # ids[k:] are new
        new = len(ids) - k
        st[2] += k
        if new:
            st[1] += hi - last - new
            st[0] = hi

    def snapshot(self) -> dict[tuple[str, int], list[int]]:
        with self._lock:
            return {k: list(v) for k, v in self.seq.items()}


# --- the metrics object ---------------------------------------------------------
class Metrics:
    """What the endpoint serves, read from a running pipeline."""

    def __init__(self, pipeline: Any, *, sensor: str, spool_max_bytes: int | None = None) -> None:
        from ..stats import BATCH_SIZE_BOUNDS, LATENCY_BOUNDS, Histogram

        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.sensor = sensor
        self.spool_max_bytes = spool_max_bytes
        self.started_mono = time.monotonic()
        self.last_minute = LastMinute()
        self.gaps = EventIdGaps()
        self.batch_sizes = Histogram(BATCH_SIZE_BOUNDS)
        self.latency = Histogram(LATENCY_BOUNDS)
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._taken_pending: list[AlertBatch] = []
        self._delivered_pending: list[tuple[float, np.ndarray]] = []
        self._pending_n = 0
        self._flushed = time.monotonic()
        pipeline.on_taken.append(self._taken)
        pipeline.on_delivered.append(self._delivered)

    # per batch, on the event loop: only remembered here; the numpy work runs
    # over many batches at once (flush), so its fixed cost is paid per
    # FLUSH_ALERTS alerts or FLUSH_SECONDS, not per batch
    def _taken(self, batch: AlertBatch) -> None:
        if len(batch):
            with self._pending_lock:
                self._taken_pending.append(AlertBatch(batch.alerts, batch.strings, batch.origin,
                                                      sensor=batch.sensor))
                self._pending_n += len(batch)
            self._maybe_flush()

    def _delivered(self, batch: AlertBatch) -> None:
        n = len(batch)
        if not n:
            return
        self.batch_sizes.observe(n)
        with self._pending_lock:
            self._delivered_pending.append((time.time(), batch.alerts["ts_us"]))
            self._pending_n += n
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if (self._pending_n >= FLUSH_ALERTS or len(self._taken_pending) >= FLUSH_BATCHES
                or time.monotonic() - self._flushed >= FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Run the per-batch observers over everything remembered since the
        last flush (any thread: the event loop, or a scrape)."""
        with self._pending_lock:
            taken, self._taken_pending = self._taken_pending, []
            delivered, self._delivered_pending = self._delivered_pending, []
            self._pending_n = 0
            self._flushed = time.monotonic()
        if not taken and not delivered:
            return
        with self._flush_lock:
            groups: dict[tuple[str, str], list[AlertBatch]] = {}
            for b in taken:
                groups.setdefault((b.origin, b.sensor), []).append(b)
            for bs in groups.values():
                one = bs[0] if len(bs) == 1 else AlertBatch.concat(bs)
                self.last_minute.observe(one)
                self.gaps.observe(one)
            if delivered:
                lat = np.concatenate([at * 1e6 - ts[ts > 0] for at, ts in delivered]) / 1e6
                np.maximum(lat, 0.0, out=lat)
                self.latency.observe_many(lat)

    # at scrape time, on the server's thread
    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, reasons): unhealthy while a reader thread is dead, a
        sink failed HEALTH_SINK_FAILURES writes in a row or kept failing for
        HEALTH_SINK_SECONDS, a sink can never write again, or the process
        is shutting down."""
        p = self.pipeline
        reasons: dict[str, Any] = {}
        _alive, dead = p.reader_health()
        if dead:
            reasons["readers_dead"] = dead
        now = time.monotonic()
        failing: dict[str, Any] = {}
        for sink, n in list(self.stats.sink_failing.items()):
            since = self.stats.sink_failing_since.get(sink)
            for_s = now - since if since is not None and n else 0.0
            if n >= HEALTH_SINK_FAILURES or (n and for_s >= HEALTH_SINK_SECONDS):
                failing[sink] = {"failed_writes": n, "failing_for_s": round(for_s, 3)}
        for sink in p.gone_sinks():
            failing.setdefault(sink, {})["gone"] = True
        if failing:
            reasons["sinks_failing"] = failing
        if p.stopping():
            reasons["stopping"] = True
        return not reasons, reasons

    def sink_reports(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sink in self.pipeline.sinks:
            report = getattr(sink, "stats", None)
            if report is not None:
                try:
                    out.update(report())
                except Exception:  # a report must never fail a scrape
                    pass
        return out

    def top(self) -> dict[str, Any]:
        """The /top.json document (README "Metrics": version 1)."""
        self.flush()
        s = self.stats.snapshot()
        p = self.pipeline
        alive, dead = p.reader_health()
        sigs, talkers = self.last_minute.top()
        rep = self.sink_reports()
        spool = ({"bytes": rep["spool_bytes"], "max_bytes": self.spool_max_bytes or 0}
                 if "spool_bytes" in rep else None)
        now = time.time()
        return {
            "version": 1,
            "time": now,
            "uptime_s": time.monotonic() - self.started_mono,
            "sensor": self.sensor,
            "pid": os.getpid(),
            "inputs": self.stats.input_snapshot(),
            "sinks": {sk.name: {"dispatched": s["dispatched"].get(sk.name, 0),
                                "errors": s["sink_errors"].get(sk.name, 0)} for sk in p.sinks},
            "dropped": s["dropped"],
            "queue": {"alerts": s["queue_depth"], "bytes": s["queue_bytes"], "max_bytes": p.max_queue_bytes},
            "spool": spool,
            "readers": {"alive": alive, "dead": len(dead)},
            "window_s": WINDOW_S,
            "top_signatures": sigs,
            "top_talkers": talkers,
        }

    def collect(self):
        """The Prometheus collector: every family, built from the stats at scrape time."""
        self.flush()
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from .. import __version__
        from ..native import ABI_VERSION
        from ..stats import NOTABLE

        s = self.stats.snapshot()
        inputs = self.stats.input_snapshot()
        p = self.pipeline

        def counter(name: str, doc: str, labels: list[str], rows) -> CounterMetricFamily:
            f = CounterMetricFamily(name, doc, labels=labels)
            for values, v in rows:
                f.add_metric(list(values), v)
            return f

        def gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None,
                  rows=()) -> GaugeMetricFamily:
            if labels is None:
                return GaugeMetricFamily(name, doc, value=value)
            f = GaugeMetricFamily(name, doc, labels=labels)
            for values, v in rows:
                f.add_metric(list(values), v)
            return f

        yield gauge("ingest_build_info", "ingest's version and C core ABI (always 1)",
                    labels=["version", "abi"], rows=[((__version__, str(ABI_VERSION)), 1)])
        yield counter("ingest_records_received", "records read per input (datagrams, lines, Unified2 "
                      "records, NATS messages), whatever they held", ["input"],
                      [((o,), c["received"]) for o, c in inputs.items()])
        yield counter("ingest_alerts_received", "alerts decoded per input", ["input"],
                      [((o,), c["decoded"]) for o, c in inputs.items()])
        yield counter("ingest_malformed", "input records rejected (dead-lettered), per input and reason",
                      ["input", "reason"],
                      [((o, r), n) for o, c in inputs.items() for r, n in c["malformed"].items()])
        yield counter("ingest_anomalies", "alerts kept without their packet fields, per reason", ["reason"],
                      [((r,), n) for r, n in s["anomalies"].items()])
        yield counter("ingest_dropped", "alerts not delivered (dead-lettered), per reason", ["reason"],
                      [((r,), n) for r, n in s["dropped"].items()])
        yield counter("ingest_dispatched", "alerts every write of which a sink acknowledged, per sink",
                      ["sink"], [((k.name,), s["dispatched"].get(k.name, 0)) for k in p.sinks])
        yield counter("ingest_sink_errors", "failed sink writes (each retry counts) and refused records",
                      ["sink"], [((k.name,), s["sink_errors"].get(k.name, 0)) for k in p.sinks])
        yield gauge("ingest_sink_failing_writes", "failed writes in a row since the sink's last success",
                    labels=["sink"], rows=[((k.name,), self.stats.sink_failing.get(k.name, 0)) for k in p.sinks])
        yield counter("ingest_dead_letters", "entries written to the dead-letter file", [],
                      [((), s["dead_letters"])])
        yield counter("ingest_dead_letter_errors", "entries the dead-letter file could not keep", [],
                      [((), s["dead_letter_errors"])])
        yield counter("ingest_internal_errors", "exceptions caught in a reader (a bug: report it)", [],
                      [((), s["internal_errors"])])
        yield counter("ingest_events", "operational events (socket replaced, connections refused, "
                      "bookmark errors, ...), per event", ["event"],
                      [((k,), s.get(k, 0)) for k in NOTABLE])
        yield gauge("ingest_queue_alerts", "alerts decoded and not yet acknowledged by every sink",
                    s["queue_depth"])
        yield gauge("ingest_queue_bytes", "bytes held by the queue and the connections' line buffers",
                    s["queue_bytes"])
        yield gauge("ingest_queue_max_alerts", "the queue's bound in alerts (--max-queue)", p.max_queue)
        yield gauge("ingest_queue_max_bytes", "the queue's bound in bytes (--max-queue-bytes)", p.max_queue_bytes)
        for name, doc, h in (
                ("ingest_batch_size_alerts", "alerts per sink write", self.batch_sizes),
                ("ingest_delivery_latency_seconds", "from an alert's own time (the engine's timestamp) "
                 "to its acknowledgement by every sink", self.latency)):
            buckets, total = h.snapshot()
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)
        lag = gauge("ingest_bookmark_lag_bytes", "bytes of a followed file not yet acknowledged "
                    "(file size minus bookmark)", labels=["input", "file"])
        for src in p.sources:
            fn = getattr(src, "lag", None)
            if fn is None:
                continue
            try:
                for path, n in fn().items():
                    lag.add_metric([src.origin, path], n)
            except Exception:
                pass
        yield lag
        rep = self.sink_reports()
        if "spool_bytes" in rep:
            yield gauge("ingest_spool_bytes", "bytes in the NATS sink's spool", rep["spool_bytes"])
            yield gauge("ingest_spool_messages", "batches in the NATS sink's spool", rep.get("spool_count", 0))
            if self.spool_max_bytes:
                yield gauge("ingest_spool_max_bytes", "the spool's bound (--spool-max-bytes)",
                            self.spool_max_bytes)
        alive, dead = p.reader_health()
        yield gauge("ingest_readers_alive", "inputs whose reader thread runs", alive)
        yield gauge("ingest_readers_dead", "inputs whose reader thread died", len(dead))
        yield gauge("ingest_suricata_counter", "Suricata's own counters (drops and totals) from the "
                    "last EVE stats event, by Suricata's dotted name", labels=["counter"],
                    rows=[((k[len("suricata."):],), v) for k, v in s.items() if k.startswith("suricata.")])
        seq = self.gaps.snapshot()
        for i, (name, doc) in enumerate((
                ("ingest_event_id_gaps", "event ids skipped by the sender (never arrived)"),
                ("ingest_event_id_late", "event ids at or below the highest already seen"),
                ("ingest_event_id_restarts", "times the sender's event ids started over"))):
            yield counter(name, doc + ", per input and sensor id", ["input", "sensor_id"],
                          [((o, str(sid)), v[i + 1]) for (o, sid), v in seq.items()])
        yield gauge("ingest_uptime_seconds", "seconds since the metrics endpoint started",
                    time.monotonic() - self.started_mono)


# --- the HTTP server --------------------------------------------------------------
#: simultaneous requests served at most (more are closed at once); a
#: request that does not finish within REQUEST_TIMEOUT seconds is dropped
MAX_REQUESTS = 8
REQUEST_TIMEOUT = 10.0


def _handler(metrics: Metrics):
    from http.server import BaseHTTPRequestHandler

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)  # type: ignore[arg-type]  # a collector: it has collect()
    ProcessCollector(registry=registry)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        server_version = "ingest"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok, reasons = metrics.health()
                    if ok:
                        self._send(200, "text/plain; charset=utf-8", b"ok\n")
                    else:
                        body = json.dumps({"status": "unhealthy", "reasons": reasons}, sort_keys=True)
                        self._send(503, "application/json", body.encode() + b"\n")
                elif path == "/top.json":
                    self._send(200, "application/json", json.dumps(metrics.top()).encode())
                elif path == "/":
                    self._send(200, "text/plain; charset=utf-8", b"ingest: /metrics /healthz /top.json\n")
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:  # a Unix peer has no address
            return str(self.client_address[0]) if self.client_address else "unix"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # a scrape every few seconds is not worth a log line

    return Handler


class MetricsServer:
    """The endpoint's listening socket (bound at start-up, before the inputs:
    a port in use is a start-up error) and its serving thread."""

    def __init__(self, address: MetricsAddress, *, mode: int = 0o660, group: str | None = None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.address = address
        self._bound = None
        slots = threading.BoundedSemaphore(MAX_REQUESTS)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = (socket.AF_INET6 if address.path is None and ":" in address.host
                              else socket.AF_INET)

            def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
                if not slots.acquire(blocking=False):
                    self.shutdown_request(request)  # too many at once: refused, not queued
                    return
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    slots.release()
                    raise

            def process_request_thread(self, request, client_address):  # type: ignore[no-untyped-def]
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    slots.release()

        try:
            if address.path is not None:
                from ..sockets import bind_unix

                self._bound = bind_unix(address.path, socket.SOCK_STREAM, mode=mode, group=group)
                srv = Server(address.path, BaseHTTPRequestHandler, bind_and_activate=False)  # type: ignore[arg-type]
                srv.socket.close()
                srv.socket = self._bound.sock
                srv.server_address = address.path  # type: ignore[assignment]
                self.url = f"unix:{address.path}"
            else:
                srv = Server((address.host, address.port), BaseHTTPRequestHandler)
                host, port = srv.server_address[:2]
                self.url = f"http://[{host!s}]:{port}" if ":" in str(host) else f"http://{host!s}:{port}"
        except OSError as e:
            raise OSError(e.errno, f"--metrics {address}: {e.strerror or e}") from None
        if not address.loopback:
            logging.getLogger("ingest.metrics").warning(
                f"the metrics endpoint listens on {address}, beyond this host, "
                "without authentication: anyone who can reach it reads the counters and the top "
                "signatures and talkers; prefer 127.0.0.1, or unix:PATH behind a proxy")
        self.server = srv
        self._thread: threading.Thread | None = None

    def start(self, metrics: Metrics) -> None:
        """Serve ``metrics`` from now on (on a thread of its own)."""
        self.server.RequestHandlerClass = _handler(metrics)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ingest-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()
        if self._bound is not None:
            self._bound.remove()
            self._bound = None
