"""ingest: a high-rate IDS alert ingester with a small cffi C core.

Public batch API (see README "Python API")::

    from ingest import decode_datagrams, to_records

The names below are imported on first use (PEP 562), so ``import ingest.cli``
starts fast and does not load numpy before the command line has run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ALERT_DTYPE": "batch",
    "AlertBatch": "batch",
    "DecodeResult": "alertpkt",
    "SlotDecoder": "alertpkt",
    "decode_datagrams": "alertpkt",
    "render_json": "render",
    "to_records": "render",
}

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
assert set(__all__) == {"__version__", *_EXPORTS}

if TYPE_CHECKING:  # pragma: no cover
    from .alertpkt import DecodeResult, SlotDecoder, decode_datagrams
    from .batch import ALERT_DTYPE, AlertBatch
    from .render import render_json, to_records


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
