"""EVE throughput, end to end, against FEVER and the naive stdlib path.

    python benchmarks/bench_eve.py [--count 1000000] [--repeat 3] [--only stream,dgram,...]

Every run streams the same ~1.1 KB EVE alert lines (real Suricata alerts from
the shared data, else built-in ones) from a small C sender compiled here at
run time (benchmarks/eve_sender.c), into:

* ``ingest listen --eve-stream SOCK --sink null:``   (unix_stream)
* ``fever run -i SOCK -o ''``                          (FEVER, the Go peer; unix_stream)
* a stdlib ``json.loads`` line reader                  (the naive baseline)
* ``ingest listen --eve-dgram SOCK --sink null:``    (unix_dgram, sendmmsg sender)

Events/s = lines / (first byte sent -> the reader process has exited after
SIGTERM, having handled everything); the sender blocks when the reader lags
(Suricata's offline mode), so this is the reader's rate.  FEVER runs with
``--in-buffer-drop=false --in-buffer-length 1000`` so that it too blocks
instead of dropping, and so that the sender finishing means FEVER is done.
A last dgram run sends with MSG_DONTWAIT like live Suricata and reports the
share of events the sender had to drop (EAGAIN).  Best of --repeat.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = pathlib.Path(os.environ.get("INGEST_SHARED_DATA", REPO.parent / "shared" / "data")) / "eve"

NAIVE = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
n = alerts = 0
for line in c.makefile("rb"):
    obj = json.loads(line)
    n += 1
    if obj.get("event_type") == "alert":
        alerts += obj["alert"]["signature_id"] >= 0
print(n, alerts, flush=True)
"""


def corpus(tmp: pathlib.Path, which: str = "1k") -> tuple[pathlib.Path, float]:
    lines: list[bytes] = []
    names = (("zeus-suricata-7.0.7/eve.json",) if which == "zeus" else
             ("nicoaller-eve.json", "sashalarso-mssis-eve.json", "chala1899-ids-lab-eve.json"))
    lo, hi = (0, 1 << 20) if which == "zeus" else (900, 1300)
    for name in names:
        p = SHARED / name
        if p.exists():
            lines += [ln for ln in p.read_bytes().splitlines(keepends=True)
                      if b'"event_type":"alert"' in ln and lo <= len(ln) <= hi]
    if not lines:  # no shared data: a built-in alert of the same size
        pad = "x" * 700
        lines = [(
            f'{{"timestamp":"2025-01-31T11:30:18.762228+0100","flow_id":{1000 + i},"in_iface":"eth0",'
            f'"event_type":"alert","src_ip":"10.0.0.{i % 250}","src_port":49748,"dest_ip":"192.0.2.7",'
            f'"dest_port":8080,"proto":"TCP","alert":{{"action":"allowed","gid":1,'
            f'"signature_id":{2000000 + i % 37},"rev":3,"signature":"ET TEST {pad}",'
            f'"category":"A Network Trojan was detected","severity":1}},"app_proto":"tls"}}\n').encode()
            for i in range(128)]
    path = tmp / "corpus.json"
    path.write_bytes(b"".join(lines))
    return path, sum(map(len, lines)) / len(lines)


def build_sender(tmp: pathlib.Path) -> pathlib.Path:
    exe = tmp / "eve_sender"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-o", str(exe), str(HERE / "eve_sender.c")], check=True)
    return exe


def _wait_ready(proc: subprocess.Popen, path: pathlib.Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"reader did not come up: {proc.args}")
        time.sleep(0.02)


def run_reader(cmd: list[str], sock: pathlib.Path, sender: list[str], *, stop: bool = True,
               env: dict | None = None) -> dict:
    """Start a reader, feed it, stop it; seconds from first send to reader exit."""
    err = tempfile.TemporaryFile()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    _wait_ready(proc, sock)
    t0 = time.perf_counter()
    s = subprocess.run(sender, capture_output=True, text=True, check=True)
    t_sent = time.perf_counter()
    if stop:
        proc.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(proc.pid, 0)
    t1 = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    out.seek(0)
    fields = dict(kv.split("=") for kv in s.stdout.split())
    return {"seconds": t1 - t0, "sender_seconds": t_sent - t0, "cpu": ru.ru_utime + ru.ru_stime,
            "sent": int(fields["sent"]), "dropped_at_sender": int(fields["dropped"]),
            "stderr": err.read().decode(errors="replace"), "stdout": out.read().decode(errors="replace")}


def ingest_cmd(flag: str, sock: pathlib.Path, qlen: int = 0) -> list[str]:
    cmd = [sys.executable, "-m", "ingest", "listen", flag, str(sock), "--sink", "null:",
           "--dead-letter", "", "--stats-interval", "0"]
    if qlen and shutil.which("unshare"):
        # the datagram queue limit is per network namespace: raise it in a private one
        return ["unshare", "-n", "sh", "-c", f'sysctl -qw net.unix.max_dgram_qlen={qlen} && exec "$@"', "sh", *cmd]
    return cmd


def decoded(stderr: str) -> int:
    import json

    line = next(ln for ln in stderr.splitlines() if ln.startswith("ingest: final stats "))
    st = json.loads(line[len("ingest: final stats "):])
    if st["dropped"] or st["malformed"]:
        raise RuntimeError(f"ingest dropped input: {st}")
    return st["decoded"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="lines per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="stream,fever,naive,dgram,live", help="comma-separated runs")
    ap.add_argument("--live-rates", default="100000,200000",
                    help="offered events/s for the live (MSG_DONTWAIT) dgram runs")
    ap.add_argument("--corpus", choices=("1k", "zeus"), default="1k",
                    help="1k: ~1.1 KB real alerts (default); zeus: the Zeus run's ~640 B alerts")
    ap.add_argument("--qlen", type=int, default=4096,
                    help="net.unix.max_dgram_qlen for the dgram runs, set in a private network namespace "
                         "(unshare -n) so the machine's setting is untouched; 0 = use the machine's")
    ns = ap.parse_args(argv)
    only = set(ns.only.split(","))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-eve-") as td:
        tmp = pathlib.Path(td)
        path, avg = corpus(tmp, ns.corpus)
        sender = build_sender(tmp)
        fever = shutil.which("fever")
        print(f"# {ns.count} lines per run, corpus {path.stat().st_size} B, avg line {avg:.0f} B; "
              f"best of {ns.repeat}")
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
              f"Python {platform.python_version()}, FEVER {_fever_version(fever)}")
        runs = []
        if "stream" in only:
            runs.append(("ingest unix_stream", lambda s: ingest_cmd("--eve-stream", s), "stream", True))
        if "fever" in only and fever:
            runs.append(("FEVER unix_stream", lambda s: [fever, "run", "-i", str(s), "-o", "",
                                                          "--in-buffer-drop=false", "--in-buffer-length", "1000",
                                                          "--logfile", str(tmp / "fever.log")], "stream", True))
        if "naive" in only:
            runs.append(("stdlib json.loads unix_stream", lambda s: [sys.executable, "-c", NAIVE, str(s)],
                         "stream", False))
        if "dgram" in only:
            if ns.qlen:
                runs.append((f"ingest unix_dgram (qlen {ns.qlen})",
                             lambda s: ingest_cmd("--eve-dgram", s, ns.qlen), "dgram", True))
            runs.append(("ingest unix_dgram (machine qlen)", lambda s: ingest_cmd("--eve-dgram", s), "dgram", True))
        for name, cmd, kind, stop in runs:
            best = None
            for i in range(ns.repeat):
                sock = tmp / f"s{i}-{kind}.sock"
                r = run_reader(cmd(sock), sock, [str(sender), kind, str(sock), str(path), str(ns.count)],
                               stop=stop, env=env)
                if name.startswith("ingest"):
                    got = decoded(r["stderr"])
                    assert got == ns.count, (got, r["stderr"][-500:])
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            assert best is not None
            results[name] = best
            print(f"{name:32s} {ns.count / best['seconds'] / 1e3:8.0f} k events/s   "
                  f"{ns.count * avg / best['seconds'] / 1e6:6.0f} MB/s   reader CPU {best['cpu']:.2f} s")
        if "live" in only:
            machine = int(open("/proc/sys/net/unix/max_dgram_qlen").read())
            for rate in [int(x) for x in ns.live_rates.split(",") if x]:
                for qlen in sorted({ns.qlen, 0} if ns.qlen else {0}):
                    sock = tmp / f"live{qlen}-{rate}.sock"
                    r = run_reader(ingest_cmd("--eve-dgram", sock, qlen), sock,
                                   [str(sender), "dgram", str(sock), str(path), str(ns.count), "live", str(rate)],
                                   env=env)
                    got = decoded(r["stderr"])
                    pct = 100.0 * r["dropped_at_sender"] / ns.count
                    print(f"live dgram sender at {rate / 1e3:.0f} k/s, max_dgram_qlen={qlen or machine:<5} "
                          f"received {got}, Suricata-side drops (EAGAIN) {pct:.2f}%")
        if "ingest unix_stream" in results and "FEVER unix_stream" in results:
            ratio = results["FEVER unix_stream"]["seconds"] / results["ingest unix_stream"]["seconds"]
            print(f"# ingest / FEVER on unix_stream: {ratio:.2f}x")
    return 0


def _fever_version(fever: str | None) -> str:
    if not fever:
        return "not installed (apt-get install fever)"
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "fever"], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    sys.exit(main())
