# Only the cffi hook lives here; metadata is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["ingest/_build.py:ffibuilder"])
