"""NATS URLs (ingest.natsconn): what they may say, and that no secret of
them is ever in the name logs and stats show, nor in an error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ingest.natsconn import RECONNECT_MAX, describe_error, parse_url, reconnect_backoff


def test_servers_prefix_stream_and_defaults():
    u = parse_url("nats://a.example:4222,10.0.0.2:4223,[::1]:4224/ingest.dc1")
    assert u.servers == ("nats://a.example:4222", "nats://10.0.0.2:4223", "nats://[::1]:4224")
    assert (u.prefix, u.stream, u.subjects) == ("ingest.dc1", "INGEST_DC1", "ingest.dc1.>")
    assert (u.replicas, u.dupe_window, u.msg_bytes, u.ack_timeout, u.tls) == (1, 120.0, 256 << 10, 5.0, False)
    assert parse_url("nats://h/x").servers == ("nats://h:4222",)
    u = parse_url("nats://h:1/x?stream=S1&replicas=3&dupe_window=30&msg_bytes=65536&ack_timeout=2")
    assert (u.stream, u.replicas, u.dupe_window, u.msg_bytes, u.ack_timeout) == ("S1", 3, 30.0, 65536, 2.0)


def test_secrets_never_in_the_name(tmp_path):
    (tmp_path / "pw").write_text("filesecret\n")
    for url in ("nats://bob:hunter2@h:1/p", "nats://t0ken@h:1/p",
                f"nats://h:1/p?user_file={tmp_path / 'pw'}&password_file={tmp_path / 'pw'}",
                f"nats://h:1/p?token_file={tmp_path / 'pw'}"):
        u = parse_url(url)
        shown = u.redacted() + repr(u)
        for secret in ("hunter2", "t0ken", "filesecret", "bob", "pw"):
            assert secret not in shown, (url, shown)
        assert u.redacted().startswith("nats://h:1/p")
    u = parse_url("nats://bob:hunter2@h:1/p")
    assert (u.user, u.password) == ("bob", "hunter2")
    assert parse_url(f"nats://h:1/p?token_file={tmp_path / 'pw'}").token == "filesecret"
    assert parse_url("nats://b%40b:p%3Aw@h:1/p").password == "p:w"


def test_tls_by_scheme_or_option(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert parse_url("tls://h:1/p").tls
    assert parse_url(f"nats://h:1/p?ca={ca}").tls
    assert parse_url("tls://h:1/p").redacted() == "tls://h:1/p"


@pytest.mark.parametrize("url,words", [
    ("http://h:1/p", "nats://HOST:PORT"),
    ("nats://h:1", "prefix is missing"),
    ("nats://h:1/", "prefix is missing"),
    ("nats://h:1/a.*", "subject prefix"),
    ("nats://h:1/a..b", "subject prefix"),
    ("nats://h:x/p", "bad server"),
    ("nats://h:70000/p", "bad server"),
    ("nats://h:1/p?replicas=0", "replicas"),
    ("nats://h:1/p?dupe_window=nan", "dupe_window"),
    ("nats://h:1/p?msg_bytes=10", "msg_bytes"),
    ("nats://h:1/p?bogus=1", "unknown option"),
    ("nats://h:1/p?stream=a&stream=b", "twice"),
    ("nats://h:1/p?stream=a.b", "stream"),
    ("nats://h:1/p?creds=/nonexistent/x.creds", "no such file"),
    ("nats://h:1/p?user_file=/nonexistent/u", "user file"),
    ("nats://bob:pw@h:1/p?token_file=/dev/null", "empty"),
])
def test_bad_urls_are_refused_without_their_secrets(url, words):
    with pytest.raises(ValueError) as e:
        parse_url(url)
    assert words in str(e.value)
    assert "pw@" not in str(e.value)


def test_describe_error_drops_what_may_quote_the_url():
    assert describe_error(OSError("connection refused")) == "OSError: connection refused"
    assert describe_error(ValueError("nats://bob:hunter2@h:1 failed")) == "ValueError"
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_reconnect_backs_off_and_prefers_a_server_that_worked():
    s = [SimpleNamespace(reconnects=3), SimpleNamespace(reconnects=0), SimpleNamespace(reconnects=5)]
    assert reconnect_backoff(s, {}) == (s[1], 0.0)  # a live node of the cluster: at once
    delays = []
    for n in range(1, 12):
        best, delay = reconnect_backoff([SimpleNamespace(reconnects=n)], {})
        delays.append(delay)
    assert delays[0] < delays[3] < delays[6]  # doubling
    assert max(delays) <= RECONNECT_MAX * 1.2  # capped


def test_start_up_waits_out_a_jetstream_without_leader_but_not_other_errors(caplog):
    import asyncio

    from nats.js.errors import ServiceUnavailableError

    from ingest.natsconn import Connection

    caplog.set_level("INFO", logger="ingest")
    conn = Connection(parse_url("nats://bob:hunter2@h:1/p"), name="sink x")
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError
        if len(calls) == 2:
            raise ServiceUnavailableError()
        return "ok"

    assert asyncio.run(conn.settle(flaky)) == "ok" and len(calls) == 3
    assert caplog.text.count("JetStream not answering yet") == 2 and "hunter2" not in caplog.text

    async def refused():
        calls.append(1)
        raise ValueError("no JetStream here")

    calls.clear()
    with pytest.raises(ValueError):
        asyncio.run(conn.settle(refused))
    assert len(calls) == 1  # at once

    async def never():
        raise TimeoutError

    with pytest.raises(TimeoutError):
        asyncio.run(conn.settle(never, within=0.5))  # bounded
