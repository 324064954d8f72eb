"""Maps (sid-msg v1/v2, gen-msg, classification, reference) and the Enricher hook."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ingest import batch as B
from ingest.mapping import Enricher
from ingest.maps import Maps, parse_gen_msg, parse_sid_msg
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
                 "garbage line\n")
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
