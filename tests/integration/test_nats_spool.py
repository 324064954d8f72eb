"""The nats:// sink's spool (``--spool-dir``) on a real ``ingest listen``
and a real nats-server -js: JetStream down from the start, killed
mid-stream, the spool's bound reached, ingest killed -9 with a non-empty
spool (and a torn tail), an eve.json followed while JetStream is away."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import sys
import threading
import time

import pytest

from ingest import deadletter
from ingest.sinks import outbox

from ..natsserver import NatsServer, free_port, need_nats, unique_prefix, wait_jetstream
from ._nats import Proc, collector, wait_for
from ._util import snort_send, wait_until
from .test_nats_sink import dgrams, stream_messages

_SPOOL = re.compile(r" spool=(\d+)msgs/(\d+)B spooled=(\d+) replayed=(\d+)")


def stats_line(p) -> dict | None:
    """The last periodic stats line: received, queue, and the spool's numbers."""
    lines = [x for x in p.stderr().splitlines() if x.startswith("ingest: stats ")]
    if not lines:
        return None
    line = lines[-1]
    m = _SPOOL.search(line)
    assert m, line
    return {"received": int(re.search(r" received=(\d+)", line)[1]),
            "queue": int(re.search(r" queue=(\d+)", line)[1]),
            "count": int(m[1]), "bytes": int(m[2]), "spooled": int(m[3]), "replayed": int(m[4]),
            "spool_full": int((re.search(r"spool_full:(\d+)", line) or [0, 0])[1])}


def all_taken(p, n: int) -> bool:
    """Every one of n alerts was received and acknowledged (spooled, published or dropped)."""
    st = stats_line(p)
    return st is not None and st["received"] == n and st["queue"] == 0


def stream_event_ids(server: NatsServer, prefix: str) -> tuple[list[int], list]:
    """The event ids of every record in the stream, in stream order, and the messages."""
    msgs = stream_messages(server.url, prefix.upper())
    ids = [json.loads(line)["ingest"]["event_id"] for _, _, data in msgs for line in data.splitlines()]
    return ids, msgs


def stream_records(server: NatsServer, prefix: str) -> int:
    """Records in the stream (0 while JetStream or the stream is not there)."""
    import nats

    async def count() -> int:
        try:
            nc = await nats.connect(f"nats://{server.url}", connect_timeout=1, allow_reconnect=False)
        except Exception:
            return 0
        try:
            js = nc.jetstream(timeout=2)
            info = await js.stream_info(prefix.upper())
            n = 0
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                n += int((await js.get_msg(prefix.upper(), seq)).headers["Ingest-Count"])
            return n
        except Exception:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


def offsets(bm) -> list[int]:
    """The offsets an --eve-file bookmark directory holds."""
    return [int(x) for f in bm.iterdir() for x in re.findall(rb'"offset": ?(\d+)', f.read_bytes())]


def listen(run_ingest, tmp_path, url: str, *extra: str):
    sock = tmp_path / "snort_alert"
    return sock, run_ingest(["listen", "--snort", str(sock), "--sink", url, "--spool-dir", str(tmp_path / "spool"),
                             "--stats-interval", "0.1", *extra], wait_for=[sock])


def test_broker_down_from_the_start_spools_then_replays_in_order(tmp_path, run_ingest):
    need_nats()
    port, prefix = free_port(), unique_prefix()
    sock, p = listen(run_ingest, tmp_path, f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1&msg_bytes=8192")
    assert "spooling to" in p.stderr()  # a broker away at start-up is no reason not to start
    for k in range(5):
        snort_send(sock, dgrams(200, base=200 * k))
    wait_until(lambda: all_taken(p, 1000), p, "1000 alerts spooled")
    st = stats_line(p)
    assert st["count"] == st["spooled"] > 0 and st["replayed"] == 0 and st["bytes"] > 0
    spool = tmp_path / "spool"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in spool.iterdir()} == {0o600}
    server = NatsServer(tmp_path / "n", port=port)
    try:
        wait_until(lambda: "spool replayed" in p.stderr(), p, "the replay")
        rc, fin = p.stop()
        assert rc == 0, p.stderr()
        ids, msgs = stream_event_ids(server, prefix)
        assert ids == list(range(1000)), "in order, none lost, none doubled"
        assert len({h["Nats-Msg-Id"] for _, h, _ in msgs}) == len(msgs)
        assert fin["spool_count"] == 0 and fin["spool_bytes"] == 0
        assert fin["spool_replayed"] == fin["spool_spooled"] == len(msgs)
        assert fin["dropped"] == {} and fin["dispatched"] == {p.proc.args[-5]: 1000}
        assert [f.name for f in spool.iterdir()] == ["acked"]  # replayed segments are removed
    finally:
        server.stop()


def test_broker_killed_mid_stream_readers_keep_draining(tmp_path, run_ingest):
    """JetStream is killed while Snort datagrams flow, and started again
    while they still flow: 0 drops, every alert once, in order."""
    need_nats()
    server = NatsServer(tmp_path / "n")
    try:
        wait_jetstream([server.url])
        prefix = unique_prefix()
        sock, p = listen(run_ingest, tmp_path, f"nats://{server.url}/{prefix}?ack_timeout=1&msg_bytes=16384")
        killed = threading.Event()

        def send() -> None:
            for k in range(50):  # the first 1,000 as fast as the socket takes them
                snort_send(sock, dgrams(20, base=20 * k))
            killed.wait(60)
            snort_send(sock, dgrams(500, base=1000))

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_until(lambda: stream_records(server, prefix) > 0, p, "the first alerts in JetStream")
            server.kill()
        finally:
            killed.set()
            sender.join()
        wait_until(lambda: all_taken(p, 1500), p, "1500 alerts taken")
        assert stats_line(p)["spooled"] > 0
        server.start()
        snort_send(sock, dgrams(500, base=1500))  # while the spool is replayed
        wait_until(lambda: stream_records(server, prefix) >= 2000 and "spool replayed" in p.stderr(), p,
                   "2000 alerts in JetStream")
        rc, fin = p.stop()
        assert rc == 0, p.stderr()
        ids, msgs = stream_event_ids(server, prefix)
        assert ids == list(range(2000)), "in order, none lost, none doubled"
        assert fin["dropped"] == {} and fin["malformed"] == {} and fin["received"] == 2000
        assert fin["spool_count"] == 0 and fin["spool_replayed"] >= 1
    finally:
        server.stop()


def test_past_the_spool_bound_batches_are_dropped_counted_and_dead_lettered(tmp_path, run_ingest):
    need_nats()
    port, prefix = free_port(), unique_prefix()
    sock, p = listen(run_ingest, tmp_path, f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1&msg_bytes=65536",
                     "--spool-max-bytes", str(1 << 20))
    n = 0
    while not (stats_line(p) or {}).get("spool_full"):  # until the bound is reached
        snort_send(sock, dgrams(200, base=n))
        n += 200
        wait_until(lambda n=n: all_taken(p, n), p, f"{n} alerts taken")
        assert n < 20000, p.stderr()
    st = stats_line(p)
    assert 0 < st["bytes"] <= 1 << 20 and st["spool_full"] > 0
    assert "spool_full" in p.stderr()  # said, not only counted
    server = NatsServer(tmp_path / "n", port=port)
    try:
        wait_until(lambda: "spool replayed" in p.stderr(), p, "the replay")
        rc, fin = p.stop()
        assert rc == 0, p.stderr()
        ids, _ = stream_event_ids(server, prefix)
        assert ids == sorted(set(ids))
        dropped = [json.loads(line)["ingest"]["event_id"]
                   for head, raw in deadletter.read(str(tmp_path / "ingest-deadletter.bin"))
                   if head["reason"] == "spool_full" for line in raw.splitlines()]
        assert fin["dropped"] == {"spool_full": len(dropped)} and len(dropped) > 0
        assert sorted(ids + dropped) == list(range(n)), "every alert in JetStream or in the dead-letter file"
    finally:
        server.stop()


def test_kill_9_with_a_spool_and_a_torn_tail_replays_it_first(tmp_path, run_ingest):
    """ingest killed -9 with 500 alerts spooled, the newest segment ending in
    half a record (as a crash mid-write leaves it): the restart cuts the
    tail (counted), and replays the 500 before anything new."""
    need_nats()
    port, prefix = free_port(), unique_prefix()
    url = f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1&msg_bytes=8192"
    sock, p = listen(run_ingest, tmp_path, url)
    snort_send(sock, dgrams(500))
    wait_until(lambda: all_taken(p, 500), p, "500 alerts spooled")
    p.kill()
    spool = tmp_path / "spool"
    newest = sorted(f for f in spool.iterdir() if f.name.startswith("seg-"))[-1]
    torn = outbox.REC_HEAD.pack(4000, 0, 1 << 40, 10) + b"x" * 100  # a record cut by the crash
    with open(newest, "ab") as f:
        f.write(torn)
    server = NatsServer(tmp_path / "n", port=port)
    try:
        wait_jetstream([server.url])
        sock, p2 = listen(run_ingest, tmp_path, url)
        assert "1 torn tail cut" in p2.stderr() and "replaying them first" in p2.stderr()
        snort_send(sock, dgrams(300, base=500))
        wait_until(lambda: stream_records(server, prefix) >= 800, p2, "800 alerts in JetStream")
        rc, fin = p2.stop()
        assert rc == 0, p2.stderr()
        ids, msgs = stream_event_ids(server, prefix)
        assert ids == list(range(800)), "the spool first, then the new alerts; 0 lost, 0 doubled"
        assert fin["spool_cut_tails"] == 1 and fin["spool_cut_bytes"] == len(torn)
        assert fin["spool_count"] == 0
    finally:
        server.stop()


def test_an_eve_file_waits_in_its_file_while_jetstream_is_away(tmp_path, run_ingest):
    """The file is the buffer: nothing is read, the bookmark does not move and
    nothing is spooled while JetStream is away; reading resumes once it is
    back."""
    need_nats()
    from ..eve_records import ALERT

    port, prefix = free_port(), unique_prefix()
    eve, bm = tmp_path / "eve.json", tmp_path / "bm"
    bm.mkdir(mode=0o700)
    eve.write_bytes(b"".join(ALERT % (i, 1000 + i, i) + b"\n" for i in range(300)))
    p = run_ingest(["listen", "--eve-file", str(eve), "--bookmark-dir", str(bm), "--eve-file-start", "beginning",
                    "--sink", f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1",
                    "--spool-dir", str(tmp_path / "spool"), "--stats-interval", "0.1"], wait_for=[])
    wait_until(lambda: len([x for x in p.stderr().splitlines() if x.startswith("ingest: stats ")]) >= 10, p,
               "ten stats lines")
    st = stats_line(p)
    assert st["received"] == 0 and st["spooled"] == 0 and st["count"] == 0
    assert offsets(bm) in ([], [0]), "the bookmark stays at the start"
    server = NatsServer(tmp_path / "n", port=port)
    try:
        wait_until(lambda: stream_records(server, prefix) >= 300, p, "300 alerts in JetStream")
        rc, fin = p.stop()
        assert rc == 0, p.stderr()
        sids = [json.loads(line)["alert"]["signature_id"]
                for _, _, data in stream_messages(server.url, prefix.upper()) for line in data.splitlines()]
        assert sids == list(range(1000, 1300)) and fin["spool_spooled"] == 0 and fin["dropped"] == {}
        assert offsets(bm) == [eve.stat().st_size], "the bookmark moved once JetStream had them"
    finally:
        server.stop()


def test_spool_start_up_errors(tmp_path, run_ingest):
    """A spool another process holds, one open to others, or a spool without
    a nats:// sink: exit 2 with one line, nothing touched."""
    need_nats()
    port, prefix = free_port(), unique_prefix()
    url = f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1"
    sock = tmp_path / "snort_alert"
    _, p = listen(run_ingest, tmp_path, url)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    for args, words in (
        (["--sink", url, "--spool-dir", str(tmp_path / "spool")], "in use by another process"),
        (["--sink", url, "--spool-dir", str(open_dir)], "must be private"),
        (["--sink", "null:", "--spool-dir", str(tmp_path / "s2")], "serves a nats:// sink"),
    ):
        q = run_ingest(["listen", "--snort", str(sock.with_name("other")), *args, "--stats-interval", "0"])
        q.proc.wait(60)
        err = q.stderr()
        assert q.proc.returncode == 2 and words in err and err.count("\n") == 1, err
    assert sorted(f.name for f in open_dir.iterdir()) == [] and not (tmp_path / "s2").exists()
    rc, _ = p.stop()
    assert rc == 0, p.stderr()


def _rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.slow
def test_whole_jetstream_stopped_30s_while_a_sensor_receives_10k_alerts_per_s(tmp_path, nats_cluster, pg_url):
    """The issue's outage (about 90 s; marked slow, run by CI all the
    same): every node of a 3-node cluster (stream replicas 3) stopped for
    30 s while a sensor receives 10 k Snort alerts/s over its Unix socket
    (``ingest gen``, sending as Snort does: a blocking sendto per alert)
    and a collector stores into PostgreSQL; then started again.
    The sender (Snort's blocking sendto) is never held up by the outage:
    the send times gen stamps into the alerts have no gap of even a third
    of the outage (a reader that waited for JetStream would leave one of
    30 s; the margin is for a loaded machine, not a speed claim),
    the sensor's memory stays within its byte budget (VmHWM from
    /proc/PID/status against VmRSS once started: less than the queue's
    --max-queue-bytes above it), the spool drains, and PostgreSQL ends with
    every alert exactly once.  The waits are deadlines against hangs only.
    (A non-blocking sender, gen --mode dontwait, is no measure here: with
    the kernel's default net.unix.max_dgram_qlen of 10 it drops on any
    millisecond's pause of a loaded machine, outage or not.)"""
    import psycopg

    prefix = unique_prefix()
    url = f"nats://{nats_cluster.urls}/{prefix}?replicas=3&ack_timeout=2&connect_timeout=1"
    rate, outage = 10_000, 30.0
    total, budget = rate * 45, 64 << 20  # about 8 s before the outage, 30 s of it, the rest after
    sock = tmp_path / "snort_alert"
    sensor = Proc(tmp_path, "listen", "--sensor-name", "s1", "--snort", str(sock), "--sink", url,
                  "--spool-dir", str(tmp_path / "spool"), "--max-queue-bytes", str(budget),
                  "--dead-letter", str(tmp_path / "dl.bin"), "--stats-interval", "0.5", ready="ingest: listening on")
    rss0 = _rss_kib(sensor.proc.pid, "VmRSS")

    def pg(sql: str) -> tuple:
        with psycopg.connect(pg_url) as c:
            return c.execute(sql).fetchone()

    def stored() -> int:
        try:
            return pg("SELECT count(*) FROM alerts")[0]
        except psycopg.errors.UndefinedTable:
            return 0

    col = collector(tmp_path, url, "--sink", pg_url, "--dead-letter", str(tmp_path / "cdl.bin"))
    gen = subprocess.Popen([sys.executable, "-m", "ingest", "gen", "--to", str(sock), "--kind", "snort",
                            "--count", str(total), "--rate", str(rate), "--json"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: stored() > 0, "the first alerts stored", col)
    for node in nats_cluster.nodes:
        node.stop()
    down = time.monotonic()
    wait_for(lambda: (stats_line(sensor) or {}).get("spooled", 0) > 0, "the sensor spooling", sensor)
    time.sleep(max(0.0, down + outage - time.monotonic()))  # the outage's length (not an assertion)
    during = stats_line(sensor)
    for node in nats_cluster.nodes:
        node.start()
    out, err = gen.communicate(timeout=300)
    assert gen.returncode == 0, err
    sent = json.loads(out)
    assert sent["sent"] == total and sent["dropped"] == 0 and sent["errors"] == 0, sent
    wait_for(lambda: stored() >= total, "every alert in PostgreSQL", col, deadline=600)
    hwm = _rss_kib(sensor.proc.pid, "VmHWM")
    st = sensor.stop()
    fc = col.stop()
    assert during["received"] > 0 and during["spooled"] > 0, during
    assert st["dropped"] == {} and st["received"] == total and st["spool_count"] == 0, st
    assert st["spool_spooled"] > 0 and st["spool_replayed"] >= st["spool_spooled"]
    assert pg("SELECT count(*), count(DISTINCT event_id), min(event_id), max(event_id) FROM alerts") == (
        total, total, 1, total)  # gen numbers its alerts from 1
    assert pg("SELECT count(*) FROM (SELECT DISTINCT sensor, replay_key FROM alerts) k") == (total,)
    (gap_us,) = pg("SELECT max(d) FROM (SELECT ts_us - lag(ts_us) OVER (ORDER BY event_id) AS d FROM alerts) g")
    assert gap_us < outage / 3 * 1e6, f"the sender was held up {gap_us / 1e6:.1f} s"
    assert fc["nats.s1.received"] >= total and fc["nats_lag"] == 0 and fc["nats.s1.pending"] == 0, fc
    assert hwm - rss0 < budget // 1024, (rss0, hwm)  # KiB
    print(f"outage: {total} alerts, {st['spool_spooled']} messages spooled, sensor VmRSS {rss0} KiB at start, "
          f"VmHWM {hwm} KiB (budget {budget >> 10} KiB above start), longest send gap {gap_us / 1e6:.3f} s, gen {sent}")


def test_a_spooled_message_that_cannot_be_published_is_refused_counted_and_the_replay_goes_on(tmp_path, run_ingest,
                                                                                              nats_server):
    """A spool from an earlier run holding a record whose meta is not ours
    (a subject suffix that is no sensor.kind, headers that are no strings)
    and one larger than the server takes: each dropped from the spool and
    counted (spool_refused); the good ones around them are published in order."""
    import base64

    prefix = unique_prefix()
    spool = tmp_path / "spool"

    def good(i: int) -> tuple[bytes, dict]:
        line = json.dumps({"n": i}).encode() + b"\n"
        return line, {"k": "s1.alert", "h": {"Nats-Msg-Id": f"s1:test{i}", "Ingest-Wire": "1", "Ingest-Count": "1",
                                             "Ingest-Format": "ingest",
                                             "Ingest-Keys": base64.b64encode((1000 + i).to_bytes(8, "little")).decode()}}

    with outbox.Outbox(str(spool), 8 << 20) as box:
        box.append(*good(0))
        box.append(b"x\n", {"k": "s1.alert.>", "h": {}})
        box.append(*good(1))
        box.append(b"x\n", {"k": "s1.alert", "h": {"Nats-Msg-Id": 7}})
        box.append(b"x" * (2 << 20), good(9)[1])  # the server takes 1 MiB
        box.append(*good(2))
    sock = tmp_path / "snort_alert"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"nats://{nats_server.url}/{prefix}",
                    "--spool-dir", str(spool), "--stats-interval", "0"], wait_for=[sock])
    wait_until(lambda: "spool replayed" in p.stderr(), p, "the replay")
    rc, fin = p.stop()
    assert rc == 0, p.stderr()
    msgs = stream_messages(nats_server.url, prefix.upper())
    assert [(s, json.loads(d)["n"]) for s, _, d in msgs] == [(f"{prefix}.s1.alert", i) for i in range(3)]
    assert fin["spool_refused"] == 3 and fin["spool_replayed"] == 3 and fin["spool_count"] == 0
    assert "3 spooled messages cannot be published" in p.stderr()


def test_barnyard2_sync_is_acknowledged_once_the_event_is_in_the_spool(tmp_path):
    """JetStream away, a spool given: Barnyard2 (sync mode: it sends the
    next event only after our one-byte ack) is acknowledged event by event
    as each lands in the spool (synced: --spool-fsync always), never held
    up by the broker.  Proof that an ack means "on disk": kill -9 right
    after the last ack, and the spool holds every acknowledged event.  A
    restart replays the spool first; events acknowledged after it (the
    broker still away) go behind; when JetStream starts, the stream ends
    with every event once, in the order Barnyard2 sent them."""
    import socket

    from ingest.encode import encode_alertpkt, ether_ipv4

    need_nats()
    port, prefix = free_port(), unique_prefix()
    sock, spool = tmp_path / "barnyard2_alert", tmp_path / "spool"
    args = ("listen", "--sensor-name", "by2", "--barnyard2-sync", str(sock),
            "--sink", f"nats://127.0.0.1:{port}/{prefix}?connect_timeout=1", "--spool-dir", str(spool),
            "--spool-fsync", "always", "--dead-letter", str(tmp_path / "dl.bin"), "--stats-interval", "0.2")
    pkt = ether_ipv4("10.1.1.1", "10.2.2.2", 6, 1, 2)

    def barnyard2(ids: range) -> None:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(str(sock))
        c.settimeout(60)  # a deadline against a hang: the ack comes once the event is spooled
        try:
            for i in ids:
                c.send(encode_alertpkt("barnyard2", sid=700 + i % 7, msg="sync", event_id=i, packet=pkt))
                assert len(c.recv(1)) == 1, f"no ack for event {i}"
        finally:
            c.close()

    def spooled_ids() -> list[int]:
        with outbox.Outbox(str(spool), 1 << 30) as box:
            return [json.loads(line)["ingest"]["event_id"] for _, _, data in box.pending()
                    for line in bytes(data).splitlines()]

    sensor = Proc(tmp_path, *args, ready="ingest: listening on")
    assert "spooling to" in sensor.stderr()
    barnyard2(range(150))
    sensor.kill9()
    assert spooled_ids() == list(range(150)), "every acknowledged event is in the spool"

    sensor = Proc(tmp_path, *args, ready="ingest: listening on")
    assert "holds" in sensor.stderr()  # the spool an earlier run left goes first
    barnyard2(range(150, 300))
    server = NatsServer(tmp_path / "n", port=port)
    try:
        wait_for(lambda: "spool replayed" in sensor.stderr(), "the replay", sensor)
        st = sensor.stop()
        ids, msgs = stream_event_ids(server, prefix)
        assert ids == list(range(300)), "in order, none lost, none doubled"
        assert len({h["Nats-Msg-Id"] for _, h, _ in msgs}) == len(msgs)
        assert all(s == f"{prefix}.by2.alert" for s, _, _ in msgs)
        assert st["received"] == 150 and st["dropped"] == {} and st["spool_count"] == 0, st
        assert spooled_ids() == []
    finally:
        server.stop()
