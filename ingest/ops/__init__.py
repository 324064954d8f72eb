"""Operations: what runs beside the data path and lets a running ingest be
watched, managed and locked down (logging, peer credentials, systemd
integration, the metrics endpoint, ``ingest top``)."""
