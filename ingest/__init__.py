"""ingest: a high-rate IDS alert ingester with a small cffi C core.

Public batch API (see README "Python API")::

    from ingest import decode_datagrams, to_records
"""

from __future__ import annotations

__version__ = "0.1.0"

from .alertpkt import DecodeResult, SlotDecoder, decode_datagrams
from .batch import ALERT_DTYPE, AlertBatch
from .render import render_json, to_records

__all__ = [
    "ALERT_DTYPE",
    "AlertBatch",
    "DecodeResult",
    "SlotDecoder",
    "__version__",
    "decode_datagrams",
    "render_json",
    "to_records",
]
