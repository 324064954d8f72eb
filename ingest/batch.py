"""The canonical alert batch: one numpy structured dtype for every input.

``ALERT_DTYPE`` mirrors ``struct ingest_alert`` in csrc/ingest.h field for
field; ``tests/unit/test_batch.py`` checks every offset against the compiled
C struct, so a field moved by mistake fails a test instead of corrupting data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .strings import StringPool as StringPool  # re-exported: B.StringPool
from .strings import Strings, utf8
from .strings import concat as concat_strings

# Source kinds (INGEST_SRC_*) and their names in output records.
SRC_NONE, SRC_SNORT, SRC_SNORT_APPID, SRC_BARNYARD2, SRC_BARNYARD2_32, SRC_UNIFIED2, SRC_EVE = range(7)
SOURCE_NAMES = {
    SRC_SNORT: "snort",
    SRC_SNORT_APPID: "snort",
    SRC_BARNYARD2: "barnyard2",
    SRC_BARNYARD2_32: "barnyard2",
    SRC_UNIFIED2: "unified2",
    SRC_EVE: "eve",
}

# Flags (INGEST_F_*).
F_PACKET = 0x01  #: a packet came with the alert
F_ADDRS = 0x02  #: src_addr / dst_addr are valid
F_PORTS = 0x04  #: src_port / dst_port are TCP/UDP/SCTP ports
F_ICMP = 0x08  #: src_port / dst_port hold ICMP type / code
F_VLAN = 0x10  #: vlan is valid
F_PKT_ANOMALY = 0x20  #: the packet failed a bounds check; event fields are intact

# Actions (INGEST_ACTION_*); UNKNOWN is omitted from output, never invented.
ACTION_UNKNOWN, ACTION_ALLOWED, ACTION_BLOCKED = 0, 1, 2
ACTION_NAMES = {ACTION_ALLOWED: "allowed", ACTION_BLOCKED: "blocked"}

ALERT_DTYPE = np.dtype(
    [
        ("ts_us", "<i8"),  # alert time: microseconds since the epoch, UTC
        ("flow_id", "<u8"),  # engine flow id (EVE); 0 when unknown
        ("src_addr", "V16"),  # IPv6, or IPv4 as ::ffff:a.b.c.d
        ("dst_addr", "V16"),
        ("sensor_id", "<u4"),  # Unified2 sensor id / Snort 3 tenant; 0 otherwise
        ("event_id", "<u4"),  # engine event id
        ("gid", "<u4"),  # generator id
        ("sid", "<u4"),  # signature id
        ("rev", "<u4"),  # signature revision
        ("class_id", "<u4"),  # classification id (classification.config order)
        ("priority", "<u4"),  # 1 = high; EVE "severity"
        ("msg_idx", "<i4"),  # signature message in AlertBatch.strings, -1 if none
        ("app_idx", "<i4"),  # application name in AlertBatch.strings, -1 if none
        ("src_port", "<u2"),  # or ICMP type when flags & F_ICMP
        ("dst_port", "<u2"),  # or ICMP code when flags & F_ICMP
        ("vlan", "<u2"),  # 802.1Q VLAN id when flags & F_VLAN
        ("source", "u1"),  # SRC_* kind
        ("ip_ver", "u1"),  # 0 (no addresses), 4 or 6
        ("proto", "u1"),  # IANA protocol number, 0 if unknown
        ("action", "u1"),  # ACTION_*
        ("flags", "u1"),  # F_*
        ("reserved", "u1"),
    ],
    align=True,
)
assert ALERT_DTYPE.itemsize == 96


def empty(n: int) -> np.ndarray:
    """A zeroed alert array of n records with msg_idx/app_idx at -1."""
    arr = np.zeros(n, dtype=ALERT_DTYPE)
    arr["msg_idx"] = -1
    arr["app_idx"] = -1
    return arr


def copy_rows(a: np.ndarray) -> np.ndarray:
    """A copy of a 1-D structured array, made as bytes: numpy copies a
    structured array field by field, about 10x slower than one memcpy (70 us
    against 6 us for 190 alerts)."""
    if a.ndim != 1:
        return a.copy()
    return np.ascontiguousarray(a).view(np.uint8).copy().view(a.dtype)


def concat_rows(parts: list[np.ndarray]) -> np.ndarray:
    """np.concatenate of 1-D structured arrays of one dtype, as bytes (about
    20x faster than numpy's field-by-field join: 43 us against 970 us for 8
    batches of 190 alerts)."""
    if not parts or any(p.ndim != 1 or p.dtype != parts[0].dtype for p in parts):
        return np.concatenate(parts)
    return np.concatenate([np.ascontiguousarray(p).view(np.uint8) for p in parts]).view(parts[0].dtype)


@dataclass(eq=False)
class AlertBatch:
    """A batch of canonical alerts and the text they refer to.

    ``alerts`` is an ``ALERT_DTYPE`` array.  ``strings`` is the batch's string
    table: ``alerts["msg_idx"]`` and ``alerts["app_idx"]`` index it (-1 means
    none).  It is a ``list[str]`` or, when there is a text per alert, a
    packed :class:`~ingest.strings.StringPool` made by C; both index as
    ``strings[i] -> str``, have ``len`` and join with ``+``.  ``origin`` names the source (e.g. ``snort:/var/log/snort/snort_alert``).
    ``acks`` are callables run once every sink has the batch (Barnyard2 sync
    acknowledgements, bookmarks), in order.

    Optional per-alert int32 columns, also indexing ``strings`` (-1: none):
    ``extra`` holds pre-rendered JSON members spliced into the alert's JSON
    object (Unified2 packets and extra-data); ``raw`` holds a complete JSON
    object written verbatim instead of rendering the alert (lossless EVE);
    ``cat`` holds the classification text the engine itself gave (EVE
    ``alert.category``), which mapping prefers over a class-id lookup.

    ``raw_pool`` (optional): when set, ``raw`` indexes this pool of verbatim
    records instead of ``strings`` (EVE: one copy per batch, no Python
    string per alert).

    ``keys`` (optional int64 per alert, 0 = none) are replay keys: the same
    input record always gets the same key (file followers derive it from the
    file identity and byte offset), so a store can ignore an alert it already
    holds when a follower re-reads after a crash (exactly-once in the store).

    ``events`` (optional) carries non-alert events that travel with the batch
    (EVE flow, dns, stats ...): see :class:`EventBatch`.  They count towards
    the runtime's queue bound (:meth:`queued`) but not ``len``.

    ``sensor`` names the sensor the batch comes from; ``""`` (every local
    source) means this process's own sensor (``--sensor-name``), which each
    sink was given.  A collector sets it to the publishing sensor's name.
    Batches of different sensors are never joined (:meth:`concat` refuses).

    ``refs`` (optional int32 per alert, indexing ``strings``, -1: none): the
    signature's references (a JSON array) as the alert arrived with them
    (the NATS collector: the sensor's maps gave them); mapping keeps them
    over its own.
    """

    alerts: np.ndarray
    strings: Strings = field(default_factory=list)
    origin: str = ""
    acks: list = field(default_factory=list)
    extra: np.ndarray | None = None
    raw: np.ndarray | None = None
    cat: np.ndarray | None = None
    keys: np.ndarray | None = None
    events: EventBatch | None = None
    raw_pool: RawPool | None = None
    sensor: str = ""
    refs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.alerts)

    def queued(self) -> int:
        """Places this batch takes in the runtime's bounded queue (alerts and events)."""
        return len(self.alerts) + (len(self.events) if self.events is not None else 0)

    @staticmethod
    def concat(batches: list[AlertBatch]) -> AlertBatch:
        """Join batches into one, re-basing string indices (vectorised).
        ValueError for batches of different sensors: a batch has one."""
        if len(batches) == 1:
            return batches[0]
        sensor = batches[0].sensor
        if any(b.sensor != sensor for b in batches):
            raise ValueError("batches of different sensors cannot be joined: "
                             + ", ".join(sorted({repr(b.sensor) for b in batches})))
        parts = []
        acks: list = []
        side: dict[str, list[np.ndarray]] = {"extra": [], "raw": [], "cat": [], "refs": []}
        want = {name: any(getattr(b, name) is not None for b in batches) for name in side}
        base = 0
        pooled = any(b.raw_pool is not None for b in batches)
        if pooled:
            want["raw"] = False
            raw, pool = RawPool.concat_raw(batches)
        for b in batches:
            a = b.alerts
            if len(b.strings) and base:
                a = copy_rows(a)
                for name in ("msg_idx", "app_idx"):
                    c = a[name]
                    c[c >= 0] += base
            for name in side:
                if want[name]:
                    col = getattr(b, name)
                    side[name].append(
                        np.full(len(a), -1, np.int32) if col is None
                        else np.where(col >= 0, col + base, -1).astype(np.int32))
            parts.append(a)
            acks.extend(b.acks)
            base += len(b.strings)
        origin = batches[0].origin if len({b.origin for b in batches}) == 1 else "*"
        keys = None
        if any(b.keys is not None for b in batches):
            keys = np.concatenate([np.zeros(len(b), np.int64) if b.keys is None else b.keys for b in batches])
        evs = [b.events for b in batches if b.events is not None]
        return AlertBatch(
            concat_rows(parts), concat_strings([b.strings for b in batches]), origin, acks,
            np.concatenate(side["extra"]) if want["extra"] else None,
            raw if pooled else np.concatenate(side["raw"]) if want["raw"] else None,
            np.concatenate(side["cat"]) if want["cat"] else None,
            keys,
            EventBatch.concat(evs) if evs else None,
            pool if pooled else None,
            sensor,
            refs=np.concatenate(side["refs"]) if want["refs"] else None,
        )


@dataclass(eq=False)
class RawPool:
    """Verbatim records back to back: record k is ``data[off[k]:off[k] + len[k]]``."""

    data: Any  # a bytes-like object, or a list of them read as one (joined lazily)
    off: np.ndarray  # uint64
    len: np.ndarray  # uint32

    def __len__(self) -> int:
        return len(self.off)

    def joined(self) -> bytes:
        """All the data as one bytes object (joins a list once, in place)."""
        if isinstance(self.data, list):
            self.data = b"".join(self.data)
        return bytes(self.data)

    def get(self, k: int) -> bytes:
        o = int(self.off[k])
        return self.joined()[o:o + int(self.len[k])]

    @staticmethod
    def concat_raw(batches: list[AlertBatch]) -> tuple[np.ndarray, RawPool]:
        """The joined ``raw`` column and pool of batches, some pooled, some not
        (a batch whose ``raw`` indexes its strings has those copied in)."""
        datas: list[bytes] = []
        offs: list[np.ndarray] = []
        lens: list[np.ndarray] = []
        raws: list[np.ndarray] = []
        nbytes = nrec = 0
        for b in batches:
            if b.raw_pool is not None:
                p = b.raw_pool
                data, off, ln = p.data, p.off, p.len
                raw = np.where(b.raw >= 0, b.raw + nrec, -1) if b.raw is not None else np.full(len(b), -1)
            elif b.raw is not None:  # rare: strings-indexed raw in a mixed batch
                enc = [utf8(b.strings[i]) if i >= 0 else b"" for i in b.raw.tolist()]
                ln = np.array([len(e) for e in enc], np.uint32)
                off = np.concatenate([[0], np.cumsum(ln[:-1], dtype=np.uint64)]).astype(np.uint64) if len(enc) else np.zeros(0, np.uint64)
                data = b"".join(enc)
                raw = np.where(b.raw >= 0, np.arange(len(b)) + nrec, -1)
            else:
                data, off, ln = b"", np.zeros(0, np.uint64), np.zeros(0, np.uint32)
                raw = np.full(len(b), -1)
            if isinstance(data, list):
                datas.extend(data)
            else:
                datas.append(data)
            offs.append(off.astype(np.uint64) + np.uint64(nbytes))
            lens.append(ln.astype(np.uint32))
            raws.append(raw.astype(np.int32))
            nbytes += sum(map(len, data)) if isinstance(data, list) else len(data)
            nrec += len(off)
        # the data is not copied here: renderers join it once, sinks without JSON never do
        return np.concatenate(raws), RawPool(datas, np.concatenate(offs), np.concatenate(lens))


#: serialises the first render of lazy EventBatch.lines (see EventBatch.lines);
#: re-entrant: a lazy concat renders its parts' lines inside its own render
_RENDER_LOCK = threading.RLock()


class EventBatch:
    """Non-alert events riding along with an alert batch (EVE, NetFlow/IPFIX).

    ``lines`` is the events' JSON, newline-terminated, in input order: JSON
    sinks write it verbatim (lossless passthrough).  Each event is exactly
    one line (a raw CR/LF between tokens was flattened to a space), so line
    k is event k.  ``count`` is the number of events in ``lines``;
    ``types`` counts them by event_type.

    Flows come in two shapes, and the stores take both:

    * ``flows``: one row tuple per Suricata flow/netflow event (see
      ``ingest.eve.FLOW_COLUMNS``), ``flow_line[j]`` the line of flows[j];
    * ``records``: canonical flow records (an
      :class:`ingest.flows.record.FlowBatch`: NetFlow/IPFIX, Zeek), stored
      column-wise straight from their numpy array (ingest.sinks.rows
      ``flow_record_arrays``: no Python object per flow);
      ``record_line[j]`` is the line of record j.

    ``lines`` may be left to ``render`` (given instead of the bytes): they
    are made the first time a sink asks for them, so a store never pays for
    JSON (ingest.flows.record.event_batch: records alone, line k is record k).

    Likewise ``flows`` and ``flow_line`` may be left to ``flow_rows`` (given
    instead of them, with ``pending_flows``, the most rows it can give):
    the EVE decoder parses flow events only when a store asks for their
    rows, so an input into ``null:`` or a JSON sink never parses them
    (ingest.eve.EveDecoder, "lazy flow rows").
    """

    __slots__ = ("_lines", "_render", "count", "_flows", "types", "_flow_line", "records", "record_line",
                 "_flow_rows", "pending_flows")

    def __init__(self, lines: bytes | None = b"", count: int = 0, flows: list[tuple] | None = None,
                 types: dict[str, int] | None = None, flow_line: list[int] | None = None,
                 records: Any = None, record_line: np.ndarray | None = None,
                 render: Callable[[], bytes] | None = None,
                 flow_rows: Callable[[], tuple[list[tuple], list[int]]] | None = None,
                 pending_flows: int = 0) -> None:
        if (lines is None) == (render is None):
            raise ValueError("EventBatch: either lines or render")
        if flow_rows is not None and (flows or flow_line):
            raise ValueError("EventBatch: either flows or flow_rows")
        self._lines = lines
        self._render = render
        self.count = count
        self._flows: list[tuple] = [] if flows is None else flows
        self.types: dict[str, int] = {} if types is None else types
        self._flow_line: list[int] = [] if flow_line is None else flow_line
        self.records = records  # an ingest.flows.record.FlowBatch, or None
        self.record_line = (np.zeros(0, np.int64) if record_line is None
                            else np.asarray(record_line, np.int64))
        self._flow_rows = flow_rows
        #: flow rows not made yet, at most (0 once made): the byte budget's estimate
        self.pending_flows = pending_flows if flow_rows is not None else 0

    def _make_flows(self) -> None:
        # as for lines: two stores on their threads may ask at once; one makes them
        with _RENDER_LOCK:
            if self._flow_rows is not None:
                self._flows, self._flow_line = self._flow_rows()
                self._flow_rows = None
                self.pending_flows = 0

    @property
    def flows_pending(self) -> bool:
        """Flow rows left to make (``flow_rows``), not made yet."""
        return self._flow_rows is not None

    @property
    def flows(self) -> list[tuple]:
        """One row tuple per flow/netflow event (made on first use if lazy)."""
        if self._flow_rows is not None:
            self._make_flows()
        return self._flows

    @flows.setter
    def flows(self, value: list[tuple]) -> None:
        self._make_flows()
        self._flows = value

    @property
    def flow_line(self) -> list[int]:
        """The line of each of ``flows``."""
        if self._flow_rows is not None:
            self._make_flows()
        return self._flow_line

    @flow_line.setter
    def flow_line(self, value: list[int]) -> None:
        self._make_flows()
        self._flow_line = value

    @property
    def lines(self) -> bytes:
        lines = self._lines
        if lines is not None:
            return lines
        # Two JSON sinks (jsonl and nats, each on its own thread) may ask at
        # once: one renders, the other waits for it (rendered once; never a
        # half-set state seen).  Only lazy batches ever take the lock.
        with _RENDER_LOCK:
            if self._lines is None:
                assert self._render is not None
                self._lines = self._render()
                self._render = None
            return self._lines

    @lines.setter
    def lines(self, value: bytes) -> None:
        self._lines, self._render = value, None

    @property
    def lazy(self) -> bool:
        """Records alone (line k is record k) whose lines are not rendered yet."""
        return self._lines is None

    def nflows(self) -> int:
        """Flow rows and flow records it holds."""
        return len(self.flows) + (len(self.records) if self.records is not None else 0)

    def flow_lines(self) -> np.ndarray:
        """The lines that are flows (rows or records), sorted."""
        return np.sort(np.concatenate([np.asarray(self.flow_line, np.int64), self.record_line]))

    def nbytes(self) -> int:
        """Bytes it holds, about (the queue's byte budget)."""
        n = len(self._lines) if self._lines is not None else 0
        # a flow row: ~20 Python objects (rows not made yet: charged as if they were)
        n += 256 * (self.pending_flows if self._flow_rows is not None else len(self._flows))
        if self.records is not None:
            n += self.records.records.nbytes + sum(len(s) + 56 for s in self.records.strings)
        return n

    def __len__(self) -> int:
        return self.count

    @staticmethod
    def concat(parts: list[EventBatch]) -> EventBatch:
        if len(parts) == 1:
            return parts[0]
        types: dict[str, int] = {}
        for e in parts:
            for k, v in e.types.items():
                types[k] = types.get(k, 0) + v
        recs = [e.records for e in parts if e.records is not None and len(e.records)]
        records = recs[0].concat(recs) if recs else None  # FlowBatch.concat
        count = sum(e.count for e in parts)
        if all(e.lazy for e in parts):  # records alone: still nothing rendered
            return EventBatch(None, count, None, types, None, records, np.arange(count, dtype=np.int64),
                              render=lambda: b"".join(e.lines for e in parts))
        record_line = []
        bases = []
        base = 0
        for e in parts:
            bases.append(base)
            if e.records is not None and len(e.records):
                record_line.append(e.record_line + base)
            base += e.count

        def rows() -> tuple[list[tuple], list[int]]:
            flows: list[tuple] = []
            flow_line: list[int] = []
            for e, b in zip(parts, bases, strict=True):
                flows.extend(e.flows)
                flow_line.extend(b + k for k in e.flow_line)
            return flows, flow_line

        lines = b"".join(e.lines for e in parts)
        rec_line = np.concatenate(record_line) if record_line else None
        if any(e._flow_rows is not None for e in parts):  # still not parsed: joined when asked for
            return EventBatch(lines, count, None, types, None, records, rec_line, flow_rows=rows,
                              pending_flows=sum(e.pending_flows if e._flow_rows is not None else len(e._flows)
                                                for e in parts))
        flows, flow_line = rows()
        return EventBatch(lines, count, flows, types, flow_line, records, rec_line)
