"""Alerts of every engine linked to their flow (ingest.flows.correlate),
in a real SQLite store through both of its writers (PostgreSQL:
tests/integration/test_correlate_pg.py): the
normalised 5-tuple in either direction, the time window with its slack,
late flows, ties, and each flow's alert count and top priority kept true."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest.eve import decode_lines, parse_ts
from ingest.flows.correlate import alert_tuple_keys, flow_tuple_keys, tuple_keys
from ingest.mapping import Enricher
from ingest.sinks.sqlite import SqliteSink, native_ok

T0 = parse_ts("2026-12-04T12:00:00.000000+0000")
S = 1_000_000


def _addr(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed


def snort(alerts: list[tuple]) -> object:
    """Snort-like alerts: (ts_us, src, sport, dst, dport, priority, proto)."""
    a = B.empty(len(alerts))
    for i, (ts, src, sp, dst, dp, prio, proto) in enumerate(alerts):
        a[i]["ts_us"] = ts
        a[i]["src_addr"] = _addr(src)
        a[i]["dst_addr"] = _addr(dst)
        a[i]["src_port"], a[i]["dst_port"] = sp, dp
        a[i]["proto"] = proto
        a[i]["ip_ver"] = 6 if ":" in src else 4
        a[i]["flags"] = B.F_ADDRS | (B.F_ICMP if proto in (1, 58) else B.F_PORTS)
        a[i]["gid"], a[i]["sid"], a[i]["rev"] = 1, 1000 + i, 1
        a[i]["priority"] = prio
        a[i]["source"] = B.SRC_SNORT
        a[i]["msg_idx"] = -1
        a[i]["app_idx"] = -1
    return Enricher().apply(B.AlertBatch(a, [], "t"))


def flow_line(fid: int, src: str, sp: int, dst: str, dp: int, start_us: int, end_us: int,
              proto: str = "TCP") -> bytes:
    def ts(us: int) -> str:
        sec, frac = divmod(us, S)
        return np.datetime64(sec, "s").astype(str) + f".{frac:06d}+0000"

    return json.dumps({"timestamp": ts(end_us), "event_type": "flow", "flow_id": fid, "src_ip": src,
                       "src_port": sp, "dest_ip": dst, "dest_port": dp, "proto": proto,
                       "flow": {"start": ts(start_us), "end": ts(end_us), "pkts_toserver": 3,
                                "pkts_toclient": 2, "bytes_toserver": 300, "bytes_toclient": 200,
                                "state": "closed", "reason": "timeout", "alerted": False}}).encode()


def flows(lines: list[bytes]) -> object:
    return Enricher().apply(decode_lines(b"\n".join(lines) + b"\n").batch)


def suricata_alert(fid: int, ts_us: int, src: str, sp: int, dst: str, dp: int, sev: int) -> bytes:
    sec, frac = divmod(ts_us, S)
    ts = np.datetime64(sec, "s").astype(str) + f".{frac:06d}+0000"
    return json.dumps({"timestamp": ts, "flow_id": fid, "event_type": "alert", "src_ip": src, "src_port": sp,
                       "dest_ip": dst, "dest_port": dp, "proto": "TCP",
                       "alert": {"gid": 1, "signature_id": 9, "rev": 1, "signature": "x", "category": "c",
                                 "severity": sev}}).encode()


# ---- the key -----------------------------------------------------------------


def test_the_key_is_the_same_in_either_direction_and_from_text_or_bytes():
    a = snort([(T0, "10.0.0.1", 1234, "10.0.0.2", 80, 1, 6), (T0, "10.0.0.2", 80, "10.0.0.1", 1234, 1, 6),
               (T0, "10.0.0.1", 1235, "10.0.0.2", 80, 1, 6), (T0, "2001:db8::1", 5, "2001:db8::2", 6, 1, 17),
               (T0, "10.0.0.1", 8, "10.0.0.2", 0, 1, 1), (T0, "10.0.0.1", 0, "10.0.0.2", 0, 1, 1)]).batch.alerts
    k = alert_tuple_keys(a).tolist()
    assert k[0] == k[1] != k[2] and k[4] == k[5]  # ICMP: type/code are not part of it
    assert all(x > 0 for x in k) and len({k[0], k[2], k[3], k[4]}) == 4
    f = flow_tuple_keys(["10.0.0.2", "2001:db8::2", "10.0.0.2", "bogus"], [80, 6, None, 1],
                        ["10.0.0.1", "2001:db8::1", "10.0.0.1", "10.0.0.1"], [1234, 5, None, 2],
                        ["TCP", "17", "ICMP", "TCP"])
    assert f == [k[0], k[3], k[4], None]
    # no addresses: no key
    none = tuple_keys(np.zeros((2, 16), np.uint8), [1, 2], np.zeros((2, 16), np.uint8), [3, 4], [6, 6], [False, True])
    assert none[0] == 0 and none[1] != 0


# ---- the stores ---------------------------------------------------------------


def _sqlite(tmp_path, monkeypatch, native: bool) -> tuple[SqliteSink, str]:
    monkeypatch.setenv("INGEST_SQLITE_NATIVE", "1" if native else "0")
    native_ok.cache_clear()
    try:
        sink = SqliteSink(str(tmp_path / f"s{int(native)}.db"), sensor="s1", correlate_slack=2.0)
    finally:
        native_ok.cache_clear()
    return sink, str(tmp_path / f"s{int(native)}.db")


def _sqlite_rows(path: str, sql: str) -> list[tuple]:
    c = sqlite3.connect(path)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def scenario(write, rows) -> None:
    """One story through a store: write(item) stores a batch, rows(sql) reads."""
    # 1. Snort alerts before any flow (late flows): none linked yet
    write(snort([(T0 + 1 * S, "10.0.0.1", 40000, "192.0.2.9", 80, 2, 6),   # in flow 7's window
                 (T0 + 9 * S, "192.0.2.9", 80, "10.0.0.1", 40000, 1, 6),   # the reverse direction, in window + slack
                 (T0 + 30 * S, "10.0.0.1", 40000, "192.0.2.9", 80, 1, 6),  # past the window and the slack
                 (T0 + 2 * S, "10.0.0.3", 5, "192.0.2.9", 80, 3, 6)]))     # another 5-tuple
    assert rows("SELECT count(*) FROM alerts WHERE flow_ref IS NOT NULL") == [(0,)]
    # 2. the flow arrives (after its alerts): it links the stored alerts in its window
    write(flows([flow_line(7, "192.0.2.9", 80, "10.0.0.1", 40000, T0, T0 + 8 * S)]))
    linked = rows("SELECT a.ts_us, f.flow_id FROM alerts a JOIN flows f ON f.id = a.flow_ref ORDER BY a.ts_us")
    assert linked == [(T0 + 1 * S, 7), (T0 + 9 * S, 7)]
    assert rows("SELECT alert_count, top_priority FROM flows_v WHERE flow_id = 7") == [(2, 1)]
    # 3. an alert after its flow is stored: linked at once
    write(snort([(T0 + 5 * S, "10.0.0.1", 40000, "192.0.2.9", 80, 3, 6)]))
    assert rows("SELECT alert_count, top_priority FROM flows_v WHERE flow_id = 7") == [(3, 1)]
    # 4. a second flow of the same 5-tuple starts closer to the last alerts: it takes them
    write(flows([flow_line(8, "10.0.0.1", 40000, "192.0.2.9", 80, T0 + 6 * S, T0 + 31 * S)]))
    by_ts = dict(rows("SELECT a.ts_us, f.flow_id FROM alerts a LEFT JOIN flows f ON f.id = a.flow_ref"))
    assert by_ts[T0 + 1 * S] == 7  # 1 s from 7's start (0 s), 5 s from 8's (6 s)
    assert by_ts[T0 + 5 * S] == 8 and by_ts[T0 + 9 * S] == 8  # 5 s: 1 s from 8's start; 9 s: 3 s
    assert by_ts[T0 + 30 * S] == 8  # in 8's window only
    assert by_ts[T0 + 2 * S] is None
    assert rows("SELECT flow_id, alert_count, top_priority FROM flows_v ORDER BY flow_id") == [(7, 1, 2), (8, 3, 1)]
    # 5. a Suricata alert of flow 7 while flow 8 is closer: its own engine flow id wins
    write(flows([suricata_alert(7, T0 + 7 * S, "10.0.0.1", 40000, "192.0.2.9", 80, 1)]))
    got = rows("SELECT f.flow_id FROM alerts a JOIN flows f ON f.id = a.flow_ref WHERE a.source = 'eve'")
    assert got == [(7,)]
    assert rows("SELECT flow_id, alert_count, top_priority FROM flows_v ORDER BY flow_id") == [(7, 2, 1), (8, 3, 1)]
    # 6. an alert and its flow in one batch, the alert first: linked (the batch's flows go in first)
    write(flows([suricata_alert(9, T0 + 61 * S, "10.0.0.8", 1, "192.0.2.9", 80, 2),
                 flow_line(9, "10.0.0.8", 1, "192.0.2.9", 80, T0 + 60 * S, T0 + 62 * S)]))
    assert rows("SELECT flow_id, alert_count, top_priority FROM flows_v WHERE flow_id = 9") == [(9, 1, 2)]


def with_vlan(item, vlans: list[int | None]):
    """item's alerts with these VLAN ids (None: the alert carries none)."""
    a = item.batch.alerts
    for i, v in enumerate(vlans):
        if v is not None:
            a[i]["vlan"] = v
            a[i]["flags"] |= B.F_VLAN
    return item


def vlan_line(line: bytes, vlan: int | None) -> bytes:
    obj = json.loads(line)
    if vlan is not None:
        obj["vlan"] = [vlan]
    return json.dumps(obj).encode()


def vlan_scenario(write, rows) -> None:
    """Two flows that differ only by VLAN: an alert that carries a VLAN
    joins the flow of its VLAN, one without joins by the usual rule (the
    closest start, then the older row), and a flow without VLAN takes an
    alert of any VLAN."""
    a = ("10.0.0.1", 40000, "192.0.2.9", 80)
    b = ("10.0.0.5", 1234, "192.0.2.9", 53)
    t = T0 + 100 * S
    # alerts first (flows reported at expiry come later)
    write(with_vlan(snort([(t + 1 * S, *a, 2, 6), (t + 2 * S, *a, 3, 6), (t + 3 * S, *a, 4, 6),
                           (t + 4 * S, *a, 1, 6), (t + 5 * S, *b, 1, 6)]),
                    [20, 10, None, 30, 30]))
    write(flows([vlan_line(flow_line(21, *a, t, t + 10 * S), 10),
                 vlan_line(flow_line(22, *a, t, t + 10 * S), 20),
                 vlan_line(flow_line(23, *b, t, t + 10 * S), None)]))
    by_ts = dict(rows("SELECT a.ts_us, f.flow_id FROM alerts a LEFT JOIN flows f ON f.id = a.flow_ref "
                      f"WHERE a.ts_us >= {t}"))
    assert by_ts == {t + 1 * S: 22, t + 2 * S: 21, t + 3 * S: 21, t + 4 * S: None, t + 5 * S: 23}
    # and an alert stored after its flows, the same way
    write(with_vlan(snort([(t + 6 * S, *a, 1, 6)]), [20]))
    got = rows("SELECT flow_id, alert_count, top_priority FROM flows_v WHERE flow_id IN (21, 22, 23) "
               "ORDER BY flow_id")
    assert got == [(21, 2, 3), (22, 2, 1), (23, 1, 1)]


def icmp_line(fid: int, src: str, dst: str, start_us: int, end_us: int) -> bytes:
    obj = json.loads(flow_line(fid, src, 0, dst, 0, start_us, end_us, "ICMP"))
    del obj["src_port"], obj["dest_port"]
    obj["icmp_type"], obj["icmp_code"] = 8, 0
    return json.dumps(obj).encode()


def zeek_icmp(uid: str, src: str, dst: str, start_us: int) -> object:
    """One Zeek conn.log ICMP record (JSON), as the --zeek-conn source hands it on."""
    from ingest.eve import split_lines
    from ingest.flows.record import event_batch
    from ingest.flows.zeek import ZeekConnDecoder

    line = json.dumps({"ts": start_us / S, "uid": uid, "id.orig_h": src, "id.orig_p": 8, "id.resp_h": dst,
                       "id.resp_p": 0, "proto": "icmp", "duration": 2.0, "conn_state": "OTH",
                       "orig_pkts": 2, "orig_ip_bytes": 168, "resp_pkts": 2, "resp_ip_bytes": 168}).encode() + b"\n"
    offs, lens, _ = split_lines(line)
    res = ZeekConnDecoder("json").decode(line, offs, lens, "t")
    assert not res.rejected and len(res.batch) == 1
    res.batch.texts = res.texts
    return Enricher().apply(B.AlertBatch(B.empty(0), [], "t", events=event_batch(res.batch)))


def portless_scenario(write, rows) -> None:
    """A flow without ports (ICMP) seen again -- a Suricata flow event or a
    Zeek conn.log line read twice after a crash between commit and bookmark
    -- is stored once, like any flow with an engine id, and keeps its alerts
    (the reviewer's find: src_port NULL never conflicted in the unique key)."""
    t = T0 + 200 * S
    write(snort([(t + 1 * S, "10.9.0.1", 8, "10.9.0.2", 0, 2, 1), (t + 1 * S, "10.9.0.3", 8, "10.9.0.4", 0, 1, 1)]))
    for _ in range(2):
        write(flows([icmp_line(31, "10.9.0.1", "10.9.0.2", t, t + 2 * S)]))
        write(zeek_icmp("CzIcmp1", "10.9.0.3", "10.9.0.4", t))
    # and twice in one batch
    write(flows([icmp_line(31, "10.9.0.1", "10.9.0.2", t, t + 2 * S)] * 2))
    got = rows("SELECT source, uid, alert_count, top_priority FROM flows_v WHERE src_ip LIKE '10.9.0.%' "
               "ORDER BY src_ip")
    assert got == [("eve", None, 1, 2), ("zeek", "CzIcmp1", 1, 1)]
    linked = rows("SELECT count(*) FROM alerts a JOIN flows f ON f.id = a.flow_ref WHERE f.src_ip LIKE '10.9.0.%'")
    assert linked == [(2,)]
    # an alert after them joins the row that stands (not one that was replaced)
    write(snort([(t + 1 * S + 5, "10.9.0.3", 8, "10.9.0.4", 0, 3, 1), (t + 1 * S + 5, "10.9.0.1", 8, "10.9.0.2", 0, 3, 1)]))
    linked = rows("SELECT count(*) FROM alerts a JOIN flows f ON f.id = a.flow_ref WHERE f.src_ip LIKE '10.9.0.%'")
    assert linked == [(4,)]


@pytest.mark.parametrize("native", [True, False], ids=["c-writer", "executemany"])
@pytest.mark.parametrize("story", ["scenario", "vlan_scenario", "portless_scenario"])
def test_sqlite_links_every_engines_alerts_to_their_flow(tmp_path, monkeypatch, native, story):
    """Each story (the late flow, VLANs, a port-less flow seen again)
    through the SQLite store, with both writers."""
    sink, path = _sqlite(tmp_path, monkeypatch, native)

    def write(item) -> None:
        asyncio.run(asyncio.wait_for(sink.write(item), 30))

    globals()[story](write, lambda sql: _sqlite_rows(path, sql))
    asyncio.run(sink.aclose())


def test_no_statement_walks_a_table(tmp_path):
    """Every correlation statement reaches alerts and flows through an index
    or a rowid range (SQLite's own plan): a plan that scans either table, or
    walks a whole index, would make each batch cost O(n)."""
    from ingest.flows import correlate

    path = tmp_path / "a.db"
    asyncio.run(SqliteSink(str(path)).aclose())
    c = sqlite3.connect(path)
    from ingest.sinks.sqlite import insert_linked

    stmts = [correlate.dedupe_flows(flows_after=10), insert_linked(5 * S),
             *correlate.statements(postgresql=False, slack_us=5 * S, alerts_after=10, flows_after=10),
             *correlate.statements(postgresql=False, slack_us=5 * S, alerts_after=10, flows_after=10,
                                   new_alerts=False)]
    for stmt in stmts:
        if stmt.startswith("CREATE"):
            c.execute(stmt)
            continue
        linked = stmt.startswith("INSERT INTO alerts")  # (its parameters: the plan does not depend on them)
        plan = [r[3] for r in c.execute("EXPLAIN QUERY PLAN " + stmt, (None,) * 26 if linked else ())]
        if linked:  # the alert's flow: one range of the flows index
            assert any(p.startswith("SEARCH f USING INDEX flows_tuple (tuple_key=? AND start_us<?)") for p in plan), plan
        for step in plan:
            assert not (step.startswith("SCAN") and "ingest_" not in step), (stmt, plan)
            assert "flow_ref>" not in step and "(rowid<" not in step, (stmt, plan)
    c.close()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_the_c_alert_keys_are_the_numpy_definition(n, seed):
    """csrc/hash.c's ingest_alert_tuple_keys gives tuple_keys' keys for any
    alert fields (addresses of either family, ports or ICMP, any flags)."""
    from ingest.flows.correlate import alert_tuple_keys_numpy

    rng = np.random.default_rng(seed)
    a = np.zeros(n, B.ALERT_DTYPE)
    a.view(np.uint8).reshape(n, -1)[:, :] = rng.integers(0, 256, (n, a.dtype.itemsize), dtype=np.uint8)
    a["ip_ver"] = rng.choice([0, 4, 6], n)
    a["proto"] = rng.choice([1, 6, 17, 58, 132, 0, 255], n)
    if n > 1:  # both endpoints equal, ports decide the order
        a["dst_addr"][0] = a["src_addr"][0]
    got, want = alert_tuple_keys(a), alert_tuple_keys_numpy(a)
    assert got.tolist() == want.tolist()
    assert ((got != 0) == ((a["flags"] & B.F_ADDRS) != 0)).all()
    assert alert_tuple_keys(a[:0]).tolist() == []


# ---- the recent flows in memory (ingest.flows.recent) ----------------------------


def _records(rng, n: int, hosts: range, t0: int, vlans: bool):
    """n NetFlow-like records among a few 5-tuples (either direction),
    starting around t0, some of one packet, some with a VLAN."""
    from ingest.flows import record as FR

    r = FR.empty(n)
    h = rng.integers(hosts.start, hosts.stop, n)
    fwd = rng.random(n) < 0.5
    a = np.frombuffer(b"".join(_addr(f"10.0.{x // 250}.{x % 250 + 1}") for x in h), np.uint8).reshape(n, 16)
    b = np.tile(np.frombuffer(_addr("192.0.2.9"), np.uint8), (n, 1))
    r["src_addr"] = np.where(fwd[:, None], a, b).view("V16").reshape(-1)
    r["dst_addr"] = np.where(fwd[:, None], b, a).view("V16").reshape(-1)
    r["src_port"], r["dst_port"] = np.where(fwd, 40000 + h % 7, 80), np.where(fwd, 80, 40000 + h % 7)
    r["proto"], r["ip_ver"] = 6, 4
    r["start_us"] = t0 + rng.integers(0, 60 * S, n)
    r["end_us"] = r["start_us"] + np.where(rng.random(n) < 0.1, 0, rng.integers(0, 20 * S, n))
    r["pkts"], r["bytes"], r["source"] = 1, 100, FR.FLOW_SRC_IPFIX
    r["flags"] = FR.FF_ADDRS | FR.FF_PORTS
    if vlans:
        v = rng.integers(0, 3, n)
        r["vlan"] = v * 10
        r["flags"] |= np.where(v > 0, FR.FF_VLAN, 0).astype(r["flags"].dtype)
    return r


def _record_item(r):
    from ingest.flows import record as FR

    return Enricher().apply(B.AlertBatch(B.empty(0), [], "t", events=FR.event_batch(FR.FlowBatch(r, [], "t"))))


def _alerts_of(rng, n: int, hosts: range, t0: int):
    rows = []
    for _ in range(n):
        x = int(rng.integers(hosts.start, hosts.stop + 2))  # (a couple of 5-tuples no flow has)
        src = f"10.0.{x // 250}.{x % 250 + 1}"
        rows.append((t0 + int(rng.integers(-10 * S, 90 * S)), src, 40000 + x % 7, "192.0.2.9", 80,
                     int(rng.integers(1, 4)), 6))
    item = snort(rows)
    return with_vlan(item, [int(v) * 10 if v else None for v in rng.integers(0, 3, n)])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_recent_flows_choose_what_the_store_chooses(tmp_path, monkeypatch, seed):
    """The C writer with its recent flows in memory (small, so that flows
    are evicted into the filter) links every alert to the flow the store's
    own subquery chooses (the executemany writer, no memory): alerts
    before and after their flows, in the flows' own batch, across a
    restart of the writer, and after another connection wrote to the store
    (a flow added, a flow deleted)."""
    from ingest.flows.recent import RecentFlows

    rng = np.random.default_rng(seed)
    fast, fast_path = _sqlite(tmp_path, monkeypatch, native=True)
    if not native_ok():
        pytest.skip("no C writer here")
    ref, ref_path = _sqlite(tmp_path, monkeypatch, native=False)
    fast._recent = RecentFlows(fast.slack_us, capacity=40)

    def both(item) -> None:
        for sink in (fast, ref):
            asyncio.run(asyncio.wait_for(sink.write(item), 30))

    def links(path: str) -> list[tuple]:
        return _sqlite_rows(path, "SELECT id, flow_ref FROM alerts ORDER BY id")

    decided = asked = 0
    for step in range(12):
        t = T0 + step * 30 * S
        hosts = range(step * 10, step * 10 + 14)  # new 5-tuples step by step, and some of the last step's
        both(_alerts_of(rng, 30, hosts, t))  # alerts before their flows
        both(_record_item(_records(rng, 25, hosts, t, vlans=step % 2 == 1)))
        both(_alerts_of(rng, 30, hosts, t))  # and after
        if step == 5:  # the writer restarts: what it kept is gone, the store has it all
            decided, asked = fast._recent.decided, fast._recent.asked
            asyncio.run(fast.aclose())
            fast, _ = _sqlite(tmp_path, monkeypatch, native=True)
            fast._recent = RecentFlows(fast.slack_us, capacity=40)
        if step == 8:  # another connection writes: a flow deleted, a flow added (the same in both stores)
            for path in (fast_path, ref_path):
                c = sqlite3.connect(path)
                fid = c.execute("SELECT max(flow_ref) FROM alerts").fetchone()[0]
                c.execute("DELETE FROM flows WHERE id = ?", (fid,))
                c.execute("UPDATE alerts SET flow_ref = NULL WHERE flow_ref = ?", (fid,))
                c.execute("INSERT INTO flows (event_type, sensor, tuple_key, start_us, end_us) SELECT "
                          "'netflow', 'x', tuple_key, ?, ? FROM alerts ORDER BY id DESC LIMIT 1",
                          (t + 25 * S, t + 26 * S))
                c.commit()
                c.close()
    # the alerts and their flows in one batch (the alerts first in it)
    r = _records(rng, 10, range(500, 510), T0 + 500 * S, vlans=False)
    a = _alerts_of(rng, 20, range(500, 510), T0 + 500 * S)
    a.batch.events = _record_item(r).batch.events
    both(a)
    rec = fast._recent
    for sink in (fast, ref):
        asyncio.run(sink.aclose())
    # (the memory decided many alerts, the store the rest, before and after
    # the restart; the store's keys were read again after the other
    # connection's write)
    assert decided > 100 and asked > 10 and rec.decided > 100 and rec.asked > 10 and rec.scans >= 2
    got, want = links(fast_path), links(ref_path)
    assert len(got) == len(want) > 700
    assert got == want
    assert sum(x[1] is not None for x in want) > 100  # (most alerts do have a flow)


def test_the_recent_flows_stay_within_their_bytes(monkeypatch):
    """However many flows go by, at most ``capacity`` are kept (the oldest
    leave for the filter, which then sends their alerts to the store); a
    store too big to read sends every alert to the store."""
    from ingest.flows import recent as RF

    r = RF.RecentFlows(5 * S, capacity=1000)
    r.begin(1, lambda: 0, lambda: iter([np.array([77], np.int64)]))
    rng = np.random.default_rng(5)
    keys = rng.integers(1, 2**62, 20_000)
    ids = np.arange(1, 20_001)
    one = np.ones(len(ids), bool)
    for i in range(0, 20_000, 700):
        sl = slice(i, i + 700)
        r.add(ids[sl], keys[sl], ids[sl] * S, one[sl], ids[sl] * S + 10, one[sl], ids[sl] * 0, ~one[sl])
        assert len(r._id) <= 1000
    assert r.nbytes() <= RF.BLOOM_BITS // 8 + 1000 * 5 * 8
    ref, ask = r.choose(np.concatenate((keys, [77, 0])), np.concatenate((ids * S, [S, S])),
                        np.zeros(20_002, np.int64), np.zeros(20_002, bool))
    kept = np.isin(ids, r._id)
    assert ask[:20_000][~kept].all() and ask[20_000] and not ask[20_001]  # evicted, or the store's: asked
    assert (ref[:20_000][kept & ~ask[:20_000]] == ids[kept & ~ask[:20_000]]).all()
    assert (kept & ~ask[:20_000]).sum() >= 700
    monkeypatch.setattr(RF, "SCAN_MAX", 10)
    r.begin(2, lambda: 11, lambda: iter(()))  # another connection wrote; the store is "too big"
    assert r.choose(keys[:5], ids[:5] * S, np.zeros(5, np.int64), np.zeros(5, bool))[1].all()
