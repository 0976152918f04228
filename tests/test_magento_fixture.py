"""Extraction and change detection against the real Magento 2.4.8 catalog, in MariaDB.

The fixture (../shared/fixtures/magento-2.4.8-catalog.sql) carries Magento's own
changelog tables and triggers: every change below goes through plain SQL and the
shop's real triggers. Expected values were read by hand from the dump. The staging
records are checked field by field; what reaches the target is checked as the API's
feed items (the file target writes them).
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from sync_helpers import PINNED_NOW, SyncEnv, expected_feed, key_text, mapped_source, product_key

pytestmark = pytest.mark.mariadb

MEDIA = "https://magento2-hibrido.test/media/catalog/product"
CONFIGURABLE = "Camiseta Básica Algodão"
AZUL, PRETO, BRANCO = (f"{CONFIGURABLE}-{c}" for c in ("azul", "preto", "branco"))
ALL_ROLES = ["image", "small_image", "swatch_image", "thumbnail"]


def price_key(sku: str) -> str:
    return key_text({"sku": sku, "priceBookId": "base"})


@pytest.fixture
def fixture_env(magento_fixture_url, tmp_path, capsys, monkeypatch) -> SyncEnv:
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    env = SyncEnv(source_url=magento_fixture_url, target_dir=tmp_path / "target", state_dir=tmp_path / "state")
    first = env.sync(capsys)
    assert first["mode"] == "full"
    return env


def test_fresh_fixture_extracts_every_product_as_the_storefront_shows_it(fixture_env):
    state = expected_feed(fixture_env.source_url)

    assert len(state) == 23
    assert {view for _, view in state} == {"default"}
    assert {(r["locale"], r["currency"], r["website_code"], r["store_code"]) for r in state.values()} == {
        ("pt_BR", "BRL", "base", "main_website_store")}

    def item(sku):
        return state[(sku, "default")]

    parent = item(CONFIGURABLE)
    assert (parent["name"], parent["type"], parent["status"], parent["visibility"]) == (CONFIGURABLE, "configurable", 1, 4)
    assert parent["price"] == 35.0  # no own price: its cheapest variant's, as the storefront shows
    assert (parent["url_key"], parent["qty"], parent["in_stock"]) == ("camiseta-basica-algod-o", 0.0, True)
    assert parent["category_paths"] == ["Roupas"] and parent["category_ids"] == [4]
    assert parent["images"] == [
        {"url": f"{MEDIA}/3/_/3_1.png", "label": None, "position": 0, "roles": []},
        {"url": f"{MEDIA}/2/_/2_1.png", "label": None, "position": 1, "roles": ["image", "small_image", "thumbnail"]},
        {"url": f"{MEDIA}/1/_/1_1.png", "label": None, "position": 2, "roles": []},
    ]
    assert parent["variant_skus"] == [AZUL, BRANCO, PRETO] and parent["parent_skus"] == []

    for sku, special, image, colour in ((AZUL, 12.0, "/3/_/3.png", "azul"), (PRETO, 22.0, "/2/_/2.png", "preto")):
        variant = item(sku)
        assert (variant["name"], variant["type"], variant["status"], variant["visibility"]) == (sku, "virtual", 1, 1)
        assert (variant["price"], variant["special_price"], variant["special_price_from"]) == (35.0, special, "2025-05-26")
        assert (variant["qty"], variant["in_stock"]) == (999.0, True)
        assert variant["url_key"] == f"camiseta-basica-algod-o-{colour}"
        assert variant["category_paths"] == ["Lançamentos", "Roupas"]
        assert variant["images"] == [{"url": f"{MEDIA}{image}", "label": None, "position": 1, "roles": ALL_ROLES}]
        assert variant["parent_skus"] == [CONFIGURABLE] and variant["variant_skus"] == []
        assert {"code": "color", "label": "Color", "values": [colour]} in variant["attributes"]

    jacket = item("Jaqueta Jeans Feminina")
    assert (jacket["type"], jacket["status"], jacket["visibility"], jacket["price"]) == ("simple", 1, 4, 250.0)
    assert (jacket["url_key"], jacket["qty"], jacket["in_stock"]) == ("jaqueta-jeans-feminina", 999.0, True)
    assert jacket["category_paths"] == ["Lançamentos", "Roupas"]
    assert jacket["images"] == [{"url": f"{MEDIA}/4/_/4.png", "label": None, "position": 1, "roles": ALL_ROLES}]
    assert jacket["attributes"] == [{"code": "cost", "label": "Cost", "values": ["199.0"]}]

    watch = item("Relógio Analógico Clássico")
    assert (watch["type"], watch["price"], watch["url_key"]) == ("simple", 466.0, "relogio-analogico-classico")
    assert watch["category_paths"] == ["Acessórios", "Lançamentos"] and watch["parent_skus"] == []

    # What the target received for them, as the contract's items.
    target = fixture_env.target_state()
    assert {feed: len(items) for feed, items in target.items()} == {
        "products": 23, "prices": 22, "price_books": 1, "metadata": 8,
        "categories": 5}  # 22: the configurable has no price of its own; 5: root 2's children (test_categories)
    assert target["price_books"] == {key_text({"priceBookId": "base"}): {"priceBookId": "base", "name": "base", "currency": "BRL"}}
    assert target["products"][product_key("Jaqueta Jeans Feminina", "pt-BR")] == {
        "sku": "Jaqueta Jeans Feminina", "source": {"locale": "pt-BR"}, "name": "Jaqueta Jeans Feminina",
        "slug": "jaqueta-jeans-feminina", "status": "ENABLED", "visibleIn": ["CATALOG", "SEARCH"],
        # meta_title, meta_description (with its trailing space, as saved) and meta_keyword of entity 2
        "metaTags": {"title": "Jaqueta Jeans Feminina", "description": "Jaqueta Jeans Feminina ",
                     "keywords": ["Jaqueta Jeans Feminina"]},
        # In stock (qty 999), no weight of its own; the shop weighs in kgs (general/locale/weight_unit).
        "attributes": [{"code": "aco_ac_attributes",
                        "values": ['{"inStock":true,"lowStock":false,"weight":null,"weightType":"kgs"}']},
                       {"code": "cost", "values": ["199.0"]}],
        "images": [{"url": f"{MEDIA}/4/_/4.png", "roles": ["BASE", "SMALL", "SWATCH", "THUMBNAIL"]}],
        "routes": [{"path": "lancamentos", "position": 0}, {"path": "roupas", "position": 0}],  # catalog_category_product.position 0
        "externalIds": [{"id": "2", "origin": "AdobeCommerce"}],
    }
    assert target["prices"][price_key(AZUL)] == {"sku": AZUL, "priceBookId": "base", "regular": 35.0,
                                                 "discounts": [{"code": "special_price", "price": 23.0}]}
    assert target["products"][product_key(AZUL, "pt-BR")]["links"] == [{"type": "VARIANT_OF", "sku": CONFIGURABLE}]
    assert target == mapped_source(fixture_env.source_url)


JACKET_ID, WATCH_ID = 2, 11

JACKET, WATCH = "Jaqueta Jeans Feminina", "Relógio Analógico Clássico"

# change -> (SQL, {(feed, key): (op, body field, value)}): exactly what the next run sends.
CHANGES = {
    "new store-level override": (
        ["INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
         "VALUES (73, 1, 2, 'Jaqueta Jeans — loja')"],
        {("products", product_key(JACKET, "pt-BR")): ("upsert", "name", "Jaqueta Jeans — loja")},
    ),
    "price change": (  # the product's body carries no price: only its price is sent
        ["UPDATE catalog_product_entity_decimal SET value = 499.90 WHERE entity_id = 11 AND attribute_id = 77"],
        {("prices", price_key(WATCH)): ("upsert", "regular", 499.9)},
    ),
    "stock change": (  # still in stock, no "Only X left" threshold: no sent value changes, nothing to send
        ["UPDATE cataloginventory_stock_item SET qty = 3, is_in_stock = 1 WHERE product_id = 11"],
        {},
    ),
    "category assignment change": (
        ["INSERT INTO catalog_category_product (category_id, product_id, position) VALUES (7, 2, 0)"],
        {("products", product_key(JACKET, "pt-BR")): (
            "upsert", "routes", [{"path": "acessorios", "position": 0}, {"path": "lancamentos", "position": 0},
                                     {"path": "roupas", "position": 0}])},
    ),
    "product removed from its website": (
        ["DELETE FROM catalog_product_website WHERE product_id = 11"],
        {("products", product_key(WATCH, "pt-BR")): ("delete", None, None), ("prices", price_key(WATCH)): ("delete", None, None)},
    ),
    "product deleted": (
        ["DELETE FROM catalog_product_entity WHERE entity_id = 2"],
        {("products", product_key(JACKET, "pt-BR")): ("delete", None, None), ("prices", price_key(JACKET)): ("delete", None, None)},
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_through_sql_fires_the_real_triggers_and_syncs_exactly_that_item(fixture_env, capsys, change):
    statements, expected = CHANGES[change]
    fixture_env.execute(*statements)

    summary = fixture_env.sync(capsys)

    assert summary["mode"] == "incremental"
    sent = {(line["feed"], key_text(line["key"])): line for line in fixture_env.sent}
    assert set(sent) == set(expected)
    for key, (op, field, value) in expected.items():
        assert sent[key]["op"] == op
        if field:
            assert sent[key]["body"][field] == value
    assert fixture_env.target_state() == mapped_source(fixture_env.source_url)


def test_a_name_changed_at_store_scope_is_synced(fixture_env, capsys):
    fixture_env.execute("INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
                        "VALUES (73, 1, 11, 'Relógio — loja')")
    fixture_env.sync(capsys)
    fixture_env.execute("UPDATE catalog_product_entity_varchar SET value = 'Relógio Clássico (loja)' "
                        "WHERE entity_id = 11 AND attribute_id = 73 AND store_id = 1")

    summary = fixture_env.sync(capsys)

    assert (summary["extracted"], summary["updated"]) == (1, 1)
    assert [(line["key"]["sku"], line["body"]["name"]) for line in fixture_env.sent] == [(WATCH, "Relógio Clássico (loja)")]


def test_a_variant_price_change_sends_only_the_variants_price(fixture_env, capsys):
    """The configurable's price comes from its variants at the target (the contract sends none for it)."""
    fixture_env.execute("UPDATE catalog_product_entity_decimal SET value = 9.90 WHERE attribute_id = 77 AND entity_id = 21")

    fixture_env.sync(capsys)

    assert [(line["feed"], line["key"]["sku"], line["body"]["regular"]) for line in fixture_env.sent] == [
        ("prices", AZUL, 9.9)]


def test_a_trimmed_changelog_escalates_to_a_full_reconcile_and_loses_nothing(fixture_env, capsys, caplog):
    caplog.set_level(logging.INFO, logger="catalog_sync")
    fixture_env.execute("UPDATE catalog_product_entity_varchar SET value = 'Jaqueta renomeada' "
                        "WHERE entity_id = 2 AND attribute_id = 73 AND store_id = 0")
    # Magento's cron trims changelogs behind its indexers; here it also ate our unread change.
    for table in ("catalogsearch_fulltext_cl", "catalog_product_attribute_cl"):
        fixture_env.execute(f"DELETE FROM {table}")

    summary = fixture_env.sync(capsys)

    assert summary["mode"] == "full"
    assert "escalated to a full reconcile: changelog catalogsearch_fulltext_cl was trimmed past our watermark" in caplog.text
    assert [(line["key"]["sku"], line["body"]["name"]) for line in fixture_env.sent] == [(JACKET, "Jaqueta renomeada")]
    assert fixture_env.target_state() == mapped_source(fixture_env.source_url)


def _checksums(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = [r[0] for r in conn.exec_driver_sql("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")]
        sums = {r[0].split(".", 1)[1]: r[1] for r in conn.exec_driver_sql(f"CHECKSUM TABLE {', '.join(tables)}")}
    engine.dispose()
    return sums


def test_the_sync_only_reads_the_shop_database(magento_fixture_url, tmp_path, capsys):
    env = SyncEnv(source_url=magento_fixture_url, target_dir=tmp_path / "target", state_dir=tmp_path / "state")
    before = _checksums(magento_fixture_url)
    assert "mview_state" in before and len(before) > 50

    env.sync(capsys)  # full
    env.sync(capsys)  # incremental
    env.sync(capsys, "--full", "--cleanup")

    assert _checksums(magento_fixture_url) == before


def test_the_source_session_refuses_writes(magento_fixture_url):
    from catalog_sync.magento.catalog_reader import read_only_engine

    engine = read_only_engine(magento_fixture_url)
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="READ ONLY"):
        conn.exec_driver_sql("UPDATE mview_state SET version_id = 0")
    engine.dispose()


def test_hard_values_sync_or_are_quarantined_never_crash(fixture_env, capsys):
    env = fixture_env
    env.execute(
        "SET SESSION sql_mode = ''",
        "UPDATE catalog_product_entity_varchar SET value = 'Bolsa 👜 Tiracolo de Couro' WHERE entity_id = 6 AND attribute_id = 73",
        "UPDATE catalog_product_entity_text SET value = NULL WHERE entity_id = 7",
        "INSERT INTO catalog_product_entity_datetime (attribute_id, store_id, entity_id, value) VALUES (79, 0, 8, '0000-00-00 00:00:00') "
        "ON DUPLICATE KEY UPDATE value = '0000-00-00 00:00:00'",
        "UPDATE catalog_product_entity SET sku = 'Bolsa / Clutch de Festa  2' WHERE entity_id = 9",
        "DELETE FROM catalog_product_website WHERE product_id = 10",
        "UPDATE catalog_product_entity_varchar SET value = NULL WHERE entity_id = 12 AND attribute_id = 73",
    )

    summary = env.sync(capsys, expect_exit=4)  # a product not accepted (quarantined): the run says so

    records = expected_feed(env.source_url)
    assert records[("Mochila Casual Unissex", "default")]["meta_keywords"] is None
    assert records[("Bolsa Shopper Média", "default")]["special_price_from"] is None
    products = env.target_state()["products"]
    assert products[product_key("Bolsa Tiracolo de Couro", "pt-BR")]["name"] == "Bolsa 👜 Tiracolo de Couro"
    assert "keywords" not in products[product_key("Mochila Casual Unissex", "pt-BR")]["metaTags"]
    assert product_key("Bolsa / Clutch de Festa  2", "pt-BR") in products
    assert product_key("Bolsa Clutch de Festa", "pt-BR") not in products
    assert product_key("Bolsa Tote de Lona", "pt-BR") not in products  # no website: in no store view
    # No name: quarantined. The target keeps the last good version (and its price) until the product is fixed.
    assert products[product_key("Óculos de Sol Retrô", "pt-BR")]["name"] == "Óculos de Sol Retrô"
    assert price_key("Óculos de Sol Retrô") in env.target_state()["prices"]
    assert (summary["failed"], summary["not_accepted"]) == (1, 1)
    from catalog_sync.state.status_store import StatusStore

    store = StatusStore(f"sqlite:///{env.state_dir / 'status.db'}")
    [failure] = store.failures(store.recent_runs(1)[0]["run_id"])
    # Retryable, not rejected: every run judges it again, so fixing the name in Magento is enough.
    assert (failure["sku"], failure["status"]) == ("Óculos de Sol Retrô", "retryable")
    assert failure["reason"] == "no name in this store view (nor at default scope)"


def test_without_changelogs_an_updated_at_watermark_and_a_key_scan_see_changes_and_deletes(magento_fixture_url, tmp_path, capsys, caplog,
                                                                                          monkeypatch):
    """'Update on Save' shops have no *_cl tables: fall back to updated_at with an overlap, plus a key-only scan."""
    caplog.set_level(logging.INFO, logger="catalog_sync")
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    env = SyncEnv(source_url=magento_fixture_url, target_dir=tmp_path / "target", state_dir=tmp_path / "state")
    engine = sa.create_engine(magento_fixture_url)
    with engine.connect() as conn:
        triggers = [r[0] for r in conn.exec_driver_sql(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")]
    engine.dispose()
    env.execute(*[f"DROP TRIGGER {t}" for t in triggers], *[f"DROP TABLE {t}" for t in (
        "catalogsearch_fulltext_cl", "catalog_product_price_cl", "cataloginventory_stock_cl",
        "catalog_product_category_cl", "catalog_product_attribute_cl")])
    assert env.sync(capsys)["mode"] == "full"
    # A save in the admin bumps updated_at along with the value.
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Relógio renomeado' WHERE entity_id = 11 AND attribute_id = 73",
                "UPDATE catalog_product_entity SET updated_at = NOW() WHERE entity_id = 11",
                "DELETE FROM catalog_product_entity WHERE entity_id = 2")

    summary = env.sync(capsys)

    assert summary["mode"] == "incremental"
    assert "changes since updated_at" in caplog.text
    sent = sorted((line["op"], line["feed"], line["key"]["sku"]) for line in env.sent)
    assert sent == [("delete", "prices", JACKET), ("delete", "products", JACKET), ("upsert", "products", WATCH)]
    assert env.target_state() == mapped_source(env.source_url)
