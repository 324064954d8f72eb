"""Flows: the records of traffic that alerts are joined to, and the
correlation of every engine's alerts with the flow they belong to
(:mod:`ingest.flows.correlate`)."""
