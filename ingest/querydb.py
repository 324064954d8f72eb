"""What every ``ingest query`` command shares: which store a --db names,
the SQLite errors that mean it is no store, and how an address and port
are shown (ingest.query, ingest.query_alerts)."""

from __future__ import annotations


def is_postgresql(db: str) -> bool:
    """Does --db name a PostgreSQL store (else: a SQLite file)?"""
    return db.startswith(("postgresql://", "postgres://"))


def sqlite_path(db: str) -> str:
    """The file of a SQLite --db (``sqlite:PATH`` or a plain path)."""
    return db[len("sqlite:"):] if db.startswith("sqlite:") else db


#: sqlite errors that mean the --db is not a usable store (exit 2), as opposed
#: to a failure while reading one (locked, I/O error: exit 1)
_NOT_A_STORE = ("unable to open database", "no such table", "file is not a database",
                "no such column")


def endpoint(ip: str | None, port: int | None) -> str:
    """An address and port as a user reads them: 192.0.2.1:80,
    [2001:db8::1]:80 (an IPv6 address's colons would swallow the port), the
    address alone where the flow has no port (ICMP), '-' for none."""
    addr = "-" if ip is None else f"[{ip}]" if ":" in ip and port is not None else ip
    return addr if port is None else f"{addr}:{port}"
