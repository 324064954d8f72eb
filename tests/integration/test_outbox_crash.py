"""The outbox under kill -9: real writer processes (tests/integration/
_outbox_writer.py) killed at random moments, the outbox then opened by
this test.  Every append that returned is replayed exactly once, in order,
until it is acknowledged; a torn tail is cut; the bound holds on disk."""

from __future__ import annotations

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time

from ingest.sinks.outbox import Outbox

from ..conftest import ROOT

WRITER = pathlib.Path(__file__).with_name("_outbox_writer.py")
MAX_BYTES = 6 << 20
CYCLES = 24


def _disk_bytes(d: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.name.startswith("seg-"))


def test_kill_9_at_random_moments_loses_and_repeats_nothing(tmp_path, rand):
    d = tmp_path / "ob"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    model: dict[int, str] = {}  # returned appends not yet acknowledged: seq -> sha256 of the body
    acked = 0  # acknowledged for certain (a K line, or by this test)
    appends = fulls = cuts = in_flight = 0
    for cycle in range(CYCLES):
        log = tmp_path / f"writer-{cycle}.log"
        fsync = rand.choice(["segment", "segment", "always", "never"])
        p = subprocess.Popen([sys.executable, str(WRITER), str(d), str(MAX_BYTES), fsync,
                              str(rand.randrange(1 << 30)), str(log)], env=env)
        try:
            if cycle % 5 != 4:  # most cycles: let it open first; every 5th may die while opening
                deadline = time.monotonic() + 30
                while not (log.exists() and log.read_bytes()):
                    assert p.poll() is None, f"writer exited {p.returncode}"
                    assert time.monotonic() < deadline, "the writer never opened the outbox"
                    time.sleep(0.01)
            time.sleep(rand.uniform(0.0, 0.3))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        maybe = acked
        for line in (log.read_text().splitlines() if log.exists() else []):
            word, *rest = line.split()
            if word == "A":
                model[int(rest[0])] = rest[1]
                appends += 1
            elif word == "k":
                maybe = max(maybe, int(rest[0]))
            elif word == "K":
                acked = max(acked, int(rest[0]))
            elif word == "F":
                fulls += 1
        assert _disk_bytes(d) <= MAX_BYTES, "the bound was passed on disk"
        with Outbox(str(d), MAX_BYTES) as box:
            cuts += box.cut_tails
            # an acknowledgement is atomic: the one that was in flight happened or not
            assert acked <= box.acked <= max(maybe, acked), (acked, maybe, box.acked)
            got = list(box.pending())
            seqs = [s for s, _, _ in got]
            assert seqs == sorted(set(seqs)), "out of order or repeated"
            want = [s for s in sorted(model) if s > box.acked]
            assert [s for s in seqs if s in model] == want, "a returned append was lost or repeated"
            extra = [s for s in seqs if s not in model]
            # at most the append the kill interrupted after it returned, before it was reported
            assert len(extra) <= 1 and all(s > max(model, default=0) for s in extra), extra
            for seq, meta, payload in got:
                body = payload[32:]
                assert hashlib.sha256(body).digest() == payload[:32], f"record {seq} damaged"
                assert meta == {"size": len(body)}
                if seq in model:
                    assert payload[:32].hex() == model[seq]
                else:
                    model[seq] = payload[:32].hex()
                    in_flight += 1
            # a consumer: acknowledge a random prefix of what is pending
            if got:
                upto = seqs[rand.randrange(len(seqs))]
                box.ack(upto)
            acked = box.acked
            for s in [s for s in model if s <= acked]:
                del model[s]
    with Outbox(str(d), MAX_BYTES) as box:  # the last drain: everything left, once
        seqs = [s for s, _, _ in box.pending()]
        assert seqs == sorted(model)
        box.ack(seqs[-1] if seqs else 0)
        assert box.count == 0 and _disk_bytes(d) == 0
    assert appends > CYCLES, "the writers did almost nothing"
    print(f"appends={appends} full={fulls} torn tails cut={cuts} in flight={in_flight}")
