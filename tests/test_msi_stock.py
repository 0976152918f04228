"""Availability on a shop with Multi-Source Inventory (MSI), from the real Magento 2.4.8 fixture to the
validating reference receiver.

The fixture has no MSI tables. They are created here by SQL with the columns of Magento's own schema:
- `inventory_source`, `inventory_source_item`, `inventory_stock`, `inventory_source_stock_link`:
  magento/inventory Inventory/etc/db_schema.xml;
- `inventory_stock_sales_channel`: InventorySales/etc/db_schema.xml;
- a stock's index `inventory_stock_<id>` (sku, quantity, is_salable): InventoryIndexer/Indexer/IndexStructure.php;
- the default stock's index, the view `inventory_stock_1` over `cataloginventory_stock_status`:
  InventoryCatalog/Setup/Patch/Schema/CreateLegacyStockStatusView.php;
- `inventory_cl` and its trigger on `inventory_source_item` (entity column source_item_id):
  InventoryIndexer/etc/mview.xml, in the shape of the fixture's own changelogs and triggers.

The shop: website `base` (the fixture's only one) sells from stock 2, "Brasil", which draws on the
source `sp`. Values from the fixture, read by hand: product 2 "Jaqueta Jeans Feminina", 3 "Vestido Midi
Estampado", 4 "Calça Skinny Masculina"; the weight unit is kgs and no product has a weight.
Here the indexer's work (writing `inventory_stock_2`, moving `mview_state`) is done by SQL, as Magento's
cron would do it.
"""

from __future__ import annotations

import json
import logging

import pytest

from catalog_sync.receiver import ReceiverOptions
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, mapped_source, product_key

pytestmark = pytest.mark.mariadb

TOKEN = "test-token-123"
JACKET, DRESS, TROUSERS, WATCH = "Jaqueta Jeans Feminina", "Vestido Midi Estampado", "Calça Skinny Masculina", \
    "Relógio Analógico Clássico"  # products 2, 3, 4, 11

MSI_SCHEMA = (
    """CREATE TABLE inventory_source (
        source_code varchar(255) NOT NULL, name varchar(255) NOT NULL, enabled smallint unsigned NOT NULL DEFAULT 1,
        description text, latitude decimal(8,6), longitude decimal(9,6), country_id varchar(2) NOT NULL,
        region_id int unsigned, region varchar(255), city varchar(255), street varchar(255), postcode varchar(255) NOT NULL,
        contact_name varchar(255), email varchar(255), phone varchar(255), fax varchar(255),
        use_default_carrier_config smallint unsigned NOT NULL DEFAULT 1, PRIMARY KEY (source_code))""",
    """CREATE TABLE inventory_source_item (
        source_item_id int unsigned NOT NULL AUTO_INCREMENT, source_code varchar(255) NOT NULL, sku varchar(64) NOT NULL,
        quantity decimal(12,4) NOT NULL DEFAULT 0, status smallint unsigned NOT NULL DEFAULT 0,
        PRIMARY KEY (source_item_id), UNIQUE KEY INVENTORY_SOURCE_ITEM_SOURCE_CODE_SKU (source_code, sku),
        KEY INVENTORY_SOURCE_ITEM_SKU_SOURCE_CODE_QUANTITY (sku, source_code, quantity))""",
    "CREATE TABLE inventory_stock (stock_id int unsigned NOT NULL AUTO_INCREMENT, name varchar(255) NOT NULL, PRIMARY KEY (stock_id))",
    """CREATE TABLE inventory_source_stock_link (
        link_id int unsigned NOT NULL AUTO_INCREMENT, stock_id int unsigned NOT NULL, source_code varchar(255) NOT NULL,
        priority smallint unsigned NOT NULL, PRIMARY KEY (link_id),
        UNIQUE KEY INVENTORY_SOURCE_STOCK_LINK_STOCK_ID_SOURCE_CODE (stock_id, source_code))""",
    """CREATE TABLE inventory_stock_sales_channel (
        type varchar(64) NOT NULL, code varchar(64) NOT NULL, stock_id int unsigned NOT NULL, PRIMARY KEY (type, code))""",
    """CREATE TABLE inventory_stock_2 (
        sku varchar(64) NOT NULL, quantity decimal(12,4) NOT NULL DEFAULT 0, is_salable tinyint(1) NOT NULL,
        PRIMARY KEY (sku), KEY index_sku_qty (sku, quantity))""",
    """CREATE SQL SECURITY INVOKER VIEW inventory_stock_1 AS
        SELECT DISTINCT legacy_stock_status.product_id, legacy_stock_status.website_id, legacy_stock_status.stock_id,
               legacy_stock_status.qty quantity, legacy_stock_status.stock_status is_salable, product.sku
        FROM cataloginventory_stock_status legacy_stock_status
        INNER JOIN catalog_product_entity product ON legacy_stock_status.product_id = product.entity_id""",
    """CREATE TABLE inventory_cl (
        version_id int unsigned NOT NULL AUTO_INCREMENT, entity_id int unsigned NOT NULL DEFAULT 0, PRIMARY KEY (version_id))""",
    """CREATE TRIGGER trg_inventory_source_item_after_insert AFTER INSERT ON inventory_source_item FOR EACH ROW
        BEGIN INSERT IGNORE INTO inventory_cl (entity_id) VALUES (NEW.source_item_id); END""",
    """CREATE TRIGGER trg_inventory_source_item_after_update AFTER UPDATE ON inventory_source_item FOR EACH ROW
        BEGIN IF (NOT(NEW.quantity <=> OLD.quantity) OR NOT(NEW.status <=> OLD.status)) THEN
        INSERT IGNORE INTO inventory_cl (entity_id) VALUES (NEW.source_item_id); END IF; END""",
    "INSERT INTO mview_state (view_id, mode, status, updated, version_id) VALUES ('inventory', 'enabled', 'idle', NULL, 0)",
)

# The shop's inventory: the default source (stock 1, nobody sells from it) and the source `sp` of stock 2.
MSI_ROWS = (
    "INSERT INTO inventory_source (source_code, name, country_id, postcode) VALUES ('default', 'Default Source', 'BR', '0'), "
    "('sp', 'São Paulo', 'BR', '01000-000')",
    "INSERT INTO inventory_stock (stock_id, name) VALUES (1, 'Default Stock'), (2, 'Brasil')",
    "INSERT INTO inventory_source_stock_link (stock_id, source_code, priority) VALUES (1, 'default', 1), (2, 'sp', 1)",
    "INSERT INTO inventory_stock_sales_channel (type, code, stock_id) VALUES ('website', 'base', 2)",
    # In stock 2: the jacket sold out at sp, the dress 3 left, the trousers 40; nothing else is stocked there.
    "INSERT INTO inventory_source_item (source_code, sku, quantity, status) VALUES "
    f"('sp', '{JACKET}', 0, 0), ('sp', '{DRESS}', 3, 1), ('sp', '{TROUSERS}', 40, 1), ('default', '{WATCH}', 999, 1)",
    f"INSERT INTO inventory_stock_2 (sku, quantity, is_salable) VALUES ('{JACKET}', 0, 0), ('{DRESS}', 3, 1), "
    f"('{TROUSERS}', 40, 1)",
    "UPDATE mview_state SET version_id = (SELECT max(version_id) FROM inventory_cl) WHERE view_id = 'inventory'",
    # "Only X left" below 5 (Stores > Configuration > Catalog > Inventory).
    "INSERT INTO core_config_data (scope, scope_id, path, value) VALUES ('default', 0, 'cataloginventory/options/stock_threshold_qty', '5')",
)


def availability(in_stock: bool, low: bool = False) -> dict:
    return {"code": "aco_ac_attributes", "values": [json.dumps(
        {"inStock": in_stock, "lowStock": low, "weight": None, "weightType": "kgs"}, separators=(",", ":"))]}


class MsiShop:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sync(self) -> dict:
        return self.env.sync(self.capsys, "--target-url", self.receiver.target)

    def availability(self, sku: str) -> dict:
        return receiver_state(self.receiver.root)["products"][product_key(sku, "pt-BR")]["attributes"][0]

    def sent_by_next_run(self) -> tuple[dict, dict]:
        return self.env.sync_and_accepted(self.capsys, self.receiver)

    def index(self, sku: str, quantity: int, salable: bool) -> None:
        """What Magento's indexer does after a source item changes: the stock index, then its mview version."""
        self.env.execute(f"UPDATE inventory_stock_2 SET quantity = {quantity}, is_salable = {int(salable)} WHERE sku = '{sku}'",
                         "UPDATE mview_state SET version_id = (SELECT max(version_id) FROM inventory_cl) "
                         "WHERE view_id = 'inventory'")


@pytest.fixture
def msi_shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    env = SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state")
    env.execute(*MSI_SCHEMA, *MSI_ROWS)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="acme", required_token=TOKEN))
    shop = MsiShop(env, receiver, capsys)
    assert shop.sync()["mode"] == "full"
    yield shop
    receiver.stop()


def test_each_product_shows_the_stock_its_website_sells_from(msi_shop):
    assert msi_shop.availability(JACKET) == availability(False)  # sold out at sp, although legacy qty is 999
    assert msi_shop.availability(DRESS) == availability(True, low=True)  # 3 left, at or below 5
    assert msi_shop.availability(TROUSERS) == availability(True)
    # Not in stock 2's index: not salable on this website, whatever the default source holds.
    assert msi_shop.availability(WATCH) == availability(False)
    assert receiver_state(msi_shop.receiver.root) == mapped_source(msi_shop.env.source_url)


def test_a_source_item_change_is_sent_once_the_index_holds_it(msi_shop, caplog):
    msi_shop.env.execute(f"UPDATE inventory_source_item SET quantity = 0, status = 0 WHERE sku = '{TROUSERS}'")

    # Magento's indexer has not run: its index still says 40 in stock. Nothing is sent, and the change
    # is not consumed either.
    with caplog.at_level(logging.INFO, logger="catalog_sync"):
        summary, sent = msi_shop.sent_by_next_run()
    assert summary["mode"] == "incremental" and sent == {}
    assert "inventory_cl read up to version 4 of 5, where Magento's indexer stands" in caplog.text

    msi_shop.index(TROUSERS, 0, salable=False)
    summary, sent = msi_shop.sent_by_next_run()

    assert sent == {"products": {"upsert": 1}}
    assert msi_shop.availability(TROUSERS) == availability(False)
    assert receiver_state(msi_shop.receiver.root) == mapped_source(msi_shop.env.source_url)


def test_a_quantity_change_that_changes_no_sent_value_sends_nothing(msi_shop):
    msi_shop.env.execute(f"UPDATE inventory_source_item SET quantity = 39 WHERE sku = '{TROUSERS}'")
    msi_shop.index(TROUSERS, 39, salable=True)
    summary, sent = msi_shop.sent_by_next_run()
    assert summary["mode"] == "incremental" and sent == {}

    msi_shop.env.execute(f"UPDATE inventory_source_item SET quantity = 4 WHERE sku = '{TROUSERS}'")
    msi_shop.index(TROUSERS, 4, salable=True)
    summary, sent = msi_shop.sent_by_next_run()
    assert sent == {"products": {"upsert": 1}} and msi_shop.availability(TROUSERS) == availability(True, low=True)


def test_a_stock_without_its_index_is_read_from_its_enabled_sources(msi_shop):
    # Stock 2 loses its index (never indexed, say) and gains a second source, `rj`, that holds 2 jackets;
    # a third, disabled source `mg` holds dresses, which do not count.
    msi_shop.env.execute(
        "DROP TABLE inventory_stock_2",
        "INSERT INTO inventory_source (source_code, name, country_id, postcode, enabled) VALUES "
        "('rj', 'Rio', 'BR', '20000-000', 1), ('mg', 'Minas', 'BR', '30000-000', 0)",
        "INSERT INTO inventory_source_stock_link (stock_id, source_code, priority) VALUES (2, 'rj', 2), (2, 'mg', 3)",
        f"INSERT INTO inventory_source_item (source_code, sku, quantity, status) VALUES ('rj', '{JACKET}', 2, 1), "
        f"('mg', '{DRESS}', 100, 1)",
        "UPDATE mview_state SET version_id = (SELECT max(version_id) FROM inventory_cl) WHERE view_id = 'inventory'",
    )

    summary, sent = msi_shop.sent_by_next_run()

    assert sent == {"products": {"upsert": 1}}  # the jacket: 0 at sp (out of stock) + 2 at rj
    assert msi_shop.availability(JACKET) == availability(True, low=True)
    assert msi_shop.availability(DRESS) == availability(True, low=True)  # still 3 at sp; mg is disabled
    assert msi_shop.availability(TROUSERS) == availability(True)
    assert receiver_state(msi_shop.receiver.root) == mapped_source(msi_shop.env.source_url)


def test_the_default_stock_is_read_through_its_legacy_index_view(msi_shop):
    # The website moves to the default stock, whose index is the view over cataloginventory_stock_status.
    msi_shop.env.execute("DELETE FROM inventory_stock_sales_channel",
                         "UPDATE cataloginventory_stock_status SET stock_status = 0, qty = 0 WHERE product_id = 11")

    summary, sent = msi_shop.sent_by_next_run()

    # Magento logs no product for a sales channel: the stock layout's fingerprint makes the run reconcile in full.
    assert summary["mode"] == "full" and "which stock a website sells from changed" in summary["mode_reason"]
    # The fixture's legacy status says in stock (qty 999) for all but the configurable (qty 0, in stock) and the watch.
    assert msi_shop.availability(JACKET) == availability(True)
    assert msi_shop.availability(DRESS) == availability(True)
    assert msi_shop.availability(WATCH) == availability(False)
    # Each product whose availability changed, and nothing else: of the 23, all but the trousers (in stock, not
    # low, before and after) and the watch (out before and after); the dress only stops being low.
    assert sent == {"products": {"upsert": 21}}
    assert receiver_state(msi_shop.receiver.root) == mapped_source(msi_shop.env.source_url)
