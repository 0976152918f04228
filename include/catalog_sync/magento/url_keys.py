"""url_key clashes: two products that end up with one url_key in one store view.

Magento refuses such a save in the admin, but imports and direct SQL let it through, and the
target would then route one URL to two products. Both products' records in that store view are
quarantined with the reason, so neither is sent until the clash is fixed; what the target holds
stays. A chunk's clashes need the rest of the catalog: only products that share a url_key value
(at any scope) with another product can clash, so the run reads every product's values once
(SharedUrlKeys: one scan; Magento has no index on `value`, and MariaDB ran the per-chunk
"holders of these values" subquery for minutes at 300,000 products), then reads the url_key rows
of a chunk's sharing products by id and resolves each product's url_key per store view the way
the feed does (a store view's row, even empty, wins over the default one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from catalog_sync.magento import schema as m

ADMIN_STORE_ID = 0


@dataclass(frozen=True)
class UrlKeyRow:
    entity_id: int
    store_id: int
    value: str | None
    sku: str


@dataclass(frozen=True)
class View:
    store_id: int
    website_id: int
    code: str


VALUES_SCHEMA = pa.schema([("entity_id", pa.int64()), ("value", pa.string())])


@dataclass(frozen=True)
class SharedUrlKeys:
    """The url_key values two or more products hold (at any scope), and which products hold them."""

    holders: dict[str, frozenset[int]]
    values_of: dict[int, frozenset[str]]

    @classmethod
    def from_table(cls, table: pa.Table) -> "SharedUrlKeys":
        """From (entity_id, value) rows (shared_values_query); the grouping runs in Arrow, so only the shared
        values, usually few, become Python objects."""
        table = table.select(["entity_id", "value"]).cast(VALUES_SCHEMA)  # an empty result carries no types
        counts = table.group_by("value").aggregate([("entity_id", "count_distinct")])
        shared = counts.filter(pc.greater(counts["entity_id_count_distinct"], 1))["value"]
        holders: dict[str, set[int]] = defaultdict(set)
        values_of: dict[int, set[str]] = defaultdict(set)
        for row in table.filter(pc.is_in(table["value"], value_set=shared)).to_pylist():
            holders[row["value"]].add(int(row["entity_id"]))
            values_of[int(row["entity_id"])].add(row["value"])
        return cls({v: frozenset(e) for v, e in holders.items()}, {e: frozenset(v) for e, v in values_of.items()})

    def peers_of(self, ids: Iterable[int]) -> set[int]:
        """The products sharing a url_key value with one of `ids`, those of `ids` included."""
        return {peer for i in ids for value in self.values_of.get(i, ()) for peer in self.holders[value]}


@dataclass(frozen=True)
class UrlKeyCheck:
    """What a chunk's clash check needs from the run's catalog context."""

    attribute_id: int
    views: tuple[View, ...]
    shared: SharedUrlKeys | None = None  # read once per run (with_shared); None: not read yet

    @classmethod
    def from_context(cls, ctx) -> "UrlKeyCheck | None":
        url_key = ctx.attributes_by_code.get("url_key")
        if url_key is None:
            return None
        return cls(url_key.attribute_id, tuple(View(v.store_id, v.website_id, v.code) for v in ctx.store_views))

    def with_shared(self, values: pa.Table) -> "UrlKeyCheck":
        return replace(self, shared=SharedUrlKeys.from_table(values))

    def peers_of(self, ids: Iterable[int]) -> set[int]:
        if self.shared is None:
            raise RuntimeError("url_key check: the shared values were not read (with_shared)")
        return self.shared.peers_of(ids)


def shared_values_query(url_key_id: int) -> sa.Select:
    """Every product's non-empty url_key values, at any scope: one scan, whatever the catalog's size."""
    t = m.PRODUCT_VALUE_TABLES["varchar"].c
    return sa.select(t.entity_id, t.value).where(t.attribute_id == url_key_id, t.value != "")


def clash_rows_query(url_key_id: int, peers: Sequence[int]) -> tuple[sa.Select, sa.Select]:
    """(url_key rows, websites) of `peers`: the products sharing a url_key value with a chunk's (peers_of)."""
    v = m.PRODUCT_VALUE_TABLES["varchar"].alias("v")
    e = m.catalog_product_entity.c
    rows = (sa.select(v.c.entity_id, v.c.store_id, v.c.value, e.sku)
            .join_from(v, m.catalog_product_entity, e.entity_id == v.c.entity_id)
            .where(v.c.attribute_id == url_key_id, v.c.entity_id.in_(list(peers))))
    w = m.catalog_product_website.c
    websites = sa.select(w.product_id, w.website_id).where(w.product_id.in_(list(peers)))
    return rows, websites


def clashes(rows: Iterable[UrlKeyRow], websites: Iterable[tuple[int, int]], views: Sequence[View],
            chunk_ids: set[int]) -> dict[tuple[int, int], str]:
    """(entity_id, store_id) of the chunk's products whose url_key another product also has in that
    store view -> the reason, naming the other product(s)."""
    by_entity: dict[int, dict[int, str | None]] = defaultdict(dict)
    skus: dict[int, str] = {}
    for row in rows:
        by_entity[row.entity_id][row.store_id] = row.value
        skus[row.entity_id] = row.sku
    in_website: dict[int, set[int]] = defaultdict(set)
    for product_id, website_id in websites:
        in_website[int(website_id)].add(int(product_id))
    found: dict[tuple[int, int], str] = {}
    for view in views:
        holders: dict[str, list[int]] = defaultdict(list)
        for entity_id in in_website.get(view.website_id, ()):
            values = by_entity.get(entity_id, {})
            value = values[view.store_id] if view.store_id in values else values.get(ADMIN_STORE_ID)
            if value:
                holders[value].append(entity_id)
        for value, entity_ids in holders.items():
            if len(entity_ids) < 2:
                continue
            for entity_id in set(entity_ids) & chunk_ids:
                others = sorted(skus[i] for i in entity_ids if i != entity_id)
                found[(entity_id, view.store_id)] = (
                    f"url_key {value!r} is also the url_key of sku {', '.join(repr(s) for s in others)} "
                    f"in store view {view.code!r}")
    return found
