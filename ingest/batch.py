"""The canonical alert batch: one numpy structured dtype for every input.

``ALERT_DTYPE`` mirrors ``struct ingest_alert`` in csrc/ingest.h field for
field; ``tests/unit/test_batch.py`` checks every offset against the compiled
C struct, so a field moved by mistake fails a test instead of corrupting data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .strings import StringPool as StringPool  # re-exported: B.StringPool
from .strings import Strings
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
    object written verbatim instead of rendering the alert (lossless EVE).
    """

    alerts: np.ndarray
    strings: Strings = field(default_factory=list)
    origin: str = ""
    acks: list = field(default_factory=list)
    extra: np.ndarray | None = None
    raw: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.alerts)

    @staticmethod
    def concat(batches: list[AlertBatch]) -> AlertBatch:
        """Join batches into one, re-basing string indices (vectorised)."""
        if len(batches) == 1:
            return batches[0]
        parts = []
        acks: list = []
        side: dict[str, list[np.ndarray]] = {"extra": [], "raw": []}
        want = {name: any(getattr(b, name) is not None for b in batches) for name in side}
        base = 0
        for b in batches:
            a = b.alerts
            if len(b.strings) and base:
                a = a.copy()
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
        return AlertBatch(
            np.concatenate(parts), concat_strings([b.strings for b in batches]), origin, acks,
            np.concatenate(side["extra"]) if want["extra"] else None,
            np.concatenate(side["raw"]) if want["raw"] else None,
        )
