"""IRGL data: the official parquet format, the six learning modes, and dataset builders."""
