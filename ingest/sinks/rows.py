"""Store rows from an enriched batch: one builder for every SQL store.

The SQLite store and the PostgreSQL store take their rows from here, so the
two hold exactly the same rows for the same input.  Columns are built
column-wise with numpy (no per-alert Python beyond what the database
driver itself needs); texts are looked up once per distinct string.

Every ``alerts`` and ``flows`` row carries its ``sensor``: the batch's own
(:attr:`ingest.batch.AlertBatch.sensor`, set by a collector), else the
name the sink was given (this process's ``--sensor-name``).  Signatures are
global (one row per gid:sid:rev, whatever sensor saw it first).

One rule for text the stores cannot both hold: a NUL character (a map
message with a NUL byte, an EVE string with ``\\u0000``) is stored as
U+FFFD in every text column: PostgreSQL's text type cannot contain NUL, and
the stores must agree.  JSON outputs keep it (escaped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import batch as B
from ..eve import FLOW_COLUMNS as _EVE_FLOW_COLUMNS
from ..eve import FLOW_ROW_COLUMNS as _EVE_ROW_COLUMNS
from ..flows import record as FR
from ..flows.correlate import alert_tuple_keys, flow_tuple_keys, record_tuple_keys
from ..flows.record import STORE_COLUMNS as _RECORD_COLUMNS
from ..mapping import Enriched
from ..render import format_addrs_ascii, format_times_ascii
from ..strings import Segment, Strings

#: the ``alerts`` columns a row carries, in table order (``id`` is the store's)
ALERT_COLUMNS = (
    "ts_us", "timestamp", "source", "sensor_id", "event_id", "gid", "sid", "rev", "class_id",
    "category", "priority", "action", "proto", "ip_ver", "src_ip", "src_port", "dest_ip",
    "dest_port", "icmp_type", "icmp_code", "vlan", "flow_id", "app_name", "replay_key", "sensor",
    "tuple_key",
)
SIGNATURE_COLUMNS = ("gid", "sid", "rev", "msg", "refs")
#: columns the stores fill themselves, after the rows are in (ingest.flows.correlate)
ALERT_LINK_COLUMNS = ("flow_ref",)
#: (none since schema version 5: the per-flow aggregates are counted when asked)
FLOW_LINK_COLUMNS: tuple[str, ...] = ()
#: what the ``flows_v`` view adds to the flows columns (ingest.flows.correlate.FLOW_AGGREGATES)
FLOW_VIEW_COLUMNS = ("alert_count", "top_priority")
#: the ``flows`` columns a row carries (``id`` is the store's): EVE's, then
#: sensor and the 5-tuple's key (ingest.flows.correlate), then the rest of
#: the canonical flow record (ingest.flows.record, schema version 3)
FLOW_COLUMNS = (*_EVE_FLOW_COLUMNS, "sensor", "tuple_key", *_RECORD_COLUMNS)
EVE_FLOW_COLUMNS = _EVE_FLOW_COLUMNS
FLOW_TEXT = frozenset({"event_type", "src_ip", "dest_ip", "proto", "app_proto", "start", "end",
                       "state", "reason", "sensor", "source", "exporter", "uid", "history"})
_FLOW_TEXT_AT = tuple(i for i, c in enumerate(_EVE_ROW_COLUMNS) if c in FLOW_TEXT)
_NEVE = len(_EVE_FLOW_COLUMNS)
_FLOW_TUPLE_AT = tuple(_EVE_FLOW_COLUMNS.index(c) for c in ("src_ip", "src_port", "dest_ip", "dest_port", "proto"))


def _clean(text: str) -> str:
    return text.replace("\0", "\ufffd") if "\0" in text else text


def _masked(values: np.ndarray, mask: np.ndarray) -> list:
    """values as Python ints/strs, None where mask is False (SQL NULL)."""
    out = values.astype(object)
    out[~mask] = None
    return out.tolist()  # type: ignore[no-any-return]


# ---- columns: what a store writes, before it is Python objects ----------------
# Each column keeps its values as numpy arrays: the SQLite store takes
# ``tolist()`` (Python values, None for NULL) for executemany, the
# PostgreSQL store hands the arrays to C (ingest.sinks.pgcopy) without
# making a Python object per value.  Both read the same columns, so they
# store the same rows.


class TextTable:
    """Distinct texts a text column indexes (NUL-free, see the module
    docstring), packed as UTF-8 once, when first asked for."""

    __slots__ = ("texts", "_packed")

    def __init__(self, texts: Sequence[str | None]) -> None:
        self.texts = [None if t is None else _clean(t) for t in texts]
        self._packed: Segment | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def packed(self) -> Segment:
        if self._packed is None:
            self._packed = Segment.from_strings(t or "" for t in self.texts)
        return self._packed


class IntColumn:
    """Integers; ``valid`` (bool per row, None: all) says which are not NULL."""

    kind = "int"
    __slots__ = ("values", "valid")

    def __init__(self, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.values = values
        self.valid = valid

    def tolist(self) -> list:
        return self.values.tolist() if self.valid is None else _masked(self.values, self.valid)  # type: ignore[no-any-return]


class TextColumn:
    """Text by index into a :class:`TextTable` (-1: NULL)."""

    kind = "text"
    __slots__ = ("idx", "table")

    def __init__(self, idx: np.ndarray, table: TextTable) -> None:
        self.idx = np.ascontiguousarray(idx, dtype=np.int32)
        self.table = table

    def tolist(self) -> list:
        t = np.empty(len(self.table) + 1, dtype=object)  # [-1] is the trailing None
        t[:-1] = self.table.texts
        return t[self.idx].tolist()  # type: ignore[no-any-return]


class AsciiColumn:
    """ASCII text per row in a fixed-width, NUL-padded bytes array
    (timestamps, addresses); ``valid`` as for IntColumn."""

    kind = "ascii"
    __slots__ = ("values", "valid")

    def __init__(self, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.values = values
        self.valid = valid

    def tolist(self) -> list:
        text = self.values.astype(f"U{self.values.dtype.itemsize}")
        return text.tolist() if self.valid is None else _masked(text, self.valid)  # type: ignore[no-any-return]


Column = IntColumn | TextColumn | AsciiColumn


def columns_of_rows(rows: Sequence[tuple], ncols: int, text_at: frozenset[int]) -> list[Column]:
    """Row tuples (signature rows, EVE flow rows) as columns, so that a C
    writer can take them like the alert columns.  Columns at ``text_at``
    take str or None, the others int or None: anything else is the data's
    fault (TypeError; an int beyond 64 bits: OverflowError)."""
    cols: list[Column] = []
    values = list(zip(*rows, strict=True)) if rows else [()] * ncols
    if len(values) != ncols:
        raise ValueError(f"rows of {len(values)} values, not {ncols}")
    for j, vals in enumerate(values):
        if j in text_at:
            seen: dict[str, int] = {}
            idx = np.empty(len(vals), np.int32)
            for i, v in enumerate(vals):
                if v is None:
                    idx[i] = -1
                elif type(v) is str:
                    idx[i] = seen.setdefault(v, len(seen))
                else:
                    raise TypeError(f"column {j}: {type(v).__name__} where text belongs")
            cols.append(TextColumn(idx, TextTable(list(seen))))
        else:
            if not all(v is None or isinstance(v, int) for v in vals):
                bad = next(v for v in vals if v is not None and not isinstance(v, int))
                raise TypeError(f"column {j}: {type(bad).__name__} where an integer belongs")
            valid = np.fromiter((v is not None for v in vals), bool, len(vals))
            ints = np.array([0 if v is None else v for v in vals], dtype=np.int64)  # OverflowError past int64
            cols.append(IntColumn(ints, None if valid.all() else valid))
    return cols


def text_column(strings: Strings, idx: np.ndarray) -> TextColumn:
    """``strings[i]`` for every i of idx (-1: NULL), with a table of the
    distinct texts used (each decoded and checked once)."""
    idx = np.asarray(idx)
    uniq, inv = np.unique(idx, return_inverse=True)
    used = uniq >= 0
    pos = np.cumsum(used, dtype=np.int32) - 1
    pos[~used] = -1
    return TextColumn(pos[inv.reshape(-1)], TextTable([strings[i] for i in uniq[used].tolist()]))


_SOURCE_TABLE = TextTable([B.SOURCE_NAMES.get(i, "unknown") for i in range(256)])
_ACTION_TABLE = TextTable([B.ACTION_NAMES[k] for k in sorted(B.ACTION_NAMES)])
_ACTION_IDX = np.full(256, -1, np.int32)
_ACTION_IDX[sorted(B.ACTION_NAMES)] = np.arange(len(B.ACTION_NAMES), dtype=np.int32)


def sensor_of(item: Enriched, default: str) -> str:
    """The sensor of item's rows: the batch's, else the sink's own."""
    return item.batch.sensor or default


def alert_arrays(item: Enriched, sensor: str) -> list[Column]:
    """One column per ALERT_COLUMNS entry.

    Columns a source does not carry are NULL, never invented: ``action`` for
    Snort unsock, addresses for alerts without a packet, ports for ICMP
    (which fills ``icmp_type``/``icmp_code``), ``replay_key`` for alerts
    without one."""
    a = item.batch.alerts
    n = len(a)
    strings = item.strings
    flags = a["flags"]
    addrs = (flags & B.F_ADDRS) != 0
    ports = (flags & B.F_PORTS) != 0
    icmp = (flags & B.F_ICMP) != 0
    src, dst = format_addrs_ascii(a)
    cats = item.categories if item.categories is not None else np.full(n, -1, np.int32)
    flow = a["flow_id"].view(np.int64)  # SQL integers are signed 64-bit
    keys = item.batch.keys
    tk = alert_tuple_keys(a)
    return [
        IntColumn(a["ts_us"]),
        AsciiColumn(format_times_ascii(a["ts_us"])),
        TextColumn(a["source"], _SOURCE_TABLE),
        IntColumn(a["sensor_id"]),
        IntColumn(a["event_id"]),
        IntColumn(a["gid"]),
        IntColumn(a["sid"]),
        IntColumn(a["rev"]),
        IntColumn(a["class_id"]),
        text_column(strings, cats),
        IntColumn(a["priority"]),
        TextColumn(_ACTION_IDX[a["action"]], _ACTION_TABLE),
        IntColumn(a["proto"], addrs),
        IntColumn(a["ip_ver"], addrs),
        AsciiColumn(src, addrs),
        IntColumn(a["src_port"], ports),
        AsciiColumn(dst, addrs),
        IntColumn(a["dst_port"], ports),
        IntColumn(a["src_port"], icmp),
        IntColumn(a["dst_port"], icmp),
        IntColumn(a["vlan"], (flags & B.F_VLAN) != 0),
        IntColumn(flow, flow != 0),
        text_column(strings, a["app_idx"]),
        IntColumn(np.zeros(n, np.int64), np.zeros(n, bool)) if keys is None else IntColumn(keys, keys != 0),
        TextColumn(np.zeros(n, np.int32), TextTable([sensor])),
        IntColumn(tk, tk != 0),
    ]


def alert_columns(item: Enriched, sensor: str) -> list[list]:
    """alert_arrays as Python lists, one value per alert (None is NULL)."""
    return [c.tolist() for c in alert_arrays(item, sensor)]


def alert_rows(item: Enriched, sensor: str) -> list[tuple]:
    """alert_columns as row tuples (what ``executemany`` takes)."""
    return list(zip(*alert_columns(item, sensor), strict=True))


def signature_rows(item: Enriched) -> list[tuple]:
    """One (gid, sid, rev, msg, refs) per distinct signature of the batch
    that has a message, sorted by (gid, sid, rev); refs is the JSON array of
    its references or None."""
    a = item.batch.alerts
    strings = item.strings
    has_msg = a["msg_idx"] >= 0
    if not has_msg.any():
        return []
    keyed = a[["gid", "sid", "rev", "msg_idx"]][has_msg]
    # the first alert of each (gid, sid, rev), in key order: a stable sort on
    # the three columns (np.unique on the structured key sorted opaque void
    # records, the costliest step of a store's batch)
    g, s, r = keyed["gid"], keyed["sid"], keyed["rev"]
    order = np.lexsort((r, s, g))
    g, s, r = g[order], s[order], r[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1]) | (r[1:] != r[:-1])
    first = order[starts]
    refs = (item.references[has_msg][first].tolist() if item.references is not None
            else [-1] * len(first))
    return [(g, s, r, _clean(strings[m]), _clean(strings[f]) if f >= 0 else None)
            for (g, s, r, m), f in zip(keyed[first].tolist(), refs, strict=True)]


def flow_rows(item: Enriched, sensor: str) -> list[tuple]:
    """The batch's EVE flow/netflow rows (FLOW_COLUMNS), each with its sensor."""
    ev = item.batch.events
    if ev is None or not ev.flows:
        return []
    out = []
    at = _FLOW_TEXT_AT
    flows = ev.flows
    keys = flow_tuple_keys(*([r[i] for r in flows] for i in _FLOW_TUPLE_AT))
    for r, k in zip(flows, keys, strict=True):  # already one Python tuple per flow event (ingest.eve.flow_row)
        if any(type(r[i]) is str and "\0" in r[i] for i in at):
            r = tuple(_clean(v) if type(v) is str else v for v in r)
        out.append((*r[:_NEVE], sensor, k, *r[_NEVE:]))
    return out


# ---- canonical flow records (NetFlow/IPFIX, Zeek): column-wise --------------
# A FlowBatch's ``flows`` rows straight from its numpy records: the same
# values as ingest.flows.record.store_rows gives (with the sensor and the
# tuple key), without a Python object per flow.  One builder per column of
# FLOW_COLUMNS, by name: a column added to the table is one entry here
# (the assertion below fails at import while one is missing).

_EVENT_TYPES = TextTable(["flow", "netflow"])
_PROTO_TABLE = TextTable([FR.proto_name(i) for i in range(256)])
_REASON_TABLE = TextTable([FR.END_REASONS.get(i) for i in range(256)])
_FLOW_SOURCE_TABLE = TextTable([FR.FLOW_SOURCE_NAMES.get(i) for i in range(256)])
_I64_MAX = np.uint64((1 << 63) - 1)
_NO_TEXT = TextTable([])
_NETFLOW_SOURCES = np.array([FR.FLOW_SRC_NETFLOW5, FR.FLOW_SRC_NETFLOW9, FR.FLOW_SRC_IPFIX], np.uint8)


class _FlowCtx:
    """What the column builders share: the records, their flags, the texts made once."""

    def __init__(self, fb: FR.FlowBatch, sensor: str) -> None:
        r = self.r = fb.records
        self.n = n = len(r)
        self.fb, self.sensor = fb, sensor
        fl = r["flags"]
        self.addrs = (fl & FR.FF_ADDRS) != 0
        self.ports = (fl & FR.FF_PORTS) != 0
        self.icmp = (fl & FR.FF_ICMP) != 0
        self.bi = (fl & FR.FF_BIFLOW) != 0
        self.tcp = (fl & FR.FF_TCP_FLAGS) != 0
        self.vlan = (fl & FR.FF_VLAN) != 0
        self.exporter = (fl & FR.FF_EXPORTER) != 0
        self.proto = r["proto"] != 0
        a = B.empty(n)
        a["src_addr"], a["dst_addr"] = r["src_addr"], r["dst_addr"]
        a["ip_ver"] = np.where(self.addrs, r["ip_ver"], 0)
        a["flags"] = np.where(self.addrs, B.F_ADDRS, 0)
        self.src, self.dst = format_addrs_ascii(a)
        a["src_addr"] = r["exporter_addr"]
        a["ip_ver"] = np.where(self.exporter, r["exporter_ver"], 0)
        a["flags"] = np.where(self.exporter, B.F_ADDRS, 0)
        self.exp, _ = format_addrs_ascii(a)

    def counter(self, name: str, mask: np.ndarray | None = None) -> IntColumn:
        """A u64 counter as a signed 64-bit integer; NULL beyond it (no real
        count) and where ``mask`` is False."""
        v = self.r[name]
        ok = v <= _I64_MAX
        return IntColumn(v.astype(np.int64), ok if mask is None else ok & mask)

    def small(self, name: str, mask: np.ndarray) -> IntColumn:
        return IntColumn(self.r[name].astype(np.int64), mask)

    def text(self, k: int) -> TextColumn:
        """Field k of the batch's per-record texts (uid, history, state:
        Zeek's, as store_rows takes them); NULL where there are none, and
        for an empty uid (k 0)."""
        texts = self.fb.texts
        if texts is None:
            return TextColumn(np.full(self.n, -1, np.int32), _NO_TEXT)
        seen: dict[str, int] = {}
        idx = np.empty(self.n, np.int32)
        for j, t in enumerate(texts):
            v = t[k]
            idx[j] = -1 if v is None or (k == 0 and not v) else seen.setdefault(v, len(seen))
        return TextColumn(idx, TextTable(list(seen)))


def _app(c: _FlowCtx) -> TextColumn:
    idx = c.r["app_idx"]
    strings = c.fb.strings
    uniq = np.unique(idx[idx >= 0])
    pos = np.full(len(strings) + 1, -1, np.int32)  # [-1]: none
    pos[uniq] = np.arange(len(uniq), dtype=np.int32)
    return TextColumn(pos[idx], TextTable([strings[i] for i in uniq.tolist()]))


_FLOW_BUILDERS = {
    "flow_id": lambda c: IntColumn(c.r["flow_id"].view(np.int64), c.r["flow_id"] != 0),
    "event_type": lambda c: TextColumn(np.where(c.bi, 0, 1), _EVENT_TYPES),
    "src_ip": lambda c: AsciiColumn(c.src, c.addrs),
    "src_port": lambda c: c.small("src_port", c.ports),
    "dest_ip": lambda c: AsciiColumn(c.dst, c.addrs),
    "dest_port": lambda c: c.small("dst_port", c.ports),
    "proto": lambda c: TextColumn(np.where(c.proto, c.r["proto"], -1), _PROTO_TABLE),
    "app_proto": _app,
    "start": lambda c: AsciiColumn(format_times_ascii(c.r["start_us"])),
    "end": lambda c: AsciiColumn(format_times_ascii(c.r["end_us"])),
    "start_us": lambda c: IntColumn(c.r["start_us"]),
    "end_us": lambda c: IntColumn(c.r["end_us"]),
    "pkts_toserver": lambda c: c.counter("pkts"),
    "pkts_toclient": lambda c: c.counter("pkts_rev", c.bi),
    "bytes_toserver": lambda c: c.counter("bytes"),
    "bytes_toclient": lambda c: c.counter("bytes_rev", c.bi),
    "state": lambda c: c.text(2),
    "reason": lambda c: TextColumn(c.r["end_reason"].astype(np.int32), _REASON_TABLE),
    "alerted": lambda c: IntColumn(np.zeros(c.n, np.int64), np.zeros(c.n, bool)),
    "sensor": lambda c: TextColumn(np.zeros(c.n, np.int32), TextTable([c.sensor])),
    "tuple_key": lambda c: _nonzero(record_tuple_keys(c.r)),
    "source": lambda c: TextColumn(c.r["source"].astype(np.int32), _FLOW_SOURCE_TABLE),
    "ip_proto": lambda c: c.small("proto", c.proto),
    "ip_ver": lambda c: c.small("ip_ver", c.addrs),
    "icmp_type": lambda c: c.small("src_port", c.icmp),
    "icmp_code": lambda c: c.small("dst_port", c.icmp),
    "vlan": lambda c: c.small("vlan", c.vlan),
    "tcp_flags": lambda c: c.small("tcp_flags", c.tcp),
    "tcp_flags_rev": lambda c: c.small("tcp_flags_rev", c.tcp & c.bi),
    "exporter": lambda c: AsciiColumn(c.exp, c.exporter),
    "obs_domain": lambda c: c.small("domain", np.isin(c.r["source"], _NETFLOW_SOURCES)),
    "sampling": lambda c: c.small("sampling", c.r["sampling"] != 0),
    "uid": lambda c: c.text(0),
    "history": lambda c: c.text(1),
}
assert tuple(_FLOW_BUILDERS) == FLOW_COLUMNS, "one builder per flows column, in table order"


def _nonzero(v: np.ndarray) -> IntColumn:
    return IntColumn(v, v != 0)


def flow_record_arrays(fb: FR.FlowBatch, sensor: str) -> list[Column]:
    """The ``flows`` rows of canonical flow records, one column per
    FLOW_COLUMNS entry (what store_rows gives, with the sensor and the
    5-tuple's key), built with numpy.  Text columns hold fixed-width ASCII
    (addresses, times) or index small tables (protocol names, reasons)."""
    c = _FlowCtx(fb, sensor)
    return [build(c) for build in _FLOW_BUILDERS.values()]


def flow_records(item: Enriched) -> FR.FlowBatch | None:
    """The batch's canonical flow records, if it carries any."""
    ev = item.batch.events
    if ev is None or ev.records is None or not len(ev.records):
        return None
    return ev.records


def flow_record_rows(fb: FR.FlowBatch, sensor: str) -> list[tuple]:
    """flow_record_arrays as row tuples (the Python fallback's executemany)."""
    return list(zip(*(c.tolist() for c in flow_record_arrays(fb, sensor)), strict=True))
