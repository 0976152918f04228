"""Magento's mview changelog triggers, recreated for the demo catalog.

When a Magento indexer runs "Update by Schedule", Magento subscribes the
indexer's view to source tables with AFTER INSERT/UPDATE/DELETE triggers that
append the changed product id to the view's changelog (``*_cl``). The
subscriptions below are copied from a real Magento 2.4.8 shop
(``trg_*`` in ../shared/fixtures/magento-2.4.8-catalog.sql), without the
catalogrule_* changelogs, which Catalog Sync does not read. That shop has no
Multi-Source Inventory; MSI's one subscription is magento/inventory's
InventoryIndexer/etc/mview.xml: view ``inventory`` on ``inventory_source_item``,
whose changelog ``inventory_cl`` names the changed *source item*
(``source_item_id``), not a product.

Like Magento, an UPDATE trigger fires only when some column other than the
ignored ones changed: touching ``catalog_product_entity.updated_at`` alone
writes no changelog row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table

from catalog_sync.magento import schema

FULLTEXT = "catalogsearch_fulltext_cl"
PRICE = "catalog_product_price_cl"
STOCK = "cataloginventory_stock_cl"
CATEGORY = "catalog_product_category_cl"
ATTRIBUTE = "catalog_product_attribute_cl"
INVENTORY = "inventory_cl"  # MSI's: its entity_id is a source_item_id

EVENTS = ("insert", "update", "delete")


@dataclass(frozen=True)
class Subscription:
    """One source table and the changelogs its row changes are written to."""

    table: Table
    id_column: str  # the column holding the product id (for MSI's source items: the source item's id)
    changelogs: tuple[str, ...]  # in Magento's trigger order
    ignored_update_columns: frozenset[str] = frozenset()

    def watched_columns(self) -> list[str]:
        return [c.name for c in self.table.columns if c.name not in self.ignored_update_columns]


_values = schema.PRODUCT_VALUE_TABLES

SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription(schema.catalog_product_entity, "entity_id", (FULLTEXT, PRICE), frozenset({"updated_at"})),
    Subscription(_values["datetime"], "entity_id", (FULLTEXT, PRICE)),
    Subscription(_values["decimal"], "entity_id", (FULLTEXT, ATTRIBUTE, PRICE)),
    Subscription(_values["int"], "entity_id", (FULLTEXT, CATEGORY, ATTRIBUTE, STOCK, PRICE)),
    Subscription(_values["text"], "entity_id", (FULLTEXT,)),
    Subscription(_values["varchar"], "entity_id", (FULLTEXT, ATTRIBUTE)),
    Subscription(schema.catalog_product_website, "product_id", (FULLTEXT, CATEGORY, PRICE)),
    Subscription(schema.cataloginventory_stock_item, "product_id", (STOCK,)),
    Subscription(schema.catalog_product_entity_tier_price, "entity_id", (PRICE,)),
    Subscription(schema.catalog_category_product, "product_id", (FULLTEXT, CATEGORY)),
    Subscription(schema.catalog_product_super_link, "product_id", (FULLTEXT,)),
    Subscription(schema.catalog_product_link, "product_id", (FULLTEXT, ATTRIBUTE, STOCK)),
    Subscription(schema.inventory_source_item, "source_item_id", (INVENTORY,)),
)

# mview_state rows Magento keeps for the views above (view_id = changelog name without "_cl").
MVIEW_VIEW_IDS: tuple[str, ...] = tuple(name.removesuffix("_cl") for name in schema.CHANGELOG_TABLE_NAMES)


def trigger_name(table: str, event: str) -> str:
    return f"trg_{table}_after_{event}"


def mysql_trigger_sql(sub: Subscription, event: str) -> str:
    """The trigger exactly as Magento writes it for MySQL/MariaDB."""
    row = "OLD" if event == "delete" else "NEW"
    inserts = [f"INSERT IGNORE INTO `{cl}` (`entity_id`) VALUES ({row}.`{sub.id_column}`);" for cl in sub.changelogs]
    if event == "update":
        changed = " OR ".join(f"NOT(NEW.`{c}` <=> OLD.`{c}`)" for c in sub.watched_columns())
        inserts = [f"IF ({changed}) THEN {stmt} END IF;" for stmt in inserts]
    body = "\n".join(inserts)
    return (
        f"CREATE TRIGGER {trigger_name(sub.table.name, event)} AFTER {event.upper()} ON `{sub.table.name}` "
        f"FOR EACH ROW\nBEGIN\n{body}\nEND"
    )


def sqlite_trigger_sql(sub: Subscription, event: str) -> str:
    """SQLite equivalent: no INSERT IGNORE (the changelog has no unique key to ignore) and
    the changed-columns test moves to a WHEN clause, with IS NOT as the null-safe <=>."""
    row = "OLD" if event == "delete" else "NEW"
    when = ""
    if event == "update":
        when = "WHEN " + " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in sub.watched_columns()) + "\n"
    body = "\n".join(f'INSERT INTO "{cl}" (entity_id) VALUES ({row}."{sub.id_column}");' for cl in sub.changelogs)
    return (
        f'CREATE TRIGGER {trigger_name(sub.table.name, event)} AFTER {event.upper()} ON "{sub.table.name}" '
        f"FOR EACH ROW\n{when}BEGIN\n{body}\nEND"
    )


def _trigger_sql(dialect: str, sub: Subscription, event: str) -> str:
    if dialect == "sqlite":
        return sqlite_trigger_sql(sub, event)
    if dialect in ("mysql", "mariadb"):
        return mysql_trigger_sql(sub, event)
    raise NotImplementedError(f"changelog triggers are defined for SQLite and MySQL/MariaDB, not {dialect}")


def create_changelog_triggers(bind: Engine | Connection) -> list[str]:
    """(Re)create all changelog triggers; return their names."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return create_changelog_triggers(conn)
    dialect = bind.dialect.name
    names = []
    for sub in SUBSCRIPTIONS:
        for event in EVENTS:
            name = trigger_name(sub.table.name, event)
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            bind.exec_driver_sql(_trigger_sql(dialect, sub, event))
            names.append(name)
    return names


# --------------------------------------------------------------------------- Adobe Commerce

# Adobe Commerce's content staging keys the EAV value tables (and tier prices, gallery values, a product's links
# and bundle selections) by the version row, `row_id`. The changelogs still take entity ids, so Magento's
# subscription on such a table looks the entity up through the row:
#   SET @entity_id = (SELECT `entity_id` FROM `catalog_product_entity` WHERE `row_id` = NEW.`row_id`);
# before the INSERT IGNOREs (tests/layouts/README.md gives the sources). Tables whose column holds an entity id
# keep Open Source's trigger; the update test lists the table's Adobe Commerce columns (row_id, created_in, ...).


@dataclass(frozen=True)
class CommerceSubscription:
    """A subscription on a table of the Adobe Commerce layout, with its columns as they are there."""

    table: str
    id_column: str
    changelogs: tuple[str, ...]
    columns: tuple[str, ...]
    ignored_update_columns: frozenset[str] = frozenset()
    row_of: str | None = None  # id_column holds a row_id of this table: the changelog gets that row's entity_id
    events: tuple[str, ...] = EVENTS

    def watched_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.ignored_update_columns]


def commerce_mysql_trigger_sql(sub: CommerceSubscription, event: str, name: str | None = None) -> str:
    row = "OLD" if event == "delete" else "NEW"
    lines = []
    if sub.row_of:
        lines.append(f"SET @entity_id = (SELECT `entity_id` FROM `{sub.row_of}` WHERE `row_id` = {row}.`{sub.id_column}`);")
        value = "values(@entity_id)"
    else:
        value = f"VALUES ({row}.`{sub.id_column}`)"
    inserts = [f"INSERT IGNORE INTO `{cl}` (`entity_id`) {value};" for cl in sub.changelogs]
    if event == "update":
        changed = " OR ".join(f"NOT(NEW.`{c}` <=> OLD.`{c}`)" for c in sub.watched_columns())
        inserts = [f"IF ({changed}) THEN {stmt} END IF;" for stmt in inserts]
    body = "\n".join(lines + inserts)
    return (
        f"CREATE TRIGGER {name or trigger_name(sub.table, event)} AFTER {event.upper()} ON `{sub.table}` "
        f"FOR EACH ROW\nBEGIN\n{body}\nEND"
    )


def commerce_sqlite_trigger_sql(sub: CommerceSubscription, event: str, name: str | None = None) -> str:
    """SQLite has no session variables: the entity lookup becomes INSERT ... SELECT."""
    row = "OLD" if event == "delete" else "NEW"
    when = ""
    if event == "update":
        when = "WHEN " + " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in sub.watched_columns()) + "\n"
    if sub.row_of:
        source = f'SELECT entity_id FROM "{sub.row_of}" WHERE row_id = {row}."{sub.id_column}"'
    else:
        source = f'VALUES ({row}."{sub.id_column}")'
    body = "\n".join(f'INSERT INTO "{cl}" (entity_id) {source};' for cl in sub.changelogs)
    return (
        f'CREATE TRIGGER {name or trigger_name(sub.table, event)} AFTER {event.upper()} ON "{sub.table}" '
        f"FOR EACH ROW\n{when}BEGIN\n{body}\nEND"
    )


def create_commerce_triggers(bind: Connection, subs: list[CommerceSubscription],
                             names: dict[str, str] | None = None) -> list[str]:
    """(Re)create the triggers of `subs`; `names` (event -> name) keeps a shop's own trigger names."""
    dialect = bind.dialect.name
    if dialect not in ("sqlite", "mysql", "mariadb"):
        raise NotImplementedError(f"changelog triggers are defined for SQLite and MySQL/MariaDB, not {dialect}")
    build = commerce_sqlite_trigger_sql if dialect == "sqlite" else commerce_mysql_trigger_sql
    created = []
    for sub in subs:
        for event in sub.events:
            name = (names or {}).get(event) or trigger_name(sub.table, event)
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            bind.exec_driver_sql(build(sub, event, name))
            created.append(name)
    return created


# Of SUBSCRIPTIONS, the id columns that hold a product's row_id in Adobe Commerce (table -> its new id column).
COMMERCE_ROW_ID_COLUMNS: dict[str, str] = {
    **{t.name: "row_id" for t in _values.values()},
    schema.catalog_product_entity_tier_price.name: "row_id",
    schema.catalog_product_link.name: "product_id",
}


def commerce_subscriptions(bind: Engine | Connection) -> list[CommerceSubscription]:
    """SUBSCRIPTIONS as they are on a catalog converted to Adobe Commerce's layout (columns read from the database)."""
    from sqlalchemy import inspect

    inspector = inspect(bind)
    subs = []
    for sub in SUBSCRIPTIONS:
        columns = tuple(c["name"] for c in inspector.get_columns(sub.table.name))
        id_column = COMMERCE_ROW_ID_COLUMNS.get(sub.table.name, sub.id_column)
        row_of = schema.catalog_product_entity.name if sub.table.name in COMMERCE_ROW_ID_COLUMNS else None
        subs.append(CommerceSubscription(sub.table.name, id_column, sub.changelogs, columns,
                                         sub.ignored_update_columns, row_of))
    return subs


def create_commerce_changelog_triggers(bind: Engine | Connection) -> list[str]:
    """create_changelog_triggers for a catalog in Adobe Commerce's layout."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return create_commerce_changelog_triggers(conn)
    return create_commerce_triggers(bind, commerce_subscriptions(bind))
