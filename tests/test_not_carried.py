"""What the ingestion contract cannot carry is counted per run, not silently dropped: the real Magento
2.4.8 fixture, extended by SQL, synced to the validating reference receiver.

From ../shared/fixtures/magento-2.4.8-catalog.sql: catalog_product_option, catalog_product_link_attribute(_decimal)
and the bundle tables exist, empty but for catalog_product_link_attribute's rows, whose (5, 3, 'qty', 'decimal')
is the grouped link's default quantity; there are no downloadable_* or magento_giftcard_amount tables (created
here with the shapes of Magento_Downloadable's and Magento_GiftCard's db_schema.xml, the gift card keyed by
entity_id as on an Open Source-shaped shop). Products 2-20 are simple, 21-23 virtual, 1 configurable.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

import shop_sql
from catalog_sync.magento import layout, not_carried
from catalog_sync.magento.catalog_reader import read_only_engine
from catalog_sync.magento.not_carried import NotCarried
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.run_clock import parse_instant
from receiver_helpers import ThreadedReceiver
from sync_helpers import PINNED_NOW, SyncEnv

pytestmark = pytest.mark.mariadb

TENANT, TOKEN = "acme-tenant", "test-token-123"
QTY_ATTRIBUTE = 5  # catalog_product_link_attribute: link type 3 (super), 'qty', decimal

CREATE_DOWNLOADABLE_AND_GIFT_CARD = (
    "CREATE TABLE downloadable_link (link_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "product_id int unsigned NOT NULL DEFAULT 0, sort_order int unsigned NOT NULL DEFAULT 0, number_of_downloads int, "
    "is_shareable smallint unsigned NOT NULL DEFAULT 0, link_url varchar(255), link_file varchar(255), "
    "link_type varchar(20), sample_url varchar(255), sample_file varchar(255), sample_type varchar(20), "
    "KEY DOWNLOADABLE_LINK_PRODUCT_ID_SORT_ORDER (product_id, sort_order), "
    "FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE downloadable_sample (sample_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "product_id int unsigned NOT NULL DEFAULT 0, sample_url varchar(255), sample_file varchar(255), "
    "sample_type varchar(20), sort_order int unsigned NOT NULL DEFAULT 0, KEY DOWNLOADABLE_SAMPLE_PRODUCT_ID (product_id), "
    "FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE magento_giftcard_amount (value_id int NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "website_id smallint unsigned NOT NULL DEFAULT 0, value decimal(12,4) NOT NULL DEFAULT 0, "
    "attribute_id smallint unsigned NOT NULL, entity_id int unsigned NOT NULL DEFAULT 0, "
    "FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)

NOT_CARRIED_DATA = (
    # Custom options: product 2 has two, product 3 one.
    "INSERT INTO catalog_product_option (product_id, type, is_require, sku, sort_order) VALUES "
    "(2, 'field', 1, 'gravacao', 0), (2, 'drop_down', 0, NULL, 1), (3, 'area', 0, 'mensagem', 0)",
    # Downloadable: product 4 has a link and a sample, product 5 a sample only.
    "UPDATE catalog_product_entity SET type_id = 'downloadable' WHERE entity_id IN (4, 5)",
    "INSERT INTO downloadable_link (product_id, number_of_downloads, is_shareable, link_url, link_type) VALUES "
    "(4, 0, 0, 'https://example.com/manual.pdf', 'url')",
    "INSERT INTO downloadable_sample (product_id, sample_url, sample_type) VALUES "
    "(4, 'https://example.com/amostra.pdf', 'url'), (5, 'https://example.com/amostra-2.pdf', 'url')",
    # Bundles: 13 offers 16 (at a selection price of 5.00), 17 and 18; 12 offers 19 at no selection price.
    "UPDATE catalog_product_entity SET type_id = 'bundle' WHERE entity_id IN (12, 13)",
    "INSERT INTO catalog_product_bundle_option (option_id, parent_id, required, position, type) VALUES "
    "(1, 13, 1, 0, 'radio'), (2, 13, 0, 1, 'checkbox'), (3, 12, 1, 0, 'select')",
    "INSERT INTO catalog_product_bundle_option_value (option_id, store_id, title, parent_product_id) VALUES "
    "(1, 0, 'Sapatos', 13), (2, 0, 'Extras', 13), (3, 0, 'Tênis', 12)",
    "INSERT INTO catalog_product_bundle_selection (option_id, parent_product_id, product_id, position, is_default, "
    "selection_price_type, selection_price_value, selection_qty, selection_can_change_qty) VALUES "
    "(1, 13, 16, 0, 1, 0, 5.0000, 1, 0), (1, 13, 17, 1, 0, 0, 0, 1, 1), (2, 13, 18, 0, 0, 0, 0, NULL, 0), "
    "(3, 12, 19, 0, 1, 0, 0, 1, 0)",
    # Grouped: 10 holds 6 (default qty 2) and 7 (qty 0); 9 holds 8 at qty 0, which Magento stores too.
    "UPDATE catalog_product_entity SET type_id = 'grouped' WHERE entity_id IN (9, 10)",
    "INSERT INTO catalog_product_link (link_id, product_id, linked_product_id, link_type_id) VALUES "
    "(1, 10, 6, 3), (2, 10, 7, 3), (3, 9, 8, 3)",
    f"INSERT INTO catalog_product_link_attribute_decimal (product_link_attribute_id, link_id, value) VALUES "
    f"({QTY_ATTRIBUTE}, 1, 2.000000), ({QTY_ATTRIBUTE}, 2, 0), ({QTY_ATTRIBUTE}, 3, 0)",
    # A gift card: product 11 with two fixed amounts.
    "UPDATE catalog_product_entity SET type_id = 'giftcard' WHERE entity_id = 11",
    "INSERT INTO magento_giftcard_amount (website_id, value, attribute_id, entity_id) VALUES (1, 50, 200, 11), (1, 100, 200, 11)",
)

# Written by hand from the rows above.
EVERY_KIND = {"bundle_option_positions": 2, "bundle_selection_prices": 1, "grouped_quantities": 1, "custom_options": 2,
              "downloadable": 2, "gift_card": 1}
HOLDERS = 8  # 2, 3 (options), 4, 5 (downloadable), 12, 13 (bundles; 13 twice), 10 (grouped), 11 (gift card)


class Shop:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sync(self, *extra: str) -> dict:
        return self.env.sync(self.capsys, "--target-url", self.receiver.target, *extra)

    def touch_name(self, entity_id: int, name: str) -> None:
        """The admin renames a product (Magento's trigger logs it in the changelogs)."""
        self.env.execute("UPDATE catalog_product_entity_varchar SET value = :name WHERE entity_id = :id AND store_id = 0 "
                         "AND attribute_id = (SELECT attribute_id FROM eav_attribute WHERE attribute_code = 'name' "
                         "AND entity_type_id = 4)", params={"name": name, "id": entity_id})


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN))
    yield Shop(SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state"), receiver, capsys)
    receiver.stop()


def report_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "catalog_sync.steps" and "ingestion API cannot carry" in
            r.getMessage()]


def test_a_run_counts_the_products_whose_data_the_contract_cannot_carry(shop, caplog):
    shop.env.execute(*CREATE_DOWNLOADABLE_AND_GIFT_CARD, *NOT_CARRIED_DATA)

    with caplog.at_level(logging.INFO, logger="catalog_sync.steps"):
        summary = shop.sync()

    assert summary["mode"] == "full" and summary["failed"] == 0 and summary["not_accepted"] == 0
    assert summary["not_carried"] == EVERY_KIND and summary["not_carried_products"] == HOLDERS
    assert report_lines(caplog) == [
        "report: 8 product(s) hold data the ingestion API cannot carry, not sent: bundle_option_positions 2, "
        "custom_options 2, downloadable 2, bundle_selection_prices 1, grouped_quantities 1, gift_card 1 "
        "(see README, 'What the contract cannot carry')"]

    # Nothing changed: an incremental run reads nothing, and counts nothing.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="catalog_sync.steps"):
        summary = shop.sync()
    assert summary["mode"] == "incremental" and summary["extracted"] == 0
    assert summary["not_carried"] == {} and summary["not_carried_products"] == 0
    assert report_lines(caplog) == ["report: no product in this run holds data the ingestion API cannot carry"]

    # One product with custom options renamed: only it is counted.
    shop.touch_name(3, "Vestido Midi Estampado Floral")
    summary = shop.sync()
    assert summary["mode"] == "incremental" and summary["updated"] == 1
    assert summary["not_carried"] == {"custom_options": 1} and summary["not_carried_products"] == 1

    # The bundle with a selection price renamed: the run re-reads the products it offers too (16, 17, 18),
    # which hold nothing the contract cannot carry; the bundle counts under both of its kinds, once in all.
    shop.touch_name(13, "Kit Sapatos")
    summary = shop.sync()
    assert summary["mode"] == "incremental" and summary["extracted"] == 4
    assert summary["not_carried"] == {"bundle_option_positions": 1, "bundle_selection_prices": 1}
    assert summary["not_carried_products"] == 1

    # Split into sku buckets: a full run counts the catalog once (bucket 0), not once per bucket.
    summary = shop.sync("--full", "--buckets", "3")
    assert summary["mode"] == "full"
    assert summary["not_carried"] == EVERY_KIND and summary["not_carried_products"] == HOLDERS
    shop.touch_name(2, "Jaqueta Jeans Feminina Azul")
    shop.touch_name(10, "Conjunto Agrupado")
    summary = shop.sync("--buckets", "3")
    assert summary["mode"] == "incremental"
    assert summary["not_carried"] == {"grouped_quantities": 1, "custom_options": 1} and summary["not_carried_products"] == 2


def test_a_shop_without_those_tables_counts_none_and_syncs(shop, caplog):
    # Magento_Bundle removed, and the catalog's custom option and link attribute tables gone; no downloadable
    # or gift card tables at all (the fixture has none).
    shop.env.execute(
        "SET FOREIGN_KEY_CHECKS = 0",
        *(f"DROP TABLE {t}" for t in ("catalog_product_bundle_selection", "catalog_product_bundle_option_value",
                                      "catalog_product_bundle_option", "catalog_product_option",
                                      "catalog_product_link_attribute_decimal", "catalog_product_link_attribute")),
        "SET FOREIGN_KEY_CHECKS = 1",
        "UPDATE catalog_product_entity SET type_id = 'grouped' WHERE entity_id = 10",
        "INSERT INTO catalog_product_link (product_id, linked_product_id, link_type_id) VALUES (10, 6, 3)",
    )
    engine = read_only_engine(shop.env.source_url)
    assert NotCarried(engine).kinds == ("customer_group_prices",)  # Magento_Catalog's tier price table stays
    engine.dispose()

    with caplog.at_level(logging.INFO, logger="catalog_sync.steps"):
        summary = shop.sync()

    assert summary["mode"] == "full" and summary["failed"] == 0 and summary["extracted"] == 23
    assert summary["not_carried"] == {} and summary["not_carried_products"] == 0
    assert report_lines(caplog) == ["report: no product in this run holds data the ingestion API cannot carry"]


def test_long_id_lists_are_counted_in_slices_with_the_same_result(magento_fixture_url, monkeypatch):
    shop_sql.run(magento_fixture_url, *CREATE_DOWNLOADABLE_AND_GIFT_CARD, *NOT_CARRIED_DATA)
    engine = read_only_engine(magento_fixture_url)
    layout.read_at(engine, parse_instant(PINNED_NOW))  # Adobe Commerce: the versions the writes above edited
    counter = NotCarried(engine)
    # Every kind but the catalog rule index, which the fixture has no table of (test_tier_prices counts it).
    assert counter.kinds == tuple(k for k in not_carried.KINDS if k != not_carried.CATALOG_RULE_PRICES)
    assert counter.count(None) == (EVERY_KIND, HOLDERS)
    monkeypatch.setattr(not_carried, "IDS_PER_QUERY", 3)
    assert counter.count(range(1, 24)) == (EVERY_KIND, HOLDERS)  # 8 slices
    assert counter.count([13, 16, 17]) == ({"bundle_option_positions": 1, "bundle_selection_prices": 1}, 1)
    assert counter.count([]) == ({}, 0)
    engine.dispose()


def test_adobe_commerce_gift_cards_are_read_by_row_id(mariadb_url):
    # Adobe Commerce keys products' rows by row_id (a version per staged update): two versions of product 7.
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        for statement in (
            "CREATE TABLE catalog_product_entity (row_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "entity_id int unsigned NOT NULL, sku varchar(64), type_id varchar(32) NOT NULL DEFAULT 'simple')",
            "CREATE TABLE magento_giftcard_amount (value_id int NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "website_id smallint unsigned NOT NULL DEFAULT 0, value decimal(12,4) NOT NULL DEFAULT 0, "
            "attribute_id smallint unsigned NOT NULL, row_id int unsigned NOT NULL)",
            "INSERT INTO catalog_product_entity (row_id, entity_id, sku, type_id) VALUES "
            "(1, 7, 'cartao', 'giftcard'), (2, 7, 'cartao', 'giftcard'), (3, 8, 'outro', 'giftcard'), (4, 9, 'camisa', 'simple')",
            "INSERT INTO magento_giftcard_amount (website_id, value, attribute_id, row_id) VALUES "
            "(1, 25, 200, 1), (1, 25, 200, 2), (1, 50, 200, 3)",
        ):
            conn.execute(sa.text(statement))
    counter = NotCarried(engine)
    assert counter.kinds == ("gift_card",)
    assert counter.count(None) == ({"gift_card": 2}, 2)
    assert counter.count([7, 9]) == ({"gift_card": 1}, 1)
    engine.dispose()
