"""url_key clashes: two products that end up with one url_key in one store view.

Magento refuses such a save in the admin, but imports and direct SQL let it through, and the
target would then route one URL to two products. Both products' records in that store view are
quarantined with the reason, so neither is sent until the clash is fixed; what the target holds
stays. A chunk's clashes need the rest of the catalog: the query finds every product holding one
of the chunk's url_key values (at any scope), and resolves each product's url_key per store view
the way the feed does (a store view's row, even empty, wins over the default one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class UrlKeyCheck:
    """What a chunk's clash check needs from the run's catalog context."""

    attribute_id: int
    views: tuple[View, ...]

    @classmethod
    def from_context(cls, ctx) -> "UrlKeyCheck | None":
        url_key = ctx.attributes_by_code.get("url_key")
        if url_key is None:
            return None
        return cls(url_key.attribute_id, tuple(View(v.store_id, v.website_id, v.code) for v in ctx.store_views))


def peers_query(url_key_id: int, in_chunk: Callable[[sa.ColumnElement], sa.ColumnElement[bool]]) -> sa.Select:
    """The ids of every product holding, at some scope, a url_key value one of the chunk's products holds."""
    table = m.PRODUCT_VALUE_TABLES["varchar"]
    mine, peer = table.alias("mine"), table.alias("peer")
    chunk_values = sa.select(mine.c.value).where(mine.c.attribute_id == url_key_id, in_chunk(mine.c.entity_id),
                                                 mine.c.value != "")
    return sa.select(peer.c.entity_id).where(peer.c.attribute_id == url_key_id, peer.c.value.in_(chunk_values))


def clash_rows_query(url_key_id: int, in_chunk: Callable[[sa.ColumnElement], sa.ColumnElement[bool]]
                     ) -> tuple[sa.Select, sa.Select]:
    """(url_key rows of every product sharing a url_key value with the chunk, their websites).
    `in_chunk(column)` says whether an entity_id column is one of the chunk's products."""
    v = m.PRODUCT_VALUE_TABLES["varchar"].alias("v")
    peers = peers_query(url_key_id, in_chunk)
    e = m.catalog_product_entity.c
    rows = (sa.select(v.c.entity_id, v.c.store_id, v.c.value, e.sku)
            .join_from(v, m.catalog_product_entity, e.entity_id == v.c.entity_id)
            .where(v.c.attribute_id == url_key_id, v.c.entity_id.in_(peers)))
    w = m.catalog_product_website.c
    websites = sa.select(w.product_id, w.website_id).where(w.product_id.in_(peers))
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
