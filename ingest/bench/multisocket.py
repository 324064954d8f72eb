"""``ingest bench`` multi-socket rows: Snort 3 with one Alertpkt socket per
packet thread, into one ``ingest listen`` against as many bare C receivers.

Per round and per socket count N (1, 2, 4, 8 by default), interleaved: N
Snort-faithful senders (``ingest gen``'s C loop: one hot buffer, blocking
``sendto``, default SO_SNDBUF; one thread each, as Snort 3's packet threads)
send ``count`` alerts each, all at once, into

* ``bare``: N ``recv_count`` processes (recvmmsg, count only: the limit);
* ``ingest-c``: one ``ingest listen --snort S1 ... --snort SN --sink null:``
  with a C reader thread per socket (``INGEST_NATIVE_READER=1``, issue 10
  item 1's readers that never wait for the GIL);
* ``ingest-py``: the same with the Python reader (``INGEST_NATIVE_READER=0``,
  the default since 73c871f).

Rate = N x count / (first send -> the receiver had every alert: the last bare
receiver's exit on its count; ingest's periodic stats line saying all were
dispatched, its SIGTERM -> exit reported apart as ``shutdown_s``).  CPU per
alert is the receiver's (all N processes for ``bare``), up to that moment.
Ratios are paired within a round (ingest / bare of the same round and N),
reported as the median and the range; issue 10's goals: 4 sockets >= 0.85,
8 sockets >= 0.80 of the bare receivers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import gen
from .common import (
    FINAL_STATS,
    STATS_INTERVAL,
    BenchError,
    LineClock,
    paired_range,
    pinned_exec,
    placement_cpus,
    placement_label,
    proc_cpu,
    proc_hwm_kb,
    ratio,
    stop_process,
    wait4,
    wait_for_socket,
)

MS_RECEIVERS = ("bare", "ingest-c", "ingest-py")
MS_LABELS = {
    "bare": "N x bare C recvmmsg",
    "ingest-c": "ingest null:, C readers",
    "ingest-py": "ingest null:, Python readers",
}
MS_ENV = {"ingest-c": {"INGEST_NATIVE_READER": "1"}, "ingest-py": {"INGEST_NATIVE_READER": "0"}}
#: issue 10 item 1: N sockets into one ingest against N bare receivers, paired
MS_GOALS = {4: 0.85, 8: 0.80}


def _send_all(senders: list[gen.Sender], count: int, time_limit: float,
              cpus: set[int] | None) -> list[Any]:
    """Every sender in its own thread, all at once; their results (a
    SendResult, or the exception it raised)."""
    box: list[Any] = [None] * len(senders)
    done = [threading.Event() for _ in senders]

    def work(i: int) -> None:
        try:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            box[i] = senders[i].run(count, time_limit=time_limit)
        except BaseException as e:  # handed to the caller
            box[i] = e
        finally:
            done[i].set()

    for i in range(len(senders)):
        threading.Thread(target=work, args=(i,), name=f"bench-ms-sender-{i}", daemon=True).start()
    for d in done:
        while not d.wait(0.05):  # an Event, not join(): robust to Ctrl-C
            pass
    return box


def measure_multisocket(workdir: Path, env: dict[str, str], recv_count: Path, receiver: str,
                        n: int, count: int, templates: np.ndarray, time_limit: float,
                        placement: str = "unpinned") -> dict[str, Any]:
    """One run: n senders of count alerts each into receiver; its figures."""
    paths = [str(workdir / f"ms{i}.sock") for i in range(n)]
    for p in [*paths, str(workdir / "ms-dl.bin")]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    snd_cpus, rcv_cpus = placement_cpus(placement)
    procs: list[subprocess.Popen] = []
    outs: list[Path] = []
    senders: list[gen.Sender] = []
    clock: LineClock | None = None
    try:
        if receiver == "bare":
            for i, path in enumerate(paths):
                outs.append(workdir / f"ms{i}.out")
                with open(outs[-1], "wb") as fout:
                    procs.append(subprocess.Popen([str(recv_count), path, str(count)], stdout=fout,
                                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                                  cwd=workdir, preexec_fn=pinned_exec(rcv_cpus),
                                                  start_new_session=True))
        else:
            args = [a for p in paths for a in ("--snort", p)]
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ingest", "listen", *args, "--sink", "null:",
                 "--stats-interval", str(STATS_INTERVAL), "--dead-letter", str(workdir / "ms-dl.bin")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                cwd=workdir, env=env | MS_ENV[receiver], preexec_fn=pinned_exec(rcv_cpus),
                start_new_session=True))
            clock = LineClock(procs[0].stderr, n * count)
        for i, p in enumerate(paths):
            wait_for_socket(p, procs[0] if clock is not None else procs[i], 30.0)
        if clock is not None:
            time.sleep(0.3)  # ingest's start-up work after bind() is not counted (recv_count has none)
        cpu0 = sum(proc_cpu(p.pid) for p in procs)
        senders = [gen.sender_for("snort", p, templates) for p in paths]
        t0 = time.monotonic()
        results = _send_all(senders, count, time_limit, snd_cpus)
        for r in results:
            if isinstance(r, BaseException):
                raise BenchError(f"multi-socket sender: {r}")
            if r.interrupted:
                raise KeyboardInterrupt
            if r.errors or r.sent != count:
                raise BenchError(f"{receiver} x{n}: a sender sent {r.sent} of {count}, errors "
                                 f"{r.errors} ({r.last_error or 'time limit'})")
        row: dict[str, Any] = {"receiver": receiver, "sockets": n, "alerts": n * count}
        if clock is None:
            cpu = 0.0
            rss = 0
            for bare_proc, out_path in zip(procs, outs, strict=True):
                ru = wait4(bare_proc, time_limit)
                if ru is None or bare_proc.returncode != 0:
                    raise BenchError(f"bare x{n}: a receiver did not get its {count} alerts")
                cpu += ru.ru_utime + ru.ru_stime
                detail = json.loads(out_path.read_text())
                if int(detail["received"]) != count:
                    raise BenchError(f"bare x{n}: a receiver got {detail['received']} of {count}")
                rss += int(detail.get("maxrss_kb", 0))
            t_done = time.monotonic()
            cpu -= cpu0
            row["completion"] = "exit on its count"
        else:
            proc = procs[0]
            deadline = time.monotonic() + time_limit
            hwm = 0
            while clock.done_at is None and proc.poll() is None and time.monotonic() < deadline:
                hwm = max(hwm, proc_hwm_kb(proc.pid))
                time.sleep(0.005)
            if clock.done_at is None:
                raise BenchError(f"{receiver} x{n}: no stats line said every alert was dispatched "
                                 f"within {time_limit:.0f} s: {clock.text()[-1000:]}")
            t_done = clock.done_at
            cpu = proc_cpu(proc.pid) - cpu0  # up to the stats line: not the shutdown
            rss = max(hwm, proc_hwm_kb(proc.pid))
            proc.send_signal(signal.SIGTERM)
            if wait4(proc, max(30.0, time_limit)) is None or proc.returncode != 0:
                raise BenchError(f"{receiver} x{n}: did not exit cleanly on SIGTERM")
            row["shutdown_s"] = time.monotonic() - t_done
            m = FINAL_STATS.search(clock.text())
            if not m:
                raise BenchError(f"{receiver} x{n}: no final stats line on stderr")
            final = json.loads(m.group(1))
            dispatched = sum(final.get("dispatched", {}).values())
            if int(final.get("received", 0)) != n * count or dispatched != n * count:
                raise BenchError(f"{receiver} x{n}: received {final.get('received')}, dispatched "
                                 f"{dispatched} of {n * count}")
            row["completion"] = "stats line"
        secs = t_done - t0
        return row | {"alerts_per_s": ratio(n * count, secs), "cpu_s": cpu,
                      "cpu_us_per_alert": cpu / (n * count) * 1e6, "peak_rss_mib": rss / 1024}
    finally:
        for s in senders:
            s.stop()
        for child in procs:
            stop_process(child)
            if child.stderr is not None:
                child.stderr.close()
        if clock is not None:
            clock.text()
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def run_multisocket(workdir: Path, env: dict[str, str], recv_count: Path, *,
                    sockets: tuple[int, ...] = (1, 2, 4, 8), count: int = 20_000, repeat: int = 3,
                    receivers: tuple[str, ...] = MS_RECEIVERS, time_limit: float = 60.0,
                    seed: int = 1, progress=None, placement: str = "unpinned") -> dict[str, Any]:
    """The multi-socket rows: every (receiver, N) `repeat` times, rounds
    interleaved; medians, and ratios to ``bare`` paired within the round."""
    if "bare" not in receivers:
        receivers = ("bare", *receivers)
    templates, _ = gen.build_templates("snort", 256, seed)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    load = [os.getloadavg()[0]]
    for rep in range(repeat):
        for n in sockets:
            for receiver in receivers:
                r = measure_multisocket(workdir, env, recv_count, receiver, n, count, templates,
                                        time_limit, placement)
                runs.setdefault((receiver, n), []).append(r)
                if progress:
                    progress(f"round {rep + 1}/{repeat} x{n} sockets {receiver:10s} "
                             f"{r['alerts_per_s']:10,.0f} alerts/s {r['cpu_us_per_alert']:6.2f} CPU us/alert")
        load.append(os.getloadavg()[0])
    rows: list[dict[str, Any]] = []
    for n in sockets:
        bare = runs[("bare", n)]
        for receiver in receivers:
            rs = runs[(receiver, n)]
            row: dict[str, Any] = {
                "sockets": n, "receiver": receiver, "label": MS_LABELS[receiver],
                "alerts": n * count, "completion": rs[0]["completion"],
                "alerts_per_s": statistics.median(x["alerts_per_s"] for x in rs),
                "cpu_us_per_alert": statistics.median(x["cpu_us_per_alert"] for x in rs),
                "peak_rss_mib": max(x["peak_rss_mib"] for x in rs), "runs": rs}
            shut = [x["shutdown_s"] for x in rs if "shutdown_s" in x]
            if shut:
                row["shutdown_s"] = statistics.median(shut)
            if receiver != "bare":
                for key, name in (("alerts_per_s", "rate"), ("cpu_us_per_alert", "cpu")):
                    med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(rs, bare, strict=True))
                    row[f"paired_{name}_vs_bare"] = med
                    row[f"paired_{name}_vs_bare_range"] = [lo, hi]
            rows.append(row)
    return {"sockets": list(sockets), "count_per_socket": count, "repeat": repeat,
            "placement": placement_label(placement),
            "sender": "ingest gen snort, Snort-faithful (one hot buffer, blocking sendto, default "
                      "SO_SNDBUF), one thread per socket",
            "loadavg_1min": [min(load), max(load)], "rows": rows}


def _pr(r: dict, k: str) -> str:
    if k not in r or r[k] != r[k]:
        return f"{'-':>17s}"
    lo, hi = r[f"{k}_range"]
    return f"{r[k]:.2f} ({lo:.2f}-{hi:.2f})".rjust(17)


def format_multisocket(ms: dict[str, Any]) -> list[str]:
    lo, hi = ms["loadavg_1min"]
    lines = ["", f"multi-socket Alertpkt (Snort 3: one socket per packet thread; {ms['count_per_socket']:,} "
                 f"alerts per socket per run; {ms['sender']}), {ms['repeat']} round(s) interleaved, "
                 f"medians, ratios paired (range); placement: {ms['placement']}; load average "
                 f"{lo:.1f}-{hi:.1f}:",
             f"{'sockets':>7s} {'receiver':30s} {'alerts/s':>10s} {'CPU us/al':>9s} {'RSS MiB':>8s} "
             f"{'stop s':>7s} {'rate/bare':>17s} {'CPU/bare':>17s}"]
    for r in ms["rows"]:
        stop = f"{r['shutdown_s']:7.2f}" if "shutdown_s" in r else f"{'-':>7s}"
        lines.append(f"{r['sockets']:7d} {r['label']:30s} {r['alerts_per_s']:10,.0f} "
                     f"{r['cpu_us_per_alert']:9.2f} {r['peak_rss_mib']:8.1f} {stop} "
                     f"{_pr(r, 'paired_rate_vs_bare')} {_pr(r, 'paired_cpu_vs_bare')}")
    lines.append("clocks stop at: the bare receivers' exit on their count; ingest's stats line saying "
                 "every alert was dispatched ('stop s', SIGTERM -> exit, is apart)")
    return lines


def goals(ms: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue 10's multi-socket goals for the rows measured (each reader)."""
    out: list[tuple[str, bool, str]] = []
    for r in ms.get("rows", []):
        goal = MS_GOALS.get(r["sockets"])
        v = r.get("paired_rate_vs_bare")
        if goal is None or v is None or v != v:
            continue
        lo, hi = r["paired_rate_vs_bare_range"]
        # one round (--quick) is one ratio, not a median: said so next to it
        first_look = "; one round: a first look, not the verdict" if ms["repeat"] < 2 else ""
        out.append((f"{r['sockets']} sockets: {r['label']} >= {goal} of {r['sockets']} bare C "
                    f"receivers [{ms['placement']}]", v >= goal,
                    f"{v:.2f} paired ({lo:.2f}-{hi:.2f}){first_look}"))
    return out
