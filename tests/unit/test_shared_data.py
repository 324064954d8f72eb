"""The package's lookup of the shared data set (ingest.gen.shared), the
tools' counterpart of tests/conftest.py's SHARED."""

from __future__ import annotations

import pathlib

from ingest.gen import load_eve_records
from ingest.gen.shared import shared_data_dir, shared_file

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_env_variable_wins(tmp_path, monkeypatch):
    eve = tmp_path / "eve" / "zeus-suricata-7.0.7" / "eve.json"
    eve.parent.mkdir(parents=True)
    eve.write_bytes(b'{"event_type":"alert"}\n{"event_type":"flow"}')
    monkeypatch.setenv("INGEST_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert shared_file("eve/zeus-suricata-7.0.7/eve.json") == eve
    assert shared_file("maps/absent.map") is None
    recs, label = load_eve_records()
    assert recs == [b'{"event_type":"alert"}\n', b'{"event_type":"flow"}\n']
    # a report names the data set's file, never the machine's path
    assert label == "shared data eve/zeus-suricata-7.0.7/eve.json"


def test_absent_data_falls_back_to_generated(tmp_path, monkeypatch):
    monkeypatch.setenv("INGEST_SHARED_DATA", str(tmp_path / "nodata"))
    assert shared_data_dir() is None
    recs, label = load_eve_records(n=5)
    assert label == "generated" and len(recs) == 5


def test_default_is_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("INGEST_SHARED_DATA", raising=False)
    beside = ROOT.parent / "shared" / "data"
    assert shared_data_dir() == (beside if beside.is_dir() else None)
