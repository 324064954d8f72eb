"""``python -m ingest.gen``: the same as ``ingest gen``."""

import sys

from . import main

sys.exit(main())
