"""The two log formats, record by record (a real process's stderr is read
back in tests/integration/test_logs.py)."""

from __future__ import annotations

import json
import logging
import sys

from ingest.ops.logs import JsonFormatter, TextFormatter, at


def record(name: str, level: int, msg: str, extra: dict | None = None, exc_info=None) -> logging.LogRecord:
    logger = logging.getLogger(name)
    return logger.makeRecord(name, level, __file__, 1, msg, (), exc_info, extra=extra)


def test_text_is_the_old_prefix_per_level():
    f = TextFormatter()
    assert f.format(record("ingest.runtime", logging.ERROR, "sink x: gone")) == "ingest: error: sink x: gone"
    assert f.format(record("ingest.sockets", logging.WARNING, "w")) == "ingest: warning: w"
    assert f.format(record("ingest.stats", logging.INFO, "stats received=1", at(None, received=1))) \
        == "ingest: stats received=1"
    assert f.format(record("ingest", logging.DEBUG, "d")) == "ingest: d"
    # another library's record: as Python prints it unconfigured, the message alone
    assert f.format(record("asyncio", logging.ERROR, "Task was destroyed")) == "Task was destroyed"


def test_json_is_one_line_with_input_and_fields():
    f = JsonFormatter()
    line = f.format(record("ingest.runtime", logging.ERROR, "sink x refused\nan alert",
                           at("snort:/run/s", sink="x", counts={"a": 1})))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "error" and obj["logger"] == "ingest.runtime" and obj["msg"] == "sink x refused\nan alert"
    assert obj["input"] == "snort:/run/s" and obj["sink"] == "x" and obj["counts"] == {"a": 1}
    assert obj["ts"].endswith("Z") and len(obj["ts"]) == len("2026-12-04T13:50:01.123456Z")
    assert "input" not in json.loads(f.format(record("ingest", logging.INFO, "no input here")))


def test_json_keeps_a_traceback_in_one_field():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc = sys.exc_info()
    obj = json.loads(JsonFormatter().format(record("ingest.runtime", logging.ERROR, "died", exc_info=exc)))
    assert "RuntimeError: boom" in obj["exc"] and "Traceback" in obj["exc"]


def test_fields_never_overwrite_the_record_keys():
    obj = json.loads(JsonFormatter().format(record("ingest", logging.INFO, "m", at(None, msg="x", level="y"))))
    assert obj["msg"] == "m" and obj["level"] == "info"
