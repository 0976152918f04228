"""Bulk reads from the Magento database straight into Arrow tables.

Each query is built with SQLAlchemy Core (so it is valid SQL for the shop's
database) and run by connectorx, which decodes rows in native code, when it
supports the database; otherwise through SQLAlchemy. Either way no product
becomes a Python object: the feed builder pivots the tables in DuckDB.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from catalog_sync.magento import bundle_options, configurable_options, inventory, product_links, tier_prices
from catalog_sync.magento import schema as m
from catalog_sync.magento.url_keys import UrlKeyCheck, UrlKeyRow, clash_rows_query, clashes, shared_values_query

log = logging.getLogger(__name__)

VALUE_SCHEMA = pa.schema([("entity_id", pa.int64()), ("attribute_id", pa.int64()), ("store_id", pa.int64()),
                          ("value", pa.string())])
CLASH_SCHEMA = pa.schema([("entity_id", pa.int64()), ("store_id", pa.int64()), ("reason", pa.string())])
VARIANT_VALUE_SCHEMA = pa.schema([("parent_id", pa.int64()), ("attribute_id", pa.int64()), ("position", pa.int64()),
                                  ("child_id", pa.int64()), ("store_id", pa.int64()), ("value", pa.string())])
STOCK_SCHEMA = pa.schema([("product_id", pa.int64()), ("stock_id", pa.int64()), ("qty", pa.string()),
                          ("is_in_stock", pa.int64())])
TIER_PRICE_SCHEMA = pa.schema([("entity_id", pa.int64()), ("website_id", pa.int64()), ("customer_group_id", pa.int64()),
                               ("qty", pa.string()), ("value", pa.string()), ("percentage", pa.string())])
PRODUCT_LINK_SCHEMA = pa.schema([("product_id", pa.int64()), ("type", pa.string()), ("sku", pa.string())])
BUNDLE_OPTION_SCHEMA = pa.schema([("parent_id", pa.int64()), ("option_id", pa.int64()), ("required", pa.int64()),
                                   ("position", pa.int64()), ("type", pa.string())])
BUNDLE_TITLE_SCHEMA = pa.schema([("option_id", pa.int64()), ("store_id", pa.int64()), ("title", pa.string())])
BUNDLE_SELECTION_SCHEMA = pa.schema([
    ("parent_id", pa.int64()), ("parent_sku", pa.string()), ("option_id", pa.int64()), ("product_id", pa.int64()),
    ("sku", pa.string()), ("position", pa.int64()), ("is_default", pa.int64()), ("qty", pa.string()),
    ("can_change_qty", pa.int64())])
OPTION_LABEL_SCHEMA = pa.schema([("parent_id", pa.int64()), ("attribute_id", pa.int64()), ("store_id", pa.int64()),
                                 ("use_default", pa.int64()), ("value", pa.string())])


def connectorx_url(url: URL) -> str | None:
    """connectorx's connection string for an SQLAlchemy URL, or None when it cannot read that database."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        # connectorx bundles its own SQLite library. Two SQLite libraries in one process on one
        # WAL database break each other's POSIX locks (seen here: "disk I/O error" mid-run), so
        # SQLite (the demo's source) is read through Python's sqlite3 only.
        return None
    if backend in ("mysql", "mariadb", "postgresql"):
        scheme = "postgresql" if backend == "postgresql" else "mysql"
        plain = url.set(drivername=scheme, query={})
        return plain.render_as_string(hide_password=False)
    return None


class ArrowQueries:
    """Runs SELECT statements and returns Arrow tables."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.cx_url = connectorx_url(engine.url)
        if self.cx_url:
            try:
                import connectorx  # noqa: F401
            except ImportError:  # pragma: no cover - connectorx is a pinned dependency
                self.cx_url = None

    @cached_property
    def has_bundles(self) -> bool:
        return bundle_options.available(self.engine)

    def fetch(self, stmt: sa.Select | sa.CompoundSelect) -> pa.Table:
        if self.cx_url:
            import connectorx

            sql = str(stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
            return connectorx.read_sql(self.cx_url, sql, return_type="arrow")
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            names = list(result.keys())
            rows = result.fetchall()
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


@dataclass
class RawChunk:
    """The rows of one chunk of products, as Arrow tables (names match the feed builder's SQL)."""

    entities: pa.Table
    values: pa.Table
    websites: pa.Table
    stock: pa.Table
    categories: pa.Table
    links: pa.Table
    child_prices: pa.Table
    gallery: pa.Table
    url_key_clashes: pa.Table = field(default_factory=CLASH_SCHEMA.empty_table)  # (entity_id, store_id, reason): url_keys
    variant_values: pa.Table = field(default_factory=VARIANT_VALUE_SCHEMA.empty_table)  # configurable_options
    option_labels: pa.Table = field(default_factory=OPTION_LABEL_SCHEMA.empty_table)
    product_links: pa.Table = field(default_factory=PRODUCT_LINK_SCHEMA.empty_table)  # product_links
    tier_prices: pa.Table = field(default_factory=TIER_PRICE_SCHEMA.empty_table)  # tier_prices
    bundle_options: pa.Table = field(default_factory=BUNDLE_OPTION_SCHEMA.empty_table)  # bundle_options
    bundle_titles: pa.Table = field(default_factory=BUNDLE_TITLE_SCHEMA.empty_table)
    bundle_selections: pa.Table = field(default_factory=BUNDLE_SELECTION_SCHEMA.empty_table)


def read_chunk(queries: ArrowQueries, ids: Sequence[int], price_attribute_id: int | None, stock: inventory.StockLayout,
               attribute_ids: Sequence[int] | None = None, pool: ThreadPoolExecutor | None = None,
               url_keys: UrlKeyCheck | None = None) -> RawChunk:
    """Read one chunk. `stock` is the context's stock layout; `attribute_ids` limits the EAV rows to the attributes the feed uses;
    with a `pool`, the queries run concurrently (connectorx and the database work outside the GIL)."""
    ids = sorted(set(ids))
    contiguous = bool(ids) and ids[-1] - ids[0] + 1 == len(ids)

    def f(col: sa.ColumnElement) -> sa.ColumnElement[bool]:
        if not ids:
            return sa.false()
        return col.between(ids[0], ids[-1]) if contiguous else col.in_(ids)

    e = m.catalog_product_entity.c
    statements: dict[str, sa.Select | sa.CompoundSelect] = {}
    statements["entities"] = sa.select(
        e.entity_id, e.sku, e.type_id, e.attribute_set_id,
        sa.cast(e.created_at, sa.String).label("created_at"), sa.cast(e.updated_at, sa.String).label("updated_at"),
    ).where(f(e.entity_id))
    # The EAV rows of the chunk, bounded by their primary keys too: the range of value_id the chunk's
    # rows span comes from an index-only scan, and when it is narrow (rows are written product by
    # product, so it usually is) the database reads them from the clustered index instead of looking
    # each row up from the (entity_id, ...) index, several times cheaper. A wide range changes nothing:
    # the database then keeps the entity_id index.
    value_filters: dict[str, list[sa.ColumnElement[bool]]] = {}
    for backend, table in m.PRODUCT_VALUE_TABLES.items():
        t = table.c
        value_filters[backend] = [f(t.entity_id)]
        if attribute_ids is not None:
            value_filters[backend].append(t.attribute_id.in_(sorted(attribute_ids)))
    cp = m.catalog_category_product.c
    # (An empty chunk gets the empty range 0..-1: no NULLs, whose type connectorx cannot infer on SQLite.)
    bounds_stmt = sa.union_all(*(
        sa.select(sa.literal(backend).label("backend"), sa.func.coalesce(sa.func.min(table.c.value_id), 0).label("lo"),
                  sa.func.coalesce(sa.func.max(table.c.value_id), -1).label("hi")).where(*value_filters[backend])
        for backend, table in m.PRODUCT_VALUE_TABLES.items()
    ), sa.select(sa.literal("categories").label("backend"), sa.func.coalesce(sa.func.min(cp.entity_id), 0).label("lo"),
                 sa.func.coalesce(sa.func.max(cp.entity_id), -1).label("hi")).where(f(cp.product_id)))
    bounds = {row["backend"]: (row["lo"], row["hi"]) for row in queries.fetch(bounds_stmt).to_pylist()}
    for backend, table in m.PRODUCT_VALUE_TABLES.items():
        t = table.c
        # Text columns need no cast (a cast costs the database time); the rest travel as text.
        value = t.value if backend in ("varchar", "text") else sa.cast(t.value, sa.String)
        lo, hi = bounds.get(backend, (None, None))
        in_range = sa.false() if lo is None else t.value_id.between(int(lo), int(hi))
        statements[f"values_{backend}"] = sa.select(
            t.entity_id, t.attribute_id, t.store_id, value.label("value")).where(*value_filters[backend], in_range)
    w = m.catalog_product_website.c
    statements["websites"] = sa.select(w.product_id, w.website_id).where(f(w.product_id))
    statements["stock"] = inventory.stock_query(stock, f)
    lo, hi = bounds.get("categories", (None, None))
    statements["categories"] = sa.select(cp.product_id, cp.category_id, cp.position).where(
        f(cp.product_id), sa.false() if lo is None else cp.entity_id.between(int(lo), int(hi)))

    sl = m.catalog_product_super_link.c
    child = m.catalog_product_entity.alias("child")
    parent = m.catalog_product_entity.alias("parent")
    statements["links"] = (
        sa.select(sl.product_id.label("child_id"), sl.parent_id, child.c.sku.label("child_sku"), parent.c.sku.label("parent_sku"))
        .join_from(m.catalog_product_super_link, child, child.c.entity_id == sl.product_id)
        .join(parent, parent.c.entity_id == sl.parent_id)
        .where(sa.or_(f(sl.product_id), f(sl.parent_id)))
    )
    d = m.PRODUCT_VALUE_TABLES["decimal"].c
    statements["child_prices"] = (
        sa.select(sl.parent_id, sl.product_id.label("child_id"), d.store_id, sa.cast(d.value, sa.String).label("value"))
        .join_from(m.catalog_product_super_link, m.PRODUCT_VALUE_TABLES["decimal"], d.entity_id == sl.product_id)
        .where(f(sl.parent_id), d.attribute_id == (price_attribute_id or -1))
    )
    g = m.catalog_product_entity_media_gallery.c
    gv = m.catalog_product_entity_media_gallery_value.c
    ge = m.catalog_product_entity_media_gallery_value_to_entity.c
    statements["gallery"] = (
        sa.select(ge.entity_id, g.value_id, g.value.label("file"), g.disabled, gv.store_id, gv.label, gv.position,
                  gv.disabled.label("store_disabled"))
        .join_from(m.catalog_product_entity_media_gallery_value_to_entity, m.catalog_product_entity_media_gallery,
                   g.value_id == ge.value_id)
        .outerjoin(m.catalog_product_entity_media_gallery_value,
                   sa.and_(gv.value_id == ge.value_id, gv.entity_id == ge.entity_id))
        .where(f(ge.entity_id))
    )
    statements["variant_values"] = configurable_options.variant_values_query(f)
    statements["option_labels"] = configurable_options.option_labels_query(f)
    statements["product_links"] = product_links.product_links_query(f)
    statements["tier_prices"] = tier_prices.tier_prices_query(f)
    if queries.has_bundles:
        statements["bundle_options"] = bundle_options.options_query(f)
        statements["bundle_titles"] = bundle_options.titles_query(f)
        statements["bundle_selections"] = bundle_options.selections_query(f)
    peers = sorted(url_keys.peers_of(ids)) if url_keys is not None else []
    if peers:
        statements["url_key_rows"], statements["url_key_websites"] = clash_rows_query(url_keys.attribute_id, peers)
    if pool is None:
        tables = {name: queries.fetch(stmt) for name, stmt in statements.items()}
    else:
        futures = {name: pool.submit(queries.fetch, stmt) for name, stmt in statements.items()}
        tables = {name: future.result() for name, future in futures.items()}
    values = pa.concat_tables(
        [tables.pop(f"values_{b}").cast(VALUE_SCHEMA) for b in m.PRODUCT_VALUE_TABLES], promote_options="default"
    )
    # (Typed here: an empty result has no types connectorx or SQLAlchemy could infer.)
    tables["stock"] = _typed(tables["stock"], STOCK_SCHEMA)
    tables["variant_values"] = _typed(tables["variant_values"], VARIANT_VALUE_SCHEMA)
    tables["option_labels"] = _typed(tables["option_labels"], OPTION_LABEL_SCHEMA)
    tables["product_links"] = _typed(tables["product_links"], PRODUCT_LINK_SCHEMA)
    tables["tier_prices"] = _typed(tables["tier_prices"], TIER_PRICE_SCHEMA)
    for name, schema in (("bundle_options", BUNDLE_OPTION_SCHEMA), ("bundle_titles", BUNDLE_TITLE_SCHEMA),
                         ("bundle_selections", BUNDLE_SELECTION_SCHEMA)):
        tables[name] = _typed(tables[name], schema) if name in tables else schema.empty_table()
    if url_keys is not None:
        rows = [UrlKeyRow(int(r["entity_id"]), int(r["store_id"]), r["value"], r["sku"])
                for r in tables.pop("url_key_rows").to_pylist()] if peers else []
        websites = [(r["product_id"], r["website_id"]) for r in tables.pop("url_key_websites").to_pylist()] if peers else []
        found = clashes(rows, websites, url_keys.views, set(ids))
        tables["url_key_clashes"] = pa.table({"entity_id": [k[0] for k in found], "store_id": [k[1] for k in found],
                                              "reason": list(found.values())}, schema=CLASH_SCHEMA)
    return RawChunk(values=values, **tables)


def with_shared_url_keys(queries: ArrowQueries, check: UrlKeyCheck | None) -> UrlKeyCheck | None:
    """The check with the catalog's shared url_key values read (one scan), for read_chunk."""
    return None if check is None else check.with_shared(queries.fetch(shared_values_query(check.attribute_id)))


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.num_rows == 0:
        return schema.empty_table()
    return pa.table({name: table.column(name).cast(schema.field(name).type) for name in schema.names}, schema=schema)
