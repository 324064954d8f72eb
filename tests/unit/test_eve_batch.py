"""AlertBatch with EVE parts: concat keeps raw pools, categories, replay keys and events aligned."""

from __future__ import annotations

import numpy as np

from ingest import batch as B
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.render import render_json

A = (b'{"timestamp":"2024-05-01T12:00:00.000000+0000","flow_id":%d,"event_type":"alert","src_ip":"10.0.0.1",'
     b'"src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"UDP","alert":{"gid":1,"signature_id":%d,'
     b'"rev":1,"signature":"sig %d","category":"cat %d","severity":2}}')


def eve(*sids: int, extra: bytes = b"") -> B.AlertBatch:
    data = b"".join(A % (s, s, s, s % 2) + b"\n" for s in sids) + extra
    return decode_lines(data).batch


def test_concat_keeps_everything_aligned():
    b1 = eve(1, 2, extra=b'{"event_type":"flow","flow_id":1,"flow":{"start":"2024-05-01T12:00:00.0+0000"}}\n')
    b1.keys = np.array([11, 12], np.int64)
    plain = B.AlertBatch(B.empty(1), ["snort msg"], "snort:x")
    plain.alerts["msg_idx"] = 0
    plain.alerts["sid"] = 99
    b2 = eve(3)
    j = B.AlertBatch.concat([b1, plain, b2])
    assert len(j) == 4 and j.queued() == 5
    assert [j.strings[i] for i in j.alerts["msg_idx"]] == ["sig 1", "sig 2", "snort msg", "sig 3"]
    assert [j.strings[i] if i >= 0 else None for i in j.cat] == ["cat 1", "cat 0", None, "cat 1"]
    assert j.keys.tolist() == [11, 12, 0, 0]
    assert j.events.count == 1 and len(j.events.flows) == 1
    lines = render_json(j).splitlines()
    assert lines[0] == A % (1, 1, 1, 1) and lines[1] == A % (2, 2, 2, 0) and lines[3] == A % (3, 3, 3, 1)
    assert b'"signature_id":99' in lines[2]  # rendered, not verbatim


def test_enricher_prefers_engine_category_and_sets_class_id():
    b = eve(1, 2)
    item = Enricher({1: "cat 0", 2: "cat 1"}).apply(b)
    assert b.alerts["class_id"].tolist() == [2, 1]
    assert [item.strings[i] for i in item.categories] == ["cat 1", "cat 0"]


def test_suricata_drop_counters_from_stats_event():
    from ingest.sources.eve import suricata_counters

    ev = {"event_type": "stats", "stats": {"uptime": 30, "capture": {"kernel_packets": 50, "kernel_drops": 7,
                                                                     "errors": 0, "afpacket": {"polls": 3}},
                                           "tcp": {"ssn_memcap_drop": 1, "sessions": 9}, "detect": {"alert": 4}}}
    assert suricata_counters(ev) == {"uptime": 30, "capture.kernel_packets": 50, "capture.kernel_drops": 7,
                                     "capture.errors": 0, "tcp.ssn_memcap_drop": 1, "detect.alert": 4}


def test_a_decoder_bug_costs_the_batch_not_the_reader(monkeypatch):
    from ingest.deadletter import DeadLetter
    from ingest.eve import EveDecoder, split_lines
    from ingest.sources.eve import handle_records
    from ingest.stats import Stats

    class Sub:
        def __init__(self):
            self.batches = []
            self.reserved = 0

        def reserve(self, n, timeout=0.0, nbytes=0, file=False):
            self.reserved += n
            return True

        def submit(self, b):
            self.batches.append(b)

        def release(self, n):
            self.reserved -= n

    data = A % (1, 1, 1, 1) + b"\n"
    offs, lens, _ = split_lines(data)
    dec = EveDecoder(4)
    monkeypatch.setattr(dec, "decode", lambda *a, **k: 1 / 0)
    sub, st, dl = Sub(), Stats(), DeadLetter(None)
    acked = []
    res = handle_records(dec, data, offs, lens, 1, "t", sub, st, dl, acks=[lambda: acked.append(1)])
    assert res is not None and res.records == 1  # consumed: a follower moves on
    assert st.malformed == {"internal_error": 1} and dl.count == 1 and sub.reserved == 0
    assert len(sub.batches) == 1 and len(sub.batches[0].acks) == 1


def test_a_decoder_bug_costs_only_the_record_that_triggers_it(monkeypatch):
    """An unexpected exception (a bug) while decoding a batch: the batch is
    decoded again record by record, and only the record that fails again is
    dead-lettered (internal_error); its neighbours flow, acks run once."""
    from ingest.deadletter import DeadLetter
    from ingest.eve import EveDecoder, split_lines
    from ingest.sources.eve import handle_records
    from ingest.stats import Stats

    class Sub:
        def __init__(self):
            self.batches = []

        def reserve(self, n, timeout=0.0, nbytes=0, file=False):
            return True

        def submit(self, b):
            self.batches.append(b)

        def release(self, n):
            pass

    trigger = b'{"event_type":"dns","dns":{"rrname":"triggers-a-bug"}}'
    data = A % (1, 1, 1, 1) + b"\n" + trigger + b"\n" + A % (2, 2, 2, 0) + b"\n"
    offs, lens, _ = split_lines(data)
    dec = EveDecoder(4)
    real = dec.decode

    def buggy(buf, o, ln, n=None, *a, **k):
        n = len(o) if n is None else n
        if any(b"triggers-a-bug" in bytes(memoryview(buf)[int(o[i]):int(o[i]) + int(ln[i])]) for i in range(n)):
            raise RuntimeError("a bug")
        return real(buf, o, ln, n, *a, **k)

    monkeypatch.setattr(dec, "decode", buggy)
    sub, st, dl = Sub(), Stats(), DeadLetter(None)
    acked = []
    handle_records(dec, data, offs, lens, 3, "t", sub, st, dl, acks=[lambda: acked.append(1)])
    assert st.malformed == {"internal_error": 1} and dl.count == 1
    (b,) = sub.batches
    assert b.alerts["sid"].tolist() == [1, 2] and len(b.acks) == 1
    assert render_json(b) == A % (1, 1, 1, 1) + b"\n" + A % (2, 2, 2, 0) + b"\n"
