"""The plain-Python baseline of the Alertpkt benchmark.

What a careful script writer would do without a C core (the Trisul Lua input
filters, ryu's alert.py, done right): one ``socket.recv`` per datagram and
``struct.unpack_from`` for the event fields, the signature message, and the
IPv4 addresses, protocol and ports, with the same checks a correct reader
needs (variant by length, NOPACKET_STRUCT, the IP version nibble, bounds).
Each alert becomes a small tuple that is counted and dropped.

    python naive_recv.py PATH [COUNT] [--latency]

Exits after COUNT datagrams (0 = never) or on SIGTERM/SIGINT, removes the
socket file, and prints one JSON line like recv_count.c.  With --latency, the
alert time is taken to be the sender's CLOCK_MONOTONIC send time (``ingest
bench`` stamps it so) and the line also holds p50_ms / p99_ms / max_ms of
receipt minus send time.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import struct
import sys
import time

SNORT, SNORT_APPID, BY2, BY2_32 = 65864, 65928, 1856, 1844
# variant length -> (val, pkt, pkt area, event offset, big-endian event)
LAYOUTS = {
    SNORT: (288, 292, 65535, 65828, False),
    SNORT_APPID: (288, 292, 65535, 65828, False),
    BY2: (296, 300, 1514, 1816, True),
    BY2_32: (288, 292, 1514, 1808, True),
}
HOST_EVENT = struct.Struct("<9I")  # gid sid rev class prio event_id event_ref sec usec
BE_EVENT = struct.Struct(">9I")  # sensor event_id sec usec sid gid rev class prio
HDR = struct.Struct("<IIIII")  # caplen (relative), dlthdr nethdr transhdr data val
IPV4 = struct.Struct("!B8xB2x4s4s")
PORTS = struct.Struct("!HH")


def decode(buf: bytes) -> tuple | None:
    n = len(buf)
    lay = LAYOUTS.get(n)
    if lay is None:
        return None
    val_off, pkt, area, ev, be = lay
    if be:
        _sensor, event_id, sec, usec, sid, gid, rev, cls, prio = BE_EVENT.unpack_from(buf, ev)
    else:
        gid, sid, rev, cls, prio, event_id, _ref, sec, usec = HOST_EVENT.unpack_from(buf, ev)
    msg = buf[:256].split(b"\0", 1)[0].decode("utf-8", "replace")
    src = dst = None
    proto = sport = dport = 0
    caplen, = struct.unpack_from("<I", buf, val_off - 24)
    _dlt, nethdr, transhdr, _data, val = HDR.unpack_from(buf, val_off - 16)
    valid = min(caplen, area)
    if not val & 1 and nethdr and nethdr + 20 <= valid:
        vihl, proto, s, d = IPV4.unpack_from(buf, pkt + nethdr)
        if vihl >> 4 == 4:
            src, dst = socket.inet_ntoa(s), socket.inet_ntoa(d)
            if transhdr and transhdr + 4 <= valid and proto in (6, 17):
                sport, dport = PORTS.unpack_from(buf, pkt + transhdr)
    return (sec * 1_000_000 + usec, gid, sid, rev, cls, prio, event_id, msg,
            src, dst, proto, sport, dport)


def peak_rss_kb() -> int:
    """VmHWM of this image (ru_maxrss would include the parent's pre-exec peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    latency = "--latency" in argv
    argv = [a for a in argv if a != "--latency"]
    lat: list[float] = []
    path = argv[1]
    want = int(argv[2]) if len(argv) > 2 else 0
    stopping = False

    def on_signal(_sig, _frame):
        nonlocal stopping
        stopping = True
        raise InterruptedError  # break out of a blocked recv

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind(path)
    got = decoded = nbytes = 0
    first = last = 0.0
    try:
        while not stopping and (want == 0 or got < want):
            buf = sock.recv(65928 + 1)
            last = time.monotonic()
            if got == 0:
                first = last
            got += 1
            nbytes += len(buf)
            alert = decode(buf)
            if alert is not None:
                decoded += 1
                if latency:
                    lat.append(last - alert[0] * 1e-6)
    except InterruptedError:
        pass
    finally:
        sock.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    ru = resource.getrusage(resource.RUSAGE_SELF)
    extra = {}
    if latency:
        lat.sort()
        extra = {k: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3, 6) if lat else None
                 for k, q in (("p50_ms", 0.5), ("p99_ms", 0.99), ("max_ms", 1.0))}
    print(json.dumps({
        "peer": "naive_recv", "received": got, "decoded": decoded, "bytes": nbytes,
        "wall_s": round(last - first, 6), "cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime,
        "maxrss_kb": peak_rss_kb(), **extra,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
