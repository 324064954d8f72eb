"""The packed string pool: a batch's strings as C-made bytes instead of a list
of str, handled like a list everywhere (concat, mapping, render, sqlite)."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import batch as B
from ingest import unified2 as U
from ingest.mapping import Enricher
from ingest.render import render_json, to_records
from ingest.sinks.sqlite import SqliteSink, rows
from ingest.strings import Segment, StringPool, concat, take

from ..conftest import shared_file
from . import u2writer as W

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(st.lists(TEXT, max_size=30), st.lists(TEXT, max_size=5))
def test_pool_round_trips_and_indexes_like_a_list(a, b):
    pool = StringPool.from_strings(a) + b
    both = a + b
    assert len(pool) == len(both) and pool.tolist() == both and list(pool) == both
    for i in range(-len(both), len(both)):
        assert pool[i] == both[i]
    assert pool[1:4] == both[1:4]
    assert (b + StringPool.from_strings(a)).tolist() == b + a
    assert concat([a, pool, b]).tolist() == a + both + b  # type: ignore[union-attr]
    assert concat([a, b]) == a + b  # lists stay a list


def test_packed_segment_over_c_bytes_and_its_checks():
    data = np.frombuffer(b"xxhello\xc3\xa9t\xc3\xa9", np.uint8)
    pool = StringPool.packed(data, np.array([2, 7]), np.array([5, 5]))
    assert pool.tolist() == ["hello", "été"]
    with pytest.raises(IndexError):
        pool[2]
    with pytest.raises(ValueError):
        Segment(data, np.array([10]), np.array([5]))  # past the end of data
    assert take(pool, np.array([1, -1, 0, 1])) == ["été", None, "hello", "été"]
    assert take(["a", "b"], np.array([1, -1])) == ["b", None]
    assert len(StringPool()) == 0 and StringPool() + [] == [] and pool == ["hello", "été"]


def _snort_batch(strings):
    a = B.empty(4)
    a["source"] = B.SRC_SNORT
    a["gid"], a["sid"], a["rev"], a["class_id"] = 1, [10, 11, 10, 12], 1, [1, 2, 0, 1]
    a["ts_us"] = np.arange(4) * 1_000_000 + 1_700_000_000_000_000
    a["msg_idx"] = [0, 1, 0, -1]
    a["app_idx"] = [-1, 2, 2, -1]
    return B.AlertBatch(a, strings, "t", extra=np.array([3, -1, -1, 4], np.int32))


STRS = ["ET \"quoted\" \\ msg", "second é", "HTTP", '"k":1', '"deep":{"x":[1,2]}']


def test_render_is_the_same_for_a_list_and_a_pool():
    cls = {1: "Attempted Admin", 2: "Misc activity"}
    for profile in ("eve", "trisul"):
        out = []
        for strings in (list(STRS), StringPool.from_strings(STRS[:2]) + STRS[2:]):
            item = Enricher(cls).apply(_snort_batch(strings))
            out.append(render_json(item.batch, profile, item.categories, item.extra_strings))
        assert out[0] == out[1]
    rec = to_records(_snort_batch(StringPool.from_strings(STRS)))
    assert rec[0]["alert"]["signature"] == STRS[0] and rec[0]["k"] == 1 and rec[3]["deep"]["x"] == [1, 2]


def test_concat_mixing_list_and_pool_batches():
    lst = _snort_batch(list(STRS))
    pool = _snort_batch(StringPool.from_strings(STRS))
    merged = B.AlertBatch.concat([lst, pool, lst])
    assert isinstance(merged.strings, StringPool) and len(merged.strings) == 3 * len(STRS)
    assert merged.alerts["msg_idx"].tolist() == [0, 1, 0, -1, 5, 6, 5, -1, 10, 11, 10, -1]
    assert merged.extra.tolist() == [3, -1, -1, 4, 8, -1, -1, 9, 13, -1, -1, 14]
    assert render_json(merged) == render_json(lst) * 3
    assert B.AlertBatch.concat([lst, lst]).strings == STRS + STRS  # lists stay a list


def test_mapping_adds_to_a_pool_without_unpacking_it():
    class Maps:
        def categories(self):
            return {1: "Attempted Admin"}

        def messages(self, keys):
            return [f"sid {s}" for _, s in keys.tolist()]

    e = Enricher()
    e.set_maps(Maps())
    item = e.apply(_snort_batch(StringPool.from_strings(STRS)))
    assert isinstance(item.strings, StringPool) and item.extra_strings == ["Attempted Admin"]
    recs = to_records(item.batch, categories=item.categories, extra_strings=item.extra_strings)
    assert recs[3]["alert"]["signature"] == "sid 12" and recs[0]["alert"]["category"] == "Attempted Admin"


def test_sqlite_rows_and_store_from_a_pool(tmp_path):
    cls = {1: "Attempted Admin", 2: "Misc activity"}
    a = rows(Enricher(cls).apply(_snort_batch(list(STRS))))
    b = rows(Enricher(cls).apply(_snort_batch(StringPool.from_strings(STRS))))
    assert a == b
    db = str(tmp_path / "s.db")

    async def go():
        sink = SqliteSink(db)
        await sink.write(Enricher(cls).apply(_snort_batch(StringPool.from_strings(STRS))))
        await sink.aclose()

    asyncio.run(go())
    got = sqlite3.connect(db).execute("SELECT sid, signature, category, app_name FROM alerts_v ORDER BY id").fetchall()
    assert got == [(10, STRS[0], "Attempted Admin", None), (11, STRS[1], "Misc activity", "HTTP"),
                   (10, STRS[0], None, "HTTP"), (12, None, "Attempted Admin", None)]


def test_unified2_batch_is_a_pool_and_the_first_packet_is_not_repeated():
    buf = (W.event_v4(104, event_id=1, app_name=b"HTTP") + W.packet(event_id=1, data=b"first")
           + W.packet(event_id=1, data=b"second") + W.event_v4(7, event_id=2))
    res = U.decode(buf)
    b = res.batch
    assert isinstance(b.strings, StringPool) and b.strings[int(b.alerts["app_idx"][0])] == "HTTP"
    r0, r1 = to_records(b)
    import base64

    assert base64.b64decode(r0["packet"]) == b"first"
    pk = r0["unified2"]["packets"]
    assert "data" not in pk[0] and base64.b64decode(pk[1]["data"]) == b"second"
    assert "packet" not in r1 and b.strings[int(b.extra[1])].startswith('"unified2":')


def test_real_file_renders_the_same_through_a_list():
    res = U.read(str(shared_file("unified2/djcas9-unified2-current.log")))
    b = res.batch
    as_list = B.AlertBatch(b.alerts, b.strings.tolist(), b.origin, extra=b.extra)  # type: ignore[union-attr]
    assert render_json(as_list) == render_json(b)


def test_a_lone_surrogate_is_packed_as_replacement_character():
    from ingest.strings import Segment

    seg = Segment.from_strings(iter(["ok", "x\ud800y", ""]))
    assert [seg.get(k) for k in range(len(seg))] == ["ok", "x\ufffdy", ""]
    assert bytes(seg.data) == "okx\ufffdy".encode()
