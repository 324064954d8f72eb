"""The NATS wire (ingest.wire): a batch of every input kind, encoded as the
sensor publishes it and decoded as the collector reads it, gives the very
rows the sensor's own store holds; and what is not ours is refused."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import batch as B
from ingest import unified2
from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4, ether_ipv6
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.maps import Maps
from ingest.render import render_json
from ingest.sinks import rows as R
from ingest.sinks.errors import DataError
from ingest.sinks.sqlite import rows
from ingest.wire import Decoder, Encoder, KeyAllocator, Poison, check_sensor

from . import u2writer as W


def _maps(tmp_path) -> Maps:
    (tmp_path / "sid-msg.map").write_text(
        "2000001 || ET TROJAN beacon || cve,2003-0352 || url,example.com/x\n"
        "1000 || unified2 sig \"quoted\" || url,example.com/u2\n")
    (tmp_path / "classification.config").write_text(
        "config classification: trojan-activity,A Network Trojan was detected,1\n"
        "config classification: misc-activity,Misc activity,3\n")
    (tmp_path / "reference.config").write_text("config reference: cve http://cve.mitre.org/cgi-bin/cvename.cgi?name=\n")
    return Maps.from_dir(str(tmp_path))


def snort_batch() -> B.AlertBatch:
    pkt4 = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443, vlan=12)
    pkt6 = ether_ipv6("2001:db8::10", "2001:db8::20", 17, 5000, 53)
    icmp = ether_ipv4("10.0.0.1", "10.0.0.2", 1, 8, 0)
    d = [encode_alertpkt("snort", msg="ET TROJAN beacon", sid=2000001, rev=2, priority=1, class_id=1,
                         event_id=1, ts_sec=1764266630, ts_usec=5, packet=pkt4),
         encode_alertpkt("snort3", msg='"v6 \\"dns\\""', sid=2000002, event_id=2, ts_sec=1764266631,
                         packet=pkt6),
         encode_alertpkt("snort-appid", msg="appid \u00e9\u2603", sid=2000003, app_name="SSH",
                         ts_sec=1764266632, packet=pkt4),
         encode_alertpkt("snort", msg="no packet", sid=5, ts_sec=1764266633, packet=None),
         encode_alertpkt("snort", msg="bad offset", sid=6, ts_sec=1764266634, packet=pkt4, nethdr=70000),
         encode_alertpkt("barnyard2", msg="by2", sid=2000004, sensor_id=3, event_id=9, ts_sec=1764266635,
                         packet=pkt4, class_id=2),
         encode_alertpkt("barnyard2-32", msg="", sid=2000005, ts_sec=1764266636, packet=icmp)]
    res = decode_datagrams(d)
    assert len(res.batch) == len(d)
    return res.batch


def unified2_batch(tmp_path) -> B.AlertBatch:
    data = (W.event_v4(104, event_id=1, sid=1000, vlan=7, cls=2) + W.packet(event_id=1)
            + W.event_v6(event_id=2, sid=1001, src="2001:db8::1", dst="2001:db8::2", proto=58,
                         sport=128, dport=0)
            + W.event3(event_id=3, sid=1002))
    p = tmp_path / "snort.u2.1700000000"
    p.write_bytes(data)
    return unified2.read(p).batch


def eve_batch() -> B.AlertBatch:
    lines = [
        {"timestamp": "2024-05-01T14:00:00.000001+0200", "flow_id": 1, "event_type": "alert",
         "src_ip": "10.0.0.1", "src_port": 1, "dest_ip": "10.0.0.2", "dest_port": 80, "proto": "TCP",
         "alert": {"action": "allowed", "gid": 1, "signature_id": 2000001, "rev": 1,
                   "signature": "ET TROJAN beacon", "category": "A Network Trojan was detected", "severity": 1},
         "ingest": {"source": "unified2", "sensor_id": 77, "event_id": 5, "class_id": 9}},  # a forged member
        {"timestamp": "2024-05-01T12:00:09.000001+0000", "flow_id": 1, "event_type": "flow", "src_ip": "10.0.0.1",
         "src_port": 1, "dest_ip": "10.0.0.2", "dest_port": 80, "proto": "TCP", "app_proto": "http",
         "flow": {"pkts_toserver": 3, "pkts_toclient": 2, "bytes_toserver": 300, "bytes_toclient": 200,
                  "start": "2024-05-01T11:59:59.000001+0000", "end": "2024-05-01T12:00:08.000001+0000",
                  "state": "closed", "reason": "timeout", "alerted": True}},
        {"timestamp": "2024-05-01T12:00:10.000001+0000", "event_type": "dns", "dns": {"rrname": "x\ud800"}},
        {"timestamp": "2024-05-01T12:00:11.000001+0000", "event_type": "alert", "src_ip": "fe80::1",
         "dest_ip": "ff02::1", "proto": "IPv6-ICMP", "icmp_type": 135, "icmp_code": 0, "vlan": [3, 4],
         "alert": {"gid": 1, "signature_id": 7, "rev": 0, "signature": "t\\u00e9st", "severity": 3}},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    res = decode_lines(text.encode())
    b = res.batch
    b.keys = np.array([-5, 99], np.int64)  # as an eve-file follower gives them
    return b


def roundtrip(item, *, sensor="s1", msg_bytes=256 << 10):
    enc = Encoder("ingest.test", sensor, msg_bytes=msg_bytes, keys=KeyAllocator(1000))
    msgs = enc.encode(item)
    dec = Decoder("ingest.test")
    got = [dec.decode(m.subject, m.headers, m.payload) for m in msgs]
    assert all(not g.rejected for g in got)
    batch = B.AlertBatch.concat([g.batch for g in got])
    return msgs, got, batch


def same_rows(item, batch):
    """The store rows of item (the sensor's) and of batch (the collector's)
    are the same, but for the replay key a record without one got on the
    wire; the collector's rows are the publishing sensor's."""
    back = Enricher().apply(batch)
    a1, s1 = rows(item, "s1")
    a2, s2 = rows(back, "elsewhere")
    si, ki = R.ALERT_COLUMNS.index("sensor"), R.ALERT_COLUMNS.index("replay_key")

    def rest(r: tuple) -> tuple:
        return tuple(v for j, v in enumerate(r) if j not in (si, ki))

    assert {r[si] for r in a2} <= {batch.sensor}
    assert sorted((rest(r) for r in a1), key=repr) == sorted((rest(r) for r in a2), key=repr)
    keyed = [r[ki] for r in a1 if r[ki] is not None]
    assert sorted(keyed) == sorted(r[ki] for r in a2 if r[ki] in set(keyed))  # the sensor's keys travel
    assert sorted(set(s1)) == sorted(set(s2))
    return back


@pytest.mark.parametrize("with_maps", [False, True])
def test_snort_and_barnyard2_rows_survive_the_wire(tmp_path, with_maps):
    enricher = Enricher()
    if with_maps:
        enricher.set_maps(_maps(tmp_path))
    item = enricher.apply(snort_batch())
    msgs, got, batch = roundtrip(item)
    assert {m.subject for m in msgs} == {"ingest.test.s1.alert"}
    back = same_rows(item, batch)
    # the JSON lines too: the collector's JSON sinks write what the sensor's wrote
    assert render_json(back.batch) == render_json(item.batch, "eve", item.categories, item.extra_strings,
                                                  item.references)
    # keys: assigned for Snort, 0 (the event is its own key) for Barnyard2
    src = batch.alerts["source"]
    assert batch.keys is not None
    assert (batch.keys[(src == B.SRC_BARNYARD2) | (src == B.SRC_BARNYARD2_32)] == 0).all()
    snort = batch.keys[src == B.SRC_SNORT]
    assert len(set(snort.tolist())) == len(snort) and (snort >= 1000).all()
    if with_maps:
        assert any(r[4] for r in rows(back)[1])  # references came along


def test_unified2_rows_and_extra_members_survive_the_wire(tmp_path):
    enricher = Enricher()
    enricher.set_maps(_maps(tmp_path))
    item = enricher.apply(unified2_batch(tmp_path))
    msgs, _, batch = roundtrip(item)
    back = same_rows(item, batch)
    line = json.loads(render_json(back.batch).splitlines()[0])
    assert "packet" in line and line["ingest"]["source"] == "unified2"
    assert (batch.keys == 0).all()
    assert all(m.headers["Ingest-Format"] == "ingest" for m in msgs)


def test_eve_records_travel_verbatim_and_a_forged_ingest_member_is_not_believed():
    item = Enricher().apply(eve_batch())
    msgs, got, batch = roundtrip(item)
    kinds = {m.subject.rsplit(".", 1)[1]: m for m in msgs}
    assert set(kinds) == {"alert", "flow", "event"}
    assert kinds["alert"].headers["Ingest-Format"] == "eve"
    back = same_rows(item, batch)
    assert set(batch.alerts["source"].tolist()) == {B.SRC_EVE}  # not "unified2" as the record claims
    assert batch.alerts["sensor_id"].tolist() == [0, 0]
    assert batch.keys.tolist() == [-5, 99]  # the follower's replay keys
    assert batch.events is not None and batch.events.count == 2
    assert batch.events.flows == item.batch.events.flows
    assert sorted(batch.events.lines.splitlines()) == sorted(item.batch.events.lines.splitlines())
    assert render_json(back.batch) == render_json(item.batch)


def test_mixed_batches_are_cut_by_format_and_size():
    item = Enricher().apply(B.AlertBatch.concat([snort_batch(), eve_batch(), snort_batch()]))
    msgs, got, batch = roundtrip(item, msg_bytes=1024)
    fmts = [m.headers["Ingest-Format"] for m in msgs if m.subject.endswith(".alert")]
    assert "eve" in fmts and "ingest" in fmts
    assert all(len(m.payload) + 11 * m.count <= 1024 for m in msgs)
    same_rows(item, batch)


def test_message_ids_are_the_records_identity():
    item = Enricher().apply(snort_batch())
    a = Encoder("p", "s1", keys=KeyAllocator(7)).encode(item)
    b = Encoder("p", "s1", keys=KeyAllocator(7)).encode(item)
    c = Encoder("p", "s1", keys=KeyAllocator(8)).encode(item)
    assert [m.msg_id for m in a] == [m.msg_id for m in b]
    assert [m.msg_id for m in a] != [m.msg_id for m in c]
    assert all(m.msg_id.startswith("s1:") for m in a)


def test_a_record_larger_than_a_message_is_refused_as_data():
    line = json.dumps({"timestamp": "2024-05-01T12:00:00Z", "event_type": "alert",
                       "alert": {"signature_id": 1, "signature": "x" * 5000}})
    item = Enricher().apply(decode_lines(line.encode() + b"\n").batch)
    enc = Encoder("p", "s1", msg_bytes=1024)
    enc.max_payload = 1024
    with pytest.raises(DataError):
        enc.encode(item)


def test_sensor_names_with_dots_come_back_from_the_subject():
    item = Enricher().apply(snort_batch())
    msgs, got, batch = roundtrip(item, sensor="dc1.sensor-07")
    assert msgs[0].subject == "ingest.test.dc1.sensor-07.alert"
    assert got[0].sensor == "dc1.sensor-07"
    for bad in ("", "a..b", "a.", ".a", "a b", "a*", "x" * 65):
        with pytest.raises(ValueError):
            check_sensor(bad)


def _msg(item=None):
    item = item or Enricher().apply(snort_batch())
    return Encoder("ingest.test", "s1").encode(item)[0]


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: ("other.s1.alert", m.headers, m.payload), "not_ours"),
    (lambda m: ("ingest.test.s1.bogus", m.headers, m.payload), "not_ours"),
    (lambda m: ("ingest.test.a..b.alert", m.headers, m.payload), "not_ours"),
    (lambda m: (m.subject, None, m.payload), "not_ours"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Wire": "9"}, m.payload), "unknown_version"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Count": "x"}, m.payload), "bad_header"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Count": "0"}, m.payload), "bad_header"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Format": "xml"}, m.payload), "bad_header"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Keys": "@@@"}, m.payload), "bad_header"),
    (lambda m: (m.subject, {**m.headers, "Ingest-Keys": base64.b64encode(b"\0" * 8).decode()}, m.payload),
     "bad_header"),
    (lambda m: (m.subject, m.headers, m.payload[:-20]), "truncated"),
    (lambda m: (m.subject, m.headers, m.payload + m.payload), "truncated"),
    (lambda m: (m.subject, m.headers, m.payload + b"x" * (9 << 20)), "oversized"),
])
def test_what_is_not_ours_is_poison(mutate, reason):
    with pytest.raises(Poison) as e:
        Decoder("ingest.test").decode(*mutate(_msg()))
    assert e.value.reason == reason


def test_a_bad_line_in_a_good_message_is_that_line_alone():
    m = _msg()
    lines = m.payload.splitlines(keepends=True)
    lines[1] = b'{"timestamp":"2024-01-01T00:00:00Z","event_type":"alert","alert":{"signature_id":1}}\n'  # no ingest member
    lines[2] = b'{"truncated": \n'
    got = Decoder("ingest.test").decode(m.subject, m.headers, b"".join(lines))
    assert [r for r, _ in got.rejected] == ["bad_alert", "invalid_json"]
    assert len(got.batch) == m.count - 2
    keys = np.frombuffer(base64.b64decode(m.headers["Ingest-Keys"]), "<i8")
    assert got.batch.keys.tolist() == [keys[0], *keys[3:]]  # each alert keeps its own key


def test_messages_decoded_together_give_what_each_gives_alone(tmp_path):
    """decode_group (the collector decodes a fetch's messages in one C call)
    gives the records, keys and texts of decoding each message alone, in
    order, and puts each refused line with the message holding it."""
    b = B.AlertBatch.concat([snort_batch()] * 40)
    item = Enricher().apply(b)
    msgs = Encoder("ingest.test", "s1", msg_bytes=4096, keys=KeyAllocator(1000)).encode(item)
    assert len(msgs) >= 4
    lines = msgs[2].payload.splitlines(keepends=True)
    lines[1] = b'{"truncated": \n'
    msgs[2].payload = b"".join(lines)
    dec = Decoder("ingest.test")
    alone = [dec.decode(m.subject, m.headers, m.payload) for m in msgs]
    g = dec.decode_group([dec.check(m.subject, m.headers, m.payload) for m in msgs])
    assert g.rejected == [a.rejected for a in alone]
    assert [r for r, _ in g.rejected[2]] == ["invalid_json"]
    one = B.AlertBatch.concat([a.batch for a in alone])
    assert len(g.batch) == len(one) == len(b) - 1
    assert g.batch.keys.tolist() == one.keys.tolist()
    assert g.batch.sensor == "s1"
    assert rows(Enricher().apply(g.batch), "x") == rows(Enricher().apply(one), "x")


def test_messages_of_different_sensors_are_never_decoded_together():
    item = Enricher().apply(snort_batch())
    m1 = Encoder("ingest.test", "s1").encode(item)[0]
    m2 = Encoder("ingest.test", "s2").encode(item)[0]
    dec = Decoder("ingest.test")
    with pytest.raises(ValueError):
        dec.decode_group([dec.check(m.subject, m.headers, m.payload) for m in (m1, m2)])


def test_a_payload_with_a_tail_after_its_last_line_is_truncated():
    m = _msg()
    with pytest.raises(Poison) as e:
        Decoder("ingest.test").decode(m.subject, m.headers, m.payload + b'{"x":1}')
    assert e.value.reason == "truncated"


# ---- any canonical alert: rendered, then read back by the wire decoder ----------
_u32 = st.integers(0, 2**32 - 1)


@st.composite
def alerts(draw):
    n = draw(st.integers(1, 20))
    a = B.empty(n)
    strings = draw(st.lists(st.text(max_size=30), min_size=1, max_size=5))
    for i in range(n):
        a[i]["ts_us"] = draw(st.integers(0, 253402300799999999))
        a[i]["flow_id"] = draw(st.integers(0, 2**64 - 1))
        for f in ("sensor_id", "event_id", "gid", "sid", "rev", "class_id", "priority"):
            a[i][f] = draw(_u32)
        a[i]["source"] = draw(st.sampled_from([B.SRC_SNORT, B.SRC_BARNYARD2, B.SRC_UNIFIED2]))
        a[i]["action"] = draw(st.sampled_from([0, 1, 2]))
        kind = draw(st.sampled_from(["none", "v4", "v6", "icmp"]))
        flags = draw(st.sampled_from([0, B.F_VLAN])) | draw(st.sampled_from([0, B.F_PKT_ANOMALY]))
        a[i]["vlan"] = draw(st.integers(0, 4095))
        if kind != "none":
            flags |= B.F_ADDRS
            a[i]["proto"] = draw(st.sampled_from([6, 17, 132, 47]) if kind != "icmp" else st.just(1))
            if kind == "v4" or kind == "icmp":
                a[i]["ip_ver"] = 4
                a[i]["src_addr"] = bytes(10) + b"\xff\xff" + draw(st.binary(min_size=4, max_size=4))
                a[i]["dst_addr"] = bytes(10) + b"\xff\xff" + draw(st.binary(min_size=4, max_size=4))
            else:
                a[i]["ip_ver"] = 6
                a[i]["src_addr"] = b"\x20\x01" + draw(st.binary(min_size=14, max_size=14))
                a[i]["dst_addr"] = b"\x20\x01" + draw(st.binary(min_size=14, max_size=14))
            flags |= B.F_ICMP if kind == "icmp" else draw(st.sampled_from([0, B.F_PORTS]))
            a[i]["src_port"] = draw(st.integers(0, 255 if kind == "icmp" else 65535))
            a[i]["dst_port"] = draw(st.integers(0, 255 if kind == "icmp" else 65535))
        a[i]["flags"] = flags
        a[i]["msg_idx"] = draw(st.integers(-1, len(strings) - 1))
        a[i]["app_idx"] = draw(st.integers(-1, len(strings) - 1))
    return B.AlertBatch(a, strings)


@settings(max_examples=60, deadline=None)
@given(alerts())
def test_any_rendered_alert_reads_back_to_the_same_store_row(batch):
    item = Enricher().apply(batch)
    _, _, back = roundtrip(item)
    same_rows(item, back)


# ---- hostile payloads under valid headers: refused, never a crash ---------------
REPRO = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "repro"


def _as_message(payload: bytes, fmt: str = "ingest") -> tuple[str, dict, bytes]:
    n = payload.count(b"\n")
    return ("ingest.test.s1.alert", {"Ingest-Wire": "1", "Ingest-Count": str(n), "Ingest-Format": fmt,
                                     "Ingest-Keys": base64.b64encode(bytes(8 * n)).decode()}, payload)


def _outcome(subj, headers, payload):
    """What the collector does with a message: Poison (dead-lettered whole)
    or each line stored or refused alone; anything else is a defect."""
    try:
        got = Decoder("ingest.test").decode(subj, headers, payload)
    except Poison as p:
        return p.reason
    assert len(got.batch) + len(got.rejected) <= got.count
    Enricher().apply(got.batch)  # the rows can be built
    return got


@pytest.mark.parametrize("fmt", ["ingest", "eve"])
def test_the_eve_reproducers_on_the_wire_are_refused_line_by_line(fmt):
    files = sorted(REPRO.glob("eve*"))
    assert files
    for p in files:
        lines = [ln for ln in p.read_bytes().replace(b"\r", b"").split(b"\n") if ln.strip()]
        _outcome(*_as_message(b"".join(ln + b"\n" for ln in lines), fmt))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_mutated_wire_message_is_never_a_crash(data):
    m = _msg()
    buf = bytearray(m.payload)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 2))
        op = data.draw(st.sampled_from(["set", "cut", "dup"]))
        if op == "set":
            b = data.draw(st.sampled_from([0, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0xFF, 0xC3,
                                           0xED, 0x75, 0x2D, 0x65]))
            if buf[i] != 10:
                buf[i] = b
        elif op == "cut":
            j = min(len(buf) - 1, i + data.draw(st.integers(1, 40)))
            if b"\n" not in buf[i:j]:
                del buf[i:j]
        else:
            j = min(len(buf) - 1, i + data.draw(st.integers(1, 40)))
            if b"\n" not in buf[i:j]:
                buf[i:i] = buf[i:j]
    _outcome(m.subject, m.headers, bytes(buf))
