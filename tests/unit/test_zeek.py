"""Zeek conn.log decoding (ingest.flows.zeek): every line of real files from
public repositories (tests/data/zeek/PROVENANCE), field for field against
an independent parse of the same file (csv / json, ipaddress, Decimal);
hostile lines rejected by reason with their neighbours kept; the TSV header
found again when a follower resumes mid-file; the store's schema 4."""

from __future__ import annotations

import asyncio
import csv
import ipaddress
import json
import pathlib
import sqlite3
from decimal import Decimal

import pytest

from ingest.eve import split_lines
from ingest.flows import record as R
from ingest.flows.zeek import REASONS, ZeekConnDecoder, detect, read_header, uid_flow_id

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "zeek"
TSV = ("zed-conn.log", "zeek-teredo-conn.log", "zeek-ayiya-conn.log", "zeek-gre-conn.log")
JSON = ("zeek-docs-conn.json.log", "zeek-docs-ssl-conn.json.log")
#: records per file (its lines not starting with "#"; PROVENANCE), so an
#: oracle that silently skipped lines would fail
RECORDS = {"zed-conn.log": 92, "zeek-teredo-conn.log": 21, "zeek-ayiya-conn.log": 8, "zeek-gre-conn.log": 7,
           "zeek-docs-conn.json.log": 2, "zeek-docs-ssl-conn.json.log": 2}


def decode(data: bytes, dec: ZeekConnDecoder | None = None, native: bool = True):
    if not data.endswith(b"\n"):
        data += b"\n"  # a file may end in "#close ..." without one (a follower leaves that line unread)
    offs, lens, used = split_lines(data)
    assert used == len(data)
    dec = dec or ZeekConnDecoder(detect(data[:128]))
    res = dec.decode(data, offs, lens, "test", native=native)
    res.batch.texts = res.texts
    return res


def same(a, b) -> None:
    """Two decodes of the same lines agree on everything."""
    assert a.batch.records.tobytes() == b.batch.records.tobytes()
    assert a.batch.strings == b.batch.strings and a.texts == b.texts and a.lines == b.lines
    assert a.rejected == b.rejected and a.headers == b.headers


def oracle_tsv(path: pathlib.Path) -> list[dict]:
    """The records as Python's csv module reads them, by the #fields names."""
    out = []
    with open(path, newline="") as f:
        fields = None
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0].startswith("#"):
                if row[0] == "#fields":
                    fields = row[1:]
                continue
            assert fields is not None
            out.append({k: (None if v == "-" else v) for k, v in zip(fields, row, strict=True)})
    return out


def oracle_json(path: pathlib.Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _us(v) -> int:
    return int((Decimal(str(v)) * 1_000_000).to_integral_value())


def _expect(r: dict) -> dict:
    """What the store row must say for one oracle record."""
    src, dst = ipaddress.ip_address(r["id.orig_h"]), ipaddress.ip_address(r["id.resp_h"])
    proto = {"tcp": 6, "udp": 17, "icmp": 1 if src.version == 4 else 58}[r["proto"]]
    start = _us(r["ts"])
    dur = r.get("duration")
    icmp = proto in (1, 58)

    def n(k: str) -> int | None:
        return None if r.get(k) is None else int(r[k])

    return {
        "uid": r["uid"], "flow_id": uid_flow_id(r["uid"]) - (1 << 64 if uid_flow_id(r["uid"]) >= 1 << 63 else 0),
        "start_us": start, "end_us": start + (_us(dur) if dur is not None else 0),
        "src_ip": str(src), "dest_ip": str(dst), "ip_ver": src.version, "ip_proto": proto,
        "src_port": None if icmp else int(r["id.orig_p"]), "dest_port": None if icmp else int(r["id.resp_p"]),
        "icmp_type": int(r["id.orig_p"]) if icmp else None, "icmp_code": int(r["id.resp_p"]) if icmp else None,
        "pkts_toserver": n("orig_pkts"), "pkts_toclient": n("resp_pkts"),
        "bytes_toserver": n("orig_ip_bytes"), "bytes_toclient": n("resp_ip_bytes"),
        "app_proto": r.get("service"), "state": r.get("conn_state"), "history": r.get("history"),
        "source": "zeek", "event_type": "flow",
    }


@pytest.mark.parametrize("name", TSV + JSON)
def test_every_line_of_real_conn_logs_field_for_field(name):
    path = DATA / name
    data = path.read_bytes()
    res = decode(data)
    oracle = oracle_tsv(path) if name in TSV else oracle_json(path)
    assert len(oracle) == RECORDS[name] == sum(1 for ln in data.splitlines() if ln and not ln.startswith(b"#"))
    assert not res.rejected
    assert len(res.batch) == len(oracle)
    assert res.headers == (sum(1 for ln in data.splitlines() if ln.startswith(b"#")))
    rows = R.store_rows(res.batch)
    at = {c: i for i, c in enumerate(R.ROW_COLUMNS)}
    for row, rec in zip(rows, oracle, strict=True):
        want = _expect(rec)
        got = {k: row[at[k]] for k in want}
        assert got == want, rec["uid"]


def test_the_files_cover_what_the_mapping_handles():
    """(So the test above is not vacuous: IPv4 and IPv6, TCP, UDP, ICMP and
    ICMPv6, unset duration, service and history, a #close line.)"""
    tsv = [r for name in TSV for r in oracle_tsv(DATA / name)]
    js = [r for name in JSON for r in oracle_json(DATA / name)]
    recs = tsv + js
    v6 = [r for r in recs if ":" in r["id.orig_h"]]
    assert v6 and any(":" not in r["id.orig_h"] for r in recs)
    assert {r["proto"] for r in recs} == {"tcp", "udp", "icmp"}
    assert any(r["proto"] == "icmp" for r in v6)  # ICMPv6 (ip_proto 58)
    assert any(r["proto"] == "icmp" and ":" not in r["id.orig_h"] for r in recs)  # ICMP (1)
    for k in ("duration", "service", "history"):
        assert any(r.get(k) is None for r in tsv), k
    # JSON: Zeek leaves unset fields out (here local_orig, local_resp, tunnel_parents)
    assert all("local_orig" not in r and "tunnel_parents" not in r for r in js) and {"tcp", "udp"} <= {
        r["proto"] for r in js}
    assert any((DATA / name).read_bytes().splitlines()[-1].startswith(b"#close") for name in TSV)


def test_formats_are_told_by_the_first_bytes():
    assert detect((DATA / "zed-conn.log").read_bytes()[:128]) == "tsv"
    assert detect((DATA / "zeek-docs-conn.json.log").read_bytes()[:128]) == "json"
    assert detect(b"\x1f\x8b\x08") is None  # a gzip archive


def test_numbers_in_other_scripts_are_rejects_not_exceptions():
    tsv = (DATA / "zed-conn.log").read_bytes().splitlines(keepends=True)
    f = tsv[8].split(b"\t")
    lines = [b"\t".join([*f[:k], v.encode(), *f[k + 1:]]) for k, v in
             ((0, "--5.1"), (0, "\u00b2.5"), (3, "\u00b2"), (16, "\u0661\u0662"), (8, "1.\u00b2"))]
    res = decode(b"".join([*tsv[:8], *lines]))
    assert len(res.batch) == 0
    assert [r for _i, r, _raw in res.rejected] == ["zeek_bad_time", "zeek_bad_time", "zeek_bad_port",
                                                   "zeek_bad_count", "zeek_bad_time"]


def test_hostile_lines_are_rejected_by_reason_and_the_next_line_flows():
    good = (DATA / "zeek-docs-conn.json.log").read_bytes().splitlines(keepends=True)
    obj = json.loads(good[0])
    bad = {
        "zeek_not_json": b'{"ts":1591367999.3,"uid":\n',
        "zeek_bad_time": json.dumps({**obj, "ts": "yesterday"}).encode() + b"\n",
        "zeek_bad_address": json.dumps({**obj, "id.orig_h": "300.1.1.1"}).encode() + b"\n",
        "zeek_bad_port": json.dumps({**obj, "id.resp_p": 70000}).encode() + b"\n",
        "zeek_missing_field": json.dumps({k: v for k, v in obj.items() if k != "uid"}).encode() + b"\n",
        "zeek_bad_count": json.dumps({**obj, "orig_pkts": -1}).encode() + b"\n",
        "zeek_bad_proto": json.dumps({**obj, "proto": "sctp-ish"}).encode() + b"\n",
    }
    data = b"".join([good[0], *bad.values(), good[1], b"[1, 2]\n", b"\xff\xfe\n"])
    res = decode(data)
    assert [u for u, _h, _s in res.texts] == ["CMdzit1AMNsmfAIiQc", "C5bLoe2Mvxqhawzqqd"]
    assert [reason for _i, reason, _raw in res.rejected] == [*bad, "zeek_not_json", "zeek_not_json"]
    assert res.rejected[0][2] == bad["zeek_not_json"].rstrip(b"\n")

    tsv = (DATA / "zed-conn.log").read_bytes().splitlines(keepends=True)
    head, recs = tsv[:8], tsv[8:]
    fields = recs[0].rstrip(b"\n").split(b"\t")
    hostile = {
        "zeek_field_count": b"\t".join(fields[:-1]) + b"\n",
        "zeek_bad_time": b"\t".join([b"12x.5", *fields[1:]]) + b"\n",
        "zeek_bad_address": b"\t".join([*fields[:2], b"10.1.1", *fields[3:]]) + b"\n",
        "zeek_bad_port": b"\t".join([*fields[:3], b"http", *fields[4:]]) + b"\n",
        "zeek_missing_field": b"\t".join([fields[0], b"-", *fields[2:]]) + b"\n",
    }
    res = decode(b"".join([*head, recs[0], *hostile.values(), recs[1]]))
    assert len(res.batch) == 2 and [r for _i, r, _raw in res.rejected] == list(hostile)
    # records before any #fields line: no header to read them by
    res = decode(b"".join(recs[:3]), ZeekConnDecoder("tsv"))
    assert len(res.batch) == 0 and {r for _i, r, _raw in res.rejected} == {"zeek_no_header"}


def test_a_resume_in_the_middle_reads_the_header_from_the_start():
    data = (DATA / "zeek-teredo-conn.log").read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    whole = decode(data)
    dec = ZeekConnDecoder("tsv", read_header(data[:cut]))
    rest = decode(data[cut:], dec)
    # compared as store rows: a record's app_idx points into its own batch's string table
    assert R.store_rows(rest.batch) == R.store_rows(whole.batch)[-len(rest.batch):]
    assert len(rest.batch) == sum(1 for ln in data[cut:].splitlines() if not ln.startswith(b"#"))
    assert rest.texts == whole.texts[-len(rest.batch):]


def test_escapes_unset_and_empty_fields_in_tsv():
    head = (b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
            b"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
            b"conn_state\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\tvlan\ttunnel_parents\n")
    line = (b"1.5\tCa\\x09b\t::1\t1\t::2\t2\tudp\t(empty)\t-\tS0\t-\t1\t40\t-\t-\t7\t(empty)\n")
    res = decode(head + line)
    (row,) = R.store_rows(res.batch)
    at = {c: i for i, c in enumerate(R.ROW_COLUMNS)}
    assert row[at["uid"]] == "Ca\tb"  # \x09: the separator inside a value
    assert row[at["end_us"]] == row[at["start_us"]] == 1_500_000  # duration unset: end = start
    assert row[at["event_type"]] == "netflow"  # no responder counters: one direction
    assert row[at["pkts_toclient"]] is None and row[at["history"]] is None
    assert row[at["vlan"]] == 7


def test_a_store_at_schema_3_is_migrated_to_4(tmp_path):
    from ingest.sinks.sqlite import SCHEMA_VERSION, SqliteSink

    db = tmp_path / "s.db"
    asyncio.run(SqliteSink(str(db), sensor="s").aclose())  # a complete store of the current version
    c = sqlite3.connect(db)
    c.executescript("DROP VIEW flows_v; DROP INDEX flows_uid; ALTER TABLE flows DROP COLUMN uid; "
                    "ALTER TABLE flows DROP COLUMN history; PRAGMA user_version = 3;")
    c.execute("INSERT INTO flows (flow_id, event_type, sensor, source) VALUES (1, 'flow', 's', 'eve')")
    c.commit()
    c.close()
    asyncio.run(SqliteSink(str(db), sensor="s").aclose())  # migrates
    c = sqlite3.connect(db)
    try:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (6,)
        cols = {r[1] for r in c.execute("PRAGMA table_info(flows)")}
        assert {"uid", "history"} <= cols
        assert c.execute("SELECT flow_id, uid, history FROM flows").fetchall() == [(1, None, None)]
        assert c.execute("SELECT 1 FROM sqlite_master WHERE name = 'flows_uid'").fetchone()
    finally:
        c.close()


def _mutations():
    from hypothesis import strategies as st

    lines = [ln for name in TSV + JSON for ln in (DATA / name).read_bytes().splitlines() if ln]
    line = st.sampled_from(lines)
    cut = st.tuples(line, st.integers(0, 400), st.integers(0, 400), st.binary(max_size=12)).map(
        lambda t: t[0][:t[1]] + t[3] + t[0][t[1] + t[2]:])  # a slice replaced by random bytes
    # text with non-ASCII digits ('²', '١') where numbers go: str.isdigit takes them, int() does not
    digits = st.text(alphabet="0123456789.-T²١٢\t", min_size=1, max_size=12)
    field = st.tuples(line, st.integers(0, 20), digits).map(
        lambda t: b"\t".join(v if i != t[1] else t[2].encode() for i, v in enumerate(t[0].split(b"\t"))))
    return st.lists(st.one_of(line, cut, field, st.binary(max_size=80)), min_size=1, max_size=12)


def test_any_bytes_are_records_or_rejects_never_an_exception():
    """Mutated real lines and random bytes, in both formats: every line is a
    record or a reject with a reason (never an exception), and the store
    rows can be made of what was kept."""
    from hypothesis import given, settings

    header = b"".join((DATA / "zed-conn.log").read_bytes().splitlines(keepends=True)[:8])

    @settings(max_examples=150, deadline=None)
    @given(_mutations())
    def check(lines):
        body = b"".join(ln.replace(b"\n", b" ") + b"\n" for ln in lines)
        for fmt, data in (("json", body), ("tsv", header + body)):
            res = decode(data, ZeekConnDecoder(fmt))
            if fmt == "tsv":  # the C decoder (csrc/zeek.c) and the Python one: line for line the same
                same(res, decode(data, ZeekConnDecoder(fmt), native=False))
            n = sum(1 for ln in data.split(b"\n")[:-1] if ln.rstrip(b"\r"))
            assert len(res.batch) + len(res.rejected) + res.headers == n
            assert {r for _i, r, _raw in res.rejected} <= set(REASONS)
            assert len(R.store_rows(res.batch)) == len(res.batch)

    check()


@pytest.mark.parametrize("name", TSV)
def test_the_c_decoder_and_the_python_one_agree_on_real_files(name):
    data = (DATA / name).read_bytes()
    c, py = decode(data), decode(data, native=False)
    same(c, py)
    assert len(c.batch) == RECORDS[name]


def test_the_c_statuses_are_the_python_reasons():
    from ingest.flows import zeek as Z
    from ingest.native import lib

    assert Z._STATUS == {lib.INGEST_ZEEK_FIELD_COUNT: "zeek_field_count", lib.INGEST_ZEEK_MISSING: "zeek_missing_field",
                         lib.INGEST_ZEEK_BAD_TIME: "zeek_bad_time", lib.INGEST_ZEEK_BAD_ADDRESS: "zeek_bad_address",
                         lib.INGEST_ZEEK_BAD_PORT: "zeek_bad_port", lib.INGEST_ZEEK_BAD_COUNT: "zeek_bad_count",
                         lib.INGEST_ZEEK_BAD_PROTO: "zeek_bad_proto"}
    assert len(Z._READ) == lib.INGEST_ZEEK_NREAD


class _Queue:
    """The runtime's side of Submit, recording what a source hands on."""

    def __init__(self) -> None:
        self.batches: list = []
        self.reserved = 0

    def reserve(self, n: int, timeout: float = 0.0, nbytes: int = 0, *, file: bool = False) -> bool:
        self.reserved += n
        return True

    def submit(self, batch) -> None:
        self.batches.append(batch)

    def release(self, n: int) -> None:
        self.reserved -= n


def test_a_chunk_the_c_decoder_refuses_is_decoded_line_by_line(tmp_path, monkeypatch):
    """An error of the C TSV decoder as a whole (its argument checks) costs
    no line and never reaches the reader thread: the chunk is decoded again
    line by line in Python, and the fallback is counted."""
    from ingest.deadletter import DeadLetter
    from ingest.eve import split_lines
    from ingest.flows import zeek as Z
    from ingest.sources.tail import _File
    from ingest.sources.zeek import ZeekConnSource
    from ingest.stats import Stats

    data = (DATA / "zed-conn.log").read_bytes()
    path = tmp_path / "conn.log"
    path.write_bytes(data)

    def refuse(*a, **k):
        raise ValueError("ingest_zeek_decode: bad arguments")

    monkeypatch.setattr(Z.ZeekConnDecoder, "_decode_native", refuse)
    src = ZeekConnSource(str(path), bookmark_path=str(tmp_path / "bm"))
    f = _File.open(str(path))
    offs, lens, _ = split_lines(data)
    q, stats = _Queue(), Stats()
    try:
        assert src._handle(None, f, data, offs, lens, 0, q, stats, DeadLetter(None), [])
    finally:
        f.close()
    assert sum(len(b.events.records) for b in q.batches) == RECORDS["zed-conn.log"]
    assert stats.snapshot()["zeek_decode_fallback"] == 1


def test_rotated_siblings_are_named_after_the_stem_even_a_hidden_one(tmp_path):
    from ingest.sources.zeek import ZeekConnSource

    def prefix(name: str) -> str:
        return ZeekConnSource(str(tmp_path / name), bookmark_path=str(tmp_path / "bm"))._sibling_prefix()

    assert prefix("conn.log") == "conn."
    assert prefix("conn") == "conn."
    assert prefix(".conn.log") == ".conn."  # not ".": every hidden file in the directory
