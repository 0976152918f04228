"""A configurable's options and its variants' values for them, as Magento stores them.

`catalog_product_super_attribute` names the attributes a configurable's variants differ by;
each variant's value for one of them is its own EAV row in `catalog_product_entity_int`.
Both extract paths (the DuckDB builder and the per-product reference) read the same two
queries: one row per (configurable, option attribute, variant, store) with the variant's raw
value, and the option labels the configurable sets per store view.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from catalog_sync.magento import schema as m

IdFilter = Callable[[sa.ColumnElement], sa.ColumnElement[bool]]


def variant_values_query(id_filter: IdFilter) -> sa.Select:
    """(parent_id, attribute_id, position, child_id, store_id, value) for the configurables and the
    variants among the ids: a configurable needs every variant's value, a variant its own."""
    sa_ = m.catalog_product_super_attribute.c
    sl = m.catalog_product_super_link.c
    i = m.PRODUCT_VALUE_TABLES["int"].c
    return (
        sa.select(sa_.product_id.label("parent_id"), sa_.attribute_id, sa_.position, sl.product_id.label("child_id"),
                  i.store_id, sa.cast(i.value, sa.String).label("value"))
        .join_from(m.catalog_product_super_attribute, m.catalog_product_super_link, sl.parent_id == sa_.product_id)
        .join(m.PRODUCT_VALUE_TABLES["int"], sa.and_(i.entity_id == sl.product_id, i.attribute_id == sa_.attribute_id))
        .where(sa.or_(id_filter(sa_.product_id), id_filter(sl.product_id)))
    )


def option_labels_query(id_filter: IdFilter) -> sa.Select:
    """(parent_id, attribute_id, store_id, use_default, value): the labels configurables give their options."""
    sa_ = m.catalog_product_super_attribute.c
    lb = m.catalog_product_super_attribute_label.c
    return (
        sa.select(sa_.product_id.label("parent_id"), sa_.attribute_id, lb.store_id, lb.use_default, lb.value)
        .join_from(m.catalog_product_super_attribute, m.catalog_product_super_attribute_label,
                   lb.product_super_attribute_id == sa_.product_super_attribute_id)
        .where(id_filter(sa_.product_id))
    )

