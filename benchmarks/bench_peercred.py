"""What peer credentials cost on the datagram paths: ``ingest listen
--snort`` (Alertpkt) and ``--eve-dgram`` into ``null:``, each without
credentials and with ``--allow-uid <our uid>`` (SO_PASSCRED on the socket,
every datagram's SCM_CREDENTIALS read and checked in the C batch receive,
``senders`` counted; every datagram allowed, so both move the same alerts).

Paired rounds in one run: each round measures both variants back to back,
the order alternating round by round (ABBA), so a busy machine moves both
alike; the result is the median of the within-round ratios (with/without),
with their range.

    PYTHONPATH=. python -m benchmarks.bench_peercred            # 5 rounds, 200,000 per run
    PYTHONPATH=. python -m benchmarks.bench_peercred --rounds 2 --count 20000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from ingest import gen
from ingest.bench import eve as bench_eve
from ingest.bench import harness
from ingest.bench.common import PACKAGE_ROOT, BenchError, Setup

WITH = ("--allow-uid", str(os.getuid()))


def _summary(without: list[float], with_: list[float], bigger_is_better: bool) -> dict[str, Any]:
    ratios = [w / o for w, o in zip(with_, without, strict=True) if o > 0]
    return {"without": without, "with": with_, "ratios": ratios,
            "median_ratio": statistics.median(ratios) if ratios else float("nan"),
            "range": [min(ratios), max(ratios)] if ratios else None,
            "higher_is_better": bigger_is_better}


def run(rounds: int, count: int, time_limit: float, progress=None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-peercred-"))
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        templates, _ = gen.build_templates("snort", 256, 1)
        s = Setup(workdir, None, None, env, "snort", count, None, time_limit, templates)
        records, source = gen.load_eve_records(None, 256, 1)
        res: dict[str, dict[str, list[float]]] = {
            k: {"rate_without": [], "rate_with": [], "cpu_without": [], "cpu_with": []}
            for k in ("alertpkt", "eve_dgram")}
        for rnd in range(rounds):
            order = [(), WITH] if rnd % 2 == 0 else [WITH, ()]
            for extra in order:
                tag = "with" if extra else "without"
                r = harness.measure(s, "ingest-null", extra_args=extra)
                if extra and sum(r.detail.get("senders", {}).values()) != count:
                    raise BenchError(f"credentials were not taken: {r.detail.get('senders')}")
                res["alertpkt"][f"rate_{tag}"].append(r.rate)
                res["alertpkt"][f"cpu_{tag}"].append(r.cpu_per_million)
                e = bench_eve._measure(workdir, env, "ingest-eve-dgram", records, count, time_limit,
                                       extra_args=extra)
                res["eve_dgram"][f"rate_{tag}"].append(e["records_per_s"])
                res["eve_dgram"][f"cpu_{tag}"].append(e["cpu_s_per_million"])
                if progress:
                    progress(f"round {rnd + 1}/{rounds} {tag:8s} alertpkt {r.rate:10,.0f}/s "
                             f"{r.cpu_per_million:6.2f} CPU s/M   eve-dgram {e['records_per_s']:10,.0f}/s "
                             f"{e['cpu_s_per_million']:6.2f} CPU s/M")
        out: dict[str, Any] = {"count": count, "rounds": rounds, "eve_records": source,
                               "load_average": os.getloadavg()}
        for k, v in res.items():
            out[k] = {"rate": _summary(v["rate_without"], v["rate_with"], True),
                      "cpu_per_million": _summary(v["cpu_without"], v["cpu_with"], False)}
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def micro(rounds: int, count: int, size: int = 1024) -> dict[str, Any]:
    """The receive alone, in this process: a sender thread pushes count
    datagrams of size bytes through a socketpair, the receiver takes them
    with ingest_recv_batch (64 slots) or with ingest_recv_batch_creds plus
    the per-batch screen (allow-list: our uid); the receiver thread's CPU
    time per datagram, the two alternating round by round."""
    import socket
    import threading
    import time

    from ingest.alertpkt import SlotDecoder
    from ingest.ops.peercred import RefusalLog, screen
    from ingest.stats import Stats

    def one(creds: bool) -> float:
        rx, tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if creds:
                rx.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            dec = SlotDecoder(64, 2048)
            if creds:
                import numpy as np
                dec.with_credentials(np.array([os.getuid()], np.uint32), None)
            stats, log = Stats(), RefusalLog("bench")
            data = b"x" * size

            def send() -> None:
                for _ in range(count):
                    tx.send(data)

            t = threading.Thread(target=send)
            t.start()
            got = 0
            c0 = time.thread_time()
            while got < count:
                n = dec.recv(rx.fileno())
                if creds:
                    screen(dec, n, "bench", stats, log, None)
                got += n
            c1 = time.thread_time()
            t.join()
            return (c1 - c0) / count * 1e9
        finally:
            rx.close()
            tx.close()

    without: list[float] = []
    with_: list[float] = []
    for rnd in range(rounds):
        for creds in ((False, True) if rnd % 2 == 0 else (True, False)):
            (with_ if creds else without).append(one(creds))
    return {"count": count, "size": size, "rounds": rounds, "ns_per_datagram_without": without,
            "ns_per_datagram_with": with_,
            "cpu": _summary(without, with_, False)}


def format_report(rep: dict[str, Any]) -> str:
    lines = [f"peer credentials ({rep['count']:,} per run, {rep['rounds']} paired rounds, "
             f"load average {rep['load_average'][0]:.1f}): with --allow-uid vs without"]
    lines.append(f"{'path':10s} {'rate without':>14s} {'rate with':>12s} {'rate ratio':>22s} "
                 f"{'CPU/M ratio':>22s}")
    for k, label in (("alertpkt", "Alertpkt"), ("eve_dgram", "EVE dgram")):
        r, c = rep[k]["rate"], rep[k]["cpu_per_million"]
        lines.append(f"{label:10s} {statistics.median(r['without']):14,.0f} {statistics.median(r['with']):12,.0f} "
                     f"{r['median_ratio']:8.3f} ({r['range'][0]:.3f}-{r['range'][1]:.3f}) "
                     f"{c['median_ratio']:8.3f} ({c['range'][0]:.3f}-{c['range'][1]:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_peercred")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--count", type=int, default=200_000)
    p.add_argument("--time-limit", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--micro", action="store_true",
                   help="the receive call alone, in process (receiver CPU ns per datagram)")
    a = p.parse_args(argv)
    if a.micro:
        m = micro(a.rounds, a.count)
        if a.json:
            print(json.dumps(m, indent=1))
        else:
            w, o = m["ns_per_datagram_with"], m["ns_per_datagram_without"]
            c = m["cpu"]
            print(f"receive alone ({m['count']:,} datagrams of {m['size']} B per run, {m['rounds']} paired "
                  f"rounds, load average {os.getloadavg()[0]:.1f}): receiver CPU per datagram "
                  f"without {statistics.median(o):.0f} ns, with credentials {statistics.median(w):.0f} ns, "
                  f"paired ratio {c['median_ratio']:.3f} ({c['range'][0]:.3f}-{c['range'][1]:.3f})")
        return 0
    rep = run(a.rounds, a.count, a.time_limit, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(rep, indent=1) if a.json else format_report(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
