"""Tier prices (`catalog_product_entity_tier_price`), from the real Magento 2.4.8 fixture to the validating
reference receiver.

Read by hand from the dump: product 2, "Jaqueta Jeans Feminina", costs 250 (catalog_product_entity_decimal,
attribute 77 `price`, store 0); the fixture's only website is 1 (`base`), its price book `base`. The tier
price table is empty and has Magento's triggers (to catalog_product_price_cl). The fixture has no
`customer_group` table, which the tier price table's foreign key names: the `shop` fixture creates it
with Magento_Customer's db_schema.xml columns and Magento's own three groups (0 NOT LOGGED IN,
1 General, 2 Wholesale, 3 Retailer in a fresh install), before the first sync.
"""

from __future__ import annotations

import pytest

from catalog_sync.receiver import ReceiverOptions
from catalog_sync.targets.ingestion_api import mapping
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, key_text, mapped_source

pytestmark = pytest.mark.mariadb

TOKEN = "test-token-123"
JACKET = "Jaqueta Jeans Feminina"
GROUPS = ("CREATE TABLE customer_group (customer_group_id int unsigned NOT NULL AUTO_INCREMENT, "
          "customer_group_code varchar(32) NOT NULL, tax_class_id int unsigned NOT NULL DEFAULT 0, "
          "PRIMARY KEY (customer_group_id))",
          "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
          "INSERT INTO customer_group VALUES (0, 'NOT LOGGED IN', 3), (1, 'General', 3), (2, 'Wholesale', 3), "
          "(3, 'Retailer', 3)")
TIERS = ("INSERT INTO catalog_product_entity_tier_price (entity_id, all_groups, customer_group_id, qty, value, website_id, "
         "percentage_value) VALUES "
         "(2, 1, 0, 5, 200, 0, NULL), "     # 5 or more: 200, on every website...
         "(2, 1, 0, 5, 190, 1, NULL), "     # ...and 190 on `base`: the lower wins
         "(2, 1, 0, 10, 0, 0, 20), "        # 10 or more: 20% off
         "(2, 1, 0, 1, 240, 0, NULL), "     # any quantity: 240, a lower price for everyone
         "(2, 0, 1, 2, 100, 0, NULL), "     # only customer group 1 (General), from 2: in General's own price book
         "(2, 0, 3, 10, 150, 1, NULL)",)    # only Retailer (3), from 10, on `base`: better than 20% off (200)
# Adobe's connector names a group's book `websiteCode::sha1(customerGroupId)`.
GENERAL = "base::356a192b7913b04c54574d18c28d46e6395428ab"  # sha1("1")
RETAILER = "base::77de68daecd823babbb58edb1c8e14d7106e83bb"  # sha1("3")


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="acme", required_token=TOKEN))
    env = SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state")
    env.execute(*GROUPS)
    assert env.sync(capsys, "--target-url", receiver.target)["mode"] == "full"
    yield env, receiver, capsys
    receiver.stop()


def sent_by_next_run(env: SyncEnv, receiver: ThreadedReceiver, capsys) -> tuple[dict, dict]:
    return env.sync_and_accepted(capsys, receiver)


def jacket_price(receiver: ThreadedReceiver, book: str = "base") -> dict:
    return receiver_state(receiver.root)["prices"][key_text(mapping.price_key(JACKET, book))]


def test_each_customer_group_has_a_child_price_book_of_the_websites(shop):
    _, receiver, _ = shop
    books = receiver_state(receiver.root)["price_books"]
    assert books == {
        key_text({"priceBookId": "base"}): {"priceBookId": "base", "name": "base", "currency": "BRL"},
        **{key_text({"priceBookId": f"base::{digest}"}): {"priceBookId": f"base::{digest}", "name": f"base {code}",
                                                          "parentId": "base"}
           for digest, code in (("b6589fc6ab0dc82cf12099d1c2d40ab994e8410c", "NOT LOGGED IN"),  # sha1("0")
                                (GENERAL.split("::")[1], "General"),
                                ("da4b9237bacccdf19c0760cab7aec4a8359010b0", "Wholesale"),  # sha1("2")
                                (RETAILER.split("::")[1], "Retailer"))}}


def test_tier_prices_reach_the_prices_and_a_change_sends_those_prices_alone(shop):
    env, receiver, capsys = shop
    assert "tierPrices" not in jacket_price(receiver)

    env.execute(*TIERS)
    summary, sent = sent_by_next_run(env, receiver, capsys)

    # The jacket's price in the website's book, and in General's and Retailer's, which have rows of their own;
    # the product's body has no prices.
    assert summary["mode"] == "incremental" and sent == {"prices": {"upsert": 3}}
    assert summary["not_carried"] == {}
    assert jacket_price(receiver) == {
        "sku": JACKET, "priceBookId": "base", "regular": 250.0,
        "discounts": [{"code": "tier_price", "price": 10.0}],
        "tierPrices": [{"qty": 5.0, "price": 190.0}, {"qty": 10.0, "percentage": 20.0}]}
    # A child book's price replaces its parent's: it repeats the regular price, the discount and every group's tiers.
    assert jacket_price(receiver, GENERAL) == {
        "sku": JACKET, "priceBookId": GENERAL, "regular": 250.0,
        "discounts": [{"code": "tier_price", "price": 10.0}],
        "tierPrices": [{"qty": 2.0, "price": 100.0}, {"qty": 5.0, "price": 190.0}, {"qty": 10.0, "percentage": 20.0}]}
    assert jacket_price(receiver, RETAILER)["tierPrices"] == [{"qty": 5.0, "price": 190.0}, {"qty": 10.0, "price": 150.0}]

    # A tier for every group changes: the website's price and General's, not Retailer's (its 150 still wins at 10).
    env.execute("UPDATE catalog_product_entity_tier_price SET percentage_value = 25 WHERE entity_id = 2 AND qty = 10 "
                "AND all_groups = 1")
    summary, sent = sent_by_next_run(env, receiver, capsys)
    assert sent == {"prices": {"upsert": 2}}
    assert jacket_price(receiver)["tierPrices"][1] == {"qty": 10.0, "percentage": 25.0}

    # General's own row goes: its price goes too (the group inherits the website's again).
    env.execute("DELETE FROM catalog_product_entity_tier_price WHERE entity_id = 2 AND customer_group_id = 1")
    summary, sent = sent_by_next_run(env, receiver, capsys)
    assert sent == {"prices": {"delete": 1}}

    env.execute("DELETE FROM catalog_product_entity_tier_price WHERE entity_id = 2")
    summary, sent = sent_by_next_run(env, receiver, capsys)
    assert sent == {"prices": {"upsert": 1, "delete": 1}}
    assert jacket_price(receiver) == {"sku": JACKET, "priceBookId": "base", "regular": 250.0}
    assert receiver_state(receiver.root) == mapped_source(env.source_url)


def test_a_tier_the_contract_cannot_take_holds_the_product_with_the_reason():
    from decimal import Decimal

    with pytest.raises(ValueError, match="tier price at qty 3: 300 is not above 0 and at most the regular price 250"):
        mapping.tier_prices([{"qty": 3.0, "value": 300.0, "percentage": None, "website_id": 0}], Decimal("250"))
    with pytest.raises(ValueError, match="100% off is outside the contract's 0.01-99.99"):
        mapping.tier_prices([{"qty": 3.0, "value": None, "percentage": 100.0, "website_id": 0}], Decimal("250"))


def test_catalog_rule_prices_are_counted_not_sent(shop):
    env, receiver, capsys = shop
    # Magento_CatalogRule's index, as its indexer fills it: the jacket at 225 for guests today.
    env.execute("CREATE TABLE catalogrule_product_price (rule_product_price_id int unsigned NOT NULL AUTO_INCREMENT, "
                "rule_date date NOT NULL, customer_group_id int unsigned, product_id int unsigned NOT NULL, "
                "rule_price decimal(20,6) NOT NULL DEFAULT 0, website_id smallint unsigned NOT NULL, latest_start_date date, "
                "earliest_end_date date, PRIMARY KEY (rule_product_price_id))",
                "INSERT INTO catalogrule_product_price (rule_date, customer_group_id, product_id, rule_price, website_id) "
                "VALUES ('2026-12-01', 0, 2, 225, 1), ('2026-12-02', 0, 2, 225, 1)")
    summary = env.sync(capsys, "--target-url", receiver.target, "--full")
    assert summary["not_carried"] == {"catalog_rule_prices": 1}
    assert jacket_price(receiver) == {"sku": JACKET, "priceBookId": "base", "regular": 250.0}
