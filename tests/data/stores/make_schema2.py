"""Made with ingest at e002891 (store schema version 2): a small store of
Snort-like alerts, Suricata EVE alerts and flow events, correlated."""
import asyncio
import ipaddress
import json
import sys

import numpy as np

from ingest import batch as B
from ingest.eve import decode_lines, parse_ts
from ingest.mapping import Enricher
from ingest.sinks.sqlite import SqliteSink

T0 = parse_ts("2026-12-04T12:00:00.000000+0000")
S = 1_000_000

def ts(us):
    sec, frac = divmod(us, S)
    return np.datetime64(sec, "s").astype(str) + f".{frac:06d}+0000"

def addr(t):
    ip = ipaddress.ip_address(t)
    return ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed

def snort(rows):
    a = B.empty(len(rows))
    for i, (t, src, sp, dst, dp, prio) in enumerate(rows):
        a[i]["ts_us"] = t
        a[i]["src_addr"], a[i]["dst_addr"] = addr(src), addr(dst)
        a[i]["src_port"], a[i]["dst_port"], a[i]["proto"], a[i]["ip_ver"] = sp, dp, 6, 4
        a[i]["flags"] = B.F_ADDRS | B.F_PORTS
        a[i]["gid"], a[i]["sid"], a[i]["rev"], a[i]["priority"] = 1, 2000 + i, 1, prio
        a[i]["source"], a[i]["msg_idx"], a[i]["app_idx"] = B.SRC_SNORT, -1, -1
    return Enricher().apply(B.AlertBatch(a, [], "snort"))

def flow(fid, src, sp, dst, dp, start, end, vlan=None):
    o = {"timestamp": ts(end), "event_type": "flow", "flow_id": fid, "src_ip": src, "src_port": sp,
         "dest_ip": dst, "dest_port": dp, "proto": "TCP", "app_proto": "http",
         "flow": {"start": ts(start), "end": ts(end), "pkts_toserver": 3, "pkts_toclient": 2,
                  "bytes_toserver": 300, "bytes_toclient": 200, "state": "closed", "reason": "timeout",
                  "alerted": True}}
    if vlan is not None:
        o["vlan"] = [vlan]
    return json.dumps(o).encode()

def alert(fid, t, src, sp, dst, dp, sev):
    return json.dumps({"timestamp": ts(t), "flow_id": fid, "event_type": "alert", "src_ip": src,
                       "src_port": sp, "dest_ip": dst, "dest_port": dp, "proto": "TCP",
                       "alert": {"gid": 1, "signature_id": 2100498, "rev": 7, "signature": "GPL root",
                                 "category": "Potentially Bad Traffic", "severity": sev}}).encode()

async def main(path):
    sink = SqliteSink(path, sensor="old-sensor", correlate_slack=2.0)
    await sink.write(snort([(T0 + 1 * S, "10.0.0.1", 40000, "192.0.2.9", 80, 2),
                            (T0 + 9 * S, "192.0.2.9", 80, "10.0.0.1", 40000, 1),
                            (T0 + 2 * S, "10.0.0.3", 5, "192.0.2.9", 80, 3)]))
    await sink.write(Enricher().apply(decode_lines(b"\n".join([
        flow(7, "192.0.2.9", 80, "10.0.0.1", 40000, T0, T0 + 8 * S),
        flow(8, "10.0.0.7", 5555, "192.0.2.10", 443, T0 + 3 * S, T0 + 4 * S, vlan=12),
        alert(8, T0 + 3 * S + 500, "10.0.0.7", 5555, "192.0.2.10", 443, 1)]) + b"\n").batch))
    await sink.aclose()

asyncio.run(main(sys.argv[1]))
