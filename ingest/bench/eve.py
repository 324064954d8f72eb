"""``ingest bench`` EVE rows: the EVE socket inputs against their peers.

In one run, interleaved round by round, the C EVE sender of ``ingest gen``
(csrc/gen.c, Suricata's eve-log loop, here with ``--offline`` blocking sends so
that no record is dropped and the sender is paced by the reader) pushes the
same EVE lines into:

* ``unix_stream``: ``ingest listen --eve-stream SOCK --sink null:`` and FEVER
  (``fever run -i SOCK -o ''``, when the ``fever`` binary is installed);
* ``unix_dgram``: ``ingest listen --eve-dgram SOCK --sink null:`` and a
  plain-Python ``socket.recv`` + ``json.loads`` receiver.

Records/s is counted from the first send until the receiver has every record:
for ingest, until its final stats (after SIGTERM drains it) say so; for the
Python receiver, until it exits on its count; FEVER reports no count, so its
rate is until the blocking sender is done (at most a socket buffer of records
still unread).  CPU seconds per million records and peak RSS are the
receiver's.  Everything runs in the bench's temporary directory and is
stopped and removed, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import gen
from .common import (
    DEFAULT_PEERS,
    FINAL_STATS,
    BenchError,
    paired_range,
    pinned_exec,
    placement_cpus,
    placement_label,
    proc_cpu,
    proc_hwm_kb,
    teardown,
    wait4,
    wait_for_socket,
)

#: the plain-Python datagram receiver: recv + json.loads, exits on its count
NAIVE_JSON = r"""
import json, resource, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(path)
s.settimeout(30)
got = alerts = 0
while got < n:
    ev = json.loads(s.recv(262144))
    got += 1
    alerts += ev.get("event_type") == "alert"
print(json.dumps({"received": got, "alerts": alerts,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

PAIRS = {
    "unix_stream": ("ingest-eve-stream", "fever"),
    "unix_dgram": ("ingest-eve-dgram", "naive-json"),
}
LABELS = {
    "ingest-eve-stream": "ingest --eve-stream null:",
    "fever": "FEVER (fever run)",
    "ingest-eve-dgram": "ingest --eve-dgram null:",
    "naive-json": "Python recv+json.loads",
    "bare-c": "bare C recvmmsg (count only)",
    "ingest-eve-dgram-native": "ingest --eve-dgram, C reader",
}
#: the unix_dgram limit: the bench's recv_count peer (recvmmsg into 256 KiB
#: slots, count only), and ingest with a C reader thread
#: (INGEST_NATIVE_READER=all; not the default for EVE): every dgram
#: receiver is also paired with the limit
DGRAM_LIMIT = "bare-c"
DGRAM_MORE = ("bare-c", "ingest-eve-dgram-native")
RECEIVER_ENV = {"ingest-eve-dgram-native": {"INGEST_NATIVE_READER": "all"}}


def _reap(proc: subprocess.Popen, receiver: str, time_limit: float, hwm: list[int],
          err_path: Path, cpu0: float) -> tuple[float, float]:
    """Wait for a receiver that ends on its own (or after SIGTERM): when it
    was done, and its CPU seconds since cpu0."""
    ru = wait4(proc, time_limit, hwm)
    t_done = time.monotonic()
    if ru is None or proc.returncode != 0:
        raise BenchError(f"{receiver} did not finish: {err_path.read_text()[-2000:]}")
    return t_done, ru.ru_utime + ru.ru_stime - cpu0


def _command(receiver: str, sock: str, count: int, workdir: Path,
             extra_args: tuple[str, ...] = ()) -> list[str]:
    if receiver == "fever":
        return ["fever", "run", "-i", sock, "-o", "", "--logfile", str(workdir / "fever.log")]
    if receiver == "naive-json":
        return [sys.executable, "-c", NAIVE_JSON, sock, str(count)]
    if receiver == DGRAM_LIMIT:
        return [str(workdir / "recv_count"), sock, str(count), str(256 * 1024), "256"]
    opt = "--eve-stream" if receiver == "ingest-eve-stream" else "--eve-dgram"
    return [sys.executable, "-m", "ingest", "listen", opt, sock, "--sink", "null:",
            "--stats-interval", "0", "--dead-letter", str(workdir / "deadletter.bin"), *extra_args]


def _measure(workdir: Path, env: dict[str, str], receiver: str, records: list[bytes],
             count: int, time_limit: float, extra_args: tuple[str, ...] = (),
             placement: str = "unpinned") -> dict[str, Any]:
    sock = str(workdir / "eve.sock")
    with contextlib.suppress(FileNotFoundError):
        Path(sock).unlink()
    out_path = workdir / "eve-stdout"
    err_path = workdir / "eve-stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        snd_cpus, rcv_cpus = placement_cpus(placement)
        proc = subprocess.Popen(_command(receiver, sock, count, workdir, extra_args), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, cwd=workdir,
                                env=env | RECEIVER_ENV.get(receiver, {}),
                                preexec_fn=pinned_exec(rcv_cpus), start_new_session=True)
    sender: gen.LineSender | None = None
    done = threading.Event()
    try:
        wait_for_socket(sock, proc, 30.0)
        time.sleep(0.3)  # start-up work after bind() is not counted
        cpu0 = proc_cpu(proc.pid)
        sender = gen.LineSender(sock, records, stream=receiver in PAIRS["unix_stream"],
                                offline=True)
        box, done = gen.start_in_thread(sender, count, time_limit=time_limit,
                                        name="bench-eve-sender", cpus=snd_cpus)
        t0 = time.monotonic()
        hwm = [0]
        while not done.wait(0.02):
            hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
        res = box[0]
        if isinstance(res, BaseException):
            raise BenchError(f"EVE sender: {res}")
        if res.interrupted:
            raise KeyboardInterrupt
        if res.sent != count:
            raise BenchError(f"EVE sender to {receiver}: sent {res.sent} of {count} "
                             f"({res.last_error or 'time limit'})")
        t_sent = time.monotonic()
        cpu = None
        if receiver == "fever":
            t_done = t_sent
            hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
            cpu = proc_cpu(proc.pid) - cpu0
            received = None
        elif receiver in ("naive-json", DGRAM_LIMIT):
            t_done, cpu = _reap(proc, receiver, time_limit, hwm, err_path, cpu0)
            detail = json.loads(out_path.read_text())
            received = int(detail["received"])
            hwm[0] = int(detail.get("maxrss_kb", hwm[0]))
        else:
            proc.send_signal(signal.SIGTERM)  # drains what is queued, then exits
            t_done, cpu = _reap(proc, receiver, time_limit, hwm, err_path, cpu0)
            m = FINAL_STATS.search(err_path.read_text())
            if not m:
                raise BenchError(f"{receiver}: no final stats line on stderr")
            received = int(json.loads(m.group(1)).get("received", 0))
        if received is not None and received != count:
            raise BenchError(f"{receiver}: received {received} of {count}")
        secs = t_done - t0
        return {"receiver": receiver, "label": LABELS[receiver], "records": count,
                "received": received, "records_per_s": count / secs if secs > 0 else 0.0,
                "sender_records_per_s": res.rate,
                "cpu_s_per_million": cpu / count * 1e6, "peak_rss_mib": hwm[0] / 1024}
    finally:
        teardown(sender, done if sender is not None else None, proc, str(sock))


def run_eve(workdir: Path, env: dict[str, str], *, count: int, repeat: int, time_limit: float,
            seed: int = 1, progress=None, placement: str = "unpinned") -> dict[str, Any]:
    """The EVE rows: each pair measured `repeat` times, interleaved; medians,
    and the ratio to the peer paired (median of the within-round ratios)."""
    records, source = gen.load_eve_records(None, 256, seed)
    have_fever = shutil.which("fever") is not None
    receivers = [r for pair in PAIRS.values() for r in pair if r != "fever" or have_fever]
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if gcc is not None:  # the bare C limit of unix_dgram (the Alertpkt rows' peer)
        if not (workdir / "recv_count").exists():
            subprocess.run([gcc, "-O2", "-o", str(workdir / "recv_count"),
                            str(DEFAULT_PEERS / "recv_count.c")], check=True, timeout=120)
        receivers += list(DGRAM_MORE)
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in receivers}
    for rep in range(repeat):
        for receiver in receivers:
            r = _measure(workdir, env, receiver, records, count, time_limit, placement=placement)
            runs[receiver].append(r)
            if progress:
                progress(f"round {rep + 1}/{repeat} EVE {receiver:18s} "
                         f"{r['records_per_s']:10,.0f} records/s "
                         f"{r['cpu_s_per_million']:6.2f} CPU s/M {r['peak_rss_mib']:6.1f} MiB")
    rows = []
    for socket_kind, (ours, peer) in PAIRS.items():
        for receiver in (ours, peer):
            if receiver not in runs:
                rows.append({"socket": socket_kind, "receiver": receiver,
                             "label": LABELS[receiver], "missing": "fever not installed"})
                continue
            rs = runs[receiver]
            row = {"socket": socket_kind, "receiver": receiver, "label": LABELS[receiver],
                   "records": count,
                   "records_per_s": statistics.median(r["records_per_s"] for r in rs),
                   "cpu_s_per_million": statistics.median(r["cpu_s_per_million"] for r in rs),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs}
            if receiver == ours and peer in runs:
                for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "cpu")):
                    med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(rs, runs[peer], strict=True))
                    row[f"paired_{name}_vs_peer"] = med
                    row[f"paired_{name}_vs_peer_range"] = [lo, hi]
            if socket_kind == "unix_dgram" and receiver == ours:
                _vs_limit(row, runs)
            rows.append(row)
    for receiver in DGRAM_MORE:
        if receiver in runs:
            rs = runs[receiver]
            row = {"socket": "unix_dgram", "receiver": receiver, "label": LABELS[receiver],
                   "records": count,
                   "records_per_s": statistics.median(r["records_per_s"] for r in rs),
                   "cpu_s_per_million": statistics.median(r["cpu_s_per_million"] for r in rs),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs}
            _vs_limit(row, runs)
            rows.append(row)
    mean_len = sum(len(r) for r in records) / len(records)
    return {"records": source, "record_bytes_mean": round(mean_len, 1), "count": count,
            "repeat": repeat, "sender": "ingest gen --offline (blocking, as suricata -r)",
            "placement": placement_label(placement),
            "fever": "installed" if have_fever else "fever not installed", "rows": rows}


def _vs_limit(row: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> None:
    """A unix_dgram row against the bare C receiver of the same rounds:
    the median of the within-round ratios and their range (issue 10's goal:
    ingest >= 0.6 of it)."""
    if DGRAM_LIMIT not in runs or row["receiver"] == DGRAM_LIMIT:
        return
    for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "cpu")):
        med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(row["runs"], runs[DGRAM_LIMIT], strict=True))
        row[f"paired_{name}_vs_bare"] = med
        row[f"paired_{name}_vs_bare_range"] = [lo, hi]


def format_eve(eve: dict[str, Any]) -> list[str]:
    lines = ["", f"EVE sockets ({eve['count']:,} records per run, mean {eve['record_bytes_mean']:.0f}"
                 f" B, from {eve['records']}; sender {eve['sender']}), {eve['repeat']} round(s) "
                 f"interleaved, medians, ratios paired (range); placement: "
                 f"{eve.get('placement', 'unpinned')}:",
             f"{'socket':12s} {'receiver':28s} {'records/s':>10s} {'CPU s/M':>8s} "
             f"{'RSS MiB':>8s} {'rate/peer':>17s} {'CPU/peer':>17s}"]

    def pr(r: dict, k: str) -> str:
        if k not in r or r[k] != r[k]:
            return f"{'-':>17s}"
        lo, hi = r.get(f"{k}_range", [r[k], r[k]])
        return f"{r[k]:.2f} ({lo:.2f}-{hi:.2f})".rjust(17)

    for r in eve["rows"]:
        if "missing" in r:
            lines.append(f"{r['socket']:12s} {r['label']:28s} {r['missing']}")
            continue
        vs = ""
        if "paired_rate_vs_bare" in r:
            vs = f"  vs bare C: rate {pr(r, 'paired_rate_vs_bare').strip()}, CPU {pr(r, 'paired_cpu_vs_bare').strip()}"
        lines.append(f"{r['socket']:12s} {r['label']:28s} {r['records_per_s']:10,.0f} "
                     f"{r['cpu_s_per_million']:8.2f} {r['peak_rss_mib']:8.1f} "
                     f"{pr(r, 'paired_rate_vs_peer')} {pr(r, 'paired_cpu_vs_peer')}" + vs)
    return lines
