"""A bundle's options and the products each offers, as Magento stores them (Magento_Bundle).

A shop may remove Magento_Bundle (its tables go with it): then no product is a bundle, and these
queries are not run (`available`).

Both extract paths read these three queries: the options of the bundles among the ids, their
titles per store view, and the selections of those bundles and of the products among the ids
(a product needs the skus of the bundles it is in, for its IN_BUNDLE links).
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter

TABLES = (m.catalog_product_bundle_option, m.catalog_product_bundle_option_value, m.catalog_product_bundle_selection)


def available(engine: sa.Engine) -> bool:
    """Whether the shop has Magento_Bundle's tables."""
    present = m.present_tables(engine)
    return all(t.name in present for t in TABLES)


def options_query(id_filter: IdFilter) -> sa.Select:
    """(parent_id, option_id, required, position, type)"""
    o = m.catalog_product_bundle_option.c
    return sa.select(o.parent_id, o.option_id, o.required, o.position, o.type).where(id_filter(o.parent_id))


def titles_query(id_filter: IdFilter) -> sa.Select:
    """(option_id, store_id, title)"""
    v = m.catalog_product_bundle_option_value.c
    return sa.select(v.option_id, v.store_id, v.title).where(id_filter(v.parent_product_id))


def selections_query(id_filter: IdFilter) -> sa.Select:
    """(parent_id, parent_sku, option_id, product_id, sku, position, is_default, qty, can_change_qty)"""
    s = m.catalog_product_bundle_selection.c
    child = m.catalog_product_entity.alias("selected")
    parent = m.catalog_product_entity.alias("bundle")
    return (
        sa.select(s.parent_product_id.label("parent_id"), parent.c.sku.label("parent_sku"), s.option_id, s.product_id,
                  child.c.sku, s.position, s.is_default, sa.cast(s.selection_qty, sa.String).label("qty"),
                  s.selection_can_change_qty.label("can_change_qty"))
        .join_from(m.catalog_product_bundle_selection, child, child.c.entity_id == s.product_id)
        .join(parent, parent.c.entity_id == s.parent_product_id)
        .where(sa.or_(id_filter(s.parent_product_id), id_filter(s.product_id)))
    )


def related_ids_query(ids: list[int]) -> sa.Select:
    """Bundles and the products they offer, linked to any of `ids` in either direction: (parent, product)."""
    s = m.catalog_product_bundle_selection.c
    return sa.select(s.parent_product_id, s.product_id).where(sa.or_(s.parent_product_id.in_(ids), s.product_id.in_(ids)))
