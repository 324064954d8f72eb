"""The canonical flow record: one numpy structured dtype for every flow source.

``FLOW_DTYPE`` mirrors ``struct ingest_flow`` in csrc/ingest.h field for
field; ``tests/unit/test_flow_record.py`` checks every offset against the
compiled C struct.  Text (the application name) lives beside the records in
the batch's string table (``app_idx``), as the alert batch's does.

Suricata ``flow``/``netflow`` events map to it with :func:`from_eve_rows`
(the store rows :func:`ingest.eve.flow_row` makes); the NetFlow/IPFIX
decoder (csrc/netflow.c) writes it directly.

Directions: ``pkts``/``bytes``/``tcp_flags`` are src -> dst (Suricata's
"toserver", IPFIX's forward direction); ``*_rev`` are dst -> src
(Suricata's "toclient", the RFC 5103 reverse direction) and valid only with
``FF_BIFLOW``.  A unidirectional record (Suricata ``netflow``, NetFlow v5/v9)
has no reverse counters: NULL in the store, never 0 invented.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..batch import EventBatch

# Flow source kinds (INGEST_FLOW_SRC_*) and their names in the store's ``source`` column.
FLOW_SRC_NONE, FLOW_SRC_EVE, FLOW_SRC_NETFLOW5, FLOW_SRC_NETFLOW9, FLOW_SRC_IPFIX, FLOW_SRC_ZEEK = range(6)
FLOW_SOURCE_NAMES = {
    FLOW_SRC_EVE: "eve",
    FLOW_SRC_NETFLOW5: "netflow5",
    FLOW_SRC_NETFLOW9: "netflow9",
    FLOW_SRC_IPFIX: "ipfix",
    FLOW_SRC_ZEEK: "zeek",
}

# Flags (INGEST_FF_*).
FF_ADDRS = 0x01  #: src_addr / dst_addr are valid
FF_PORTS = 0x02  #: src_port / dst_port are TCP/UDP/SCTP ports
FF_ICMP = 0x04  #: src_port / dst_port hold ICMP type / code
FF_VLAN = 0x08  #: vlan is valid
FF_BIFLOW = 0x10  #: pkts_rev / bytes_rev (/ tcp_flags_rev) are valid
FF_TCP_FLAGS = 0x20  #: tcp_flags (and tcp_flags_rev with FF_BIFLOW) are valid
FF_SAMPLED = 0x40  #: counters were multiplied by the sampling interval
FF_EXPORTER = 0x80  #: exporter_addr is valid

FLOW_DTYPE = np.dtype(
    [
        ("start_us", "<i8"),  # first packet: microseconds since the epoch, UTC
        ("end_us", "<i8"),  # last packet, the same
        ("flow_id", "<u8"),  # engine flow id (EVE flow_id); 0 when none
        ("pkts", "<u8"),  # packets src -> dst
        ("bytes", "<u8"),  # bytes src -> dst
        ("pkts_rev", "<u8"),  # packets dst -> src (FF_BIFLOW)
        ("bytes_rev", "<u8"),
        ("src_addr", "V16"),  # IPv6, or IPv4 as ::ffff:a.b.c.d
        ("dst_addr", "V16"),
        ("exporter_addr", "V16"),  # the exporter (UDP peer), same form (FF_EXPORTER)
        ("domain", "<u4"),  # v9 source id / IPFIX observation domain / v5 engine type<<8|id
        ("sampling", "<u4"),  # 1 in N packets sampled; 0 unknown, 1 none
        ("app_idx", "<i4"),  # application name in FlowBatch.strings, -1 if none
        ("src_port", "<u2"),  # or ICMP type when flags & FF_ICMP
        ("dst_port", "<u2"),  # or ICMP code when flags & FF_ICMP
        ("vlan", "<u2"),  # 802.1Q VLAN id when flags & FF_VLAN
        ("ip_ver", "u1"),  # 0 (no addresses), 4 or 6
        ("proto", "u1"),  # IANA protocol number, 0 if unknown
        ("tcp_flags", "u1"),  # OR of TCP flags src -> dst
        ("tcp_flags_rev", "u1"),  # the same dst -> src
        ("source", "u1"),  # FLOW_SRC_*
        ("flags", "u1"),  # FF_*
        ("exporter_ver", "u1"),  # 0, 4 or 6
        ("end_reason", "u1"),  # IPFIX flowEndReason; 0 unknown
        ("reserved", "V6"),
    ],
    align=True,
)
assert FLOW_DTYPE.itemsize == 136

#: IANA protocol numbers by the names Suricata writes in ``proto`` (and back)
PROTO_NUMBERS = {"ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "AH": 51,
                 "IPv6-ICMP": 58, "SCTP": 132}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}
_ICMP = frozenset({1, 58})

#: the ``flows`` table's columns from Suricata's flow/netflow events, in table order
EVE_COLUMNS = (
    "flow_id", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto",
    "app_proto", "start", "end", "start_us", "end_us", "pkts_toserver", "pkts_toclient",
    "bytes_toserver", "bytes_toclient", "state", "reason", "alerted",
)

#: the ``flows`` table's columns of the canonical record, after Suricata's
#: own (ingest.eve.FLOW_COLUMNS) and ``sensor`` (store schema version 2)
STORE_COLUMNS = ("source", "ip_proto", "ip_ver", "icmp_type", "icmp_code", "vlan", "tcp_flags",
                 "tcp_flags_rev", "exporter", "obs_domain", "sampling",
                 # schema version 4: Zeek's connection uid and history
                 "uid", "history")
#: a flow row as ingest.eve.flow_row and store_rows make it (the store adds
#: ``sensor`` after EVE_COLUMNS)
ROW_COLUMNS = (*EVE_COLUMNS, *STORE_COLUMNS)
_PORTED = frozenset({6, 17, 132})


def empty(n: int) -> np.ndarray:
    """A zeroed flow array of n records with app_idx at -1."""
    arr = np.zeros(n, dtype=FLOW_DTYPE)
    arr["app_idx"] = -1
    return arr


def proto_name(num: int) -> str:
    """The ``proto`` text of the store for an IANA number: Suricata's name
    for the protocols it names, else the number as text (as Suricata does)."""
    return PROTO_NAMES.get(num) or str(num)


def proto_number(text: str | None) -> int | None:
    """The IANA number of a ``proto`` text (a Suricata name or a number), or None."""
    if text is None:
        return None
    n = PROTO_NUMBERS.get(text)
    if n is not None:
        return n
    return int(text) if text.isdigit() and int(text) <= 255 else None


def addr16(text: str | None) -> tuple[bytes, int] | None:
    """An address text as 16 bytes (IPv4 mapped into IPv6) and its version, or None."""
    if text is None:
        return None
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    if a.version == 4:
        return b"\0" * 10 + b"\xff\xff" + a.packed, 4
    return a.packed, 6


@dataclass(eq=False)
class FlowBatch:
    """A batch of canonical flow records and the text they refer to.

    ``records`` is a ``FLOW_DTYPE`` array; ``records["app_idx"]`` indexes
    ``strings`` (-1: none).  ``origin`` names the source (``netflow:udp://...``).
    """

    records: np.ndarray
    strings: list[str] = field(default_factory=list)
    origin: str = ""
    #: per record (engine uid, history, state) text, where the source has them (Zeek)
    texts: list[tuple[str, str | None, str | None]] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, sel: slice | np.ndarray) -> FlowBatch:
        """The records ``sel`` picks (a slice, a bool mask or indices), with
        their texts; the string table is shared."""
        texts = None
        if self.texts is not None:
            texts = self.texts[sel] if isinstance(sel, slice) else [self.texts[i] for i in np.arange(
                len(self.records))[sel].tolist()]
        return FlowBatch(self.records[sel], self.strings, self.origin, texts)

    @staticmethod
    def concat(parts: Sequence[FlowBatch]) -> FlowBatch:
        """Join batches, re-basing app_idx."""
        if len(parts) == 1:
            return parts[0]
        recs = []
        strings: list[str] = []
        texts: list[tuple[str, str | None, str | None]] | None = None
        if any(p.texts is not None for p in parts):
            texts = []
            for p in parts:
                texts.extend(p.texts if p.texts is not None else [("", None, None)] * len(p))
        for p in parts:
            r = p.records
            if strings and p.strings:
                r = r.copy()
                c = r["app_idx"]
                c[c >= 0] += len(strings)
            recs.append(r)
            strings.extend(p.strings)
        origin = parts[0].origin if len({p.origin for p in parts}) == 1 else "*"
        return FlowBatch(np.concatenate(recs) if recs else empty(0), strings, origin, texts)


def from_eve_rows(rows: Sequence[tuple], columns: Sequence[str]) -> FlowBatch:
    """Canonical records for Suricata flow/netflow store rows
    (:func:`ingest.eve.flow_row`, whose names are ``columns``).

    The mapping: flow_id; src_ip/dest_ip (16 bytes, ip_ver); src_port/dest_port,
    or icmp_type/icmp_code for ICMP; proto (Suricata's name or number) as the
    IANA number; start_us/end_us; pkts/bytes_toserver -> pkts/bytes,
    _toclient -> *_rev (``flow`` events are biflows, ``netflow`` events are
    not); vlan; tcp_flags/tcp_flags_rev (Suricata's tcp_flags_ts/_tc);
    app_proto -> app_idx.  A value the row lacks stays 0 with its flag clear."""
    at = {c: i for i, c in enumerate(columns)}
    out = empty(len(rows))
    strings: list[str] = []
    app_at: dict[str, int] = {}
    for j, r in enumerate(rows):
        rec = out[j]
        flags = 0
        rec["flow_id"] = r[at["flow_id"]] & 0xFFFFFFFFFFFFFFFF
        rec["source"] = FLOW_SRC_EVE
        src, dst = addr16(r[at["src_ip"]]), addr16(r[at["dest_ip"]])
        if src is not None and dst is not None and src[1] == dst[1]:
            rec["src_addr"], rec["dst_addr"], rec["ip_ver"] = src[0], dst[0], src[1]
            flags |= FF_ADDRS
        proto = r[at["ip_proto"]]
        if proto is not None:
            rec["proto"] = proto
        sp, dp = r[at["src_port"]], r[at["dest_port"]]
        it, ic = r[at["icmp_type"]], r[at["icmp_code"]]
        if proto in _ICMP and it is not None and 0 <= it < 65536:
            rec["src_port"] = it
            rec["dst_port"] = ic if ic is not None and 0 <= ic < 65536 else 0
            flags |= FF_ICMP
        elif sp is not None and dp is not None and 0 <= sp < 65536 and 0 <= dp < 65536:
            rec["src_port"], rec["dst_port"] = sp, dp
            flags |= FF_PORTS
        for name, col in (("start_us", "start_us"), ("end_us", "end_us")):
            v = r[at[col]]
            if v is not None:
                rec[name] = v
        for name, col in (("pkts", "pkts_toserver"), ("bytes", "bytes_toserver")):
            v = r[at[col]]
            if v is not None and v >= 0:
                rec[name] = v
        pc, bc = r[at["pkts_toclient"]], r[at["bytes_toclient"]]
        if r[at["event_type"]] == "flow" and pc is not None and bc is not None and pc >= 0 and bc >= 0:
            rec["pkts_rev"], rec["bytes_rev"] = pc, bc
            flags |= FF_BIFLOW
        vlan = r[at["vlan"]]
        if vlan is not None:
            rec["vlan"] = vlan
            flags |= FF_VLAN
        tf, tr = r[at["tcp_flags"]], r[at["tcp_flags_rev"]]
        if tf is not None:
            rec["tcp_flags"] = tf
            rec["tcp_flags_rev"] = tr or 0
            flags |= FF_TCP_FLAGS
        app = r[at["app_proto"]]
        if app is not None:
            k = app_at.get(app)
            if k is None:
                k = app_at[app] = len(strings)
                strings.append(app)
            rec["app_idx"] = k
        rec["flags"] = flags
    return FlowBatch(out, strings, "eve")


# ---- store rows and JSON lines of a batch (NetFlow / IPFIX) -------------------

#: IPFIX flowEndReason (IE 136) names
END_REASONS = {1: "idle_timeout", 2: "active_timeout", 3: "end_of_flow", 4: "forced_end",
               5: "lack_of_resources"}


def _texts(batch: FlowBatch) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """src, dst, exporter addresses and start, end times as text, column-wise in C."""
    from .. import batch as B
    from ..render import format_addrs_ascii, format_times_ascii

    r = batch.records
    n = len(r)
    a = B.empty(n)
    has = (r["flags"] & FF_ADDRS) != 0
    a["src_addr"], a["dst_addr"] = r["src_addr"], r["dst_addr"]
    a["ip_ver"] = np.where(has, r["ip_ver"], 0)
    a["flags"] = np.where(has, B.F_ADDRS, 0)
    src, dst = format_addrs_ascii(a)
    e = B.empty(n)
    hasx = (r["flags"] & FF_EXPORTER) != 0
    e["src_addr"] = r["exporter_addr"]
    e["ip_ver"] = np.where(hasx, r["exporter_ver"], 0)
    e["flags"] = np.where(hasx, B.F_ADDRS, 0)
    exp, _ = format_addrs_ascii(e)
    return ([s.decode() for s in src.tolist()], [s.decode() for s in dst.tolist()],
            [s.decode() for s in exp.tolist()],
            [s.decode() for s in format_times_ascii(r["start_us"]).tolist()],
            [s.decode() for s in format_times_ascii(r["end_us"]).tolist()])


def _i64(v: int) -> int | None:
    """A u64 counter as the stores' signed 64-bit integer (None beyond it: a
    counter of 2**63 is no real count, and a store cannot hold it)."""
    return v if v < 1 << 63 else None


def event_types(batch: FlowBatch) -> dict[str, int]:
    """The batch's records by the event_type of their store row and JSON
    line: ``flow`` (a biflow), ``netflow`` (one direction)."""
    k = len(batch.records)
    bi = int(np.count_nonzero(batch.records["flags"] & FF_BIFLOW))
    return {t: c for t, c in (("netflow", k - bi), ("flow", bi)) if c}


def event_batch(batch: FlowBatch) -> EventBatch:
    """The records as the events of an alert batch (ingest.batch.EventBatch
    ``records``; line k is record k): the stores take them column-wise, and
    their JSON lines (:func:`json_lines`) are rendered only when a sink asks."""
    from ..batch import EventBatch

    k = len(batch)
    return EventBatch(None, k, None, event_types(batch), None, batch, np.arange(k, dtype=np.int64),
                      render=lambda: json_lines(batch))


def store_rows(batch: FlowBatch) -> list[tuple]:
    """The ``flows`` rows of a batch, in ROW_COLUMNS order
    (the store adds ``sensor``).  A unidirectional record is event_type
    ``netflow`` (as Suricata's netflow events), a biflow ``flow``; counters
    a record does not carry are NULL; flow_id is NULL without an engine
    flow id; uid, history and state come from ``batch.texts`` (Zeek)."""
    r = batch.records
    if not len(r):
        return []
    src, dst, exp, start, end = _texts(batch)
    cols = {name: r[name].tolist() for name in (
        "flow_id", "start_us", "end_us", "pkts", "bytes", "pkts_rev", "bytes_rev", "domain", "sampling",
        "app_idx", "src_port", "dst_port", "vlan", "ip_ver", "proto", "tcp_flags", "tcp_flags_rev",
        "source", "flags", "end_reason")}
    strings = batch.strings
    texts = batch.texts
    out = []
    for j in range(len(r)):
        uid, history, state = texts[j] if texts is not None else ("", None, None)
        fl = cols["flags"][j]
        addrs = bool(fl & FF_ADDRS)
        ports = bool(fl & FF_PORTS)
        icmp = bool(fl & FF_ICMP)
        bi = bool(fl & FF_BIFLOW)
        tcp = bool(fl & FF_TCP_FLAGS)
        proto = cols["proto"][j]
        app = cols["app_idx"][j]
        fid = cols["flow_id"][j]
        out.append((
            (fid - (1 << 64) if fid >= 1 << 63 else fid) if fid else None,
            "flow" if bi else "netflow",
            src[j] if addrs else None, cols["src_port"][j] if ports else None,
            dst[j] if addrs else None, cols["dst_port"][j] if ports else None,
            proto_name(proto) if proto else None,
            strings[app] if app >= 0 else None,
            start[j], end[j], cols["start_us"][j], cols["end_us"][j],
            _i64(cols["pkts"][j]), _i64(cols["pkts_rev"][j]) if bi else None,
            _i64(cols["bytes"][j]), _i64(cols["bytes_rev"][j]) if bi else None,
            state, END_REASONS.get(cols["end_reason"][j]), None,
            FLOW_SOURCE_NAMES.get(cols["source"][j]), proto if proto else None,
            cols["ip_ver"][j] if addrs else None,
            cols["src_port"][j] if icmp else None, cols["dst_port"][j] if icmp else None,
            cols["vlan"][j] if fl & FF_VLAN else None,
            cols["tcp_flags"][j] if tcp else None,
            cols["tcp_flags_rev"][j] if tcp and bi else None,
            exp[j] if fl & FF_EXPORTER else None,
            cols["domain"][j] if cols["source"][j] in (FLOW_SRC_NETFLOW5, FLOW_SRC_NETFLOW9, FLOW_SRC_IPFIX) else None,
            cols["sampling"][j] or None,
            uid or None, history,
        ))
    return out


def json_lines(batch: FlowBatch, rows: list[tuple] | None = None) -> bytes:
    """One JSON object per record, newline-terminated, shaped as Suricata's
    ``netflow``/``flow`` events (so EVE readers take them) with the exporter
    in an ``exporter`` member."""
    import orjson

    rows = store_rows(batch) if rows is None else rows
    at = {c: i for i, c in enumerate(ROW_COLUMNS)}
    out = []
    for row in rows:
        g = row.__getitem__
        et = g(at["event_type"])
        obj: dict = {"timestamp": g(at["end"]), "event_type": et}
        if g(at["uid"]) is not None:
            obj["uid"] = g(at["uid"])
        for key, col in (("src_ip", "src_ip"), ("src_port", "src_port"), ("dest_ip", "dest_ip"),
                         ("dest_port", "dest_port"), ("proto", "proto"), ("icmp_type", "icmp_type"),
                         ("icmp_code", "icmp_code"), ("app_proto", "app_proto")):
            v = g(at[col])
            if v is not None:
                obj[key] = v
        if g(at["vlan"]) is not None:
            obj["vlan"] = [g(at["vlan"])]
        body: dict = {"start": g(at["start"]), "end": g(at["end"])}
        if et == "flow":
            body.update(pkts_toserver=g(at["pkts_toserver"]), pkts_toclient=g(at["pkts_toclient"]),
                        bytes_toserver=g(at["bytes_toserver"]), bytes_toclient=g(at["bytes_toclient"]))
        else:
            body.update(pkts=g(at["pkts_toserver"]), bytes=g(at["bytes_toserver"]))
        if g(at["reason"]) is not None:
            body["reason"] = g(at["reason"])
        if g(at["state"]) is not None:
            body["state"] = g(at["state"])
        if g(at["history"]) is not None:
            body["history"] = g(at["history"])
        obj[et] = body
        if g(at["tcp_flags"]) is not None:
            tcp = {"tcp_flags": f"{g(at['tcp_flags']):02x}"}
            if g(at["tcp_flags_rev"]) is not None:
                tcp["tcp_flags_ts"] = tcp["tcp_flags"]
                tcp["tcp_flags_tc"] = f"{g(at['tcp_flags_rev']):02x}"
            obj["tcp"] = tcp
        exp = {"source": g(at["source"])}
        for key in ("exporter", "obs_domain", "sampling"):
            if g(at[key]) is not None:
                exp[key] = g(at[key])
        obj["exporter"] = exp
        out.append(orjson.dumps(obj))
    return b"\n".join(out) + b"\n" if out else b""
