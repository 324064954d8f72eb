"""Records that are valid JSON but poison a batch: lone surrogate escapes,
numbers the Python-side parser refuses, raw CR/LF between tokens, and values
of the wrong type for the store.  One such record is its own failure only;
what leaves C is valid text; a JSON-lines sink gets one line per record."""

from __future__ import annotations

import asyncio
import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.eve import EveDecoder, decode_lines, flow_row, split_lines
from ingest.mapping import Enricher
from ingest.render import render_json
from ingest.sinks.sqlite import SqliteSink

from ..eve_records import ALERT, FLOW

#: the shared reproducers, copied (tests/data/repro/README.md)
REPRO = pathlib.Path(__file__).resolve().parents[1] / "data" / "repro"

def all_text(obj) -> list[str]:
    """Every str inside a decoded object (keys too)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [t for k, v in obj.items() for t in all_text(k) + all_text(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in all_text(v)]
    return []


def store(tmp_path, batch) -> SqliteSink:
    """Write one batch to a real SQLite store (raises what the sink raises)."""
    sink = SqliteSink(str(tmp_path / "a.db"))

    async def go() -> None:
        try:
            await asyncio.wait_for(sink.write(Enricher().apply(batch)), 30)
        finally:
            await sink.aclose()

    asyncio.run(go())
    return sink


def rows(tmp_path, sql: str) -> list[tuple]:
    import sqlite3

    db = sqlite3.connect(tmp_path / "a.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# ---- 1. valid JSON, not valid Unicode: one U+FFFD per lone surrogate ---------

LONE = [
    # (where, record): every string an EVE record can carry to Python
    ("flow app_proto", FLOW.replace(b'"http"', b'"\\ud800"') % 77),
    ("flow.start", FLOW.replace(b'"2025-11-27T18:03:49', b'"2025-11-27T18:03:49\\ud800') % 77),
    ("flow.state", FLOW.replace(b'"closed"', b'"clo\\udfffsed"') % 77),
    ("flow.reason low+high", FLOW.replace(b'"timeout"', b'"\\udc00\\ud800"') % 77),
    ("flow src_ip", FLOW.replace(b'"10.0.0.1"', b'"10.0.0.1\\udbff"') % 77),
    ("flow proto", FLOW.replace(b'"TCP"', b'"T\\ud800CP"') % 77),
    ("flow member key", FLOW.replace(b'"flow":{', b'"flow":{"\\ud800":1,') % 77),
    ("alert signature", ALERT.replace(b'"sig %d"', b'"sig %d\\ud800"') % (5, 5, 5)),
    ("alert category", ALERT.replace(b'"Misc"', b'"Mi\\udc80sc"') % (5, 5, 5)),
    ("stats", b'{"event_type":"stats","stats":{"capture":{"kernel_drops":1,"\\ud800drop":2}}}'),
    ("other event", b'{"event_type":"dns","dns":{"rrname":"\\ud800.example"}}'),
]


@pytest.mark.parametrize("where,rec", LONE, ids=[w for w, _ in LONE])
def test_lone_surrogates_become_u_fffd_and_the_line_stays_verbatim(tmp_path, where, rec):
    data = ALERT % (1, 1, 1) + b"\n" + rec + b"\n" + ALERT % (2, 2, 2) + b"\n"
    r = decode_lines(data)
    assert not r.rejected
    b = r.batch
    texts = list(b.strings) + all_text(b.events.flows if b.events else []) + all_text(r.stats)
    for t in texts:
        t.encode("utf-8")  # strict: no surrogate ever leaves the decoder
    assert any("\ufffd" in t for t in texts) or where in ("other event", "flow member key")
    # every replacement is one U+FFFD per lone surrogate (never three)
    assert not any("\ufffd\ufffd\ufffd" in t for t in texts)
    # JSON outputs keep the record byte for byte
    out = render_json(b) + (b.events.lines if b.events else b"")
    assert sorted(out.splitlines()) == sorted(data.splitlines())
    # and the store takes it (on 09d7916 it raised UnicodeEncodeError forever)
    store(tmp_path, b)
    assert rows(tmp_path, "SELECT count(*) FROM alerts") == [(len(b),)]
    assert rows(tmp_path, "SELECT count(*) FROM flows") == [(len(b.events.flows) if b.events else 0,)]


def test_repro_flow_lone_surrogate_is_stored(tmp_path):
    p = REPRO / "eve_flow_lone_surrogate_wedge.jsonl"
    r = decode_lines(p.read_bytes())
    store(tmp_path, r.batch)
    assert rows(tmp_path, "SELECT flow_id, app_proto FROM flows") == [(77, "\ufffd")]


# ---- 3. a value the Python-side parser refuses is that record's failure ------

BIG = b"1" + b"0" * 4400  # 4,401 digits: beyond sys.int_max_str_digits


@pytest.mark.parametrize("poison", [
    FLOW.replace(b'"pkts_toserver":3', b'"pkts_toserver":' + BIG) % 9,
    FLOW.replace(b'"bytes_toclient":400', b'"bytes_toclient":-' + BIG) % 9,
    FLOW.replace(b'"flow_id":%d', b'"flow_id":' + BIG),
    b'{"event_type":"netflow","flow_id":3,"netflow":{"pkts":' + BIG + b"}}",
    b'{"event_type":"stats","stats":{"capture":{"kernel_drops":' + BIG + b"}}}",
    b'{"event_type":"flow","flow_id":4,"x":[[[' + BIG + b"]]]}",
], ids=["flow", "negative", "flow_id", "netflow", "stats", "nested"])
def test_a_number_python_refuses_costs_only_its_record(poison):
    lines = [ALERT % (i, i, i) for i in range(100)] + [poison] + [ALERT % (i, i, i) for i in range(100, 200)]
    r = decode_lines(b"\n".join(lines) + b"\n")
    assert len(r.batch) == 200
    assert [(i, reason, raw) for i, reason, raw in r.rejected] == [(100, "unparsable", poison)]
    assert r.counts.get("unparsable") == 1
    assert r.batch.events is None or r.batch.events.count == 0


def test_repro_200_alerts_around_a_poisoned_flow():
    p = REPRO / "eve_batch_poison_200_alerts.jsonl"
    r = decode_lines(p.read_bytes())
    assert len(r.batch) == 200 and [x[1] for x in r.rejected] == ["unparsable"]


def test_big_but_parseable_numbers_keep_the_record():
    """Numbers Python parses but the store cannot hold (beyond signed 64 bits,
    floats, 1e400) keep the record; that column is NULL."""
    rec = (FLOW.replace(b'"pkts_toserver":3', b'"pkts_toserver":' + b"9" * 40)
           .replace(b'"bytes_toserver":300', b'"bytes_toserver":1e400') % 9)
    r = decode_lines(rec + b"\n")
    assert not r.rejected
    (row,) = r.batch.events.flows
    assert row[12] is None and row[14] is None and row[13] == 4 and row[15] == 400


def test_flow_rows_hold_only_what_the_store_can_take(tmp_path):
    """Any JSON value in any flow member: the row has None, int (signed 64-bit)
    or str, so a flow never makes the store raise."""
    weird = [{"a": 1}, [1, 2], 1.5, True, 2**64, -(2**63) - 1, "x", None, 7]
    evs = []
    for i, v in enumerate(weird):
        ev = {"flow_id": i + 1, "event_type": "flow", "src_ip": v, "src_port": v, "dest_ip": v, "dest_port": v,
              "proto": v, "app_proto": v, "flow": {k: v for k in ("pkts_toserver", "pkts_toclient", "bytes_toserver",
                                                                   "bytes_toclient", "start", "end", "state",
                                                                   "reason", "alerted")}}
        row = flow_row(ev)
        assert row is not None
        for x in row:
            assert x is None or isinstance(x, str) or (isinstance(x, int) and -(2**63) <= x < 2**63), (v, row)
        evs.append(json.dumps(ev).encode())
    r = decode_lines(b"\n".join(evs) + b"\n")
    store(tmp_path, r.batch)
    assert rows(tmp_path, "SELECT count(*) FROM flows") == [(len(weird),)]


# ---- 4. raw CR/LF between tokens never reach a JSON-lines output -------------

def _spread(rec: bytes, ws: bytes) -> bytes:
    """Put ws after every ',' and ':' outside strings (legal JSON whitespace)."""
    out = bytearray()
    in_str = esc = False
    for c in rec:
        out.append(c)
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in b",:{[":
            out += ws
    return bytes(out)


@pytest.mark.parametrize("ws", [b"\r", b"\n", b"\r\n", b" \r\n\t", b"\n\r"])
def test_raw_cr_lf_in_datagrams_are_one_line_each(ws):
    """A datagram is one record even with newlines inside: alerts and
    passthrough events both come out as exactly one line each."""
    recs = [_spread(ALERT % (1, 1, 1), ws), _spread(FLOW % 2, ws),
            _spread(b'{"event_type":"dns","dns":{"q":["a","b"]}}', ws), ALERT % (3, 3, 3)]
    buf = b"".join(recs)
    offs = np.cumsum([0] + [len(x) for x in recs[:-1]]).astype(np.uint64)
    lens = np.array([len(x) for x in recs], np.uint32)
    r = EveDecoder(8).decode(buf, offs, lens)
    assert not r.rejected and len(r.batch) == 2 and r.batch.events.count == 2
    out = render_json(r.batch) + r.batch.events.lines
    assert b"\r" not in out
    lines = out.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    # alerts first, then the passthrough events; each the original object
    assert [json.loads(x) for x in lines[:-1]] == [json.loads(recs[i]) for i in (0, 3, 1, 2)]


def test_raw_cr_in_a_line_is_normalised_and_nothing_else_changes():
    rec = _spread(ALERT % (1, 1, 1), b"\r")
    r = decode_lines(rec + b"\r\n" + b'{"event_type":"dns",\r"x":1}\n')
    out = render_json(r.batch) + r.batch.events.lines
    assert out == rec.replace(b"\r", b" ") + b"\n" + b'{"event_type":"dns", "x":1}\n'


def test_repro_newline_injection_datagram():
    p = REPRO / "eve_dgram_newline_injection.json"
    d = p.read_bytes()
    r = EveDecoder(1).decode(d, np.zeros(1, np.uint64), np.array([len(d)], np.uint32))
    out = render_json(r.batch)
    assert out.count(b"\n") == 1 and b"\r" not in out
    assert json.loads(out)["alert"]["signature_id"] == 4242


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=8)
json_docs = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3)
                         | st.dictionaries(st.text(max_size=4), kids, max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(json_docs, st.lists(st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\r\n"]), min_size=1, max_size=4),
       st.booleans())
def test_any_whitespace_any_record_one_output_line(value, ws, alert):
    """Property: however a valid record is spread with whitespace, each
    record renders to exactly one JSON line equal to the original object."""
    doc = {"timestamp": "2025-11-27T18:03:50+0000", "event_type": "alert" if alert else "x", "v": value}
    if alert:
        doc["alert"] = {"signature_id": 1, "signature": "s"}
    rec = _spread(json.dumps(doc, ensure_ascii=False).encode(), b"".join(ws))
    r = EveDecoder(1).decode(rec, np.zeros(1, np.uint64), np.array([len(rec)], np.uint32))
    assert not r.rejected
    out = render_json(r.batch) + (r.batch.events.lines if r.batch.events else b"")
    assert out.splitlines() == [out[:-1]] and out.endswith(b"\n")
    assert json.loads(out) == json.loads(rec)


def test_split_lines_still_frames_files_on_lf():
    """Files and streams are framed on LF before decoding: a record with a raw
    LF inside is two invalid lines there, never a forged record."""
    data = b'{"event_type":"x",\n"y":1}\n'
    offs, lens, _ = split_lines(data)
    r = EveDecoder(4).decode(data, offs, lens)
    assert [x[1] for x in r.rejected] == ["invalid_json", "invalid_json"]


@pytest.mark.parametrize("name", ["eve-pyexc-JSONDecodeError-a6d90a98deae.bin",
                                  "eve-pyexc-JSONDecodeError-c11ad16788bb.bin",
                                  "eve-pyexc-UnicodeEncodeError-18bccaefa8bb.bin"])
def test_fuzzer_finds_decode_store_and_render_cleanly(tmp_path, name):
    """The fuzzer's inputs (first byte: its mode), as lines and as one
    datagram: nothing raises, every output line is JSON on its own (even to
    a reader that also splits on CR), the store takes the batch."""
    data = (REPRO / name).read_bytes()[1:]
    offs, lens, used = split_lines(data)
    as_lines = EveDecoder(len(offs) + 1).decode(data, np.append(offs, used).astype(np.uint64),
                                                np.append(lens, len(data) - used).astype(np.uint32))
    as_dgram = EveDecoder(1).decode(data, np.zeros(1, np.uint64), np.array([len(data)], np.uint32))
    for r in (as_lines, as_dgram):
        out = render_json(r.batch) + (r.batch.events.lines if r.batch.events else b"")
        for line in out.splitlines():
            json.loads(line)
    assert len(as_lines.batch) + (as_lines.batch.events.count if as_lines.batch.events else 0) > 0
    store(tmp_path, as_lines.batch)


def test_string_tables_hold_only_valid_utf8():
    """Text from anywhere (maps, Alertpkt, Unified2, the Python API) reaches
    C's string table as valid UTF-8, and comes back out without surrogates."""
    from ingest import batch as B
    from ingest.strings import Segment, StringPool

    seg = Segment.from_strings(["ok", "a\ud800b", "\udc80", "\U0001f600"])
    assert bytes(seg.data).decode("utf-8") == "oka\ufffdb\ufffd\U0001f600"
    pool = StringPool.packed(b"x\xff\xfey", np.array([0], np.uint32), np.array([4], np.uint32))
    assert pool[0] == "x\ufffd\ufffdy"
    b = B.AlertBatch(B.empty(1), ["sig \udcff"], "api")
    b.alerts["msg_idx"] = 0
    assert json.loads(render_json(b))["alert"]["signature"] == "sig \ufffd"


def test_a_byte_order_mark_before_a_record_is_not_part_of_it():
    """A UTF-8 BOM at the start of an eve.json (a Windows editor) or of a
    datagram is skipped like whitespace: the record is decoded and kept
    without it (on the landed main it was invalid_json, its alert lost)."""
    bom = b"\xef\xbb\xbf"
    res = decode_lines(bom + ALERT % (1, 1, 1) + b"\r\n" + bom + FLOW % 2 + b"\r\n" + bom + b"\r\n")
    assert not res.rejected and len(res.batch) == 1 and len(res.batch.events.flows) == 1
    assert render_json(res.batch, "eve") == ALERT % (1, 1, 1) + b"\n"
    assert res.batch.events.lines == FLOW % 2 + b"\n"
    one = bom + b" " + ALERT % (3, 3, 3)  # a datagram
    res = EveDecoder(1).decode(one, np.zeros(1, np.uint64), np.array([len(one)], np.uint32))
    assert not res.rejected and len(res.batch) == 1
    # only at the start: a BOM inside a record is no whitespace
    assert decode_lines(b'{"event_type":' + bom + b'"dns"}\n').rejected[0][1] == "invalid_json"


#: two signatures of one length whose FNV-1a 64 hashes differ only in bit 0
#: (found with Brent's cycle finding in a few CPU minutes): the text keys of
#: the landed main, so the second alert was shown with the first one's text
FNV_TWINS = (b"ET POLICY x 461d2b2e67a56e0e", b"ET POLICY x 34758cdf0d9d1956")


def test_a_sender_cannot_give_its_text_the_key_of_another():
    """EVE signature and category texts are shared and cached by a hash of
    their bytes: keyed (as for Alertpkt messages), a sender cannot craft a
    text whose key is another's and have it shown for that one's alerts."""
    a, b = FNV_TWINS
    lines = [ALERT.replace(b'"sig %d"', b'"' + a + b'"').replace(b'"Misc"', b'"' + a + b'"') % (1, 1),
             ALERT.replace(b'"sig %d"', b'"' + b + b'"').replace(b'"Misc"', b'"' + b + b'"') % (2, 2)]
    dec = EveDecoder(4)
    for batch in ([lines[0], lines[1]], [lines[0]], [lines[1]]):  # in one batch, and across (the cache)
        data = b"\n".join(batch) + b"\n"
        offs, lens, _ = split_lines(data)
        res = dec.decode(data, offs, lens)
        got = [json.loads(x)["alert"] for x in render_json(res.batch, "eve").splitlines()]
        texts = [res.batch.strings[i] for i in res.batch.alerts["msg_idx"]]
        cats = [res.batch.strings[i] for i in res.batch.cat]
        assert texts == cats == [g["signature"] for g in got]
        assert texts == [a.decode() if g["signature_id"] == 1 else b.decode() for g in got]
