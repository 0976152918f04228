"""Attribute metadata from Magento (issue 14): flags, localized labels, system attributes shown on the
storefront, hourly changes and deletes, against the real Magento 2.4.8 fixture and the reference receiver.

Expected bodies are written out by hand from SQL run against the fixture (catalog_eav_attribute,
eav_attribute, eav_attribute_label), never computed with the engine's code. The fixture has one store
view, `default` (store_id 1), in pt_BR. What it holds for the attributes below:

    attribute_id code                   frontend_label          user is_searchable is_filterable is_comparable
    93           color                  Color                   1    1             1             1
    83           manufacturer           Manufacturer            1    1             1             1
    81           cost                   Cost                    1    0             0             0
    114          country_of_manufacture Country of Manufacture  0    0             0             0

and for all four: is_filterable_in_search 0, used_for_sort_by 0, is_visible_on_front 0,
used_in_product_listing 0, search_weight 1; eav_attribute_label is empty. color has values on 22
products, cost on 22, manufacturer and country_of_manufacture on none.
"""

from __future__ import annotations

import pytest

from catalog_sync.magento.catalog_reader import Attribute
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.targets.ingestion_api import mapping
from receiver_helpers import ThreadedReceiver
from sync_helpers import PINNED_NOW, SyncEnv

pytestmark = pytest.mark.mariadb

TENANT, TOKEN = "acme-tenant", "test-token-123"
LOCALE = "pt-BR"
SYSTEM_CODES = {"sku", "name", "description", "shortDescription", "price"}


def expected(code: str, label: str, data_type: str, visible_in: list[str], *, filterable: bool = False,
             sortable: bool = False, searchable: bool = False, search_weight: float = 1) -> dict:
    return {"code": code, "source": {"locale": LOCALE}, "label": label, "dataType": data_type, "visibleIn": visible_in,
            "filterable": filterable, "sortable": sortable, "searchable": searchable, "searchWeight": search_weight}


COLOR = expected("color", "Color", "TEXT", ["PRODUCT_COMPARE"], filterable=True, searchable=True)
MANUFACTURER = expected("manufacturer", "Manufacturer", "TEXT", ["PRODUCT_COMPARE"], filterable=True, searchable=True)
COST = expected("cost", "Cost", "DECIMAL", [])


class Shop:
    """The fixture in MariaDB, synced by the CLI to a reference receiver, the run's clock pinned."""

    def __init__(self, source_url: str, tmp_path, capsys, monkeypatch):
        monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
        monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
        self.receiver = ThreadedReceiver(str(tmp_path / "receiver.db"),
                                         ReceiverOptions(tenant_id=TENANT, required_token=TOKEN, seed=1))
        self.env = SyncEnv(source_url, tmp_path / "unused", tmp_path / "state")
        self.capsys = capsys

    def sync(self) -> dict:
        return self.env.sync(self.capsys, "--target-url", self.receiver.target)

    def metadata(self) -> dict[str, dict]:
        """What the receiver holds in the metadata feed, by 'code|locale'."""
        return self.receiver.get("metadata")

    def sync_and_see_sent(self) -> tuple[dict, dict[str, dict[str, int]]]:
        """One run, and what it made the receiver accept (by feed and operation)."""
        return self.env.sync_and_accepted(self.capsys, self.receiver)


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    running = Shop(magento_fixture_url, tmp_path, capsys, monkeypatch)
    first = running.sync()
    assert (first["mode"], first["failed"]) == ("full", 0)
    yield running
    running.receiver.stop()


def test_the_fixtures_attributes_carry_magentos_flags_and_labels(shop):
    metadata = shop.metadata()

    assert set(metadata) == {f"{code}|{LOCALE}" for code in SYSTEM_CODES | {"color", "manufacturer", "cost"}}
    assert metadata[f"color|{LOCALE}"] == COLOR
    assert metadata[f"manufacturer|{LOCALE}"] == MANUFACTURER
    assert metadata[f"cost|{LOCALE}"] == COST


def test_a_store_view_label_is_the_label_of_its_locale(shop):
    shop.env.execute("INSERT INTO eav_attribute_label (attribute_id, store_id, value) VALUES (93, 1, 'Cor')",
                     "INSERT INTO eav_attribute_label (attribute_id, store_id, value) VALUES (81, 1, '')")

    summary, sent = shop.sync_and_see_sent()

    # Products may carry attribute labels (a configurable's option without a label of its own): the hourly
    # run reads the configurables whose options are color or cost again, and finds only color's metadata
    # changed (the fixture's configurable labels its color option itself).
    assert summary["mode"] == "incremental"
    assert sent == {"metadata": {"upsert": 1}}  # an empty store label falls back to the admin one: cost is unchanged
    assert shop.metadata()[f"color|{LOCALE}"] == {**COLOR, "label": "Cor"}
    assert shop.metadata()[f"cost|{LOCALE}"] == COST


def test_an_attribute_made_filterable_is_sent_by_the_next_hourly_run_and_nothing_else(shop):
    shop.env.execute("UPDATE catalog_eav_attribute SET is_filterable = 1 WHERE attribute_id = 81")

    summary, sent = shop.sync_and_see_sent()

    assert summary["mode"] == "incremental"  # flags are not in the manifest's fingerprints: no full reconcile
    assert sent == {"metadata": {"upsert": 1}}
    assert summary["feeds"]["metadata"] == {"inserted": 0, "updated": 1, "deleted": 0, "unchanged": 7, "failed": 0}
    assert shop.metadata()[f"cost|{LOCALE}"] == {**COST, "filterable": True}

    _, again = shop.sync_and_see_sent()
    assert again == {}


def test_storefront_properties_map_to_visible_in_and_the_flags(shop):
    # cost: shown in listings, sortable, filterable in search results only, weighted 3.
    shop.env.execute("UPDATE catalog_eav_attribute SET used_in_product_listing = 1, used_for_sort_by = 1, "
                     "is_filterable_in_search = 1, search_weight = 3 WHERE attribute_id = 81",
                     # color: on the product page, and filterable without results (2) instead of with them (1).
                     "UPDATE catalog_eav_attribute SET is_visible_on_front = 1, is_filterable = 2 WHERE attribute_id = 93")

    summary, sent = shop.sync_and_see_sent()

    # is_visible_on_front decides which system attributes products carry, so it is in the attribute
    # fingerprint: a full reconcile, that finds only the two metadata items changed.
    assert summary["mode"] == "full" and sent == {"metadata": {"upsert": 2}}
    assert shop.metadata()[f"cost|{LOCALE}"] == {
        **COST, "visibleIn": ["PRODUCT_LISTING", "SEARCH_RESULTS"], "filterable": True, "sortable": True, "searchWeight": 3}
    assert shop.metadata()[f"color|{LOCALE}"] == {**COLOR, "visibleIn": ["PRODUCT_DETAIL", "PRODUCT_COMPARE"]}


def test_a_system_attribute_shown_on_the_storefront_gets_metadata(shop):
    # msrp (128) is a system attribute (decimal, no value on any fixture product); name and status are
    # system too, but name is one of the five fixed entries and status is mapped to the product's own
    # `status` field; tax_class_id (136) is a system select, whose labels live in tax_class, not in
    # eav_attribute_option: neither its values nor its metadata are sent.
    shop.env.execute("UPDATE catalog_eav_attribute SET is_visible_on_front = 1 WHERE attribute_id IN (128, 73, 97, 136)")

    summary, sent = shop.sync_and_see_sent()

    # Products would now carry msrp's values: a full reconcile (no fixture product has one).
    assert summary["mode"] == "full" and sent == {"metadata": {"upsert": 1}}
    metadata = shop.metadata()
    # catalog_eav_attribute (128, ...): used_in_product_listing = 1, the rest 0 but search_weight 1.
    assert metadata[f"msrp|{LOCALE}"] == expected("msrp", "Minimum Advertised Price", "DECIMAL",
                                                  ["PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS"])
    assert f"status|{LOCALE}" not in metadata and f"tax_class_id|{LOCALE}" not in metadata and len(metadata) == 9

    shop.env.execute("UPDATE catalog_eav_attribute SET is_visible_on_front = 0 WHERE attribute_id = 128")
    _, hidden = shop.sync_and_see_sent()
    assert hidden == {"metadata": {"delete": 1}} and f"msrp|{LOCALE}" not in shop.metadata()


def test_an_attribute_removed_from_magento_loses_its_metadata(shop):
    shop.env.execute("DELETE FROM eav_attribute WHERE attribute_id = 83")  # cascades to catalog_eav_attribute, options

    summary, sent = shop.sync_and_see_sent()

    # Removing an attribute changes the attribute fingerprint (a full reconcile); no product had a
    # manufacturer value, so no product body changes and only the metadata delete is sent.
    assert summary["mode"] == "full" and summary["failed"] == 0
    assert sent == {"metadata": {"delete": 1}}
    assert summary["feeds"]["metadata"]["deleted"] == 1
    assert set(shop.metadata()) == {f"{code}|{LOCALE}" for code in SYSTEM_CODES | {"color", "cost"}}


def test_each_locale_gets_its_store_views_label():
    """Two store views (two locales): each locale's item takes its view's label, else the admin label, else the code."""
    color = Attribute(0, "color", "int", "select", "Color", True, store_labels=((1, "Cor"), (2, "Colour")))
    weight = Attribute(0, "pieces", "int", "text", None, True, store_labels=((2, "Pieces"),))

    items = mapping.metadata_items([color, weight], ["pt_BR", "en_GB"], {"pt_BR": 1, "en_GB": 2})

    labels = {(i["code"], i["source"]["locale"]): i["label"] for i in items if i["code"] in ("color", "pieces")}
    assert labels == {("color", "pt-BR"): "Cor", ("color", "en-GB"): "Colour",
                      ("pieces", "pt-BR"): "pieces", ("pieces", "en-GB"): "Pieces"}


def test_metadata_bodies_follow_the_contract():
    from catalog_sync.receiver.validation import ContractValidator

    flagged = Attribute(0, "size", "decimal", "text", "Size", True, is_searchable=True, is_filterable=2,
                                    used_for_sort_by=True, search_weight=2.5, is_visible_on_front=True,
                                    used_in_product_listing=True, is_comparable=True)
    flag = Attribute(0, "is_new", "int", "boolean", "New", True)
    validator = ContractValidator()
    items = mapping.metadata_items([flagged, flag], ["en_US"])
    assert validator.validate_items("FeedMetadata", items) == []
    by_code = {i["code"]: i for i in items}
    assert by_code["size"]["visibleIn"] == ["PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS", "PRODUCT_COMPARE"]
    assert (by_code["size"]["searchWeight"], by_code["is_new"]["dataType"]) == (2.5, "BOOLEAN")
