"""Tier prices (`catalog_product_entity_tier_price`): a lower price, or a percentage off, from a quantity on.

Magento keeps them per website (0: every website) and per customer group (`all_groups` 1: every one).
Rows for every group reach the contract: from a quantity above 1 as `tierPrices`, and at quantity 1
(a price for everyone, whatever the quantity) as a discount, as a special price is. Rows for one
customer group need that group's price book (a child book of the website's); they are not sent yet
(README: "What the contract cannot carry").
Both extract paths read this one query.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter


def tier_prices_query(id_filter: IdFilter) -> sa.Select:
    """(entity_id, website_id, qty, value, percentage) of the ids' tier prices for every customer group."""
    t = m.catalog_product_entity_tier_price.c
    return (
        sa.select(t.entity_id, t.website_id, sa.cast(t.qty, sa.String).label("qty"), sa.cast(t.value, sa.String).label("value"),
                  sa.cast(t.percentage_value, sa.String).label("percentage"))
        .where(id_filter(t.entity_id), t.all_groups == 1)
    )
