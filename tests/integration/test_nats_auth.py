"""Credentials and TLS for NATS, against real servers that demand them:
user/password (in the URL or from files), a token, an nkey seed file, TLS
with a private CA and mutual TLS; a wrong secret is a start-up error that
never shows the secret, and no log or stats line of a working sensor or
collector shows it either."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from ingest.alertpkt import decode_datagrams
from ingest.encode import encode_alertpkt
from ingest.mapping import Enricher

from ..natsserver import NatsServer, need_nats, unique_prefix, wait_jetstream
from ._nats import Proc, collector, count, wait_for

SECRET = "s3cr3t-Pa55"


def _item():
    return Enricher().apply(decode_datagrams([encode_alertpkt("snort", msg="x", sid=i, event_id=i)
                                              for i in range(1, 6)]).batch)


def _publish(url: str) -> None:
    from ingest.sinks.nats import NatsSink

    sink = NatsSink(url, sensor="s1")

    async def go():
        await sink.write(_item())
        await sink.aclose()

    asyncio.run(go())
    assert sink.published >= 1


def _refused(url: str) -> str:
    from ingest.sinks.nats import NatsSink

    with pytest.raises(ValueError) as e:
        NatsSink(url, sensor="s1")
    return str(e.value)


@pytest.fixture
def server(tmp_path):
    need_nats()
    made: list[NatsServer] = []

    def start(extra: str) -> NatsServer:
        s = NatsServer(tmp_path / f"n{len(made)}", extra=extra)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


def test_user_and_password_by_url_and_by_file(tmp_path, server):
    s = server(f'authorization {{ user: ingest, password: "{SECRET}" }}')
    prefix = unique_prefix()
    _publish(f"nats://ingest:{SECRET}@{s.url}/{prefix}")
    (tmp_path / "user").write_text("ingest\n")
    (tmp_path / "pw").write_text(SECRET + "\n")
    _publish(f"nats://{s.url}/{prefix}?user_file={tmp_path / 'user'}&password_file={tmp_path / 'pw'}")
    err = _refused(f"nats://ingest:wrong{SECRET}@{s.url}/{prefix}?connect_timeout=2")
    assert "cannot connect" in err and SECRET not in err and "wrong" not in err
    err = _refused(f"nats://{s.url}/{prefix}?connect_timeout=2")  # none given
    assert "cannot connect" in err


def test_token(tmp_path, server):
    s = server(f'authorization {{ token: "{SECRET}" }}')
    prefix = unique_prefix()
    _publish(f"nats://{SECRET}@{s.url}/{prefix}")
    (tmp_path / "tok").write_text(SECRET)
    _publish(f"nats://{s.url}/{prefix}?token_file={tmp_path / 'tok'}")
    err = _refused(f"nats://nope{SECRET}@{s.url}/{prefix}?connect_timeout=2")
    assert SECRET not in err


def test_nkey_seed_file(tmp_path, server):
    nkeys = pytest.importorskip("nkeys")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    s = server(f"authorization {{ users: [ {{ nkey: {public} }} ] }}")
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    os.chmod(tmp_path / "user.nk", 0o600)
    _publish(f"nats://{s.url}/{unique_prefix()}?nkey={tmp_path / 'user.nk'}")


def _certs(d):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ingest test CA")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext")


def test_tls_and_mutual_tls(tmp_path, server):
    _certs(tmp_path)
    s = server(f'tls {{ cert_file: "{tmp_path / "server.pem"}", key_file: "{tmp_path / "server.key"}" }}')
    prefix = unique_prefix()
    _publish(f"tls://{s.url}/{prefix}?ca={tmp_path / 'ca.pem'}")
    err = _refused(f"tls://{s.url}/{prefix}?connect_timeout=2")  # the system CAs do not know ours
    assert "cannot connect" in err
    m = server(f'tls {{ cert_file: "{tmp_path / "server.pem"}", key_file: "{tmp_path / "server.key"}", '
               f'ca_file: "{tmp_path / "ca.pem"}", verify: true }}')
    _publish(f"tls://{m.url}/{prefix}?ca={tmp_path / 'ca.pem'}&cert={tmp_path / 'client.pem'}"
             f"&key={tmp_path / 'client.key'}")
    err = _refused(f"tls://{m.url}/{prefix}?ca={tmp_path / 'ca.pem'}&connect_timeout=2")  # no client cert
    assert "cannot connect" in err


def test_sensor_and_collector_never_print_the_secret(tmp_path, server):
    s = server(f'authorization {{ user: ingest, password: "{SECRET}" }}')
    wait_jetstream([f"ingest:{SECRET}@{s.url}"])
    prefix = unique_prefix()
    url = f"nats://ingest:{SECRET}@{s.url}/{prefix}"
    sock = tmp_path / "snort_alert"
    sensor = Proc(tmp_path, "listen", "--snort", str(sock), "--sink", url, "--stats-interval", "0.2",
                  ready="ingest: listening on")
    import socket as so

    c = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
    for i in range(1, 51):
        c.sendto(encode_alertpkt("snort", msg="x", sid=i, event_id=i), str(sock))
    c.close()
    db = tmp_path / "central.db"
    coll = collector(tmp_path, url, "--sink", f"sqlite:{db}")
    wait_for(lambda: count(db) >= 50, "the alerts at the collector", coll)
    st1, st2 = sensor.stop(), coll.stop()
    text = sensor.stderr() + coll.stderr() + repr(st1) + repr(st2)
    assert SECRET not in text and "ingest:" + SECRET not in text
    assert f"nats://{s.url}/{prefix}" in text  # named, without its user info
