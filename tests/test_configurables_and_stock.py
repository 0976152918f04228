"""Configurable products, their variants, links to other products and availability, from the real
Magento 2.4.8 fixture to the validating reference receiver.

Expected values were read by hand from ../shared/fixtures/magento-2.4.8-catalog.sql:
- `catalog_product_super_attribute` (1, 1, 93, 0): product 1, "Camiseta Básica Algodão", offers color
  (attribute 93), labelled 'Color' at store 0 in `catalog_product_super_attribute_label`;
- `catalog_product_super_link`: its variants are products 21, 22, 23;
- `catalog_product_entity_int` (attribute 93, store 0): 21 -> option 4, 22 -> 5, 23 -> 6, whose
  `eav_attribute_option_value` labels are 'azul', 'preto', 'branco'; color's additional_data is NULL (no swatch);
- `cataloginventory_stock_item`: product 1 qty 0 in stock, products 2 and 21-23 qty 999 in stock;
- `catalog_product_link` is empty; `catalog_product_link_type`: 1 relation, 3 super, 4 up_sell, 5 cross_sell;
- `core_config_data`: general/locale/weight_unit = kgs; no stock threshold (cataloginventory/options/
  stock_threshold_qty unset: Magento's default 0, never "low"); no product has a weight.
"""

from __future__ import annotations

import json

import pytest

from catalog_sync import cli
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.state.status_store import StatusStore
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, mapped_source, product_key

pytestmark = pytest.mark.mariadb

TENANT, TOKEN = "acme-tenant", "test-token-123"
PARENT = "Camiseta Básica Algodão"
VARIANTS = {21: (f"{PARENT}-azul", 4, "azul"), 22: (f"{PARENT}-preto", 5, "preto"), 23: (f"{PARENT}-branco", 6, "branco")}
JACKET = "Jaqueta Jeans Feminina"  # product 2
DRESS, TROUSERS, BLOUSE, WATCH = "Vestido Midi Estampado", "Calça Skinny Masculina", "Blusa de Tricô Oversized", \
    "Relógio Analógico Clássico"  # products 3, 4, 5, 11


def stock(in_stock: bool) -> dict:
    return {"code": "aco_ac_attributes",
            "values": [json.dumps({"inStock": in_stock, "lowStock": False, "weight": None, "weightType": "kgs"},
                                  separators=(",", ":"))]}


class Shop:
    """The fixture in MariaDB, synced to a validating receiver (every body checked against the contract)."""

    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sync(self, expect: int = 0) -> dict:
        return self.env.sync(self.capsys, "--target-url", self.receiver.target, expect_exit=expect)

    def product(self, sku: str) -> dict:
        return receiver_state(self.receiver.root)["products"][product_key(sku, "pt-BR")]

    def sent_by_next_run(self, expect: int = 0) -> tuple[dict, dict]:
        """Run once more; return the run's summary and what the receiver accepted during it, by feed and op."""
        return self.env.sync_and_accepted(self.capsys, self.receiver, expect_exit=expect)


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN))
    shop = Shop(SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state"), receiver, capsys)
    assert shop.sync()["mode"] == "full"
    yield shop
    receiver.stop()


def test_the_configurable_offers_its_color_and_each_variant_points_back_at_it(shop):
    parent = shop.product(PARENT)
    assert parent["status"] == "ENABLED" and parent["externalIds"] == [{"id": "1", "origin": "AdobeCommerce"}]
    assert parent["configurations"] == [{
        "attributeCode": "color", "label": "Color", "type": "CONFIGURABLE",
        "values": [{"variantReferenceId": "color-4", "label": "azul"}, {"variantReferenceId": "color-5", "label": "preto"},
                   {"variantReferenceId": "color-6", "label": "branco"}]}]
    assert parent["attributes"][0] == stock(True)  # qty 0, but Magento keeps a configurable "in stock"
    assert "links" not in parent
    for entity_id, (sku, option_id, label) in VARIANTS.items():
        variant = shop.product(sku)
        assert variant["externalIds"] == [{"id": str(entity_id), "origin": "AdobeCommerce"}]
        assert variant["attributes"][0] == stock(True)
        assert {"code": "color", "values": [label], "variantReferenceId": f"color-{option_id}"} in variant["attributes"]
        assert variant["links"] == [{"type": "VARIANT_OF", "sku": PARENT}]
    assert "configurations" not in shop.product(JACKET) and "variantReferenceId" not in json.dumps(shop.product(JACKET))
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_a_variant_unassigned_leaves_no_stale_association(shop):
    shop.env.execute("DELETE FROM catalog_product_super_link WHERE product_id = 23")  # branco

    summary, sent = shop.sent_by_next_run()

    assert summary["mode"] == "incremental"
    assert sent == {"products": {"upsert": 2}}  # the configurable and the former variant, nothing else
    assert [v["variantReferenceId"] for v in shop.product(PARENT)["configurations"][0]["values"]] == ["color-4", "color-5"]
    former = shop.product(VARIANTS[23][0])
    assert "links" not in former and {"code": "color", "values": ["branco"]} in former["attributes"]
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_a_product_going_out_of_stock_is_sent_and_a_qty_change_alone_is_not(shop):
    shop.env.execute("UPDATE cataloginventory_stock_item SET qty = 998 WHERE product_id = 2")
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "incremental" and sent == {}  # still in stock: no sent value changed

    shop.env.execute("UPDATE cataloginventory_stock_item SET qty = 0, is_in_stock = 0 WHERE product_id = 2")
    summary, sent = shop.sent_by_next_run()

    assert sent == {"products": {"upsert": 1}}
    assert shop.product(JACKET)["attributes"][0] == stock(False)
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_related_up_sell_and_cross_sell_links_are_sent_with_the_product_that_links(shop):
    shop.env.execute("INSERT INTO catalog_product_link (product_id, linked_product_id, link_type_id) "
                     "VALUES (2, 11, 1), (2, 3, 4), (2, 5, 5), (2, 4, 5)")

    summary, sent = shop.sent_by_next_run()

    assert summary["mode"] == "incremental" and sent == {"products": {"upsert": 1}}  # the jacket only
    assert shop.product(JACKET)["links"] == [  # by Magento's type code (cross_sell, relation, up_sell), then sku
        {"type": "CROSSSELL", "sku": BLOUSE}, {"type": "CROSSSELL", "sku": TROUSERS},
        {"type": "RELATED", "sku": WATCH}, {"type": "UPSELL", "sku": DRESS}]

    # The linked product's sku changes: Magento logs only that product, and the jacket names it.
    shop.env.execute("UPDATE catalog_product_entity SET sku = 'Relógio Clássico' WHERE entity_id = 11")
    summary, sent = shop.sent_by_next_run()
    assert {"type": "RELATED", "sku": "Relógio Clássico"} in shop.product(JACKET)["links"]
    assert sent == {"products": {"upsert": 2, "delete": 1}, "prices": {"upsert": 1, "delete": 1}}  # the watch moved

    shop.env.execute("DELETE FROM catalog_product_link WHERE product_id = 2 AND link_type_id IN (1, 5)")
    summary, sent = shop.sent_by_next_run()
    assert sent == {"products": {"upsert": 1}} and shop.product(JACKET)["links"] == [{"type": "UPSELL", "sku": DRESS}]
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_a_grouped_product_names_its_members(shop):
    # Product 13 becomes a grouped product of 14 and 15 (link type 3, `super`), as the admin saves one.
    shop.env.execute("UPDATE catalog_product_entity SET type_id = 'grouped' WHERE entity_id = 13",
                     "INSERT INTO catalog_product_link (product_id, linked_product_id, link_type_id) VALUES (13, 14, 3), (13, 15, 3)")

    summary, sent = shop.sent_by_next_run()

    assert sent == {"products": {"upsert": 1}}
    assert shop.product("Cinto de Couro Masculino")["links"] == [
        {"type": "ASSOCIATED", "sku": "Chapéu Fedora Feminino"}, {"type": "ASSOCIATED", "sku": "Pulseira de Couro Trançado"}]


def test_a_grouped_product_without_members_is_disabled(shop):
    shop.env.execute("UPDATE catalog_product_entity SET type_id = 'grouped' WHERE entity_id = 13")
    shop.sent_by_next_run()
    assert shop.product("Cinto de Couro Masculino")["status"] == "DISABLED"  # nothing to buy in it


def test_an_option_relabelled_reaches_the_products_that_use_it_and_nothing_else(shop):
    # 'azul' (option 4) is renamed in the admin: Magento writes eav_attribute_option_value, logs no product.
    shop.env.execute("UPDATE eav_attribute_option_value SET value = 'azul-marinho' WHERE option_id = 4 AND store_id = 0")

    summary, sent = shop.sent_by_next_run()

    # The hourly run sees the option's label bucket changed, and reads again the products that carry it:
    # the variant with color 4, and its configurable. Only those two are sent.
    assert summary["mode"] == "incremental"
    assert sent == {"products": {"upsert": 2}}
    assert {"code": "color", "values": ["azul-marinho"], "variantReferenceId": "color-4"} in shop.product(
        VARIANTS[21][0])["attributes"]
    assert shop.product(PARENT)["configurations"][0]["values"][0] == {"variantReferenceId": "color-4", "label": "azul-marinho"}
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "incremental" and sent == {}


def test_a_configurable_option_relabelled_is_sent_by_the_next_hourly_run_alone(shop):
    # The configurable's own label for its color option (catalog_product_super_attribute_label, value_id 1).
    shop.env.execute("UPDATE catalog_product_super_attribute_label SET value = 'Cor' WHERE product_super_attribute_id = 1")

    summary, sent = shop.sent_by_next_run()

    assert summary["mode"] == "incremental" and sent == {"products": {"upsert": 1}}
    assert shop.product(PARENT)["configurations"][0]["label"] == "Cor"
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


BUNDLE, SHOES, BOOTS, SANDALS, SNEAKERS = ("Cinto de Couro Masculino", "Tênis Casual Branco", "Bota Cano Curto Feminina",
                                           "Sandália Rasteira Feminina", "Sapatênis Masculino")  # products 13, 16-19


def test_a_bundle_offers_its_options_and_its_products_point_back_at_it(shop):
    # Product 13 becomes a bundle: 'Sapatos' (required, one of 16 or 17) and 'Extras' (any of 18).
    shop.env.execute(
        "UPDATE catalog_product_entity SET type_id = 'bundle' WHERE entity_id = 13",
        "INSERT INTO catalog_product_bundle_option (option_id, parent_id, required, position, type) VALUES "
        "(1, 13, 1, 0, 'radio'), (2, 13, 0, 1, 'checkbox')",
        "INSERT INTO catalog_product_bundle_option_value (option_id, store_id, title, parent_product_id) VALUES "
        "(1, 0, 'Sapatos', 13), (2, 0, 'Extras', 13)",
        "INSERT INTO catalog_product_bundle_selection (option_id, parent_product_id, product_id, position, is_default, "
        "selection_qty, selection_can_change_qty) VALUES (1, 13, 16, 0, 1, 1, 0), (1, 13, 17, 1, 0, 1, 1), "
        "(2, 13, 18, 0, 0, NULL, 0)")

    summary, sent = shop.sent_by_next_run()

    assert sent == {"products": {"upsert": 4}}  # the bundle and the three products it offers
    assert shop.product(BUNDLE)["bundles"] == [
        {"group": "Sapatos", "required": True, "multiSelect": False, "defaultItemSkus": [SHOES],
         "items": [{"sku": SHOES, "qty": 1.0, "userDefinedQty": False}, {"sku": BOOTS, "qty": 1.0, "userDefinedQty": True}]},
        {"group": "Extras", "required": False, "multiSelect": True, "items": [{"sku": SANDALS, "userDefinedQty": False}]}]
    for sku in (SHOES, BOOTS, SANDALS):
        assert shop.product(sku)["links"] == [{"type": "IN_BUNDLE", "sku": BUNDLE}]

    # A selection added, then one removed: the bundle and that product each time, nothing else.
    shop.env.execute("INSERT INTO catalog_product_bundle_selection (option_id, parent_product_id, product_id, position, "
                     "is_default, selection_qty, selection_can_change_qty) VALUES (2, 13, 19, 1, 0, 1, 0)")
    _, sent = shop.sent_by_next_run()
    assert sent == {"products": {"upsert": 2}} and shop.product(SNEAKERS)["links"] == [{"type": "IN_BUNDLE", "sku": BUNDLE}]
    shop.env.execute("DELETE FROM catalog_product_bundle_selection WHERE product_id = 18")
    _, sent = shop.sent_by_next_run()
    assert sent == {"products": {"upsert": 2}} and "links" not in shop.product(SANDALS)
    assert [i["sku"] for i in shop.product(BUNDLE)["bundles"][1]["items"]] == [SNEAKERS]
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)

    # One SKU in two options: the API would refuse the bundle. Quarantined with the reason; the target
    # keeps its last good version.
    shop.env.execute("INSERT INTO catalog_product_bundle_selection (option_id, parent_product_id, product_id, position, "
                     "is_default, selection_qty, selection_can_change_qty) VALUES (2, 13, 16, 2, 0, 1, 0)")
    summary, sent = shop.sent_by_next_run(expect=cli.EXIT_NOT_ACCEPTED)
    assert sent == {} and summary["not_accepted"] == 1
    assert [i["sku"] for i in shop.product(BUNDLE)["bundles"][1]["items"]] == [SNEAKERS]
    store = StatusStore(f"sqlite:///{shop.env.state_dir / 'status.db'}")
    [failure] = store.failures(store.recent_runs(1)[0]["run_id"])
    assert (failure["sku"], failure["reason"]) == (
        BUNDLE, f"a SKU in two options of this bundle, which the ingestion API refuses: {SHOES}")
