"""Stock as the storefront sees it: MSI's stock per website where the shop has MSI, else the legacy stock item.

Legacy shops (no `inventory_*` tables, or MSI's modules removed) keep one stock for every website:
`cataloginventory_stock_item` with stock_id 1, read directly.

MSI shops (magento/inventory) keep quantities per source (`inventory_source_item`); a website sells
from the stock its sales channel names (`inventory_stock_sales_channel`, type "website"; the
default stock, 1, when none does), and a stock draws on the enabled sources linked to it. What the
storefront shows is MSI's stock index, `inventory_stock_<id>`: quantity is the sum over in-stock
source items, and is_salable applies Magento's rules (manage stock, backorders, minimum quantity).
We read that index, as Adobe's exporter does, so those rules are Magento's own, not a copy of them.
Because the index is written by Magento's indexer after a source item changes, change detection
reads MSI's changelog only up to the version the indexer has applied (`change_detection`).
A stock whose index is missing (never indexed) falls back to the source items: the same quantity,
and in stock when it is above 0 (Magento's defaults: no backorders, minimum quantity 0); a composite
product is in stock when one of its children is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import sqlalchemy as sa

from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter

# The stock id of the legacy stock item: the same for every website.
LEGACY_STOCK = 0
# MSI's default stock, which a website without a sales channel sells from (DefaultStockProvider).
DEFAULT_MSI_STOCK = 1
MSI_TABLES = (m.inventory_source, m.inventory_source_item, m.inventory_source_stock_link, m.inventory_stock_sales_channel)
WEBSITE_CHANNEL = "website"
_INDEX_NAME = re.compile(r"inventory_stock_\d+")
# MSI's changelog (InventoryIndexer/etc/mview.xml): its entity_id is a source_item_id, not a product's.
CHANGELOG = "inventory_cl"
# Changelogs whose indexer writes a stock index, and that indexer's mview view id.
INDEXED_CHANGELOGS = {CHANGELOG: "inventory", "cataloginventory_stock_cl": "cataloginventory_stock"}


@dataclass(frozen=True)
class StockLayout:
    """Where each website's stock comes from."""

    msi: bool = False
    website_stocks: dict[int, int] = field(default_factory=dict)  # website_id -> MSI stock_id
    indexed_stocks: frozenset[int] = frozenset()  # MSI stocks whose index table (or view) exists

    def stock_of(self, website_id: int) -> int:
        if not self.msi:
            return LEGACY_STOCK
        return self.website_stocks.get(website_id, DEFAULT_MSI_STOCK)

    def describe(self) -> str:
        if not self.msi:
            return "legacy stock (cataloginventory_stock_item)"
        stocks = sorted(set(self.website_stocks.values()) | {DEFAULT_MSI_STOCK})
        parts = [f"{s} ({'index' if s in self.indexed_stocks else 'source items: no index'})" for s in stocks]
        return "MSI stocks " + ", ".join(parts)


def msi_available(engine: sa.Engine | sa.Connection) -> bool:
    present = m.present_tables(engine)
    return all(t.name in present for t in MSI_TABLES)


def read_layout(conn: sa.Connection, website_codes: dict[int, str]) -> StockLayout:
    """The stock layout of the shop, for the websites given (website_id -> code)."""
    if not msi_available(conn):
        return StockLayout()
    c = m.inventory_stock_sales_channel.c
    by_code = {r.code: int(r.stock_id) for r in conn.execute(
        sa.select(c.code, c.stock_id).where(c.type == WEBSITE_CHANNEL))}
    website_stocks = {wid: by_code.get(code, DEFAULT_MSI_STOCK) for wid, code in website_codes.items()}
    wanted = set(website_stocks.values()) | {DEFAULT_MSI_STOCK}
    names = stock_index_names(conn)
    indexed = frozenset(s for s in wanted if m.inventory_stock_index(s).name in names)
    return StockLayout(True, website_stocks, indexed)


def feeds_an_index(changelog: str, index_names: set[str]) -> bool:
    """Whether the indexer of this changelog writes one of these stock indexes: MSI's writes every
    stock's; the default stock's index is a view over the legacy stock status, which the
    cataloginventory_stock indexer writes."""
    if changelog == CHANGELOG:
        return bool(index_names)
    return m.inventory_stock_index(DEFAULT_MSI_STOCK).name in index_names


def stock_index_names(conn: sa.Connection) -> set[str]:
    """The names of the shop's stock index tables and views (`inventory_stock_<id>`)."""
    return {name for name in m.present_tables(conn) if _INDEX_NAME.fullmatch(name)}


def layout_fingerprint(conn: sa.Connection) -> str:
    """sha1 of what decides which stock a website shows: sales channels, the sources linked to each stock,
    whether each is enabled, and which stocks have an index. Magento logs no product change for any of it."""
    if not msi_available(conn):
        return "legacy"
    c, link, src = m.inventory_stock_sales_channel.c, m.inventory_source_stock_link.c, m.inventory_source.c
    digest = hashlib.sha1(usedforsecurity=False)
    for stmt in (sa.select(c.type, c.code, c.stock_id).order_by(c.type, c.code),
                 sa.select(link.stock_id, link.source_code).order_by(link.stock_id, link.source_code),
                 sa.select(src.source_code, src.enabled).order_by(src.source_code)):
        for row in conn.execute(stmt):
            digest.update(("|".join(str(v) for v in row) + "\n").encode())
        digest.update(b"--\n")
    digest.update(",".join(sorted(stock_index_names(conn))).encode())
    return digest.hexdigest()


def stock_query(layout: StockLayout, id_filter: IdFilter) -> sa.Select | sa.CompoundSelect:
    """(product_id, stock_id, qty as text, is_in_stock) for the products among the ids, one row per stock."""
    if not layout.msi:
        s = m.cataloginventory_stock_item.c
        return sa.select(s.product_id, sa.literal(LEGACY_STOCK).label("stock_id"), sa.cast(s.qty, sa.String).label("qty"),
                         s.is_in_stock).where(id_filter(s.product_id), s.stock_id == 1)
    stocks = sorted(set(layout.website_stocks.values()) | {DEFAULT_MSI_STOCK})
    selects: list[sa.Select] = []
    for stock_id in stocks:
        selects += [_indexed(stock_id, id_filter)] if stock_id in layout.indexed_stocks else _from_sources(stock_id, id_filter)
    return sa.union_all(*selects)


def _indexed(stock_id: int, id_filter: IdFilter) -> sa.Select:
    index = m.inventory_stock_index(stock_id)
    e = m.catalog_product_entity.c
    return (
        sa.select(e.entity_id.label("product_id"), sa.literal(stock_id).label("stock_id"),
                  sa.cast(index.c.quantity, sa.String).label("qty"), sa.cast(index.c.is_salable, sa.Integer).label("is_in_stock"))
        .join_from(m.catalog_product_entity, index, index.c.sku == e.sku)
        .where(id_filter(e.entity_id))
    )


# Product types whose stock is their children's (MSI's composite indexers): they have no source items.
COMPOSITE_TYPES = ("configurable", "bundle", "grouped")


def _source_items(stock_id: int) -> sa.Join:
    """Source items in the stock's enabled sources."""
    si, link, src = m.inventory_source_item.c, m.inventory_source_stock_link.c, m.inventory_source.c
    return (
        m.inventory_source_item
        .join(m.inventory_source_stock_link, sa.and_(link.source_code == si.source_code, link.stock_id == stock_id))
        .join(m.inventory_source, sa.and_(src.source_code == si.source_code, src.enabled == 1))
    )


def _from_sources(stock_id: int, id_filter: IdFilter) -> list[sa.Select]:
    """A stock without an index: products with source items, quantity the sum over in-stock ones
    (InventoryIndexer's SelectBuilder) and in stock when it is above 0; composites (no source items of their
    own; `catalog_product_relation` names their children) in stock when one of their children is.
    Source items are filtered by the skus of the chunk's products (`sku IN (SELECT ...)`): that leads
    the plan through the sku index, where a join from the products let SQLite scan every source item."""
    si, e, r = m.inventory_source_item.c, m.catalog_product_entity.c, m.catalog_product_relation.c
    product = m.catalog_product_entity.alias("product")
    child = m.catalog_product_entity.alias("child")
    parent = m.catalog_product_entity.alias("parent")
    quantity = sa.func.sum(sa.case((si.status == 1, si.quantity), else_=0))
    child_in_stock = sa.func.max(sa.case((sa.and_(si.status == 1, si.quantity > 0), 1), else_=0))
    own_skus = sa.select(e.sku).where(id_filter(e.entity_id), e.type_id.not_in(COMPOSITE_TYPES))
    child_skus = (sa.select(child.c.sku).join_from(m.catalog_product_relation, child, child.c.entity_id == r.child_id)
                  .where(id_filter(r.parent_id)))
    return [
        sa.select(product.c.entity_id.label("product_id"), sa.literal(stock_id).label("stock_id"),
                  sa.cast(quantity, sa.String).label("qty"), sa.case((quantity > 0, 1), else_=0).label("is_in_stock"))
        .select_from(_source_items(stock_id).join(product, product.c.sku == si.sku))
        .where(si.sku.in_(own_skus))  # (skus are unique: the chunk's products, and no id list probed per row)
        .group_by(product.c.entity_id),
        sa.select(parent.c.entity_id.label("product_id"), sa.literal(stock_id).label("stock_id"),
                  sa.cast(sa.null(), sa.String).label("qty"), child_in_stock.label("is_in_stock"))
        .select_from(_source_items(stock_id).join(child, child.c.sku == si.sku)
                     .join(m.catalog_product_relation, r.child_id == child.c.entity_id)
                     .join(parent, parent.c.entity_id == r.parent_id))
        # (No id filter on the parent here: SQLite would probe the id list once per source item. A child in
        # another chunk's composite too only adds a row that chunk's builder does not look at.)
        .where(si.sku.in_(child_skus), parent.c.type_id.in_(COMPOSITE_TYPES))
        .group_by(parent.c.entity_id),
    ]


def changed_products_query(lower: int, upper: int) -> sa.Select:
    """The products whose source items MSI's changelog names in (lower, upper]: its entity_id is a source item."""
    cl = m.CHANGELOG_TABLES[CHANGELOG].c
    si, e = m.inventory_source_item.c, m.catalog_product_entity.c
    return (
        sa.select(e.entity_id).distinct()
        .join_from(m.CHANGELOG_TABLES[CHANGELOG], m.inventory_source_item, si.source_item_id == cl.entity_id)
        .join(m.catalog_product_entity, e.sku == si.sku)
        .where(cl.version_id > lower, cl.version_id <= upper)
    )
