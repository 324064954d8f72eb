"""The metrics endpoint of a real ``ingest listen``: real Snort datagrams and
EVE lines in, scraped with a real HTTP client (urllib, http.client over a
Unix socket), the exposition parsed with prometheus_client's own parser."""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ingest import __version__
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.native import ABI_VERSION

from ..conftest import ROOT
from ._store import eve_lines
from ._util import DEADLINE, READER_FAULT, count, snort_send, wait_until


def metrics_url(p) -> str:
    wait_until(lambda: "metrics endpoint on " in p.stderr(), p, "the metrics endpoint")
    m = re.search(r"metrics endpoint on (\S+)", p.stderr())
    assert m is not None
    return m.group(1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def one(got: dict, name: str, **labels: str) -> float:
    return got[(name, tuple(sorted(labels.items())))]


def test_counts_malformed_gaps_suricata_and_top_json(tmp_path, run_ingest):
    snort, eve, db = tmp_path / "snort_alert", tmp_path / "eve.sock", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(snort), "--eve-stream", str(eve), "--sink", f"sqlite:{db}",
                    "--metrics", "0", "--stats-interval", "0"], wait_for=[snort, eve])
    url = metrics_url(p)
    assert url.startswith("http://127.0.0.1:")
    now = int(time.time())
    # 30 alerts, event ids 1..32 without 5 and 9 (two the sender lost); sid
    # 7 from 10.1.2.3 twenty times, sid 8 from 10.9.9.9 ten times
    ids = [i for i in range(1, 33) if i not in (5, 9)]
    dgrams = []
    for k, i in enumerate(ids):
        sid, src = (7, "10.1.2.3") if k < 20 else (8, "10.9.9.9")
        dgrams.append(encode_alertpkt("snort", sid=sid, rev=3, priority=2, msg=f"SIG {sid}", event_id=i,
                                      ts_sec=now, packet=ether_ipv4(src, "192.0.2.1", sport=1000, dport=80)))
    snort_send(snort, dgrams[:10])
    snort_send(snort, [b"\x00" * 100, b"\x01" * 7])  # two datagrams of no Alertpkt length
    snort_send(snort, dgrams[10:])
    stats_event = {"event_type": "stats", "stats": {"uptime": 9, "capture": {"kernel_packets": 50,
                                                                            "kernel_drops": 4}}}
    lines = eve_lines(6) + ["{not json", json.dumps(stats_event)]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(eve))
        s.sendall(("\n".join(lines) + "\n").encode())
    wait_until(lambda: count(db) == 36, p, "36 alerts stored")

    code, text = get(url + "/metrics")
    assert code == 200
    got = samples(text)
    sn, ev = f"snort:{snort}", f"eve-stream:{eve}"
    assert one(got, "ingest_build_info", version=__version__, abi=str(ABI_VERSION)) == 1
    assert one(got, "ingest_alerts_received_total", input=sn) == 30
    assert one(got, "ingest_alerts_received_total", input=ev) == 6
    assert one(got, "ingest_records_received_total", input=sn) == 32
    assert one(got, "ingest_records_received_total", input=ev) == 14  # 6 alerts, 6 flows, 1 bad, 1 stats
    assert one(got, "ingest_malformed_total", input=sn, reason="bad_length") == 2
    eve_bad = {k: v for k, v in got.items() if k[0] == "ingest_malformed_total" and ("input", ev) in k[1]}
    assert sum(eve_bad.values()) == 1, eve_bad
    sink = next(dict(k[1])["sink"] for k in got if k[0] == "ingest_dispatched_total")
    assert one(got, "ingest_dispatched_total", sink=sink) == 36
    assert one(got, "ingest_sink_errors_total", sink=sink) == 0
    assert one(got, "ingest_event_id_gaps_total", input=sn, sensor_id="0") == 2
    assert one(got, "ingest_event_id_late_total", input=sn, sensor_id="0") == 0
    assert one(got, "ingest_suricata_counter", counter="capture.kernel_drops") == 4
    assert one(got, "ingest_readers_alive") == 2 and one(got, "ingest_readers_dead") == 0
    assert one(got, "ingest_queue_alerts") == 0
    assert one(got, "ingest_batch_size_alerts_sum") == 36
    assert one(got, "ingest_batch_size_alerts_count") >= 1
    assert one(got, "ingest_batch_size_alerts_bucket", le="+Inf") == one(got, "ingest_batch_size_alerts_count")
    # every alert had a time of its own: 30 of now, 6 of 2024 (older than an hour)
    assert one(got, "ingest_delivery_latency_seconds_count") == 36
    assert one(got, "ingest_delivery_latency_seconds_bucket", le="3600.0") == 30

    code, body = get(url + "/healthz")
    assert (code, body) == (200, "ok\n")

    code, body = get(url + "/top.json")
    assert code == 200
    top = json.loads(body)
    assert top["version"] == 1 and top["pid"] == p.proc.pid and top["window_s"] == 60
    assert top["uptime_s"] > 0 and abs(top["time"] - time.time()) < 3600 and top["sensor"]
    assert top["inputs"][sn] == {"kind": "snort", "received": 32, "decoded": 30, "malformed": {"bad_length": 2}}
    assert top["inputs"][ev]["kind"] == "eve-stream" and top["inputs"][ev]["decoded"] == 6
    assert top["sinks"] == {sink: {"dispatched": 36, "errors": 0}}
    assert top["dropped"] == {} and top["spool"] is None
    assert top["queue"]["alerts"] == 0 and top["queue"]["max_bytes"] == 512 << 20
    assert top["readers"] == {"alive": 2, "dead": 0}
    sigs = top["top_signatures"]
    assert sigs[0] == {"gid": 1, "sid": 7, "rev": 3, "msg": "SIG 7", "priority": 2, "count": 20}
    assert sigs[1] == {"gid": 1, "sid": 8, "rev": 3, "msg": "SIG 8", "priority": 2, "count": 10}
    assert len(sigs) == 8 and sum(s["count"] for s in sigs) == 36  # and the 6 EVE signatures
    talkers = {t["addr"]: t["count"] for t in top["top_talkers"]}
    assert talkers["10.1.2.3"] == 20 and talkers["10.9.9.9"] == 10 and len(talkers) == 8

    code, _ = get(url + "/nothing-here")
    assert code == 404
    rc, _st = p.stop()
    assert rc == 0, p.stderr()


def test_healthz_turns_503_while_a_sink_fails_and_back_to_200(tmp_path, run_ingest):
    """The JSON-lines file cannot grow (a real EFBIG from the kernel, the
    process's file-size limit): past HEALTH_SINK_FAILURES failed writes the
    endpoint says so, and the sink's errors are counted; when the file can
    grow again, the backlog drains and /healthz is 200 again."""
    sock, out = tmp_path / "snort_alert", tmp_path / "alerts.json"
    out.write_bytes(b'{"earlier":true}\n' * 65536)  # larger than stderr will ever grow
    out.chmod(0o640)
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}", "--metrics", "0"],
                   wait_for=[sock])
    url = metrics_url(p)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size, hard))
    snort_send(sock, [encode_alertpkt("snort", sid=1, event_id=i) for i in range(1, 6)])
    wait_until(lambda: get(url + "/healthz")[0] == 503, p, "/healthz 503")
    code, body = get(url + "/healthz")
    reasons = json.loads(body)["reasons"]
    assert code == 503 and list(reasons) == ["sinks_failing"], body
    (name, failing), = reasons["sinks_failing"].items()
    assert failing["failed_writes"] >= 3
    got = samples(get(url + "/metrics")[1])
    assert one(got, "ingest_sink_errors_total", sink=name) >= 3
    assert one(got, "ingest_sink_failing_writes", sink=name) >= 3
    assert one(got, "ingest_queue_alerts") == 5
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_until(lambda: len(out.read_bytes().splitlines()) == 65536 + 5, p, "the backlog")
    wait_until(lambda: get(url + "/healthz")[0] == 200, p, "/healthz 200 again")
    assert one(samples(get(url + "/metrics")[1]), "ingest_dispatched_total", sink=name) == 5
    rc, _ = p.stop()
    assert rc == 0, p.stderr()


# A reader thread that dies (_util.READER_FAULT: its socket fails under it);
# the process, its runtime, its endpoint and its exit status are real.
_FAULT = READER_FAULT


def test_healthz_names_a_dead_reader_while_the_process_shuts_down(tmp_path):
    """A dead reader stops the process (exit 1); for as long as its shutdown
    takes (here: a sink that cannot write holds the drain), /healthz says
    503 and names the reader."""
    snort, eve, out = tmp_path / "snort_alert", tmp_path / "eve.sock", tmp_path / "alerts.json"
    out.write_bytes(b'{"earlier":true}\n' * 65536)
    out.chmod(0o640)
    trigger, err = tmp_path / "fail-now", tmp_path / "err.txt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(err, "wb") as ef:
        proc = subprocess.Popen([sys.executable, "-c", _FAULT, str(trigger), "listen", "--snort", str(snort),
                                 "--eve-stream", str(eve), "--sink", f"jsonl:{out}", "--metrics", "0",
                                 "--drain-timeout", "60"],
                                stderr=ef, stdout=subprocess.DEVNULL, env=env, cwd=tmp_path)
        try:
            end = time.monotonic() + DEADLINE
            while b"listening on" not in err.read_bytes():
                assert proc.poll() is None and time.monotonic() < end, err.read_text()
                time.sleep(0.02)
            url = re.search(r"metrics endpoint on (\S+)", err.read_text()).group(1)  # type: ignore[union-attr]
            assert get(url + "/healthz") == (200, "ok\n")
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size, hard))
            snort_send(snort, [encode_alertpkt("snort", sid=1, event_id=1)])
            trigger.touch()  # the reader's next receive fails: it dies
            end = time.monotonic() + DEADLINE
            while True:
                code, body = get(url + "/healthz")
                if code == 503 and {"readers_dead", "stopping"} <= set(json.loads(body)["reasons"]):
                    break
                assert proc.poll() is None and time.monotonic() < end, (code, body, err.read_text())
                time.sleep(0.05)
            reasons = json.loads(body)["reasons"]
            assert list(reasons["readers_dead"]) == [f"snort:{snort}"]
            assert "Socket operation on non-socket" in reasons["readers_dead"][f"snort:{snort}"]
            assert reasons["stopping"] is True
            got = samples(get(url + "/metrics")[1])
            assert one(got, "ingest_readers_dead") == 1 and one(got, "ingest_readers_alive") == 1
            assert json.loads(get(url + "/top.json")[1])["readers"] == {"alive": 1, "dead": 1}
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
            rc = proc.wait(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert rc == 1, err.read_text()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket (what curl --unix-socket does)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def unix_get(path: str, what: str) -> tuple[int, str]:
    c = UnixHTTPConnection(path)
    try:
        c.request("GET", what)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def test_unix_socket_endpoint(tmp_path, run_ingest):
    sock, msock, db = tmp_path / "snort_alert", tmp_path / "metrics.sock", tmp_path / "a.db"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"sqlite:{db}", "--metrics", f"unix:{msock}"],
                   wait_for=[sock, msock])
    assert metrics_url(p) == f"unix:{msock}"
    assert stat.S_ISSOCK(msock.stat().st_mode) and stat.S_IMODE(msock.stat().st_mode) == 0o660
    snort_send(sock, [encode_alertpkt("snort", sid=5, event_id=i) for i in range(1, 4)])
    wait_until(lambda: count(db) == 3, p, "3 alerts")
    code, text = unix_get(str(msock), "/metrics")
    assert code == 200
    assert one(samples(text), "ingest_alerts_received_total", input=f"snort:{sock}") == 3
    assert unix_get(str(msock), "/healthz") == (200, "ok\n")
    assert json.loads(unix_get(str(msock), "/top.json")[1])["top_signatures"][0]["count"] == 3
    rc, _ = p.stop()
    assert rc == 0, p.stderr()
    assert not msock.exists()  # ours, removed on exit


def test_bad_address_and_port_in_use_are_startup_errors(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--metrics", "host:port"])
    assert p.proc.wait(timeout=DEADLINE) == 2
    assert "--metrics" in p.stderr() and "PORT" in p.stderr()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--metrics", str(port)])
        assert p.proc.wait(timeout=DEADLINE) == 2
    assert f"--metrics 127.0.0.1:{port}" in p.stderr() and "in use" in p.stderr(), p.stderr()
    assert not sock.exists()  # nothing left bound


def test_a_wider_address_is_warned_about(tmp_path, run_ingest):
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", "null:", "--metrics", "0.0.0.0:0"], wait_for=[sock])
    url = metrics_url(p)
    assert "warning: the metrics endpoint listens on 0.0.0.0:0" in p.stderr()
    assert get(url.replace("0.0.0.0", "127.0.0.1") + "/healthz") == (200, "ok\n")
    rc, _ = p.stop()
    assert rc == 0


def test_bookmark_lag_of_a_followed_file(tmp_path, run_ingest):
    """--eve-file: what is read but not acknowledged (the sink cannot
    write) is the lag; it falls to 0 once the sink has it."""
    eve, out = tmp_path / "eve.json", tmp_path / "alerts.json"
    eve.write_text("")  # filled once the sink cannot write
    out.write_bytes(b'{"earlier":true}\n' * 65536)
    out.chmod(0o640)
    p = run_ingest(["listen", "--eve-file", str(eve), "--sink", f"jsonl:{out}", "--metrics", "0",
                    "--event-types", "alert"], wait_for=[])
    url = metrics_url(p)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size, hard))
    with open(eve, "a") as f:
        f.write("\n".join(eve_lines(20)) + "\n")

    def lag() -> float | None:
        got = samples(get(url + "/metrics")[1])
        return got.get(("ingest_bookmark_lag_bytes", (("file", str(eve)), ("input", f"eve-file:{eve}"))))

    wait_until(lambda: lag() is not None, p, "a lag")
    wait_until(lambda: one(samples(get(url + "/metrics")[1]), "ingest_sink_errors_total",
                           sink=f"jsonl:{out}") >= 1, p, "a failed write")
    assert lag() == eve.stat().st_size  # nothing acknowledged
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_until(lambda: lag() == 0, p, "no lag")
    rc, _ = p.stop()
    assert rc == 0, p.stderr()


def test_collect_serves_the_same_endpoint(tmp_path, nats_server):
    """``ingest collect --metrics``: the NATS input's counts, a poison
    message by reason, the sinks, /healthz."""
    from ingest.alertpkt import decode_datagrams
    from ingest.mapping import Enricher
    from ingest.wire import Encoder

    from ..natsserver import unique_prefix
    from ._nats import collector, js_run
    from ._nats import count as nats_count
    from ._nats import wait_for as nats_wait

    prefix = unique_prefix()
    db = tmp_path / "central.db"
    c = collector(tmp_path, f"nats://{nats_server.url}/{prefix}", "--sink", f"sqlite:{db}",
                  "--dead-letter", str(tmp_path / "dl.bin"), "--metrics", "0")
    try:
        url = re.search(r"metrics endpoint on (\S+)", c.stderr()).group(1)  # type: ignore[union-attr]
        batch = Enricher().apply(decode_datagrams(
            [encode_alertpkt("snort", sid=9, event_id=i, ts_sec=int(time.time())) for i in range(1, 11)]).batch)
        msg = Encoder(prefix, "s1").encode(batch)[0]

        async def go(js):
            await js.publish(msg.subject, msg.payload, headers=msg.headers)
            await js.publish(msg.subject, b"\x00garbage\xff\n")

        js_run(nats_server.url, go)
        nats_wait(lambda: nats_count(db) >= 10, "10 alerts", c)
        top = json.loads(get(url + "/top.json")[1])
        (origin, inp), = top["inputs"].items()
        assert inp["kind"] == "nats" and inp["decoded"] == 10 and inp["malformed"] == {"not_ours": 1}
        got = samples(get(url + "/metrics")[1])
        assert one(got, "ingest_alerts_received_total", input=origin) == 10
        assert one(got, "ingest_malformed_total", input=origin, reason="not_ours") == 1
        assert one(got, "ingest_dispatched_total", sink=f"sqlite:{db}") == 10
        assert get(url + "/healthz") == (200, "ok\n")
    finally:
        c.stop()


def test_bookmark_lag_of_a_unified2_spool(tmp_path, run_ingest):
    """--unified2: the spool's bytes behind the bookmark, all of them while
    the sink cannot write, none once it has them."""
    spool, out = tmp_path / "snort.u2", tmp_path / "alerts.json"
    out.write_bytes(b'{"earlier":true}\n' * 65536)
    out.chmod(0o640)
    p = run_ingest(["listen", "--unified2", str(spool), "--sink", f"jsonl:{out}", "--metrics", "0"], wait_for=[])
    url = metrics_url(p)
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (out.stat().st_size, hard))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "ingest", "gen", "--kind", "unified2", "--to", str(spool),
                    "--count", "300", "--rotate-events", "200"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    files = sorted(tmp_path.glob("snort.u2.[0-9]*"))
    assert len(files) == 2

    def lag() -> float | None:
        got = samples(get(url + "/metrics")[1])
        return got.get(("ingest_bookmark_lag_bytes", (("file", str(spool)), ("input", f"unified2:{spool}"))))

    wait_until(lambda: one(samples(get(url + "/metrics")[1]), "ingest_sink_errors_total",
                           sink=f"jsonl:{out}") >= 1, p, "a failed write")
    assert lag() == sum(f.stat().st_size for f in files)  # nothing acknowledged
    resource.prlimit(p.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    wait_until(lambda: lag() == 0, p, "no lag")
    rc, _ = p.stop()
    assert rc == 0, p.stderr()
