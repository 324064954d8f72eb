"""Maps as a running ``ingest`` meets them: a malformed map refuses the start
(exit 2, FILE:LINE), a start-up line says what each map loaded, a reload
that fails keeps the old maps and says why (FILE:LINE), and the references
of sid-msg.map reach the JSON output and the store."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4

from ._util import snort_send

pytestmark = pytest.mark.slow

SID_MSG = "1000 || LOCAL test rule || cve,2003-0352 || url,example.com/x\n2000 || other\n"
REFERENCE = ("config reference: cve http://cve.mitre.org/cgi-bin/cvename.cgi?name=\n"
             "config reference: url http://\n")
CLASSIFICATION = "config classification: trojan-activity,A Network Trojan was detected,1\n"


def _maps(d):
    d.mkdir()
    (d / "snort-sid-msg.map").write_text(SID_MSG)  # a prefixed conventional name
    (d / "reference.config").write_text(REFERENCE)
    (d / "classification.config").write_text(CLASSIFICATION)
    return d


def _wait(cond, what, timeout=30.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_malformed_map_refuses_the_start(tmp_path, run_ingest):
    d = _maps(tmp_path / "maps")
    (d / "snort-sid-msg.map").write_text(SID_MSG + "\n# fine\nthis is no entry\n")
    sock = tmp_path / "s.sock"
    p = run_ingest(["listen", "--snort", str(sock), "--maps", str(d), "--sink", "null:"])
    assert p.proc.wait(timeout=30) == 2
    err = p.stderr().splitlines()
    assert err == [f"ingest: error: {d}/snort-sid-msg.map:5: not a sid-msg.map entry (v1 'sid || "
                   "msg || ref...' or v2 'gid || sid || rev || classification || priority || msg "
                   "|| ref...'): 'this is no entry'"]
    assert not sock.exists()


def test_start_up_line_references_in_output_and_store_and_a_failed_reload(tmp_path, run_ingest):
    d = _maps(tmp_path / "maps")
    sock, out, db = tmp_path / "s.sock", tmp_path / "a.json", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--maps", str(d), "--sink", f"jsonl:{out}",
                    "--sink", f"sqlite:{db}", "--stats-interval", "0"], wait_for=[sock])
    line = next(x for x in p.stderr().splitlines() if x.startswith("ingest: maps: "))
    assert line.startswith("ingest: maps: snort-sid-msg.map 2 signatures, classification.config "
                           "1 classifications, reference.config 2 reference systems (version ")
    pkt = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443)
    snort_send(sock, [encode_alertpkt("snort", msg="LOCAL test rule", sid=1000, class_id=1,
                                      event_id=1, packet=pkt)])
    _wait(lambda: out.exists() and out.read_text().count("\n") >= 1, "the first alert")
    # a reload that fails: the old maps stay, the reason names file and line
    (d / "snort-sid-msg.map").write_text(SID_MSG + "2001\n")
    p.proc.send_signal(signal.SIGHUP)
    _wait(lambda: f"{d}/snort-sid-msg.map:3: " in p.stderr(), "the reload's error")
    assert p.proc.poll() is None
    snort_send(sock, [encode_alertpkt("snort", msg="LOCAL test rule", sid=1000, class_id=1,
                                      event_id=2, packet=pkt)])
    _wait(lambda: out.read_text().count("\n") >= 2, "the second alert")
    rc, _ = p.stop()
    assert rc == 0
    want = ["http://cve.mitre.org/cgi-bin/cvename.cgi?name=2003-0352", "http://example.com/x"]
    for rec in map(json.loads, out.read_text().splitlines()):
        assert rec["alert"]["references"] == want
        assert rec["alert"]["category"] == "A Network Trojan was detected"
    con = sqlite3.connect(db)
    try:
        (refs,) = con.execute("SELECT DISTINCT refs FROM alerts_v").fetchone()
    finally:
        con.close()
    assert json.loads(refs) == want


def test_decode_says_what_the_maps_loaded_and_uses_them(tmp_path):
    """``ingest decode --maps`` prints the start-up line listen prints, and its
    output carries the map's signature text and references."""
    import subprocess
    import sys

    from ingest.encode import encode_alertpkt as enc

    from ..conftest import ROOT

    d = _maps(tmp_path / "maps")
    f = tmp_path / "dgrams.bin"
    f.write_bytes(enc("barnyard2", msg="", sid=1000, event_id=1, ts_sec=1700000000))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "ingest", "decode", "--maps", str(d), str(f)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith("ingest: maps: snort-sid-msg.map 2 signatures, "), p.stderr
    rec = json.loads(p.stdout)
    assert rec["alert"]["signature"] == "LOCAL test rule"
    assert rec["alert"]["references"][0].startswith("http://cve.mitre.org/")
