"""Counters for the periodic and final stats lines.

Each counter is written by one thread (a source's reader thread or the
event loop), so plain integer updates under the GIL are enough; ``snapshot``
copies under a lock so a report is consistent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any

import numpy as np

#: distinct sender uids kept in ``senders`` (the rest: "other")
MAX_SENDERS = 256


class InputCounts:
    """One input's own counters (the Prometheus ``input`` label, /top.json)."""

    __slots__ = ("kind", "received", "decoded", "malformed")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.received = 0
        self.decoded = 0
        self.malformed: dict[str, int] = defaultdict(int)


class Histogram:
    """Cumulative bucket counts (Prometheus histogram semantics), updated
    once per batch: ``observe`` takes one value, ``observe_many`` a numpy
    array of them (vectorised: one searchsorted + bincount per batch)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = 0
        for b in self.bounds:  # a dozen bounds at most: cheaper than bisect's call
            if value <= b:
                break
            i += 1
        with self._lock:
            self.counts[i] += 1
            self.sum += value

    def observe_many(self, values: Any) -> None:
        if not len(values):
            return
        idx = np.searchsorted(np.asarray(self.bounds), values, side="left")
        per = np.bincount(idx, minlength=len(self.bounds) + 1)
        total = float(values.sum())
        with self._lock:
            for i, n in enumerate(per.tolist()):
                self.counts[i] += n
            self.sum += total

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` pairs, +Inf last, and the sum."""
        with self._lock:
            counts, total = list(self.counts), self.sum
        out, acc = [], 0
        for b, n in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
            acc += n
            out.append((b, acc))
        return out, total


#: alerts per sink write
BATCH_SIZE_BOUNDS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
#: seconds from the alert's own time to its acknowledgement by every sink
LATENCY_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 600.0, 3600.0)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0  # datagrams / records read from sources
        self.decoded = 0  # alerts produced
        self.malformed: dict[str, int] = defaultdict(int)  # rejected input, by reason
        self.anomalies: dict[str, int] = defaultdict(int)  # alerts kept without packet fields
        self.dropped: dict[str, int] = defaultdict(int)  # valid input we could not queue
        self.dispatched: dict[str, int] = defaultdict(int)  # alerts acknowledged, per sink
        self.sink_errors: dict[str, int] = defaultdict(int)
        self.dead_letters = 0
        self.dead_letter_errors = 0
        self.dead_letters_rotated = 0  # entries the dead-letter file's rotation overwrote
        self.internal_errors = 0  # exceptions caught in a reader thread (a bug; reported)
        self.queue_depth = 0  # alerts decoded but not yet acknowledged
        self.queue_bytes = 0  # bytes held by the queue and the sources' line buffers
        self.reader_failed: dict[str, int] = defaultdict(int)  # reader threads that died, by source
        self.extra: dict[str, int] = defaultdict(int)
        self._groups: dict[str, int] = defaultdict(int)  # distinct names per set_gauge group
        #: writes refused by the peer-credential allow-lists, by input
        #: (datagrams on datagram inputs, connections on stream/seqpacket ones)
        self.peer_refused: dict[str, int] = defaultdict(int)
        #: datagrams that came without credentials, by input
        self.peer_unknown: dict[str, int] = defaultdict(int)
        #: records received per sender uid (inputs with credentials); at most
        #: MAX_SENDERS uids, the rest under "other"
        self.senders: dict[str, int] = defaultdict(int)
        self.inputs: dict[str, InputCounts] = {}  # per input (origin), see for_input
        #: per sink: failed writes since its last success, and when that run began
        self.sink_failing: dict[str, int] = defaultdict(int)
        self.sink_failing_since: dict[str, float] = {}
        self.started = time.time()

    def for_input(self, origin: str, kind: str) -> Stats:
        """The stats a source is given: every counter is these stats', and
        what it reads and rejects is also counted for ``origin`` alone."""
        with self._lock:
            counts = self.inputs.setdefault(origin, InputCounts(kind))
        return InputStats(self, counts)

    def input_snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {o: {"kind": c.kind, "received": c.received, "decoded": c.decoded,
                        "malformed": dict(c.malformed)} for o, c in self.inputs.items()}

    def add_input(self, received: int, decoded: int) -> None:
        with self._lock:
            self.received += received
            self.decoded += decoded

    def add_malformed(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.malformed[reason] += n

    def add_anomaly(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.anomalies[reason] += n

    def add_dropped(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def add_peer(self, origin: str, reason: str, n: int = 1) -> None:
        """n writes refused by an allow-list (``peer_refused``) or without
        credentials (``peer_unknown``) on the input origin."""
        with self._lock:
            (self.peer_unknown if reason == "peer_unknown" else self.peer_refused)[origin] += n
            if reason == "peer_unknown" or not origin.startswith(("eve-stream:", "barnyard2-sync:")):
                self.dropped[reason] += n  # a datagram: input we did not take

    def add_senders(self, uids: Any, n: int = 0) -> None:
        """Count records by sender uid: an array of uids (one per record), or
        one uid and n."""
        if isinstance(uids, int):
            counts = {uids: n}
        elif len(uids) == 0:
            return
        elif (uids == uids[0]).all():  # the usual batch: one sender
            counts = {int(uids[0]): len(uids)}
        else:
            u, c = np.unique(uids, return_counts=True)
            counts = dict(zip(u.tolist(), c.tolist(), strict=True))
        with self._lock:
            for uid, k in counts.items():
                key = str(uid)
                if key not in self.senders and len(self.senders) >= MAX_SENDERS:
                    key = "other"
                self.senders[key] += k

    def add_reader_failed(self, name: str) -> None:
        with self._lock:
            self.reader_failed[name] += 1

    def add_extra(self, name: str, n: int = 1) -> None:
        """Count into ``extra`` (safe when several reader threads count)."""
        with self._lock:
            self.extra[name] += n

    def set_extra(self, name: str, value: int) -> None:
        """Set a gauge in ``extra`` (e.g. an engine's own cumulative counter)."""
        with self._lock:
            self.extra[name] = value

    def set_gauge(self, name: str, value: int, *, group: str, cap: int) -> bool:
        """``set_extra`` for a gauge whose names come from input (an engine's
        own counters): at most ``cap`` distinct names per ``group``; False
        (nothing set) for a new name past it."""
        with self._lock:
            if name not in self.extra:
                if self._groups[group] >= cap:
                    return False
                self._groups[group] += 1
            self.extra[name] = value
            return True

    def sink_ok(self, sink: str) -> None:
        if self.sink_failing.get(sink):
            self.sink_failing[sink] = 0
            self.sink_failing_since.pop(sink, None)

    def sink_failed(self, sink: str, now: float) -> None:
        self.sink_errors[sink] += 1
        if not self.sink_failing[sink]:
            self.sink_failing_since[sink] = now
        self.sink_failing[sink] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "received": self.received,
                "decoded": self.decoded,
                "malformed": dict(self.malformed),
                "anomalies": dict(self.anomalies),
                "dropped": dict(self.dropped),
                "dispatched": dict(self.dispatched),
                "sink_errors": dict(self.sink_errors),
                "dead_letters": self.dead_letters,
                "dead_letter_errors": self.dead_letter_errors,
                "dead_letters_rotated": self.dead_letters_rotated,
                "internal_errors": self.internal_errors,
                "queue_depth": self.queue_depth,
                "queue_bytes": self.queue_bytes,
                "reader_failed": dict(self.reader_failed),
                "peer_refused": dict(self.peer_refused),
                "peer_unknown": dict(self.peer_unknown),
                "senders": dict(self.senders),
                **{k: v for k, v in self.extra.items()},
            }

    def line(self, s: dict[str, Any] | None = None) -> str:
        """The periodic line (of ``s``, a snapshot; default: now)."""
        s = self.snapshot() if s is None else s

        def fmt(d: dict[str, int]) -> str:
            return ",".join(f"{k}:{v}" for k, v in sorted(d.items())) or "0"

        return (
            f"ingest: stats received={s['received']} decoded={s['decoded']} "
            f"malformed={fmt(s['malformed'])} anomalies={fmt(s['anomalies'])} "
            f"dropped={fmt(s['dropped'])} dispatched={fmt(s['dispatched'])} "
            f"queue={s['queue_depth']} queue_bytes={s['queue_bytes']}"
            + (f" reader_failed={fmt(s['reader_failed'])}" if s["reader_failed"] else "")
            + "".join(f" {k}={s[k]}" for k in NOTABLE if s.get(k))
            + "".join(f" {k}={sum(s[k].values())}" for k in ("peer_refused", "peer_unknown") if s[k])
            + _suricata(s)
            + _nats(s)
            + _spool(s)
        )

    def final_line(self, s: dict[str, Any] | None = None) -> str:
        return "ingest: final stats " + json.dumps(self.snapshot() if s is None else s, sort_keys=True)


#: counters from ``extra`` shown in the periodic line whenever they are not 0
NOTABLE = ("accept_failed", "connections_refused", "connections_evicted", "connections_idle_closed",
           "dead_letters_rotated", "sink_probe_recoveries", "barnyard2_duplicates",
           "suricata_counters_ignored", "bookmark_errors", "acks_undeliverable", "socket_replaced",
           "unified2_retire_failed", "unified2_offset_past_end", "unified2_file_shrank",
           "eve_file_offset_past_end")


def _spool(s: dict[str, Any]) -> str:
    """The nats:// sink's spool (ingest.sinks.nats): what it holds, what went
    through it, and whatever it cut or refused."""
    if "spool_bytes" not in s:
        return ""
    out = (f" spool={s['spool_count']}msgs/{s['spool_bytes']}B spooled={s.get('spool_spooled', 0)}"
           f" replayed={s.get('spool_replayed', 0)}")
    return out + "".join(f" {k}={s[k]}" for k in ("spool_refused", "spool_cut_tails", "spool_corrupt") if s.get(k))


def _nats(s: dict[str, Any]) -> str:
    """The collector's view (ingest.sources.nats): JetStream's numbers for
    the durable, then per sensor RECORDS/MESSAGES/PENDING/AGE."""
    per: dict[str, dict[str, int]] = {}
    for k, v in s.items():
        if k.startswith("nats.") and k.count(".") >= 2:
            sensor, what = k[len("nats."):].rsplit(".", 1)
            per.setdefault(sensor, {})[what] = v
    if not per and "nats_lag" not in s:
        return ""
    out = (f" nats_lag={s.get('nats_lag', 0)} nats_pending={s.get('nats_pending', 0)}"
           f" nats_ack_pending={s.get('nats_ack_pending', 0)}"
           f" nats_delivered={s.get('nats_delivered', 0)}/{s.get('nats_last_seq', 0)}")
    if per:
        out += " sensors=" + ",".join(
            f"{name}:{d.get('received', 0)}/{d.get('messages', 0)}/{d.get('pending', 0)}/{d.get('age_ms', 0)}ms"
            for name, d in sorted(per.items()))
    return out


def _suricata(s: dict[str, Any]) -> str:
    """Suricata's own counters (from its EVE stats events), next to ours."""
    sur = {k[len("suricata."):]: v for k, v in s.items() if k.startswith("suricata.")}
    if not sur:
        return ""
    return " suricata=" + ",".join(f"{k}:{v}" for k, v in sorted(sur.items()))


class InputStats(Stats):
    """A source's view of the process's :class:`Stats`: every attribute and
    method is the shared object's (reads and writes go through to it), and
    ``add_input``/``add_malformed`` also count for this input.  Per batch,
    under the lock the shared counters take anyway: no cost per alert."""

    def __init__(self, parent: Stats, counts: InputCounts) -> None:  # noqa: D107
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_counts", counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_parent"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._parent, name, value)

    def add_input(self, received: int, decoded: int) -> None:
        c = self._counts
        with self._parent._lock:
            self._parent.received += received
            self._parent.decoded += decoded
            c.received += received
            c.decoded += decoded

    def add_malformed(self, reason: str, n: int = 1) -> None:
        with self._parent._lock:
            self._parent.malformed[reason] += n
            self._counts.malformed[reason] += n
