"""NATS URLs, connections and the JetStream stream, shared by the sensor's
``nats://`` sink and the collector (``ingest collect``).

``nats://[USER:PASSWORD@|TOKEN@]HOST:PORT[,HOST:PORT...]/SUBJECT_PREFIX[?OPTIONS]``
(``tls://`` for TLS).  Options:

========================  ======================================================
``stream=NAME``           JetStream stream (default: the prefix in capitals,
                          dots as ``_``: ``ingest`` -> ``INGEST``)
``replicas=N``            stream replicas when ingest creates it (1..5, default 1)
``dupe_window=SECONDS``   JetStream's duplicate window (default 120)
``max_age=SECONDS``       stream limit (default 0: none)
``max_bytes=BYTES``       stream limit (default -1: none)
``msg_bytes=BYTES``       sink: most payload bytes per message (default 256 KiB)
``ack_timeout=SECONDS``   sink: how long a batch waits for its PubAcks (default 5)
``connect_timeout=S``     how long a connection attempt may take (default 5)
``user_file=``,           the user name / password / token read from a file
``password_file=``,       (the first line), so that no secret is on a command
``token_file=FILE``       line (``ps``) or in a configuration file
``creds=FILE``            a NATS credentials file (JWT + nkey seed)
``nkey=FILE``             a file holding an nkey seed (``SU...``)
``tls=1``                 TLS (implied by ``tls://`` and by the next three)
``ca=FILE``               CA bundle to verify the server with
``cert=FILE&key=FILE``    client certificate and key (mutual TLS)
``tls_hostname=NAME``     the name to verify the server's certificate against
========================  ======================================================

Secrets (a URL's user info, the password, the token) are never printed: the
name shown in logs and stats is :meth:`NatsURL.redacted`, and the errors of
the NATS client are reduced to their class and text.  The stream is created
with file storage when it does not exist; an existing stream is used as it
is, provided it takes ``PREFIX.>``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from .ops.logs import at
from .wire import check_prefix

_log = logging.getLogger(__name__)

T = TypeVar("T")

_OPTIONS = {"stream", "replicas", "dupe_window", "max_age", "max_bytes", "msg_bytes", "ack_timeout",
            "connect_timeout", "user_file", "password_file", "token_file", "creds", "nkey", "tls", "ca",
            "cert", "key", "tls_hostname"}


@dataclass(frozen=True)
class NatsURL:
    """A parsed ``nats://`` URL (see the module doc)."""

    servers: tuple[str, ...]  # nats://host:port, without credentials
    prefix: str
    stream: str
    replicas: int = 1
    dupe_window: float = 120.0
    max_age: float = 0.0
    max_bytes: int = -1
    msg_bytes: int = 256 << 10
    ack_timeout: float = 5.0
    connect_timeout: float = 5.0
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    nkey: str | None = None
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    tls_hostname: str | None = None
    #: the options as given, secrets left out (for the redacted name)
    shown: tuple[tuple[str, str], ...] = ()

    def redacted(self) -> str:
        """The URL without any secret: what logs and stats show."""
        scheme = "tls" if self.tls else "nats"
        hosts = ",".join(s.split("://", 1)[1] for s in self.servers)
        query = "&".join(f"{k}={v}" for k, v in self.shown)
        return f"{scheme}://{hosts}/{self.prefix}" + (f"?{query}" if query else "")

    @property
    def subjects(self) -> str:
        return f"{self.prefix}.>"


def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.readline().strip()
    except OSError as e:
        raise ValueError(f"NATS {what} file {path}: {e.strerror or e}") from None
    except UnicodeError:
        raise ValueError(f"NATS {what} file {path}: not UTF-8 text") from None
    if not text:
        raise ValueError(f"NATS {what} file {path} is empty")
    return text


def _number(key: str, text: str, lo: float, hi: float, integer: bool = False) -> Any:
    try:
        v: float = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"NATS URL option {key}={text!r}: expected a number") from None
    if not (lo <= v <= hi) or (not integer and not math.isfinite(v)):
        raise ValueError(f"NATS URL option {key}={text!r}: must be between {lo:g} and {hi:g}")
    return v


def parse_url(url: str) -> NatsURL:
    """Parse and check a ``nats://`` / ``tls://`` URL (ValueError, never
    naming a secret)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("nats", "tls"):
        raise ValueError("a NATS URL is nats://HOST:PORT[,HOST:PORT...]/SUBJECT_PREFIX[?OPTIONS] (or tls://...)")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if not slash or not path:
        raise ValueError("NATS URL: the subject prefix is missing (nats://HOST:PORT/PREFIX)")
    prefix = check_prefix(path)
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        hostlist, userinfo = netloc, ""
    servers = []
    for hp in hostlist.split(","):
        host, colon, port = hp.rpartition(":")
        if not colon:
            host, port = hp, "4222"
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "/@?#"):
            raise ValueError(f"NATS URL: bad server {hp!r} (expected HOST:PORT)")
        shown_host = f"[{host}]" if ":" in host else host
        servers.append(f"nats://{shown_host}:{int(port)}")
    opts: dict[str, Any] = {}
    shown: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in _OPTIONS:
            raise ValueError(f"NATS URL: unknown option {key!r} (known: {', '.join(sorted(_OPTIONS))})")
        if key in opts:
            raise ValueError(f"NATS URL: option {key!r} given twice")
        opts[key] = value
        if key not in ("user_file", "password_file", "token_file"):
            shown.append((key, value))
    user = password = token = None
    if userinfo:
        name, colon, pw = userinfo.partition(":")
        if colon:
            user, password = unquote(name), unquote(pw)
        else:
            token = unquote(name)
    if "user_file" in opts:
        user = _read_secret(opts["user_file"], "user")
    if "password_file" in opts:
        password = _read_secret(opts["password_file"], "password")
    if "token_file" in opts:
        token = _read_secret(opts["token_file"], "token")
    if (user is None) != (password is None):
        raise ValueError("NATS URL: a user needs a password and a password a user")
    if token is not None and user is not None:
        raise ValueError("NATS URL: give a token or a user and password, not both")
    for key in ("creds", "nkey", "ca", "cert", "key"):
        if key in opts and not os.path.isfile(opts[key]):
            raise ValueError(f"NATS URL option {key}={opts[key]}: no such file")
    if "creds" in opts and "nkey" in opts:
        raise ValueError("NATS URL: give creds= or nkey=, not both")
    if ("cert" in opts) != ("key" in opts):
        raise ValueError("NATS URL: cert= and key= go together")
    tls = scheme == "tls" or opts.get("tls", "0") not in ("0", "", "false") or any(
        k in opts for k in ("ca", "cert", "tls_hostname"))
    stream = opts.get("stream") or prefix.upper().replace(".", "_").replace("-", "_")
    if not stream.replace("_", "").replace("-", "").isalnum() or len(stream) > 64:
        raise ValueError(f"NATS URL option stream={stream!r}: letters, digits, '-' and '_' only")
    return NatsURL(
        servers=tuple(servers), prefix=prefix, stream=stream,
        replicas=_number("replicas", opts.get("replicas", "1"), 1, 5, True),
        dupe_window=_number("dupe_window", opts.get("dupe_window", "120"), 0.1, 86400 * 7),
        max_age=_number("max_age", opts.get("max_age", "0"), 0, 1e10),
        max_bytes=_number("max_bytes", opts.get("max_bytes", "-1"), -1, 1 << 60, True),
        msg_bytes=_number("msg_bytes", opts.get("msg_bytes", str(256 << 10)), 1024, 64 << 20, True),
        ack_timeout=_number("ack_timeout", opts.get("ack_timeout", "5"), 0.1, 600),
        connect_timeout=_number("connect_timeout", opts.get("connect_timeout", "5"), 0.1, 600),
        user=user, password=password, token=token, creds=opts.get("creds"), nkey=opts.get("nkey"),
        tls=tls, ca=opts.get("ca"), cert=opts.get("cert"), key=opts.get("key"),
        tls_hostname=opts.get("tls_hostname"), shown=tuple(shown),
    )


def describe_error(e: BaseException) -> str:
    """One line about a NATS client error, without anything it may quote
    from the URL (nats-py puts the server URL, with its user info, in some)."""
    text = str(e) or type(e).__name__
    for word in ("@", "://"):
        if word in text:
            text = type(e).__name__
            break
    return text if text == type(e).__name__ else f"{type(e).__name__}: {text}"


def _ssl_context(u: NatsURL) -> ssl.SSLContext | None:
    if not u.tls:
        return None
    ctx = ssl.create_default_context(cafile=u.ca)
    if u.cert:
        ctx.load_cert_chain(u.cert, u.key)
    return ctx


#: how long start-up waits for a JetStream that does not answer yet (a
#: cluster without a leader for a moment) before it gives up (exit 2)
STARTUP_WAIT = 30.0

#: reconnect back-off: the first retry of a server, doubling up to the cap
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 5.0


def reconnect_backoff(servers: list, _info: dict) -> tuple[Any, float]:
    """nats-py's reconnect_to_server_handler: the server tried the fewest
    times since it last worked (any node of a cluster that is up is taken at
    once), after a delay that doubles with that count (0.1 s up to 5 s, with
    jitter), so a broker that is down is not hammered and one that comes
    back is found within seconds."""
    best = min(servers, key=lambda s: s.reconnects)
    n = best.reconnects
    if n == 0:
        return best, 0.0
    return best, min(RECONNECT_MAX, RECONNECT_FIRST * 2 ** (n - 1)) * random.uniform(0.8, 1.2)


class Connection:
    """One NATS connection (nats-py, on the running loop), reconnecting
    forever once established, with back-off (:func:`reconnect_backoff`); the
    first connection attempt is bounded by ``connect_timeout``.  Disconnects
    and reconnects are logged as one line each, without secrets."""

    def __init__(self, url: NatsURL, *, name: str, origin: str | None = None, sink: str | None = None) -> None:
        self.url = url
        self.name = name
        #: what the log records are about: the collector's input, or a sink
        self._about = at(origin) if sink is None else at(origin, sink=sink)
        self.nc: Any = None
        self.js: Any = None
        self._said_down = False

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (its max_payload)."""
        return int(getattr(self.nc, "max_payload", 0) or (1 << 20))

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _error(self, e: Exception) -> None:
        if not self._said_down:
            self._said_down = True
            _log.info(f"{self.name}: {self.url.redacted()}: {describe_error(e)}", extra=self._about)

    async def _disconnected(self) -> None:
        if not self._said_down and self.nc is not None and not self.nc.is_closed:
            self._said_down = True
            _log.info(f"{self.name}: disconnected from {self.url.redacted()}; reconnecting", extra=self._about)

    async def _reconnected(self) -> None:
        self._said_down = False
        _log.info(f"{self.name}: reconnected to {self.url.redacted()}", extra=self._about)

    async def connect(self) -> None:
        """Connect (or raise ConnectionError within connect_timeout)."""
        import nats

        u = self.url
        kw: dict[str, Any] = {
            "servers": list(u.servers), "name": f"ingest {self.name}", "connect_timeout": max(1, int(u.connect_timeout)),
            "allow_reconnect": True, "max_reconnect_attempts": -1, "reconnect_time_wait": 1,
            "error_cb": self._error, "disconnected_cb": self._disconnected, "reconnected_cb": self._reconnected,
            # a batch of messages must fit while reconnecting; past it publish raises (the batch is retried)
            "pending_size": 64 << 20,
        }
        if u.user is not None:
            kw["user"], kw["password"] = u.user, u.password
        if u.token is not None:
            kw["token"] = u.token
        if u.creds:
            kw["user_credentials"] = u.creds
        if u.nkey:
            kw["nkeys_seed"] = u.nkey
        ctx = _ssl_context(u)
        if ctx is not None:
            kw["tls"] = ctx
            if u.tls_hostname:
                kw["tls_hostname"] = u.tls_hostname
        nc = nats.NATS()
        if "reconnect_to_server_handler" in inspect.signature(nc.connect).parameters:
            kw["reconnect_to_server_handler"] = reconnect_backoff  # recent nats-py (2.16 has it); older: every second
        self._said_down = True  # the first failure is reported by the caller's error
        try:
            await asyncio.wait_for(nc.connect(**kw), u.connect_timeout)
        except BaseException as e:
            try:
                await nc.close()
            except Exception:
                pass
            if isinstance(e, asyncio.CancelledError):
                raise
            if isinstance(e, TimeoutError):
                err = nc.last_error
                why = describe_error(err) if err is not None else "no answer"
                raise ConnectionError(f"cannot connect to {u.redacted()} within {u.connect_timeout:g} s ({why})") from None
            raise ConnectionError(f"cannot connect to {u.redacted()}: {describe_error(e)}") from None
        self._said_down = False
        self.nc = nc
        self.js = nc.jetstream(timeout=u.ack_timeout)

    async def settle(self, fn: Callable[[], Awaitable[T]], *, within: float = STARTUP_WAIT) -> T:
        """``await fn()`` (JetStream API calls at start-up), again while
        JetStream does not answer in time or says it is temporarily
        unavailable (a cluster electing a leader after losing a node, or
        just started), for up to ``within`` seconds; then the last error.
        Anything else (no JetStream at all, bad credentials) raises at once."""
        from nats.js.errors import ServiceUnavailableError

        end = time.monotonic() + within
        delay = 0.25
        while True:
            try:
                return await fn()
            except (TimeoutError, ServiceUnavailableError) as e:
                if time.monotonic() + delay > end:
                    raise
                _log.info(f"{self.name}: JetStream not answering yet ({describe_error(e)}); "
                          f"retrying in {delay:.2g}s", extra=self._about)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    async def ensure_stream(self) -> None:
        """Create the stream if absent (file storage, the URL's replicas,
        duplicate window and limits); an existing stream must take PREFIX.>."""
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        u = self.url
        jsm = self.nc.jetstream()
        try:
            info = await jsm.stream_info(u.stream)
        except NotFoundError:
            cfg = StreamConfig(
                name=u.stream, subjects=[u.subjects], storage=StorageType.FILE, num_replicas=u.replicas,
                duplicate_window=u.dupe_window, retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD,
                max_age=u.max_age or None, max_bytes=u.max_bytes,
            )
            await jsm.add_stream(cfg)
            return
        subjects = info.config.subjects or []
        if not any(s in (u.subjects, ">") or u.subjects.startswith(s.rstrip(">")) and s.endswith(">")
                   for s in subjects):
            raise ValueError(f"JetStream stream {u.stream} exists but does not take {u.subjects} "
                             f"(its subjects: {', '.join(subjects) or 'none'})")

    async def drop(self) -> None:
        """Forget what the client still buffers, then close; the next use
        connects anew.  After a publish failed part-way, nats-py keeps the
        unsent tail of the batch in its outbound buffer and writes it first
        after reconnecting, ahead of the retried batch: JetStream would store
        the tail before the head (dedup keeps each once, but out of order).
        The retry resends the whole batch in order on a fresh connection."""
        nc, self.nc, self.js = self.nc, None, None
        if nc is None:
            return
        # nats-py has no public way to discard its outbound buffer; close() writes it out
        if hasattr(nc, "_pending") and hasattr(nc, "_pending_data_size"):
            nc._pending = []
            nc._pending_data_size = 0
        try:
            await nc.close()
        except Exception:
            pass

    async def close(self) -> None:
        """Send what is buffered (acknowledgements), then close: not nats-py's
        drain, which waits up to 30 s on a pull subscription."""
        nc, self.nc = self.nc, None
        if nc is None:
            return
        try:
            if nc.is_connected:
                await nc.flush(timeout=2)
        except Exception:
            pass
        try:
            await nc.close()
        except Exception:
            pass
