"""The metrics endpoint's pure parts: the address rule, the per-input stats,
the event-id gap counter and the last-minute rings (their bound)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest import batch as B
from ingest.config import Config
from ingest.ops import metrics as M
from ingest.stats import Histogram, Stats


@pytest.mark.parametrize(("text", "want"), [
    ("9108", ("127.0.0.1", 9108, None)),
    (":9108", ("127.0.0.1", 9108, None)),
    ("0.0.0.0:80", ("0.0.0.0", 80, None)),
    ("[::1]:9108", ("::1", 9108, None)),
    ("localhost:1", ("localhost", 1, None)),
    ("unix:/run/ingest/m.sock", ("127.0.0.1", M.DEFAULT_PORT, "/run/ingest/m.sock")),
])
def test_address_forms(text, want):
    a = M.parse_address(text)
    assert (a.host, a.port, a.path) == want


@pytest.mark.parametrize("text", ["", "host:", "x:99999", "::1:80", "unix:", "a:b:c", "-1"])
def test_bad_addresses_say_why(text):
    with pytest.raises(ValueError):
        M.parse_address(text)


def test_loopback_or_not():
    assert M.parse_address("9108").loopback and M.parse_address("[::1]:1").loopback
    assert M.parse_address("unix:/x").loopback
    assert not M.parse_address("0.0.0.0:1").loopback and not M.parse_address("[::]:1").loopback
    assert not M.parse_address("example.org:1").loopback


def test_config_key_is_checked():
    assert Config().replace(metrics="9108").metrics == "9108"
    with pytest.raises(ValueError, match="metrics"):
        Config().replace(metrics="nope:nope")


def test_input_stats_count_for_the_input_and_for_all():
    s = Stats()
    a, b = s.for_input("snort:/a", "snort"), s.for_input("eve-stream:/b", "eve-stream")
    a.add_input(10, 9)
    a.add_malformed("bad_length", 1)
    b.add_input(5, 2)
    b.add_malformed("invalid_json", 3)
    b.add_dropped("queue_full", 4)
    b.internal_errors += 1  # an attribute written through the view is the shared one
    b.extra["x"] += 2
    snap = s.snapshot()
    assert (snap["received"], snap["decoded"]) == (15, 11)
    assert snap["malformed"] == {"bad_length": 1, "invalid_json": 3}
    assert snap["dropped"] == {"queue_full": 4} and snap["internal_errors"] == 1 and snap["x"] == 2
    per = s.input_snapshot()
    assert per["snort:/a"] == {"kind": "snort", "received": 10, "decoded": 9, "malformed": {"bad_length": 1}}
    assert per["eve-stream:/b"]["malformed"] == {"invalid_json": 3}


def test_histogram_buckets_are_cumulative():
    h = Histogram((1.0, 10.0))
    h.observe(0.5)
    h.observe_many(np.array([1.0, 5.0, 50.0]))
    buckets, total = h.snapshot()
    assert buckets == [("1.0", 2), ("10.0", 3), ("+Inf", 4)] and total == 56.5


def alerts(ids, *, sensor=0, source=B.SRC_SNORT, origin="snort:/s") -> B.AlertBatch:
    a = B.empty(len(ids))
    a["event_id"] = ids
    a["sensor_id"] = sensor
    a["source"] = source
    return B.AlertBatch(a, [], origin)


def test_event_id_gaps_late_and_restarts():
    g = M.EventIdGaps()
    g.observe(alerts([3, 4, 6]))  # a hole inside the first batch: 5
    g.observe(alerts([7, 10]))  # 8, 9 never arrived
    g.observe(alerts([8]))  # late (reordered): counted as late, not undone
    g.observe(alerts([11, 11, 12]))  # a repeat within a batch counts once
    g.observe(alerts([1, 2]))  # just below the highest: late, not a restart
    g.observe(alerts([2, 3], sensor=9))  # another sensor, its own sequence
    g.observe(alerts([5], source=B.SRC_EVE))  # EVE has no ordered event ids
    assert g.snapshot() == {("snort:/s", 0): [12, 3, 3, 0], ("snort:/s", 9): [3, 0, 0, 0]}
    g.observe(alerts([M.REORDER_WINDOW + 100]))
    g.observe(alerts([1, 2, 4]))  # far below: the engine started over
    assert g.snapshot()[("snort:/s", 0)] == [4, 3 + (M.REORDER_WINDOW + 100 - 12 - 1) + 1, 3, 1]


def test_event_id_sequences_are_bounded():
    g = M.EventIdGaps()
    for s in range(M.MAX_SEQUENCES + 10):
        g.observe(alerts([1], sensor=s))
    assert len(g.snapshot()) == M.MAX_SEQUENCES and g.ignored == 10


def test_last_minute_top_and_its_window():
    now = [1000.0]
    lm = M.LastMinute(clock=lambda: now[0])
    a = B.empty(6)
    a["gid"], a["sid"], a["rev"], a["priority"] = 1, [5, 5, 5, 6, 6, 7], 2, 1
    a["msg_idx"] = [0, 0, 0, 1, 1, -1]
    a["flags"] = [B.F_ADDRS] * 5 + [0]
    a["src_addr"][:] = np.frombuffer(b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1]), "V16")[0]
    lm.observe(B.AlertBatch(a, ["five", "six"], "x"))
    now[0] += 30
    lm.observe(B.AlertBatch(a[:1], ["five again"], "x"))
    sigs, talkers = lm.top()
    # the latest message seen wins (maps reloaded, a rule updated)
    assert sigs[0] == {"gid": 1, "sid": 5, "rev": 2, "msg": "five again", "priority": 1, "count": 4}
    assert [(s["sid"], s["count"], s["msg"]) for s in sigs[1:]] == [(6, 2, "six"), (7, 1, "")]
    assert talkers == [{"addr": "10.0.0.1", "count": 6}]
    now[0] += 31  # the first second has left the window
    sigs, talkers = lm.top()
    assert [(s["sid"], s["count"]) for s in sigs] == [(5, 1)] and talkers == [{"addr": "10.0.0.1", "count": 1}]


def test_last_minute_buckets_stay_bounded():
    lm = M.LastMinute(clock=lambda: 5.0)
    for k in range(10):  # many distinct signatures and talkers in one second
        a = B.empty(1000)
        a["sid"] = np.arange(1000) + 1000 * k
        a["sid"][:100] = 1  # one that stands out
        a["flags"] = B.F_ADDRS
        a["src_addr"] = np.frombuffer(np.random.default_rng(k).bytes(16 * 1000), "V16")
        lm.observe(B.AlertBatch(a, [], "x"))
    b = lm._buckets[5]
    assert len(b.sigs) <= 2 * M.BUCKET_CAP and len(b.talkers) <= 2 * M.BUCKET_CAP
    sigs, talkers = lm.top()
    assert sigs[0]["sid"] == 1 and sigs[0]["count"] == 1000 and len(sigs) == M.TOP_N
