"""The runtime's pipelined writes (sinks with ``concurrent_writes`` > 1, the
PostgreSQL sink's connections): up to that many batches are written at
once, yet every batch's acks run only after its own write finished *and*
after every batch taken before it was finished;
a batch keeps its bytes of the queue budget until then; shutdown waits
for every write in flight.  A real Pipeline on an event loop with a real
dead-letter file; the sink is a small class whose writes finish when the
test says (the runtime is what is tested)."""

from __future__ import annotations

import asyncio

import numpy as np

from ingest import batch as B
from ingest.deadletter import DeadLetter
from ingest.runtime import Pipeline
from ingest.sinks.errors import Dropped


def _batch(first: int, n: int, log: list[str], name: str) -> B.AlertBatch:
    a = B.empty(n)
    a["gid"], a["sid"], a["rev"], a["source"] = 1, np.arange(first, first + n), 1, B.SRC_SNORT
    a["ts_us"] = 1_700_000_000_000_000 + np.arange(n)
    b = B.AlertBatch(a, [], name)
    b.acks.append(lambda: log.append(f"ack {name}"))
    return b


class GatedSink:
    """Each write waits until the test opens its gate (by the batch's origin)."""

    name = "gated"

    def __init__(self, width: int, log: list[str]) -> None:
        self.concurrent_writes = width
        self.log = log
        self.gates: dict[str, asyncio.Event] = {}
        self.drop: set[str] = set()
        self.writing: set[str] = set()
        self.most = 0  # most writes in progress at once

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def write(self, item) -> None:
        name = item.batch.origin
        self.writing.add(name)
        self.most = max(self.most, len(self.writing))
        self.log.append(f"start {name}")
        try:
            await self.gate(name).wait()
        finally:
            self.writing.discard(name)
        if name in self.drop:
            self.log.append(f"dropped {name}")
            raise Dropped("spool_full", "test")
        self.log.append(f"stored {name}")

    async def aclose(self) -> None:
        pass


async def _until(cond, what: str) -> None:
    for _ in range(2000):  # polls, up to about 20 s: a condition, not a speed
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_batches_are_written_together_and_acknowledged_in_their_order(tmp_path):
    log: list[str] = []
    sink = GatedSink(2, log)
    dl = DeadLetter(str(tmp_path / "dl.bin"))
    dl.open()
    p = Pipeline([], [sink], deadletter=dl, linger=0.0, batch_max=3, stats_interval=3600)  # one batch per write
    assert p.write_width() == 2

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        for i, name in enumerate("ABCD"):
            # (each reserved as a source does: the depth is released once the batch is finished)
            assert p.reserve(3)
            p.submit(_batch(10 * i, 3, log, name))
        await _until(lambda: {"start A", "start B"} <= set(log), "A and B written at once")
        await asyncio.sleep(0.05)
        assert "start C" not in log, "no more than concurrent_writes writes at once"
        sink.gate("B").set()  # B is stored first ...
        await _until(lambda: "start C" in log, "C starts when B's write is done")
        assert "ack B" not in log, "... but not acknowledged while A, taken before it, is not finished"
        assert p.stats.queue_bytes > 0  # B's bytes are held until it is finished
        sink.drop.add("A")
        sink.gate("A").set()  # A cannot be kept: dead-lettered (and acknowledged: Dropped's contract)
        await _until(lambda: "ack B" in log, "B acknowledged once A is finished")
        sink.gate("D").set()
        sink.gate("C").set()
        await _until(lambda: "ack D" in log, "D acknowledged")
        stop.set()
        return await task

    assert asyncio.run(go()) == 0
    dl.close()
    acks = [e for e in log if e.startswith("ack")]
    assert acks == ["ack A", "ack B", "ack C", "ack D"]
    for name in "BCD":  # an ack never comes before its own write finished
        assert log.index(f"stored {name}") < log.index(f"ack {name}")
    assert log.index("stored B") < log.index("dropped A") < log.index("ack A") < log.index("ack B")
    assert sink.most == 2
    s = p.stats.snapshot()
    assert s["dropped"] == {"spool_full": 3}
    assert s["dispatched"]["gated"] == 9
    assert p.stats.queue_bytes == 0 and p.stats.queue_depth == 0


def test_shutdown_waits_for_every_write_in_flight(tmp_path):
    log: list[str] = []
    sink = GatedSink(3, log)
    p = Pipeline([], [sink], linger=0.0, batch_max=2, stats_interval=3600, drain_timeout=30)

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        for i, name in enumerate("XYZ"):
            assert p.reserve(2)
            p.submit(_batch(10 * i, 2, log, name))
        await _until(lambda: len([e for e in log if e.startswith("start")]) == 3, "three writes at once")
        stop.set()
        await asyncio.sleep(0.05)
        assert not task.done(), "shutdown waits for the writes in flight"
        for name in "ZYX":
            sink.gate(name).set()
        return await task

    assert asyncio.run(go()) == 0
    assert [e for e in log if e.startswith("ack")] == ["ack X", "ack Y", "ack Z"]
    assert p.stats.snapshot()["dispatched"]["gated"] == 6


def test_one_sink_without_concurrent_writes_keeps_one_write_at_a_time():
    log: list[str] = []
    wide, narrow = GatedSink(4, log), GatedSink(1, log)
    narrow.name = "narrow"
    del narrow.concurrent_writes  # a sink that does not say takes one write at a time
    assert Pipeline([], [wide, narrow]).write_width() == 1
    assert Pipeline([], [wide]).write_width() == 4
