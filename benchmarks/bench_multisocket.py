"""Snort 3 with one socket per packet thread: N Alertpkt sockets into one
``ingest listen`` against N bare C receivers (issue 10's multi-socket rows).

    python benchmarks/bench_multisocket.py [--sockets 1,2,4,8] [--count 20000] [--repeat 3]

Per round and per N, interleaved: N Snort-faithful senders (``ingest gen``'s
C loop, one 64 KiB buffer, blocking sendto, default SO_SNDBUF; one thread
each, as Snort 3's packet threads) send ``count`` alerts each into

* ``bare``: N ``recv_count`` processes (recvmmsg, count only; the limit),
* ``ingest``: one ``ingest listen --snort S1 ... --snort SN --sink null:``
  (its C reader thread per socket, the default),
* ``ingest-py``: the same with ``INGEST_NATIVE_READER=0`` (the previous
  reader: a Python thread per socket), before/after in the same run.

Rate = N x count / (first send -> the receiver had every alert: the bare
receivers' exit, ingest's stats line saying all were dispatched).  CPU per
alert is the receiver's (user + system).  Ratios are paired within a round
(ingest / bare of the same round), reported as the median and the range.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest import gen  # noqa: E402
from ingest.bench.common import (  # noqa: E402
    DEFAULT_PEERS,
    STATS_INTERVAL,
    LineClock,
    paired_range,
    proc_cpu,
    stop_process,
    wait4,
    wait_for_socket,
)

RECEIVERS = ("bare", "ingest", "ingest-py")


def _send_all(paths: list[str], templates, count: int, time_limit: float) -> list:
    """One sender thread per socket, all at once; their results."""
    box: list = [None] * len(paths)

    def work(i: int) -> None:
        box[i] = gen.sender_for("snort", paths[i], templates).run(count, time_limit=time_limit)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 30)
    return box


def measure(work: pathlib.Path, recv_count: pathlib.Path, receiver: str, n: int, count: int,
            templates, time_limit: float) -> dict:
    paths = [str(work / f"s{i}.sock") for i in range(n)]
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs: list[subprocess.Popen] = []
    try:
        if receiver == "bare":
            procs = [subprocess.Popen([str(recv_count), p, str(count)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=work) for p in paths]
            clock = None
        else:
            if receiver == "ingest-py":
                env["INGEST_NATIVE_READER"] = "0"
            args = [a for p in paths for a in ("--snort", p)]
            procs = [subprocess.Popen([sys.executable, "-m", "ingest", "listen", *args, "--sink", "null:",
                                       "--stats-interval", str(STATS_INTERVAL),
                                       "--dead-letter", str(work / "dl.bin")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work, env=env)]
            clock = LineClock(procs[0].stderr, n * count)
        for p in paths:
            wait_for_socket(p, procs[0] if receiver != "bare" else procs[paths.index(p)], 30.0)
        time.sleep(0.3)
        cpu0 = sum(proc_cpu(p.pid) for p in procs)
        t0 = time.monotonic()
        res = _send_all(paths, templates, count, time_limit)
        if any(r is None or r.sent != count for r in res):
            raise RuntimeError(f"{receiver} x{n}: a sender did not send everything: {res}")
        if clock is None:
            cpu = 0.0
            for p in procs:
                ru = wait4(p, time_limit)
                if ru is None:
                    raise RuntimeError("a bare receiver did not get every alert")
                cpu += ru.ru_utime + ru.ru_stime
            t_done = time.monotonic()
            cpu -= cpu0
        else:
            deadline = time.monotonic() + time_limit
            while clock.done_at is None and procs[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if clock.done_at is None:
                raise RuntimeError(f"{receiver} x{n}: not every alert dispatched: {clock.text()[-1000:]}")
            t_done = clock.done_at
            cpu = proc_cpu(procs[0].pid) - cpu0
        secs = t_done - t0
        return {"receiver": receiver, "sockets": n, "alerts": n * count,
                "alerts_per_s": n * count / secs if secs > 0 else 0.0,
                "cpu_us_per_alert": cpu / (n * count) * 1e6}
    finally:
        for p in procs:
            stop_process(p)
            if p.stderr is not None:
                p.stderr.close()
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", default="1,2,4,8")
    ap.add_argument("--count", type=int, default=20000, help="alerts per socket per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    socks = [int(x) for x in a.sockets.split(",")]
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if gcc is None:
        raise SystemExit("no C compiler for the recv_count peer")
    work = pathlib.Path(tempfile.mkdtemp(prefix="ingest-multisock-"))
    try:
        recv_count = work / "recv_count"
        subprocess.run([gcc, "-O2", "-o", str(recv_count), str(DEFAULT_PEERS / "recv_count.c")], check=True)
        templates, _ = gen.build_templates("snort", 256, 1)
        runs: dict[tuple[str, int], list[dict]] = {}
        load = [os.getloadavg()[0]]
        for rep in range(a.repeat):
            for n in socks:
                for r in RECEIVERS:
                    m = measure(work, recv_count, r, n, a.count, templates, a.time_limit)
                    runs.setdefault((r, n), []).append(m)
                    print(f"round {rep + 1} x{n} {r:10s} {m['alerts_per_s']:10,.0f} alerts/s "
                          f"{m['cpu_us_per_alert']:6.2f} CPU us/alert", file=sys.stderr)
            load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for n in socks:
        bare = runs[("bare", n)]
        for r in RECEIVERS:
            rs = runs[(r, n)]
            row = {"sockets": n, "receiver": r,
                   "alerts_per_s": statistics.median(x["alerts_per_s"] for x in rs),
                   "cpu_us_per_alert": statistics.median(x["cpu_us_per_alert"] for x in rs)}
            if r != "bare":
                row["rate_vs_bare"] = paired_range((x["alerts_per_s"], y["alerts_per_s"]) for x, y in zip(rs, bare, strict=True))
                row["cpu_vs_bare"] = paired_range((x["cpu_us_per_alert"], y["cpu_us_per_alert"])
                                                  for x, y in zip(rs, bare, strict=True))
            rows.append(row)
    rep = {"count_per_socket": a.count, "repeat": a.repeat, "loadavg_1min": load, "rows": rows}
    if a.json:
        print(json.dumps(rep, indent=1))
    else:
        print(f"load average (1 min) during the run: {min(load):.1f}-{max(load):.1f}")
        print(f"{'sockets':>7s} {'receiver':10s} {'alerts/s':>10s} {'CPU us/al':>9s} "
              f"{'rate/bare (range)':>20s} {'CPU/bare (range)':>20s}")
        for r in rows:
            def f(k: str, r: dict = r) -> str:
                if k not in r:
                    return f"{'-':>20s}"
                med, lo, hi = r[k]
                return f"{med:.2f} ({lo:.2f}-{hi:.2f})".rjust(20)
            print(f"{r['sockets']:7d} {r['receiver']:10s} {r['alerts_per_s']:10,.0f} "
                  f"{r['cpu_us_per_alert']:9.2f} {f('rate_vs_bare')} {f('cpu_vs_bare')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
