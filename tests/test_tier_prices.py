"""Tier prices (`catalog_product_entity_tier_price`), from the real Magento 2.4.8 fixture to the validating
reference receiver.

Read by hand from the dump: product 2, "Jaqueta Jeans Feminina", costs 250 (catalog_product_entity_decimal,
attribute 77 `price`, store 0); the fixture's only website is 1 (`base`), its price book `base`. The tier
price table is empty and has Magento's triggers (to catalog_product_price_cl). The fixture has no
`customer_group` table, which the tier price table's foreign key names: the rows below are written with
foreign key checks off, as the groups they name (0 NOT LOGGED IN, 1 General) exist in every real shop.
"""

from __future__ import annotations

import pytest

from catalog_sync.receiver import ReceiverOptions
from catalog_sync.targets.ingestion_api import mapping
from receiver_helpers import ThreadedReceiver, accepted, accepted_since, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, key_text, mapped_source

pytestmark = pytest.mark.mariadb

TOKEN = "test-token-123"
JACKET = "Jaqueta Jeans Feminina"
TIERS = ("SET FOREIGN_KEY_CHECKS = 0",
         "INSERT INTO catalog_product_entity_tier_price (entity_id, all_groups, customer_group_id, qty, value, website_id, "
         "percentage_value) VALUES "
         "(2, 1, 0, 5, 200, 0, NULL), "     # 5 or more: 200, on every website...
         "(2, 1, 0, 5, 190, 1, NULL), "     # ...and 190 on `base`: the lower wins
         "(2, 1, 0, 10, 0, 0, 20), "        # 10 or more: 20% off
         "(2, 1, 0, 1, 240, 0, NULL), "     # any quantity: 240, a lower price for everyone
         "(2, 0, 1, 2, 100, 0, NULL)")      # only customer group 1 (General): needs its own price book, not sent


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="acme", required_token=TOKEN))
    env = SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state")
    assert env.sync(capsys, "--target-url", receiver.target)["mode"] == "full"
    yield env, receiver, capsys
    receiver.stop()


def sent_by_next_run(env: SyncEnv, receiver: ThreadedReceiver, capsys) -> tuple[dict, dict]:
    before = accepted(receiver.root)
    summary = env.sync(capsys, "--target-url", receiver.target)
    return summary, accepted_since(before, accepted(receiver.root))


def jacket_price(receiver: ThreadedReceiver) -> dict:
    return receiver_state(receiver.root)["prices"][key_text(mapping.price_key(JACKET, "base"))]


def test_tier_prices_reach_the_price_and_a_change_sends_that_price_alone(shop):
    env, receiver, capsys = shop
    assert "tierPrices" not in jacket_price(receiver)

    env.execute(*TIERS)
    summary, sent = sent_by_next_run(env, receiver, capsys)

    assert summary["mode"] == "incremental" and sent == {"prices": {"upsert": 1}}  # the product's body has no prices
    assert summary["not_carried"] == {"customer_group_prices": 1}  # General's own tier: counted, not sent
    assert jacket_price(receiver) == {
        "sku": JACKET, "priceBookId": "base", "regular": 250.0,
        "discounts": [{"code": "tier_price", "price": 10.0}],
        "tierPrices": [{"qty": 5.0, "price": 190.0}, {"qty": 10.0, "percentage": 20.0}]}

    env.execute("UPDATE catalog_product_entity_tier_price SET percentage_value = 25 WHERE entity_id = 2 AND qty = 10")
    summary, sent = sent_by_next_run(env, receiver, capsys)
    assert sent == {"prices": {"upsert": 1}}
    assert jacket_price(receiver)["tierPrices"][1] == {"qty": 10.0, "percentage": 25.0}

    env.execute("DELETE FROM catalog_product_entity_tier_price WHERE entity_id = 2")
    summary, sent = sent_by_next_run(env, receiver, capsys)
    assert sent == {"prices": {"upsert": 1}} and jacket_price(receiver) == {"sku": JACKET, "priceBookId": "base", "regular": 250.0}
    assert receiver_state(receiver.root) == mapped_source(env.source_url)


def test_a_tier_the_contract_cannot_take_holds_the_product_with_the_reason():
    from decimal import Decimal

    with pytest.raises(ValueError, match="tier price at qty 3: 300 is not above 0 and at most the regular price 250"):
        mapping.tier_prices([{"qty": 3.0, "value": 300.0, "percentage": None, "website_id": 0}], Decimal("250"))
    with pytest.raises(ValueError, match="100% off is outside the contract's 0.01-99.99"):
        mapping.tier_prices([{"qty": 3.0, "value": None, "percentage": 100.0, "website_id": 0}], Decimal("250"))
