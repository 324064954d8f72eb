"""``--netflow udp://HOST:PORT``: NetFlow v5 / v9 and IPFIX exporters send
here.  A bound UDP socket drained on a dedicated thread: recvmmsg with the
senders' addresses, decoded in C in batches (ingest.flows.netflow) into
canonical flow records, handed on as they are in an
:class:`~ingest.batch.EventBatch` (``records``): the SQL stores write them
column-wise from the numpy array, JSON sinks get EVE-shaped lines rendered
when they ask (ingest.flows.record.json_lines).

The bind address defaults to 127.0.0.1 (``udp://:2055``); binding any other
address prints a warning at start-up: NetFlow has no authentication, and
anyone who can reach the port can write flows into the store.

Counted (the stats line's ``extra``): ``netflow_packets``, ``netflow_flows``,
``netflow_templates``, ``netflow_templates_withdrawn``,
``netflow_templates_evicted``, ``netflow_options_records``,
``exporter_loss`` (sequence gaps: v5 flows, v9 packets, IPFIX records; per
exporter in ``netflow_exporter_loss.<address>``), ``netflow_held_sets``;
dropped ``template_missing`` (a data set whose template never came within
the hold); malformed by reason (``netflow_short_header``, ``netflow_bad_set``,
...): the datagram is dead-lettered and the next one decoded.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import threading
from urllib.parse import urlsplit

from ..batch import AlertBatch
from ..batch import empty as empty_alerts
from ..deadletter import DeadLetter
from ..flows.netflow import NetflowDecoder, peer_text
from ..flows.record import event_batch
from ..sockets import raise_rcvbuf
from ..stats import Stats
from .base import Submit

POLL_SECONDS = 0.2
DEFAULT_HOST = "127.0.0.1"
#: (stats name, decoder counter) of what the stats line shows; held sets are a level, not a count
COUNTED = (("netflow_packets", "packets"), ("netflow_flows", "flows"),
           ("netflow_templates", "templates_added"), ("netflow_templates_withdrawn", "templates_withdrawn"),
           ("netflow_templates_evicted", "templates_evicted"),
           ("netflow_options_records", "options_records"), ("exporter_loss", "exporter_loss"),
           ("netflow_held_sets", "held_sets"))
#: per exporter loss gauges at most (a spoofed flood of exporters is bounded)
MAX_EXPORTER_GAUGES = 256


def parse_url(url: str) -> tuple[str, int]:
    """``udp://HOST:PORT`` (HOST may be empty: 127.0.0.1; IPv6 in brackets)
    as (host, port); ValueError otherwise."""
    u = urlsplit(url)
    if u.scheme != "udp" or u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"--netflow {url}: expected udp://HOST:PORT (e.g. udp://127.0.0.1:2055)")
    try:
        port = u.port
    except ValueError:
        port = None
    if port is None:  # (0: the system picks one; the "listening on" line names it)
        raise ValueError(f"--netflow {url}: a port is needed (udp://HOST:PORT)")
    host = u.hostname or DEFAULT_HOST
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--netflow {url}: the host must be an IP address, not {host!r}") from None
    return host, port


class NetflowSource:
    """One bound UDP socket for NetFlow v5/v9/IPFIX exporters."""

    def __init__(self, url: str, *, slots: int = 64, linger_us: int = 2000,
                 hold_seconds: float = 30.0) -> None:
        host, port = parse_url(url)
        self.url = url
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise ValueError(f"--netflow {url}: cannot bind: {e.strerror or e}") from None
        self.sock = sock
        bhost, bport = sock.getsockname()[:2]
        self.origin = f"netflow:udp://{'[' + bhost + ']' if fam == socket.AF_INET6 else bhost}:{bport}"
        self.port = bport
        if not ipaddress.ip_address(host).is_loopback:
            print(f"ingest: warning: --netflow {url}: bound to {host}, not loopback: NetFlow/IPFIX has no "
                  "authentication; anyone who can reach this port can add flows (firewall it)",
                  file=sys.stderr, flush=True)
        self.rcvbuf = raise_rcvbuf(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, int(POLL_SECONDS * 1e6)))
        self._slots = slots
        self._linger_us = linger_us
        self._hold_seconds = hold_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.decoder: NetflowDecoder | None = None
        self._seen: dict[str, int] = {}

    def start(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        self._thread = threading.Thread(target=self._run, args=(submit, stats, deadletter),
                                        name="ingest-netflow", daemon=True)
        self._thread.start()

    def _run(self, submit: Submit, stats: Stats, deadletter: DeadLetter) -> None:
        dec = self.decoder = NetflowDecoder(self._slots, hold_seconds=self._hold_seconds)
        fd = self.sock.fileno()
        while True:
            stopping = self._stop.is_set()
            try:
                n = dec.recv(fd, 0 if stopping else self._linger_us)
            except OSError as e:
                self.error = e
                stats.internal_errors += 1
                raise
            try:
                if n:
                    self._handle(dec, n, submit, stats, deadletter)
                else:
                    for peer, raw in dec.expire():
                        self._missing(peer, raw, stats, deadletter)
                    self._counters(dec, stats)
            except Exception as e:  # a bug, not input: report it, keep reading
                stats.internal_errors += 1
                print(f"ingest: error: {self.origin}: internal error: {e!r}", file=sys.stderr, flush=True)
            if stopping and n == 0:
                return

    def _missing(self, peer: bytes, raw: bytes, stats: Stats, deadletter: DeadLetter) -> None:
        stats.add_dropped("template_missing")
        deadletter.write(f"{self.origin} from {peer_text(peer)}", "template_missing", raw)

    def _handle(self, dec: NetflowDecoder, n: int, submit: Submit, stats: Stats,
                deadletter: DeadLetter) -> None:
        res = dec.decode(n, self.origin)
        for i, reason in res.rejected:
            stats.add_malformed(reason)
            o = i * dec.slot_size
            dgram = dec.slots[o:o + min(int(dec.lens[i]), dec.slot_size)]
            deadletter.write(f"{self.origin} from {peer_text(dec.peers[i * 16:(i + 1) * 16].tobytes())}",
                             reason, dgram)
        for peer, raw in res.expired:
            self._missing(peer, raw, stats, deadletter)
        stats.add_input(n, 0)
        self._counters(dec, stats)
        k = len(res.batch)
        if not k:
            return
        # the records ride as they are: the stores take them column-wise,
        # JSON sinks have their lines rendered when they ask
        events = event_batch(res.batch)
        if not submit.reserve(k, nbytes=events.nbytes()):
            # the queue is full: the flows are lost, said and kept
            stats.add_dropped("queue_full", k)
            # (kept as JSON lines; with no dead-letter file, none are rendered)
            deadletter.write(self.origin, "queue_full", events.lines if deadletter.path else b"")
            return
        submit.submit(AlertBatch(empty_alerts(0), [], self.origin, events=events))

    def _counters(self, dec: NetflowDecoder, stats: Stats) -> None:
        """The decoder's cumulative counters into the stats, as increments
        (several --netflow sockets add up)."""
        c = dec.counters()
        for name, key in COUNTED:
            d = c[key] - self._seen.get(key, 0)
            if d:
                stats.add_extra(name, d)
                self._seen[key] = c[key]
        if c["exporter_loss"]:
            for e in dec.exporters():
                if e["loss"]:
                    stats.set_gauge(f"netflow_exporter_loss.{e['exporter']}", e["loss"],
                                    group="netflow_exporters", cap=MAX_EXPORTER_GAUGES)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.sock.close()
