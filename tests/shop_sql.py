"""The tests' writes and reads of a Magento database, written once against Open Source's tables and run on
whichever layout the database has (Open Source, or Adobe Commerce's content staging; see tests/layouts/README.md).

A test writes the shop as an admin saving a product would: on Adobe Commerce without a scheduled update, that
edits the version in force. The derived Adobe Commerce fixture's versions in force have row_id = entity_id
(tests/magento_layouts.py), so a statement on a table that Adobe Commerce keys by row_id where Open Source has
entity_id names `row_id` instead: the same rows. Tables whose column keeps its name (catalog_product_link's
product_id holds the row_id) need nothing.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

OPEN_SOURCE = "open_source"
COMMERCE = "commerce"

# database name -> layout, for the databases the fixtures created (an unknown one is Open Source).
_LAYOUTS: dict[str, str] = {}

# Adobe Commerce: tables keyed by row_id where Open Source has entity_id (tests/layouts/README.md).
ROW_ID_TABLES = frozenset({
    *(f"catalog_product_entity_{b}" for b in ("datetime", "decimal", "int", "text", "varchar")),
    *(f"catalog_category_entity_{b}" for b in ("datetime", "decimal", "int", "text", "varchar")),
    "catalog_product_entity_media_gallery_value", "catalog_product_entity_media_gallery_value_to_entity",
    "catalog_product_entity_tier_price", "magento_giftcard_amount",
})

_TARGET = re.compile(r"^\s*(?:UPDATE|INSERT\s+(?:IGNORE\s+)?INTO|DELETE\s+FROM|REPLACE\s+INTO|CREATE\s+TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
                     r"|SELECT\b.*?\bFROM)\s+`?(\w+)`?",
                     re.IGNORECASE | re.DOTALL)


def register(url: str, layout: str) -> None:
    _LAYOUTS[sa.engine.make_url(url).database] = layout


def layout_of(url: str) -> str:
    return _LAYOUTS.get(sa.engine.make_url(url).database, OPEN_SOURCE)


def for_layout(statement: str, layout: str) -> str:
    """`statement`, written for Open Source's tables, as it reads or writes the same rows in `layout`."""
    if layout != COMMERCE:
        return statement
    target = _TARGET.match(statement)
    if target and target.group(1) in ROW_ID_TABLES:
        return re.sub(r"\bentity_id\b", "row_id", statement)
    return statement


_NEW_ENTITY = re.compile(r"^\s*INSERT\s+INTO\s+`?(catalog_product_entity|catalog_category_entity)`?\s*\(", re.IGNORECASE)
_SEQUENCES = {"catalog_product_entity": "sequence_product", "catalog_category_entity": "sequence_catalog_category"}


def execute(conn: sa.Connection, layout: str, statement: str, params: dict | None = None) -> sa.CursorResult:
    """One statement, in `layout`. New product or category rows on Adobe Commerce get their sequence entry and
    row_id = entity_id, as a shop that never staged anything has them."""
    created = _NEW_ENTITY.match(statement) if layout == COMMERCE else None
    if not created:
        return conn.execute(sa.text(for_layout(statement, layout)), params or {})
    entity = created.group(1)
    newest = conn.execute(sa.text(f"SELECT COALESCE(MAX(row_id), 0) FROM {entity}")).scalar()
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")  # the sequence rows come right after
    try:
        result = conn.execute(sa.text(statement), params or {})
        conn.execute(sa.text(f"INSERT IGNORE INTO {_SEQUENCES[entity]} (sequence_value) SELECT entity_id FROM {entity} "
                             "WHERE row_id > :newest"), {"newest": newest})
        conn.execute(sa.text(f"UPDATE {entity} SET row_id = entity_id WHERE row_id > :newest ORDER BY row_id"),
                     {"newest": newest})
    finally:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    return result


def run(url: str, *statements: str) -> None:
    """Run statements written for Open Source's tables on the database at `url`, in its layout, in one transaction."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(for_layout(statement, layout_of(url)))
    finally:
        engine.dispose()
