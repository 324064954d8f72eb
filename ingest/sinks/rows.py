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

import numpy as np

from .. import batch as B
from ..eve import FLOW_COLUMNS as _EVE_FLOW_COLUMNS
from ..mapping import Enriched
from ..render import format_addrs
from ..strings import Strings

#: the ``alerts`` columns a row carries, in table order (``id`` is the store's)
ALERT_COLUMNS = (
    "ts_us", "timestamp", "source", "sensor_id", "event_id", "gid", "sid", "rev", "class_id",
    "category", "priority", "action", "proto", "ip_ver", "src_ip", "src_port", "dest_ip",
    "dest_port", "icmp_type", "icmp_code", "vlan", "flow_id", "app_name", "replay_key", "sensor",
)
#: which ALERT_COLUMNS hold text (the others integers)
ALERT_TEXT = frozenset({"timestamp", "source", "category", "action", "src_ip", "dest_ip", "app_name",
                        "sensor"})
SIGNATURE_COLUMNS = ("gid", "sid", "rev", "msg", "refs")
#: the ``flows`` columns a row carries (``id`` is the store's): EVE's, then sensor
FLOW_COLUMNS = (*_EVE_FLOW_COLUMNS, "sensor")
FLOW_TEXT = frozenset({"event_type", "src_ip", "dest_ip", "proto", "app_proto", "start", "end",
                       "state", "reason", "sensor"})
_FLOW_TEXT_AT = tuple(i for i, c in enumerate(_EVE_FLOW_COLUMNS) if c in FLOW_TEXT)

_SOURCE = np.array([B.SOURCE_NAMES.get(i, "unknown") for i in range(256)], dtype=object)
_ACTION = np.array([B.ACTION_NAMES.get(i) for i in range(256)], dtype=object)


def _clean(text: str) -> str:
    return text.replace("\0", "\ufffd") if "\0" in text else text


def _masked(values: np.ndarray, mask: np.ndarray) -> list:
    """values as Python ints/strs, None where mask is False (SQL NULL)."""
    out = values.astype(object)
    out[~mask] = None
    return out.tolist()  # type: ignore[no-any-return]


def texts(strings: Strings, idx: np.ndarray) -> list[str | None]:
    """``strings[i]`` for every i of idx (None where i < 0), NUL-free; each
    distinct text is decoded and checked once."""
    idx = np.asarray(idx)
    if isinstance(strings, list):
        table = np.empty(len(strings) + 1, dtype=object)  # [-1] is the trailing None
        table[:-1] = [_clean(s) for s in strings]
        return table[idx].tolist()  # type: ignore[no-any-return]
    uniq, inv = np.unique(idx, return_inverse=True)
    table = np.empty(len(uniq) + 1, dtype=object)
    table[:-1] = [_clean(strings[i]) if i >= 0 else None for i in uniq.tolist()]
    return table[inv.reshape(-1)].tolist()  # type: ignore[no-any-return]


def sensor_of(item: Enriched, default: str) -> str:
    """The sensor of item's rows: the batch's, else the sink's own."""
    return item.batch.sensor or default


def alert_columns(item: Enriched, sensor: str) -> list[list]:
    """One list per ALERT_COLUMNS entry, one value per alert (None is NULL).

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
    src, dst = format_addrs(a)
    ts = a["ts_us"]
    iso = np.char.add(np.datetime_as_string(ts.astype("datetime64[us]"), unit="us"), "+0000")
    cats = item.categories if item.categories is not None else np.full(n, -1, np.int32)
    flow = a["flow_id"].view(np.int64)  # SQL integers are signed 64-bit
    keys = item.batch.keys
    return [
        ts.tolist(),
        iso.tolist(),
        _SOURCE[a["source"]].tolist(),
        a["sensor_id"].tolist(),
        a["event_id"].tolist(),
        a["gid"].tolist(),
        a["sid"].tolist(),
        a["rev"].tolist(),
        a["class_id"].tolist(),
        texts(strings, cats),
        a["priority"].tolist(),
        _ACTION[a["action"]].tolist(),
        _masked(a["proto"], addrs),
        _masked(a["ip_ver"], addrs),
        _masked(src, addrs),
        _masked(a["src_port"], ports),
        _masked(dst, addrs),
        _masked(a["dst_port"], ports),
        _masked(a["src_port"], icmp),
        _masked(a["dst_port"], icmp),
        _masked(a["vlan"], (flags & B.F_VLAN) != 0),
        _masked(flow, flow != 0),
        texts(strings, a["app_idx"]),
        [None] * n if keys is None else _masked(keys, keys != 0),
        [sensor] * n,
    ]


def alert_rows(item: Enriched, sensor: str) -> list[tuple]:
    """alert_columns as row tuples (what ``executemany`` takes)."""
    return list(zip(*alert_columns(item, sensor), strict=True))


def signature_rows(item: Enriched) -> list[tuple]:
    """One (gid, sid, rev, msg, refs) per distinct signature of the batch
    that has a message; refs is the JSON array of its references or None."""
    a = item.batch.alerts
    strings = item.strings
    has_msg = a["msg_idx"] >= 0
    if not has_msg.any():
        return []
    keyed = a[["gid", "sid", "rev", "msg_idx"]][has_msg]
    _, first = np.unique(keyed[["gid", "sid", "rev"]], return_index=True)
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
    for r in ev.flows:  # already one Python tuple per flow event (ingest.eve.flow_row)
        if any(type(r[i]) is str and "\0" in r[i] for i in at):
            r = tuple(_clean(v) if type(v) is str else v for v in r)
        out.append((*r, sensor))
    return out
