"""Sinks: where the delta goes. `open_sink` picks one from the target URL."""

from __future__ import annotations

from collections.abc import Mapping

from catalog_sync.settings import ConfigurationError, SyncSettings
from catalog_sync.sinks.base import Sink

FILE_SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "az", "memory")


def is_ingestion_api(target_url: str) -> bool:
    return target_url.split("://", 1)[0].lower() in ("http", "https") if "://" in target_url else False


def open_sink(settings: SyncSettings, store_view_locales: Mapping[str, str] | None = None) -> Sink:
    """The sink for `settings.target_url`. `store_view_locales` (store view code -> Magento
    locale) is needed by the ingestion API, whose deletes name a locale, not a store view."""
    url = settings.target_url
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme in FILE_SCHEMES:
        from catalog_sync.sinks.file_sink import FileSink

        return FileSink(url)
    if scheme in ("http", "https"):
        from catalog_sync.sinks.ingestion_api import IngestionApiSink, website_price_book

        return IngestionApiSink(
            url, _auth(settings), batch_size=settings.batch_size,
            max_requests_per_minute=settings.max_requests_per_minute or None, timeout_s=settings.http_timeout_s,
            store_view_locales=store_view_locales, price_book_id=website_price_book(settings.price_books),
        )
    raise ConfigurationError(f"unsupported target URL scheme {scheme!r}: use file://PATH or the ingestion API's https:// URL")


def _auth(settings: SyncSettings):
    from catalog_sync.ingestion.auth import ImsClientCredentials, StaticToken

    if settings.target_token:
        return StaticToken(settings.target_token)
    ims = settings.target_ims
    if ims:
        missing = [k for k in ("token_url", "client_id", "client_secret", "scope") if not ims.get(k)]
        if missing:
            raise ConfigurationError(f"IMS credentials are incomplete: missing {', '.join(missing)}")
        return ImsClientCredentials(ims["token_url"], ims["client_id"], ims["client_secret"], ims["scope"])
    raise ConfigurationError(
        "the ingestion API target needs credentials: a bearer token (CATALOG_SYNC_TARGET_TOKEN, or the "
        "catalog_sync_target Connection's password) or IMS client credentials (CATALOG_SYNC_IMS_*, or the "
        "Connection's extras ims_token_url, ims_client_id, ims_scope with the client secret as password)"
    )


def check_distinct_locales(store_view_locales: Mapping[str, str]) -> None:
    """The ingestion API keys products by (sku, locale): two store views on one locale would overwrite each other."""
    by_locale: dict[str, list[str]] = {}
    for view, locale in store_view_locales.items():
        by_locale.setdefault(locale, []).append(view)
    clashes = {locale: views for locale, views in by_locale.items() if len(views) > 1}
    if clashes:
        described = "; ".join(f"{', '.join(sorted(v))} -> {locale}" for locale, v in sorted(clashes.items()))
        raise ConfigurationError(
            f"store views share a locale ({described}): the ingestion API keeps one product per sku and locale. "
            "Give each store view its own general/locale/code in Magento (choosing one view per locale is not supported yet)"
        )
