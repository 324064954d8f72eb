"""``null:``: counts and discards (for benchmarks)."""

from __future__ import annotations

from ..mapping import Enriched


class NullSink:
    name = "null"

    def __init__(self) -> None:
        self.count = 0

    async def write(self, item: Enriched) -> None:
        self.count += len(item.batch)

    async def aclose(self) -> None:
        pass
