"""The runtime's hooks for a sink that spools (the NATS sink's outbox):
``hold_file_input`` holds file readers back (never socket readers, never
at shutdown), ``Dropped`` dead-letters and counts a batch by the sink's
reason, a sink's ``stats()`` joins the stats, its ``start()`` runs before
the sources start.  A real Pipeline, run on an event loop, with a real
dead-letter file; the sinks are small classes (the runtime is what is
tested)."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np

from ingest import batch as B
from ingest.deadletter import DeadLetter
from ingest.runtime import Pipeline
from ingest.sinks.errors import Dropped


def _batch(n: int, origin: str = "t") -> B.AlertBatch:
    a = B.empty(n)
    a["gid"], a["sid"], a["rev"], a["source"] = 1, np.arange(1, n + 1), 1, B.SRC_SNORT
    a["ts_us"] = 1_700_000_000_000_000 + np.arange(n)
    return B.AlertBatch(a, [], origin)


class SpoolingSink:
    def __init__(self, name: str = "spooling") -> None:
        self.name = name
        self.hold_file_input = True
        self.got: list[int] = []
        self.started = False
        self.drop = False

    async def start(self) -> None:
        self.started = True

    async def write(self, item) -> None:
        if self.drop:
            raise Dropped("spool_full", "spool is full")
        self.got.append(len(item.batch))

    def stats(self) -> dict[str, int]:
        return {"spool_bytes": 123, "spool_count": 4}

    async def aclose(self) -> None:
        pass


class FileSource:
    """A file reader: waits for room (``reserve(file=True)``), never drops;
    records whether the sinks were started before it."""

    origin = "file"

    def __init__(self, sink: SpoolingSink) -> None:
        self.sink = sink
        self.started_after_sink: bool | None = None
        self.refused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, submit, stats, deadletter) -> None:
        self.started_after_sink = self.sink.started

        def read() -> None:
            while not submit.reserve(3, timeout=0.01, file=True):
                self.refused.set()
            submit.submit(_batch(3, "file"))

        self._thread = threading.Thread(target=read)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def close(self) -> None:
        pass


def test_file_readers_are_held_back_while_a_sink_spools_socket_readers_are_not():
    sink = SpoolingSink()
    p = Pipeline([], [sink])
    assert not p.reserve(1, file=True) and not p.reserve(1, timeout=0.01, file=True)
    assert p.reserve(1), "a socket reader keeps draining"
    sink.hold_file_input = False
    assert p.reserve(1, file=True)


def test_a_held_file_reader_hands_its_batch_over_at_shutdown_and_start_runs_first(tmp_path):
    sink = SpoolingSink()
    src = FileSource(sink)
    p = Pipeline([src], [sink], stats_interval=3600)

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        while not src.refused.is_set():  # the reader is held back
            await asyncio.sleep(0.01)
        assert sink.got == []
        stop.set()
        return await task

    assert asyncio.run(go()) == 0
    assert src.started_after_sink is True
    assert sink.got == [3], "the reader's batch was handed over at shutdown, not lost"
    s = p.stats.snapshot()
    assert s["spool_bytes"] == 123 and s["spool_count"] == 4


def test_dropped_is_dead_lettered_counted_by_reason_and_the_other_sink_has_it(tmp_path):
    full, other = SpoolingSink("full"), SpoolingSink("other")
    full.drop = True
    full.hold_file_input = other.hold_file_input = False
    dl = DeadLetter(str(tmp_path / "dead.jsonl"))
    dl.open()
    p = Pipeline([], [full, other], deadletter=dl, stats_interval=3600)

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        p.submit(_batch(5, "snort"))
        while not other.got:
            await asyncio.sleep(0.01)
        stop.set()
        return await task

    assert asyncio.run(go()) == 0
    assert other.got == [5]
    s = p.stats.snapshot()
    assert s["dropped"] == {"spool_full": 5}
    assert s["dispatched"].get("full", 0) == 0 and s["dispatched"]["other"] == 5
    dl.close()
    head = json.loads((tmp_path / "dead.jsonl").read_text().splitlines()[0])
    assert head["reason"] == "spool_full" and head["origin"] == "snort"
