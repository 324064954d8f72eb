"""One alert per Barnyard2 event.

Barnyard2's ``alert_unixsock`` sends one datagram per Unified2 *packet
record*, each carrying the whole event: an event with two packets (a
stream-reassembled alert, a tagged session) arrives twice, byte for byte the
same event.  The Unified2 reader and Snort's own unix socket give one alert
per event, so the copies are dropped here, before the batch is queued: every
sink, JSON lines included, gets the event once, and each copy is counted
(``barnyard2_duplicates``).

An event is (sensor_id, event_id, event time, gid, sid, rev): Snort numbers
events per run and the time tells runs apart.  Each reader keeps the keys of
the last :data:`WINDOW` Barnyard2 events it passed (the copies come back to
back, as Barnyard2 walks the spool), and a batch is checked against them in
one vectorised step.  The window does not survive a restart: a Barnyard2
that resends from its waldo then is caught by the store's unique key on the
same columns (``alerts_by2_key``); JSON sinks are at-least-once there.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import batch as B
from ..stats import Stats

#: Barnyard2 events remembered per reader
WINDOW = 4096

# The key's columns as one fixed-size record, compared as raw bytes.
_KEY = np.dtype([("ts_us", "<i8"), ("sensor_id", "<u4"), ("event_id", "<u4"), ("gid", "<u4"),
                 ("sid", "<u4"), ("rev", "<u4")])
_VOID = np.dtype((np.void, _KEY.itemsize))


def _keys(alerts: np.ndarray) -> np.ndarray:
    k = np.empty(len(alerts), dtype=_KEY)
    for name in _KEY.names or ():
        k[name] = alerts[name]
    return k.view(_VOID)


class RecentEvents:
    """The last :data:`WINDOW` Barnyard2 event keys a reader passed on."""

    def __init__(self, window: int = WINDOW) -> None:
        self._ring = np.zeros(window, dtype=_VOID)
        self._n = 0  # keys stored so far (the ring holds min(n, window))
        self._lock = threading.Lock()  # one Barnyard2 may use several connections

    def duplicates(self, alerts: np.ndarray) -> np.ndarray:
        """A mask of the alerts that repeat a Barnyard2 event already passed
        (in this batch or an earlier one); remembers the others."""
        by2 = (alerts["source"] == B.SRC_BARNYARD2) | (alerts["source"] == B.SRC_BARNYARD2_32)
        dup = np.zeros(len(alerts), dtype=bool)
        if not by2.any():
            return dup
        rows = np.flatnonzero(by2)
        keys = _keys(alerts[rows])
        # the first alert of each key in this batch, in batch order
        _, first = np.unique(keys, return_index=True)
        seen_in_batch = np.ones(len(rows), dtype=bool)
        seen_in_batch[first] = False
        with self._lock:
            held = self._ring[: min(self._n, len(self._ring))]
            repeat = seen_in_batch | np.isin(keys, held)
            new = keys[~repeat]
            self._remember(new)
        dup[rows[repeat]] = True
        return dup

    def drop_repeats(self, alerts: np.ndarray, stats: Stats) -> np.ndarray:
        """alerts without the repeated Barnyard2 events, each counted as
        ``barnyard2_duplicates``."""
        dup = self.duplicates(alerts)
        if not dup.any():
            return alerts
        stats.add_extra("barnyard2_duplicates", int(dup.sum()))
        return alerts[~dup]

    def _remember(self, new: np.ndarray) -> None:
        cap = len(self._ring)
        if len(new) >= cap:
            self._ring[:] = new[-cap:]
            self._n += len(new)
            return
        at = self._n % cap
        head = min(len(new), cap - at)
        self._ring[at: at + head] = new[:head]
        self._ring[: len(new) - head] = new[head:]
        self._n += len(new)
