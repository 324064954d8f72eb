"""``ingest gen --kind unified2``: write a Unified2 spool as Snort does.

Files ``PREFIX.<unix-time>`` in the prefix's directory, rotated after
``rotate_events`` events or ``rotate_bytes`` bytes (Snort's ``limit``), each
event written as a v2 event record (104 IPv4 / 105 IPv6, FORMATS.md 4.3)
followed by its packet record (2), big-endian, appended and flushed in small
groups so a follower sees whole and partial records as it would with Snort.

This is file I/O, not a socket loop, so it is plain Python (the records of
each template are packed once; per event only the ids and times change).
"""

from __future__ import annotations

import ipaddress
import os
import struct
import time
from dataclasses import dataclass, field

from .templates import AlertSpec

EVENT_V4, EVENT_V6, PACKET = 104, 105, 2
FLUSH_EVENTS = 64  # events appended per write (Snort writes record by record)


@dataclass
class SpoolResult:
    files: list[str] = field(default_factory=list)
    events: int = 0
    packets: int = 0
    bytes: int = 0
    elapsed: float = 0.0

    def as_dict(self) -> dict:
        return {"files": self.files, "events": self.events, "packets": self.packets,
                "bytes": self.bytes, "elapsed_s": round(self.elapsed, 6)}


def _event_body(spec: AlertSpec) -> tuple[int, bytearray]:
    """Record type and body with event_id/time zero (patched per event)."""
    head = struct.pack(">9I", 0, 0, 0, 0, spec.sid, spec.gid, spec.rev, spec.class_id,
                       spec.priority)
    v6 = spec.ip_ver == 6
    if spec.ip_ver and spec.src and spec.dst:
        src = ipaddress.ip_address(spec.src).packed
        dst = ipaddress.ip_address(spec.dst).packed
    else:  # no packet: Snort still writes the event, with zero addresses
        src = dst = b"\0" * (16 if v6 else 4)
    tail = struct.pack(">HHBBBB", spec.sport, spec.dport, spec.proto, 0, 0, 0)
    tail += struct.pack(">IHH", 0, spec.vlan or 0, 0)  # mpls, vlan, policy
    return (EVENT_V6 if v6 else EVENT_V4), bytearray(head + src + dst + tail)


def _newest_suffix(prefix: str) -> int:
    """The largest <digits> of the PREFIX.<digits> files already there (-1: none)."""
    d, base = os.path.split(os.path.abspath(prefix))
    tail = [n[len(base) + 1:] for n in os.listdir(d) if n.startswith(base + ".")]
    return max((int(t) for t in tail if t.isascii() and t.isdigit()), default=-1)


def write_spool(prefix: str, specs: list[AlertSpec], count: int, *, rate: float = 0.0,
                rotate_events: int = 0, rotate_bytes: int = 128 << 20,
                time_limit: float = 0.0, clock: str = "send") -> SpoolResult:
    """Write count events (cycling specs) to the spool DIR/PREFIX.  clock
    "send": each event (and its packet) carries the time it was written, as
    Snort stamps an event when it logs it; "template": the spec's own time."""
    if not specs:
        raise ValueError("no templates")
    if clock not in ("send", "template"):
        raise ValueError(f"unknown clock {clock!r}; send or template")
    d = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(d):
        raise ValueError(f"directory {d} does not exist")
    bodies = [_event_body(s) for s in specs]
    res = SpoolResult()
    start = time.monotonic()
    # After every file already in the spool: a follower reads in suffix order,
    # and an earlier run (in the same second, or rotating faster than one
    # file a second) may hold names at or past now.
    suffix = max(int(time.time()), _newest_suffix(prefix) + 1) - 1
    f = None
    in_file = file_bytes = 0
    buf = bytearray()

    def open_next():
        nonlocal f, suffix, in_file, file_bytes
        if f is not None:
            f.write(buf)
            buf.clear()
            f.close()
        suffix = max(suffix + 1, int(time.time()))  # unique, increasing, like Snort's stamps
        while True:
            path = f"{prefix}.{suffix}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o640)
                break
            except FileExistsError:  # another writer took it meanwhile: never overwrite
                suffix += 1
        f = os.fdopen(fd, "wb", buffering=0)
        res.files.append(path)
        in_file = file_bytes = 0

    open_next()
    assert f is not None
    try:
        for i in range(count):
            if time_limit and time.monotonic() - start > time_limit:
                break
            if rate:
                wait = start + i / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            rtype, body = bodies[i % len(bodies)]
            spec = specs[i % len(specs)]
            event_id = i + 1
            if clock == "send":
                sec, usec = divmod(time.time_ns() // 1000, 1_000_000)
            else:
                sec, usec = spec.ts_sec, spec.ts_usec
            struct.pack_into(">III", body, 4, event_id, sec, usec)
            rec = struct.pack(">II", rtype, len(body)) + body
            if spec.packet is not None:
                pkt = struct.pack(">7I", 0, event_id, sec, sec, usec, 1, len(spec.packet)) + spec.packet
                rec += struct.pack(">II", PACKET, len(pkt)) + pkt
                res.packets += 1
            if (rotate_events and in_file >= rotate_events) or (
                    in_file and file_bytes + len(rec) > rotate_bytes):
                open_next()
            buf += rec
            in_file += 1
            file_bytes += len(rec)
            res.events += 1
            res.bytes += len(rec)
            if in_file % FLUSH_EVENTS == 0 or rate:
                f.write(buf)
                buf.clear()
    finally:
        if f is not None:
            f.write(buf)
            f.close()
    res.elapsed = time.monotonic() - start
    return res
