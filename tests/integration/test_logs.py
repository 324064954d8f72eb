"""``--log-format json`` and ``--log-level``: a real ``ingest listen`` whose
stderr is read back line by line."""

from __future__ import annotations

import json
import os

from ingest.encode import encode_alertpkt, ether_ipv4

from ..eve_records import ALERT
from ._util import snort_send, wait_until


def records(p) -> list[dict]:
    """Every complete stderr line as a JSON object (json.loads raises on any other line)."""
    return [json.loads(line) for line in p.stderr().split("\n")[:-1]]


def test_json_lines_carry_level_logger_input_and_the_stats_counters(tmp_path, run_ingest):
    snort, eve = tmp_path / "snort_alert", tmp_path / "eve.json"
    eve.write_bytes(b"".join(ALERT % (i, 7, i) + b"\n" for i in range(3)))
    p = run_ingest(["listen", "--snort", str(snort), "--eve-file", str(eve), "--sink", f"jsonl:{tmp_path / 'o.json'}",
                    "--stats-interval", "0.3", "--log-format", "json"])
    wait_until(lambda: any("listening on" in r["msg"] for r in records(p)), p, "listening")
    pkt = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443)
    snort_send(snort, [encode_alertpkt("snort", msg="m", sid=1, packet=pkt)] * 2)
    # a followed file cut short under ingest: an info message about that input
    wait_until(lambda: any(r["msg"].startswith("stats ") and r["received"] >= 5 for r in records(p)),
               p, "a stats record counting the five inputs")
    eve.write_text("")
    wait_until(lambda: any("truncated" in r["msg"] for r in records(p)), p, "truncation message")
    rc, _ = p.stop()
    assert rc == 0
    recs = records(p)
    for r in recs:
        assert set(r) >= {"ts", "level", "logger", "msg"}, r
        assert r["ts"].endswith("Z") and r["level"] in ("debug", "info", "warning", "error")
        assert not r["msg"].startswith("ingest:"), r  # the level is a field, not a prefix
    start = next(r for r in recs if r["msg"].startswith("listening on"))
    assert start["inputs"] == [f"snort:{snort}", f"eve-file:{eve}"] and start["level"] == "info"
    cut = next(r for r in recs if "truncated" in r["msg"])
    assert cut["input"] == f"eve-file:{eve}" and cut["logger"] == "ingest.sources.tail"
    stats = [r for r in recs if r["logger"] == "ingest.stats"]
    periodic = [r for r in stats if not r["final"]]
    assert periodic and periodic[-1]["msg"].startswith("stats received=")
    assert periodic[-1]["received"] == 5 and periodic[-1]["decoded"] == 5
    assert isinstance(periodic[-1]["dispatched"], dict)
    final = stats[-1]
    assert final["final"] is True and final["msg"].startswith("final stats {")
    assert final["dispatched"] == {f"jsonl:{tmp_path / 'o.json'}": 5}


def test_an_error_names_its_input_in_json(tmp_path, run_ingest):
    """Someone removes the socket ingest bound: an error record whose
    ``input`` is that socket's input."""
    snort = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(snort), "--sink", f"jsonl:{tmp_path / 'o.json'}",
                    "--stats-interval", "0", "--log-format", "json"])
    wait_until(lambda: any("listening on" in r["msg"] for r in records(p)), p, "listening")
    snort.unlink()
    wait_until(lambda: any(r["level"] == "error" for r in records(p)), p, "the error record")
    p.stop()
    err = next(r for r in records(p) if r["level"] == "error")
    assert err["input"] == f"snort:{snort}" and err["logger"] == "ingest.sockets"
    assert "is no longer ours" in err["msg"]


def test_log_level_drops_what_is_below_it(tmp_path, run_ingest):
    """A socket in a directory every user may write: a warning.  At
    --log-level warning it is there and the info lines (start-up, stats)
    are not; at error, not even the warning."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)  # writable by all, not sticky
    out = {}
    for level in ("warning", "error"):
        sock = open_dir / f"snort_{level}"
        p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{tmp_path / level}.json",
                        "--stats-interval", "0.2", "--log-level", level])
        wait_until(lambda sock=sock: sock.exists(), p, "socket")
        snort_send(sock, [encode_alertpkt("snort", msg="m", sid=1)])
        wait_until(lambda level=level: (tmp_path / f"{level}.json").exists()
                   and (tmp_path / f"{level}.json").read_text().count("\n") == 1, p, "the alert stored")
        rc, _ = p.stop()
        assert rc == 0
        out[level] = p.stderr()
    warning = f"ingest: warning: {open_dir} is writable by every user and not sticky"
    assert warning in out["warning"]
    assert all(line.startswith("ingest: warning: ") for line in out["warning"].splitlines()), out["warning"]
    assert "listening on" not in out["warning"] and "stats" not in out["warning"]
    assert out["error"] == ""


def test_text_is_the_default_and_unchanged(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{tmp_path / 'o.json'}",
                    "--stats-interval", "0"], wait_for=[sock])
    rc, st = p.stop()
    assert rc == 0 and st["received"] == 0
    lines = p.stderr().splitlines()
    assert f"ingest: listening on snort:{sock}; sinks: jsonl:{tmp_path / 'o.json'}" in lines
    assert lines[-1].startswith("ingest: final stats {")
