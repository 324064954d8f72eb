"""Operations: what runs beside the data path (logging, peer credentials, metrics, ingest top)."""
