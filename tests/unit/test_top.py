"""``ingest top``'s arithmetic and layout (the live view itself is tested
for real in tests/integration/test_top.py)."""

from __future__ import annotations

import pytest

from ingest.ops.top import History, parse_endpoint, render, shorten


def doc(t: float, received: int, *, pid: int = 7, dispatched: int = 0, uptime: float | None = None,
        inputs: dict | None = None) -> dict:
    return {"version": 1, "time": t, "uptime_s": t - 1000 if uptime is None else uptime, "sensor": "s", "pid": pid,
            "inputs": inputs or {"snort:/run/s": {"kind": "snort", "received": received, "decoded": received,
                                                   "malformed": {}}},
            "sinks": {"null:": {"dispatched": dispatched, "errors": 0}}, "dropped": {},
            "queue": {"alerts": 0, "bytes": 0, "max_bytes": 1 << 29}, "spool": None,
            "readers": {"alive": 1, "dead": 0}, "window_s": 60, "top_signatures": [], "top_talkers": []}


def received(d: dict) -> float:
    return d["inputs"]["snort:/run/s"]["received"]


def test_rates_over_the_last_second_and_the_last_minute():
    h = History()
    h.add(doc(2000.0, 0))
    assert h.rate(received, 1.0) is None  # one poll: no rate yet
    for i in range(1, 91):  # 90 polls a second apart: 100/s, then 1000/s for the last 10
        h.add(doc(2000.0 + i, 100 * min(i, 80) + 1000 * max(i - 80, 0)))
    assert h.rate(received, 1.0) == pytest.approx(1000.0)
    # the last minute: 50 s at 100/s and 10 s at 1000/s
    assert h.rate(received, 60.0) == pytest.approx((50 * 100 + 10 * 1000) / 60)
    assert h.span() <= 61  # no more than a minute (and a poll) kept


def test_rates_use_the_endpoints_clock_not_the_poll_spacing():
    h = History()
    h.add(doc(100.0, 0))
    h.add(doc(102.5, 500))  # a slow poll: 2.5 s between answers
    assert h.rate(received, 1.0) == pytest.approx(200.0)


def test_a_restarted_process_starts_the_history_again():
    h = History()
    h.add(doc(100.0, 5000))
    h.add(doc(101.0, 6000))
    h.add(doc(102.0, 10, pid=8, uptime=1.0))
    assert h.rate(received, 1.0) is None
    h.add(doc(103.0, 110, pid=8, uptime=2.0))
    assert h.rate(received, 60.0) == pytest.approx(100.0)


def test_a_counter_that_goes_down_is_no_negative_rate():
    h = History()
    h.add(doc(100.0, 5000))
    h.add(doc(101.0, 10))
    assert h.rate(received, 1.0) == 0.0


def test_shorten_keeps_the_head_and_the_tail():
    assert shorten("snort:/run/s", 30) == "snort:/run/s"
    s = shorten("eve-stream:/a/very/long/directory/path/to/the/eve.sock", 30)
    assert len(s) == 30 and s.startswith("eve-stream") and s.endswith("eve.sock") and "…" in s


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 60)])
def test_the_screen_fits_the_terminal_whatever_it_holds(size):
    from rich.console import Console

    width, height = size
    long = "/var/run/ingest/" + "x" * 120
    inputs = {f"snort:{long}{i}": {"kind": "snort", "received": 10**12, "decoded": 10**12,
                                   "malformed": {f"reason_{j}": 10**9 for j in range(30)}} for i in range(40)}
    d = doc(1.0, 0, inputs=inputs)
    d["dropped"] = {f"dropped_reason_{j}": 10**9 for j in range(30)}
    d["spool"] = {"bytes": 1 << 40, "max_bytes": 1 << 30}
    d["top_signatures"] = [{"gid": 1, "sid": 10**9 + i, "rev": 1, "msg": "M" * 300, "priority": 1, "count": 10**9}
                           for i in range(10)]
    d["top_talkers"] = [{"addr": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "count": 10**9} for _ in range(10)]
    h = History()
    h.add(d)
    c = Console(width=width, height=height, record=True, force_terminal=False)
    c.print(render(d, h, width=width, height=height, target="127.0.0.1:9108"))
    lines = c.export_text().splitlines()
    assert lines[0].startswith("ingest top")
    assert all(len(line) <= width for line in lines), max(lines, key=len)


def test_unreachable_is_said_on_screen():
    from rich.console import Console

    c = Console(width=80, height=24, record=True, force_terminal=False)
    c.print(render(None, History(), width=80, height=24, target="127.0.0.1:9",
                   error="Connection refused"))
    assert "cannot reach 127.0.0.1:9: Connection refused; retrying" in c.export_text()


@pytest.mark.parametrize("text, want", [("9108", "127.0.0.1:9108"), ("0.0.0.0:1", "0.0.0.0:1"),
                                        ("[::1]:9108", "[::1]:9108"), ("unix:/run/m.sock", "unix:/run/m.sock")])
def test_endpoints_as_metrics_takes_them(text, want):
    assert str(parse_endpoint(text)) == want


@pytest.mark.parametrize("text", ["", "x", "host:", "::1:9108", "70000", "unix:"])
def test_bad_endpoints_are_refused(text):
    with pytest.raises(ValueError):
        parse_endpoint(text)
