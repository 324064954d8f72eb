"""``--rules`` as a running ``ingest`` meets it: the start-up line, bad rule
lines reported FILE:LINE as warnings (never fatal), the rules' messages and
references on alerts that arrive without them (Barnyard2 with an empty
message), SIGHUP reloading the rules, and an unreadable rule file refusing
the start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.encode import encode_alertpkt, ether_ipv4

from ..conftest import ROOT
from ._util import snort_send, wait_until

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent.parent / "data" / "rules"

RULES = ('alert tcp any any -> any any (msg:"LOCAL first \\"text\\"\\; v1"; '
         'reference:cve,2003-0352; classtype:trojan-activity; sid:1000001; rev:1;)\n'
         '# alert tcp any any -> any any (msg:"LOCAL disabled"; sid:1000002; rev:1;)\n'
         'alert tcp any any -> any any (msg:"LOCAL no sid";)\n')
REFERENCE = "config reference: cve http://cve.mitre.org/cgi-bin/cvename.cgi?name=\n"


def _alert(sid: int, event_id: int) -> bytes:
    return encode_alertpkt("barnyard2", msg="", sid=sid, event_id=event_id, ts_sec=1700000000,
                           packet=ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443))


def test_decode_with_the_real_corpus_and_a_bad_line(tmp_path):
    rules = tmp_path / "local.rules"
    rules.write_text(RULES)
    f = tmp_path / "dgrams.bin"
    # ET (commented out in the corpus), Snort 2 decoder (gid 116), a local rule
    f.write_bytes(_alert(2008446, 1) + _alert(1000001, 2) + _alert(1000002, 3))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "ingest", "decode", "--rules", str(DATA / "et-snort"),
                        "--rules", str(rules), "--classification", str(DATA / "classification.config"),
                        str(f)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    err = p.stderr.splitlines()
    assert err[0].startswith("ingest: maps: classification.config 43 classifications, 2 rule files "
                             "63 rules + 18 commented out, 1 bad rule lines (version "), err
    assert err[1] == (f"ingest: warning: rules: {rules}:3: no sid: "
                      "'alert tcp any any -> any any (msg:\"LOCAL no sid\";)'")
    recs = [json.loads(x) for x in p.stdout.splitlines()]
    assert [r["alert"]["signature"] for r in recs] == [
        "ET DNS Excessive DNS Responses with 1 or more RR's (100+ in 10 seconds) - possible Cache "
        "Poisoning Attempt", 'LOCAL first "text"; v1', "LOCAL disabled"]
    assert recs[0]["alert"]["references"] == ["url,doc.emergingthreats.net/bin/view/Main/2008446"]
    assert recs[1]["alert"]["references"] == ["cve,2003-0352"]


def test_listen_loads_reports_and_reloads_rules_on_sighup(tmp_path, run_ingest):
    rules, ref = tmp_path / "local.rules", tmp_path / "reference.config"
    rules.write_text(RULES)
    ref.write_text(REFERENCE)
    sock, out = tmp_path / "by2.sock", tmp_path / "a.json"
    p = run_ingest(["listen", "--barnyard2", str(sock), "--rules", str(rules), "--reference", str(ref),
                    "--sink", f"jsonl:{out}", "--stats-interval", "0"], wait_for=[sock])
    err = p.stderr()
    assert "ingest: maps: reference.config 1 reference systems, local.rules 1 rules + 1 commented " \
           "out, 1 bad rule lines (version " in err
    assert f"ingest: warning: rules: {rules}:3: no sid: " in err
    snort_send(sock, [_alert(1000001, 1)])
    wait_until(lambda: out.exists() and out.read_text().count("\n") >= 1, p, "the first alert")
    # the rule changes (new text, new reference, the bad line fixed); SIGHUP reloads it
    rules.write_text('alert tcp any any -> any any (msg:"LOCAL first v2"; reference:cve,2024-1; '
                     'sid:1000001; rev:2;)\n')
    p.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "maps reloaded: reference.config 1 reference systems, local.rules 1 rules + 0 "
               "commented out (version " in p.stderr(), p, "the reload")
    snort_send(sock, [_alert(1000001, 2)])
    wait_until(lambda: out.read_text().count("\n") >= 2, p, "the second alert")
    # a reload that cannot read the rules keeps them
    rules.unlink()
    p.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: f"reloading maps failed, keeping the old ones: --rules {rules}: No such file"
               in p.stderr(), p, "the failed reload")
    snort_send(sock, [_alert(1000001, 3)])
    wait_until(lambda: out.read_text().count("\n") >= 3, p, "the third alert")
    rc, _ = p.stop()
    assert rc == 0
    recs = [json.loads(x)["alert"] for x in out.read_text().splitlines()]
    assert [(r["signature"], r["references"]) for r in recs] == [
        ('LOCAL first "text"; v1', ["http://cve.mitre.org/cgi-bin/cvename.cgi?name=2003-0352"]),
        ("LOCAL first v2", ["http://cve.mitre.org/cgi-bin/cvename.cgi?name=2024-1"]),
        ("LOCAL first v2", ["http://cve.mitre.org/cgi-bin/cvename.cgi?name=2024-1"])]


def test_unreadable_rules_refuse_the_start(tmp_path, run_ingest):
    sock = tmp_path / "by2.sock"
    p = run_ingest(["listen", "--barnyard2", str(sock), "--rules", str(tmp_path / "nope.rules"),
                    "--sink", "null:"])
    assert p.proc.wait(timeout=60) == 2
    assert p.stderr().splitlines() == [f"ingest: error: --rules {tmp_path}/nope.rules: "
                                       "No such file or directory"]
    assert not sock.exists()
