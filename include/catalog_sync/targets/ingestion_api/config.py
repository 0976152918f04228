"""Settings of the Catalog Data Ingestion API target, and of the feeds it (and the file target) sends.

Built from the `catalog_sync_target` Connection (type `catalog_sync_ingestion_api`: the base URL
with the tenant id as host, the bearer token or the IMS client secret as password, the rest as
form fields) or from CLI flags and CATALOG_SYNC_* environment variables. Nothing here is logged
raw: the token and the client secret stay out of repr().
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.settings import ConfigurationError

DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_REQUESTS_PER_MINUTE = 300  # the API's documented limit
DEFAULT_TIMEOUT_S = 30.0
IMS_FIELDS = ("token_url", "client_id", "client_secret", "scope")


@dataclass(frozen=True)
class FeedOptions:
    """How Magento's catalog becomes the API's feeds (the file target writes the same feeds)."""

    # Price book id per Magento website code; a website not listed uses its own code.
    price_books: Mapping[str, str] = field(default_factory=dict)

    def price_book(self, website_code: str) -> str:
        return self.price_books.get(website_code, website_code)


@dataclass(frozen=True)
class IngestionApiConfig:
    url: str  # the base URL with the tenant id: https://<host>/<tenantId>
    feed: FeedOptions = field(default_factory=FeedOptions)
    token: str = field(default="", repr=False)  # a static bearer token, or...
    ims: Mapping[str, str] = field(default_factory=dict, repr=False)  # ...IMS client credentials (IMS_FIELDS)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_requests_per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE  # 0: no client-side limit
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ConfigurationError("the ingestion API's batch size must be a positive integer")
        if self.max_requests_per_minute < 0:
            raise ConfigurationError("max_requests_per_minute must be 0 (no limit) or more")

    def auth(self):
        from catalog_sync.targets.ingestion_api.auth import ImsClientCredentials, StaticToken

        if self.token:
            return StaticToken(self.token)
        if self.ims:
            missing = [k for k in IMS_FIELDS if not self.ims.get(k)]
            if missing:
                raise ConfigurationError(f"IMS credentials are incomplete: missing {', '.join(missing)}")
            return ImsClientCredentials(self.ims["token_url"], self.ims["client_id"], self.ims["client_secret"],
                                        self.ims["scope"], timeout_s=self.timeout_s)
        raise ConfigurationError(
            "the ingestion API target needs credentials: a bearer token (CATALOG_SYNC_TARGET_TOKEN, or the "
            "catalog_sync_target Connection's password) or IMS client credentials (CATALOG_SYNC_IMS_*, or the "
            "Connection's IMS token URL, client id and scope with the client secret as password)"
        )


def parse_price_books(text: str | Mapping[str, Any] | None) -> dict[str, str]:
    """`website=price_book_id` pairs, comma-separated (or a mapping)."""
    if not text:
        return {}
    if isinstance(text, Mapping):
        pairs = list(text.items())
    else:
        pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in (x.strip() for x in text.split(",")) if p]
    books = {str(k).strip(): str(v).strip() for k, v in pairs}
    bad = sorted(k for k, v in books.items() if not k or not v)
    if bad:
        raise ConfigurationError(f"price books must be website=price_book_id pairs; check {', '.join(bad) or 'an empty website'}")
    return books


def feed_options(extra: Mapping[str, Any], flags: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> FeedOptions:
    flags, env = flags or {}, env or {}
    books = flags.get("price_books") or env.get("CATALOG_SYNC_PRICE_BOOKS") or extra.get("price_books")
    return FeedOptions(price_books=parse_price_books(books))


def _int(value: Any, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}") from None


def config_from_connection(conn: Any, overrides: Mapping[str, Any] | None = None) -> IngestionApiConfig:
    """From the catalog_sync_target Connection. `overrides` (e.g. the batch size Variable) win."""
    extra = conn.extra_dejson or {}
    overrides = overrides or {}
    url = extra.get("url") or conn.host
    if not url or "://" not in url:
        raise ConfigurationError(
            f"Connection {conn.conn_id}: set the API's base URL with the tenant id as host, "
            "e.g. https://na1.api.commerce.adobe.com/<tenantId>")
    ims = {}
    if extra.get("ims_token_url"):
        ims = {"token_url": extra["ims_token_url"], "client_id": extra.get("ims_client_id", ""),
               "client_secret": conn.password or "", "scope": extra.get("ims_scope", "")}
    return IngestionApiConfig(
        url=url,
        feed=feed_options(extra),
        token="" if ims else (conn.password or ""),
        ims=ims,
        batch_size=_int(overrides.get("batch_size") or extra.get("batch_size"), "batch_size", DEFAULT_BATCH_SIZE),
        max_requests_per_minute=_int(extra.get("max_requests_per_minute"), "max_requests_per_minute",
                                     DEFAULT_MAX_REQUESTS_PER_MINUTE),
        timeout_s=float(extra.get("timeout_s") or DEFAULT_TIMEOUT_S),
    )


def config_from_env(url: str, env: Mapping[str, str], flags: Mapping[str, Any]) -> IngestionApiConfig:
    """CLI flags win; CATALOG_SYNC_* environment variables fill the rest (the place for secrets)."""
    return IngestionApiConfig(
        url=url,
        feed=feed_options({}, flags, env),
        token=env.get("CATALOG_SYNC_TARGET_TOKEN", ""),
        ims={k: env[f"CATALOG_SYNC_IMS_{k.upper()}"] for k in IMS_FIELDS if env.get(f"CATALOG_SYNC_IMS_{k.upper()}")},
        batch_size=_int(flags.get("batch_size") or env.get("CATALOG_SYNC_BATCH_SIZE"), "batch size", DEFAULT_BATCH_SIZE),
        max_requests_per_minute=_int(env.get("CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE"),
                                     "CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE", DEFAULT_MAX_REQUESTS_PER_MINUTE),
        timeout_s=float(env.get("CATALOG_SYNC_HTTP_TIMEOUT_S") or DEFAULT_TIMEOUT_S),
    )
