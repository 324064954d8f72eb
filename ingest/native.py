"""The compiled C core, checked at import.

``ingest._native`` is private; everything imports ``ffi``/``lib`` from here so
a stale build (an extension compiled from other C sources) fails at once with
instructions instead of corrupting data.
"""

from __future__ import annotations

#: must equal INGEST_ABI_VERSION in csrc/ingest.h
ABI_VERSION = 1

_REBUILD = (
    "rebuild it with 'pip install -e .' (or 'python setup.py build_ext --inplace') "
    "in the source tree"
)

try:
    from ._native import ffi, lib
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(f"ingest's C core (ingest._native) is not built: {e}; {_REBUILD}") from e

if lib.ingest_abi_version() != ABI_VERSION:  # pragma: no cover
    raise ImportError(
        f"ingest._native has ABI {lib.ingest_abi_version()}, this Python code needs "
        f"{ABI_VERSION}: {_REBUILD}"
    )

__all__ = ["ffi", "lib", "ABI_VERSION"]
