"""What a target is: the feeds it keeps, how Magento's records map onto them, and how items are sent.

A **feed** is one kind of item the target keeps (products, prices, price books, ...). Each
item has a key, which names it at the target and is also what deleting it takes, and a
body, the exact JSON sent. The pipeline never looks inside either: it diffs bodies by their
sha1, sends what changed in the target's feed order (deletes in the reverse order), and
keeps in the snapshot exactly what the target accepted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import orjson

from catalog_sync.feed.feed_record import StagingRow
from catalog_sync.magento.catalog_reader import CatalogContext

UPSERT = "upsert"
DELETE = "delete"

OK = "ok"
RETRYABLE = "retryable"
REJECTED = "rejected"
UNCONFIRMED = "unconfirmed"  # a pending status only: accepted, but re-sent after the late-write window


class FeedScope(Enum):
    # Items come from products: compared for the products in a run's scope, deleted with them.
    PRODUCT = "product"
    # Items come from the catalog as a whole (metadata, price books): built whole every run.
    CATALOG = "catalog"


@dataclass(frozen=True)
class Requirement:
    """An item of this feed needs an item of another feed at the target first (a price needs its
    price book: the contract ignores prices of books that do not exist). `fields` maps the other
    feed's key fields to this item's key fields."""

    feed: str
    fields: tuple[tuple[str, str], ...]

    def key_of(self, key: Mapping[str, Any]) -> dict[str, Any]:
        return {theirs: key[ours] for theirs, ours in self.fields}


@dataclass(frozen=True)
class FeedSpec:
    name: str
    key_fields: tuple[str, ...]  # documentation: what identifies an item (the key JSON holds them)
    scope: FeedScope
    primary: bool = False  # the run's headline counts ("products") are this feed's
    requires: Requirement | None = None
    # Its updates go as changes to the body the target holds, which the export hands over (SendItem.previous).
    patched: bool = False


@dataclass(slots=True)
class FeedItem:
    """One item as the target's mapping made it. `body` None: not sendable, `reason` says why."""

    feed: str
    key: dict[str, Any]
    body: dict[str, Any] | None
    reason: str | None = None
    judged_on: str | None = None  # the local day its date-dependent parts were judged on
    recheck_on: str | None = None  # the local day from which its body may change with no change in Magento
    row: int = 0  # which of the product's staging rows (FeedMapper.product_items) it was made from


def canonical(value: Any) -> bytes:
    """The one serialization of keys and bodies: sorted keys, no whitespace. Bodies are sent as these bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


# Not frozen: a run makes millions of these (a frozen dataclass costs ~4x as much to create).
@dataclass(slots=True)
class SendItem:
    """An item to send: its key and, for an upsert, the exact body (JSON text)."""

    key: str  # canonical JSON of the key
    body: str | None  # canonical JSON of the body; None for a delete
    # An update of a patched feed: the body the target holds (canonical JSON). None: the target holds none.
    previous: str | None = None


@dataclass(slots=True)
class ItemResult:
    key: str
    status: str  # OK, RETRYABLE or REJECTED
    reason: str | None = None
    # A request holding the item got no answer (a timeout, a dropped connection): the target may
    # still apply it later, after a newer body. The run re-sends such items after a window.
    unconfirmed: bool = False


class FeedMapper(Protocol):
    """Turns Magento's staging records into a target's feed items."""

    def catalog_items(self) -> Iterable[FeedItem]:
        """The items of the CATALOG feeds (metadata, price books, ...): the whole feed, every run."""

    def product_items(self, rows: Sequence[StagingRow]) -> Iterable[FeedItem]:
        """The items of the PRODUCT feeds for one product: its staging records, one per store view (each
        item's `row` says which one it was made from)."""

    def take_gaps(self) -> list[Any]:
        """What the items made since the last call could not carry (e.g. layers.LayerGap), then forgets them."""


class Target(Protocol):
    """A place the catalog is exported to. Upserts are create-or-replace and deletes are idempotent,
    so sending an item twice is harmless (a crash before commit re-sends)."""

    description: str
    feeds: tuple[FeedSpec, ...]  # in the order upserts go; deletes go in the reverse order

    def mapper(self, ctx: CatalogContext) -> FeedMapper: ...

    def mapping_fingerprint(self) -> str:
        """Changes whenever the mapping (its code or its options) may give other bodies: a changed
        fingerprint makes the next run reconcile in full, so every affected item is re-sent once."""

    def adopt(self, record: dict[str, Any]) -> Iterable[FeedItem]:
        """What an earlier release (state formats 1 and 2, one Magento record per item) sent for
        this record: each item's key, and its exact body where it is known (else None: the next
        run re-sends it once). Used once, when the state is upgraded."""

    def send(self, feed: FeedSpec, op: str, items: Iterable[SendItem], batch_key: str) -> Iterator[ItemResult]:
        """Send one feed's upserts or deletes; one result per item, in any order. `batch_key` names
        this batch of the run (stable across retries of the same task)."""

    def share_limits(self, senders: int) -> None:
        """This process is one of `senders` sending to the target side by side (parallel bucket
        tasks): take that share of any rate limit, so that together they keep it."""

    def close(self) -> None: ...


class TargetConfig(Protocol):
    """A target's settings, from its Airflow Connection or the CLI. Secrets stay out of repr()."""

    url: str


class TargetKind(Protocol):
    """Builds one kind of target: what it is made from, and how to open it."""

    name: str
    schemes: tuple[str, ...]  # target URL schemes this kind serves
    connection_types: tuple[str, ...]  # Airflow connection types it is configured by

    def config_from_connection(self, conn: Any, overrides: Mapping[str, Any] | None = None) -> TargetConfig:
        """From an Airflow Connection (anything with conn_id/host/login/password/extra_dejson);
        `overrides` are settings from Airflow Variables (e.g. the batch size)."""

    def config_from_env(self, url: str, env: Mapping[str, str], flags: Mapping[str, Any]) -> TargetConfig:
        """From CLI flags (None when not given) and CATALOG_SYNC_* environment variables."""

    def open(self, config: TargetConfig) -> Target: ...


def source_fingerprint(*modules: Any, options: Any = None) -> str:
    """sha1 over the source of `modules` and the repr of `options`: a mapping's fingerprint."""
    import inspect

    digest = hashlib.sha1(usedforsecurity=False)
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    digest.update(repr(options).encode())
    return digest.hexdigest()


def feed_by_name(target: Target, name: str) -> FeedSpec:
    for feed in target.feeds:
        if feed.name == name:
            return feed
    raise KeyError(f"{target.description} has no feed {name!r}")


def primary_feed(feeds: Iterable[FeedSpec]) -> FeedSpec:
    return next(f for f in feeds if f.primary)


def send_order(feeds: Iterable[FeedSpec], op: str) -> list[FeedSpec]:
    """Upserts in the target's order (what others refer to first); deletes in the reverse order."""
    ordered = list(feeds)
    return ordered if op == UPSERT else ordered[::-1]
