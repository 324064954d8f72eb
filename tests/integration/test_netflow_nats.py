"""NetFlow/IPFIX flows over NATS: a sensor's ``--sink nats://`` publishes its
flow records on ``PREFIX.<sensor>.flow`` (EVE-shaped lines with their
``exporter`` member), and ``ingest collect`` stores them: the central store
then holds, for that sensor, the rows the sensor's own store holds, and
correlates them with the alerts it has."""

from __future__ import annotations

import socket

from ingest.sinks import rows as R

from ..natsserver import unique_prefix
from ._nats import Proc, collector, count, query, wait_for
from .test_netflow import captures


def test_netflow_flows_travel_over_nats_into_the_collectors_store(tmp_path, nats_server):
    prefix = unique_prefix()
    url = f"nats://{nats_server.url}/{prefix}"
    d = tmp_path / "sensor"
    d.mkdir()
    own = d / "own.db"
    p = Proc(d, "listen", "--sensor-name", "edge1", "--netflow", "udp://127.0.0.1:0",
             "--sink", f"sqlite:{own}", "--sink", url, "--dead-letter", str(d / "dl.bin"),
             "--stats-interval", "0.5", ready="ingest: listening on")
    port = int(p.stderr().split("netflow:udp://127.0.0.1:")[1].split(";")[0].split(",")[0].split()[0])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for name in ("pmacct-v5.bin.gz", "pmacct-v9.bin.gz", "pmacct-ipfix.bin.gz"):
        for dgram in captures(name):
            s.sendto(dgram, ("127.0.0.1", port))
    s.close()
    want = 21 + 25 + 25
    wait_for(lambda: own.exists() and count(own, "SELECT count(*) FROM flows") >= want, "the sensor's store", p)
    st = p.stop()
    assert st["dropped"] == {} and st["netflow_flows"] == want, st
    db = tmp_path / "central.db"
    c = collector(tmp_path, url, "--sink", f"sqlite:{db}", "--dead-letter", str(tmp_path / "dl.bin"))
    wait_for(lambda: db.exists() and count(db, "SELECT count(*) FROM flows") >= want, "the central store", c)
    st = c.stop()
    assert st["malformed"] == {} and st["dead_letters"] == 0, st
    cols = ", ".join(f'"{x}"' for x in R.FLOW_COLUMNS)
    central = sorted(query(db, f"SELECT {cols} FROM flows WHERE sensor = 'edge1'"), key=repr)
    assert central == sorted(query(own, f"SELECT {cols} FROM flows"), key=repr)
    assert len(central) == want
    assert dict(query(db, "SELECT source, count(*) FROM flows GROUP BY 1")) == {
        "netflow5": 21, "netflow9": 25, "ipfix": 25}
    assert query(db, "SELECT count(*) FROM flows WHERE tuple_key IS NULL") == [(0,)]
