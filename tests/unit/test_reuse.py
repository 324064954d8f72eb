"""Output buffers reused across calls (ingest/scratch.py): what a call
returned is never overwritten while it is held, and memory is reused once
it is dropped (unified2 rows and rendered members, the JSON renderer)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest import unified2 as U
from ingest.render import render_buffer
from ingest.scratch import Scratch

from ..conftest import SHARED


def _addr(a) -> int:
    return np.asarray(a).__array_interface__["data"][0]


@pytest.fixture(scope="module")
def spool(tmp_path_factory):
    """The real djcas9 file four times: four 2 MiB windows at chunk_size=1."""
    src = SHARED / "unified2" / "djcas9-unified2-current.log"
    if not src.exists():
        pytest.skip("shared data set absent")
    path = tmp_path_factory.mktemp("u2") / "x4.u2"
    path.write_bytes(src.read_bytes() * 4)
    return path


def _snapshot(r: U.Unified2Result) -> tuple:
    return (r.alerts.tobytes(), r.events.tobytes(), r.packets.tobytes(), r.packet_event.tobytes(),
            r.extra.tobytes(), bytes(render_buffer(r.batch)))


def test_held_results_are_never_overwritten(spool):
    U.release_buffers()
    ref = [_snapshot(r) for r in U.iter_read(spool, chunk_size=1)]  # copies, results dropped
    assert len(ref) >= 4
    held = list(U.iter_read(spool, chunk_size=1))
    members = [r.batch for r in held]  # rendered members: views of the member buffers
    lines = [render_buffer(b) for b in members]  # views of the renderer's buffers
    fields = [r.alerts["sid"] for r in held]  # a derived view holds the rows too
    # churn: everything decoded and rendered again, dropping as it goes
    for _ in range(2):
        for r in U.iter_read(spool, chunk_size=1):
            render_buffer(r.batch)
        del r
        U.read(spool)
    for want, r, js, sid in zip(ref, held, lines, fields, strict=True):
        assert _snapshot(r)[:5] == want[:5]
        assert bytes(js) == want[5]
        assert sid.tobytes() == np.frombuffer(want[0], dtype=r.alerts.dtype)["sid"].tobytes()
    # after the holders are gone, only a derived view still pins its rows
    sid0 = fields[0].copy()
    first = fields[0]
    del held, members, lines, fields
    for _r in U.iter_read(spool, chunk_size=1):
        pass
    assert first.tobytes() == sid0.tobytes()


def test_dropped_results_let_later_windows_reuse_memory(spool):
    U.release_buffers()
    rows, rendered, n = set(), set(), 0
    for _ in range(2):
        for r in U.iter_read(spool, chunk_size=1):
            rows.add(_addr(r.alerts))
            rendered.add(_addr(np.frombuffer(render_buffer(r.batch), np.uint8)))
            n += 1
    # the loop variable holds the previous result while the next window is
    # decoded: two sets of rows take turns
    assert n >= 8 and len(rows) <= 2 and len(rendered) <= 2


def test_scratch_reuses_only_unheld_buffers():
    s = Scratch(slots=2, keep_bytes=1 << 20)
    a = s.take(100)
    view = a[:10]
    del a
    b = s.take(100)  # the first is held through its view
    assert _addr(b) != _addr(view)
    del b
    c = s.take(50)  # the second is free: reused
    assert len(c) >= 100 and s.allocations == 2
    del c
    d = s.take(1000)  # free but small: grows (geometrically, at least the need)
    assert len(d) >= 1000
    del view
    big = s.take(2 << 20)  # larger than keep_bytes: handed out, not kept
    assert len(big) >= 2 << 20 and all(len(x) <= 1 << 20 for x in s._bufs())
