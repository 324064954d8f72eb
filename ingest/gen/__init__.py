"""``ingest gen`` (moved here from ingest/gen.py; split into modules next)."""

from .templates import *  # noqa: F403
from .templates import add_parser, main, run  # noqa: F401
