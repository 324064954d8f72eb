"""One alert per Barnyard2 event: the reader's window of recent events."""

from __future__ import annotations

import numpy as np

from ingest import batch as B
from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.sources.barnyard2_events import RecentEvents
from ingest.stats import Stats


def by2(event_id: int, *, sid: int = 1, ts: int = 1700000000, variant: str = "barnyard2", port: int = 1,
        sensor: int = 0) -> bytes:
    # a different packet per record, as Barnyard2 sends one datagram per packet record
    return encode_alertpkt(variant, sid=sid, event_id=event_id, ts_sec=ts, sensor_id=sensor,
                           packet=ether_ipv4("10.0.0.1", "10.0.0.2", 6, port, 80))


def alerts(dgrams: list[bytes]) -> np.ndarray:
    return decode_datagrams(dgrams).batch.alerts


def test_a_repeated_event_in_one_batch_is_dropped_and_counted():
    w, st = RecentEvents(), Stats()
    a = alerts([by2(1), by2(2), by2(2, port=2), by2(3)])
    kept = w.drop_repeats(a, st)
    assert kept["event_id"].tolist() == [1, 2, 3]
    assert kept["src_port"].tolist() == [1, 1, 1]  # the first copy is the one kept
    assert st.extra["barnyard2_duplicates"] == 1


def test_a_repeat_in_a_later_batch_is_dropped():
    w, st = RecentEvents(), Stats()
    assert len(w.drop_repeats(alerts([by2(1), by2(2)]), st)) == 2
    kept = w.drop_repeats(alerts([by2(2, port=9), by2(3), by2(1, port=9, variant="barnyard2-32")]), st)
    assert kept["event_id"].tolist() == [3]
    assert st.extra["barnyard2_duplicates"] == 2


def test_different_events_are_all_kept():
    # same event id with another time, signature or sensor: another event
    w, st = RecentEvents(), Stats()
    a = alerts([by2(1), by2(1, ts=1700000001), by2(1, sid=2), by2(1, sensor=3)])
    assert len(w.drop_repeats(a, st)) == 4 and "barnyard2_duplicates" not in st.extra


def test_snort_alerts_are_never_touched():
    # Snort's unix socket sends each alert once; several alerts of one packet
    # may share everything but the signature, or even repeat
    w, st = RecentEvents(), Stats()
    d = encode_alertpkt("snort", sid=1, event_id=5, ts_sec=1700000000)
    a = alerts([d, d, d])
    assert (a["source"] == B.SRC_SNORT).all()
    assert len(w.drop_repeats(a, st)) == 3


def test_the_window_is_bounded_and_forgets_the_oldest():
    w, st = RecentEvents(window=8), Stats()
    for first in range(0, 40, 4):
        w.drop_repeats(alerts([by2(i) for i in range(first, first + 4)]), st)
    assert len(w._ring) == 8
    # the last 8 events are remembered, older ones are not
    assert len(w.drop_repeats(alerts([by2(39), by2(32)]), st)) == 0
    assert len(w.drop_repeats(alerts([by2(31)]), st)) == 1


def test_a_batch_larger_than_the_window():
    w, st = RecentEvents(window=4), Stats()
    kept = w.drop_repeats(alerts([by2(i) for i in range(10)] + [by2(9, port=5)]), st)
    assert len(kept) == 10 and st.extra["barnyard2_duplicates"] == 1
    assert len(w.drop_repeats(alerts([by2(9), by2(6), by2(5)]), st)) == 1
