"""Two store views on one locale: the locale's base view gives the product, the other a product layer.

On the real Magento 2.4.8 fixture (read by hand from the dump): one website `base`, store group 1
(`main_website_store`, root category 2), one store view `default` (store_id 1); `general/locale/code`
pt_BR at default scope only; 23 products, all in website 1. Product 2 is the simple product
`Jaqueta Jeans Feminina`: name (attribute 73) "Jaqueta Jeans Feminina" at store 0, visibility (99) 4,
no description (75). The tests add a second view `b2b` (store_id 2) on the same website and store group,
so it inherits pt_BR: with no values of its own it reads exactly like `default`.
"""

from __future__ import annotations

import pytest

from catalog_sync import cli
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import SyncEnv, key_text, pinned_env_and_receiver

pytestmark = pytest.mark.mariadb

TOKEN = "test-token-123"
SKU = "Jaqueta Jeans Feminina"
NAME, DESCRIPTION, VISIBILITY = 73, 75, 99


def layer_key(view: str, locale: str = "pt-BR") -> str:
    return key_text({"sku": SKU, "source": {"layer": view, "locale": locale}})


class Shop:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def next_run(self, *extra: str) -> tuple[dict, dict]:
        return self.env.sync_and_accepted(self.capsys, self.receiver, *extra)

    def held(self, feed: str) -> dict[str, dict]:
        return receiver_state(self.receiver.root).get(feed, {})

    def product(self, locale: str = "pt-BR") -> dict:
        return self.held("products")[key_text({"sku": SKU, "source": {"locale": locale}})]

    def set_b2b_value(self, table: str, attribute_id: int, value) -> None:
        self.env.execute(f"INSERT INTO catalog_product_entity_{table} (attribute_id, store_id, entity_id, value) "
                         "VALUES (:a, 2, 2, :v) ON DUPLICATE KEY UPDATE value = :v", params={"a": attribute_id, "v": value})


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    shop = Shop(*pinned_env_and_receiver(magento_fixture_url, tmp_path, monkeypatch, TOKEN), capsys)
    shop.env.execute("INSERT INTO store (store_id, code, website_id, group_id, name, sort_order, is_active) "
                     "VALUES (2, 'b2b', 1, 1, 'Empresas', 1, 1)")
    summary, _ = shop.next_run()
    # Two views on pt_BR no longer fail the run: 23 products, and no layer, since b2b differs in nothing.
    assert summary["mode"] == "full" and summary["layer_gaps"] == 0
    assert len(shop.held("products")) == 23 and shop.held("product_layers") == {}
    yield shop
    shop.receiver.stop()


def with_b2b_name_and_description(shop: Shop) -> None:
    shop.set_b2b_value("varchar", NAME, "Jaqueta Jeans Feminina Atacado")
    shop.set_b2b_value("text", DESCRIPTION, "Vendida em caixas de 10.")
    summary, sent = shop.next_run()
    assert summary["mode"] == "incremental" and sent == {"product_layers": {"upsert": 1}}


def test_a_views_own_values_become_a_layer_with_only_what_differs(shop):
    with_b2b_name_and_description(shop)

    assert shop.held("product_layers") == {layer_key("b2b"): {
        "sku": SKU, "source": {"locale": "pt-BR", "layer": "b2b"},
        "name": "Jaqueta Jeans Feminina Atacado", "description": "Vendida em caixas de 10."}}
    assert shop.product()["name"] == "Jaqueta Jeans Feminina" and "description" not in shop.product()


def test_a_field_a_layer_cannot_carry_is_reported_with_the_product_and_nothing_is_sent(shop):
    shop.set_b2b_value("int", VISIBILITY, 1)  # not visible individually, in b2b only

    summary, sent = shop.next_run()

    assert sent == {}
    assert summary["layer_gaps"] == 1
    assert summary["layer_gaps_listed"] == [
        {"sku": SKU, "store_view_code": "b2b", "base_view_code": "default", "field": "visibleIn"}]
    assert shop.product()["visibleIn"] == ["CATALOG", "SEARCH"]  # the base's, as documented


def test_values_back_at_the_default_delete_the_layer(shop):
    with_b2b_name_and_description(shop)
    shop.env.execute("DELETE FROM catalog_product_entity_varchar WHERE store_id = 2",
                     "DELETE FROM catalog_product_entity_text WHERE store_id = 2")

    summary, sent = shop.next_run()

    assert summary["mode"] == "incremental" and sent == {"product_layers": {"delete": 1}}
    assert shop.held("product_layers") == {}


def test_switching_the_base_view_is_a_full_reconcile_that_converges(shop):
    with_b2b_name_and_description(shop)

    summary, sent = shop.next_run("--base-views", "b2b")

    assert summary["mode"] == "full"
    assert "store view default: 'id 1, website base, store main_website_store' -> " \
           "'id 1, website base, store main_website_store, layer 1 of its locale'" in summary["mode_reason"]
    assert sent == {"products": {"upsert": 1}, "product_layers": {"upsert": 1, "delete": 1}}
    assert shop.product()["name"] == "Jaqueta Jeans Feminina Atacado"
    assert shop.product()["description"] == "Vendida em caixas de 10."
    # default is now the layer: it clears the description and gives its own name back.
    assert shop.held("product_layers") == {layer_key("default"): {
        "sku": SKU, "source": {"locale": "pt-BR", "layer": "default"}, "name": "Jaqueta Jeans Feminina",
        "description": None}}

    summary, sent = shop.next_run("--base-views", "b2b")
    assert summary["mode"] == "incremental" and sent == {}


def test_a_layer_views_locale_changed_makes_it_a_base_and_leaves_no_layer(shop):
    with_b2b_name_and_description(shop)
    shop.env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) "
                     "VALUES ('stores', 2, 'general/locale/code', 'en_US')")

    summary, sent = shop.next_run()

    assert summary["mode"] == "full"
    assert "stores/2/general/locale/code: '(unset)' -> 'en_US'" in summary["mode_reason"]
    assert sent["products"] == {"upsert": 23} and sent["product_layers"] == {"delete": 1}
    assert "prices" not in sent  # one website, one price book: its prices are judged in default, as before
    assert shop.held("product_layers") == {}
    assert len(shop.held("products")) == 46
    assert shop.product("en-US")["name"] == "Jaqueta Jeans Feminina Atacado"
    assert shop.product("pt-BR")["name"] == "Jaqueta Jeans Feminina"


def test_a_layer_view_left_out_of_the_export_deletes_its_layer_in_an_incremental_run(shop):
    with_b2b_name_and_description(shop)

    summary, sent = shop.next_run("--store-views", "default")

    assert summary["mode"] == "incremental" and sent == {"product_layers": {"delete": 1}}
    assert shop.held("product_layers") == {} and len(shop.held("products")) == 23


def test_a_base_view_that_is_not_exported_is_a_configuration_error(shop):
    shop.capsys.readouterr()
    assert cli.main(shop.env.cli_args("--target-url", shop.receiver.target, "--base-views", "nowhere")) == cli.EXIT_CONFIG
    assert "the base views name 'nowhere', which are not exported; exported store views: b2b, default" \
        in shop.capsys.readouterr().err
