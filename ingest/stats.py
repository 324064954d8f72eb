"""Counters for the periodic and final stats lines.

Each counter is written by one thread (a source's reader thread or the
event loop), so plain integer updates under the GIL are enough; ``snapshot``
copies under a lock so a report is consistent.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import numpy as np

#: distinct sender uids kept in ``senders`` (the rest: "other")
MAX_SENDERS = 256


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
