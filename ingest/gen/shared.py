"""Where the tools find the shared data set (real captures, maps): the
package's one lookup, as tests/conftest.py is the tests' one.

``$INGEST_SHARED_DATA`` when set, else ``../shared/data`` beside the source
checkout this package runs from (a checkout: the directory above the package
holds pyproject.toml).  An installed package has no checkout, so without the
variable it finds nothing and the tools fall back to generated data.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """The shared data directory, or None when there is none."""
    env = os.environ.get("INGEST_SHARED_DATA")
    if env:
        root = Path(env)
    else:
        checkout = Path(__file__).resolve().parents[2]
        if not (checkout / "pyproject.toml").is_file():
            return None
        root = checkout.parent / "shared" / "data"
    return root if root.is_dir() else None


def shared_file(rel: str) -> Path | None:
    """DIR/rel in the shared data set if that file exists, else None."""
    root = shared_data_dir()
    if root is None:
        return None
    path = root / rel
    return path if path.is_file() else None
