"""``ingest bench`` (moved here from ingest/bench.py; split into modules next)."""

from .harness import *  # noqa: F403
from .harness import add_parser, run  # noqa: F401
