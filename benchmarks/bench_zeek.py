"""Zeek conn.log lines parsed into flow records (``--zeek-conn``), against
a plain-Python peer reading the same lines, measured in the same run.

    PYTHONPATH=. python benchmarks/bench_zeek.py [--lines 200000] [--rounds 5]

The lines are the real records of tests/data/zeek (PROVENANCE), repeated to
``--lines``: JSON from the zeek-docs*.json.log lines, TSV from zed-conn.log
and the zeek-*-conn.log btest baselines (under one ``#fields`` header: the
files' #fields are the same).  Each round, in
this order, in this process:

* peer: JSON ``json.loads`` of every line; TSV ``bytes.split(b"\\t")`` of
  every line zipped with the ``#fields`` names into a dict (what a script
  reading conn.log does first, before any mapping);
* ingest: ``split_lines`` + ``ZeekConnDecoder.decode`` (every field checked
  and mapped into the canonical flow record, FlowBatch: what the source hands
  on), and the same plus ``rows.flow_record_arrays`` (the ``flows`` columns
  the stores bind, built from the records).

Result: lines/s of each, and the median over the rounds of the within-round
ratio ingest / peer with its range (ingest.bench.common.paired_median; a
peer timed at 0 gives no ratio).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "zeek"


def corpus(kind: str, n: int) -> tuple[bytes, list[str]]:
    if kind == "json":
        recs = [ln for p in sorted(DATA.glob("zeek-docs*.json.log")) for ln in p.read_bytes().splitlines(keepends=True)]
        fields: list[str] = []
        head = b""
    else:
        zed = (DATA / "zed-conn.log").read_bytes().splitlines(keepends=True)
        more = [ln for p in sorted(DATA.glob("zeek-*-conn.log")) for ln in p.read_bytes().splitlines(keepends=True)]
        head = b"".join(zed[:8])
        fields = zed[6].rstrip(b"\n").decode().split("\t")[1:]
        assert all(ln == zed[6] for ln in more if ln.startswith(b"#fields"))
        recs = [ln for ln in zed + more if not ln.startswith(b"#")]
    body = (recs * (n // len(recs) + 1))[:n]
    return head + b"".join(body), fields


def peer(kind: str, data: bytes, fields: list[str]) -> float:
    t = time.perf_counter()
    if kind == "json":
        loads = json.loads
        for ln in data.splitlines():
            loads(ln)
    else:
        for ln in data.splitlines():
            if ln[:1] != b"#":
                dict(zip(fields, ln.split(b"\t"), strict=True))
    return time.perf_counter() - t


def ours(kind: str, data: bytes, rows: bool) -> tuple[float, int]:
    from ingest.eve import split_lines
    from ingest.flows.zeek import ZeekConnDecoder, detect
    from ingest.sinks.rows import flow_record_arrays

    t = time.perf_counter()
    dec = ZeekConnDecoder(detect(data[:128]))
    pos = 0
    n = 0
    view = memoryview(data)
    while pos < len(data):
        offs, lens, used = split_lines(view[pos:], cap=4096)
        res = dec.decode(view[pos:], offs, lens)
        if rows:
            res.batch.texts = res.texts
            flow_record_arrays(res.batch, "bench")
        n += len(res.batch)
        pos += used
    return time.perf_counter() - t, n


def main() -> int:
    from ingest.bench.common import paired_median, ratio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ns = ap.parse_args()
    print(f"python {sys.version.split()[0]}; {ns.lines} lines per format, {ns.rounds} rounds")
    for kind in ("json", "tsv"):
        data, fields = corpus(kind, ns.lines)
        pairs_dec, pairs_rows = [], []
        best = {"peer": float("inf"), "decode": float("inf"), "columns": float("inf")}
        for _ in range(ns.rounds):
            tp = peer(kind, data, fields)
            td, n = ours(kind, data, rows=False)
            tr, n2 = ours(kind, data, rows=True)
            if n != ns.lines or n2 != ns.lines:
                raise SystemExit(f"{kind}: decoded {n}/{n2} of {ns.lines} lines")
            pairs_dec.append((ratio(1, td), ratio(1, tp)))
            pairs_rows.append((ratio(1, tr), ratio(1, tp)))
            best = {"peer": min(best["peer"], tp), "decode": min(best["decode"], td),
                    "columns": min(best["columns"], tr)}
        for name, pairs in (("decode", pairs_dec), ("columns", pairs_rows)):
            rs = [x / y for x, y in pairs if y > 0]
            rng = f"{min(rs):.2f}-{max(rs):.2f}" if rs else "n/a"
            print(f"{kind:4} {name:7} ingest {ns.lines / best[name] / 1e3:8.1f} k lines/s (best); "
                  f"peer {ns.lines / best['peer'] / 1e3:8.1f} k lines/s; "
                  f"ingest/peer median {paired_median(pairs):.2f} (range {rng})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
