"""Rule files as the signature map (ingest.rules, Maps.load(rules=...)).

The corpus in tests/data/rules is real (tests/data/rules/SOURCES.md says
where each file comes from): Emerging Threats open (Snort flavour),
Suricata's own event rules (commented-out and '\\'-continued rules), Snort
2's preproc decoder rules (gid 116) and an excerpt of the Snort 3 community
rules (service rules).  The exact counts below were read off the files
independently (grep; see SOURCES.md) and a naive per-line count agrees
with them in the test, so a parser that drops or invents rules fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ingest import rules as R
from ingest.maps import MapError, Maps

DATA = Path(__file__).resolve().parent.parent / "data" / "rules"
CLASSES = str(DATA / "classification.config")

# file -> (active rules, commented-out rules), read with grep (SOURCES.md)
COUNTS = {
    "et-snort/emerging-dns.rules": (62, 17),
    "snort2/decoder.rules": (139, 0),
    "snort3/snort3-community-excerpt.rules": (214, 0),
    "suricata/decoder-events.rules": (123, 5),
    "suricata/dnp3-events.rules": (8, 0),
    "suricata/stream-events.rules": (59, 8),
}
_ACTIVE = re.compile(r"^(alert|drop|pass|reject|log|sdrop|block) ")
_COMMENTED = re.compile(r"^#+ ?(alert|drop|pass|reject|log|sdrop|block) .*sid")


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_real_file_gives_exactly_its_rules(name):
    rs = R.load([str(DATA / name)])
    active, disabled = COUNTS[name]
    assert (rs.active, rs.disabled, rs.bad, rs.duplicates) == (active, disabled, 0, 0), rs.problems
    assert len(rs.rules) == active + disabled
    # the naive count of rule starts agrees (a continued rule starts on one line)
    lines = (DATA / name).read_text().splitlines()
    assert sum(1 for x in lines if _ACTIVE.match(x)) == active
    assert sum(1 for x in lines if _COMMENTED.match(x)) == disabled
    # every sid the file names in a rule is there (and nothing else)
    sids = {int(m) for x in lines if _ACTIVE.match(x) or _COMMENTED.match(x)
            for m in re.findall(r"[; (]sid: ?(\d+)", x)}
    continued = {int(m) for m in re.findall(r"sid:(\d+)", (DATA / name).read_text())}
    assert {s for _, s in rs.rules} == (sids | continued if "dnp3" in name else sids)


def test_whole_corpus_as_directories_and_specific_signatures():
    m = Maps.load(rules=[str(DATA / d) for d in ("et-snort", "suricata", "snort2", "snort3")],
                  classification=CLASSES)
    assert len(m.signatures) == sum(a + d for a, d in COUNTS.values())
    assert m.bad_rules == 0 and m.warnings() == []
    assert m.rules_summary == "6 rule files 605 rules + 30 commented out"
    # ET, commented out (disabled): still gives its text; classtype -> priority
    s = m.signature(1, 2008446)
    assert s.msg == ("ET DNS Excessive DNS Responses with 1 or more RR's (100+ in 10 seconds) - "
                     "possible Cache Poisoning Attempt")
    assert (s.rev, s.classification, s.priority) == (9, "bad-unknown", 2)
    assert s.refs == ("url,doc.emergingthreats.net/bin/view/Main/2008446",)
    s = m.signature(1, 2014701)
    assert s.msg == "ET DNS Non-DNS or Non-Compliant DNS traffic on DNS port Opcode 6 or 7 set"
    assert (s.classification, s.priority) == ("policy-violation", 1)
    # Snort 2 preprocessor rule: gid 116, "msg: " with a space, two references
    s = m.signature(116, 291)
    assert (s.msg, s.classification, s.priority) == (
        "DECODE_IPV6_TUNNELED_IPV4_TRUNCATED", "attempted-dos", 2)
    assert s.refs == ("cve,2008-2136", "bugtraq,29235") and s.metadata == ("rule-type decode",)
    # Snort 3 service rule (no addresses), gid given, metadata list
    s = m.signature(1, 42886)
    assert s.msg == "MALWARE-CNC HttpBrowser User-Agent outbound communication attmept"
    assert (s.rev, s.classification, s.priority) == (4, "trojan-activity", 1)
    assert s.metadata == ("impact_flag red", "ruleset community")
    s = m.signature(1, 105)
    assert (s.msg, s.rev, s.classification, s.priority) == (
        "MALWARE-BACKDOOR - Dagger_1.4.0", 14, "misc-activity", 3)
    # Suricata: a rule continued over four lines, and a commented-out one
    s = m.signature(1, 2270005)
    assert (s.msg, s.rev, s.priority) == ("SURICATA DNP3 Too many points in message", 1, 3)
    assert m.signature(1, 2200007).msg == "SURICATA IPv4 padding required "


def test_syntax_variants():
    text = r'''
# a comment that mentions alert but is prose
var HOME_NET any
alert tcp any any -> any any (msg:"semi\; colon and \"quotes\" \\ back"; content:"a|3b|b"; nocase; sid:1; rev:3;)
alert http (msg:"Snort 3 service rule"; http_uri; content:"/x",fast_pattern,nocase; service:http; sid:2; rev:1; classtype:trojan-activity)
alert ( gid:116; sid:424; rev:2; msg:"(eth) truncated ethernet header"; rem:"a remark; with a semicolon"; )
alert tcp any any -> any any ( \
    msg:"continued"; \
    sid:3; priority:4; classtype:trojan-activity; )
#alert udp any any -> any any ( \
#    msg:"commented and continued"; sid:4; )
drop ip any any -> any any (msg:"pcre with a stray quote"; pcre:"/a"b/"; sid:5; rev:1;)
alert tcp any any -> any any (msg:"metadata"; metadata:created_at 2010_01_01, updated_at 2020_02_02; sid:6;)
'''
    rs = R.RuleSet()
    R.read_text(text, "x.rules", rs)
    assert rs.bad == 0, rs.problems
    assert (rs.active, rs.disabled) == (6, 1)
    r = rs.rules
    assert r[(1, 1)].msg == 'semi; colon and "quotes" \\ back' and r[(1, 1)].rev == 3
    assert r[(1, 2)].classtype == "trojan-activity" and r[(1, 2)].msg == "Snort 3 service rule"
    assert r[(116, 424)].msg == "(eth) truncated ethernet header" and r[(116, 424)].rev == 2
    assert (r[(1, 3)].msg, r[(1, 3)].priority, r[(1, 3)].line) == ("continued", 4, 7)
    assert r[(1, 4)].msg == "commented and continued" and not r[(1, 4)].enabled
    assert r[(1, 5)].msg == "pcre with a stray quote"
    assert r[(1, 6)].metadata == ("created_at 2010_01_01", "updated_at 2020_02_02")
    assert r[(1, 6)].rev is None


def test_bad_lines_are_counted_with_file_and_line_and_the_rest_flows(tmp_path):
    f = tmp_path / "bad.rules"
    f.write_text("alert tcp any any -> any any (msg:\"ok 1\"; sid:1;)\n"
                 "alert tcp any any -> any any (msg:\"no sid\";)\n"
                 "alert tcp any any -> any any (msg:\"bad sid\"; sid:x1;)\n"
                 "frobnicate tcp any any -> any any (sid:7;)\n"
                 "alert tcp any any -> any any msg:\"no parens\"; sid:8;\n"
                 "alert tcp any any -> any any (msg:\"twice\"; sid:9; sid:10;)\n"
                 "alert tcp any any -> any any (msg:\"big gid\"; gid:99999999999; sid:11;)\n"
                 "alert tcp any any -> any any (msg:\"ok 2\"; sid:2; priority:x;)\n"
                 "alert tcp any any -> any any (msg:\"ok 3\"; sid:3;)\n")
    m = Maps.load(rules=[str(f)])
    assert sorted(m.signatures) == [(1, 1), (1, 3)]
    assert m.bad_rules == 7
    w = m.warnings()
    assert w[0] == f"{f}:2: no sid: 'alert tcp any any -> any any (msg:\"no sid\";)'"
    assert w[1].startswith(f"{f}:3: sid is not a number from 0 to 4294967295: ")
    assert w[2].startswith(f"{f}:4: not a rule (it starts with no action word")
    assert w[3].startswith(f"{f}:5: no option list '( ... )' at the end of the rule: ")
    assert w[4].startswith(f"{f}:6: sid given twice: ")
    assert w[5].startswith(f"{f}:7: gid is not a number")
    assert w[6].startswith(f"{f}:8: priority is not a number")
    assert m.describe().startswith("bad.rules 2 rules + 0 commented out, 7 bad rule lines (version ")


def test_many_bad_lines_show_the_first_and_count_the_rest(tmp_path):
    f = tmp_path / "bad.rules"
    f.write_text("alert tcp any any -> any any (msg:\"x\";)\n" * 50)
    m = Maps.load(rules=[str(f)])
    w = m.warnings()
    assert m.bad_rules == 50 and len(w) == R.RuleSet.KEEP + 1
    assert w[-1] == f"... and {50 - R.RuleSet.KEEP} more bad rule lines"


def test_active_beats_commented_then_higher_rev_then_first(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.rules").write_text('alert ip any any -> any any (msg:"A active rev 2"; sid:1; rev:2;)\n'
                               '#alert ip any any -> any any (msg:"A disabled"; sid:2; rev:9;)\n'
                               'alert ip any any -> any any (msg:"A first"; sid:3; rev:1;)\n')
    (d / "b.rules").write_text('#alert ip any any -> any any (msg:"B disabled rev 5"; sid:1; rev:5;)\n'
                               'alert ip any any -> any any (msg:"B active"; sid:2; rev:1;)\n'
                               'alert ip any any -> any any (msg:"B second"; sid:3; rev:1;)\n')
    (d / "notes.txt").write_text("alert ip any any -> any any (msg:\"not a rules file\"; sid:4;)\n")
    m = Maps.load(rules=[str(d)])
    assert {k: s.msg for k, s in m.signatures.items()} == {
        (1, 1): "A active rev 2", (1, 2): "B active", (1, 3): "A first"}
    assert "(3 sids read twice)" in m.rules_summary


def test_rules_versus_sid_msg_and_gen_msg(tmp_path):
    rules = tmp_path / "local.rules"
    rules.write_text('alert ip any any -> any any (msg:"rule active"; sid:1; rev:1;)\n'
                     '# alert ip any any -> any any (msg:"rule disabled"; sid:2; rev:1;)\n'
                     '# alert ( msg:"disabled builtin"; gid:116; sid:3; )\n'
                     'alert ip any any -> any any (msg:"rule only"; sid:4; rev:1;)\n')
    sid_msg = tmp_path / "sid-msg.map"
    sid_msg.write_text("1 || map one\n2 || map two\n5 || map only\n")
    gen_msg = tmp_path / "gen-msg.map"
    gen_msg.write_text("116 || 3 || gen three\n116 || 4 || gen four\n")
    m = Maps.load(rules=[str(rules)], sid_msg=str(sid_msg), gen_msg=str(gen_msg))
    msg = {k: s.msg for k, s in m.signatures.items()}
    assert msg[(1, 1)] == "rule active"        # an active rule beats sid-msg.map
    assert msg[(1, 2)] == "map two"            # sid-msg.map beats a disabled rule
    assert msg[(116, 3)] == "disabled builtin"  # a disabled rule beats gen-msg.map
    assert msg[(116, 4)] == "gen four" and msg[(1, 4)] == "rule only" and msg[(1, 5)] == "map only"
    assert "1 sid-msg.map messages replaced by the rules'" in m.describe()


def test_priority_from_the_rule_else_its_classtype(tmp_path):
    rules = tmp_path / "p.rules"
    rules.write_text('alert ip any any -> any any (msg:"a"; classtype:trojan-activity; sid:1;)\n'
                     'alert ip any any -> any any (msg:"b"; classtype:trojan-activity; priority:3; sid:2;)\n'
                     'alert ip any any -> any any (msg:"c"; classtype:no-such-class; sid:3;)\n')
    m = Maps.load(rules=[str(rules)], classification=CLASSES)
    assert [m.signature(1, s).priority for s in (1, 2, 3)] == [1, 3, None]
    assert Maps.load(rules=[str(rules)]).signature(1, 1).priority is None  # no classification map


def test_unreadable_file_or_empty_directory_is_an_error(tmp_path):
    with pytest.raises(MapError, match=r"--rules .*missing\.rules: No such file"):
        Maps.load(rules=[str(tmp_path / "missing.rules")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MapError, match="no \\*.rules files in this directory"):
        Maps.load(rules=[str(tmp_path / "empty")])
    if os.geteuid() != 0:
        f = tmp_path / "secret.rules"
        f.write_text("")
        f.chmod(0)
        with pytest.raises(MapError, match="Permission denied"):
            Maps.load(rules=[str(f)])


def test_a_rule_without_msg_gives_no_message(tmp_path):
    import numpy as np

    rules = tmp_path / "n.rules"
    rules.write_text("alert ip any any -> any any (sid:1; reference:cve,2020-1;)\n")
    m = Maps.load(rules=[str(rules)])
    assert m.messages(np.array([[1, 1]])) == [None]
    assert m.signature(1, 1).refs == ("cve,2020-1",)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_agrees_with_py_idstools_rule_parser(name):
    """py-idstools (the parser suricata-update grew from) reads the same
    files to the same signatures; it cannot read Snort 3 service rules
    (``alert http (...)``, no addresses), which we do."""
    idstools_rule = pytest.importorskip("idstools.rule")
    path = str(DATA / name)
    ours = R.load([path]).rules
    theirs = {(r.gid, r.sid): r for r in idstools_rule.parse_file(path)}
    service = {(1, int(m)) for x in (DATA / name).read_text().splitlines()
               if re.match(r"alert (http|ssl) \(", x) for m in re.findall(r"sid:(\d+)", x)}
    assert set(ours) == set(theirs) | service and not service & set(theirs)
    for key, r in theirs.items():
        mine = ours[key]
        assert (mine.msg, mine.rev, mine.classtype, mine.priority, mine.enabled) == \
            (r.msg, r.rev, r.classtype, int(r.priority) or None, r.enabled), key
        assert list(mine.refs) == r.references and list(mine.metadata) == r.metadata, key
