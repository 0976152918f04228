"""Feed record -> Catalog Data Ingestion API items, checked exactly and against the contract."""

from __future__ import annotations

import copy
import functools
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from catalog_sync.magento.catalog_reader import Attribute, CatalogContext, StoreView
from catalog_sync.targets.ingestion_api import mapping

SPEC_PATH = Path(__file__).resolve().parent.parent / "include/catalog_sync/receiver/catalog-data-ingestion-v1.yaml"
_OPENAPI_ONLY = {"nullable", "example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly", "deprecated", "format"}


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema 2020-12: `nullable: true` adds "null" to the type."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY:
            continue
        if key == "properties":
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/$defs/")
        else:
            out[key] = _to_json_schema(value)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("nullable") and "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


@functools.cache
def _spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@functools.cache
def item_validator(schema_name: str) -> Draft202012Validator:
    defs = {name: _to_json_schema(s) for name, s in copy.deepcopy(_spec()["components"]["schemas"]).items()}
    return Draft202012Validator({"$defs": defs, "$ref": f"#/$defs/{schema_name}"})


def request_schema_name(path: str) -> str:
    """The item schema of an endpoint's POST body, read from the contract."""
    schema = _spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema["items"]["$ref"].rsplit("/", 1)[1]


def assert_valid(schema_name: str, item: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in item_validator(schema_name).iter_errors(item)]
    assert not errors, errors


def configurable_child() -> dict[str, Any]:
    """A configurable's variant in a pt_BR store view, with an active special price."""
    return {
        "product_id": 42, "sku": "MH01-XS-Black", "store_view_code": "br", "store_code": "br_store",
        "website_code": "latam", "locale": "pt_BR", "type": "simple", "attribute_set_id": 9,
        "name": "Moletom Chaz XS Preto", "status": 1, "visibility": 1, "url_key": "mh01-xs-black",
        "description": "<p>Moletom</p>", "short_description": None,
        "meta_title": "Moletom Chaz", "meta_description": None, "meta_keywords": "moletom, chaz,,inverno\n",
        "price": 52.0, "special_price": 39.9, "special_price_from": "2026-11-01", "special_price_to": "2026-11-30",
        "currency": "BRL", "qty": 100.0, "in_stock": True, "weight": 1.5,
        "category_ids": [14, 15], "category_paths": ["Homens/Blusões & Moletons", "Promoções"],
        "images": [
            {"url": "https://shop.example/media/catalog/product/m/h/mh01-black_back.jpg", "label": None,
             "roles": ["custom_hover"], "position": 2},
            {"url": "https://shop.example/media/catalog/product/m/h/mh01-black_main.jpg", "label": "Frente",
             "roles": ["image", "small_image", "thumbnail"], "position": 1},
        ],
        "parent_skus": ["MH01"], "variant_skus": [],
        "attributes": [
            {"code": "color", "label": "Cor", "values": ["Preto"]},
            {"code": "material", "label": "Material", "values": ["Algodão", "Poliéster"]},
            {"code": "size", "label": "Tamanho", "values": ["XS"]},
        ],
        "created_at": "2026-01-02T03:04:05", "updated_at": "2026-11-20T10:00:00",
    }


def test_api_locale() -> None:
    assert mapping.api_locale("pt_BR") == "pt-BR"
    assert mapping.api_locale("en_US") == "en-US"
    assert mapping.api_locale("de") == "de"


def test_feed_product_of_a_configurable_child_is_exact_and_valid() -> None:
    product = mapping.feed_product(configurable_child())
    assert product == {
        "sku": "MH01-XS-Black",
        "source": {"locale": "pt-BR"},
        "name": "Moletom Chaz XS Preto",
        "slug": "mh01-xs-black",
        "status": "ENABLED",
        "visibleIn": [],
        "description": "<p>Moletom</p>",
        "metaTags": {"title": "Moletom Chaz", "keywords": ["moletom", "chaz", "inverno"]},
        "attributes": [
            # Adobe's connector's stock and weight attribute: first, JSON-encoded (no catalog: weight in lbs).
            {"code": "aco_ac_attributes", "values": ['{"inStock":true,"lowStock":false,"weight":1.5,"weightType":"lbs"}']},
            {"code": "color", "values": ["Preto"]},
            {"code": "material", "values": ["Algodão", "Poliéster"]},
            {"code": "size", "values": ["XS"]},
        ],
        "images": [
            {"url": "https://shop.example/media/catalog/product/m/h/mh01-black_main.jpg", "label": "Frente",
             "roles": ["BASE", "SMALL", "THUMBNAIL"]},
            {"url": "https://shop.example/media/catalog/product/m/h/mh01-black_back.jpg", "roles": [],
             "customRoles": ["custom_hover"]},
        ],
        "links": [{"type": "VARIANT_OF", "sku": "MH01"}],
        "routes": [{"path": "homens/blusoes-moletons"}, {"path": "promocoes"}],
        "externalIds": [{"id": "42", "origin": "AdobeCommerce"}],
    }
    assert request_schema_name("/v1/catalog/products") == "FeedProduct"
    assert_valid("FeedProduct", product)


@pytest.mark.parametrize(("visibility", "visible_in"), [(1, []), (2, ["CATALOG"]), (3, ["SEARCH"]), (4, ["CATALOG", "SEARCH"])])
def test_visibility(visibility: int, visible_in: list[str]) -> None:
    record = {**configurable_child(), "visibility": visibility}
    assert mapping.feed_product(record)["visibleIn"] == visible_in


def test_minimal_disabled_record_omits_empty_fields() -> None:
    record = {"sku": "X 1", "locale": "en_US", "name": "Café Crème", "status": 2, "visibility": None,
              "url_key": None, "description": None, "short_description": "short", "meta_title": None,
              "meta_description": None, "meta_keywords": None, "attributes": [], "images": [],
              "parent_skus": [], "category_paths": []}
    product = mapping.feed_product(record)
    assert product == {"sku": "X 1", "source": {"locale": "en-US"}, "name": "Café Crème", "slug": "cafe-creme",
                       "status": "DISABLED", "shortDescription": "short", "attributes": [
                           {"code": "aco_ac_attributes",
                            "values": ['{"inStock":false,"lowStock":false,"weight":null,"weightType":"lbs"}']}]}
    assert_valid("FeedProduct", product)


def test_a_product_key_is_its_delete_body() -> None:
    item = mapping.product_key("MH01", "fr_FR")
    assert item == {"sku": "MH01", "source": {"locale": "fr-FR"}}
    assert request_schema_name("/v1/catalog/products/delete") == "FeedProductDelete"
    assert_valid("FeedProductDelete", item)


def test_prices_with_an_active_special_price() -> None:
    item = mapping.prices(configurable_child(), "latam", date(2026, 11, 25))
    # DiscountsFinalPrice.price is the amount off ("$100 with a $10 fixed discount results in $90").
    assert item == {"sku": "MH01-XS-Black", "priceBookId": "latam", "regular": 52.0,
                    "discounts": [{"code": "special_price", "price": 12.1}]}
    assert request_schema_name("/v1/catalog/products/prices") == "FeedPrices"
    assert_valid("FeedPrices", item)


@pytest.mark.dates
@pytest.mark.parametrize("today", [date(2026, 10, 31), date(2026, 12, 1)])
def test_special_price_outside_its_dates_is_no_discount(today: date) -> None:
    assert mapping.prices(configurable_child(), "latam", today) == {"sku": "MH01-XS-Black", "priceBookId": "latam", "regular": 52.0}


@pytest.mark.dates
@pytest.mark.parametrize("today", [date(2026, 11, 1), date(2026, 11, 30)])
def test_special_price_dates_are_inclusive(today: date) -> None:
    assert "discounts" in mapping.prices(configurable_child(), "latam", today)


def test_special_price_open_ended_and_not_below_price() -> None:
    record = {**configurable_child(), "special_price_from": None, "special_price_to": None}
    assert mapping.prices(record, "b", date(2000, 1, 1))["discounts"] == [{"code": "special_price", "price": 12.1}]
    assert "discounts" not in mapping.prices({**record, "special_price": 60.0}, "b", date(2000, 1, 1))
    assert "discounts" not in mapping.prices({**record, "special_price": 0.0}, "b", date(2000, 1, 1))


def test_no_prices_for_configurables_or_without_a_price() -> None:
    assert mapping.prices({**configurable_child(), "type": "configurable"}, "b", date(2026, 11, 25)) is None
    assert mapping.prices({**configurable_child(), "price": None}, "b", date(2026, 11, 25)) is None


def test_price_book() -> None:
    item = mapping.price_book("latam", "BRL")
    assert item == {"priceBookId": "latam", "name": "latam", "currency": "BRL"}
    assert request_schema_name("/v1/catalog/price-books") == "FeedPricebook"
    assert_valid("FeedPricebook", item)


def test_metadata_items() -> None:
    attributes = [
        Attribute(0, "weight_kg", "decimal", None, "Weight", True),
        Attribute(0, "color", "int", "select", "Color", True),
        Attribute(0, "pieces", "int", "text", None, True),
        Attribute(0, "material", "varchar", "multiselect", "Material", True),
    ]
    items = mapping.metadata_items(attributes, ["pt_BR", "en_US", "pt_BR"])
    assert [(i["source"]["locale"], i["code"], i["dataType"]) for i in items] == [
        (locale, code, data_type)
        for locale in ("en-US", "pt-BR")
        for code, data_type in [("sku", "TEXT"), ("name", "TEXT"), ("description", "TEXT"),
                                ("shortDescription", "TEXT"), ("price", "DECIMAL"), ("color", "TEXT"),
                                ("material", "TEXT"), ("pieces", "INTEGER"), ("weight_kg", "DECIMAL")]
    ]
    assert items[7]["label"] == "pieces"  # no label: the code
    assert request_schema_name("/v1/catalog/products/metadata") == "FeedMetadata"
    for item in items:
        assert_valid("FeedMetadata", item)


def test_the_validator_catches_bad_items() -> None:
    bad = {**mapping.feed_product(configurable_child()), "status": "active", "description": None}
    errors = list(item_validator("FeedProduct").iter_errors(bad))
    assert [list(e.absolute_path) for e in errors] == [["status"]]  # description is nullable


# ---- configurables, availability -----------------------------------------------------------------


def _catalog(threshold: float = 0.0, swatches: frozenset[int] = frozenset()) -> mapping.ProductCatalog:
    """One pt_BR store view (store 1, weights in kgs); color (93) and size (94); options 4 azul, 5 preto, 8 P."""
    view = StoreView(1, "br", "Brasil", 1, "latam", "br_store", "pt_BR", "BRL", weight_unit="kgs")
    attributes = {
        93: Attribute(93, "color", "int", "select", "Color", True, store_labels=((1, "Cor"),)),
        94: Attribute(94, "size", "int", "select", "Size", True),
    }
    labels = {(4, 0): "blue", (4, 1): "azul", (5, 0): "black", (5, 1): "preto", (8, 0): "S", (8, 1): "P"}
    return mapping.ProductCatalog(CatalogContext([view], attributes, labels, {}, {}, 0, threshold, swatches))


def test_a_configurable_offers_its_options_with_the_variant_reference_of_each_value() -> None:
    parent = {**configurable_child(), "sku": "MH01", "type": "configurable", "parent_skus": [],
              "variant_skus": ["MH01-S-Azul", "MH01-S-Preto"],
              "configurable_options": [  # position order; the configurable names size itself, not color
                  {"attribute_id": 94, "label": "Tamanho do moletom", "option_ids": [8], "position": 0},
                  {"attribute_id": 93, "label": None, "option_ids": [4, 5], "position": 1}]}

    product = mapping.feed_product(parent, _catalog(swatches=frozenset({93})))

    assert product["status"] == "ENABLED"
    assert product["configurations"] == [
        {"attributeCode": "size", "label": "Tamanho do moletom", "type": "CONFIGURABLE",
         "values": [{"variantReferenceId": "size-8", "label": "P"}]},
        {"attributeCode": "color", "label": "Cor", "type": "SWATCH",  # the attribute's pt_BR label
         "values": [{"variantReferenceId": "color-4", "label": "azul"}, {"variantReferenceId": "color-5", "label": "preto"}]},
    ]
    assert "links" not in product
    assert_valid("FeedProduct", product)


def test_a_variant_carries_the_reference_of_its_value_and_its_parent_link() -> None:
    child = {**configurable_child(), "attributes": [{"code": "color", "label": "Cor", "values": ["azul"]}],
             "variant_options": [{"attribute_id": 93, "option_id": 4}, {"attribute_id": 94, "option_id": 8}]}

    product = mapping.feed_product(child, _catalog())

    assert product["attributes"] == [
        {"code": "aco_ac_attributes", "values": ['{"inStock":true,"lowStock":false,"weight":1.5,"weightType":"kgs"}']},
        {"code": "color", "values": ["azul"], "variantReferenceId": "color-4"},
        {"code": "size", "values": ["P"], "variantReferenceId": "size-8"},  # not among its attributes: added
    ]
    assert product["links"] == [{"type": "VARIANT_OF", "sku": "MH01"}]
    assert_valid("FeedProduct", product)


def test_a_configurable_without_variants_cannot_be_bought_so_it_is_disabled() -> None:
    lonely = {**configurable_child(), "type": "configurable", "parent_skus": [], "variant_skus": [],
              "configurable_options": []}
    product = mapping.feed_product(lonely, _catalog())
    assert product["status"] == "DISABLED" and "configurations" not in product


@pytest.mark.parametrize(("qty", "in_stock", "threshold", "low"), [
    (3.0, True, 5.0, True), (5.0, True, 5.0, True), (6.0, True, 5.0, False),
    (3.0, True, 0.0, False),  # no threshold set: Magento never says "Only X left"
    (0.0, False, 5.0, False),  # out of stock is not low stock
])
def test_availability_follows_magentos_only_x_left_rule(qty, in_stock, threshold, low) -> None:
    record = {**configurable_child(), "qty": qty, "in_stock": in_stock}
    [first, *_] = mapping.feed_product(record, _catalog(threshold))["attributes"]
    assert first == {"code": "aco_ac_attributes", "values": [
        f'{{"inStock":{str(in_stock).lower()},"lowStock":{str(low).lower()},"weight":1.5,"weightType":"kgs"}}']}
