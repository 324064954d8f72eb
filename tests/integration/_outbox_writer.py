"""A writer process for tests/integration/test_outbox_crash.py: appends
random payloads to an outbox and acknowledges some, reporting each step to
a log file *after* the call returned (``A seq digest``, ``K seq``), and
``k seq`` before an acknowledgement starts, until it is killed."""

from __future__ import annotations

import hashlib
import os
import random
import sys

from ingest.sinks.outbox import Outbox, OutboxFull


def main() -> None:
    directory, max_bytes, fsync, seed, log = sys.argv[1:6]
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def say(line: str) -> None:  # one write: whole once it returned, even if we die next
        os.write(out, line.encode() + b"\n")

    rng = random.Random(int(seed))
    box = Outbox(directory, int(max_bytes), fsync=fsync)
    say(f"open {box.acked} {box.cut_tails}")
    last = box.acked
    while True:
        if rng.random() < 0.08 and last > box.acked:
            seq = rng.randrange(box.acked + 1, last + 1)
            say(f"k {seq}")
            box.ack(seq)
            say(f"K {seq}")
            continue
        # large records make a kill in the middle of a write (a torn tail) likely
        size = rng.randrange(1, 4096) if rng.random() < 0.5 else rng.randrange(4096, 1 << 20)
        body = os.urandom(size)
        digest = hashlib.sha256(body).digest()
        try:
            seq = box.append(digest + body, {"size": size})
        except OutboxFull:
            say("F")
            if last > box.acked:  # a consumer catches up: room again
                seq = rng.randrange(box.acked + 1, last + 1)
                say(f"k {seq}")
                box.ack(seq)
                say(f"K {seq}")
            continue
        last = seq
        say(f"A {seq} {digest.hex()}")


if __name__ == "__main__":
    main()
