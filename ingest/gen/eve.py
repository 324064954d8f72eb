"""EVE JSON lines for ``ingest gen --kind eve-dgram|eve-stream``: the lines of
a given eve.json, else of the shared Zeus capture when present, else
generated alerts (ET-style metadata) and flows."""

from __future__ import annotations

import datetime
import json
import random
import re
import time
from typing import Any

import numpy as np

from .shared import shared_file
from .templates import random_v4, random_v6, rule_catalog, zipf_weights

#: the Zeus Suricata 7.0.7 capture, relative to the shared data set
SHARED_EVE = "eve/zeus-suricata-7.0.7/eve.json"


def _eve_ts(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    frac = int((t % 1) * 1_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", lt)
            + f".{frac:06d}{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}")


def eve_records(n: int, seed: int = 1, *, base_time: float | None = None) -> list[bytes]:
    """n generated EVE lines (newline-terminated): ~85% alerts with ET-style
    metadata (Suricata 7 layout, ~0.8-1.5 KB), the rest flow records."""
    rng = random.Random(seed)
    rules = [r for r in rule_catalog(rng, 300) if r.gid == 1]
    weights = zipf_weights(len(rules))
    t = time.time() if base_time is None else base_time
    out: list[bytes] = []
    for _ in range(n):
        t += rng.randrange(50, 20_000) / 1e6
        rule = rng.choices(rules, weights)[0]
        v6 = rng.random() < 0.2
        mk = random_v6 if v6 else random_v4
        inbound = rng.random() < 0.6
        src, dst = mk(rng, not inbound), mk(rng, inbound)
        proto = {"tcp": "TCP", "udp": "UDP", "icmp": "IPv6-ICMP" if v6 else "ICMP"}.get(
            rule.proto, "TCP")
        flow_id = rng.getrandbits(50)
        ev: dict[str, Any] = {"timestamp": _eve_ts(t), "flow_id": flow_id,
                              "in_iface": "eth0", "src_ip": src}
        icmp = proto.endswith("ICMP")
        if not icmp:
            ev["src_port"] = rng.randrange(32768, 61000)
        ev["dest_ip"] = dst
        if not icmp:
            ev["dest_port"] = rule.dport or rng.randrange(1, 65536)
        ev["proto"] = proto
        start = _eve_ts(t - rng.random() * 30)
        flow = {"pkts_toserver": rng.randrange(1, 200), "pkts_toclient": rng.randrange(0, 200),
                "bytes_toserver": rng.randrange(60, 200_000),
                "bytes_toclient": rng.randrange(0, 2_000_000), "start": start}
        if rng.random() < 0.15:
            ev = {"timestamp": ev["timestamp"], "flow_id": flow_id, "event_type": "flow",
                  **{k: v for k, v in ev.items() if k not in ("timestamp", "flow_id")},
                  "app_proto": "failed" if icmp else "http",
                  "flow": {**flow, "end": _eve_ts(t), "age": rng.randrange(0, 120),
                           "state": "closed", "reason": "timeout", "alerted": True},
                  "tcp": {"tcp_flags": "1b", "syn": True, "fin": True, "psh": True,
                          "ack": True, "state": "closed"}}
        else:
            created = f"20{rng.randrange(10, 24)}_{rng.randrange(1, 13):02d}_{rng.randrange(1, 29):02d}"
            meta = {"affected_product": [rng.choice(["Windows_XP_Vista_7_8_10_Server_32_64_Bit",
                                                     "Apache_HTTP_server", "Linux", "Any"])],
                    "attack_target": [rng.choice(["Client_Endpoint", "Server", "Web_Server"])],
                    "created_at": [created], "deployment": ["Perimeter"],
                    "former_category": [rule.msg.split()[1] if " " in rule.msg else "INFO"],
                    "signature_severity": [rng.choice(["Major", "Minor", "Informational"])],
                    "updated_at": [created]}
            if rng.random() < 0.3:
                meta["mitre_tactic_id"] = ["TA0011"]
                meta["mitre_tactic_name"] = ["Command_And_Control"]
                meta["mitre_technique_id"] = ["T1071"]
                meta["mitre_technique_name"] = ["Application_Layer_Protocol"]
            ev = {"timestamp": ev["timestamp"], "flow_id": flow_id, "event_type": "alert",
                  **{k: v for k, v in ev.items() if k not in ("timestamp", "flow_id")},
                  "pkt_src": "wire/pcap",
                  "alert": {"action": "allowed", "gid": 1, "signature_id": rule.sid,
                            "rev": rule.rev, "signature": rule.msg,
                            "category": "Potentially Bad Traffic", "severity": rule.priority,
                            "metadata": meta},
                  "direction": "to_server", "flow": flow}
            if rule.dport in (80, 8080):
                ev["app_proto"] = "http"
                ev["http"] = {"hostname": f"www.example{rng.randrange(100)}.com",
                              "url": f"/{rng.choice(['index.php', 'wp-login.php', 'update.exe'])}"
                                     f"?id={rng.randrange(10**6)}",
                              "http_user_agent": rng.choice(["curl/7.88.1", "Go-http-client/1.1",
                                                             "Mozilla/5.0 (Windows NT 10.0)"]),
                              "http_method": "GET", "protocol": "HTTP/1.1",
                              "status": 200, "length": rng.randrange(0, 100_000)}
        out.append(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
    return out


#: an EVE time field ingest_gen_lines can restamp in place: the record's
#: "timestamp" and a flow's "start"/"end", in Suricata's 31-byte form
_TIME_FIELD = re.compile(rb'"(timestamp|start|end)"[ \t]*:[ \t]*"'
                         rb'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4})"')
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_US = datetime.timedelta(microseconds=1)


def time_fields(records: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each record's times are, for ``ingest_gen_lines`` to restamp:
    (first: nrec + 1 starts, off: each field's offset in its record, us:
    its time in us since the epoch).  A record's first field is its own
    "timestamp"; a record without one keeps every time as it is."""
    first, off, us = [0], [], []
    for rec in records:
        found = []
        for m in _TIME_FIELD.finditer(rec):
            try:
                t = datetime.datetime.strptime(m.group(2).decode(), "%Y-%m-%dT%H:%M:%S.%f%z")
            except ValueError:
                continue
            found.append((m.group(1) != b"timestamp", m.start(2), (t - _EPOCH) // _US))
        found.sort(key=lambda f: f[0])  # stable: the record's "timestamp" first
        if found and not found[0][0]:
            off += [f[1] for f in found]
            us += [f[2] for f in found]
        first.append(len(off))
    return (np.array(first, dtype=np.uint32), np.array(off, dtype=np.uint32),
            np.array(us, dtype=np.int64))



def load_eve_records(path: str | None = None, n: int = 256, seed: int = 1) -> tuple[list[bytes], str]:
    """EVE lines to send, and where they came from: the lines of path, else
    of the shared Zeus capture when present ("shared data NAME": reports never
    carry a machine's path), else n generated ones ("generated")."""
    if path is not None:
        label = path
    else:
        shared = shared_file(SHARED_EVE)
        if shared is None:
            return eve_records(n, seed), "generated"
        path, label = str(shared), f"shared data {SHARED_EVE}"
    with open(path, "rb") as f:
        recs = [ln if ln.endswith(b"\n") else ln + b"\n" for ln in f if ln.strip()]
    if not recs:
        raise ValueError(f"{path}: no EVE lines")
    return recs, label


