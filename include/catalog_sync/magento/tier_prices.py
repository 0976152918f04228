"""Tier prices (`catalog_product_entity_tier_price`): a lower price, or a percentage off, from a quantity on.

Magento keeps them per website (0: every website) and per customer group (`all_groups` 1: every one).
They reach the contract from a quantity above 1 as `tierPrices`, and at quantity 1 (a price whatever
the quantity) as a discount, as a special price is. Rows for every group go in the website's price
book; a customer group's own rows in that group's child price book (the target's mapping).
Both extract paths read this one query.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter


def tier_prices_query(id_filter: IdFilter) -> sa.Select:
    """(entity_id, website_id, customer_group_id, qty, value, percentage) of the ids' tier prices;
    customer_group_id is NULL for a row for every customer group (all_groups 1)."""
    t = m.catalog_product_entity_tier_price.c
    return (
        sa.select(t.entity_id, t.website_id,
                  sa.case((t.all_groups == 1, sa.null()), else_=t.customer_group_id).label("customer_group_id"),
                  sa.cast(t.qty, sa.String).label("qty"), sa.cast(t.value, sa.String).label("value"),
                  sa.cast(t.percentage_value, sa.String).label("percentage"))
        .where(id_filter(t.entity_id))
    )


def customer_groups(conn: sa.Connection) -> dict[int, str]:
    """customer_group_id -> code; empty when the shop has no customer_group table."""
    if m.customer_group.name not in m.present_tables(conn):
        return {}
    g = m.customer_group.c
    return {int(r.customer_group_id): r.customer_group_code
            for r in conn.execute(sa.select(g.customer_group_id, g.customer_group_code))}
