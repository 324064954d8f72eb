"""Maps (sid-msg v1/v2, gen-msg, classification, reference) and the Enricher hook."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ingest import batch as B
from ingest.mapping import Enricher
from ingest.maps import MapError, Maps, parse_gen_msg, parse_sid_msg
from ingest.render import to_records

from ..conftest import SHARED

MAPS = str(SHARED / "maps")


def real(name: str) -> str:
    path = os.path.join(MAPS, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    return path


def test_djcas9_oracles():
    assert len(parse_sid_msg(real("djcas9-sid-msg.map"))) == 19243
    # SOURCES.md quotes djcas9's spec as 461 generator entries; the file has
    # 460 uncommented "gid || sid || msg" lines (461 counts the "# Format:"
    # header line).  We load the 460 real entries.
    assert len(parse_gen_msg(real("djcas9-gen-msg.map"))) == 460
    m = Maps.load(sid_msg=real("djcas9-sid-msg.map"), gen_msg=real("djcas9-gen-msg.map"),
                  classification=real("djcas9-classification.config"),
                  reference=real("djcas9-reference.config"))
    assert m.signature(1, 16710).msg == \
        "EXPLOIT Oracle BEA Weblogic server console-help.portal cross-site scripting attempt"
    assert len(m.classifications) == 35
    c = m.classification(35)
    assert (c.name, c.description, c.priority) == ("sdf", "Sensitive Data was Transmitted Across the Network", 2)
    assert m.signature(138, 6).msg == "sensitive_data: sensitive data - U.S. phone numbers"
    assert m.reference_url("cve,2003-0352") == "http://cve.mitre.org/cgi-bin/cvename.cgi?name=2003-0352"


def test_pyidstools_oracles():
    m = Maps.load(sid_msg=real("pyidstools-sid-msg.map"), gen_msg=real("pyidstools-gen-msg.map"),
                  classification=real("pyidstools-classification.config"))
    assert m.signature(1, 1).msg == "snort general alert"
    assert m.signature(139, 1).msg == "sensitive_data: sensitive data global threshold exceeded"
    s = m.signature(1, 2000356)
    assert s.msg == "ET POLICY IRC connection" and s.refs == ("url,doc.emergingthreats.net/2000356",)
    assert m.signature(3, 2000356) == s
    assert len(m.signature(1, 2000373).refs) == 3
    assert m.signature(1, 71918985).msg == "SN: Inbound TCP traffic from suspect network (AS29073 - NL)"
    assert m.classification(0) is None
    c1 = m.classification(1)
    assert (c1.name, c1.description, c1.priority) == ("not-suspicious", "Not Suspicious Traffic", 3)
    c34 = m.classification(34)
    assert (c34.name, c34.priority) == ("default-login-attempt", 2)
    u = m.classifications_by_name["unknown"]
    assert (u.description, u.priority) == ("Unknown Traffic", 3)
    v2 = Maps.load(sid_msg=real("pyidstools-sid-msg-v2.map"))
    s = v2.signature(1, 2495)
    assert (s.classification, s.priority, s.msg, len(s.refs)) == \
        ("misc-attack", 0, "GPL NETBIOS SMB DCEPRC ORPCThis request flood attempt", 4)


@pytest.mark.parametrize("header", ["", "#v1\n", "#v2\n", "# sid-msg.map\n\n"])
def test_headers_comments_and_stray_separators(tmp_path, header):
    p = tmp_path / "sid-msg.map"
    p.write_text(header + "1000 || v1 message || url,x ||\n"
                 "1 || 2000 || 3 || trojan-activity || 1 || v2 message ||\n"
                 "   \n  # an indented comment\n")
    m = Maps.from_dir(str(tmp_path))
    assert m.signature(1, 1000).msg == "v1 message" and m.signature(1, 1000).refs == ("url,x",)
    s = m.signature(1, 2000)
    assert (s.rev, s.classification, s.msg) == (3, "trojan-activity", "v2 message")


def test_enricher_fills_signature_and_category_per_distinct_key():
    m = Maps.load(sid_msg=real("djcas9-sid-msg.map"), classification=real("djcas9-classification.config"))
    calls = []
    real_messages = m.messages
    object.__setattr__(m, "messages", lambda keys: calls.append(len(keys)) or real_messages(keys))
    a = B.empty(1000)
    a["gid"], a["sid"], a["class_id"] = 1, np.where(np.arange(1000) % 2, 18608, 402), 33
    a["source"] = B.SRC_UNIFIED2
    a["msg_idx"][:10] = 0  # these carry their own message
    e = Enricher()
    e.set_maps(m)
    item = e.apply(B.AlertBatch(a, ["own message"], "t"))
    assert calls == [2]
    recs = to_records(item.batch, categories=item.categories, extra_strings=item.extra_strings)
    assert recs[0]["alert"]["signature"] == "own message"
    assert recs[11]["alert"]["signature"] == "POLICY Dropbox desktop software in use"
    assert recs[12]["alert"]["signature"] == "ICMP Destination Unreachable Port Unreachable"
    assert {r["alert"]["category"] for r in recs} == {"Potential Corporate Privacy Violation"}


# --- malformed lines, names in --maps DIR, references (issue 11, item 22) -------------

@pytest.mark.parametrize("name,text,line,problem", [
    ("sid-msg.map", "1000 || ok\nabc || not a sid\n", 2, "not a sid-msg.map entry"),
    ("sid-msg.map", "# v1\n\n1000\n", 3, "not a sid-msg.map entry"),
    ("sid-msg.map", "1000 ||   ||\n", 1, "not a sid-msg.map entry"),
    ("sid-msg.map", "1000 || ok\n99999999999 || sid past 32 bits\n", 2, "not a sid-msg.map entry"),
    ("sid-msg.map", "-5 || negative sid\n", 1, "not a sid-msg.map entry"),
    ("sid-msg.map", "1 || 2000 || 3 || trojan-activity || high || v2 msg\n", 1,
     "priority is not a number"),
    ("sid-msg.map", "1 || 2000 || 3 || trojan-activity || 1 ||  || url,x\n", 1,
     "v2 entry without a message"),
    ("gen-msg.map", "1 || 1 || ok\n116 || x\n", 2, "not a gen-msg.map entry"),
    ("gen-msg.map", "one || 1 || msg\n", 1, "not a gen-msg.map entry"),
    ("classification.config", "config classification: a,b,1\nconfig classification: c,d\n", 2,
     "classification needs a name, a description and a numeric priority"),
    ("classification.config", "config classification: a,b,x\n", 1, "numeric priority"),
    ("classification.config", "classification: a,b,1\n", 1, "not a 'config classification"),
    ("reference.config", "config reference: cve http://x/\nconfig reference: bugtraq\n", 2,
     "not a 'config reference: system url-prefix' line"),
    ("reference.config", "config reference: a b c\n", 1, "not a 'config reference"),
])
def test_malformed_line_names_file_and_line(tmp_path, name, text, line, problem):
    p = tmp_path / name
    p.write_text(text)
    kind = {"sid-msg.map": "sid_msg", "gen-msg.map": "gen_msg",
            "classification.config": "classification", "reference.config": "reference"}[name]
    with pytest.raises(MapError) as e:
        Maps.load(**{kind: str(p)})
    assert str(e.value).startswith(f"{p}:{line}: ") and problem in str(e.value)
    with pytest.raises(MapError, match=f"{p}:{line}: "):
        Maps.from_dir(str(tmp_path))


def test_maps_dir_finds_prefixed_names_and_refuses_ambiguity(tmp_path):
    (tmp_path / "snort-sid-msg.map").write_text("1000 || prefixed || cve,2003-0352\n")
    (tmp_path / "et_classification.config").write_text("config classification: a,Alpha,1\n")
    (tmp_path / "local.gen-msg.map").write_text("116 || 1 || decoder\n")
    (tmp_path / "reference.config").write_text("config reference: cve http://cve/?name=\n")
    (tmp_path / "notes-sid-msg.map.txt").write_text("not a map")  # does not end with the name
    m = Maps.from_dir(str(tmp_path))
    assert m.signature(1, 1000).msg == "prefixed" and m.classification(1).description == "Alpha"
    assert m.signature(116, 1).msg == "decoder"
    assert [(k, n) for k, _f, n in m.counts] == [("gen-msg", 1), ("sid-msg", 1),
                                                 ("classification", 1), ("reference", 1)]
    assert m.describe().startswith("local.gen-msg.map 1 generator messages, snort-sid-msg.map 1 "
                                   "signatures, et_classification.config 1 classifications, "
                                   "reference.config 1 reference systems (version ")
    # an exact name wins over prefixed ones
    (tmp_path / "sid-msg.map").write_text("2000 || exact\n")
    assert Maps.from_dir(str(tmp_path)).signature(1, 2000).msg == "exact"
    (tmp_path / "sid-msg.map").unlink()
    (tmp_path / "et-sid-msg.map").write_text("3000 || other\n")
    with pytest.raises(MapError, match=r"several sid-msg files \(et-sid-msg.map, snort-sid-msg.map\)"):
        Maps.from_dir(str(tmp_path))
    # naming the file settles it
    m = Maps.from_dir(str(tmp_path), sid_msg=str(tmp_path / "et-sid-msg.map"))
    assert m.signature(1, 3000).msg == "other"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MapError, match="no sid-msg.map"):
        Maps.from_dir(str(empty))


def _refs_maps(tmp_path):
    (tmp_path / "sid-msg.map").write_text(
        "1000 || with refs || cve,2003-0352 || bugtraq,550 || foo,bar\n"
        "1001 || no refs\n")
    (tmp_path / "reference.config").write_text(
        "config reference: cve http://cve.mitre.org/cgi-bin/cvename.cgi?name=\n"
        "config reference: bugtraq http://www.securityfocus.com/bid/\n")
    return Maps.from_dir(str(tmp_path))


def test_references_reach_eve_output(tmp_path):
    m = _refs_maps(tmp_path)
    a = B.empty(4)
    a["gid"], a["sid"], a["source"] = 1, [1000, 1001, 1000, 7], B.SRC_UNIFIED2
    e = Enricher()
    e.set_maps(m)
    item = e.apply(B.AlertBatch(a, [], "t"))
    recs = to_records(item.batch, categories=item.categories, extra_strings=item.extra_strings,
                      references=item.references)
    want = ["http://cve.mitre.org/cgi-bin/cvename.cgi?name=2003-0352",
            "http://www.securityfocus.com/bid/550", "foo,bar"]
    assert recs[0]["alert"]["references"] == want and recs[2]["alert"]["references"] == want
    assert "references" not in recs[1]["alert"] and "references" not in recs[3]["alert"]
    assert recs[0]["alert"]["signature"] == "with refs"
    # one distinct key, one rendering: both alerts point at the same string
    assert item.references[0] == item.references[2] >= 0 and item.references[1] == -1


def test_references_reach_the_store(tmp_path):
    import asyncio

    from ingest.sinks.sqlite import SqliteSink

    m = _refs_maps(tmp_path)
    a = B.empty(3)
    a["gid"], a["sid"], a["rev"], a["source"] = 1, [1000, 1001, 1000], 1, B.SRC_UNIFIED2
    a["event_id"] = [1, 2, 3]
    e = Enricher()
    sink = SqliteSink(str(tmp_path / "a.db"))
    asyncio.run(sink.write(e.apply(B.AlertBatch(a.copy(), [], "t"))))  # before the maps
    e.set_maps(m)
    a["event_id"] = [4, 5, 6]
    asyncio.run(sink.write(e.apply(B.AlertBatch(a, [], "t"))))
    asyncio.run(sink.aclose())
    import json
    import sqlite3

    db = sqlite3.connect(tmp_path / "a.db")
    sigs = {s: (msg, refs) for s, msg, refs in db.execute("SELECT sid, msg, refs FROM signatures")}
    assert sigs[1001] == ("no refs", None)
    assert sigs[1000][0] == "with refs"
    assert json.loads(sigs[1000][1])[0] == "http://cve.mitre.org/cgi-bin/cvename.cgi?name=2003-0352"
    got = db.execute("SELECT DISTINCT sid, refs IS NOT NULL FROM alerts_v ORDER BY sid").fetchall()
    assert got == [(1000, 1), (1001, 0)]
    # SQLite's JSON functions read it: one row per reference
    n = db.execute("SELECT count(*) FROM signatures, json_each(signatures.refs) "
                   "WHERE sid = 1000").fetchone()[0]
    assert n == 3
    db.close()


def test_maps_saved_by_a_windows_editor_load(tmp_path):
    """A byte order mark, CRLF line ends, bytes that are not UTF-8 and a NUL:
    every map loads (on the landed main a BOM made the first line malformed,
    so a map saved by a Windows editor was refused, exit 2), invalid bytes
    read as U+FFFD, and nothing else changes."""
    bom = b"\xef\xbb\xbf"
    (tmp_path / "sid-msg.map").write_bytes(bom + b"1000001 || BOM \xff msg\x00x || url,example.com/a\r\n"
                                                 b"# a comment\r\n1000002 || second\r\n")
    (tmp_path / "gen-msg.map").write_bytes(bom + b"# header\r\n116 || 1 || decoder \xfe msg\r\n")
    (tmp_path / "classification.config").write_bytes(bom + b"config classification: misc,Misc \xfe,3\r\n")
    (tmp_path / "reference.config").write_bytes(bom + b"config reference: url http://\r\n")
    m = Maps.from_dir(str(tmp_path))
    assert m.signature(1, 1000001).msg == "BOM \ufffd msg\x00x"
    assert m.signature(1, 1000001).refs == ("url,example.com/a",)
    assert m.signature(1, 1000002).msg == "second"
    assert m.signature(116, 1).msg == "decoder \ufffd msg"
    c = m.classification(1)
    assert (c.name, c.description, c.priority) == ("misc", "Misc \ufffd", 3)
    assert m.reference_url("url,example.com/a") == "http://example.com/a"
