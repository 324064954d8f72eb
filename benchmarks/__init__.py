"""Runnable benchmark modules (``python -m benchmarks.<name>``) and the
pytest-benchmark micro-benchmarks (``pytest benchmarks/``).  Not collected by
the default test run (testpaths = ["tests"])."""
