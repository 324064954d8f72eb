"""Where the metrics endpoint listens (``--metrics``) and where ``ingest
top`` polls it: one address syntax for both.  No dependency beyond the
standard library, so ``ingest top`` imports neither prometheus-client nor
numpy."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

DEFAULT_PORT = 9108


@dataclass(frozen=True)
class MetricsAddress:
    """Where the endpoint listens: TCP ``host``/``port``, or a Unix ``path``."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.path is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> MetricsAddress:
    """``PORT``, ``:PORT``, ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``
    (ValueError with the problem)."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ValueError("unix: needs a path (unix:/run/ingest/metrics.sock)")
        return MetricsAddress(path=os.path.abspath(path))
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [::1]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not PORT, HOST:PORT or unix:PATH (a port is 0 to 65535)")
    return MetricsAddress(host=host or "127.0.0.1", port=int(port_text))
