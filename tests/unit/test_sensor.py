"""The sensor dimension: ``--sensor-name``, ``AlertBatch.sensor``, the
``sensor`` column and the unique keys of the SQLite store (many sensors in
one store), the migration of a store written before it, and the shared
row builder (ingest.sinks.rows)."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import pytest

from ingest import batch as B
from ingest import cli, config, isolate
from ingest.eve import decode_lines
from ingest.mapping import Enricher
from ingest.runtime import Pipeline
from ingest.sinks import rows as R
from ingest.sinks.base import open_sink
from ingest.sinks.sqlite import SCHEMA_VERSION, SqliteSink

# ---- the name -------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "sensor-01", "dmz.fw_2", "x" * 64, "A.b.C"])
def test_sensor_names_accepted(name):
    assert config.check_sensor_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, ".a", "a.", "a..b", "a b", "a/b", "a*", "a>", "é",
                                  "a\nb"])
def test_sensor_names_refused(name):
    with pytest.raises(ValueError, match="no sensor name"):
        config.check_sensor_name(name)


@pytest.mark.parametrize("host,want", [
    ("sensor1.example.com", "sensor1.example.com"),
    ("weird host/name", "weird_host_name"),
    (".lead..dots.", "lead.dots"),
    ("", "localhost"),
    ("h" * 100, "h" * 64),
])
def test_default_sensor_name_is_the_host_name_made_valid(monkeypatch, host, want):
    monkeypatch.setattr(config.socket, "gethostname", lambda: host)
    got = config.default_sensor_name()
    assert got == want and config.check_sensor_name(got)
    assert config.Config().sensor == want


def test_sensor_name_flag_and_file(tmp_path):
    assert cli.parse_args(["listen", "--snort", "x", "--sensor-name", "s-1"]).sensor == "s-1"
    f = tmp_path / "c.toml"
    f.write_text('snort = "x"\nsensor_name = "from-file"\n')
    assert cli.parse_args(["listen", "--config", str(f)]).sensor == "from-file"
    assert cli.parse_args(["listen", "--config", str(f), "--sensor-name", "flag"]).sensor == "flag"
    f.write_text('snort = "x"\n\nsensor_name = "bad name"\n')
    with pytest.raises(ValueError, match=r"c\.toml:3: sensor_name: 'bad name' is no sensor name"):
        cli.parse_args(["listen", "--config", str(f)])


def test_bad_sensor_name_flag_is_a_usage_error(capsys):
    for argv in (["listen", "--snort", "x", "--sensor-name", "a..b"], ["decode", "f", "--sensor-name", ".x"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "--sensor-name: " in capsys.readouterr().err


# ---- batches --------------------------------------------------------------


def _batch(sensor: str, n: int = 2, sid0: int = 1) -> B.AlertBatch:
    a = B.empty(n)
    a["gid"], a["sid"], a["rev"], a["source"] = 1, np.arange(sid0, sid0 + n), 1, B.SRC_SNORT
    a["ts_us"] = 1_700_000_000_000_000 + np.arange(n)
    return B.AlertBatch(a, [], "t", sensor=sensor)


def test_concat_keeps_the_sensor_and_refuses_two():
    assert B.AlertBatch.concat([_batch("s1"), _batch("s1")]).sensor == "s1"
    with pytest.raises(ValueError, match="different sensors"):
        B.AlertBatch.concat([_batch("s1"), _batch("s2")])
    with pytest.raises(ValueError, match="different sensors"):
        B.AlertBatch.concat([_batch(""), _batch("s2")])


def test_the_runtime_never_joins_batches_of_two_sensors():
    p = Pipeline([], [], batch_max=1000)
    for s in ("a", "a", "b", "b", "", "a"):
        p.submit(_batch(s))
    taken = []
    while p._dq:
        b, _ = p._take()
        taken.append((b.sensor, len(b)))
    assert taken == [("a", 4), ("b", 4), ("", 2), ("a", 2)]


def test_isolated_parts_keep_the_sensor():
    item = Enricher().apply(_batch("far", 5))
    assert {isolate.part(item, i, i + 1).batch.sensor for i in range(5)} == {"far"}


# ---- the SQLite store -----------------------------------------------------


def _u2(sensor: str) -> B.AlertBatch:
    """The same Unified2 event, flow and replay key, as any sensor could send them."""
    a = B.empty(2)
    a["source"] = [B.SRC_UNIFIED2, B.SRC_EVE]
    a["gid"], a["sid"], a["rev"], a["event_id"] = 1, [10, 20], 1, 7
    a["ts_us"] = 1_700_000_000_000_000
    b = B.AlertBatch(a, [], "t", keys=np.array([0, 99], np.int64), sensor=sensor)
    b.events = decode_lines(b'{"timestamp":"2024-05-01T12:00:00+0000","event_type":"flow",'
                            b'"flow_id":5,"src_ip":"10.0.0.1","src_port":1,'
                            b'"flow":{"pkts_toserver":1}}\n').batch.events
    return b


def _write(sink, *batches) -> None:
    async def go():
        for b in batches:
            await sink.write(Enricher().apply(b))
        await sink.aclose()

    asyncio.run(go())


def _q(db, sql):
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def test_two_sensors_share_a_store_and_each_stores_once(tmp_path):
    """Before the sensor was part of the keys, the second sensor's event
    (same Unified2 event id, same replay key, same flow) was taken for a
    re-delivery: ignored (alerts) or replacing the first sensor's (flows)."""
    db = tmp_path / "a.db"
    # "" is this process's own sensor: the sink's name
    _write(SqliteSink(str(db), sensor="home"), _u2(""), _u2("s1"), _u2("s2"), _u2("s1"), _u2(""))
    assert _q(db, "SELECT sensor, source, count(*) FROM alerts GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("home", "eve", 1), ("home", "unified2", 1), ("s1", "eve", 1), ("s1", "unified2", 1),
        ("s2", "eve", 1), ("s2", "unified2", 1)]
    assert _q(db, "SELECT sensor, flow_id FROM flows ORDER BY 1") == [("home", 5), ("s1", 5), ("s2", 5)]
    assert _q(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_open_sink_gives_the_store_its_sensor(tmp_path, monkeypatch):
    monkeypatch.setattr(config.socket, "gethostname", lambda: "the-host")
    _write(open_sink(f"sqlite:{tmp_path / 'a.db'}", sensor="named"), _batch(""))
    _write(open_sink(f"sqlite:{tmp_path / 'b.db'}"), _batch(""))
    assert _q(tmp_path / "a.db", "SELECT DISTINCT sensor FROM alerts") == [("named",)]
    assert _q(tmp_path / "b.db", "SELECT DISTINCT sensor FROM alerts") == [("the-host",)]


#: the schema a store had before the sensor (and before versions): what the
#: released ingest created, so an existing store on a sensor looks like this
OLD_SCHEMA = """
CREATE TABLE signatures (gid INTEGER NOT NULL, sid INTEGER NOT NULL, rev INTEGER NOT NULL, msg TEXT,
    refs TEXT, PRIMARY KEY (gid, sid, rev)) WITHOUT ROWID;
CREATE TABLE alerts (id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, timestamp TEXT NOT NULL,
    source TEXT NOT NULL, sensor_id INTEGER, event_id INTEGER, gid INTEGER NOT NULL,
    sid INTEGER NOT NULL, rev INTEGER NOT NULL, class_id INTEGER, category TEXT, priority INTEGER,
    action TEXT, proto INTEGER, ip_ver INTEGER, src_ip TEXT, src_port INTEGER, dest_ip TEXT,
    dest_port INTEGER, icmp_type INTEGER, icmp_code INTEGER, vlan INTEGER, flow_id INTEGER,
    app_name TEXT, replay_key INTEGER);
CREATE INDEX alerts_ts ON alerts (ts_us);
CREATE TABLE flows (flow_id INTEGER NOT NULL, event_type TEXT NOT NULL, src_ip TEXT, src_port INTEGER,
    dest_ip TEXT, dest_port INTEGER, proto TEXT, app_proto TEXT, start TEXT, "end" TEXT,
    start_us INTEGER, end_us INTEGER, pkts_toserver INTEGER, pkts_toclient INTEGER,
    bytes_toserver INTEGER, bytes_toclient INTEGER, state TEXT, reason TEXT, alerted INTEGER,
    UNIQUE (flow_id, event_type, src_ip, src_port));
CREATE INDEX flows_flow ON flows (flow_id);
CREATE UNIQUE INDEX alerts_u2_key ON alerts (sensor_id, event_id, ts_us, gid, sid, rev)
    WHERE source = 'unified2';
CREATE UNIQUE INDEX alerts_by2_key ON alerts (sensor_id, event_id, ts_us, gid, sid, rev)
    WHERE source = 'barnyard2';
CREATE UNIQUE INDEX alerts_replay ON alerts (replay_key) WHERE replay_key IS NOT NULL;
CREATE VIEW alerts_v AS SELECT a.*, s.msg AS signature, s.refs AS refs FROM alerts a
    LEFT JOIN signatures s ON s.gid = a.gid AND s.sid = a.sid AND s.rev = a.rev;
INSERT INTO alerts (ts_us, timestamp, source, sensor_id, event_id, gid, sid, rev, replay_key)
    VALUES (1700000000000000, 'x', 'unified2', 0, 7, 1, 10, 1, NULL),
           (1700000000000000, 'x', 'eve', 0, 7, 1, 20, 1, 99);
INSERT INTO flows (flow_id, event_type, src_ip, src_port, pkts_toserver)
    VALUES (5, 'flow', '10.0.0.1', 1, 1), (6, 'flow', '10.0.0.1', 1, 1);
"""


def test_a_store_from_before_the_sensor_is_migrated(tmp_path):
    db = tmp_path / "old.db"
    c = sqlite3.connect(db)
    c.executescript(OLD_SCHEMA)
    c.close()
    # the same records read again after the upgrade (a Unified2 spool, an
    # eve.json replayed), then another sensor's
    _write(SqliteSink(str(db), sensor="this-host"), _u2(""), _u2("other"))
    assert _q(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert _q(db, "SELECT sensor, source, sid FROM alerts ORDER BY id") == [
        ("this-host", "unified2", 10), ("this-host", "eve", 20),
        ("other", "unified2", 10), ("other", "eve", 20)]
    # flow 5 read again replaced its migrated row (a new id), flow 6 kept its own
    assert _q(db, "SELECT id, sensor, flow_id, pkts_toserver FROM flows ORDER BY flow_id, sensor") == [
        (4, "other", 5, 1), (3, "this-host", 5, 1), (2, "this-host", 6, 1)]
    for index in ("alerts_u2_key", "alerts_by2_key", "alerts_replay"):
        assert _q(db, f"PRAGMA index_info({index})")[0][2] == "sensor", index
    assert "sensor" in [r[1] for r in _q(db, "PRAGMA table_info(alerts_v)")]
    # and once migrated, a restart changes nothing
    _write(SqliteSink(str(db), sensor="third"), _u2("other"))
    assert _q(db, "SELECT count(*) FROM alerts") == [(4,)]


def test_a_newer_store_is_refused(tmp_path):
    db = tmp_path / "new.db"
    _write(SqliteSink(str(db)))
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(ValueError, match=f"schema version {SCHEMA_VERSION + 1} was written by a newer"):
        SqliteSink(str(db))


def test_nul_in_text_is_stored_as_replacement_character(tmp_path):
    """PostgreSQL text cannot hold NUL; both stores keep U+FFFD instead."""
    b = _batch("", 2)
    b.strings = ["msg\0x", "app\0"]
    b.alerts["msg_idx"] = 0
    b.alerts["app_idx"] = [1, -1]
    item = Enricher({0: "cat\0"}).apply(b)
    cols = dict(zip(R.ALERT_COLUMNS, R.alert_columns(item, "s"), strict=True))
    assert cols["app_name"] == ["app\ufffd", None] and cols["category"] == ["cat\ufffd"] * 2
    assert R.signature_rows(item)[0][3] == "msg\ufffdx"
    db = tmp_path / "a.db"
    _write(SqliteSink(str(db)), b)
    assert _q(db, "SELECT DISTINCT signature, app_name FROM alerts_v ORDER BY 2") == [
        ("msg\ufffdx", None), ("msg\ufffdx", "app\ufffd")]


def test_rows_cover_every_store_column(tmp_path):
    """The builder's columns are the store's, in its order (id aside)."""
    db = tmp_path / "a.db"
    _write(SqliteSink(str(db)))
    assert [r[1] for r in _q(db, "PRAGMA table_info(alerts)")] == ["id", *R.ALERT_COLUMNS, *R.ALERT_LINK_COLUMNS]
    assert [r[1] for r in _q(db, "PRAGMA table_info(flows)")] == ["id", *R.FLOW_COLUMNS, *R.FLOW_LINK_COLUMNS]
    assert [r[1] for r in _q(db, "PRAGMA table_info(signatures)")] == list(R.SIGNATURE_COLUMNS)
