"""Flows: the canonical flow record every flow source produces
(:mod:`ingest.flows.record`: Suricata flow/netflow events, NetFlow v5/v9,
IPFIX), and the correlation of every engine's alerts with the flow they
belong to (:mod:`ingest.flows.correlate`)."""
