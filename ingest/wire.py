"""The NATS wire: how a sensor's batches travel through JetStream to collectors.

Written by the sensor's ``nats://`` sink (:mod:`ingest.sinks.nats`), read by
``ingest collect`` (:mod:`ingest.sources.nats`).  Nothing here imports the
NATS client: this module only turns batches into messages and back.

Subjects
    ``PREFIX.<sensor>.alert``  alerts
    ``PREFIX.<sensor>.flow``   EVE flow/netflow events (the store's ``flows``)
    ``PREFIX.<sensor>.event``  every other EVE event (dns, http, stats, ...)

    ``<sensor>`` is the batch's sensor name (``--sensor-name``); a name with
    dots spans several tokens (``PREFIX.>`` still takes everything, a
    collector reads the sensor back as what lies between the prefix and the
    last token).  Give each sensor's NATS user publish permission on
    ``PREFIX.<its name>.>`` only: the collector takes the sensor from the
    subject, so a sensor can never write another sensor's rows.

Payload
    JSON lines, exactly what the JSON-lines sink writes with the EVE profile
    (``--format`` only applies to files): an alert from Suricata as Suricata
    wrote it, any other alert rendered by ingest (with its ``ingest``
    member: source, sensor_id, event_id, class_id, app_name), events
    verbatim.  A message holds a *batch* of records (at most ``msg_bytes``,
    default 256 KiB, and never more than the server's ``max_payload``); a
    consumer that wants single records splits it at the newlines.  One
    record per message was measured against this framing (BENCHMARKS.md):
    nats-py spends its time per message (a reply subject, a future, a JSON
    PubAck each), so per-record messages run at a fraction of the rate.

Headers
    ``Nats-Msg-Id``    ``<sensor>:<32 hex>``, a hash of the records' stable
                       identity (alerts: replay key, sensor_id, event_id,
                       time, gid:sid:rev; events: their bytes): a retried
                       publish of the same records is stored once by
                       JetStream (within the stream's duplicate window).
    ``Ingest-Wire``    ``1``, the version of this format.
    ``Ingest-Count``   records in the payload (= its lines).
    ``Ingest-Format``  ``ingest`` (alerts ingest rendered: their ``ingest``
                       member is believed) or ``eve`` (an engine's own
                       records: an ``ingest`` member in them is ignored, as
                       any sender could have written one).
    ``Ingest-Keys``    alert messages: base64 of one little-endian int64 per
                       record, its identity in the stores (``replay_key``):
                       the file follower's replay key (file identity and
                       offset) when it has one; 0 for Unified2 and Barnyard2
                       events, whose store key is the event itself (sensor,
                       sensor_id, event_id, time, gid:sid:rev); otherwise
                       (Snort and EVE sockets, which have no replay key) a
                       key the sink assigns once per record: a random 62-bit
                       start per process, then consecutive.  A redelivered
                       message, or the same records published again after
                       a sensor restart, is then stored once by every SQL
                       store (unique keys include the sensor).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import batch as B
from .config import SENSOR_NAME_RE
from .eve import EveDecoder, split_lines
from .mapping import Enriched
from .render import render_buffer
from .sinks.errors import DataError

WIRE_VERSION = "1"
KINDS = ("alert", "flow", "event")
H_ID = "Nats-Msg-Id"
H_WIRE = "Ingest-Wire"
H_COUNT = "Ingest-Count"
H_FORMAT = "Ingest-Format"
H_KEYS = "Ingest-Keys"
FORMAT_RENDERED = "ingest"
FORMAT_VERBATIM = "eve"

#: a subject token: what NATS allows, without wildcards and separators
_TOKEN = r"[A-Za-z0-9_-]+"
_SUBJECT = re.compile(rf"{_TOKEN}(?:\.{_TOKEN})*")
#: what --sensor-name allows (ingest.config.SENSOR_NAME_RE): tokens of a
#: subject, never an empty one
SENSOR_RE = SENSOR_NAME_RE
#: room for the headers besides the keys (id, version, count, format)
HEADER_ROOM = 512
#: base64 bytes per record of Ingest-Keys (8 bytes -> 10.67 characters)
KEY_COST = 11
#: sources whose events carry their own store key (no replay key needed)
_NATURAL = np.zeros(256, bool)
_NATURAL[[B.SRC_UNIFIED2, B.SRC_BARNYARD2, B.SRC_BARNYARD2_32]] = True


def check_prefix(prefix: str) -> str:
    """A subject prefix: dot-separated tokens of letters, digits, - and _."""
    if not prefix or len(prefix) > 200 or not _SUBJECT.fullmatch(prefix):
        raise ValueError(f"NATS subject prefix {prefix!r}: expected tokens of letters, digits, '-' or '_' "
                         "separated by dots (no wildcards)")
    return prefix


def check_sensor(sensor: str) -> str:
    """A sensor name that can be part of a subject (1..64 characters, tokens
    of letters, digits, - and _ separated by single dots)."""
    if not SENSOR_RE.fullmatch(sensor):
        raise ValueError(f"sensor name {sensor!r} cannot be used in a NATS subject: 1 to 64 letters, digits, "
                         "'-', '_', and single dots between them")
    return sensor


def subject(prefix: str, sensor: str, kind: str) -> str:
    return f"{prefix}.{sensor}.{kind}"


@dataclass
class Message:
    """One JetStream message: what the sink publishes, what the collector reads."""

    subject: str
    headers: dict[str, str]
    payload: bytes
    count: int  # records (lines) in the payload
    alerts: int = 0  # of which alerts

    @property
    def msg_id(self) -> str:
        return self.headers[H_ID]


class KeyAllocator:
    """Replay keys for records that have none (Snort and EVE sockets): a
    random start in [1, 2**62) per process, then consecutive, so two runs of
    a sensor never share one (and never reach 0, which means "no key")."""

    def __init__(self, start: int | None = None) -> None:
        self.next = start if start is not None else 1 + int.from_bytes(os.urandom(8), "little") % ((1 << 62) - 1)

    def take(self, n: int) -> np.ndarray:
        keys = np.arange(self.next, self.next + n, dtype=np.int64)
        self.next += n
        return keys


class Encoder:
    """Turns enriched batches into JetStream messages (see the module doc)."""

    def __init__(self, prefix: str, sensor: str, *, msg_bytes: int = 256 << 10,
                 max_payload: int = 1 << 20, keys: KeyAllocator | None = None) -> None:
        self.prefix = check_prefix(prefix)
        self.sensor = check_sensor(sensor)
        self.max_payload = max_payload
        self.msg_bytes = msg_bytes
        self.keys = keys or KeyAllocator()

    @property
    def limit(self) -> int:
        """Most payload + keys bytes one message may take."""
        return max(1024, min(self.msg_bytes, self.max_payload - HEADER_ROOM))

    def encode(self, item: Enriched) -> list[Message]:
        """The messages of one batch, alerts first (see :meth:`messages`)."""
        return list(self.messages(item))

    def messages(self, item: Enriched) -> Iterator[Message]:
        """The messages of one batch, alerts first, made one at a time (the
        sink publishes each as it is made, so JetStream stores the first
        while the next is cut).  The whole batch is rendered and checked
        before the first is yielded: DataError when a single record does not
        fit in a message (the server's max_payload), and then nothing of the
        batch has been published; the runtime isolates that record."""
        batch = item.batch
        sensor = batch.sensor or self.sensor
        if sensor != self.sensor:
            check_sensor(sensor)
        parts: list[Iterator[Message]] = []
        if len(batch):
            parts.append(self._alerts(item, sensor))
        ev = batch.events
        if ev is not None and ev.count:
            parts.append(self._events(ev, sensor))
        return itertools.chain.from_iterable(parts)

    def _identity_keys(self, batch: B.AlertBatch) -> np.ndarray:
        a = batch.alerts
        keys = np.zeros(len(a), np.int64) if batch.keys is None else np.array(batch.keys, np.int64)
        need = (keys == 0) & ~_NATURAL[a["source"]]
        if need.any():
            keys[need] = self.keys.take(int(need.sum()))
        return keys

    def _alerts(self, item: Enriched, sensor: str) -> Iterator[Message]:
        batch = item.batch
        a = batch.alerts
        n = len(a)
        ends = np.empty(n, np.uint32)
        try:
            data = render_buffer(batch, "eve", item.categories, item.extra_strings, item.references, ends=ends)
        except (ValueError, TypeError, UnicodeError, OverflowError) as e:
            raise DataError(f"cannot render: {e!r}") from e
        ends64 = ends.astype(np.int64)
        cost = ends64 + KEY_COST * np.arange(1, n + 1, dtype=np.int64)  # payload + keys bytes
        _fits(cost, self.limit)
        keys = self._identity_keys(batch)
        # a message's identity: its records' keys, and where a record has
        # none (Unified2, Barnyard2) the event's own identity
        ident = None
        if not keys.all():
            ident = np.ascontiguousarray(np.stack([
                a["ts_us"], a["sensor_id"].astype(np.int64), a["event_id"].astype(np.int64),
                a["gid"].astype(np.int64), a["sid"].astype(np.int64), a["rev"].astype(np.int64), keys]).T)
        verbatim = (batch.raw >= 0) if batch.raw is not None else np.zeros(n, bool)
        cuts = np.flatnonzero(np.diff(verbatim.astype(np.int8))) + 1
        bounds = [0, *cuts.tolist(), n]
        subj = subject(self.prefix, sensor, "alert")
        return self._alert_messages(data, ends64, cost, keys, ident, verbatim, bounds, subj, sensor)

    def _alert_messages(self, data, ends64, cost, keys, ident, verbatim, bounds, subj, sensor) -> Iterator[Message]:
        for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
            fmt = FORMAT_VERBATIM if verbatim[r0] else FORMAT_RENDERED
            for i, j in _chunks(cost, r0, r1, self.limit):
                start = int(ends64[i - 1]) if i else 0
                payload = bytes(data[start:int(ends64[j - 1])])
                k = np.ascontiguousarray(keys[i:j], "<i8")
                h = hashlib.blake2b(digest_size=16)
                h.update(f"{subj}\n{fmt}\n".encode())
                h.update(k.tobytes() if ident is None else ident[i:j].tobytes())
                yield Message(subj, {
                    H_ID: f"{sensor}:{h.hexdigest()}",
                    H_WIRE: WIRE_VERSION,
                    H_COUNT: str(j - i),
                    H_FORMAT: fmt,
                    H_KEYS: base64.b64encode(k.tobytes()).decode(),
                }, payload, j - i, j - i)

    def _events(self, ev: B.EventBatch, sensor: str) -> Iterator[Message]:
        buf = np.frombuffer(ev.lines, np.uint8)
        line_end = np.flatnonzero(buf == 10) + 1
        flow = np.zeros(len(line_end), bool)
        if len(line_end) == ev.count and ev.nflows():
            flow[ev.flow_lines()] = True
        if len(line_end) == 0 or line_end[-1] != len(buf):  # not one line per event: one unit
            line_end = np.append(line_end, len(buf))
            flow = np.append(flow, False)
        lens = np.diff(line_end, prepend=0)
        _fits(np.cumsum(lens), self.limit)
        return self._event_messages(ev, buf, flow, lens, sensor)

    def _event_messages(self, ev: B.EventBatch, buf: np.ndarray, flow: np.ndarray, lens: np.ndarray,
                        sensor: str) -> Iterator[Message]:
        for kind, mask in (("flow", flow), ("event", ~flow)):
            if not mask.any():
                continue
            data = ev.lines if mask.all() else buf[np.repeat(mask, lens)].tobytes()
            ends = np.cumsum(lens[mask])
            subj = subject(self.prefix, sensor, kind)
            for i, j in _chunks(ends, 0, len(ends), self.limit):
                start = int(ends[i - 1]) if i else 0
                payload = bytes(data[start:int(ends[j - 1])])
                h = hashlib.blake2b(digest_size=16)
                h.update(f"{subj}\n".encode())
                h.update(payload)
                yield Message(subj, {
                    H_ID: f"{sensor}:{h.hexdigest()}",
                    H_WIRE: WIRE_VERSION,
                    H_COUNT: str(j - i),
                    H_FORMAT: FORMAT_VERBATIM,
                }, payload, j - i)


def _fits(cost: np.ndarray, limit: int) -> None:
    """DataError unless every record (cumulative cost) fits in a message."""
    if len(cost) and int(np.diff(cost, prepend=0).max()) > limit:
        big = int(np.diff(cost, prepend=0).max())
        raise DataError(f"a record of {big} bytes does not fit in a NATS message "
                        f"(at most {limit}: raise the server's max_payload)")


def _chunks(cost: np.ndarray, r0: int, r1: int, limit: int) -> Iterator[tuple[int, int]]:
    """Cut records [r0, r1) into runs whose cost (cumulative: cost[k] is the
    total up to record k inclusive) stays within limit."""
    i = r0
    while i < r1:
        base = int(cost[i - 1]) if i else 0
        j = int(np.searchsorted(cost[i:r1], base + limit, side="right")) + i
        if j == i:  # (checked by _fits before the first message)
            raise DataError(f"a record of {int(cost[i]) - base} bytes does not fit in a NATS message")
        yield i, j
        i = j


# ---- the collector's side ----------------------------------------------------
class Poison(Exception):
    """A message the collector cannot use at all (it is dead-lettered whole,
    with its stream sequence, and acknowledged): ``reason`` names why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Decoded:
    """What one message gave: a batch (alerts and events) for the sinks,
    and the records of it that were refused one by one (reason, bytes)."""

    sensor: str
    kind: str
    batch: B.AlertBatch
    count: int
    rejected: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(eq=False)
class Checked:
    """A message whose subject and headers are ours (:meth:`Decoder.check`),
    its lines found, not yet decoded."""

    sensor: str
    kind: str
    fmt: str
    count: int
    payload: bytes
    keys: np.ndarray | None  # alert messages: one identity key per record
    offs: np.ndarray  # each line's offset in payload
    lens: np.ndarray  # each line's length, its newline included

    @property
    def group_key(self) -> tuple[str, str, str]:
        """Messages with the same key may be decoded together (one batch has one sensor)."""
        return self.sensor, self.kind, self.fmt


@dataclass
class Group:
    """What several messages decoded together gave (:meth:`Decoder.decode_group`):
    one batch of all their records, and per message its records and the
    records of it that were refused (reason, bytes)."""

    batch: B.AlertBatch
    rejected: list[list[tuple[str, bytes]]]


class Decoder:
    """Rebuilds the canonical batch a sensor had from its messages: C
    decoding of the JSON lines (``ingest.eve``), no per-record Python parse
    of alerts.  The messages of one fetch are decoded together, one C call
    for all of them (:meth:`decode_group`): the per-message Python work and
    the runtime's join of small batches are then paid once per group, not
    once per message.  Reusable; not thread-safe (one per reader)."""

    def __init__(self, prefix: str, *, max_bytes: int = 8 << 20) -> None:
        self.prefix = check_prefix(prefix)
        self.max_bytes = max_bytes
        self._rendered = EveDecoder(1024, wire=True)
        self._verbatim = EveDecoder(1024)

    def sensor_of(self, subj: str) -> tuple[str, str]:
        """(sensor, kind) of a subject of ours; Poison otherwise."""
        head = self.prefix + "."
        cut = subj.rfind(".")
        if not subj.startswith(head) or cut <= len(head):
            raise Poison("not_ours", f"subject {subj[:200]!r}")
        sensor, kind = subj[len(head):cut], subj[cut + 1:]
        if kind not in KINDS or not SENSOR_RE.fullmatch(sensor):
            raise Poison("not_ours", f"subject {subj[:200]!r}")
        return sensor, kind

    def decode(self, subj: str, headers: dict[str, str] | None, payload: bytes) -> Decoded:
        """One message (Poison when it is not ours)."""
        c = self.check(subj, headers, payload)
        g = self.decode_group([c])
        return Decoded(c.sensor, c.kind, g.batch, c.count, g.rejected[0])

    def check(self, subj: str, headers: dict[str, str] | None, payload: bytes) -> Checked:
        """The subject, the headers and the framing of one message: Poison
        unless the message is ours, whole, and within --max-message-bytes."""
        sensor, kind = self.sensor_of(subj)
        h = headers or {}
        if h.get(H_WIRE) is None:
            raise Poison("not_ours", "no Ingest-Wire header")
        if h[H_WIRE] != WIRE_VERSION:
            raise Poison("unknown_version", f"Ingest-Wire {h[H_WIRE][:20]!r}")
        if len(payload) > self.max_bytes:
            raise Poison("oversized", f"{len(payload)} bytes (--max-message-bytes {self.max_bytes})")
        try:
            count = int(h.get(H_COUNT, ""))
        except ValueError:
            raise Poison("bad_header", "Ingest-Count is not a number") from None
        if count < 1 or count > len(payload):
            raise Poison("bad_header", f"Ingest-Count {count}")
        fmt = h.get(H_FORMAT)
        if fmt not in (FORMAT_RENDERED, FORMAT_VERBATIM) or (fmt == FORMAT_RENDERED and kind != "alert"):
            raise Poison("bad_header", f"Ingest-Format {str(fmt)[:20]!r} on {kind}")
        keys = None
        if kind == "alert":
            try:
                raw = base64.b64decode(h.get(H_KEYS, ""), validate=True)
            except (binascii.Error, ValueError):
                raise Poison("bad_header", "Ingest-Keys is not base64") from None
            if len(raw) != 8 * count:
                raise Poison("bad_header", f"Ingest-Keys holds {len(raw) // 8} keys for {count} records")
            keys = np.frombuffer(raw, "<i8").astype(np.int64)
        # one more line than announced is looked for: a payload of exactly
        # Ingest-Count whole lines, and nothing after the last newline
        offs, lens, consumed = split_lines(payload, cap=count + 1)
        if len(offs) != count or consumed != len(payload):
            lines = len(offs) if consumed == len(payload) else f"{len(offs)} whole"
            raise Poison("truncated", f"{lines} lines for Ingest-Count {count}")
        return Checked(sensor, kind, fmt, count, payload, keys, offs, lens)

    def decode_group(self, msgs: list[Checked]) -> Group:
        """Messages of one :attr:`Checked.group_key`, decoded in one C call
        into one batch (their records in order).  Any exception is the
        group's: the caller decodes its messages one by one to find the
        message that causes it."""
        first = msgs[0]
        if any(m.group_key != first.group_key for m in msgs):
            raise ValueError("messages of different sensors, kinds or formats cannot be decoded together")
        if len(msgs) == 1:
            payload, offs, lens = first.payload, first.offs, first.lens
        else:
            payload = b"".join(m.payload for m in msgs)
            bases = np.cumsum([0] + [len(m.payload) for m in msgs[:-1]], dtype=np.uint64)
            offs = np.concatenate([m.offs + b for m, b in zip(msgs, bases, strict=True)])
            lens = np.concatenate([m.lens for m in msgs])
        n = len(offs)
        dec = self._rendered if first.fmt == FORMAT_RENDERED else self._verbatim
        res = dec.decode(payload, offs, lens, n, origin=f"nats:{first.sensor}")
        batch = res.batch
        if first.kind == "alert" and len(batch):
            keys = first.keys if len(msgs) == 1 else np.concatenate([m.keys for m in msgs])  # type: ignore[misc]
            assert keys is not None
            rec = np.searchsorted(offs, res.alert_offsets, side="right") - 1
            batch.keys = keys[rec]
        rejected: list[list[tuple[str, bytes]]] = [[] for _ in msgs]
        if res.rejected:
            # a refused line belongs to the message holding it
            starts = np.cumsum([0] + [m.count for m in msgs[:-1]])
            for line, reason, raw in res.rejected:
                rejected[int(np.searchsorted(starts, line, side="right")) - 1].append((reason, raw))
        batch.sensor = first.sensor
        return Group(batch, rejected)


__all__ = ["Encoder", "Decoder", "Message", "Decoded", "Checked", "Group", "Poison", "KeyAllocator", "KINDS", "WIRE_VERSION",
           "check_prefix", "check_sensor", "subject"]
