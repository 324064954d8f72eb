"""Driving the C sending loops (csrc/gen.c): Alertpkt datagrams from
templates (``Sender``), EVE lines over unix_dgram / unix_stream
(``LineSender``), in a worker thread so Ctrl-C stops them cleanly."""

from __future__ import annotations

import errno
import os
import signal
import threading
from dataclasses import dataclass

import numpy as np

from ..native import ffi, lib
from .eve import time_fields
from .templates import KINDS, time_offset

#: the clock of a time stamp (ingest_gen_dgram's time_off)
CLOCKS = {"monotonic": 0, "realtime": lib.INGEST_GEN_REALTIME}
#: EVE kinds: --kind -> stream socket?
EVE_KINDS = {"eve-dgram": False, "eve-stream": True}
MODES = {
    "sendto": lib.INGEST_GEN_SENDTO,
    "connect": lib.INGEST_GEN_CONNECT,
    "mmsg": lib.INGEST_GEN_MMSG,
    "dontwait": lib.INGEST_GEN_DONTWAIT,
}


# ---- driving the C loop ----------------------------------------------------

@dataclass
class SendResult:
    """What one sending run did (sent + dropped + errors = alerts attempted)."""

    sent: int
    dropped: int
    errors: int
    elapsed: float
    interrupted: bool
    timed_out: bool
    last_error: str

    @property
    def rate(self) -> float:
        """Alerts the kernel accepted per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "errors": self.errors,
                "elapsed_s": round(self.elapsed, 6), "rate": round(self.rate, 1),
                "interrupted": self.interrupted, "timed_out": self.timed_out,
                "last_error": self.last_error}


class GenError(RuntimeError):
    """The sender could not start (bad arguments, socket or connect failed);
    ``errno`` says why when a system call failed (0 otherwise)."""

    def __init__(self, msg: str, err: int = 0) -> None:
        super().__init__(msg)
        self.errno = err


class Sender:
    """One sending loop over caller-built templates.

    ``run()`` blocks in C without the GIL; ``stop()`` (from any thread) makes
    it return within ~50 ms with what it has sent so far.
    """

    def __init__(self, path: str, templates: np.ndarray, *, mode: str = "sendto",
                 stamp_offset: int | None = None, stamp_big_endian: bool = False,
                 time_offset: int | None = None, clock: str = "monotonic", hot: bool = False) -> None:
        """hot (sendto/connect modes): every alert is copied into one buffer
        before its send, as Snort and Barnyard2 fill their one static
        Alertpkt: only the bytes some template uses (the header and packet
        bytes, the event), not the zero packet area between; the kernel then
        copies from a buffer in cache, as from Snort's.  Off: the templates
        are sent from where they lie (16 MiB for 256 of them)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if templates.ndim != 2 or templates.dtype != np.uint8 or templates.shape[0] == 0:
            raise ValueError("templates must be a non-empty (n, length) uint8 array")
        self.path = path
        self._templates = np.ascontiguousarray(templates).copy()  # the stamp writes into it
        self._c_templates = ffi.from_buffer("uint8_t[]", self._templates, require_writable=True)
        if clock not in CLOCKS:
            raise ValueError(f"unknown clock {clock!r}; one of {', '.join(CLOCKS)}")
        self._flags = (MODES[mode] | (lib.INGEST_GEN_STAMP_BE if stamp_big_endian else 0)
                       | CLOCKS[clock])
        self._stamp = -1 if stamp_offset is None else stamp_offset
        # time_offset: where each alert gets its send time (seconds,
        # microseconds): the wall clock (a real sensor's alert time) or
        # CLOCK_MONOTONIC (the benchmark's latency probe)
        self._time = -1 if time_offset is None else time_offset
        self._stop = ffi.new("int *")
        self._hot = None
        self._hot_span = (0, 0)
        if hot and mode in ("sendto", "connect"):
            self._hot_span = hot_span(self._templates, ((self._stamp, 4), (self._time, 8)))
            self._hot = np.zeros(self._templates.shape[1], dtype=np.uint8)
            self._c_hot = ffi.from_buffer("uint8_t[]", self._hot, require_writable=True)

    def stop(self) -> None:
        self._stop[0] = 1

    def run(self, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
        n, tlen = self._templates.shape
        self._stop[0] = 0
        res = ffi.new("struct ingest_gen_result *")
        rc = lib.ingest_gen_dgram(os.fsencode(self.path), self._c_templates, tlen, n, count,
                                  float(rate), float(time_limit), self._flags, self._stamp,
                                  self._time, self._stop, res,
                                  ffi.NULL if self._hot is None else self._c_hot, *self._hot_span)
        return _result(rc, res, self.path)


def hot_span(templates: np.ndarray, keep: tuple[tuple[int, int], ...] = ()) -> tuple[int, int]:
    """(head, tail): the longest run of byte positions that are zero in
    every template and outside ``keep`` ((offset, length): the stamps) is
    [head, tail) (Alertpkt's unused packet area); the rest is what a sender
    rewrites per alert."""
    cols = np.asarray(templates.any(axis=0), dtype=bool)
    for off, n in keep:
        if off >= 0:
            cols[off: off + n] = True
    used = np.concatenate(([True], cols, [True]))
    edges = np.flatnonzero(np.diff(used.astype(np.int8)))  # alternating starts / ends of zero runs
    starts, ends = edges[0::2], edges[1::2]
    if not len(starts):
        return templates.shape[1], templates.shape[1]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def _result(rc: int, res, path: str) -> SendResult:
    """A C sending loop's outcome: its result, or GenError if it could not start."""
    err = _strerror(res.last_errno)
    if rc < 0:
        what = "bad arguments" if rc == lib.INGEST_EINVAL else err
        raise GenError(f"cannot send to {path}: {what}", 0 if rc == lib.INGEST_EINVAL else res.last_errno)
    return SendResult(int(res.sent), int(res.dropped), int(res.errors), float(res.elapsed),
                      bool(res.interrupted), bool(res.timed_out), err)


def _strerror(code: int) -> str:
    return "" if code == 0 else f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"


def start_in_thread(sender: Sender | LineSender, count: int, *, rate: float = 0.0, time_limit: float = 0.0,
                    name: str = "ingest-gen", cpus: set[int] | None = None,
                    ) -> tuple[list[SendResult | BaseException], threading.Event]:
    """Start sender.run in a daemon thread (pinned to ``cpus`` if given:
    the benchmarks' placement); the result (or its exception) lands in the
    returned list when the event is set."""
    box: list[SendResult | BaseException] = []
    done = threading.Event()  # not Thread.join: a join cut short by Ctrl-C can return early

    def work() -> None:
        try:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)  # Linux: this thread only
            box.append(sender.run(count, rate=rate, time_limit=time_limit))
        except BaseException as e:  # handed to the caller
            box.append(e)
        finally:
            done.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    return box, done


def send(sender: Sender | LineSender, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
    """Run sender in a worker thread so Ctrl-C stops it cleanly (the main
    thread keeps handling signals and sets the stop flag)."""
    # Ctrl-C may come as soon as the first alert is out, while Thread.start()
    # still waits for the thread: hold SIGINT until the wait below is armed
    # (the thread inherits the mask, so the signal stays the main thread's).
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        box, done = start_in_thread(sender, count, rate=rate, time_limit=time_limit)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a held Ctrl-C is raised here
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        sender.stop()  # the C loop sees it within ~50 ms
        while not done.wait(0.2):
            pass
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def sender_for(kind: str, path: str, templates: np.ndarray, *, mode: str | None = None,
               stamp: bool = True, time_stamp: bool = False,
               clock: str | None = None, hot: bool = True) -> Sender:
    """A Sender with kind's default mode and event-id stamp.  clock: each
    alert's time is its send time on that clock ("realtime": the wall
    clock, as a sensor stamps alerts; "monotonic": the latency probe), or
    None: the templates' own times.  time_stamp=True is clock="monotonic"."""
    _variant, _len, default_mode, ev_off, be = KINDS[kind]
    if time_stamp:
        clock = "monotonic"
    return Sender(path, templates, mode=mode or default_mode,
                  stamp_offset=ev_off if stamp else None, stamp_big_endian=be,
                  time_offset=time_offset(kind) if clock else None,
                  clock=clock or "monotonic", hot=hot)


class LineSender:
    """Suricata's eve-log unix_dgram / unix_stream sending loop (C) over
    caller-given newline-terminated records; ``stop()`` as for Sender."""

    def __init__(self, path: str, records: list[bytes], *, stream: bool,
                 offline: bool = False, clock: str | None = None) -> None:
        """clock "realtime": every record's time fields are moved to the
        wall clock of its send (records cycle: a store fed by them then
        looks like a real sensor's); None: the records go out as they are."""
        if not records or any(not r for r in records):
            raise ValueError("need at least one non-empty record")
        if clock not in (None, "realtime"):
            raise ValueError(f"unknown clock {clock!r}; 'realtime' or None")
        self.path = path
        self._data = bytearray(b"".join(records))  # restamping writes into it
        if len(self._data) >= 1 << 32:
            raise ValueError("records too large")
        self._ends = np.cumsum([len(r) for r in records], dtype=np.uint64).astype(np.uint32)
        self._c_data = ffi.from_buffer("uint8_t[]", self._data, require_writable=True)
        self._c_ends = ffi.from_buffer("uint32_t[]", self._ends)
        self._c_times = ffi.NULL
        if clock == "realtime":
            first, off, us = time_fields(records)
            self._times = (first, off, us)  # kept alive: C reads them while it runs
            self._c_times = ffi.new("struct ingest_gen_times *", {
                "first": ffi.from_buffer("uint32_t[]", first),
                "off": ffi.from_buffer("uint32_t[]", off),
                "us": ffi.from_buffer("int64_t[]", us)})
        self._flags = ((lib.INGEST_GEN_CONNECT if offline else lib.INGEST_GEN_DONTWAIT)
                       | (lib.INGEST_GEN_STREAM if stream else 0))
        self._stop = ffi.new("int *")

    def stop(self) -> None:
        self._stop[0] = 1

    def run(self, count: int, *, rate: float = 0.0, time_limit: float = 0.0) -> SendResult:
        self._stop[0] = 0
        res = ffi.new("struct ingest_gen_result *")
        rc = lib.ingest_gen_lines(os.fsencode(self.path), self._c_data, self._c_ends,
                                  len(self._ends), count, float(rate), float(time_limit),
                                  self._flags, self._c_times, self._stop, res)
        return _result(rc, res, self.path)


