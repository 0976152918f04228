"""The Catalog Data Ingestion API as a target: its feeds, its mapping and its client, together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from catalog_sync.magento import categories
from catalog_sync.magento.catalog_reader import CatalogContext
from catalog_sync.targets.base import DELETE, FeedItem, FeedSpec, ItemResult, SendItem, canonical, source_fingerprint
from catalog_sync.targets.ingestion_api import config as api_config
from catalog_sync.targets.ingestion_api import feeds, layers, mapping
from catalog_sync.targets.ingestion_api.client import IngestionApiClient
from catalog_sync.targets.ingestion_api.config import IngestionApiConfig
from catalog_sync.targets.ingestion_api.connection import FORM
from catalog_sync.targets.ingestion_api.feeds import ENDPOINTS, FEEDS
from catalog_sync.targets.ingestion_api.mapping import CatalogMapper, adopted_items

# What clears a field of a held category in a PATCH, which merges scalars and objects and replaces arrays:
# FeedCategoryUpdate lets `description` be null; metaTags' fields cannot be, so they are emptied.
_CLEARED_META_TAGS = {"title": "", "description": "", "keywords": []}


def category_update(previous: str, body: str) -> str:
    """A FeedCategoryUpdate that makes the held category (`previous`) read as `body` (both canonical JSON)."""
    held, wanted = orjson.loads(previous), orjson.loads(body)
    patch = dict(wanted)
    for field, value in held.items():
        if field == "metaTags":
            kept = wanted.get("metaTags") or {}
            patch["metaTags"] = {**{k: _CLEARED_META_TAGS.get(k, "") for k in value if k not in kept}, **kept}
        elif field not in wanted:
            patch[field] = [] if isinstance(value, list) else None
    return canonical(patch).decode()


class IngestionApiTarget:
    feeds = FEEDS

    def __init__(self, config: IngestionApiConfig, **client_options: Any):
        self.config = config
        self.description = f"the Catalog Data Ingestion API at {config.url.rstrip('/')}"
        self._client_options = client_options
        self._client: IngestionApiClient | None = None
        self._senders = 1

    def mapper(self, ctx: CatalogContext) -> CatalogMapper:
        return CatalogMapper(ctx, self.config.feed)

    def mapping_fingerprint(self) -> str:
        return source_fingerprint(mapping, feeds, layers, categories, options=sorted(self.config.feed.price_books.items()))

    def adopt(self, record: dict[str, Any]) -> Iterator[FeedItem]:
        # Earlier releases sent each product as this mapping makes it; prices were never kept.
        return adopted_items(record, self.config.feed, with_bodies=True)

    @property
    def client(self) -> IngestionApiClient:
        if self._client is None:  # only a step that sends needs credentials and a connection pool
            c = self.config
            limit = c.max_requests_per_minute / self._senders if c.max_requests_per_minute else None
            self._client = IngestionApiClient(
                c.url, c.auth(), batch_size=c.batch_size, max_requests_per_minute=limit, timeout_s=c.timeout_s,
                **self._client_options)
        return self._client

    def share_limits(self, senders: int) -> None:
        if self._client is not None:
            raise RuntimeError("share_limits must come before the first send")
        self._senders = max(1, senders)

    def send(self, feed: FeedSpec, op: str, items: Iterable[SendItem], batch_key: str) -> Iterator[ItemResult]:
        upsert_path, delete_path = ENDPOINTS[feed.name]
        path = delete_path if op == DELETE else upsert_path
        if feed.name == feeds.CATEGORIES.name:
            return self._send_by_level(path, op, items)
        return self.client.send(path, items)

    def _send_by_level(self, path: str, op: str, items: Iterable[SendItem]) -> Iterator[ItemResult]:
        """Categories one slug depth at a time, each depth done before the next starts (the client sends
        batches side by side): upserts parents first, so a child's parent exists; deletes deepest first, so
        that deleting a parent never cascades to a child deleted in this run, and re-creating that parent
        later (the contract restores what its delete took, within a week) brings back no stale child.
        The contract's POST creates a category and its PATCH updates one: a category the target holds
        (`previous`) goes as a PATCH of what changed (category_update)."""
        by_depth: dict[int, list[SendItem]] = {}
        for item in items:
            slug = orjson.loads(item.key).get("slug") or ""
            by_depth.setdefault(slug.count("/"), []).append(item)
        for depth in sorted(by_depth, reverse=op == DELETE):
            level = by_depth[depth]
            created = [i for i in level if i.previous is None or i.body is None]
            updated = [SendItem(i.key, category_update(i.previous, i.body)) for i in level
                       if i.previous is not None and i.body is not None]
            if created:
                yield from self.client.send(path, created)
            if updated:
                yield from self.client.send(path, updated, method="PATCH")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class IngestionApiKind:
    name = "ingestion_api"
    schemes = ("http", "https")
    connection_types = (FORM.conn_type,)

    def config_from_connection(self, conn: Any, overrides: Mapping[str, Any] | None = None) -> IngestionApiConfig:
        return api_config.config_from_connection(conn, overrides)

    def config_from_env(self, url: str, env: Mapping[str, str], flags: Mapping[str, Any]) -> IngestionApiConfig:
        return api_config.config_from_env(url, env, flags)

    def open(self, config: IngestionApiConfig) -> IngestionApiTarget:
        return IngestionApiTarget(config)
