"""How ``ingest bench`` knows a receiver handled the last record: the
periodic stats line of ingest (parsed here), and FEVER's lossless command
line.  No timing is looked at."""

from __future__ import annotations

import io
import json
from pathlib import Path

from ingest.bench import eve
from ingest.bench.common import StatsClock, all_dispatched, parse_stats_line
from ingest.stats import Stats


def _line(received: int, decoded: int, dispatched: dict[str, int]) -> str:
    st = Stats()
    st.add_input(received, decoded)
    for sink, n in dispatched.items():
        st.dispatched[sink] += n
    return st.line()


def test_parse_stats_line_reads_ingests_own_line() -> None:
    f = parse_stats_line(_line(2000, 1510, {"null": 1510}))
    assert f is not None
    assert f["received"] == 2000 and f["decoded"] == 1510 and f["dispatched"] == {"null": 1510}
    assert parse_stats_line(_line(0, 0, {}))["dispatched"] == {}
    assert parse_stats_line("ingest: final stats {}") is None
    assert parse_stats_line("something else") is None


def test_all_dispatched_waits_for_every_record_and_every_sink() -> None:
    done = all_dispatched(2000)
    assert done(parse_stats_line(_line(2000, 1510, {"null": 1510})))
    assert not done(parse_stats_line(_line(1999, 1509, {"null": 1509})))  # not all read
    assert not done(parse_stats_line(_line(2000, 1510, {"null": 1400})))  # not all handed on
    assert not done(parse_stats_line(_line(2000, 1510, {"null": 1510, "sqlite": 3})))
    assert not done(parse_stats_line(_line(2000, 0, {})))  # nothing dispatched yet


def test_stats_clock_stops_at_the_first_line_that_is_done() -> None:
    lines = [_line(10, 8, {"null": 2}), _line(20, 16, {"null": 16}), _line(20, 16, {"null": 16}),
             'ingest: final stats {"received": 20}']
    clock = StatsClock(io.BytesIO("".join(x + "\n" for x in lines).encode()), all_dispatched(20))
    text = clock.text()
    assert clock.done_at is not None and clock.done_fields is not None
    assert clock.done_fields["dispatched"] == {"null": 16}
    assert "final stats" in text
    never = StatsClock(io.BytesIO((lines[0] + "\n").encode()), all_dispatched(20))
    never.text()
    assert never.done_at is None


def test_fever_runs_lossless_and_forwards_only_the_end_marker(tmp_path: Path) -> None:
    cmd = eve._command("fever", str(tmp_path / "in.sock"), 10, tmp_path)
    assert "--in-buffer-drop=false" in cmd  # block, never drop (FEVER's default drops)
    assert cmd[cmd.index("-t") + 1] == eve.FEVER_END_TYPE
    # everything FEVER writes is in the bench's directory (its default is /tmp)
    for opt in ("-o", "--logfile", "--mgmt-socket"):
        assert Path(cmd[cmd.index(opt) + 1]).parent == tmp_path
    marker = eve.fever_end_marker([b'{"event_type":"alert","src_ip":"10.0.0.1"}\n'])
    assert marker.endswith(b"\n") and marker.count(b"\n") == 1
    assert json.loads(marker) == {"event_type": eve.FEVER_END_TYPE, "src_ip": "10.0.0.1"}
