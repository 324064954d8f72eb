"""The ``nats://`` sink against a real nats-server -js: what a sensor
publishes, how a retried publish is stored once, how it fails when
JetStream is away, and that no secret of the URL is ever printed."""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import numpy as np
import pytest

from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt, ether_ipv4
from ingest.mapping import Enricher

from ..natsserver import NatsServer, need_nats, unique_prefix, wait_jetstream
from ._util import snort_send


def stream_messages(url: str, stream: str) -> list:
    """Every message of a stream, in order (subject, headers, data)."""
    import nats

    async def read():
        nc = await nats.connect(f"nats://{url}")
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = await js.get_msg(stream, seq)
            out.append((m.subject, m.headers or {}, m.data))
        await nc.close()
        return out

    return asyncio.run(read())


def dgrams(n, base=0):
    pkt = ether_ipv4("192.0.2.1", "198.51.100.7", 6, 40000, 443)
    return [encode_alertpkt("snort", msg=f"TEST {i % 3}", sid=2000000 + i % 5, priority=1 + i % 3,
                            event_id=base + i, ts_sec=1764266630 + i, packet=pkt) for i in range(n)]


def test_sensor_publishes_what_the_jsonl_sink_writes(tmp_path, run_ingest, nats_server):
    prefix = unique_prefix()
    sock, out = tmp_path / "snort_alert", tmp_path / "alerts.json"
    p = run_ingest(["listen", "--snort", str(sock), "--sink", f"jsonl:{out}",
                    "--sink", f"nats://{nats_server.url}/{prefix}?msg_bytes=4096",
                    "--stats-interval", "0"], wait_for=[sock])
    snort_send(sock, dgrams(300))
    rc, st = p.stop()
    assert rc == 0, p.stderr()
    name = f"nats://{nats_server.url}/{prefix}?msg_bytes=4096"
    assert st["dispatched"][name] == 300
    msgs = stream_messages(nats_server.url, prefix.upper())
    assert len(msgs) > 1  # 4 KiB messages: the batches were cut
    host = socket.gethostname()
    lines = []
    ids = set()
    keys = []
    for subj, h, data in msgs:
        assert subj == f"{prefix}.{host}.alert"
        assert h["Ingest-Wire"] == "1" and h["Ingest-Format"] == "ingest"
        assert int(h["Ingest-Count"]) == data.count(b"\n") and len(data) <= 4096
        assert h["Nats-Msg-Id"].startswith(host + ":")
        ids.add(h["Nats-Msg-Id"])
        keys += np.frombuffer(base64.b64decode(h["Ingest-Keys"]), "<i8").tolist()
        lines += data.splitlines()
    assert len(ids) == len(msgs)
    assert sorted(lines) == sorted(out.read_bytes().splitlines())  # the very bytes of the JSON-lines sink
    assert len(set(keys)) == 300 and 0 not in keys  # Snort alerts: a key each, assigned by the sink
    assert json.loads(lines[0])["ingest"]["source"] == "snort"


def _item(n, base=0):
    res = decode_datagrams(dgrams(n, base))
    return Enricher().apply(res.batch)


def test_a_retried_publish_is_stored_once(nats_server):
    """The messages a failed write leaves are the ones its retry sends: a
    message JetStream had stored (its PubAck lost) is a duplicate by its
    Nats-Msg-Id, and the stream holds every record once."""
    from ingest.sinks.nats import NatsSink

    prefix = unique_prefix()
    sink = NatsSink(f"nats://{nats_server.url}/{prefix}?msg_bytes=2048", sensor="s1")
    item = _item(50)

    async def go():
        import nats

        await sink.write(_item(10, 1000))  # connected, stream created
        msgs = sink._messages(item)  # what the first attempt would send ...
        nc = await nats.connect(f"nats://{nats_server.url}")
        js = nc.jetstream()
        for m in msgs[: len(msgs) // 2 + 1]:  # ... and half of it reached JetStream, its PubAcks lost
            await js.publish(m.subject, m.payload, headers=m.headers)
        await nc.close()
        dup0 = sink.duplicates
        await sink.write(item)  # the runtime's retry: the same item
        await sink.aclose()
        return len(msgs), sink.duplicates - dup0

    n, dups = asyncio.run(go())
    assert dups == n // 2 + 1
    got = stream_messages(nats_server.url, prefix.upper())
    assert sum(int(h["Ingest-Count"]) for _, h, _ in got) == 60
    assert len(got) == len({h["Nats-Msg-Id"] for _, h, _ in got})


def test_write_raises_promptly_when_jetstream_is_away_then_recovers(tmp_path):
    """The outbox's contract: a write against a dead broker raises (it does
    not wait for minutes) and acknowledges nothing; once the broker is back
    the probe says so and the same batch goes through."""
    need_nats()
    from ingest.sinks.nats import NatsSink

    server = NatsServer(tmp_path / "n")
    try:
        wait_jetstream([server.url])
        prefix = unique_prefix()
        sink = NatsSink(f"nats://{server.url}/{prefix}?ack_timeout=2", sensor="s1")
        item = _item(20)

        async def go():
            await sink.write(_item(5, 100))
            server.kill()
            for _ in range(3):
                with pytest.raises((ConnectionError, TimeoutError)):
                    await asyncio.wait_for(sink.write(item), 10)  # never the 10 s: it raises first
            assert not await sink.probe()
            server.start()
            for _ in range(200):
                if await sink.probe():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the sink never reconnected")
            for _ in range(50):  # JetStream needs a moment after a restart
                try:
                    await sink.write(item)
                    break
                except (ConnectionError, TimeoutError):
                    await asyncio.sleep(0.2)
            await sink.aclose()

        asyncio.run(go())
        wait_jetstream([server.url])
        got = stream_messages(server.url, prefix.upper())
        assert sum(int(h["Ingest-Count"]) for _, h, _ in got) == 25
    finally:
        server.stop()


def test_start_up_errors_are_one_line_without_secrets(tmp_path, run_ingest, nats_server):
    sock = tmp_path / "snort_alert"
    for url, words in (
        (f"nats://admin:s3cretpw@127.0.0.1:{_dead_port()}/ingest?connect_timeout=1", "cannot connect"),
        (f"nats://t0kens3cret@127.0.0.1:{_dead_port()}/ingest?connect_timeout=1", "cannot connect"),
        (f"nats://{nats_server.url}/bad..prefix", "subject prefix"),
        (f"nats://{nats_server.url}/ingest?nope=1", "unknown option"),
        (f"nats://{nats_server.url}/ingest?replicas=9", "replicas"),
    ):
        p = run_ingest(["listen", "--snort", str(sock), "--sink", url, "--stats-interval", "0"])
        p.proc.wait(30)
        err = p.stderr()
        assert p.proc.returncode == 2, err
        assert words in err and err.count("\n") == 1, err
        assert "s3cret" not in err
        assert not sock.exists()


def _dead_port() -> int:
    from ..natsserver import free_port

    return free_port()
