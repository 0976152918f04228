"""Which target a URL names: chosen by its scheme (file://, s3://... or https://)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog_sync.settings import ConfigurationError
from catalog_sync.targets.base import Target, TargetConfig, TargetKind
from catalog_sync.targets.files.target import FilesKind
from catalog_sync.targets.ingestion_api.target import IngestionApiKind

KINDS: tuple[TargetKind, ...] = (FilesKind(), IngestionApiKind())


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def kind_for_url(url: str) -> TargetKind:
    scheme = scheme_of(url)
    for kind in KINDS:
        if scheme in kind.schemes:
            return kind
    known = ", ".join(f"{s}://" for k in KINDS for s in k.schemes)
    raise ConfigurationError(f"unsupported target URL scheme {scheme!r}: use one of {known}")


def kind_for_connection(conn: Any) -> TargetKind:
    """By the Connection's type; a generic Connection is chosen by the scheme of its URL (extra or host)."""
    for kind in KINDS:
        if conn.conn_type in kind.connection_types:
            return kind
    url = (conn.extra_dejson or {}).get("url") or conn.host or ""
    if "://" not in url:
        types = ", ".join(t for k in KINDS for t in k.connection_types)
        raise ConfigurationError(
            f"Connection {conn.conn_id}: use a connection type of {types}, or put the target URL in host")
    return kind_for_url(url)


def config_from_connection(conn: Any, overrides: Mapping[str, Any] | None = None) -> TargetConfig:
    return kind_for_connection(conn).config_from_connection(conn, overrides)


def config_from_env(url: str, env: Mapping[str, str], flags: Mapping[str, Any] | None = None) -> TargetConfig:
    return kind_for_url(url).config_from_env(url, env, flags or {})


def open_target(config: TargetConfig) -> Target:
    return kind_for_url(config.url).open(config)
