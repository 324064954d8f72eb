"""Operations: what runs beside the data path (peer credentials, ...)."""
