"""Every engine's alerts linked to the flow they belong to.

An alert is linked to a flow (``alerts.flow_ref`` = ``flows.id``) when both
have the same **normalised 5-tuple** -- protocol and the two endpoints
(address, port) in either direction; ICMP's type/code are not part of it --
the same **VLAN**, and the alert's time falls in the flow's ``[start_us -
slack, end_us + slack]`` (``--correlate-slack``, default
:data:`DEFAULT_SLACK_S` seconds).

The VLAN rule (:func:`vlan_match`): an alert that carries a VLAN id (EVE
``vlan``, the first of Suricata's list; Unified2's event v2 ``vlanId``; the
802.1Q tag of a Snort/Barnyard2 alert's packet) matches only flows of that
VLAN, or flows that carry none; an alert without one matches flows of any
VLAN, as before.  So two flows that differ only by VLAN are told apart
whenever both sides say which, and a source that cannot say (NetFlow v5,
a packetless alert) still correlates.
Among several flows that match, the one of the same engine flow id on the
same sensor comes first (a Suricata alert and its own ``flow`` event), then
the flow whose start is closest to the alert's time, then the older row.  A
flow of any sensor may match: the exporter of a flow is often another box
than the IDS.  The VLAN is compared beside the key, not hashed into it
(a side without one must still match).

The 5-tuple is reduced to one signed 64-bit key (:func:`tuple_keys`), kept
on both tables (``tuple_key``) and indexed with the time
(``alerts (tuple_key, ts_us)``, ``flows (tuple_key, start_us)``).  Each
batch, in its own transaction, its flows go in first, then:

1. each of the batch's new alerts is linked to its best flow
   (:func:`best_flow`: one range of the flows index).  SQLite chooses it in
   the alert's own INSERT (``flow_ref`` is the subquery over the row's
   values: one write of the alert) -- or, with its C writer, in memory
   among the recent NetFlow/IPFIX flows when no other stored flow can
   match (ingest.flows.recent: the subquery runs only for the others);
   PostgreSQL, whose alerts arrive by COPY, in :func:`statements` after
   the rows are in;
2. the alerts already stored inside the window of one of the batch's new
   flows (a NetFlow exporter reports a flow at its end: the flow usually
   arrives *after* its alerts) are linked again to their best flow
   (:func:`statements`; only the links that change are written) -- an
   index range per new flow, never a scan.

Per flow, ``alert_count`` and ``top_priority`` (the lowest priority number
of its alerts: 1 is the highest) are the ``flows_v`` view's columns,
counted when asked from the ``alerts (flow_ref)`` index
(:data:`FLOW_AGGREGATES`).  Until schema version 5 they were columns of
``flows`` rewritten in every batch's transaction: a flow row and its page
written again for each alert linked to it, the larger part of what linking
cost (BENCHMARKS.md, "Correlation with 1 M flows in the store").

The work per new record is a few index lookups: O(log n) plus the alerts or
flows that share its 5-tuple in the window.  The store's indexes are the
state; the only memory kept between batches is the SQLite C writer's
recent flows (ingest.flows.recent: 10 MiB of flows and an 8 MiB filter, a
shortcut that gives the store's own answer).  Rows stored before
schema version 2 have no key and are never linked.  Two distinct 5-tuples
share a key with probability 2^-63 per pair.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np

from .. import batch as B

#: default --correlate-slack, seconds
DEFAULT_SLACK_S = 5.0

#: IANA protocol numbers of the names Suricata writes in a flow's "proto"
PROTO_NUMBERS = {"ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "AH": 51,
                 "IPV6-ICMP": 58, "ICMPV6": 58, "SCTP": 132, "UDPLITE": 136}
_ICMP = (1, 58)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise (uint64, wrapping)."""
    h = (h ^ (h >> np.uint64(30))) * _M2
    h = (h ^ (h >> np.uint64(27))) * _M3
    return h ^ (h >> np.uint64(31))  # type: ignore[no-any-return]


def tuple_keys(addr_a: np.ndarray, port_a: np.ndarray, addr_b: np.ndarray, port_b: np.ndarray,
               proto: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The normalised 5-tuple of each row as a non-zero int63 (0 where not
    ``valid``).  ``addr_*``: (n, 16) uint8, IPv6 or IPv4 as ::ffff:a.b.c.d;
    ports uint16 (ignored for ICMP); proto uint8.  The two endpoints are
    ordered (address bytes, then port), so both directions give one key."""
    n = len(proto)
    a = np.ascontiguousarray(addr_a, dtype=np.uint8).reshape(n, 16)
    b = np.ascontiguousarray(addr_b, dtype=np.uint8).reshape(n, 16)
    proto = np.asarray(proto, dtype=np.uint64)
    icmp = np.isin(proto, _ICMP)
    pa = np.where(icmp, 0, np.asarray(port_a, dtype=np.uint64))
    pb = np.where(icmp, 0, np.asarray(port_b, dtype=np.uint64))
    # endpoint order: compare the addresses as big-endian byte strings, then ports
    ka, kb = a.view(">u8").reshape(n, 2).astype(np.uint64), b.view(">u8").reshape(n, 2).astype(np.uint64)
    a_first = ((ka[:, 0] < kb[:, 0]) | ((ka[:, 0] == kb[:, 0]) & (ka[:, 1] < kb[:, 1]))
               | ((ka[:, 0] == kb[:, 0]) & (ka[:, 1] == kb[:, 1]) & (pa <= pb)))
    lo = np.where(a_first[:, None], ka, kb)
    hi = np.where(a_first[:, None], kb, ka)
    plo, phi = np.where(a_first, pa, pb), np.where(a_first, pb, pa)
    with np.errstate(over="ignore"):
        h = _mix(proto * _M1 + ((plo << np.uint64(16)) | phi))
        for w in (lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]):
            h = _mix(h ^ w)
    key = (h >> np.uint64(1)).astype(np.int64)
    key[key == 0] = 1
    key[~np.asarray(valid, dtype=bool)] = 0
    return key


def alert_tuple_keys(alerts: np.ndarray) -> np.ndarray:
    """tuple_keys of a batch of canonical alerts (0: no addresses), in C
    (csrc/hash.c: the same keys as :func:`alert_tuple_keys_numpy`, a
    fifth of its time; every SQL store computes them for every alert)."""
    from .._native import ffi, lib

    a = np.ascontiguousarray(alerts, dtype=B.ALERT_DTYPE)
    out = np.empty(len(a), np.int64)
    if len(a):
        got = lib.ingest_alert_tuple_keys(ffi.from_buffer("struct ingest_alert[]", a), len(a),
                                          ffi.from_buffer("int64_t[]", out, require_writable=True))
        if got != len(a):
            raise ValueError(f"ingest_alert_tuple_keys failed ({got})")
    return out


def alert_tuple_keys_numpy(alerts: np.ndarray) -> np.ndarray:
    """:func:`alert_tuple_keys` with numpy: the definition (tuple_keys, as
    for flows) the C version is tested against."""
    flags = alerts["flags"]
    n = len(alerts)
    src = np.ascontiguousarray(alerts["src_addr"]).view(np.uint8).reshape(n, 16).copy()
    dst = np.ascontiguousarray(alerts["dst_addr"]).view(np.uint8).reshape(n, 16).copy()
    v4 = alerts["ip_ver"] == 4  # an IPv4 address is its last 4 bytes: the prefix is ::ffff:, whatever was there
    for a in (src, dst):
        a[v4, :10] = 0
        a[v4, 10:12] = 0xFF
    ports = (flags & B.F_PORTS) != 0  # else the port fields hold nothing (or ICMP's type/code)
    return tuple_keys(src, np.where(ports, alerts["src_port"], 0), dst, np.where(ports, alerts["dst_port"], 0),
                      alerts["proto"],
                      (flags & B.F_ADDRS) != 0)


def record_tuple_keys(records: np.ndarray) -> np.ndarray:
    """tuple_keys of canonical flow records (ingest.flows.record.FLOW_DTYPE):
    0 where a record has no addresses or no protocol.  The same keys as
    :func:`flow_tuple_keys` of the record's store row, without the texts."""
    from .record import FF_ADDRS, FF_PORTS

    n = len(records)
    flags = records["flags"]
    ports = (flags & FF_PORTS) != 0
    a = np.ascontiguousarray(records["src_addr"]).view(np.uint8).reshape(n, 16)
    b = np.ascontiguousarray(records["dst_addr"]).view(np.uint8).reshape(n, 16)
    return tuple_keys(a, np.where(ports, records["src_port"], 0), b, np.where(ports, records["dst_port"], 0),
                      records["proto"], ((flags & FF_ADDRS) != 0) & (records["proto"] != 0))


def _addr16(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return (ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed)


def _proto(value: object) -> int | None:
    if isinstance(value, int):
        return value if 0 <= value <= 255 else None
    if isinstance(value, str):
        if value.isdigit():
            n = int(value)
            return n if n <= 255 else None
        return PROTO_NUMBERS.get(value.upper())
    return None


def _port(value: object) -> int:
    return value if isinstance(value, int) and 0 <= value <= 0xFFFF else 0


def flow_tuple_keys(src_ip: Sequence, src_port: Sequence, dest_ip: Sequence, dest_port: Sequence,
                    proto: Sequence) -> list[int | None]:
    """tuple_keys of flow rows given as texts (EVE ``flow`` events: addresses
    as text, proto as Suricata's name or number): None where a row has no
    usable addresses or protocol."""
    n = len(src_ip)
    a = np.zeros((n, 16), np.uint8)
    b = np.zeros((n, 16), np.uint8)
    pr = np.zeros(n, np.uint8)
    ok = np.zeros(n, bool)
    for i in range(n):
        x, y, p = _addr16(src_ip[i]), _addr16(dest_ip[i]), _proto(proto[i])
        if x is None or y is None or p is None:
            continue
        a[i] = np.frombuffer(x, np.uint8)
        b[i] = np.frombuffer(y, np.uint8)
        pr[i] = p
        ok[i] = True
    pa = np.fromiter((_port(v) for v in src_port), np.uint64, n)
    pb = np.fromiter((_port(v) for v in dest_port), np.uint64, n)
    keys = tuple_keys(a, pa, b, pb, pr, ok)
    return [int(k) if k else None for k in keys.tolist()]


def vlan_match(alert: str, flow: str) -> str:
    """The VLAN rule as SQL: an alert and a flow that both carry a VLAN id
    match only when it is the same; either without one (NULL: the source
    did not say) matches any."""
    return f"({alert}.vlan IS NULL OR {flow}.vlan IS NULL OR {alert}.vlan = {flow}.vlan)"


def _match(alert: dict[str, str], s: int) -> tuple[str, str]:
    """The rules over ``flows f`` as SQL: (the WHERE terms, the ORDER BY)."""
    ts, key, vlan, fid, sensor = (alert[c] for c in ("ts_us", "tuple_key", "vlan", "flow_id", "sensor"))
    return (f"f.tuple_key = {key} AND f.start_us <= {ts} + {s} AND coalesce(f.end_us, f.start_us) >= {ts} - {s} "
            f"AND ({vlan} IS NULL OR f.vlan IS NULL OR f.vlan = {vlan})",
            f"CASE WHEN f.flow_id = {fid} AND f.sensor = {sensor} THEN 0 ELSE 1 END, abs(f.start_us - {ts}), f.id")


def best_flow(alert: dict[str, str], *, slack_us: int) -> str:
    """The best flow's id for one alert, as a scalar subquery: ``alert``
    names the SQL values of the alert's ``ts_us``, ``tuple_key``, ``vlan``,
    ``flow_id`` and ``sensor`` (the parameters of its INSERT; SQLite cannot
    order a subquery by an outer query's columns, :func:`statements` joins
    the alert instead).  One range of the ``flows (tuple_key, start_us)``
    index."""
    where, order = _match(alert, int(slack_us))
    return f"SELECT f.id FROM flows f WHERE {where} ORDER BY {order} LIMIT 1"


#: the ``flows_v`` view's two columns, counted when asked from the
#: ``alerts (flow_ref)`` index (schema version 5: no longer stored in flows)
FLOW_AGGREGATES = ("(SELECT count(*) FROM alerts a WHERE a.flow_ref = f.id) AS alert_count, "
                   "(SELECT min(a.priority) FROM alerts a WHERE a.flow_ref = f.id) AS top_priority")


def dedupe_flows(*, flows_after: int) -> str:
    """A flow seen again replaces its row (the unique key (sensor, flow_id,
    event_type, src_ip, src_port); INSERT OR REPLACE / ON CONFLICT DO
    UPDATE).  A flow without ports (ICMP, an unknown transport) has
    src_port NULL, and NULLs never conflict in a unique key, so an engine
    flow seen twice -- a Suricata or Zeek ICMP flow read again after a
    crash between commit and bookmark -- would be stored twice.  Such rows
    are made unique here, the newest winning as the key gives for the
    others: an index range per new row of the batch (the flows key's index,
    src_port IS NULL).  The alerts of a removed row are in the new row's
    window: :func:`statements` relinks them.  NetFlow/IPFIX rows (flow_id
    NULL) have no key and add up.  Run after the batch's flows are in."""
    lf = int(flows_after)
    return ("DELETE FROM flows WHERE id IN (SELECT o.id FROM flows n JOIN flows o "
            "ON o.sensor = n.sensor AND o.flow_id = n.flow_id AND o.event_type = n.event_type "
            "AND o.src_ip = n.src_ip AND o.src_port IS NULL AND o.id < n.id "
            f"WHERE n.id > {lf} AND n.src_port IS NULL AND n.flow_id IS NOT NULL AND n.src_ip IS NOT NULL)")


def statements(*, postgresql: bool, slack_us: int, alerts_after: int, flows_after: int,
               new_alerts: bool = True) -> list[str]:
    """The correlation of one batch, to run in its transaction after its
    rows are in and :func:`dedupe_flows` has run: ``alerts_after``/
    ``flows_after`` are the largest ids the tables had before (every id
    above is the batch's).  ``new_alerts``: the batch's own alerts are to
    be linked here (PostgreSQL's, written by COPY); False when their INSERT
    chose their flow already (SQLite: :func:`best_flow` as the INSERT's
    ``flow_ref`` value, with the batch's flows in first), so only the
    stored alerts in the window of a new flow are looked at.  All values
    are integers formatted in (no parameters: the SQLite C writer runs them
    as they are).  Only alerts whose link changes are written."""
    s, la, lf = int(slack_us), int(alerts_after), int(flows_after)
    if postgresql:
        temp = "CREATE TEMP TABLE IF NOT EXISTS {t} ON COMMIT DELETE ROWS"
        ins, tail = "INSERT INTO", " ON CONFLICT DO NOTHING"
    else:
        temp = "CREATE TEMP TABLE IF NOT EXISTS {t}"
        ins, tail = "INSERT OR IGNORE INTO", ""
    where, order = _match({c: f"a.{c}" for c in ("ts_us", "tuple_key", "vlan", "flow_id", "sensor")}, s)
    best = f"SELECT f.id FROM alerts a JOIN flows f ON {where} WHERE a.id = ingest_relink.id ORDER BY {order} LIMIT 1"
    old = "" if new_alerts else f" AND a.id <= {la}"
    out = [
        temp.format(t="ingest_relink (id bigint PRIMARY KEY, ref bigint)"),
        # candidates: stored alerts inside a new flow's window (a late flow)
        f"{ins} ingest_relink (id) SELECT a.id FROM flows nf JOIN alerts a ON a.tuple_key = nf.tuple_key "
        f"AND a.ts_us BETWEEN nf.start_us - {s} AND coalesce(nf.end_us, nf.start_us) + {s} "
        f"AND {vlan_match('a', 'nf')}{old} "
        f"WHERE nf.id > {lf} AND nf.tuple_key IS NOT NULL AND nf.start_us IS NOT NULL{tail}",
    ]
    if new_alerts:
        # and the batch's own alerts (while any flow has a key at all: a
        # store of Snort alerts only pays one index probe per batch)
        out.append(f"{ins} ingest_relink (id) SELECT id FROM alerts WHERE id > {la} AND tuple_key IS NOT NULL "
                   f"AND EXISTS (SELECT 1 FROM flows WHERE tuple_key IS NOT NULL){tail}")
    return [
        *out,
        f"UPDATE ingest_relink SET ref = ({best})",
        # only the links that change
        "UPDATE alerts SET flow_ref = (SELECT r.ref FROM ingest_relink r WHERE r.id = alerts.id) "
        "WHERE id IN (SELECT ingest_relink.id FROM ingest_relink JOIN alerts a ON a.id = ingest_relink.id "
        "WHERE coalesce(ingest_relink.ref, 0) <> coalesce(a.flow_ref, 0))",
        "DELETE FROM ingest_relink",
    ]


def slack_us(seconds: float) -> int:
    """--correlate-slack in microseconds."""
    return int(round(seconds * 1e6))
