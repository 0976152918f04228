"""Settings of one Catalog Sync deployment.

`SyncSettings` is filled either from CLI flags and environment variables
(`from_env`) or from Airflow Connections and Variables
(`catalog_sync.airflow_settings.load_settings`). The engine only ever sees this
dataclass, never Airflow. URLs may hold secrets: never log them raw, use
`redact_url`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

DEFAULT_CHUNK_SIZE = 10000
DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_REQUESTS_PER_MINUTE = 300  # the ingestion API's documented limit
DEFAULT_LOCK_TTL_S = 6 * 3600
DEFAULT_KEEP_SNAPSHOT_VERSIONS = 3


class ConfigurationError(ValueError):
    """Settings are wrong; the message says what to fix."""


@dataclass(frozen=True)
class SyncSettings:
    # URLs and credentials may hold secrets: kept out of repr() so they never reach a log.
    source_url: str = field(repr=False)
    target_url: str
    state_url: str
    status_url: str = field(default="", repr=False)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    buckets: int = 1  # hash buckets of sku; each runs its own extract/diff/export (mapped tasks)
    # Ingestion API targets: a static bearer token, or IMS client credentials
    # ({"token_url", "client_id", "client_secret", "scope"}).
    target_token: str = field(default="", repr=False)
    target_ims: dict = field(default_factory=dict, repr=False)
    max_requests_per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    http_timeout_s: float = 30.0  # per request to the ingestion API
    # fsspec options of an object-storage state URL (s3fs: key, secret, client_kwargs...).
    state_storage_options: dict = field(default_factory=dict, repr=False)
    # The run's instant, pinned (CATALOG_SYNC_NOW): every date question of a run is answered at it.
    # None: the moment the run is planned. Set for tests and replays only (see run_clock).
    now: datetime | None = None
    # Price book id per Magento website code; a website not listed uses its own code.
    price_books: dict = field(default_factory=dict)
    lock_ttl_s: int = DEFAULT_LOCK_TTL_S
    keep_snapshot_versions: int = DEFAULT_KEEP_SNAPSHOT_VERSIONS
    target_name: str = "default"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.source_url:
            raise ConfigurationError("source URL is missing: set --source-url or the catalog_sync_source Connection")
        if not self.target_url:
            raise ConfigurationError("target URL is missing: set --target-url or the catalog_sync_target Connection")
        if not self.state_url:
            raise ConfigurationError("state URL is missing: set --state-url or the catalog_sync_state_url Variable")
        if self.chunk_size <= 0 or self.batch_size <= 0:
            raise ConfigurationError("chunk_size and batch_size must be positive integers")
        if not self.status_url:
            object.__setattr__(self, "status_url", default_status_url(self.state_url))

    @classmethod
    def from_env(cls, **overrides: object) -> "SyncSettings":
        """CLI flags win; CATALOG_SYNC_* environment variables fill the rest."""
        env = os.environ
        values: dict[str, object] = {
            "source_url": env.get("CATALOG_SYNC_SOURCE_URL", ""),
            "target_url": env.get("CATALOG_SYNC_TARGET_URL", ""),
            "state_url": env.get("CATALOG_SYNC_STATE_URL", ""),
            "status_url": env.get("CATALOG_SYNC_STATUS_URL", ""),
            "chunk_size": int(env.get("CATALOG_SYNC_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)),
            "batch_size": int(env.get("CATALOG_SYNC_BATCH_SIZE", DEFAULT_BATCH_SIZE)),
            "buckets": int(env.get("CATALOG_SYNC_BUCKETS", 1)),
            "target_token": env.get("CATALOG_SYNC_TARGET_TOKEN", ""),
            "target_ims": {
                key: env[f"CATALOG_SYNC_IMS_{key.upper()}"]
                for key in ("token_url", "client_id", "client_secret", "scope")
                if env.get(f"CATALOG_SYNC_IMS_{key.upper()}")
            },
            "max_requests_per_minute": int(env.get("CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE", DEFAULT_MAX_REQUESTS_PER_MINUTE)),
            "http_timeout_s": float(env.get("CATALOG_SYNC_HTTP_TIMEOUT_S", 30.0)),
            "price_books": parse_price_books(env.get("CATALOG_SYNC_PRICE_BOOKS", "")),
            "now": pinned_instant(env),
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return cls(**values)  # type: ignore[arg-type]


def pinned_instant(env: Mapping[str, str]) -> datetime | None:
    """The run instant pinned by CATALOG_SYNC_NOW, if any (CATALOG_SYNC_TODAY is gone: say so)."""
    from catalog_sync.run_clock import PIN_ENV, parse_instant

    if env.get("CATALOG_SYNC_TODAY"):
        raise ConfigurationError(
            f"CATALOG_SYNC_TODAY is replaced by {PIN_ENV}, an instant: e.g. {PIN_ENV}={env['CATALOG_SYNC_TODAY']}T12:00:00Z")
    return parse_instant(env[PIN_ENV]) if env.get(PIN_ENV) else None


def parse_price_books(text: str | dict) -> dict[str, str]:
    """`website=price_book_id` pairs, comma-separated (or a mapping, from a Connection extra)."""
    if isinstance(text, dict):
        pairs = list(text.items())
    else:
        pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in (x.strip() for x in text.split(",")) if p]
    books = {str(k).strip(): str(v).strip() for k, v in pairs}
    bad = sorted(k for k, v in books.items() if not k or not v)
    if bad:
        raise ConfigurationError(f"price books must be website=price_book_id pairs; check {', '.join(bad) or 'an empty website'}")
    return books


def default_status_url(state_url: str) -> str:
    """The embedded default: a SQLite status store beside a local snapshot."""
    if "://" in state_url and not state_url.startswith("file://"):
        raise ConfigurationError(
            "the state lives on object storage, so the status store cannot default to a local SQLite file: "
            "set --status-url or the catalog_sync_status Connection"
        )
    local = Path(state_url.removeprefix("file://")).resolve()
    return f"sqlite:///{local / 'status.db'}"


def redact_url(url: str) -> str:
    """A URL that is safe to log: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (file://, http://)
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url
