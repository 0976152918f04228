"""What the page asks the Magento database directly: one product as it is now, and a catalog search.

Both only read (the engine is `read_only_engine`), touch a handful of rows, and
build the product with the same reference rules as the extract, so "Magento now"
and "last sent" are comparable field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from catalog_sync import clock
from catalog_sync.feed.feed_record import FeedRow, build_feed_rows
from catalog_sync.magento import layout
from catalog_sync.magento import schema as m
from catalog_sync.magento.catalog_reader import CatalogContext, MagentoCatalogReader, ViewSelection, read_only_engine
from catalog_sync.magento.layout import Edition
from catalog_sync.magento.url_keys import UrlKeyCheck
from catalog_sync.ui.paging import Page, offset_in

SEARCH_LIMIT = 50
CONTEXT_TTL_S = 300.0  # store views, attributes, options, categories: re-read at most every 5 minutes


@dataclass(frozen=True)
class CatalogHit:
    product_id: int
    sku: str
    name: str | None
    type: str


class MagentoLookup:
    def __init__(self, source_url: str, views: ViewSelection = ViewSelection(), table_prefix: str = "",
                 edition: Edition | None = None):
        self.engine = read_only_engine(source_url, table_prefix, edition)  # Adobe Commerce: the versions in force now
        self.reader = MagentoCatalogReader(self.engine, views)  # the store views the sync exports
        self._context: tuple[float, CatalogContext] | None = None

    def context(self) -> CatalogContext:
        now = clock.monotonic()
        if self._context is None or now - self._context[0] > CONTEXT_TTL_S:
            self._context = (now, self.reader.load_context())
        return self._context[1]

    def close(self) -> None:
        self.engine.dispose()

    def current_rows(self, sku: str, instant: datetime) -> dict[str, FeedRow]:
        """store view -> the staging record Magento gives now, judged at `instant` (empty: the SKU is
        gone or in no website)."""
        layout.read_at(self.engine, instant)
        ids = self.reader.ids_for_skus([sku])
        if not ids:
            return {}
        ctx = self.context()
        chunk = self.reader.load_chunk(ids, ctx.stock_layout, UrlKeyCheck.from_context(ctx))
        return {row.store_view_code: row for row in build_feed_rows(chunk, ctx, instant)}

    def search(self, q: str, limit: int = SEARCH_LIMIT) -> list[CatalogHit]:
        """Products whose SKU or default-scope name contains `q` (case-insensitive), exact SKU first."""
        return self.search_page(q, 1, limit).rows

    def search_page(self, q: str, page: int = 1, page_size: int = SEARCH_LIMIT) -> Page:
        """One page of `search` (rows: CatalogHit) and how many products match in all."""
        q, page = q.strip(), max(1, page)
        if not q:
            return Page([], 0, page, page_size)
        e = m.catalog_product_entity.c
        v = m.PRODUCT_VALUE_TABLES["varchar"].c
        name_attr = (
            sa.select(m.eav_attribute.c.attribute_id)
            .join(m.eav_entity_type, m.eav_entity_type.c.entity_type_id == m.eav_attribute.c.entity_type_id)
            .where(m.eav_entity_type.c.entity_type_code == "catalog_product", m.eav_attribute.c.attribute_code == "name")
            .scalar_subquery()
        )
        name = (
            sa.select(v.value).where(v.entity_id == e.entity_id, v.store_id == 0, v.attribute_id == name_attr)
            .limit(1).scalar_subquery()
        )
        # `%` and `_` typed are text, not LIKE wildcards ("a_b" must not match "axb"). "!" escapes them:
        # a backslash would itself need escaping in MySQL's string literals.
        pattern = "%" + q.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        matches = sa.or_(sa.func.lower(e.sku).like(pattern, escape="!"), sa.func.lower(name).like(pattern, escape="!"))
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(m.catalog_product_entity).where(matches)).scalar_one()
            offset = offset_in(total, page, page_size)
            if offset is None:
                return Page([], total, page, page_size)
            rows = conn.execute(
                sa.select(e.entity_id, e.sku, e.type_id, name.label("name")).where(matches)
                .order_by(sa.case((e.sku == q, 0), else_=1), e.sku).limit(page_size).offset(offset)
            ).all()
        return Page([CatalogHit(int(r.entity_id), r.sku, r.name, r.type_id) for r in rows], total, page, page_size)


def field_diff(sent: dict[str, Any] | None, now: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Field by field: every top-level field of either body, with both values and whether they differ."""
    sent, now = sent or {}, now or {}
    return [{"field": key, "sent": sent.get(key), "now": now.get(key), "differs": sent.get(key) != now.get(key)}
            for key in sorted(set(sent) | set(now))]
