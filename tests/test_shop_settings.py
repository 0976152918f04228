"""Shop-wide settings every item depends on (locale, currency, ... per scope; the active store views):
Magento logs no product change when one changes, so plan compares them with the last full sync's and
reconciles in full, naming the setting.

On the real Magento 2.4.8 fixture, read by hand from the dump: one website `base`, one store view
`default` (store_id 1), `general/locale/code` = pt_BR and `currency/options/base` = BRL at default
scope, nothing at website or store scope; 23 products, all in website 1.
"""

from __future__ import annotations

import pytest

from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import SyncEnv, mapped_source, pinned_env_and_receiver

pytestmark = pytest.mark.mariadb

TOKEN = "test-token-123"


class Shop:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sent_by_next_run(self) -> tuple[dict, dict]:
        return self.env.sync_and_accepted(self.capsys, self.receiver)

    def locales(self) -> set[str]:
        return {body["source"]["locale"] for body in receiver_state(self.receiver.root)["products"].values()}


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    shop = Shop(*pinned_env_and_receiver(magento_fixture_url, tmp_path, monkeypatch, TOKEN), capsys)
    summary, _ = shop.sent_by_next_run()
    assert summary["mode"] == "full" and shop.locales() == {"pt-BR"}
    yield shop
    shop.receiver.stop()


def test_a_store_views_locale_changed_is_a_full_reconcile_that_names_the_setting(shop):
    shop.env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) "
                     "VALUES ('stores', 1, 'general/locale/code', 'en_US')")

    summary, sent = shop.sent_by_next_run()

    assert summary["mode"] == "full"
    assert "stores/1/general/locale/code: '(unset)' -> 'en_US'" in summary["mode_reason"]
    # Every product and attribute now lives at en-US, none is left at pt-BR.
    assert shop.locales() == {"en-US"}
    assert sent["products"] == {"upsert": 23, "delete": 23}
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)

    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "incremental" and sent == {}


def test_a_websites_base_currency_changed_is_a_full_reconcile(shop):
    shop.env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) "
                     "VALUES ('websites', 1, 'currency/options/base', 'USD')")

    summary, _ = shop.sent_by_next_run()

    assert summary["mode"] == "full" and "websites/1/currency/options/base: '(unset)' -> 'USD'" in summary["mode_reason"]
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_a_store_view_switched_off_is_incremental_and_switched_back_on_is_full(shop):
    # A second view on the same website, so that switching it off leaves the shop something to sell.
    shop.env.execute("INSERT INTO store (store_id, code, website_id, group_id, name, sort_order, is_active) "
                     "VALUES (2, 'en', 1, 1, 'English', 1, 1)",
                     "INSERT INTO core_config_data (scope, scope_id, path, value) VALUES ('stores', 2, 'general/locale/code', 'en_US')")
    summary, _ = shop.sent_by_next_run()
    assert summary["mode"] == "full" and "store view en: '(unset)' -> 'id 2, website base, store main_website_store'" \
        in summary["mode_reason"]
    assert shop.locales() == {"pt-BR", "en-US"}

    shop.env.execute("UPDATE store SET is_active = 0 WHERE code = 'en'")
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "incremental"  # the items of a view no longer active are deleted from the snapshot's keys
    assert shop.locales() == {"pt-BR"} and sent["products"] == {"delete": 23}

    shop.env.execute("UPDATE store SET is_active = 1 WHERE code = 'en'")
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "full" and "store view en" in summary["mode_reason"]
    assert shop.locales() == {"pt-BR", "en-US"} and sent["products"] == {"upsert": 23}
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def price_book_currency(shop: Shop) -> str:
    return receiver_state(shop.receiver.root)["price_books"]['{"priceBookId":"base"}']["currency"]


def test_a_price_book_is_in_the_base_currency_not_the_display_one(shop):
    assert price_book_currency(shop) == "BRL"  # currency/options/base at default scope
    # A display currency of its own for the store view does not change what prices are kept in.
    shop.env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) "
                     "VALUES ('stores', 1, 'currency/options/default', 'USD')")
    shop.sent_by_next_run()
    assert price_book_currency(shop) == "BRL"

    # Prices at website scope: the website's base currency is its own.
    shop.env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) VALUES "
                     "('default', 0, 'catalog/price/scope', '1'), ('websites', 1, 'currency/options/base', 'EUR')")
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "full" and price_book_currency(shop) == "EUR"
    assert sent["price_books"] == {"upsert": 1}
    assert receiver_state(shop.receiver.root) == mapped_source(shop.env.source_url)


def test_the_exported_store_views_are_a_setting(shop, capsys):
    from catalog_sync import cli

    shop.env.execute("INSERT INTO store (store_id, code, website_id, group_id, name, sort_order, is_active) "
                     "VALUES (2, 'en', 1, 1, 'English', 1, 1)",
                     "INSERT INTO core_config_data (scope, scope_id, path, value) VALUES ('stores', 2, 'general/locale/code', 'en_US')")

    # Only `default` is exported: the new view is not a change, and nothing is sent.
    summary = shop.env.sync(capsys, "--target-url", shop.receiver.target, "--store-views", "default")
    assert summary["mode"] == "incremental" and shop.locales() == {"pt-BR"}

    # Every active view (the default): `en` joins, a full reconcile that names it.
    summary, sent = shop.sent_by_next_run()
    assert summary["mode"] == "full" and "store view en: '(unset)'" in summary["mode_reason"]
    assert shop.locales() == {"pt-BR", "en-US"} and sent["products"] == {"upsert": 23}

    # Only the website `base`'s view `en`: `default`'s items go, and nothing else is sent.
    summary, sent = shop.env.sync_and_accepted(capsys, shop.receiver, "--websites", "base", "--store-views", "en")
    assert summary["mode"] == "incremental" and shop.locales() == {"en-US"}
    assert sent["products"] == {"delete": 23}

    # A code the shop has no active view of is refused at plan, naming it and the views there are.
    capsys.readouterr()
    assert cli.main(shop.env.cli_args("--target-url", shop.receiver.target, "--store-views", "de")) == cli.EXIT_CONFIG
    error = capsys.readouterr().err
    assert "the exported store views name store view 'de', which the shop has no active one of" in error
    assert "default (base), en (base)" in error
