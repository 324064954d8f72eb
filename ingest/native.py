"""The compiled C core, checked at import.

``ingest._native`` is private; everything imports ``ffi``/``lib`` from here so
a stale build (an extension compiled from other C sources) fails at once with
instructions instead of corrupting data.
"""

from __future__ import annotations

#: must equal INGEST_ABI_VERSION in csrc/ingest.h
ABI_VERSION = 22

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

# Message keys are keyed hashes of text from other processes: a random key
# per process means no sender can craft colliding messages.
import os as _os  # noqa: E402

lib.ingest_set_hash_key(*(int.from_bytes(_os.urandom(8), "little") for _ in range(2)))

__all__ = ["ffi", "lib", "ABI_VERSION"]
