"""ingest: a high-rate IDS alert ingester with a small cffi C core."""

from __future__ import annotations

__version__ = "0.1.0"
