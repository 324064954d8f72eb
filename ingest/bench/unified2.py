"""The Unified2 row of ``ingest bench``: ``ingest.unified2.iter_read`` against
py-idstools' ``FileRecordReader`` on the same spool file, in the same run.

The file is written here from the ``ingest gen`` alert mix (seeded): one
event record (104 for IPv4, 105 for IPv6, as Snort 2.9 writes them) followed
by its packet record (type 2) per alert, and the packetless events alone.
Each reader runs in its own child process (so its CPU time and peak RSS are
its own) and reads the whole file once per round; rounds interleave the two.

    python -m ingest.bench.unified2 worker {ingest|idstools} FILE   # one read
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import resource
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from .. import gen
from .common import BenchError, paired_range, pinned_exec, placement_cpus

#: the Unified2 goal (BENCHMARKS.md: 40x, 5 M/s), shown in the goals block: iter_read against py-idstools, paired
GOAL_VS_IDSTOOLS = 40.0

U2_READERS = ("idstools", "ingest")
U2_LABELS = {
    "idstools": "(b) py-idstools FileRecordReader",
    "ingest": "(c) ingest unified2.iter_read",
}


def _rec(rtype: int, body: bytes) -> bytes:
    return struct.pack(">II", rtype, len(body)) + body


def write_spool(path: Path, alerts: int, seed: int = 1) -> int:
    """Write a Unified2 file of `alerts` events (with their packets) built
    from 512 seeded gen alerts, repeated with fresh event ids.  Returns bytes."""
    specs = gen.alert_specs(512, seed, base_time=1_795_000_000)
    size = 0
    with open(path, "wb") as f:
        for i in range(alerts):
            s = specs[i % len(specs)]
            eid = i + 1
            head = struct.pack(">9I", 0, eid, s.ts_sec, s.ts_usec, s.sid, s.gid, s.rev,
                               s.class_id, s.priority)
            tail = struct.pack(">HHBBBBIHH", s.sport, s.dport, s.proto, 0, 0, 0, 0,
                               s.vlan or 0, 0)
            if s.ip_ver == 6:
                assert s.src and s.dst
                rec = _rec(105, head + ipaddress.IPv6Address(s.src).packed
                           + ipaddress.IPv6Address(s.dst).packed + tail)
            else:
                src = ipaddress.IPv4Address(s.src or "0.0.0.0").packed
                dst = ipaddress.IPv4Address(s.dst or "0.0.0.0").packed
                rec = _rec(104, head + src + dst + tail)
            if s.packet is not None:
                rec += _rec(2, struct.pack(">7I", 0, eid, s.ts_sec, s.ts_sec, s.ts_usec, 1,
                                           len(s.packet)) + s.packet)
            f.write(rec)
            size += len(rec)
    return size


def _hwm_kb() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(reader: str, path: str) -> dict:
    """Read the whole file once with reader; count the events."""
    if reader == "ingest":
        from .. import unified2

        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for res in unified2.iter_read(path):
            n += len(res.alerts)
    elif reader == "idstools":
        from idstools import unified2 as iu2  # type: ignore[import-not-found]

        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for rec in iu2.FileRecordReader(path):
            if isinstance(rec, iu2.Event):
                n += 1
    else:
        raise ValueError(reader)
    return {"reader": reader, "events": n, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "maxrss_kb": _hwm_kb()}


def idstools_version() -> str | None:
    try:
        import idstools  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(getattr(idstools, "version", "?"))


def run_unified2(workdir: Path, env: dict[str, str], *, alerts: int, repeat: int,
                 time_limit: float, seed: int = 1, progress=None, placement: str = "unpinned") -> dict:
    """Both readers over one generated spool file, interleaved; medians and
    paired ratios (each reader child pinned as the placement's receiver)."""
    _, cpus = placement_cpus(placement)
    path = workdir / "unified2.log"
    size = write_spool(path, alerts, seed)
    readers = [r for r in U2_READERS if r != "idstools" or idstools_version() is not None]
    runs: dict[str, list[dict]] = {r: [] for r in readers}
    try:
        for rep in range(repeat):
            for r in readers:
                out = subprocess.run([sys.executable, "-m", "ingest.bench.unified2", "worker",
                                      r, str(path)], capture_output=True, text=True, env=env,
                                     cwd=workdir, timeout=time_limit, start_new_session=True,
                                     preexec_fn=pinned_exec(cpus))
                if out.returncode != 0:
                    raise BenchError(f"unified2 {r} exited {out.returncode}: {out.stderr[-2000:]}")
                run = json.loads(out.stdout)
                runs[r].append(run)
                if progress:
                    progress(f"round {rep + 1}/{repeat} unified2 {r:9s} "
                             f"{run['events'] / run['wall_s']:12,.0f} events/s")
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    rows = []
    for r, rs in runs.items():
        rows.append({"reader": r, "label": U2_LABELS[r], "events": rs[0]["events"],
                     "events_per_s": statistics.median(x["events"] / x["wall_s"] for x in rs),
                     "cpu_s_per_million": statistics.median(x["cpu_s"] / x["events"] * 1e6 for x in rs),
                     "peak_rss_mib": max(x["maxrss_kb"] for x in rs) / 1024, "runs": rs})
    if "idstools" in runs:
        for row in rows:
            mine, theirs = runs[row["reader"]], runs["idstools"]
            med, lo, hi = paired_range(
                (x["events"] / x["wall_s"], y["events"] / y["wall_s"])
                for x, y in zip(mine, theirs, strict=True))
            row["paired_rate_vs_b"], row["paired_rate_vs_b_range"] = med, [lo, hi]
            med, lo, hi = paired_range(
                (x["cpu_s"] / x["events"], y["cpu_s"] / y["events"])
                for x, y in zip(mine, theirs, strict=True))
            row["paired_cpu_vs_b"], row["paired_cpu_vs_b_range"] = med, [lo, hi]
    return {"alerts": alerts, "file_bytes": size, "repeat": repeat,
            "idstools": idstools_version() or "not installed", "rows": rows,
            "placement": "unpinned" if cpus is None else f"each reader pinned to cpu {min(cpus)}"}


def goals(u2: dict) -> list[tuple[str, bool, str]]:
    """The Unified2 goal for the rows measured: iter_read against py-idstools."""
    for r in u2.get("rows", []):
        v = r.get("paired_rate_vs_b")
        if r["reader"] == "ingest" and v is not None and v == v:
            lo, hi = r["paired_rate_vs_b_range"]
            return [(f"Unified2 iter_read >= {GOAL_VS_IDSTOOLS:.0f}x py-idstools", v >= GOAL_VS_IDSTOOLS,
                     f"{v:.1f}x paired ({lo:.1f}-{hi:.1f})")]
    return []


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "worker":
        print("usage: python -m ingest.bench.unified2 worker {ingest|idstools} FILE",
              file=sys.stderr)
        return 2
    print(json.dumps(worker(argv[2], argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
