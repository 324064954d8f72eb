"""Made with ingest at fe4cc6b (store schema version 5, the last whose flows
key was a table constraint): the store of make_schema2.py, then IPFIX
records -- the late flow of the alert no flow held, and one record received
twice (NetFlow over UDP is at-least-once: two rows) -- correlated."""
import asyncio
import runpy
import sys

from ingest import batch as B
from ingest.flows import record as FR
from ingest.mapping import Enricher
from ingest.sinks.sqlite import SqliteSink

sys.argv = [sys.argv[0], sys.argv[1]]
base = runpy.run_path(__file__.replace("make_schema5.py", "make_schema2.py"))  # writes the schema-2 story
T0, S, addr = base["T0"], base["S"], base["addr"]


def ipfix(rows):
    r = FR.empty(len(rows))
    for i, (src, sp, dst, dp, start, end) in enumerate(rows):
        r[i]["src_addr"], r[i]["dst_addr"], r[i]["src_port"], r[i]["dst_port"] = addr(src), addr(dst), sp, dp
        r[i]["proto"], r[i]["ip_ver"], r[i]["start_us"], r[i]["end_us"] = 6, 4, start, end
        r[i]["pkts"], r[i]["bytes"], r[i]["source"] = 4, 400, FR.FLOW_SRC_IPFIX
        r[i]["flags"] = FR.FF_ADDRS | FR.FF_PORTS
    return Enricher().apply(B.AlertBatch(B.empty(0), [], "ipfix", events=FR.event_batch(FR.FlowBatch(r, [], "t"))))


async def main(path):
    sink = SqliteSink(path, sensor="old-sensor", correlate_slack=2.0)
    late = ("192.0.2.9", 80, "10.0.0.3", 5, T0 + 1 * S, T0 + 3 * S)
    await sink.write(ipfix([late, ("10.0.0.4", 6000, "192.0.2.11", 22, T0, T0 + S)]))
    await sink.write(ipfix([("10.0.0.4", 6000, "192.0.2.11", 22, T0, T0 + S)]))  # received again
    await sink.aclose()

asyncio.run(main(sys.argv[1]))
