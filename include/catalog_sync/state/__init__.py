"""Where state lives: the location, DuckDB sessions, the snapshot and manifest, staging, the status store."""
