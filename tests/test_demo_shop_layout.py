"""The demo's multi-store shop (three store views) through one real sync to the validating reference receiver.

The demo catalog at three store views (catalog_sync.demo.generator): `default` (en_US) and `b2b` (en_US too)
on website `base` (USD), both in its store group `main_website_store` (root 2, "Default Category");
`store_view_2` (fr_FR) on website `second` (EUR), whose store group `second_website_store` has the second root
category tree (100 "Second Catalog"); price scope website, with website prices for `second`; Magento's four
customer groups, and Wholesale (2) group prices. Every expected value below is read from the generated
database by SQL or written by hand, never by the engine's mapping.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from decimal import Decimal
from functools import cached_property
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from catalog_sync.demo.generator import generate_demo_catalog
from catalog_sync.receiver import ReceiverOptions
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, key_text

TOKEN = "test-token-123"
B2B_STORE, NAME, DESCRIPTION, VISIBILITY, PRICE, SPECIAL_PRICE = 3, 73, 75, 99, 77, 78
WHOLESALE = 2


class Shop:
    """One generated shop and what one sync sent: its summary, the receiver's accepted counts and state."""

    def __init__(self, url: str, summary: dict, sent: dict, held: dict[str, dict[str, dict]]):
        self.url, self.summary, self.sent, self.held = url, summary, sent, held

    def rows(self, sql: str, **params) -> list[tuple]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def ids(self, sql: str, **params) -> set[int]:
        return {int(r[0]) for r in self.rows(sql, **params)}

    def sku(self, entity_id: int) -> str:
        return self.skus[entity_id]

    @cached_property
    def skus(self) -> dict[int, str]:
        return {int(e): sku for e, sku in self.rows("SELECT entity_id, sku FROM catalog_product_entity")}

    def on_website(self, website_id: int) -> set[int]:
        return self.ids("SELECT product_id FROM catalog_product_website WHERE website_id = :w", w=website_id)


class StdoutCapture:
    """capsys's readouterr() for a module-scoped fixture: what was printed to stdout since the last call."""

    def __init__(self):
        self.buffer = io.StringIO()

    def readouterr(self) -> SimpleNamespace:
        out = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return SimpleNamespace(out=out, err="")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Shop:
    """One sync of the generated shop, shared by the tests (they only read)."""
    tmp_path = tmp_path_factory.mktemp("shop")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    generate_demo_catalog(url, products=200, store_views=3, seed=7)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="acme", required_token=TOKEN))
    capture = StdoutCapture()
    try:
        with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(capture.buffer):
            monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
            monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
            summary, sent = SyncEnv(url, tmp_path / "unused", tmp_path / "state").sync_and_accepted(capture, receiver)
        held = receiver_state(receiver.root)
    finally:
        receiver.stop()
    return Shop(url, summary, sent, held)


def group_book(price_book_id: str, customer_group_id: int) -> str:
    """Adobe's connector's child price book id: `<parent>::sha1(<customer group id>)`."""
    return f"{price_book_id}::{hashlib.sha1(str(customer_group_id).encode()).hexdigest()}"


def test_b2b_is_a_layer_of_default_with_only_its_own_names_and_descriptions(shop):
    assert shop.summary["mode"] == "full"
    assert (shop.summary["not_accepted"], shop.summary["failed"]) == (0, 0)
    # Three views, two locales: products in en-US (default) and fr-FR (store_view_2), b2b as layers over en-US.
    on_base, on_second = shop.on_website(1), shop.on_website(2)
    assert len(shop.held["products"]) == len(on_base) + len(on_second)
    assert set(shop.held["products"]) == {key_text({"sku": shop.sku(e), "source": {"locale": locale}})
                                          for locale, ids in (("en-US", on_base), ("fr-FR", on_second)) for e in ids}

    # A layer exactly for the products of website base whose b2b name or description differs from the default's.
    differs = shop.ids("""
        SELECT b.entity_id FROM catalog_product_entity_varchar b
        JOIN catalog_product_entity_varchar d ON d.entity_id = b.entity_id AND d.attribute_id = b.attribute_id AND d.store_id = 0
        WHERE b.attribute_id = :name AND b.store_id = :b2b AND b.value <> d.value
        UNION
        SELECT b.entity_id FROM catalog_product_entity_text b
        JOIN catalog_product_entity_text d ON d.entity_id = b.entity_id AND d.attribute_id = b.attribute_id AND d.store_id = 0
        WHERE b.attribute_id = :description AND b.store_id = :b2b AND b.value <> d.value""",
        name=NAME, description=DESCRIPTION, b2b=B2B_STORE) & on_base
    layers = shop.held["product_layers"]
    assert len(differs) > 10 and len(layers) == len(differs)
    assert set(layers) == {key_text({"sku": shop.sku(e), "source": {"locale": "en-US", "layer": "b2b"}}) for e in differs}
    assert shop.sent["product_layers"] == {"upsert": len(differs)}

    (named, b2b_name), *_ = shop.rows("SELECT entity_id, value FROM catalog_product_entity_varchar"
                                      " WHERE attribute_id = :a AND store_id = :s ORDER BY entity_id", a=NAME, s=B2B_STORE)
    sku = shop.sku(named)
    assert b2b_name.endswith(" (Wholesale Pack)")
    assert layers[key_text({"sku": sku, "source": {"locale": "en-US", "layer": "b2b"}})] == {
        "sku": sku, "source": {"locale": "en-US", "layer": "b2b"}, "name": b2b_name}
    (described, b2b_description), *_ = shop.rows("SELECT entity_id, value FROM catalog_product_entity_text WHERE"
                                                 " attribute_id = :a AND store_id = :s ORDER BY entity_id",
                                                 a=DESCRIPTION, s=B2B_STORE)
    sku = shop.sku(described)
    assert layers[key_text({"sku": sku, "source": {"locale": "en-US", "layer": "b2b"}})] == {
        "sku": sku, "source": {"locale": "en-US", "layer": "b2b"}, "description": b2b_description}
    # The en-US product keeps the default's name.
    (default_name,), = shop.rows("SELECT value FROM catalog_product_entity_varchar WHERE entity_id = :e"
                                 " AND attribute_id = :a AND store_id = 0", e=named, a=NAME)
    assert shop.held["products"][key_text({"sku": shop.sku(named), "source": {"locale": "en-US"}})]["name"] == default_name


def test_what_b2b_changes_and_a_layer_cannot_carry_is_a_layer_gap(shop):
    gaps = shop.summary["layer_gaps_listed"]
    assert shop.summary["layer_gaps"] == len(gaps) > 0
    assert {(g["store_view_code"], g["base_view_code"]) for g in gaps} == {("b2b", "default")}
    by_field: dict[str, set[str]] = {}
    for gap in gaps:
        by_field.setdefault(gap["field"], set()).add(gap["sku"])
    # b2b shares default's store group, so its routes are default's: what it changes and a layer cannot
    # carry is only its visibility.
    assert set(by_field) == {"visibleIn"}

    # visibleIn: the products b2b makes not visible individually (visibility 1 at its store view).
    hidden = shop.ids("SELECT entity_id FROM catalog_product_entity_int WHERE attribute_id = :a AND store_id = :s"
                      " AND value = 1", a=VISIBILITY, s=B2B_STORE) & shop.on_website(1)
    assert hidden and by_field["visibleIn"] == {shop.sku(e) for e in hidden}
    assert len(gaps) == len(hidden)  # one gap per hidden product
    example = shop.sku(min(hidden))
    assert {"sku": example, "store_view_code": "b2b", "base_view_code": "default", "field": "visibleIn"} in gaps
    # ... and shoppers of b2b see the base's visibility.
    assert shop.held["products"][key_text({"sku": example, "source": {"locale": "en-US"}})]["visibleIn"]


def test_price_books_of_both_websites_their_currencies_and_the_customer_groups_child_books(shop):
    books = shop.held["price_books"]
    groups = shop.rows("SELECT customer_group_id, customer_group_code FROM customer_group ORDER BY 1")
    assert [g for g, _ in groups] == [0, 1, 2, 3]
    assert books[key_text({"priceBookId": "base"})] == {"priceBookId": "base", "name": "base", "currency": "USD"}
    assert books[key_text({"priceBookId": "second"})] == {"priceBookId": "second", "name": "second", "currency": "EUR"}
    children = {key_text({"priceBookId": group_book(parent, g)}): {
        "priceBookId": group_book(parent, g), "name": f"{parent} {code}", "parentId": parent}
        for parent in ("base", "second") for g, code in groups}
    assert group_book("base", WHOLESALE) == "base::da4b9237bacccdf19c0760cab7aec4a8359010b0"
    assert {k: v for k, v in books.items() if "parentId" in v} == children
    assert len(books) == 2 + len(children)


def test_wholesale_group_prices_and_website_prices(shop):
    prices = shop.held["prices"]

    def price(sku: str, book: str) -> dict | None:
        return prices.get(key_text({"sku": sku, "priceBookId": book}))

    # A Wholesale group price (a tier at quantity 1 for group 2): the Wholesale child book of each website
    # the product is sold on has it as a discount; the website's own book does not.
    specials = shop.ids("SELECT entity_id FROM catalog_product_entity_decimal WHERE attribute_id = :a", a=SPECIAL_PRICE)
    grouped = shop.rows("""SELECT t.entity_id, t.value, p.value FROM catalog_product_entity_tier_price t
        JOIN catalog_product_entity_decimal p ON p.entity_id = t.entity_id AND p.attribute_id = :price AND p.store_id = 0
        WHERE t.all_groups = 0 AND t.customer_group_id = :g ORDER BY t.entity_id""", price=PRICE, g=WHOLESALE)
    assert grouped
    on_base = shop.on_website(1)
    entity_id, group_value, regular = next(r for r in grouped if r[0] in on_base and r[0] not in specials)
    sku, regular, group_value = shop.sku(entity_id), Decimal(str(regular)), Decimal(str(group_value))
    assert price(sku, group_book("base", WHOLESALE)) == {
        "sku": sku, "priceBookId": group_book("base", WHOLESALE), "regular": float(regular),
        "discounts": [{"code": "tier_price", "price": float(regular - group_value)}]}
    assert price(sku, "base") == {"sku": sku, "priceBookId": "base", "regular": float(regular)}
    assert price(sku, group_book("base", 1)) is None  # General has no prices of its own
    wholesale_skus = {key["sku"] for key in map(json.loads, prices)
                      if key["priceBookId"] in (group_book("base", WHOLESALE), group_book("second", WHOLESALE))}
    assert wholesale_skus == {shop.sku(e) for e, *_ in grouped}

    # Price scope website: website second's own price (kept at its store view 2) in its EUR book; base keeps the default.
    website_prices = shop.rows("""SELECT w.entity_id, w.value, d.value FROM catalog_product_entity_decimal w
        JOIN catalog_product_entity_decimal d ON d.entity_id = w.entity_id AND d.attribute_id = w.attribute_id AND d.store_id = 0
        WHERE w.attribute_id = :price AND w.store_id = 2 ORDER BY w.entity_id""", price=PRICE)
    assert website_prices
    for entity_id, second_price, default_price in website_prices:
        sku = shop.sku(entity_id)
        assert price(sku, "second")["regular"] == float(Decimal(str(second_price))) != float(Decimal(str(default_price)))
        if entity_id in on_base:
            assert price(sku, "base")["regular"] == float(Decimal(str(default_price)))


def test_the_categories_feed_sends_each_locales_base_view_tree(shop):
    categories = shop.held["categories"]
    url_keys = dict(shop.rows("SELECT entity_id, value FROM catalog_category_entity_varchar WHERE attribute_id = 119"
                              " AND store_id = 0"))
    inactive = shop.ids("SELECT entity_id FROM catalog_category_entity_int WHERE attribute_id = 46 AND store_id = 0"
                        " AND value = 0")
    paths = dict(shop.rows("SELECT entity_id, path FROM catalog_category_entity"))

    def slug(category_id: int) -> str | None:
        """An active category's slug: the url_keys below its root, joined by '/' (None when inactive)."""
        below = [int(i) for i in paths[category_id].split("/")[2:]]
        return None if set(below) & inactive else "/".join(url_keys[i] for i in below)

    def tree(root: int) -> set[str]:
        """The slugs of a root's active categories."""
        return {slug(c) for c, path in paths.items() if path.startswith(f"1/{root}/") and slug(c)}

    # The store groups' roots: website base's (default and b2b) is 2, website second's 100.
    assert shop.rows("SELECT s.code, g.root_category_id FROM store s JOIN store_group g ON g.group_id = s.group_id"
                     " WHERE s.store_id > 0 ORDER BY s.store_id") == [("default", 2), ("store_view_2", 100), ("b2b", 2)]
    default_tree, second_tree = tree(2), tree(100)
    assert second_tree == {"bulk-apparel", "team-equipment", "bulk-apparel/corporate-tops", "bulk-apparel/workwear",
                           "team-equipment/gym-fit-out", "bulk-apparel/corporate-tops/printed-tees"}
    assert len(default_tree) > 6 and not default_tree & second_tree
    sent = {(body["source"]["locale"], body["slug"]) for body in categories.values()}
    # en-US is default's tree (the locale's base view; b2b shows the same), fr-FR store_view_2's: the second tree.
    assert sent == {("en-US", slug) for slug in default_tree} | {("fr-FR", slug) for slug in second_tree}
    # The second tree has English names only: fr-FR sends them.
    names = dict(shop.rows("SELECT entity_id, value FROM catalog_category_entity_varchar WHERE attribute_id = 45"
                           " AND store_id = 0 AND entity_id > 100"))
    assert {body["name"] for body in categories.values() if body["source"]["locale"] == "fr-FR"} == set(names.values())

    # Products' routes: into their locale's tree only. fr-FR: the products of website second in the second tree.
    def routes(locale: str) -> dict[str, set[str]]:
        return {body["sku"]: {r["path"] for r in body["routes"]} for body in shop.held["products"].values()
                if body["source"]["locale"] == locale and body.get("routes")}

    en_routes, fr_routes = routes("en-US"), routes("fr-FR")
    assert en_routes and set().union(*en_routes.values()) <= default_tree
    in_second_tree = shop.rows("SELECT product_id, category_id FROM catalog_category_product WHERE category_id > 100")
    assert len(fr_routes) > 10 and fr_routes == {shop.sku(p): {slug(c)} for p, c in in_second_tree
                                                 if p in shop.on_website(2)}
    assert set(fr_routes) < {shop.sku(p) for p in shop.on_website(2)}  # the others have no route in fr-FR
