"""``ingest bench`` EVE rows: the EVE socket inputs against their peers.

In one run, interleaved round by round, the C EVE sender of ``ingest gen``
(csrc/gen.c, Suricata's eve-log loop, here with ``--offline`` blocking sends so
that no record is dropped and the sender is paced by the reader) pushes the
same EVE lines into:

* ``unix_stream``: ``ingest listen --eve-stream SOCK --sink null:`` and FEVER
  (``fever run -i SOCK --in-buffer-drop=false``, lossless, when the ``fever``
  binary is installed: Debian's ``fever`` package);
* ``unix_dgram``: ``ingest listen --eve-dgram SOCK --sink null:`` and a
  plain-Python ``socket.recv`` + ``json.loads`` receiver.

Records/s is counted from the first send until the receiver has handled the
last record, never including its shutdown:

* ingest: until its periodic stats line (every 50 ms) says every record was
  read and everything it decoded was handed to the sink (``received`` =
  records sent, ``dispatched`` = ``decoded``); the SIGTERM -> exit that
  follows (drain, close) is reported apart as ``shutdown_s``;
* FEVER, in lossless mode (``--in-buffer-drop=false``: its socket reader
  blocks on a full input buffer instead of dropping, FEVER's
  input/input_socket.go): after the last record the bench connects again and
  sends one end marker, a copy of a record with the event type
  ``ingest_bench_end``, the only type FEVER is told to forward (``-t``) to an
  output socket the bench listens on.  FEVER reads one connection at a time,
  to its end, and one goroutine dispatches its input buffer in order, so the
  marker arriving on the output socket means FEVER has dispatched every
  record before it; FEVER's log must hold no warning (a record it could not
  parse);
* the Python and bare C receivers: until they exit on their count.

CPU seconds per million records (up to that same moment) and peak RSS are
the receiver's.  Everything runs in the bench's temporary directory and is
stopped and removed, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
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
    STATS_INTERVAL,
    BenchError,
    StatsClock,
    all_dispatched,
    paired_range,
    pinned_exec,
    placement_cpus,
    placement_label,
    proc_cpu,
    proc_hwm_kb,
    ratio,
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

#: the unix_stream limit: accept one connection, recv_into a 1 MiB buffer,
#: count the newlines (bytes.count: memchr speed), exit on its count; no
#: parsing at all: what this sender and socket allow
STREAM_COUNT = r"""
import json, resource, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(path)
ls.listen(1)
ls.settimeout(30)
c, _ = ls.accept()
c.settimeout(30)
buf = bytearray(1 << 20)
got = 0
while got < n:
    k = c.recv_into(buf)
    if k == 0:
        break
    got += buf.count(b"\n", 0, k)
print(json.dumps({"received": got,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

PAIRS = {
    "unix_stream": ("ingest-eve-stream", "fever"),
    "unix_dgram": ("ingest-eve-dgram", "naive-json"),
}
LABELS = {
    "ingest-eve-stream": "ingest --eve-stream null:",
    "fever": "FEVER lossless (fever run)",
    "ingest-eve-dgram": "ingest --eve-dgram null:",
    "naive-json": "Python recv+json.loads",
    "bare-c": "bare C recvmmsg (count only)",
    "ingest-eve-dgram-native": "ingest --eve-dgram, C reader",
    "stream-count": "stream limit: recv + count \\n",
}
#: the unix_stream limit (STREAM_COUNT), every unix_stream row paired with it
STREAM_LIMIT = "stream-count"
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


#: the event type of the end marker FEVER forwards (and nothing else)
FEVER_END_TYPE = "ingest_bench_end"


def fever_end_marker(records: list[bytes]) -> bytes:
    """The one record sent to FEVER after the measured ones: a copy of a
    real record with the event type only the bench's output socket asks for."""
    ev = json.loads(records[0])
    ev["event_type"] = FEVER_END_TYPE
    return json.dumps(ev, separators=(",", ":")).encode() + b"\n"


def _command(receiver: str, sock: str, count: int, workdir: Path,
             extra_args: tuple[str, ...] = ()) -> list[str]:
    if receiver == "fever":
        # lossless: the socket reader blocks when the input buffer is full
        # (the default drops); only the end marker is forwarded; every path
        # it writes (log, management socket) is in the bench's directory
        return ["fever", "run", "-i", sock, "--in-buffer-drop=false",
                "-o", str(workdir / "fever-out.sock"), "-t", FEVER_END_TYPE,
                "--logfile", str(workdir / "fever.log"),
                "--mgmt-socket", str(workdir / "fever-mgmt.sock")]
    if receiver == "naive-json":
        return [sys.executable, "-c", NAIVE_JSON, sock, str(count)]
    if receiver == STREAM_LIMIT:
        return [sys.executable, "-c", STREAM_COUNT, sock, str(count)]
    if receiver == DGRAM_LIMIT:
        return [str(workdir / "recv_count"), sock, str(count), str(256 * 1024), "256"]
    opt = "--eve-stream" if receiver == "ingest-eve-stream" else "--eve-dgram"
    return [sys.executable, "-m", "ingest", "listen", opt, sock, "--sink", "null:",
            "--stats-interval", str(STATS_INTERVAL),
            "--dead-letter", str(workdir / "deadletter.bin"), *extra_args]


def _accept(listener: socket.socket, proc: subprocess.Popen, timeout: float) -> socket.socket:
    """FEVER's connection to the output socket (it dials when it starts)."""
    deadline = time.monotonic() + timeout
    listener.settimeout(0.05)
    while True:
        try:
            conn, _ = listener.accept()
            return conn
        except TimeoutError:
            if proc.poll() is not None:
                raise BenchError(f"fever exited ({proc.returncode}) before connecting to its "
                                 "output socket") from None
            if time.monotonic() > deadline:
                raise BenchError(f"fever did not connect to its output socket within "
                                 f"{timeout:.0f} s") from None


def _fever_done(sock: str, conn: socket.socket, marker: bytes, proc: subprocess.Popen,
                time_limit: float) -> float:
    """Send the end marker on a new connection and wait until FEVER forwards
    it: when it did (FEVER had dispatched every record sent before it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(time_limit)
        c.connect(sock)
        c.sendall(marker)
    deadline = time.monotonic() + time_limit
    got = b""
    conn.settimeout(0.05)
    while b"\n" not in got:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("fever did not forward the end marker "
                                 f"({'exited' if proc.poll() is not None else 'time limit'})") from None
            continue
        if not chunk:
            raise BenchError("fever closed its output socket before the end marker")
        got += chunk
    t_done = time.monotonic()
    if FEVER_END_TYPE.encode() not in got:
        raise BenchError(f"fever forwarded something else than the end marker: {got[:200]!r}")
    return t_done


def _measure(workdir: Path, env: dict[str, str], receiver: str, records: list[bytes],
             count: int, time_limit: float, extra_args: tuple[str, ...] = (),
             placement: str = "unpinned") -> dict[str, Any]:
    sock = str(workdir / "eve.sock")
    for leftover in ("eve.sock", "fever-out.sock", "fever-mgmt.sock", "fever.log"):
        with contextlib.suppress(FileNotFoundError):
            (workdir / leftover).unlink()
    out_path = workdir / "eve-stdout"
    err_path = workdir / "eve-stderr"
    is_ingest = receiver.startswith("ingest")
    listener: socket.socket | None = None
    conn: socket.socket | None = None
    if receiver == "fever":  # before FEVER starts: it dials once at start-up
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(workdir / "fever-out.sock"))
        listener.listen(1)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        snd_cpus, rcv_cpus = placement_cpus(placement)
        proc = subprocess.Popen(_command(receiver, sock, count, workdir, extra_args), stdout=out,
                                stderr=subprocess.PIPE if is_ingest else err,
                                stdin=subprocess.DEVNULL, cwd=workdir,
                                env=env | RECEIVER_ENV.get(receiver, {}),
                                preexec_fn=pinned_exec(rcv_cpus), start_new_session=True)
    clock = StatsClock(proc.stderr, all_dispatched(count)) if is_ingest else None
    sender: gen.LineSender | None = None
    done = threading.Event()
    try:
        wait_for_socket(sock, proc, 30.0)
        if listener is not None:
            conn = _accept(listener, proc, 30.0)
        time.sleep(0.3)  # start-up work after bind() is not counted
        cpu0 = proc_cpu(proc.pid)
        sender = gen.LineSender(sock, records,
                                stream=receiver in (*PAIRS["unix_stream"], STREAM_LIMIT), offline=True)
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
        extra: dict[str, Any] = {}
        if receiver == "fever":
            assert conn is not None
            t_done = _fever_done(sock, conn, fever_end_marker(records), proc, time_limit)
            hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
            cpu = proc_cpu(proc.pid) - cpu0
            received = None
            log = (workdir / "fever.log").read_text(errors="replace")
            bad = [ln for ln in log.splitlines() if "level=warn" in ln or "level=error" in ln]
            if bad:
                raise BenchError(f"fever logged {len(bad)} warning(s), e.g. {bad[0][:300]}")
            extra["completion"] = "end marker forwarded"
        elif receiver in ("naive-json", DGRAM_LIMIT, STREAM_LIMIT):
            t_done, cpu = _reap(proc, receiver, time_limit, hwm, err_path, cpu0)
            detail = json.loads(out_path.read_text())
            received = int(detail["received"])
            hwm[0] = int(detail.get("maxrss_kb", hwm[0]))
            extra["completion"] = "exit on its count"
        else:
            assert clock is not None
            deadline = time.monotonic() + time_limit
            while clock.done_at is None and proc.poll() is None and time.monotonic() < deadline:
                hwm[0] = max(hwm[0], proc_hwm_kb(proc.pid))
                time.sleep(0.005)
            if clock.done_at is None:
                raise BenchError(f"{receiver}: no stats line said every record was handled "
                                 f"within {time_limit:.0f} s: {clock.text()[-2000:]}")
            t_done = clock.done_at
            cpu = proc_cpu(proc.pid) - cpu0  # up to the stats line: not the shutdown
            proc.send_signal(signal.SIGTERM)  # drains what is queued, then exits
            t_exit, _ = _reap(proc, receiver, max(30.0, time_limit), hwm, err_path, cpu0)
            text = clock.text()
            m = FINAL_STATS.search(text)
            if not m:
                raise BenchError(f"{receiver}: no final stats line on stderr")
            final = json.loads(m.group(1))
            received = int(final.get("received", 0))
            # the stats line that stopped the clock had dispatched all the
            # process ever dispatched: nothing was still on its way
            assert clock.done_fields is not None
            if clock.done_fields.get("dispatched") != final.get("dispatched"):
                raise BenchError(f"{receiver}: dispatched {final.get('dispatched')} in the end, "
                                 f"{clock.done_fields.get('dispatched')} when its stats line "
                                 "said it was done")
            extra["completion"] = "stats line"
            extra["shutdown_s"] = t_exit - t_done
        if received is not None and received != count:
            raise BenchError(f"{receiver}: received {received} of {count}")
        secs = t_done - t0
        return {"receiver": receiver, "label": LABELS[receiver], "records": count,
                "received": received, "records_per_s": ratio(count, secs),
                "sender_records_per_s": res.rate,
                "cpu_s_per_million": cpu / count * 1e6, "peak_rss_mib": hwm[0] / 1024} | extra
    finally:
        teardown(sender, done if sender is not None else None, proc, str(sock))
        for s_ in (conn, listener):
            if s_ is not None:
                s_.close()
        if proc.stderr is not None:
            proc.stderr.close()


def run_eve(workdir: Path, env: dict[str, str], *, count: int, repeat: int, time_limit: float,
            seed: int = 1, progress=None, placement: str = "unpinned") -> dict[str, Any]:
    """The EVE rows: each pair measured `repeat` times, interleaved; medians,
    and the ratio to the peer paired (median of the within-round ratios)."""
    records, source = gen.load_eve_records(None, 256, seed)
    have_fever = shutil.which("fever") is not None
    receivers = [r for pair in PAIRS.values() for r in pair if r != "fever" or have_fever]
    receivers.insert(receivers.index("ingest-eve-dgram"), STREAM_LIMIT)
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
            _timing(row, rs)
            if receiver == ours and peer in runs:
                for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "cpu")):
                    med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(rs, runs[peer], strict=True))
                    row[f"paired_{name}_vs_peer"] = med
                    row[f"paired_{name}_vs_peer_range"] = [lo, hi]
            if socket_kind == "unix_dgram" and receiver == ours:
                _vs_limit(row, runs)
            if socket_kind == "unix_stream":
                _vs_limit(row, runs, STREAM_LIMIT)
            rows.append(row)
        if socket_kind == "unix_stream" and STREAM_LIMIT in runs:
            rs = runs[STREAM_LIMIT]
            row = {"socket": socket_kind, "receiver": STREAM_LIMIT, "label": LABELS[STREAM_LIMIT],
                   "records": count,
                   "records_per_s": statistics.median(r["records_per_s"] for r in rs),
                   "cpu_s_per_million": statistics.median(r["cpu_s_per_million"] for r in rs),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs}
            _timing(row, rs)
            rows.append(row)
    for receiver in DGRAM_MORE:
        if receiver in runs:
            rs = runs[receiver]
            row = {"socket": "unix_dgram", "receiver": receiver, "label": LABELS[receiver],
                   "records": count,
                   "records_per_s": statistics.median(r["records_per_s"] for r in rs),
                   "cpu_s_per_million": statistics.median(r["cpu_s_per_million"] for r in rs),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "runs": rs}
            _timing(row, rs)
            _vs_limit(row, runs)
            rows.append(row)
    mean_len = sum(len(r) for r in records) / len(records)
    return {"records": source, "record_bytes_mean": round(mean_len, 1), "count": count,
            "repeat": repeat, "sender": "ingest gen --offline (blocking, as suricata -r)",
            "placement": placement_label(placement),
            "fever": "installed" if have_fever else "fever not installed", "rows": rows}


def _timing(row: dict[str, Any], rs: list[dict[str, Any]]) -> None:
    """What stopped a row's clock, and its shutdown (SIGTERM -> exit, not
    in the rate) when it has one."""
    row["completion"] = rs[0].get("completion", "?")
    shut = [r["shutdown_s"] for r in rs if "shutdown_s" in r]
    if shut:
        row["shutdown_s"] = statistics.median(shut)


def _vs_limit(row: dict[str, Any], runs: dict[str, list[dict[str, Any]]],
              limit: str = DGRAM_LIMIT) -> None:
    """A row against its socket's limit receiver of the same rounds (the
    bare C receiver for unix_dgram, issue 10's goal: ingest >= 0.6 of it;
    STREAM_LIMIT for unix_stream): the median of the within-round ratios
    and their range."""
    if limit not in runs or row["receiver"] == limit:
        return
    for key, name in (("records_per_s", "rate"), ("cpu_s_per_million", "cpu")):
        med, lo, hi = paired_range((x[key], y[key]) for x, y in zip(row["runs"], runs[limit], strict=True))
        row[f"paired_{name}_vs_bare"] = med
        row[f"paired_{name}_vs_bare_range"] = [lo, hi]


def format_eve(eve: dict[str, Any]) -> list[str]:
    lines = ["", f"EVE sockets ({eve['count']:,} records per run, mean {eve['record_bytes_mean']:.0f}"
                 f" B, from {eve['records']}; sender {eve['sender']}), {eve['repeat']} round(s) "
                 f"interleaved, medians, ratios paired (range); placement: "
                 f"{eve.get('placement', 'unpinned')}:",
             f"{'socket':12s} {'receiver':28s} {'records/s':>10s} {'CPU s/M':>8s} "
             f"{'RSS MiB':>8s} {'stop s':>7s} {'rate/peer':>17s} {'CPU/peer':>17s}"]

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
            limit = "stream limit" if r["socket"] == "unix_stream" else "bare C"
            vs = f"  vs {limit}: rate {pr(r, 'paired_rate_vs_bare').strip()}, CPU {pr(r, 'paired_cpu_vs_bare').strip()}"
        stop = f"{r['shutdown_s']:7.2f}" if "shutdown_s" in r else f"{'-':>7s}"
        lines.append(f"{r['socket']:12s} {r['label']:28s} {r['records_per_s']:10,.0f} "
                     f"{r['cpu_s_per_million']:8.2f} {r['peak_rss_mib']:8.1f} {stop} "
                     f"{pr(r, 'paired_rate_vs_peer')} {pr(r, 'paired_cpu_vs_peer')}" + vs)
    lines.append("clocks stop at: ingest, its stats line saying every record was handled ('stop s', "
                 "SIGTERM -> exit, is apart); FEVER (lossless), forwarding the end marker sent after "
                 "the last record; the other peers, their exit on their count. The stream limit "
                 "reads and counts lines only: what this sender and socket allow")
    return lines
