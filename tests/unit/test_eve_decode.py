"""EVE batch decoder (csrc/eve.c through the ffi): layout, timestamps, bad
input by name, and the real Suricata outputs against their oracles."""

from __future__ import annotations

import collections
import json
import pathlib

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest._native import ffi

from ingest import batch as B
from ingest.eve import EXT_DTYPE, REC_DTYPE, decode_lines, parse_ts
from ingest.mapping import Enricher
from ingest.maps import Maps
from ingest.render import render_json

from ..conftest import SHARED

DATA = SHARED
EVE = DATA / "eve"


def need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


ALERT = (b'{"timestamp":"2024-05-01T12:00:00.123456+0200","flow_id":1234567890123,"in_iface":"eth0",'
         b'"event_type":"alert","vlan":[100,200],"src_ip":"10.0.0.1","src_port":1234,"dest_ip":"10.0.0.2",'
         b'"dest_port":80,"proto":"TCP","alert":{"action":"blocked","gid":1,"signature_id":2000001,"rev":3,'
         b'"signature":"ET TEST \\"quoted\\" \\u00e9","category":"Attempted Administrator Privilege Gain",'
         b'"severity":1},"app_proto":"http"}')


@pytest.mark.parametrize("dtype,ctype", [(REC_DTYPE, "struct ingest_eve_rec"), (EXT_DTYPE, "struct ingest_eve_alert")])
def test_dtypes_match_c_structs(dtype, ctype):
    assert dtype.itemsize == ffi.sizeof(ctype)
    for name in dtype.names:
        if name != "reserved":
            assert dtype.fields[name][1] == ffi.offsetof(ctype, name), name


@pytest.mark.parametrize("text,expect", [
    ("2024-05-01T12:00:00.123456+0200", "2024-05-01T10:00:00.123456"),
    ("2024-12-17T19:17:54.565494-0500", "2024-12-18T00:17:54.565494"),
    ("2024-05-01T00:30:00.000001+0530", "2024-04-30T19:00:00.000001"),
    ("2024-05-01T00:30:00.5+05:30", "2024-04-30T19:00:00.500000"),
    ("2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999"),
    ("1999-12-31T23:00:00.000000-0100", "2000-01-01T00:00:00.000000"),
    ("2024-05-01T12:00:00", "2024-05-01T12:00:00.000000"),
])
def test_timestamps_to_utc(text, expect):
    us = parse_ts(text)
    assert str(np.datetime64(us, "us")) == expect


@pytest.mark.parametrize("bad", ["", "2024-05-01", "2024-13-01T00:00:00+0000", "2023-02-29T00:00:00+0000",
                                 "2024-05-01T12:00:00+0200x", "2024-05-01T12:00:00.1234567890Z",
                                 "2017-01-30T16:12:26.985026+0100asloefbnjhowebfg", "2024-05-01T25:00:00Z"])
def test_bad_timestamps(bad):
    assert parse_ts(bad) is None


def test_alert_fields():
    r = decode_lines(ALERT + b"\n")
    (a,) = r.batch.alerts
    assert a["ts_us"] == parse_ts("2024-05-01T10:00:00.123456Z")
    assert a["flow_id"] == 1234567890123
    assert (a["gid"], a["sid"], a["rev"], a["priority"]) == (1, 2000001, 3, 1)
    assert a["action"] == B.ACTION_BLOCKED and a["proto"] == 6 and a["ip_ver"] == 4
    assert (a["src_port"], a["dst_port"], a["vlan"]) == (1234, 80, 100)
    assert a["flags"] & B.F_ADDRS and a["flags"] & B.F_PORTS and a["flags"] & B.F_VLAN
    b = r.batch
    assert b.strings[a["msg_idx"]] == 'ET TEST "quoted" \u00e9'
    assert b.strings[b.cat[0]] == "Attempted Administrator Privilege Gain"
    # lossless: the original object comes back byte for byte
    assert render_json(b) == ALERT + b"\n"


def test_ipv6_and_icmp():
    line = (b'{"timestamp":"2024-05-01T12:00:00.000000+0000","event_type":"alert","src_ip":"fe80::1",'
            b'"dest_ip":"ff02::1","proto":"IPv6-ICMP","icmp_type":135,"icmp_code":0,'
            b'"alert":{"signature_id":5,"signature":"x"}}')
    (a,) = decode_lines(line).batch.alerts
    assert a["ip_ver"] == 6 and a["proto"] == 58 and a["flags"] & B.F_ICMP and a["src_port"] == 135
    assert a["gid"] == 1 and a["action"] == B.ACTION_UNKNOWN


@pytest.mark.parametrize("line,reason", [
    (b'{"timestamp":"2024-05-01T12:00:00+0000","event_type":"alert"', "invalid_json"),
    (b'{"event_type":"dns"} trailing', "invalid_json"),
    (b'{"event_type":"dns","x":"\x01"}', "invalid_json"),  # raw control character
    (b'{"event_type":"dns","x":"\xff"}', "invalid_json"),  # not UTF-8
    (b'{"event_type":"dns","x":01}', "invalid_json"),
    (b'\x00\x01\x02binary\xfe junk', "invalid_json"),
    (b'[1,2,3]', "not_object"),
    (b'"just a string"', "not_object"),
    (b'{"timestamp":"2024-05-01T12:00:00+0000","F":"stats"}', "no_event_type"),
    (b'{"event_type":42}', "no_event_type"),
    (b'{"timestamp":"garbage","event_type":"alert","alert":{"signature_id":1}}', "bad_timestamp"),
    (b'{"timestamp":"2024-05-01T12:00:00+0000","event_type":"alert"}', "bad_alert"),
])
def test_bad_input_is_named_and_next_event_flows(line, reason):
    r = decode_lines(line + b"\n" + ALERT + b"\n")
    assert [(x[1], x[2]) for x in r.rejected] == [(reason, line)]
    assert len(r.batch) == 1  # the valid event after it still decodes


def test_nested_and_escapes_agree_with_orjson():
    line = b'{"event_type":"x","a":[{"b":[1,-2.5e3,true,false,null,{}]},[]],"s":"\\ud83d\\ude00\\n\\/"}'
    r = decode_lines(line)
    assert not r.rejected and r.batch.events.count == 1
    assert orjson.loads(r.batch.events.lines) == orjson.loads(line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=60), st.binary(max_size=3))
def test_validator_agrees_with_orjson(value, cut, noise):
    """Differential: valid documents, and the same documents damaged."""
    doc = json.dumps({"event_type": "x", "v": value}, ensure_ascii=False).encode()
    for candidate in (doc, doc[:cut] + noise + doc[cut:], doc[:cut]):
        try:
            ok = isinstance(orjson.loads(candidate), dict)
        except orjson.JSONDecodeError as e:
            if "64-bit" in str(e) or "nteger" in str(e) or "infinity" in str(e):
                continue  # orjson's own limits, not JSON's: any number size is valid JSON
            ok = False
        if b"\n" in candidate or candidate.strip() != candidate or not candidate.strip():
            continue  # a record is one line; blank lines are "empty"
        if candidate.startswith(b"\xef\xbb\xbf"):
            continue  # a byte order mark before a record is skipped like whitespace (orjson refuses it)
        r = decode_lines(candidate + b"\n")
        got = not r.rejected
        if ok:
            obj = orjson.loads(candidate)
            if not isinstance(obj.get("event_type"), str) or not obj.get("event_type"):
                continue
        assert got == ok, candidate


def test_event_type_filter():
    line = b'{"event_type":"dns"}\n{"event_type":"flow","flow_id":1}\n' + ALERT + b"\n"
    r = decode_lines(line, event_types=["flow"])
    assert len(r.batch) == 0 and r.counts["filtered"] == 2 and r.batch.events.count == 1


def test_torn_stream_line_resyncs_at_next_record():
    torn = ALERT[:57]  # Suricata's short write lost the rest of this line
    r = decode_lines(torn + ALERT + b"\n" + ALERT + b"\n", resync=True)
    assert [x[1] for x in r.rejected] == ["torn_record"]
    assert len(r.batch) == 2
    assert render_json(r.batch) == (ALERT + b"\n") * 2


def test_classification_maps_category_to_class_id():
    cls = Maps.load(classification=str(need(DATA / "maps" / "suricata-classification.config"))).categories()
    want = next(i for i, d in cls.items() if d == "Attempted Administrator Privilege Gain")
    r = decode_lines(ALERT + b"\n")
    item = Enricher(cls).apply(r.batch)
    assert r.batch.alerts["class_id"][0] == want
    assert item.strings[item.categories[0]] == "Attempted Administrator Privilege Gain"


# ---- the real Suricata outputs against their fast.log / stats.log oracles ----

def fast_log_sids(path: pathlib.Path) -> collections.Counter:
    c: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        if "[**] [" in line:
            g, s, _r = line.split("[**] [", 1)[1].split("]", 1)[0].split(":")
            c[(int(g), int(s))] += 1
    return c


@pytest.mark.parametrize("run,eve,alerts,types", [
    ("zeus-suricata-7.0.7", "eve.json", 656, {"flow": 205, "dhcp": 6, "dns": 1, "stats": 1}),
    ("sashalarso-suricata-7.0.3", "out.json", 226, {"flow": 915, "dns": 640, "smb": 482, "tls": 313, "dcerpc": 197,
                                                     "krb5": 44, "http": 18, "fileinfo": 14, "anomaly": 3,
                                                     "dhcp": 1, "stats": 1}),
])
def test_real_suricata_runs_match_oracles(run, eve, alerts, types):
    d = need(EVE / run)
    r = decode_lines((d / eve).read_bytes())
    assert len(r.batch) == alerts and not r.rejected
    assert r.batch.events.types == types
    fast = fast_log_sids(d / "fast.log")
    assert sum(fast.values()) == alerts
    got = collections.Counter(zip(r.batch.alerts["gid"].tolist(), r.batch.alerts["sid"].tolist(), strict=True))
    assert got == fast  # every signature, with its count
    stats = r.stats[-1]["stats"]
    assert stats["detect"]["alert"] == alerts
    # every alert keeps its original object, byte for byte
    lines = (d / eve).read_bytes().splitlines()
    assert sorted(render_json(r.batch).splitlines() + r.batch.events.lines.splitlines()) == sorted(lines)


def test_zeus_top_signatures_and_flows():
    r = decode_lines(need(EVE / "zeus-suricata-7.0.7" / "eve.json").read_bytes())
    top = collections.Counter(r.batch.alerts["sid"].tolist()).most_common(3)
    assert top == [(2200075, 227), (100004, 199), (200004, 189)]
    alert_flows = set(r.batch.alerts["flow_id"].view(np.int64).tolist()) - {0}  # 0: no flow
    flow_ids = {row[0] for row in r.batch.events.flows}
    assert len(alert_flows) == 193 and alert_flows <= flow_ids


@pytest.mark.parametrize("name,alerts,rejected", [
    ("nicoaller-eve.json", 121, ["no_event_type"]),  # the damaged stats line ("F": "stats")
    ("surevego-eve_broken.json", 68, ["invalid_json"] * 6),
    ("sashalarso-mssis-eve.json", 35, []),
    ("chala1899-ids-lab-eve.json", 30, []),
    ("magnc-live-sensor-eve.json", 0, []),
])
def test_other_real_files(name, alerts, rejected):
    r = decode_lines(need(EVE / name).read_bytes())
    assert len(r.batch) == alerts
    assert [x[1] for x in r.rejected] == rejected


def test_valid_json_beyond_orjson_never_raises():
    """Numbers beyond a double and lone surrogate escapes are valid JSON: they
    pass (stdlib fallback) instead of killing the reader."""
    lines = [
        b'{"event_type":"flow","flow_id":5,"flow":{"bytes_toserver":1e400,"start":"2024-05-01T12:00:00+0000"}}',
        b'{"event_type":"stats","stats":{"capture":{"kernel_drops":123456789012345678901234567890}}}',
        b'{"timestamp":"2024-05-01T12:00:00+0000","event_type":"alert","alert":{"signature_id":1,'
        b'"signature":"a\\ud800b"}}',
    ]
    r = decode_lines(b"\n".join(lines) + b"\n")
    assert not r.rejected and len(r.batch) == 1 and len(r.batch.events.flows) == 1
    msg = r.batch.strings[r.batch.alerts["msg_idx"][0]]
    assert msg.startswith("a") and msg.endswith("b")
    msg.encode("utf-8")  # renderable: no lone surrogate left
    assert render_json(r.batch) == lines[2] + b"\n"  # the original is still kept verbatim
