"""What a product holds in Magento that the Catalog Data Ingestion contract cannot carry: counted, never sent.

One count per kind, of the products that hold it (each counted by the product that holds the data:
the bundle, the grouped product, the product with the options or links):

    bundle_option_positions   bundles with options: the contract has no position (`bundles` keeps the order)
    bundle_selection_prices   bundles with a selection whose price (selection_price_value) is not 0
    grouped_quantities        grouped products with a member whose default quantity is not 0
    custom_options            products with custom options (catalog_product_option)
    downloadable              products with downloadable links or samples
    gift_card                 Adobe Commerce gift cards with amounts (magento_giftcard_amount)
    customer_group_prices     products with a tier price for a customer group the shop has no `customer_group`
                              row of: that group has no price book to carry it (a known group's are sent)
    catalog_rule_prices       products with a price in Magento's catalog rule index (catalogrule_product_price):
                              not sent (README: "Catalog price rules")

Every table is optional: a shop may remove the module (Open Source has no gift cards). `NotCarried`
checks once which tables the shop has and leaves out the kinds it cannot find. Only SELECTs. A
kind's tables are keyed to products by Magento's foreign keys (ON DELETE CASCADE), so the counts
name products that exist.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import sqlalchemy as sa

from catalog_sync.magento import id_lists, layout
from catalog_sync.magento import schema as m
from catalog_sync.magento.configurable_options import IdFilter
from catalog_sync.magento.id_lists import slices

log = logging.getLogger("catalog_sync.magento")

BUNDLE_OPTION_POSITIONS = "bundle_option_positions"
BUNDLE_SELECTION_PRICES = "bundle_selection_prices"
GROUPED_QUANTITIES = "grouped_quantities"
CUSTOM_OPTIONS = "custom_options"
DOWNLOADABLE = "downloadable"
GIFT_CARD = "gift_card"
CUSTOMER_GROUP_PRICES = "customer_group_prices"
CATALOG_RULE_PRICES = "catalog_rule_prices"
KINDS = (BUNDLE_OPTION_POSITIONS, BUNDLE_SELECTION_PRICES, GROUPED_QUANTITIES, CUSTOM_OPTIONS, DOWNLOADABLE, GIFT_CARD,
         CUSTOMER_GROUP_PRICES, CATALOG_RULE_PRICES)

# Magento_GroupedProduct's link type (Model\ResourceModel\Product\Link::LINK_TYPE_GROUPED, code `super`).
GROUPED_LINK_TYPE_ID = 3
# Ids per statement when a scope is counted (the catalog reader's slices).
IDS_PER_QUERY = id_lists.IDS_PER_QUERY


def _no_filter(_column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.true()


class NotCarried:
    """The kinds this shop's tables let us count (`kinds`), and their counts over a set of products."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        inspector = sa.inspect(engine)
        self._present = m.present_tables(engine)  # one statement, whatever the number of tables
        self._gift_card_key = _gift_card_key(inspector, layout.of(engine)) if self._has(m.magento_giftcard_amount) else None
        self.kinds = tuple(k for k in KINDS if self._selects(k, _no_filter))
        if len(self.kinds) < len(KINDS):
            log.debug("not_carried: the shop has no table for %s: not counted",
                      ", ".join(k for k in KINDS if k not in self.kinds))

    def _has(self, *tables: sa.Table) -> bool:
        return all(t.name in self._present for t in tables)

    def _selects(self, kind: str, id_filter: IdFilter) -> list[sa.Select]:
        """The SELECTs of product ids holding `kind` (a kind may read two tables), [] when the shop lacks them."""
        if kind == BUNDLE_OPTION_POSITIONS and self._has(m.catalog_product_bundle_option):
            o = m.catalog_product_bundle_option.c
            return [sa.select(o.parent_id.label("product_id")).where(id_filter(o.parent_id))]
        if kind == BUNDLE_SELECTION_PRICES and self._has(m.catalog_product_bundle_selection):
            s = m.catalog_product_bundle_selection.c
            return [sa.select(s.parent_product_id.label("product_id"))
                    .where(id_filter(s.parent_product_id), s.selection_price_value != 0)]
        if kind == GROUPED_QUANTITIES and self._has(m.catalog_product_link, m.catalog_product_link_attribute,
                                                    m.catalog_product_link_attribute_decimal):
            lk, a, d = (m.catalog_product_link.c, m.catalog_product_link_attribute.c,
                        m.catalog_product_link_attribute_decimal.c)
            return [
                sa.select(lk.product_id)
                .join_from(m.catalog_product_link, m.catalog_product_link_attribute_decimal, d.link_id == lk.link_id)
                .join(m.catalog_product_link_attribute, a.product_link_attribute_id == d.product_link_attribute_id)
                .where(id_filter(lk.product_id), lk.link_type_id == GROUPED_LINK_TYPE_ID,
                       a.link_type_id == GROUPED_LINK_TYPE_ID, a.product_link_attribute_code == "qty", d.value != 0)
            ]
        if kind == CUSTOM_OPTIONS and self._has(m.catalog_product_option):
            c = m.catalog_product_option.c
            return [sa.select(c.product_id).where(id_filter(c.product_id))]
        if kind == DOWNLOADABLE:
            return [sa.select(t.c.product_id).where(id_filter(t.c.product_id))
                    for t in (m.downloadable_link, m.downloadable_sample) if self._has(t)]
        if kind == CUSTOMER_GROUP_PRICES and self._has(m.catalog_product_entity_tier_price):
            t = m.catalog_product_entity_tier_price.c
            query = sa.select(t.entity_id.label("product_id")).where(id_filter(t.entity_id), t.all_groups == 0)
            if self._has(m.customer_group):  # a group's own price book is sent when the group exists
                g = m.customer_group.c
                query = query.where(t.customer_group_id.not_in(sa.select(g.customer_group_id)))
            return [query]
        if kind == CATALOG_RULE_PRICES and self._has(m.catalogrule_product_price):
            r = m.catalogrule_product_price.c
            return [sa.select(r.product_id).where(id_filter(r.product_id))]
        if kind == GIFT_CARD and self._gift_card_key is not None:
            return [self._gift_card_key(id_filter)]
        return []

    # ---- counting ------------------------------------------------------------------------

    def count(self, ids: Collection[int] | None) -> tuple[dict[str, int], int]:
        """Products among `ids` (None: the whole catalog) holding each kind, only the kinds some product
        holds; and how many distinct products hold any. One statement per kind (and one for the total when
        two kinds or more are found), per IDS_PER_QUERY ids."""
        if ids is None:
            return self._count(_no_filter)
        per_kind: dict[str, int] = {}
        total = 0
        for part in slices(sorted(ids), IDS_PER_QUERY):
            # Each product is counted by its own id, and the slices are disjoint: the sums are exact.
            found, products = self._count(lambda column, part=part: column.in_(part))
            for kind, n in found.items():
                per_kind[kind] = per_kind.get(kind, 0) + n
            total += products
        return {k: per_kind[k] for k in KINDS if k in per_kind}, total

    def _count(self, id_filter: IdFilter) -> tuple[dict[str, int], int]:
        if not self.kinds:
            return {}, 0
        with self.engine.connect() as conn:
            found: dict[str, int] = {}
            for kind in self.kinds:
                n = int(conn.execute(_distinct_count(self._selects(kind, id_filter))).scalar() or 0)
                if n:
                    found[kind] = n
            if len(found) < 2:  # nobody holds two kinds: no need to ask
                return found, sum(found.values())
            union = [s for kind in found for s in self._selects(kind, id_filter)]
            return found, int(conn.execute(_distinct_count(union)).scalar() or 0)


def _distinct_count(selects: list[sa.Select]) -> sa.Select:
    """How many distinct product ids the SELECTs (of one column) give together."""
    if len(selects) == 1:
        ids = selects[0].subquery()
        return sa.select(sa.func.count(sa.distinct(ids.c[0])))
    ids = sa.union(*selects).subquery()  # UNION, not UNION ALL: distinct
    return sa.select(sa.func.count()).select_from(ids)


def _gift_card_key(inspector: sa.Inspector, shop: layout.SourceLayout):
    """How magento_giftcard_amount names its product: `entity_id` (Open Source-shaped; on Adobe Commerce's layout
    the version in force gives it, see layout), or `row_id` in an otherwise Open Source-shaped shop, read through
    catalog_product_entity's row_id (a product counts when any of its versions has amounts). None: neither."""
    g = m.magento_giftcard_amount
    columns = {c["name"] for c in inspector.get_columns(shop.name(g.name))}
    if "entity_id" in columns or shop.edition is layout.Edition.COMMERCE:
        return lambda id_filter: sa.select(g.c.entity_id.label("product_id")).where(id_filter(g.c.entity_id))
    product_columns = {c["name"] for c in inspector.get_columns(shop.name(m.catalog_product_entity.name))}
    if "row_id" in columns and "row_id" in product_columns:
        amount = sa.table(g.name, sa.column("row_id"))
        versions = sa.table(m.catalog_product_entity.name, sa.column("row_id"), sa.column("entity_id"))
        return lambda id_filter: (sa.select(versions.c.entity_id.label("product_id"))
                                  .join_from(amount, versions, versions.c.row_id == amount.c.row_id)
                                  .where(id_filter(versions.c.entity_id)))
    log.warning("not_carried: magento_giftcard_amount has neither entity_id nor row_id (with catalog_product_entity."
                "row_id): gift cards are not counted")
    return None


def summed(counts: list[Mapping[str, int]]) -> dict[str, int]:
    """The sum of several counts by kind (the buckets' extracts), in KINDS order, kinds with none left out."""
    total = {k: sum(int(c.get(k, 0)) for c in counts) for k in KINDS}
    return {k: n for k, n in total.items() if n}
