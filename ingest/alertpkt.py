"""Snort / Barnyard2 ``alert_unixsock`` datagrams: typed, thin wrapper over the C decoder.

The variant is told apart by datagram length (FORMATS.md section 6):

=======  =============================================  ==========
length   sender                                         byte order
=======  =============================================  ==========
65864    Snort 2.9 / Snort 3 ``Alertpkt``               host
65928    Snort 2 built with open-appid (``app_name``)   host
1856     Barnyard2 on x86-64                            host + big-endian event
1844     Barnyard2 on 32-bit                            host + big-endian event
=======  =============================================  ==========

Snort 3 sends the same 65,864-byte layout as Snort 2.9, but its ``alertmsg``
is the rule's msg *with its double quotes* (and its backslash escapes), cut
to 255 bytes; see :func:`snort_message` for how it is read.

Example::

    from ingest.alertpkt import decode_datagrams
    result = decode_datagrams([dgram1, dgram2])
    result.batch.alerts["sid"], result.batch.strings, result.rejected
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, field

import numpy as np

from . import batch as B
from .native import ffi, lib

SNORT_LEN = lib.INGEST_ALERTPKT_SNORT_LEN
SNORT_APPID_LEN = lib.INGEST_ALERTPKT_SNORT_APPID_LEN
BARNYARD2_LEN = lib.INGEST_ALERTPKT_BY2_LEN
BARNYARD2_32_LEN = lib.INGEST_ALERTPKT_BY2_32_LEN
MAX_LEN = lib.INGEST_ALERTPKT_MAX_LEN
#: slot size: room for the largest variant, 8-byte aligned
SLOT_SIZE = (MAX_LEN + 7) // 8 * 8
ALERTMSG_LEN = lib.INGEST_ALERTMSG_LEN
APPNAME_OFFSET = 65864
APPNAME_LEN = lib.INGEST_APPNAME_LEN

#: Per-datagram outcome names, indexed by the C status code.
REASONS = (
    "ok",
    "bad_length",  # rejected: no Alertpkt variant has this size
    "truncated",  # rejected: the kernel cut it (larger than any Alertpkt)
    "bad_offset",  # kept without packet fields: an offset points outside pkt[]
    "bad_caplen",  # kept: caplen larger than pkt[]; parsed within pkt[]
    "bad_ip_header",  # kept without packet fields: nethdr is no IP header
)
REJECTED = frozenset((lib.INGEST_DG_BAD_LENGTH, lib.INGEST_DG_TRUNCATED))

_BACKSLASH_ESCAPE = re.compile(rb"\\(.)", re.S)


def snort_message(raw: bytes) -> bytes:
    """The signature message of a Snort Alertpkt (65,864 bytes), as the rule
    wrote it.

    Snort 3 stores a rule's msg with its quotes and escapes (``"say \\"hi\\""``)
    and sends it so, cut to 255 bytes: a long message keeps only its opening
    quote.  Snort 2.9 sends the unquoted, unescaped text in the same layout,
    and nothing else in the datagram tells the two apart.  The rule: a message
    that begins with ``"`` and either ends with an unescaped ``"`` or fills
    all 255 bytes (cut) is Snort 3's form; its outer quotes go and ``\\x``
    becomes ``x`` (Snort 2's own unescaping), so a signature reads the same
    from both engines.  Every Snort 3 message has that form; a Snort 2
    message that itself begins and ends with a quote (``msg:"\\"x\\""``) is
    read the same way and loses those two quotes (the one ambiguity).
    Anything else is returned unchanged.
    """
    if not raw.startswith(b'"'):
        return raw
    body = raw[1:]
    closed = len(raw) >= 2 and body.endswith(b'"') and _unescaped_end(body[:-1])
    if closed:
        body = body[:-1]
    elif len(raw) < ALERTMSG_LEN - 1:
        return raw  # an opening quote only, not cut: not Snort 3's form
    return _BACKSLASH_ESCAPE.sub(rb"\1", body)


def _unescaped_end(text: bytes) -> bool:
    """Is a quote right after text unescaped (an even run of backslashes)?"""
    return (len(text) - len(text.rstrip(b"\\"))) % 2 == 0


@dataclass
class DecodeResult:
    """Alerts decoded from a set of slots, plus what went wrong with which slot."""

    batch: B.AlertBatch
    #: (slot index, reason) for every datagram that produced no alert
    rejected: list[tuple[int, str]] = field(default_factory=list)
    #: (slot index, reason) for alerts kept without (some) packet fields
    anomalies: list[tuple[int, str]] = field(default_factory=list)


class SlotDecoder:
    """Reusable decoder over a caller-owned slot buffer (no per-batch allocation
    except the output alert array, which is handed on)."""

    def __init__(self, nslots: int, slot_size: int = SLOT_SIZE, *, small_pages: bool = False) -> None:
        """``small_pages``: the slot buffer is an anonymous mapping of 4 KiB
        pages, not numpy's (numpy asks for transparent huge pages above 4
        MiB): for slots far larger than what usually arrives (EVE's 256 KiB
        slots, ~1 KB datagrams), a datagram's first write into a slot then
        faults in one 4 KiB page, not a zeroed 2 MiB huge page (perf: 5-13 %
        of an EVE reader's time went to clear_page before this)."""
        self.nslots = nslots
        self.slot_size = slot_size
        self._map = mmap.mmap(-1, max(1, nslots * slot_size)) if small_pages else None
        self.buf = (np.frombuffer(self._map, dtype=np.uint8, count=nslots * slot_size) if self._map is not None
                    else np.zeros(nslots * slot_size, dtype=np.uint8))
        self.slots = self.buf.reshape(nslots, slot_size)
        self.lens = np.zeros(nslots, dtype=np.uint32)
        self.flags = np.zeros(nslots, dtype=np.uint8)
        self.status = np.zeros(nslots, dtype=np.uint8)
        self.slot_of = np.zeros(nslots, dtype=np.uint32)
        self.msg_key = np.zeros(nslots, dtype=np.uint64)
        self.msg_first = np.zeros(nslots, dtype=np.uint32)
        #: msg_key -> text: messages repeat (Zipf), so most batches decode none
        self._msg_cache: dict[int, str] = {}
        self._c_buf = ffi.from_buffer("uint8_t[]", self.buf, require_writable=True)
        self._c_lens = ffi.from_buffer("uint32_t[]", self.lens, require_writable=True)
        self._c_flags = ffi.from_buffer("uint8_t[]", self.flags, require_writable=True)
        self._c_status = ffi.from_buffer("uint8_t[]", self.status, require_writable=True)
        self._c_slot_of = ffi.from_buffer("uint32_t[]", self.slot_of, require_writable=True)
        self._c_msg_key = ffi.from_buffer("uint64_t[]", self.msg_key, require_writable=True)
        self._c_msg_first = ffi.from_buffer("uint32_t[]", self.msg_first, require_writable=True)
        self._cred_args: tuple | None = None  # see with_credentials

    def with_credentials(self, allow_uids: np.ndarray | None = None,
                         allow_gids: np.ndarray | None = None) -> None:
        """From now on, receive every datagram with its sender (the socket
        must have SO_PASSCRED): ``pids``/``uids``/``gids`` per slot, and
        ``flags`` marks a slot INGEST_SLOT_NOCRED (no credentials) or, given
        allow-lists, INGEST_SLOT_REFUSED (uid and gid on neither list)."""
        size = lib.INGEST_CRED_CMSG_SIZE
        self.cmsgs = np.zeros(self.nslots * size, dtype=np.uint64).view(np.uint8)  # word-aligned
        self.pids = np.zeros(self.nslots, dtype=np.int32)
        self.uids = np.zeros(self.nslots, dtype=np.uint32)
        self.gids = np.zeros(self.nslots, dtype=np.uint32)
        self._allow = [np.ascontiguousarray(a if a is not None else np.zeros(0), dtype=np.uint32)
                       for a in (allow_uids, allow_gids)]
        au, ag = self._allow
        self._cred_args = (
            ffi.from_buffer("uint8_t[]", self.cmsgs, require_writable=True), size,
            ffi.from_buffer("int32_t[]", self.pids, require_writable=True),
            ffi.from_buffer("uint32_t[]", self.uids, require_writable=True),
            ffi.from_buffer("uint32_t[]", self.gids, require_writable=True),
            ffi.from_buffer("uint32_t[]", au) if len(au) else ffi.NULL, len(au),
            ffi.from_buffer("uint32_t[]", ag) if len(ag) else ffi.NULL, len(ag),
        )

    def recv(self, fd: int, linger_us: int = 0) -> int:
        """Receive up to nslots datagrams from fd (see ingest_recv_batch,
        and ingest_recv_batch_creds after :meth:`with_credentials`)."""
        if self._cred_args is not None:
            n = lib.ingest_recv_batch_creds(fd, self._c_buf, self.slot_size, self.nslots, self._c_lens,
                                            self._c_flags, linger_us, *self._cred_args)
        else:
            n = lib.ingest_recv_batch(
                fd, self._c_buf, self.slot_size, self.nslots, self._c_lens, self._c_flags, linger_us
            )
        if n < 0:
            err = ffi.errno
            raise OSError(err, f"recvmmsg failed: {__import__('os').strerror(err)}")
        return n

    def load(self, datagrams: list[bytes]) -> int:
        """Copy datagrams into the slots (for files and tests); returns the count."""
        n = len(datagrams)
        if n > self.nslots:
            raise ValueError(f"{n} datagrams but only {self.nslots} slots")
        for i, d in enumerate(datagrams):
            k = min(len(d), self.slot_size)
            self.slots[i, :k] = np.frombuffer(d, dtype=np.uint8, count=k)
            self.lens[i] = len(d)
            self.flags[i] = 1 if len(d) > self.slot_size else 0
        return n

    def decode(self, n: int, origin: str = "") -> DecodeResult:
        """Decode the first n slots into a new AlertBatch."""
        alerts = np.empty(n, dtype=B.ALERT_DTYPE)
        if n == 0:
            return DecodeResult(B.AlertBatch(alerts, [], origin))
        k = lib.ingest_alertpkt_decode(
            self._c_buf,
            self.slot_size,
            n,
            self._c_lens,
            self._c_flags,
            ffi.from_buffer("struct ingest_alert[]", alerts, require_writable=True),
            n,
            self._c_slot_of,
            self._c_status,
            self._c_msg_key,
            self._c_msg_first,
        )
        if k < 0:
            raise ValueError(f"ingest_alertpkt_decode: bad arguments ({k})")
        return self.result(n, alerts[:k], origin)

    def result(self, n: int, alerts: np.ndarray, origin: str = "") -> DecodeResult:
        """The DecodeResult of n slots whose k = len(alerts) alerts C already
        decoded (``status``, ``slot_of``, ``msg_key`` and ``msg_first`` hold
        what ingest_alertpkt_decode wrote): a native reader decodes on its
        own thread, this is the Python half.  ``alerts`` becomes the batch's
        (the caller passes an array of its own, not the reader's memory)."""
        k = len(alerts)
        status = self.status[:n]
        rejected: list[tuple[int, str]] = []
        anomalies: list[tuple[int, str]] = []
        if status.any():  # rare path: name each bad slot
            for i in np.flatnonzero(status).tolist():
                st = int(status[i])
                (rejected if st in REJECTED else anomalies).append((i, REASONS[st]))
        strings = self._strings(alerts, self.slot_of[:k])
        return DecodeResult(B.AlertBatch(alerts, strings, origin), rejected, anomalies)

    def _strings(self, alerts: np.ndarray, slot_of: np.ndarray) -> list[str]:
        """Build the batch string table: one entry per distinct signature
        message (and app name), read in place from the slots.

        The C decoder gave every message a keyed hash (of its bytes and
        source kind) and marked the first alert of each distinct one; text is
        decoded only the first time a key is seen (messages repeat: Zipf), so
        a batch costs a few vector ops and a dict lookup per distinct message.
        A Snort Alertpkt's text goes through :func:`snort_message`.
        """
        k = len(alerts)
        if k == 0:
            return []
        first_of = self.msg_first[:k]
        is_first = first_of == np.arange(k, dtype=np.uint32)
        first = np.flatnonzero(is_first)
        keys = self.msg_key[first].tolist()
        cache = self._msg_cache
        found = [cache.get(key) for key in keys]
        if None in found:
            if len(cache) > 65536:
                cache.clear()
            sources = alerts["source"][first]
            for j, key in enumerate(keys):
                if found[j] is None:
                    raw = self.slots[slot_of[first[j]], :ALERTMSG_LEN].tobytes().split(b"\0", 1)[0]
                    if sources[j] == B.SRC_SNORT:
                        raw = snort_message(raw)
                    found[j] = cache[key] = raw.decode("utf-8", "replace")
        strings: list[str] = found  # type: ignore[assignment]  # no None left
        rank = np.cumsum(is_first, dtype=np.int32) - 1  # string index of each distinct message
        if "" in strings:  # Barnyard2 sends all zeros for an unknown sid
            rank[first[strings.index("")]] = -1
        alerts["msg_idx"] = rank[first_of]
        appid = alerts["source"] == B.SRC_SNORT_APPID
        if appid.any():
            rows = np.flatnonzero(appid)
            names = self.slots[slot_of[rows], APPNAME_OFFSET : APPNAME_OFFSET + APPNAME_LEN]
            uniq, inv = np.unique(names, axis=0, return_inverse=True)
            app_idx = np.empty(len(uniq), dtype=np.int32)
            for j, raw in enumerate(uniq):
                text = bytes(raw).split(b"\0", 1)[0]
                if text:
                    app_idx[j] = len(strings)
                    strings.append(text.decode("utf-8", "replace"))
                else:
                    app_idx[j] = -1
            alerts["app_idx"][rows] = app_idx[inv.reshape(-1)]
        return strings


def decode_datagrams(datagrams: list[bytes], origin: str = "") -> DecodeResult:
    """Decode a list of raw ``alert_unixsock`` datagrams (any variant mix)."""
    dec = SlotDecoder(max(1, len(datagrams)))
    return dec.decode(dec.load(datagrams), origin)


def split_datagrams(data: bytes, size: int) -> list[bytes]:
    """Split back-to-back fixed-size datagrams (as stored in a capture file)."""
    if size <= 0 or len(data) % size:
        raise ValueError(f"{len(data)} bytes is not a whole number of {size}-byte datagrams")
    return [data[i : i + size] for i in range(0, len(data), size)]
