"""The file target: the ingestion API's feeds as JSONL files in a folder (local, or any fsspec URL).

A folder holds exactly what the API would have received, in the order it would have: one
file per feed and part of each send of a run, named `deltas/<run key>/<NN>-<feed>[-bNNN].jsonl`,
where NN is the send's place in the run (upserts in feed order, then deletes in reverse).
Each line is `{"op": "upsert" | "delete", "feed": ..., "key": {...}, "body": {...}}`; a
delete's body is its key, as the API's delete endpoints take it. A re-run export replaces
its own file, so replaying the files in name order (`replay`) gives the target's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsspec.core import url_to_fs

from catalog_sync.magento import categories
from catalog_sync.magento.catalog_reader import CatalogContext
from catalog_sync.settings import ConfigurationError
from catalog_sync.targets.base import DELETE, OK, FeedItem, FeedSpec, ItemResult, SendItem, source_fingerprint
from catalog_sync.targets.files.connection import FORM
from catalog_sync.targets.ingestion_api import feeds, layers, mapping
from catalog_sync.targets.ingestion_api.config import FeedOptions, feed_options
from catalog_sync.targets.ingestion_api.feeds import FEEDS
from catalog_sync.targets.ingestion_api.mapping import CatalogMapper, adopted_items

DELTA_FOLDER = "deltas"
FILE_SCHEMES = ("file", "s3", "gs", "gcs", "abfs", "az", "memory")


@dataclass(frozen=True)
class FilesConfig:
    url: str
    feed: FeedOptions = field(default_factory=FeedOptions)


class FilesTarget:
    feeds = FEEDS

    def __init__(self, config: FilesConfig):
        self.config = config
        self.fs, root = url_to_fs(config.url)
        self.root = root.rstrip("/")
        self.description = f"JSONL files in {config.url}"

    def mapper(self, ctx: CatalogContext) -> CatalogMapper:
        return CatalogMapper(ctx, self.config.feed)

    def mapping_fingerprint(self) -> str:
        return source_fingerprint(mapping, feeds, layers, categories, options=sorted(self.config.feed.price_books.items()))

    def adopt(self, record: dict[str, Any]) -> Iterator[FeedItem]:
        # Earlier releases wrote Magento's records, not these bodies: every item is written once
        # more in this format (its key is kept, so a delete is still written for what is gone).
        return adopted_items(record, self.config.feed, with_bodies=False)

    def send(self, feed: FeedSpec, op: str, items: Iterable[SendItem], batch_key: str) -> Iterator[ItemResult]:
        final = f"{self.root}/{DELTA_FOLDER}/{batch_key}.jsonl"
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex}"
        head = f'{{"op":"{op}","feed":"{feed.name}","key":'.encode()
        results: list[ItemResult] = []
        with self.fs.open(tmp, "wb") as fh:
            for item in items:
                # The canonical JSON texts go through as they are: no decode/encode per item.
                body = item.key if op == DELETE else item.body
                fh.write(head + item.key.encode() + b',"body":' + body.encode() + b"}\n")
                results.append(ItemResult(item.key, OK))
        # The file appears whole or not at all; a re-run replaces it. No items, no file.
        if results:
            self.fs.mv(tmp, final)
        else:
            self.fs.rm(tmp)
            if self.fs.exists(final):
                self.fs.rm(final)
        yield from results

    def share_limits(self, senders: int) -> None:
        """Files have no rate limit."""

    def close(self) -> None:
        pass


class FilesKind:
    name = "files"
    schemes = FILE_SCHEMES
    connection_types = (FORM.conn_type,)

    def config_from_connection(self, conn: Any, overrides: Mapping[str, Any] | None = None) -> FilesConfig:
        extra = conn.extra_dejson or {}
        url = extra.get("url") or conn.host
        if not url:
            raise ConfigurationError(f"Connection {conn.conn_id}: set the folder URL (e.g. file:///data/catalog-feeds) as host")
        return FilesConfig(url, feed_options(extra))

    def config_from_env(self, url: str, env: Mapping[str, str], flags: Mapping[str, Any]) -> FilesConfig:
        return FilesConfig(url, feed_options({}, flags, env))

    def open(self, config: FilesConfig) -> FilesTarget:
        return FilesTarget(config)
