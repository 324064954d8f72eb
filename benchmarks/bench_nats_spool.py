"""The nats:// sink's spool end to end: how fast a real ``ingest listen``
takes Snort alerts while JetStream is down (into the spool, per fsync
policy), and how fast it replays them once JetStream starts; peers in the
same run: the same sender into ``--sink null:`` and into a JetStream that
is up (direct publishing).

Each run: ``ingest listen --snort SOCK --sink nats://127.0.0.1:PORT/bench
--spool-dir DIR`` with nothing on PORT; ``ingest gen --count N --rate 0``
(Snort's own non-blocking sender: a send that would block is dropped and
counted by the sender); "taken" is N alerts received and acknowledged
(spooled) per second, from the sender's start; then ``nats-server -js``
starts on PORT and "replay" is N / the time until the sink says the spool
is replayed (JetStream's start-up included).  Run:

    PYTHONPATH=. python benchmarks/bench_nats_spool.py [--count 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest.bench.nats import missing, server_binary

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, what: str, proc: subprocess.Popen, deadline: float = 300) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if proc.poll() is not None:
            raise SystemExit(f"ingest exited while waiting for {what}")
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def _taken(err: Path, n: int) -> bool:
    lines = [x for x in err.read_text(errors="replace").splitlines() if x.startswith("ingest: stats ")]
    if not lines:
        return False
    rec = re.search(r" received=(\d+)", lines[-1])
    q = re.search(r" queue=(\d+)", lines[-1])
    return bool(rec and q) and int(rec[1]) == n and int(q[1]) == 0


def one(d: Path, sink: str, count: int, fsync: str | None, server_up: bool) -> dict:
    d.mkdir()
    sock, err_path = d / "snort_alert", d / "ingest.err"
    port = _free_port()
    server = None
    exe = server_binary()
    assert exe is not None
    conf = d / "server.conf"
    conf.write_text(f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{d / "js"}" }}\n')

    def start_server() -> subprocess.Popen:
        p = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return p
            except OSError:
                time.sleep(0.02)

    if server_up:
        server = start_server()
    url = sink.replace("PORT", str(port))
    args = ["listen", "--snort", str(sock), "--sink", url, "--stats-interval", "0.05",
            "--dead-letter", str(d / "dl.bin")]
    if fsync is not None:
        args += ["--spool-dir", str(d / "spool"), "--spool-fsync", fsync]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    err = open(err_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ingest", *args], env=env, stderr=err, stdout=subprocess.DEVNULL)
    try:
        _wait(lambda: b"ingest: listening on" in err_path.read_bytes(), "start-up", proc)
        gen = subprocess.run([sys.executable, "-m", "ingest", "gen", "--to", str(sock), "--count", str(count),
                              "--rate", "0", "--json"], env=env, capture_output=True, check=True)
        t0 = time.perf_counter() - json.loads(gen.stdout)["elapsed_s"]  # the first send (not the start-up)
        sent = json.loads(gen.stdout)
        n = sent["sent"]
        _wait(lambda: _taken(err_path, n), "every alert taken", proc)
        taken = n / (time.perf_counter() - t0)
        res = {"sent": n, "sender_dropped": sent["dropped"], "taken_per_s": taken, "replay_per_s": None}
        if fsync is not None and not server_up:
            t1 = time.perf_counter()
            server = start_server()
            _wait(lambda: b"spool replayed" in err_path.read_bytes(), "the replay", proc)
            res["replay_per_s"] = n / (time.perf_counter() - t1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        final = [x for x in err_path.read_text().splitlines() if x.startswith("ingest: final stats ")]
        st = json.loads(final[-1][len("ingest: final stats "):])
        res["dropped"] = sum(st["dropped"].values())
        res["spooled_msgs"] = st.get("spool_spooled", 0)
        return res
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    why = missing()
    if why:
        print(f"skipped: {why}")
        return
    rows = [
        ("null: (peer)", "null:", None, False),
        ("nats, JetStream up", "nats://127.0.0.1:PORT/bench", None, True),
        ("nats, down, spool always", "nats://127.0.0.1:PORT/bench?connect_timeout=1", "always", False),
        ("nats, down, spool segment", "nats://127.0.0.1:PORT/bench?connect_timeout=1", "segment", False),
    ]
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.runs):  # round by round: every row sees the same machine load
            for name, sink, fsync, up in rows:
                res = one(Path(tmp) / f"{r}-{len(best)}-{name.split()[0].strip(':,')}-{fsync}", sink, a.count,
                          fsync, up)
                if name not in best or res["taken_per_s"] > best[name]["taken_per_s"]:
                    best[name] = res
    print(f"Snort alerts, {a.count:,} per run (ingest gen --rate 0), best of {a.runs}")
    print(f"{'sink':28} {'taken/s':>10} {'replay/s':>10} {'sender drop':>11} {'dropped':>8} {'spooled msgs':>12}")
    for name, *_ in rows:
        b = best[name]
        rp = f"{b['replay_per_s']:,.0f}" if b["replay_per_s"] else "-"
        print(f"{name:28} {b['taken_per_s']:>10,.0f} {rp:>10} {b['sender_dropped']:>11,} {b['dropped']:>8,} "
              f"{b['spooled_msgs']:>12,}")


if __name__ == "__main__":
    main()
