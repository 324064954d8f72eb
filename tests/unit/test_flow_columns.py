"""Canonical flow records (NetFlow/IPFIX) into the SQL stores column-wise
(ingest.sinks.rows.flow_record_arrays): the same values as the row-by-row
reference (ingest.flows.record.store_rows, with the sensor and the tuple
key), the same rows through the SQLite C writer and through sqlite3's
executemany (INGEST_SQLITE_NATIVE=0), and correlated like any flow."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest

from ingest import batch as B
from ingest.batch import AlertBatch, EventBatch
from ingest.flows import record as FR
from ingest.flows.correlate import flow_tuple_keys
from ingest.flows.netflow import NetflowDecoder
from ingest.gen import netflow as G
from ingest.mapping import Enriched
from ingest.sinks import rows as R
from tests.unit.test_netflow import IPFIX_BIFLOW, PEER
from tests.unit.test_sqlite_native import _sink, _write

EVE_LINES = (
    b'{"timestamp":"2024-01-01T00:00:09.000000+0000","flow_id":77,"event_type":"flow","src_ip":"10.1.1.1",'
    b'"src_port":5555,"dest_ip":"10.1.1.2","dest_port":80,"proto":"TCP","vlan":[7],"app_proto":"http",'
    b'"flow":{"pkts_toserver":3,"pkts_toclient":2,"bytes_toserver":300,"bytes_toclient":200,'
    b'"start":"2024-01-01T00:00:01.000000+0000","end":"2024-01-01T00:00:08.000000+0000","state":"closed",'
    b'"reason":"timeout","alerted":false},"tcp":{"tcp_flags":"1b","tcp_flags_ts":"1b","tcp_flags_tc":"1a"}}\n'
)


def records() -> FR.FlowBatch:
    """Records of every kind the decoder makes: v5 (ICMP, sampling), v9,
    IPFIX biflow over IPv6 with VLAN and application names; and one from a
    Suricata flow event (an engine flow id); a counter beyond int64."""
    d = NetflowDecoder(16)
    v4 = [G.Flow(), G.Flow(src="10.0.0.1", dst="10.0.0.2", sport=0, dport=(3 << 8) | 1, proto=1),
          G.Flow(proto=47, sport=0, dport=0)]
    v6 = [G.Flow(src="2001:db8::1", dst="2001:db8::2", rpkts=4, rbytes=400, app=b"dns", vlan=12),
          G.Flow(src="2001:db8::3", dst="2001:db8::4", app=b"x\0y", sport=1, dport=2, proto=132)]
    pk = [G.v5(v4, seq=1, sampling=(1 << 14) | 10),
          G.v9([G.v9_template(256, G.V9_IPV4), G.v9_data(256, G.V9_IPV4, v4)], seq=1),
          G.ipfix([G.ipfix_template(400, IPFIX_BIFLOW), G.ipfix_data(400, IPFIX_BIFLOW, v6)], domain=3)]
    res = d.decode(d.load(pk, PEER), now=0.0)
    assert not res.rejected and len(res.batch) == 8
    from ingest.eve import decode_lines

    ev = decode_lines(EVE_LINES).batch.events
    eve = FR.from_eve_rows(ev.flows, FR.ROW_COLUMNS)
    fb = FR.FlowBatch.concat([res.batch, eve])
    fb.records["pkts"][0] = 1 << 63  # no store holds it: NULL in both paths
    # Zeek's per-record texts (uid, history, state) on two of them
    fb.texts = [("", None, None)] * len(fb)
    fb.texts[1] = ("CHhAvVGS1DHFjwGM9", "ShADadFf", "SF")
    fb.texts[2] = ("C2", "", "S0")
    return fb


def test_columns_equal_the_row_by_row_reference():
    fb = records()
    got = R.flow_record_rows(fb, "s1")
    ref = FR.store_rows(fb)
    at = {c: i for i, c in enumerate(FR.ROW_COLUMNS)}
    keys = flow_tuple_keys(*([r[at[c]] for r in ref] for c in ("src_ip", "src_port", "dest_ip", "dest_port",
                                                                "proto")))
    ne = len(FR.EVE_COLUMNS)
    want = [(*r[:ne], "s1", k, *r[ne:]) for r, k in zip(ref, keys, strict=True)]
    want = [tuple(v.replace("\0", "\ufffd") if isinstance(v, str) else v for v in r) for r in want]
    assert got == want
    assert all(k is not None for k in keys[:-1]) and got[-1][0] == 77  # the EVE one keeps its flow id
    assert got[0][R.FLOW_COLUMNS.index("pkts_toserver")] is None
    at = R.FLOW_COLUMNS.index
    assert [got[1][at("uid")], got[1][at("history")], got[1][at("state")]] == ["CHhAvVGS1DHFjwGM9", "ShADadFf", "SF"]


def test_every_flows_column_has_a_builder():
    assert len(R.flow_record_arrays(records(), "s")) == len(R.FLOW_COLUMNS)


def _item(fb: FR.FlowBatch, alerts=None) -> Enriched:
    a = alerts if alerts is not None else B.empty(0)
    return Enriched(AlertBatch(a, [], "t", events=FR.event_batch(fb)), None, [])


def _flows(path) -> list[tuple]:
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT * FROM flows ORDER BY id").fetchall()
    finally:
        c.close()


def test_native_and_executemany_store_the_same_rows(tmp_path, monkeypatch):
    a = _sink(tmp_path / "c.db", monkeypatch, True)
    b = _sink(tmp_path / "py.db", monkeypatch, False)
    fb = records()
    for s in (a, b):
        _write(s, _item(fb))
        _write(s, _item(FR.FlowBatch(fb.records[:3], fb.strings, fb.origin)))
        asyncio.run(s.aclose())
    got, want = _flows(tmp_path / "c.db"), _flows(tmp_path / "py.db")
    assert got == want and len(got) == len(fb) + 3
    # the EVE-sourced record was stored once (its key), the NetFlow ones have no engine id and add up
    names = [d for d in ("id", *R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS)]
    row = dict(zip(names, got[0], strict=True))
    assert row["sensor"] == "s1" and row["source"] == "netflow5" and row["sampling"] == 10
    assert row["event_type"] == "netflow" and row["pkts_toclient"] is None and row["tuple_key"]


def test_a_netflow_record_links_alerts_stored_before_it(tmp_path, monkeypatch):
    """A late flow (NetFlow reports at expiry) links the alerts already in
    the store, and gets their count and best priority."""
    sink = _sink(tmp_path / "a.db", monkeypatch, True)
    fb = records()
    r = fb.records[0]
    al = B.empty(2)
    for k in range(2):
        x = al[k]
        x["ts_us"] = int(r["start_us"]) + 1000
        x["src_addr"], x["dst_addr"] = (r["dst_addr"], r["src_addr"]) if k else (r["src_addr"], r["dst_addr"])
        x["src_port"], x["dst_port"] = (r["dst_port"], r["src_port"]) if k else (r["src_port"], r["dst_port"])
        x["proto"], x["ip_ver"], x["flags"] = r["proto"], 4, B.F_ADDRS | B.F_PORTS
        x["gid"], x["sid"], x["rev"], x["priority"] = 1, 1000 + k, 1, 3 - k
        x["source"] = B.SRC_SNORT
    _write(sink, Enriched(AlertBatch(al, [], "t"), None, []))
    _write(sink, _item(FR.FlowBatch(fb.records[:1], fb.strings, fb.origin)))
    asyncio.run(sink.aclose())
    c = sqlite3.connect(tmp_path / "a.db")
    fid, count, top = c.execute("SELECT id, alert_count, top_priority FROM flows_v").fetchone()
    assert (count, top) == (2, 2)
    assert c.execute("SELECT count(*) FROM alerts WHERE flow_ref = ?", (fid,)).fetchone() == (2,)
    c.close()


def test_lazy_lines_render_only_when_asked_and_concat_keeps_lines_in_order():
    fb = records()
    ev = FR.event_batch(fb)
    assert ev.lazy and ev.count == len(fb) and ev.nbytes() > 0
    eve = EventBatch(b'{"event_type":"dns"}\n', 1, None, {"dns": 1}, None)
    both = EventBatch.concat([eve, FR.event_batch(fb)])
    assert not both.lazy and both.count == len(fb) + 1
    lines = both.lines.splitlines()
    assert lines[0] == b'{"event_type":"dns"}' and lines[1:] == FR.json_lines(fb).splitlines()
    assert both.record_line.tolist() == list(range(1, len(fb) + 1))
    assert both.flow_lines().tolist() == list(range(1, len(fb) + 1))
    lazy2 = EventBatch.concat([FR.event_batch(fb), FR.event_batch(fb)])
    assert lazy2.lazy and len(lazy2.records) == 2 * len(fb)
    assert lazy2.types == {t: 2 * n for t, n in FR.event_types(fb).items()}
    with pytest.raises(ValueError):
        EventBatch(None, 1)


def test_isolation_splits_records_by_line(tmp_path):
    from ingest import isolate

    fb = records()
    eve = EventBatch(b'{"event_type":"dns"}\n', 1, None, {"dns": 1}, None)
    item = Enriched(AlertBatch(B.empty(0), [], "t", events=EventBatch.concat([eve, FR.event_batch(fb)])),
                    None, [])
    lo, hi = isolate.split(item)
    n_lo = len(lo.batch.events.records.records)
    n_hi = len(hi.batch.events.records.records)
    assert n_lo + n_hi == len(fb) and lo.batch.events.count + hi.batch.events.count == len(fb) + 1
    lazy = _item(fb)
    a, b = isolate.split(lazy)
    assert a.batch.events.lazy and len(a.batch.events.records) + len(b.batch.events.records) == len(fb)
    assert np.array_equal(np.concatenate([a.batch.events.records.records, b.batch.events.records.records]),
                          fb.records)


def test_a_collector_reads_record_lines_back_into_the_same_rows():
    """NetFlow/IPFIX and Zeek flows over NATS: the JSON lines a sensor
    publishes (json_lines) decode, at the collector, into the very rows the
    sensor's own store holds (a Suricata-sourced record needs its own
    flow_id and is not a record line)."""
    from ingest.eve import decode_lines

    fb = records()
    nf = fb.subset(fb.records["source"] != FR.FLOW_SRC_EVE)
    ev = decode_lines(FR.json_lines(nf)).batch.events
    assert ev.flows == FR.store_rows(nf) and ev.flow_line == list(range(len(nf)))
    assert {r[FR.ROW_COLUMNS.index("source")] for r in ev.flows} == {"netflow5", "netflow9", "ipfix"}


def test_two_sinks_asking_at_once_render_once_and_see_the_same_lines():
    """jsonl and nats sinks run on their own threads and may ask a lazy
    batch for its lines at the same moment: one renders, the other waits."""
    import threading
    import time

    calls = []

    def render() -> bytes:
        calls.append(1)
        time.sleep(0.05)  # long enough for the other thread to arrive
        return b'{"x":1}\n'

    ev = EventBatch(None, 1, render=render)
    got: list[bytes] = []
    ts = [threading.Thread(target=lambda: got.append(ev.lines)) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert got == [b'{"x":1}\n'] * 4 and len(calls) == 1 and not ev.lazy


def test_a_lazy_concat_renders_its_lazy_parts_without_deadlock():
    """A concat of lazy batches renders its parts' lines inside its own
    render: the render lock is re-entrant (a plain lock hung the jsonl sink
    and the shutdown behind it, caught by test_netflow in CI)."""
    import threading

    parts = [EventBatch(None, 1, render=lambda i=i: f'{{"n":{i}}}\n'.encode()) for i in range(3)]
    joined = EventBatch.concat(parts)
    assert joined.lazy
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(joined.lines), daemon=True)
    t.start()
    t.join(30)  # a deadline against the hang, not a timing claim
    assert got == [b'{"n":0}\n{"n":1}\n{"n":2}\n']
