"""``ingest decode FILE...`` and ``ingest pcap FILE... -o OUT.pcap``: batch
mode over files (u2json / u2eve / u2boat parity).

``decode`` formats: ``unified2`` (streamed in chunks), ``alertpkt`` (a file
of back-to-back Alertpkt datagrams of one size, optionally gzipped) and
``eve`` (only when the EVE module is present; this build says so plainly
otherwise).  ``auto`` sniffs the first bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import sys
from collections.abc import Iterator

from .batch import AlertBatch


def add_parser(sub) -> None:
    d = sub.add_parser("decode", help="decode Unified2 / Alertpkt files to sinks (default jsonl:-)")
    d.add_argument("files", nargs="+", metavar="FILE")
    d.add_argument("--format", dest="input_format", default="auto",
                   choices=("auto", "unified2", "alertpkt", "eve"), help="input format (default auto)")
    d.add_argument("--sink", action="append", metavar="URL", help="jsonl:PATH, jsonl:-, sqlite:PATH, null:")
    d.add_argument("--profile", choices=("eve", "trisul"), default="eve", help="JSON output profile")
    d.add_argument("--maps", metavar="DIR")
    d.add_argument("--sid-msg", metavar="FILE")
    d.add_argument("--gen-msg", metavar="FILE")
    d.add_argument("--classification", metavar="FILE")
    d.add_argument("--reference", metavar="FILE")
    d.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    d.set_defaults(run=run_decode)
    p = sub.add_parser("pcap", help="write the packets of Unified2 files as one pcap (u2boat)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pcap")
    p.set_defaults(run=run_pcap)


def _open(path: str):
    f = open(path, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def sniff(path: str) -> str:
    from . import alertpkt, unified2

    with _open(path) as f:
        head = f.read(16)
    kind = unified2.sniff(head)
    if kind == "pcap":
        raise ValueError(f"{path}: this is a pcap file, not Unified2 (Snort's log_tcpdump output?)")
    if kind == "unified2":
        return "unified2"
    if head.lstrip()[:1] == b"{":
        return "eve"
    with _open(path) as f:
        size = len(f.read())
    for n in (alertpkt.SNORT_LEN, alertpkt.SNORT_APPID_LEN, alertpkt.BARNYARD2_LEN, alertpkt.BARNYARD2_32_LEN):
        if size and size % n == 0:
            return "alertpkt"
    raise ValueError(f"{path}: not recognised as Unified2, Alertpkt or EVE; give --format")


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.last = total, enabled and total > (8 << 20), -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = int(100 * done / max(self.total, 1))
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            print(f"\r[{bar:<25}] {pct:3d}%", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            print(file=sys.stderr)


def _unified2_batches(path: str, progress: _Progress) -> Iterator[AlertBatch]:
    from . import unified2

    size = os.stat(path).st_size
    for res in unified2.iter_read(path):
        for _off, msg in res.errors:
            print(f"ingest: {path}: {msg}", file=sys.stderr)
        if res.orphan_packets or res.orphan_extra or res.unknown:
            print(f"ingest: {path}: {res.orphan_packets} orphan packets, {res.orphan_extra} orphan "
                  f"extra-data, {res.unknown} records of unknown type skipped", file=sys.stderr)
        progress.update(min(res.resume_offset, size))
        if len(res.alerts):
            yield res.batch


def _alertpkt_batches(path: str) -> Iterator[AlertBatch]:
    from . import alertpkt

    with _open(path) as f:
        data = f.read()
    for n in (alertpkt.SNORT_LEN, alertpkt.SNORT_APPID_LEN, alertpkt.BARNYARD2_LEN, alertpkt.BARNYARD2_32_LEN):
        if data and len(data) % n == 0:
            grams = alertpkt.split_datagrams(data, n)
            for i in range(0, len(grams), 256):
                res = alertpkt.decode_datagrams(grams[i: i + 256], f"alertpkt:{path}")
                for slot, reason in res.rejected:
                    print(f"ingest: {path}: datagram {i + slot}: {reason}", file=sys.stderr)
                yield res.batch
            return
    raise ValueError(f"{path}: size {len(data)} is not a whole number of Alertpkt datagrams")


def run_decode(ns: argparse.Namespace) -> int:
    from .config import Config
    from .mapping import Enricher
    from .sinks.base import open_sink

    try:
        cfg = Config(maps=ns.maps, sid_msg=ns.sid_msg, gen_msg=ns.gen_msg,
                     classification=ns.classification, reference=ns.reference)
        enricher = Enricher()
        maps = cfg.load_maps()
        if maps is not None:
            enricher.set_maps(maps)
        kinds = [ns.input_format if ns.input_format != "auto" else sniff(p) for p in ns.files]
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    if "eve" in kinds:
        print("ingest: error: EVE input is not supported by 'ingest decode' in this build "
              "(it comes with the EVE module); use Unified2 or Alertpkt files", file=sys.stderr)
        return 2

    async def go() -> int:
        sinks = [open_sink(u, profile=ns.profile) for u in (ns.sink or ["jsonl:-"])]
        try:
            for path, kind in zip(ns.files, kinds, strict=True):
                progress = _Progress(os.stat(path).st_size, sys.stderr.isatty() and not ns.no_progress)
                batches = _unified2_batches(path, progress) if kind == "unified2" else _alertpkt_batches(path)
                for batch in batches:
                    item = enricher.apply(batch)
                    await asyncio.gather(*(s.write(item) for s in sinks))
                progress.close()
        finally:
            for s in sinks:
                await s.aclose()
        return 0

    try:
        return asyncio.run(go())
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 1


def run_pcap(ns: argparse.Namespace) -> int:
    from . import unified2

    try:
        with open(ns.output, "wb") as out:
            writer = unified2.PcapWriter(out)
            for path in ns.files:
                for res in unified2.iter_read(path):
                    for _off, msg in res.errors:
                        print(f"ingest: {path}: {msg}", file=sys.stderr)
                    writer.write(res)
            writer.close()
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 1
    extra = f" ({writer.skipped} of another link type skipped)" if writer.skipped else ""
    print(f"ingest: wrote {writer.written} packets to {ns.output}{extra}", file=sys.stderr)
    return 0
