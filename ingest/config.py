"""One typed, frozen Config; built from a TOML file and/or command-line flags.

TOML keys are the field names below (flat), e.g.::

    snort = ["/var/log/snort/snort_alert"]
    barnyard2_sync = ["/var/log/barnyard2/barnyard2_alert"]
    sinks = ["sqlite:/var/lib/ingest/alerts.db", "jsonl:/var/log/ingest/alerts.json"]
    format = "eve"
    socket_mode = "0660"
    socket_group = "snort"
    dead_letter = "/var/lib/ingest/deadletter.bin"
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from typing import Any

DEFAULT_STORE = "sqlite:./alerts.db"


@dataclass(frozen=True)
class Config:
    #: Snort 2/3 ``-A unsock`` socket paths (one per Snort 3 packet thread)
    snort: tuple[str, ...] = ()
    #: Barnyard2 ``alert_unixsock`` (datagram) socket paths
    barnyard2: tuple[str, ...] = ()
    #: Barnyard2 ``alert_unixsock: PATH sync`` (seqpacket, acknowledged) paths
    barnyard2_sync: tuple[str, ...] = ()
    #: Suricata EVE: unix_dgram / unix_stream socket paths we bind, files we follow
    eve_dgram: tuple[str, ...] = ()
    eve_stream: tuple[str, ...] = ()
    eve_file: tuple[str, ...] = ()
    #: EVE event types to keep (empty: all), e.g. ("alert", "flow", "stats")
    event_types: tuple[str, ...] = ()
    #: longest EVE line accepted on a stream or file (longer: counted, skipped)
    eve_max_line: int = 16 << 20
    #: where --eve-file bookmarks live (default: beside the followed file)
    bookmark_dir: str | None = None
    #: where a followed file without a bookmark is started: beginning | end
    eve_file_start: str = "beginning"
    #: Unified2 spools to follow, each DIR/PREFIX (files PREFIX.<unix-time>)
    unified2: tuple[str, ...] = ()
    #: bookmark file (default DIR/PREFIX.ingest-bookmark; one spool only)
    unified2_bookmark: str | None = None
    #: where to start a spool without a bookmark: beginning | end
    unified2_start: str = "beginning"
    #: what to do with fully read spool files: keep | delete | archive
    unified2_after: str = "keep"
    unified2_archive: str | None = None
    #: directory with sid-msg.map / gen-msg.map / classification.config / reference.config
    maps: str | None = None
    sid_msg: str | None = None
    gen_msg: str | None = None
    classification: str | None = None
    reference: str | None = None
    #: sink URLs; empty means the embedded default store
    sinks: tuple[str, ...] = ()
    #: JSON output profile: eve | trisul
    format: str = "eve"
    socket_mode: int = 0o660
    socket_group: str | None = None
    #: dead-letter file for input we could not use (None: count only)
    dead_letter: str | None = "./ingest-deadletter.bin"
    dead_letter_max_bytes: int = 64 << 20
    #: seconds between stats lines on stderr (0: only the final one)
    stats_interval: float = 10.0
    #: bound of the in-memory queue, in alerts
    max_queue: int = 1_000_000
    #: most alerts per sink write
    batch_max: int = 8192
    #: how long a partial batch waits for more before it is flushed
    linger_ms: float = 2.0
    #: how long shutdown may take to dispatch what is queued
    drain_timeout: float = 30.0

    @property
    def sink_urls(self) -> tuple[str, ...]:
        return self.sinks or (DEFAULT_STORE,)

    @classmethod
    def for_run(cls) -> Config:
        """``ingest run`` with no file: sockets under ./run/, store ./alerts.db."""
        return cls(
            snort=("./run/snort_alert",),
            barnyard2=("./run/barnyard2_alert",),
            dead_letter="./run/deadletter.bin",
        )

    @classmethod
    def from_toml(cls, path: str, base: Config | None = None) -> Config:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        return (base or cls()).replace(**data)

    def replace(self, **changes: Any) -> Config:
        names = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for k, v in changes.items():
            k = k.replace("-", "_")
            if k not in names:
                raise ValueError(f"unknown configuration key {k!r}")
            if k in ("snort", "barnyard2", "barnyard2_sync", "sinks", "unified2", "eve_dgram", "eve_stream",
                     "eve_file"):
                v = (v,) if isinstance(v, str) else tuple(v)
            elif k == "event_types":
                v = tuple(t.strip() for t in (v.split(",") if isinstance(v, str) else v) if t.strip())
            elif k == "socket_mode" and isinstance(v, str):
                v = int(v, 8)
            clean[k] = v
        cfg = dataclasses.replace(self, **clean)
        cfg.validate()
        return cfg

    def load_maps(self):
        """The maps named by this config (None when none is configured)."""
        from .maps import Maps

        files = {"sid_msg": self.sid_msg, "gen_msg": self.gen_msg,
                 "classification": self.classification, "reference": self.reference}
        if self.maps:
            return Maps.from_dir(self.maps, **files)
        if any(files.values()):
            return Maps.load(**files)
        return None

    def validate(self) -> None:
        if self.format not in ("eve", "trisul"):
            raise ValueError(f"format must be eve or trisul, not {self.format!r}")
        if not 0 <= self.socket_mode <= 0o777:
            raise ValueError(f"socket_mode {oct(self.socket_mode)} is not a permission mode")
        if self.eve_file_start not in ("beginning", "end"):
            raise ValueError(f"eve_file_start must be beginning or end, not {self.eve_file_start!r}")
        if self.unified2_start not in ("beginning", "end"):
            raise ValueError("unified2_start must be beginning or end")
        if self.unified2_after not in ("keep", "delete", "archive"):
            raise ValueError("unified2_after must be keep, delete or archive")
        if self.unified2_after == "archive" and not self.unified2_archive:
            raise ValueError("unified2_after = archive needs unified2_archive")
        if self.unified2_bookmark and len(self.unified2) > 1:
            raise ValueError("one unified2_bookmark cannot serve several spools")
        if self.max_queue <= 0 or self.batch_max <= 0:
            raise ValueError("max_queue and batch_max must be positive")
