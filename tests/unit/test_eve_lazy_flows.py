"""Flow rows of EVE flow/netflow events are made when a store asks for them
(EventBatch.flows), not when the batch is decoded: an input into ``null:`` or
a JSON sink never parses them.  The rows are the same either way, a flow
event Python may refuse (long enough to hold an integer past
``sys.get_int_max_str_digits()``) is still decoded at once and rejected
alone, and a concatenation of lazy batches stays lazy."""

from __future__ import annotations

import pathlib
import sys

import orjson
import pytest

from ingest.batch import AlertBatch, EventBatch
from ingest.eve import decode_lines, flow_row

from ..eve_records import ALERT, FLOW

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "eve"


def eager_rows(lines: list[bytes]) -> tuple[list[tuple], list[int]]:
    """What the decoder made before: every flow/netflow line parsed at once."""
    rows, at = [], []
    for k, line in enumerate(lines):
        ev = orjson.loads(line)
        if ev.get("event_type") in ("flow", "netflow"):
            row = flow_row(ev)
            if row is not None:
                rows.append(row)
                at.append(k)
    return rows, at


def mixed(n: int = 60) -> list[bytes]:
    out = []
    for i in range(n):
        out.append(ALERT % (i, i, i) if i % 3 else FLOW % i)
        if i % 7 == 0:
            out.append(b'{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"dns","dns":{"q":1}}')
    return out


def test_rows_are_made_on_first_use_and_equal_the_eager_ones():
    lines = mixed()
    r = decode_lines(b"\n".join(lines) + b"\n")
    ev = r.batch.events
    assert ev is not None and ev.flows_pending and ev.pending_flows == 20
    assert ev.types == {"flow": 20, "dns": 9}
    passed = ev.lines.splitlines()
    rows, at = eager_rows(passed)
    assert len(rows) == 20
    assert ev.flows == rows and ev.flow_line == at
    assert not ev.flows_pending and ev.pending_flows == 0


def test_the_byte_budget_charges_pending_rows_as_made_ones():
    r = decode_lines(b"\n".join(mixed()) + b"\n")
    ev = r.batch.events
    before = ev.nbytes()
    assert ev.flows_pending
    ev.flows  # noqa: B018 - make them
    assert ev.nbytes() == before


@pytest.mark.skipif(not (SHARED / "zeus-suricata-7.0.7" / "eve.json").exists(), reason="no shared data")
def test_real_suricata_flows_lazy_equal_eager():
    data = (SHARED / "zeus-suricata-7.0.7" / "eve.json").read_bytes()
    r = decode_lines(data)
    ev = r.batch.events
    rows, at = eager_rows(ev.lines.splitlines())
    assert len(rows) == 205 and ev.flows == rows and ev.flow_line == at


def test_long_flow_events_are_decoded_at_once_and_a_refused_one_is_rejected_alone():
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # the smallest limit Python takes
    try:
        big = b"1" + b"0" * 700  # beyond the limit: this record is refused
        long_ok = FLOW.replace(b'"flow_id":%d', b'"flow_id":%d,"pad":"' + b"x" * 700 + b'"') % 5
        poison = FLOW.replace(b'"pkts_toserver":3', b'"pkts_toserver":' + big) % 6
        lines = [FLOW % 1, long_ok, poison, ALERT % (1, 1, 1), FLOW % 2]
        r = decode_lines(b"\n".join(lines) + b"\n")
        assert [(i, reason) for i, reason, _raw in r.rejected] == [(2, "unparsable")]
        assert r.counts.get("unparsable") == 1 and len(r.batch) == 1
        ev = r.batch.events
        assert ev.count == 3 and ev.flows_pending and ev.types == {"flow": 3}
        rows, at = eager_rows([FLOW % 1, long_ok, FLOW % 2])
        assert ev.flows == rows and ev.flow_line == at == [0, 1, 2]
    finally:
        sys.set_int_max_str_digits(old)


def test_concat_of_lazy_batches_stays_lazy_and_shifts_lines():
    a = decode_lines(b"\n".join(mixed(30)) + b"\n").batch
    b = decode_lines(b"\n".join(mixed(12)) + b"\n").batch
    both = AlertBatch.concat([a, b])
    ev = both.events
    assert isinstance(ev, EventBatch) and ev.flows_pending
    assert ev.pending_flows == a.events.pending_flows + b.events.pending_flows
    rows, at = eager_rows(ev.lines.splitlines())
    assert ev.flows == rows and ev.flow_line == at
    assert ev.flows == a.events.flows + b.events.flows
