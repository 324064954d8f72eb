"""NetFlow v5, NetFlow v9 and IPFIX export packets -> canonical flow records.

A thin typed wrapper over csrc/netflow.c: received datagrams (slots, with
their senders) in, a :class:`~ingest.flows.record.FlowBatch` out.  The
decoder's template and exporter tables are allocated here once, with fixed
capacities, and handed to C (nothing grows on the hot path).

Data sets whose template has not arrived yet (an exporter restarted, or
ingest did) are held: a copy of the set with its packet's header, up to
``hold_bytes`` in all and ``hold_seconds`` each, and decoded again as soon
as a batch brings new templates.  A set that leaves the hold undecoded
(too old, or pushed out by newer ones) is counted ``template_missing``
and dead-lettered.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .._native import ffi, lib
from . import record as R

#: reason names of the per-packet status (INGEST_NF_*), as counted and dead-lettered
REASONS = {
    lib.INGEST_NF_SHORT_HEADER: "netflow_short_header",
    lib.INGEST_NF_BAD_VERSION: "netflow_bad_version",
    lib.INGEST_NF_BAD_LENGTH: "netflow_bad_length",
    lib.INGEST_NF_BAD_SET: "netflow_bad_set",
    lib.INGEST_NF_BAD_TEMPLATE: "netflow_bad_template",
    lib.INGEST_NF_BAD_FIELD: "netflow_bad_field",
    lib.INGEST_NF_TRUNCATED: "netflow_truncated",
}

#: the largest UDP payload (IPv4: 65535 - 8 - 20); a slot holds any datagram
SLOT_SIZE = 65536
TEMPLATE_CAP = 4096  # ~3.3 MB
EXPORTER_CAP = 1024
HOLD_BYTES = 4 << 20
HOLD_SECONDS = 30.0
HOLD_MAX = 4096  # sets held at most (each a separate bytes object)

#: the state's cumulative counters the stats show (struct ingest_nf_state)
COUNTERS = ("packets", "flows", "templates_added", "templates_withdrawn", "templates_evicted",
            "exporters_evicted", "options_records", "exporter_loss", "sequence_resets")


@dataclass
class Held:
    """A data set waiting for its template: a packet of its own (the
    original header, then the set), the exporter, when it arrived."""

    data: bytes
    peer: bytes
    since: float


@dataclass
class DecodeResult:
    batch: R.FlowBatch
    #: (slot, reason) for every packet not decoded whole
    rejected: list[tuple[int, str]] = field(default_factory=list)
    #: sets that left the hold undecoded: (exporter address, raw set packet)
    expired: list[tuple[bytes, bytes]] = field(default_factory=list)


def peer_text(addr16: bytes) -> str:
    """An exporter address (16 bytes, IPv4 mapped) as text."""
    import ipaddress

    a = ipaddress.IPv6Address(addr16)
    return str(a.ipv4_mapped) if a.ipv4_mapped is not None else str(a)


class NetflowDecoder:
    """Receive and decode export packets in batches of ``nslots`` datagrams."""

    def __init__(self, nslots: int = 64, *, template_cap: int = TEMPLATE_CAP,
                 exporter_cap: int = EXPORTER_CAP, hold_bytes: int = HOLD_BYTES,
                 hold_seconds: float = HOLD_SECONDS, slot_size: int = SLOT_SIZE) -> None:
        self.nslots = nslots
        self.slot_size = slot_size
        self.slots = np.zeros(nslots * slot_size, np.uint8)
        self.lens = np.zeros(nslots, np.uint32)
        self.flags = np.zeros(nslots, np.uint8)
        self.peers = np.zeros(nslots * 16, np.uint8)
        self.ports = np.zeros(nslots, np.uint16)
        self._templates = ffi.new("struct ingest_nf_template[]", template_cap)
        self._exporters = ffi.new("struct ingest_nf_exporter[]", exporter_cap)
        st = self.state = ffi.new("struct ingest_nf_state *")
        st.templates, st.template_cap = self._templates, template_cap
        st.exporters, st.exporter_cap = self._exporters, exporter_cap
        # every record takes at least one byte: a slot's worth of records
        # always fits, so each call decodes at least one packet
        self.out_cap = slot_size
        self.out = R.empty(self.out_cap)
        self.flow_slot = np.zeros(self.out_cap, np.uint32)
        self.app_off = np.zeros(self.out_cap, np.uint32)
        self.app_len = np.zeros(self.out_cap, np.uint16)
        self.status = np.zeros(nslots, np.uint8)
        self.held_cap = 1024
        self._held_refs = ffi.new("struct ingest_nf_held[]", self.held_cap)
        self._nheld = ffi.new("unsigned *")
        self._consumed = ffi.new("unsigned *")
        self.hold: deque[Held] = deque()
        self.hold_bytes = hold_bytes
        self.hold_seconds = hold_seconds
        self.held_bytes = 0
        self.template_missing = 0
        # typed pointers: ``p + k`` then moves by elements
        types = {"slots": "uint8_t *", "lens": "uint32_t *", "flags": "uint8_t *", "peers": "uint8_t *",
                 "ports": "uint16_t *", "flow_slot": "uint32_t *", "app_off": "uint32_t *",
                 "app_len": "uint16_t *", "status": "uint8_t *"}
        self._p = {name: ffi.cast(ct, ffi.from_buffer(getattr(self, name), require_writable=True))
                   for name, ct in types.items()}
        self._p["out"] = ffi.cast("struct ingest_flow *", ffi.from_buffer(self.out, require_writable=True))

    # ---- receive -------------------------------------------------------------
    def recv(self, fd: int, linger_us: int = 0) -> int:
        """recvmmsg up to nslots datagrams with their senders; 0 on timeout.
        OSError when the socket failed."""
        p = self._p
        n = lib.ingest_recv_batch_from(fd, p["slots"], self.slot_size, self.nslots, p["lens"], p["flags"],
                                       linger_us, p["peers"], p["ports"])
        if n < 0:
            raise OSError(ffi.errno, "recvmmsg failed")
        return int(n)

    def load(self, datagrams: list[bytes], peer: bytes = bytes(10) + b"\xff\xff\x7f\x00\x00\x01") -> int:
        """Put datagrams into the slots as if received from peer (tests,
        benchmarks, ``ingest decode``).  At most nslots."""
        n = min(len(datagrams), self.nslots)
        for i, d in enumerate(datagrams[:n]):
            k = min(len(d), self.slot_size)
            self.slots[i * self.slot_size:i * self.slot_size + k] = np.frombuffer(d[:k], np.uint8)
            self.lens[i] = len(d)
            self.flags[i] = 0
            self.peers[i * 16:(i + 1) * 16] = np.frombuffer(peer, np.uint8)
        return n

    # ---- decode --------------------------------------------------------------
    def decode(self, n: int, origin: str = "netflow", now: float | None = None) -> DecodeResult:
        """Decode the n received slots (and whatever the hold can decode now)."""
        now = time.monotonic() if now is None else now
        added = self.state.templates_added
        parts: list[R.FlowBatch] = []
        rejected: list[tuple[int, str]] = []
        new_held: list[Held] = []
        first = 0
        while first < n:
            k, consumed, held = self._run(first, n - first, replay=False)
            parts.append(self._batch(first, k, origin))
            for i in range(first, first + consumed):
                st = int(self.status[i])
                if st:
                    rejected.append((i, REASONS.get(st, f"netflow_status_{st}")))
            new_held.extend(self._held(held, now))
            first += consumed
        expired: list[tuple[bytes, bytes]] = []
        for h in new_held:
            self._hold(h, expired)
        if self.hold and self.state.templates_added != added:
            parts.extend(self._replay(origin, expired))
        expired.extend(self.expire(now))
        parts = [p for p in parts if len(p)]
        batch = R.FlowBatch.concat(parts) if parts else R.FlowBatch(R.empty(0), [], origin)
        return DecodeResult(batch, rejected, expired)

    def _run(self, first: int, n: int, *, replay: bool) -> tuple[int, int, list[tuple[int, int, int]]]:
        p = self._p
        k = lib.ingest_nf_decode(self.state, p["slots"] + first * self.slot_size, self.slot_size, n, p["lens"] + first, p["flags"] + first,
                                 p["peers"] + first * 16, int(replay), p["out"], self.out_cap, p["flow_slot"],
                                 p["app_off"], p["app_len"], p["status"] + first, self._held_refs,
                                 self.held_cap, self._nheld, self._consumed)
        if k < 0:
            raise ValueError(f"ingest_nf_decode: status {k}")
        self._first = first
        held = [(first + int(h.slot), int(h.off), int(h.len))
                for h in (self._held_refs[j] for j in range(self._nheld[0]))]
        return int(k), int(self._consumed[0]), held

    def _batch(self, first: int, k: int, origin: str) -> R.FlowBatch:
        recs = self.out[:k].copy()
        strings: list[str] = []
        if k:
            lens = self.app_len[:k]
            has = np.flatnonzero(lens)
            if len(has):
                at: dict[bytes, int] = {}
                base = first * self.slot_size
                for j in has.tolist():
                    o = base + int(self.app_off[j])
                    raw = self.slots[o:o + int(lens[j])].tobytes()
                    idx = at.get(raw)
                    if idx is None:
                        idx = at[raw] = len(strings)
                        strings.append(raw.decode("utf-8", "replace").replace("\0", "\ufffd"))
                    recs["app_idx"][j] = idx
        return R.FlowBatch(recs, strings, origin)

    def _held(self, refs: list[tuple[int, int, int]], now: float) -> list[Held]:
        out = []
        for slot, off, ln in refs:
            start = self._first * self.slot_size + off  # off: relative to the slots C was given
            pkt0 = slot * self.slot_size
            version = int(self.slots[pkt0]) << 8 | int(self.slots[pkt0 + 1])
            hlen = 20 if version == 9 else 16
            hdr = bytearray(self.slots[pkt0:pkt0 + hlen].tobytes())
            if version == 10:
                hdr[2:4] = (hlen + ln).to_bytes(2, "big")
            else:
                hdr[2:4] = (1).to_bytes(2, "big")
            data = bytes(hdr) + self.slots[start:start + ln].tobytes()
            out.append(Held(data, self.peers[slot * 16:(slot + 1) * 16].tobytes(), now))
        return out

    def _hold(self, h: Held, expired: list[tuple[bytes, bytes]]) -> None:
        self.hold.append(h)
        self.held_bytes += len(h.data)
        while self.hold and (self.held_bytes > self.hold_bytes or len(self.hold) > HOLD_MAX):
            self._drop(self.hold.popleft(), expired)

    def _drop(self, h: Held, expired: list[tuple[bytes, bytes]]) -> None:
        self.held_bytes -= len(h.data)
        self.template_missing += 1
        expired.append((h.peer, h.data))

    def expire(self, now: float | None = None) -> list[tuple[bytes, bytes]]:
        """Drop held sets older than hold_seconds (counted template_missing)."""
        now = time.monotonic() if now is None else now
        out: list[tuple[bytes, bytes]] = []
        while self.hold and now - self.hold[0].since > self.hold_seconds:
            self._drop(self.hold.popleft(), out)
        return out

    def _replay(self, origin: str, expired: list[tuple[bytes, bytes]]) -> list[R.FlowBatch]:
        """Decode the held sets again (new templates arrived); those still
        without a template stay held, in order."""
        items = list(self.hold)
        self.hold.clear()
        self.held_bytes = 0
        parts = []
        keep: list[Held] = []
        for i in range(0, len(items), self.nslots):
            chunk = items[i:i + self.nslots]
            for j, h in enumerate(chunk):
                o = j * self.slot_size
                self.slots[o:o + len(h.data)] = np.frombuffer(h.data, np.uint8)
                self.lens[j] = len(h.data)
                self.flags[j] = 0
                self.peers[j * 16:(j + 1) * 16] = np.frombuffer(h.peer, np.uint8)
            first = 0
            while first < len(chunk):
                k, consumed, held = self._run(first, len(chunk) - first, replay=True)
                parts.append(self._batch(first, k, origin))
                keep.extend(chunk[slot] for slot, _, _ in held)
                first += consumed
        for h in keep:
            self._hold(h, expired)
        return parts

    # ---- state ---------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        st = self.state
        out = {name: int(getattr(st, name)) for name in COUNTERS}
        out["template_missing"] = self.template_missing
        out["held_sets"] = len(self.hold)
        out["held_bytes"] = self.held_bytes
        out["template_missing"] += int(st.held_overflow)
        return out

    def exporters(self) -> list[dict]:
        """Every exporter in the table: address, version, domain, sequence loss."""
        out = []
        for i in range(self.state.exporter_cap):
            e = self._exporters[i]
            if e.version:
                out.append({"exporter": peer_text(bytes(ffi.buffer(e.addr, 16))), "version": int(e.version),
                            "domain": int(e.domain), "loss": int(e.loss), "sampling": int(e.sampling)})
        return out
