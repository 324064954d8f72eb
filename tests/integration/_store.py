"""A real SQLite store for the tests that read one (``ingest query``, the
SQL printed in docs/eve.md): EVE alerts, each with its flow, written to an
eve.json and ingested by a real ``ingest listen --eve-file``."""

from __future__ import annotations

import json
import pathlib

from ._eve_proc import Ingest


def eve_lines(n: int) -> list[str]:
    """n alerts (severity 1, 2, 3 in turn) and n flows, flow_id-linked."""
    lines = []
    for i in range(n):
        common = {"flow_id": 1_000_000 + i, "src_ip": f"10.0.{i // 250}.{i % 250 + 1}",
                  "src_port": 40000 + i % 20000, "dest_ip": "192.0.2.7", "dest_port": 80,
                  "proto": "TCP"}
        lines.append(json.dumps({
            "timestamp": "2024-05-01T12:00:00.000001+0000", "event_type": "alert", **common,
            "alert": {"action": "allowed", "gid": 1, "signature_id": 2000000 + i % 7, "rev": 1,
                      "signature": f"TEST sig {i % 7}", "category": "Misc activity",
                      "severity": 1 + i % 3}}))
        lines.append(json.dumps({
            "timestamp": "2024-05-01T12:00:09.000001+0000", "event_type": "flow", **common,
            "app_proto": "http",
            "flow": {"pkts_toserver": 3, "pkts_toclient": 2, "bytes_toserver": 300,
                     "bytes_toclient": 200, "start": "2024-05-01T11:59:59.000001+0000",
                     "end": "2024-05-01T12:00:08.000001+0000", "age": 9, "state": "closed",
                     "reason": "timeout", "alerted": True}}))
    return lines


def make_store(tmp: pathlib.Path, n: int) -> pathlib.Path:
    """tmp/alerts.db holding n alerts and their n flows."""
    (tmp / "eve.json").write_text("\n".join(eve_lines(n)) + "\n")
    ing = Ingest(tmp, "--eve-file", str(tmp / "eve.json"), db="alerts.db")
    ing.wait_count(n)
    ing.wait_count(n, "SELECT count(*) FROM flows")
    ing.stop()
    return tmp / "alerts.db"
