"""Magento staging records -> Catalog Data Ingestion API feed items (contract: catalog-data-ingestion-v1.yaml).

The functions are pure, no I/O; `CatalogMapper` applies them for one run's catalog context.
Optional fields are left out when the record has no value (the API replaces a product whole,
so a missing field and a null one mean the same). The file target writes the same items.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from catalog_sync.feed.feed_record import CORE_ATTRIBUTES, StagingRow
from catalog_sync.magento.catalog_reader import CatalogContext
from catalog_sync.settings import ConfigurationError
from catalog_sync.targets.base import FeedItem
from catalog_sync.targets.ingestion_api.config import FeedOptions
from catalog_sync.targets.ingestion_api.feeds import METADATA, PRICE_BOOKS, PRICES, PRODUCTS

ENABLED = "ENABLED"
DISABLED = "DISABLED"
MAGENTO_STATUS_ENABLED = 1

# Magento visibility (1 not visible, 2 catalog, 3 search, 4 both) -> FeedProduct.visibleIn
VISIBLE_IN: dict[int, list[str]] = {1: [], 2: ["CATALOG"], 3: ["SEARCH"], 4: ["CATALOG", "SEARCH"]}
# Magento image roles -> ProductImage.roles; anything else goes to customRoles.
IMAGE_ROLES: dict[str, str] = {"image": "BASE", "small_image": "SMALL", "thumbnail": "THUMBNAIL", "swatch_image": "SWATCH"}
VARIANT_OF = "VARIANT_OF"
SPECIAL_PRICE_DISCOUNT_CODE = "special_price"
CONFIGURABLE = "configurable"


def api_locale(magento_locale: str) -> str:
    """'pt_BR' -> 'pt-BR' (Magento's general/locale/code to the API's BCP 47 form)."""
    return magento_locale.replace("_", "-")


def source(magento_locale: str) -> dict[str, str]:
    return {"locale": api_locale(magento_locale)}


_NON_SLUG = re.compile(r"[^a-z0-9]+")
_KEYWORD_SEPARATORS = re.compile(r"[,\n]")


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by '-', as Magento builds url keys from names."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_SLUG.sub("-", ascii_text.lower()).strip("-")


@lru_cache(maxsize=65536)
def route_path(category_path: str) -> str:
    """'Gear/Water Bottles' -> 'gear/water-bottles'; category paths repeat across products, hence the cache."""
    return "/".join(slugify(part) for part in category_path.split("/"))


# ---- products ---------------------------------------------------------------------------


def feed_product(record: dict[str, Any]) -> dict[str, Any]:
    """A FeedProduct (POST /v1/catalog/products) for one feed record."""
    product: dict[str, Any] = {
        "sku": record["sku"],
        "source": source(record["locale"]),
        "name": record["name"],
        "slug": product_slug(record),
        "status": ENABLED if record.get("status") == MAGENTO_STATUS_ENABLED else DISABLED,
    }
    visibility = record.get("visibility")
    if visibility in VISIBLE_IN:
        product["visibleIn"] = list(VISIBLE_IN[visibility])
    for field, api_field in (("description", "description"), ("short_description", "shortDescription")):
        if record.get(field) is not None:
            product[api_field] = record[field]
    optional = {
        "metaTags": meta_tags(record),
        "attributes": attributes(record.get("attributes") or []),
        "images": images(record.get("images") or []),
        "links": links(record.get("parent_skus") or []),
        "routes": routes(record.get("category_paths") or []),
    }
    product.update({key: value for key, value in optional.items() if value})
    return product


def product_slug(record: dict[str, Any]) -> str:
    """url_key; without one (slug is required) the slug of the name, else of the sku."""
    if record.get("url_key"):
        return record["url_key"]
    return slugify(record.get("name") or "") or slugify(record["sku"]) or record["sku"]


def meta_tags(record: dict[str, Any]) -> dict[str, Any]:
    """ProductMetaAttribute: title and description are strings, keywords an array (split on commas)."""
    tags: dict[str, Any] = {}
    if record.get("meta_title"):
        tags["title"] = record["meta_title"]
    if record.get("meta_description"):
        tags["description"] = record["meta_description"]
    keywords = split_keywords(record.get("meta_keywords"))
    if keywords:
        tags["keywords"] = keywords
    return tags


def split_keywords(raw: str | None) -> list[str]:
    if not raw:
        return []
    return [word.strip() for word in _KEYWORD_SEPARATORS.split(raw) if word.strip()]


def attributes(record_attributes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ProductAttribute: code + values (strings). The contract has no `type` (it is commented out)."""
    return [
        {"code": a["code"], "values": [str(v) for v in a["values"]]}
        for a in record_attributes
        if a.get("values")
    ]


def images(record_images: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ProductImage: the contract has no position, so the array keeps the record's order (by position)."""
    result = []
    for image in sorted(record_images, key=lambda i: (i.get("position") or 0, i["url"])):
        roles = image.get("roles") or []
        item: dict[str, Any] = {"url": image["url"]}
        if image.get("label"):
            item["label"] = image["label"]
        item["roles"] = [IMAGE_ROLES[r] for r in roles if r in IMAGE_ROLES]
        custom = [r for r in roles if r not in IMAGE_ROLES]
        if custom:
            item["customRoles"] = custom
        result.append(item)
    return result


def links(parent_skus: Iterable[str]) -> list[dict[str, str]]:
    """A configurable's variant links to its parent(s) with VARIANT_OF (parent_skus come from super links)."""
    return [{"type": VARIANT_OF, "sku": sku} for sku in parent_skus]


def routes(category_paths: Iterable[str]) -> list[dict[str, str]]:
    """ProductRoutes: one per assigned category, its path of name slugs ('Gear/Water Bottles' -> 'gear/water-bottles')."""
    paths = {route_path(path) for path in category_paths}
    return [{"path": p} for p in sorted(paths) if p]


# ---- metadata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeMeta:
    """What metadata needs to know about a custom attribute (catalog_reader.Attribute fits too)."""

    code: str
    label: str | None
    backend_type: str
    frontend_input: str | None = None


# The five attributes the contract requires metadata for, with its recommended defaults.
_LISTED = ["PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS", "PRODUCT_COMPARE"]
SYSTEM_METADATA: tuple[dict[str, Any], ...] = (
    {"code": "sku", "label": "SKU", "dataType": "TEXT", "visibleIn": _LISTED, "filterable": True,
     "sortable": False, "searchable": True, "searchWeight": 1, "searchTypes": ["AUTOCOMPLETE"]},
    {"code": "name", "label": "Product Name", "dataType": "TEXT", "visibleIn": _LISTED, "filterable": False,
     "sortable": True, "searchable": True, "searchWeight": 1, "searchTypes": ["AUTOCOMPLETE"]},
    {"code": "description", "label": "Product Description", "dataType": "TEXT", "visibleIn": ["PRODUCT_DETAIL"],
     "filterable": False, "sortable": False, "searchable": False, "searchWeight": 1, "searchTypes": ["AUTOCOMPLETE"]},
    {"code": "shortDescription", "label": "Product Short Description", "dataType": "TEXT",
     "visibleIn": ["PRODUCT_DETAIL"], "filterable": False, "sortable": False, "searchable": True,
     "searchWeight": 1, "searchTypes": ["AUTOCOMPLETE"]},
    {"code": "price", "label": "Price", "dataType": "DECIMAL", "visibleIn": _LISTED, "filterable": True,
     "sortable": True, "searchable": False, "searchWeight": 1, "searchTypes": []},
)


def data_type(backend_type: str, frontend_input: str | None = None) -> str:
    """FeedMetadata.dataType (TEXT/DECIMAL/INTEGER/BOOLEAN) from the Magento backend type.
    Select/multiselect values are sent as option labels, so they are TEXT whatever the backend."""
    if frontend_input in ("select", "multiselect"):
        return "TEXT"
    return {"decimal": "DECIMAL", "int": "INTEGER"}.get(backend_type, "TEXT")


def metadata_items(custom_attributes: Iterable[Any], locales: Iterable[str]) -> list[dict[str, Any]]:
    """FeedMetadata for sku, name, description, shortDescription, price and each custom attribute,
    once per locale (Magento form). Custom attributes: shown on the detail page, not searchable."""
    custom = list(custom_attributes)
    items: list[dict[str, Any]] = []
    for locale in sorted(set(locales)):
        for system in SYSTEM_METADATA:
            items.append({"code": system["code"], "source": source(locale),
                          **{k: v for k, v in system.items() if k != "code"}})
        for a in sorted(custom, key=lambda a: a.code):
            items.append({
                "code": a.code, "source": source(locale), "label": a.label or a.code,
                "dataType": data_type(a.backend_type, getattr(a, "frontend_input", None)),
                "visibleIn": ["PRODUCT_DETAIL"], "filterable": False, "sortable": False, "searchable": False,
            })
    return items


# ---- prices -----------------------------------------------------------------------------


def price_book(price_book_id: str, currency: str, name: str | None = None) -> dict[str, Any]:
    """FeedPricebook, a base price book (it defines the currency)."""
    return {"priceBookId": price_book_id, "name": name or price_book_id, "currency": currency}


def special_price_active(record: dict[str, Any], day: date) -> bool:
    """Magento's rule: a special price applies from its from-date to its to-date, both inclusive, on
    `day`, the store view's local date (Timezone::isScopeDateInInterval)."""
    if record.get("special_price") is None:
        return False
    start, end = record.get("special_price_from"), record.get("special_price_to")
    if start and day < date.fromisoformat(start):
        return False
    return not (end and day > date.fromisoformat(end))


def prices(record: dict[str, Any], price_book_id: str, day: date) -> dict[str, Any] | None:
    """FeedPrices for a record, or None when it has no price of its own (no price, or a configurable:
    the contract says its price comes from the selected variant).

    An active special price below the regular one becomes a fixed-amount discount
    (DiscountsFinalPrice: `price` is the amount taken off, so regular - special)."""
    if record.get("price") is None or record.get("type") == CONFIGURABLE:
        return None
    item: dict[str, Any] = {"sku": record["sku"], "priceBookId": price_book_id, "regular": record["price"]}
    if special_price_active(record, day):
        amount = Decimal(str(record["price"])) - Decimal(str(record["special_price"]))
        # The contract wants 0 < amount < regular: a special price of 0 or >= price gives no discount.
        if 0 < amount < Decimal(str(record["price"])):
            item["discounts"] = [{"code": SPECIAL_PRICE_DISCOUNT_CODE, "price": float(amount)}]
    return item


def price_recheck_on(record: dict[str, Any], day: date) -> str | None:
    """The first local day after `day` on which the record's special price starts or stops counting."""
    if record.get("special_price") is None:
        return None
    start, end = record.get("special_price_from"), record.get("special_price_to")
    if start and day < date.fromisoformat(start):
        return start
    if end and day <= date.fromisoformat(end):
        return (date.fromisoformat(end) + timedelta(days=1)).isoformat()
    return None


# ---- keys: each is the body of the item's delete request ----------------------------------------


def product_key(sku: str, locale: str) -> dict[str, Any]:
    """FeedProductDelete; `locale` in Magento form."""
    return {"sku": sku, "source": source(locale)}


def price_key(sku: str, price_book_id: str) -> dict[str, Any]:
    """FeedPricesDelete."""
    return {"sku": sku, "priceBookId": price_book_id}


def price_book_key(price_book_id: str) -> dict[str, Any]:
    """FeedPriceBookDelete."""
    return {"priceBookId": price_book_id}


def metadata_key(body: dict[str, Any]) -> dict[str, Any]:
    """FeedMetadataDelete: the metadata item's code and source."""
    return {"code": body["code"], "source": body["source"]}


# ---- one run's mapping --------------------------------------------------------------------------


class CatalogMapper:
    """The feed items of one run: built from its catalog context and the target's feed options."""

    def __init__(self, ctx: CatalogContext, options: FeedOptions):
        self.ctx = ctx
        self.options = options
        self.locales = {v.code: v.locale for v in ctx.store_views}
        check_distinct_locales(self.locales)
        # A website's prices (one price book) are judged in one store view: its default one, as
        # Magento's price index judges a website's dates in its default store's time zone.
        self.price_views: dict[str, str] = {}
        self.currencies: dict[str, str] = {}
        for view in sorted(ctx.store_views, key=lambda v: (not v.is_website_default, v.store_id)):
            if view.website_code not in self.price_views:
                self.price_views[view.website_code] = view.code
                self.currencies[view.website_code] = view.currency

    def catalog_items(self) -> Iterator[FeedItem]:
        custom = [a for a in self.ctx.attributes_by_id.values() if a.is_user_defined and a.code not in CORE_ATTRIBUTES]
        for body in metadata_items(custom, self.locales.values()):
            yield FeedItem(METADATA.name, metadata_key(body), body)
        for website in sorted(self.price_views):
            book = self.options.price_book(website)
            yield FeedItem(PRICE_BOOKS.name, price_book_key(book), price_book(book, self.currencies[website]))

    def product_items(self, row: StagingRow) -> Iterator[FeedItem]:
        record = row.record
        sku, view, website = record.get("sku") or "", record.get("store_view_code"), record.get("website_code")
        key = product_key(sku, self.locales.get(view) or record.get("locale") or "")
        if row.quarantine_reason:
            yield FeedItem(PRODUCTS.name, key, None, row.quarantine_reason)
            return
        try:
            product = feed_product(record)
            price = day = None
            if website is not None and self.price_views.get(website) == view:
                day = date.fromisoformat(row.judged_on)
                price = prices(record, self.options.price_book(website), day)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            yield FeedItem(PRODUCTS.name, key, None, f"cannot map the staging record: {type(exc).__name__}: {exc}")
            return
        yield FeedItem(PRODUCTS.name, key, product)
        if price is not None:
            yield FeedItem(PRICES.name, price_key(sku, price["priceBookId"]), price, judged_on=row.judged_on,
                           recheck_on=price_recheck_on(record, day))


def adopted_items(record: dict[str, Any], options: FeedOptions, with_bodies: bool) -> Iterator[FeedItem]:
    """What releases before feeds (state formats 1 and 2) sent for a kept record: the product
    (its body is this mapping of the record), and the price and price book of its website,
    whose bodies were built at send time and never kept."""
    sku, website = record["sku"], record.get("website_code")
    yield FeedItem(PRODUCTS.name, product_key(sku, record["locale"]), feed_product(record) if with_bodies else None)
    if website and record.get("price") is not None and record.get("type") != CONFIGURABLE:
        book = options.price_book(website)
        yield FeedItem(PRICES.name, price_key(sku, book), None)
        yield FeedItem(PRICE_BOOKS.name, price_book_key(book), None)


def check_distinct_locales(store_view_locales: dict[str, str]) -> None:
    """The ingestion API keys products by (sku, locale): two store views on one locale would overwrite each other."""
    by_locale: dict[str, list[str]] = {}
    for view, locale in store_view_locales.items():
        by_locale.setdefault(locale, []).append(view)
    clashes = {locale: views for locale, views in by_locale.items() if len(views) > 1}
    if clashes:
        described = "; ".join(f"{', '.join(sorted(v))} -> {locale}" for locale, v in sorted(clashes.items()))
        raise ConfigurationError(
            f"store views share a locale ({described}): the ingestion API keeps one product per sku and locale. "
            "Give each store view its own general/locale/code in Magento (choosing one view per locale is not supported yet)"
        )
