"""``ingest collect`` against a real JetStream: poison messages, collectors
sharing a durable, a cluster node killed under a publishing sensor."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time

import pytest

from ingest import deadletter
from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.mapping import Enricher
from ingest.wire import Encoder

from ..natsserver import unique_prefix
from ._nats import REPO, Proc, collector, consumer_state, count, js_run, query, wait_for


def item(n, base=0):
    pkt = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443)
    d = [encode_alertpkt("snort", msg=f"TEST {i % 3}", sid=2000000 + i % 5, event_id=base + i,
                         ts_sec=1764266630 + i, packet=pkt) for i in range(n)]
    return Enricher().apply(decode_datagrams(d).batch)


def publish(servers: str, msgs: list[tuple[str, dict | None, bytes]]) -> list[int]:
    """Publish (subject, headers, payload) in order; their stream sequences."""

    async def go(js):
        return [(await js.publish(s, p, headers=h)).seq for s, h, p in msgs]

    return js_run(servers, go)


def test_poison_messages_are_dead_lettered_with_their_sequence_acked_and_counted(tmp_path, nats_server):
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}"
    enc = Encoder(prefix, "s1")
    good1, good2, good3 = (enc.encode(item(10, base))[0] for base in (0, 100, 200))
    subj = good1.subject
    lines = good3.payload.splitlines(keepends=True)
    lines[4] = b'{"timestamp": "2024-01-01T00:00:00Z", "event_type": "al\n'  # a torn line in a good message
    partial = {**good3.headers, "Nats-Msg-Id": "s1:partial"}
    msgs = [
        (subj, good1.headers, good1.payload),
        (subj, None, b"\x00garbage\xff\n"),  # no headers at all
        (subj, {**good1.headers, "Nats-Msg-Id": "s1:cut"}, good1.payload[:-30]),  # truncated JSON
        (subj, {**good1.headers, "Nats-Msg-Id": "s1:huge"}, b"x" * 300_000 + b"\n"),  # past --max-message-bytes
        (f"{prefix}.s1.nonsense", {**good1.headers, "Nats-Msg-Id": "s1:subj"}, good1.payload),  # not our scheme
        (subj, {**good1.headers, "Ingest-Wire": "7", "Nats-Msg-Id": "s1:v7"}, good1.payload),  # another version
        (subj, partial, b"".join(lines)),
        (subj, good2.headers, good2.payload),
    ]
    dl = tmp_path / "dl.bin"
    db = tmp_path / "central.db"
    c = collector(tmp_path, url, "--sink", f"sqlite:{db}", "--dead-letter", str(dl),
                  "--max-message-bytes", "100000")  # it creates the stream
    seqs = publish(nats_server.url, msgs)
    wait_for(lambda: count(db) >= 29, "the good records", c)
    wait_for(lambda: consumer_state(nats_server.url, prefix.upper(), "central") == (0, 0), "every ack", c)
    st = c.stop()
    assert count(db) == 29
    assert sorted(r[0] for r in query(db, "SELECT event_id FROM alerts")) == [
        *range(10), *range(100, 110), *(e for e in range(200, 210) if e != 204)]
    entries = list(deadletter.read(dl))
    got = [(h["seq"], h["reason"]) for h, _ in entries]
    assert got == [(seqs[1], "not_ours"), (seqs[2], "truncated"), (seqs[3], "oversized"),
                   (seqs[4], "not_ours"), (seqs[5], "unknown_version"), (seqs[6], "invalid_json")]
    assert all(h["stream"] == prefix.upper() for h, _ in entries)
    assert entries[0][1] == b"\x00garbage\xff\n" and entries[5][1] == lines[4].rstrip(b"\n")
    assert st["malformed"] == {"not_ours": 2, "truncated": 1, "oversized": 1, "unknown_version": 1,
                               "invalid_json": 1}
    assert st["nats.s1.received"] == 30 and st["nats_pending"] == 0
    # acknowledged: a collector started again gets nothing more
    c = collector(tmp_path, url, "--sink", f"sqlite:{db}", "--dead-letter", str(dl))
    time.sleep(1.5)
    st = c.stop()
    assert st["received"] == 0 and len(list(deadletter.read(dl))) == len(entries)


def test_collectors_with_one_durable_share_the_work(tmp_path, nats_server):
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}"
    dbs = [tmp_path / "a.db", tmp_path / "b.db"]
    cs = [collector(tmp_path, url, "--sink", f"sqlite:{db}", "--fetch", "1", "--dead-letter", "")
          for db in dbs]
    enc = Encoder(prefix, "s1", msg_bytes=2048)
    msgs = [m for k in range(20) for m in enc.encode(item(25, 1000 * k))]
    publish(nats_server.url, [(m.subject, m.headers, m.payload) for m in msgs])
    wait_for(lambda: sum(count(db) for db in dbs) >= 500, "every record")
    for c in cs:
        c.stop()
    per = [count(db) for db in dbs]
    assert sum(per) == 500 and min(per) > 0, per  # each took a share, none twice
    keys = [k for db in dbs for (k,) in query(db, "SELECT replay_key FROM alerts")]
    assert len(set(keys)) == 500


@pytest.mark.slow
def test_a_cluster_node_killed_mid_stream_loses_and_doubles_nothing(tmp_path, nats_cluster):
    """Stream replicas 3; the node leading the stream is killed while a
    sensor publishes 5 k alerts/s: publishing goes on, and the collector
    (started afterwards, on the two nodes left) stores every alert once."""
    prefix = unique_prefix()
    url = f"nats://{nats_cluster.urls}/{prefix}?replicas=3&ack_timeout=2"
    sock = tmp_path / "snort_alert"
    sensor = Proc(tmp_path, "listen", "--snort", str(sock), "--sink", f"sqlite:{tmp_path / 'sensor.db'}",
                  "--sink", url, "--stats-interval", "1", "--dead-letter", str(tmp_path / "sdl.bin"),
                  ready="ingest: listening on")
    total = 25_000
    gen_err = open(tmp_path / "gen.err", "wb")
    gen = subprocess.Popen([sys.executable, "-m", "ingest", "gen", "--to", str(sock), "--kind", "snort",
                            "--count", str(total), "--rate", "5000"], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=gen_err)
    wait_for(lambda: count(tmp_path / "sensor.db") > 5000, "the stream under way", sensor)

    async def leader(js):
        return (await js.stream_info(prefix.upper())).cluster.leader

    name = js_run(nats_cluster.urls, leader)
    victim = next(n for n in nats_cluster.nodes if n.name == name)
    victim.kill()
    rc = gen.wait(timeout=120)
    gen_err.close()
    assert rc == 0, (tmp_path / "gen.err").read_text()
    wait_for(lambda: count(tmp_path / "sensor.db") >= total, "the sensor's store", sensor)
    st = sensor.stop()
    assert st["dispatched"][url.replace("nats://", "nats://", 1)] == total, st  # every batch had its PubAcks
    assert st["dropped"] == {}
    alive = ",".join(n.url for n in nats_cluster.nodes if n is not victim)
    db = tmp_path / "central.db"
    c = collector(tmp_path, f"nats://{alive}/{prefix}", "--sink", f"sqlite:{db}")
    wait_for(lambda: count(db) >= total, "every alert at the collector", c)
    time.sleep(0.5)
    c.stop()
    assert count(db) == total
    assert count(db, "SELECT count(DISTINCT replay_key) FROM alerts") == total


def test_a_message_the_decoder_fails_on_is_dead_lettered_acked_and_counted(tmp_path, nats_server):
    """Defence in depth: were the wire decoder to raise on some message (a
    defect), that message alone is dead-lettered with its sequence, acked
    and counted; the collector's fetch loop is not killed by it.  (The
    decoder's failure is injected: what is tested is the collector's
    handling, against a real JetStream.)"""
    import asyncio

    from ingest.natsconn import parse_url
    from ingest.sources.nats import NatsSource
    from ingest.stats import Stats

    prefix = unique_prefix()
    url = parse_url(f"nats://{nats_server.url}/{prefix}")
    msg = Encoder(prefix, "s1").encode(item(3))[0]
    dl = tmp_path / "dl.bin"

    async def go():
        src = NatsSource(url, "central")
        await src.conn.connect()
        psub = await src.subscribe(src.conn)
        ack = await src.conn.js.publish(msg.subject, msg.payload, headers=msg.headers)
        (got,) = await psub.fetch(1, timeout=5)
        src.stats, src.deadletter = Stats(), deadletter.DeadLetter(str(dl))
        src.submit = object()  # never reached: nothing of the message is queued

        def broken(*a):
            raise RuntimeError("decoder defect")

        src.decoder.decode_group = broken
        await src._handle(got)
        for _ in range(200):  # JetStream applies the ack a moment after it arrives
            ci = await src.conn.js.consumer_info(url.stream, "central")
            if ci.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        await src.conn.close()
        return ack.seq, src.stats.snapshot(), ci.num_ack_pending, ci.num_pending

    seq, st, ack_pending, pending = asyncio.run(go())
    assert st["malformed"] == {"undecodable": 1}
    assert (ack_pending, pending) == (0, 0)
    ((h, raw),) = list(deadletter.read(dl))
    assert (h["seq"], h["reason"], raw) == (seq, "undecodable", msg.payload)
    assert "RuntimeError" in h.get("detail", "")


_NATS_LINE = re.compile(r" nats_lag=(\d+) nats_pending=(\d+) nats_ack_pending=(\d+) nats_delivered=(\d+)/(\d+)"
                        r"(?: sensors=(\S+))?")


def nats_stats(c: Proc) -> dict | None:
    """The collector's last periodic stats line: JetStream's numbers for the
    durable and per sensor (records, messages, pending, age)."""
    lines = [x for x in c.stderr().splitlines() if x.startswith("ingest: stats ") and " nats_lag=" in x]
    if not lines:
        return None
    m = _NATS_LINE.search(lines[-1])
    assert m, lines[-1]
    sensors = {}
    for part in (m[6] or "").split(","):
        if part:
            name, _, rest = part.rpartition(":")
            rec, msgs, pending, age = rest.split("/")
            sensors[name] = {"received": int(rec), "messages": int(msgs), "pending": int(pending)}
    return {"lag": int(m[1]), "pending": int(m[2]), "ack_pending": int(m[3]), "delivered": int(m[4]),
            "last": int(m[5]), "sensors": sensors}


def test_stats_per_sensor_and_the_lag_jetstream_reports(tmp_path, nats_server):
    """Two sensors publish; collector B (same durable) is stuck at its store
    (locked) holding messages it fetched, so JetStream reports them
    unacknowledged: collector A, which drains the rest, shows a lag > 0 and
    which sensors it is for, until B's store is released; then lag 0.  The
    records per sensor of A and B add up to what each sensor published."""
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}"
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    b = collector(tmp_path, url, "--sink", f"sqlite:{b_db}", "--fetch", "1", "--max-queue", "1",
                  "--dead-letter", "")
    lock = sqlite3.connect(b_db, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        published = {"s1": 8, "s2.lab": 5}  # messages of 25 records each
        msgs = []
        for k in range(8):
            for i, sensor in enumerate(published):
                if k < published[sensor]:
                    msgs += Encoder(prefix, sensor).encode(item(25, 100_000 * i + 1000 * k))
        assert len(msgs) == 13
        publish(nats_server.url, [(m.subject, m.headers, m.payload) for m in msgs])
        wait_for(lambda: sum(s["received"] for s in (nats_stats(b) or {"sensors": {}})["sensors"].values()) > 0,
                 "B holding messages", b)
        a = collector(tmp_path, url, "--sink", f"sqlite:{a_db}", "--dead-letter", "")
        wait_for(lambda: (nats_stats(a) or {}).get("pending") == 0 and nats_stats(a)["delivered"] == 13
                 and len(nats_stats(a)["sensors"]) == 2, "A having everything B does not hold", a)
        st = nats_stats(a)
        assert st["last"] == 13 and st["ack_pending"] > 0 and st["lag"] == st["ack_pending"], st
        held = sum(s["pending"] for s in st["sensors"].values())
        assert held >= st["ack_pending"], st  # past the ack floor: what B holds, and what A stored after it
    finally:
        lock.rollback()
        lock.close()
    wait_for(lambda: (nats_stats(a) or {}).get("lag") == 0
             and all(s["pending"] == 0 for s in nats_stats(a)["sensors"].values()), "the lag back to 0", a)
    wait_for(lambda: count(a_db) + count(b_db) >= 325, "every record stored")
    fa, fb = a.stop(), b.stop()
    for sensor, n in published.items():
        got = [f.get(f"nats.{sensor}.received", 0) for f in (fa, fb)]
        assert sum(got) == 25 * n, (sensor, got)
        assert fa.get(f"nats.{sensor}.messages", 0) + fb.get(f"nats.{sensor}.messages", 0) == n
        assert fa[f"nats.{sensor}.pending"] == 0
    assert fa["nats_lag"] == fa["nats_pending"] == fa["nats_ack_pending"] == 0
    assert fa["nats_delivered"] == fa["nats_last_seq"] == fa["nats_ack_floor"] == 13
    assert fb.get("nats.s1.received", 0) + fb.get("nats.s2.lab.received", 0) > 0  # B stored what it held
    keys = [k for db in (a_db, b_db) for (k,) in query(db, "SELECT replay_key FROM alerts")]
    assert len(keys) == len(set(keys)) == 325


def test_per_sensor_pending_is_asked_of_jetstream_for_a_few_sensors_per_poll_in_turn(nats_server, monkeypatch):
    """The per-sensor counts cost JetStream one short-lived consumer each:
    a poll asks for at most PENDING_PER_POLL sensors, the next ones on the
    next poll, and leaves no consumer behind but the durable."""
    import asyncio

    from ingest.natsconn import parse_url
    from ingest.sources import nats as source
    from ingest.stats import Stats

    monkeypatch.setattr(source, "PENDING_PER_POLL", 2)
    prefix = unique_prefix()
    url = parse_url(f"nats://{nats_server.url}/{prefix}")
    names = ["a", "b", "c"]  # 1, 2 and 3 messages, none delivered yet

    async def go():
        src = source.NatsSource(url, "central")
        src.stats = Stats()
        await src.conn.connect()
        try:
            await src.subscribe(src.conn)
            for k, name in enumerate(names):
                for j in range(k + 1):
                    for m in Encoder(prefix, name).encode(item(3, 1000 * k + 10 * j)):
                        await src.conn.js.publish(m.subject, m.payload, headers=m.headers)
            seen = []
            for _ in range(3):
                await src.poll()
                seen.append([src.stats.extra.get(f"nats.{n}.pending") for n in names])
            consumers = [c.name for c in await src.conn.js.consumers_info(url.stream)]
            return seen, src.stats.snapshot(), consumers
        finally:
            await src.conn.close()

    seen, st, consumers = asyncio.run(go())
    assert seen == [[1, 2, None], [1, 2, 3], [1, 2, 3]]
    assert (st["nats_pending"], st["nats_ack_pending"], st["nats_lag"], st["nats_last_seq"]) == (6, 0, 6, 6)
    assert consumers == ["central"]
