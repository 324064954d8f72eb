"""pytest-benchmark micro-benchmarks (not collected by default: run
``pytest benchmarks/test_bench_unified2.py``)."""

import pytest

from ingest import unified2
from ingest.gen.shared import shared_file

#: the real djcas9 capture from the shared data set (INGEST_SHARED_DATA or
#: ../shared/data beside the checkout), None when absent
_SRC = shared_file("unified2/djcas9-unified2-current.log")
SRC = str(_SRC) if _SRC else ""


@pytest.fixture(scope="module")
def data():
    if not SRC:
        pytest.skip("real file absent")
    with open(SRC, "rb") as f:
        return f.read()


def test_decode_and_join(benchmark, data):
    res = benchmark(unified2.decode, data)
    assert len(res.alerts) == 5675


def test_decode_join_and_render_members(benchmark, data):
    res = benchmark(lambda: unified2.decode(data).batch)
    assert len(res) == 5675
