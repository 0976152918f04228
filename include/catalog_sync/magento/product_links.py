"""Links between products (`catalog_product_link`): related, up-sell and cross-sell products, and
the members of a grouped product (link type `super`). Both extract paths read this one query.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter

# Magento's link type codes this sync sends (`catalog_product_link_type.code`).
LINK_TYPES = ("relation", "super", "up_sell", "cross_sell")


def product_links_query(id_filter: IdFilter) -> sa.Select:
    """(product_id, type, sku): each link of the ids, with its type's code and the linked product's sku."""
    lk, lt = m.catalog_product_link.c, m.catalog_product_link_type.c
    linked = m.catalog_product_entity.alias("linked")
    return (
        sa.select(lk.product_id, lt.code.label("type"), linked.c.sku)
        .join_from(m.catalog_product_link, m.catalog_product_link_type, lt.link_type_id == lk.link_type_id)
        .join(linked, linked.c.entity_id == lk.linked_product_id)
        .where(id_filter(lk.product_id), lt.code.in_(LINK_TYPES))
    )


def linking_ids_query(ids: list[int]) -> sa.Select:
    """The products that link to any of `ids`: their bodies name those products' skus."""
    lk = m.catalog_product_link.c
    return sa.select(lk.product_id).where(lk.linked_product_id.in_(ids)).distinct()
