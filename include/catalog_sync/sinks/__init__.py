"""Sinks: where the delta goes. `open_sink` picks one from the target URL."""

from __future__ import annotations

from catalog_sync.settings import ConfigurationError
from catalog_sync.sinks.base import Sink


def open_sink(target_url: str) -> Sink:
    scheme = target_url.split("://", 1)[0].lower() if "://" in target_url else "file"
    if scheme in ("file", "s3", "gs", "gcs", "abfs", "az", "memory"):
        from catalog_sync.sinks.file_sink import FileSink

        return FileSink(target_url)
    if scheme in ("http", "https"):
        raise ConfigurationError(
            "http(s):// targets need the Catalog Data Ingestion API sink, which this version does not ship yet; "
            "use a file:// target"
        )
    raise ConfigurationError(f"unsupported target URL scheme {scheme!r}: use file://PATH")
