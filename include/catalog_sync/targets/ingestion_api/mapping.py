"""Magento staging records -> Catalog Data Ingestion API feed items (contract: catalog-data-ingestion-v1.yaml).

The functions are pure, no I/O; `CatalogMapper` applies them for one run's catalog context.
Optional fields are left out when the record has no value (the API replaces a product whole,
so a missing field and a null one mean the same). The file target writes the same items.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any

from catalog_sync.feed.feed_record import StagingRow, record_attributes
from catalog_sync.magento.catalog_reader import DEFAULT_WEIGHT_UNIT, Attribute, CatalogContext, StoreView
from catalog_sync.magento.categories import ViewCategory, slugify, view_categories
from catalog_sync.targets.base import FeedItem
from catalog_sync.targets.ingestion_api.config import FeedOptions
from catalog_sync.targets.ingestion_api.feeds import CATEGORIES, METADATA, PRICE_BOOKS, PRICES, PRODUCT_LAYERS, PRODUCTS
from catalog_sync.targets.ingestion_api.layers import LayerGap, layer_key, product_layer

ENABLED = "ENABLED"
DISABLED = "DISABLED"
MAGENTO_STATUS_ENABLED = 1

# Magento visibility (1 not visible, 2 catalog, 3 search, 4 both) -> FeedProduct.visibleIn
VISIBLE_IN: dict[int, list[str]] = {1: [], 2: ["CATALOG"], 3: ["SEARCH"], 4: ["CATALOG", "SEARCH"]}
# Magento image roles -> ProductImage.roles; anything else goes to customRoles.
IMAGE_ROLES: dict[str, str] = {"image": "BASE", "small_image": "SMALL", "thumbnail": "THUMBNAIL", "swatch_image": "SWATCH"}
VARIANT_OF = "VARIANT_OF"
SPECIAL_PRICE_DISCOUNT_CODE = "special_price"
TIER_PRICE_DISCOUNT_CODE = "tier_price"  # a tier price at quantity 1: a lower price for everyone
CONFIGURABLE = "configurable"
GROUPED = "grouped"
BUNDLE = "bundle"
IN_BUNDLE = "IN_BUNDLE"
MULTI_SELECT_BUNDLE_OPTIONS = ("checkbox", "multi")  # Magento's bundle option input types that take several
# Adobe's connector: the Magento product id as an external id of this origin.
EXTERNAL_ID_ORIGIN = "AdobeCommerce"
# Adobe's connector: stock and weight travel as one JSON-encoded attribute, always the first one.
AVAILABILITY_ATTRIBUTE = "aco_ac_attributes"
SWATCH_OPTION, CONFIGURABLE_OPTION = "SWATCH", "CONFIGURABLE"
# catalog_product_link_type.code -> ProductLink.type: Magento's API name of the link type, upper-cased
# (a grouped product's members are its "associated" products).
LINK_TYPES = {"relation": "RELATED", "up_sell": "UPSELL", "cross_sell": "CROSSSELL", "super": "ASSOCIATED"}


def api_locale(magento_locale: str) -> str:
    """'pt_BR' -> 'pt-BR' (Magento's general/locale/code to the API's BCP 47 form)."""
    return magento_locale.replace("_", "-")


def source(magento_locale: str) -> dict[str, str]:
    return {"locale": api_locale(magento_locale)}


_KEYWORD_SEPARATORS = re.compile(r"[,\n]")


@lru_cache(maxsize=65536)
def route_path(category_path: str) -> str:
    """'Gear/Water Bottles' -> 'gear/water-bottles'; category paths repeat across products, hence the cache."""
    return "/".join(slugify(part) for part in category_path.split("/"))


# ---- products ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductCatalog:
    """What a product body needs from the catalog besides its record: one run's CatalogContext."""

    ctx: CatalogContext

    @cached_property
    def views(self) -> dict[str, StoreView]:
        return {v.code: v for v in self.ctx.store_views}

    def store_id(self, record: dict[str, Any]) -> int | None:
        view = self.views.get(record.get("store_view_code") or "")
        return view.store_id if view else None

    def weight_unit(self, record: dict[str, Any]) -> str:
        view = self.views.get(record.get("store_view_code") or "")
        return view.weight_unit if view else DEFAULT_WEIGHT_UNIT

    def attribute(self, attribute_id: int) -> Attribute | None:
        return self.ctx.attributes_by_id.get(attribute_id)

    def option_label(self, option_id: int, store_id: int | None) -> str:
        return (self.ctx.option_label(option_id, store_id) if store_id is not None else None) or str(option_id)

    def category_slugs(self, record: dict[str, Any]) -> dict[int, str]:
        """The slugs of the categories the record's store view exports (magento/categories), by category id."""
        store_id = self.store_id(record)
        if store_id is None:
            return {}
        if store_id not in self._slugs:
            self._slugs[store_id] = {cid: c.slug for cid, c in view_categories_of(self.ctx, store_id).items()}
        return self._slugs[store_id]

    @cached_property
    def _slugs(self) -> dict[int, dict[int, str]]:
        return {}


def feed_product(record: dict[str, Any], catalog: ProductCatalog | None = None) -> dict[str, Any]:
    """A FeedProduct (POST /v1/catalog/products) for one feed record. Without the run's `catalog`
    (records kept by releases before it), the body has no configurations and no variant references."""
    kind = record.get("type")
    composite_without_children = (
        (kind == CONFIGURABLE and not record.get("variant_skus"))
        or (kind == GROUPED and not any(link["type"] == "super" for link in record.get("product_links") or []))
        or (kind == BUNDLE and not any(o["selections"] for o in record.get("bundle_options") or [])))
    product: dict[str, Any] = {
        "sku": record["sku"],
        "source": source(record["locale"]),
        "name": record["name"],
        "slug": product_slug(record),
        # Adobe's connector: a composite product (configurable, grouped, bundle) without children cannot be bought: DISABLED.
        "status": ENABLED if record.get("status") == MAGENTO_STATUS_ENABLED and not composite_without_children
        else DISABLED,
    }
    visibility = record.get("visibility")
    if visibility in VISIBLE_IN:
        product["visibleIn"] = list(VISIBLE_IN[visibility])
    for field, api_field in (("description", "description"), ("short_description", "shortDescription")):
        if record.get(field) is not None:
            product[api_field] = record[field]
    optional = {
        "metaTags": meta_tags(record),
        "attributes": [availability(record, catalog), *attributes(record.get("attributes") or [],
                                                                  variant_attributes(record, catalog))],
        "images": images(record.get("images") or []),
        "links": links(record.get("parent_skus") or [], record.get("product_links") or [], record.get("bundle_skus") or []),
        "routes": category_routes(record, catalog) if catalog else routes(record.get("category_paths") or []),
        "configurations": configurations(record, catalog),
        "bundles": bundles(record),
        "externalIds": [{"id": str(record["product_id"]), "origin": EXTERNAL_ID_ORIGIN}] if "product_id" in record else [],
    }
    product.update({key: value for key, value in optional.items() if value})
    return product


def availability(record: dict[str, Any], catalog: ProductCatalog | None) -> dict[str, Any]:
    """aco_ac_attributes, as Adobe's connector sends it: {inStock, lowStock, weight, weightType} as JSON.
    lowStock is Magento's "Only X left" rule: in stock with qty at or below stock_threshold_qty (0: never)."""
    threshold = catalog.ctx.stock_threshold_qty if catalog else 0.0
    qty, in_stock = record.get("qty"), bool(record.get("in_stock"))
    low = bool(in_stock and threshold > 0 and qty is not None and qty <= threshold)
    unit = catalog.weight_unit(record) if catalog else DEFAULT_WEIGHT_UNIT
    value = {"inStock": in_stock, "lowStock": low, "weight": record.get("weight"), "weightType": unit}
    return {"code": AVAILABILITY_ATTRIBUTE, "values": [json.dumps(value, separators=(",", ":"))]}


def variant_attributes(record: dict[str, Any], catalog: ProductCatalog | None) -> dict[str, dict[str, Any]]:
    """A variant's attributes that its configurables offer as options, by code: each with its value's
    label and the variantReferenceId of that value."""
    if catalog is None:
        return {}
    store_id = catalog.store_id(record)
    found = {}
    for option in record.get("variant_options") or []:
        attribute = catalog.attribute(option["attribute_id"])
        if attribute is not None:
            found[attribute.code] = {"code": attribute.code, "values": [catalog.option_label(option["option_id"], store_id)],
                                     "variantReferenceId": variant_reference_id(attribute.code, option["option_id"])}
    return found


def variant_reference_id(attribute_code: str, option_id: int) -> str:
    """Ties a variant's attribute value to its configurable's option value. Built from the option's id
    (labels change, ids do not), so it is the same in every configurable a variant belongs to."""
    return f"{attribute_code}-{option_id}"


def configurations(record: dict[str, Any], catalog: ProductCatalog | None) -> list[dict[str, Any]]:
    """ProductConfiguration: a configurable's options, in Magento's position order, each with the values its
    variants have (in option id order). SWATCH for swatch attributes, else CONFIGURABLE."""
    if catalog is None or record.get("type") != CONFIGURABLE:
        return []
    store_id = catalog.store_id(record)
    result = []
    for option in record.get("configurable_options") or []:
        attribute = catalog.attribute(option["attribute_id"])
        if attribute is None:
            continue
        result.append({
            "attributeCode": attribute.code,
            "label": option.get("label") or attribute.label_in(store_id),
            "type": SWATCH_OPTION if attribute.attribute_id in catalog.ctx.swatch_attribute_ids else CONFIGURABLE_OPTION,
            "values": [{"variantReferenceId": variant_reference_id(attribute.code, oid),
                        "label": catalog.option_label(oid, store_id)} for oid in option["option_ids"]],
        })
    return result


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


def attributes(record_attributes: Iterable[dict[str, Any]],
               variant: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """ProductAttribute: code + values (strings), by code; a variant's option attributes carry their
    variantReferenceId. The contract has no `type` (it is commented out)."""
    variant = dict(variant or {})
    result = []
    for a in record_attributes:
        if a["code"] in variant:
            result.append({"code": a["code"], "values": [str(v) for v in a["values"]],
                           "variantReferenceId": variant.pop(a["code"])["variantReferenceId"]})
        elif a.get("values"):
            result.append({"code": a["code"], "values": [str(v) for v in a["values"]]})
    return sorted([*result, *variant.values()], key=lambda a: a["code"])


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


def links(parent_skus: Iterable[str], product_links: Iterable[dict[str, str]] = (),
          bundle_skus: Iterable[str] = ()) -> list[dict[str, str]]:
    """ProductLink: a variant's VARIANT_OF link to its configurable(s), a bundled product's IN_BUNDLE link to
    each bundle offering it, then its links to other products, typed by Magento's API names upper-cased,
    as Adobe's connector does (related -> RELATED, ...)."""
    return [{"type": VARIANT_OF, "sku": sku} for sku in parent_skus] + [
        {"type": IN_BUNDLE, "sku": sku} for sku in bundle_skus] + [
        {"type": LINK_TYPES[link["type"]], "sku": link["sku"]} for link in product_links if link["type"] in LINK_TYPES]


def bundles(record: dict[str, Any]) -> list[dict[str, Any]]:
    """ProductBundle: a bundle's options in Magento's position order, each with the products it offers (by
    position), their default quantity and whether the shopper may change it. An option offering nothing is
    left out. The contract has no option position, selection price or price type: not sent."""
    if record.get("type") != BUNDLE:
        return []
    result = []
    for option in record.get("bundle_options") or []:
        if not option["selections"]:
            continue
        group: dict[str, Any] = {"group": option["title"] or f"option {option['option_id']}",
                                 "required": option["required"], "multiSelect": option["type"] in MULTI_SELECT_BUNDLE_OPTIONS}
        defaults = [chosen["sku"] for chosen in option["selections"] if chosen["is_default"]]
        if defaults:
            group["defaultItemSkus"] = defaults
        group["items"] = [{"sku": chosen["sku"], **({"qty": chosen["qty"]} if chosen["qty"] is not None else {}),
                           "userDefinedQty": chosen["can_change_qty"]} for chosen in option["selections"]]
        result.append(group)
    return result


def routes(category_paths: Iterable[str]) -> list[dict[str, str]]:
    """ProductRoutes as releases before the categories feed sent them (adopted records, no catalog): one per
    assigned category, its path of name slugs ('Gear/Water Bottles' -> 'gear/water-bottles')."""
    paths = {route_path(path) for path in category_paths}
    return [{"path": p} for p in sorted(paths) if p]


def category_routes(record: dict[str, Any], catalog: ProductCatalog) -> list[dict[str, Any]]:
    """ProductRoutes: one per assigned category that the record's store view exports in the categories feed
    (its store's root tree, active), `path` its slug there and `position` the product's place in that
    category (catalog_category_product.position; records of earlier releases carry none: 0). Sorted by path."""
    slugs = catalog.category_slugs(record)
    ids = record.get("category_ids") or []
    positions = record.get("category_positions") or [0] * len(ids)
    found = {slugs[cid]: int(position or 0) for cid, position in zip(ids, positions) if cid in slugs}
    return [{"path": path, "position": found[path]} for path in sorted(found)]


# ---- categories -------------------------------------------------------------------------


CATEGORY_IMAGE_FOLDER = "catalog/category/"


def view_categories_of(ctx: CatalogContext, store_id: int) -> dict[int, ViewCategory]:
    return view_categories(ctx.categories, ctx.category_names, store_id)


def category_image(value: str | None, media_url: str) -> list[dict[str, Any]]:
    """ProductImage of a category's `image`: Magento keeps a file name (under media/catalog/category/) or,
    since 2.3.4, a path from the web root ('/media/catalog/category/x.png')."""
    if not value:
        return []
    if value.startswith(("http://", "https://")):
        url = value
    elif value.startswith("/media/"):
        url = media_url + value[len("/media/"):]
    elif value.startswith("/"):
        url = media_url.rsplit("/media/", 1)[0] + value if "/media/" in media_url else value
    else:
        url = media_url + CATEGORY_IMAGE_FOLDER + value
    return [{"url": url, "roles": ["BASE"]}]


def feed_category(category: ViewCategory, locale: str, media_url: str = "") -> dict[str, Any]:
    """FeedCategory (POST /v1/catalog/categories) of one category in one store view."""
    body: dict[str, Any] = {"slug": category.slug, "source": source(locale), "name": category.name[:128]}
    if category.description:
        body["description"] = category.description
    tags: dict[str, Any] = {}
    if category.meta_title:
        tags["title"] = category.meta_title
    if category.meta_description:
        tags["description"] = category.meta_description
    keywords = split_keywords(category.meta_keywords)
    if keywords:
        tags["keywords"] = keywords
    if tags:
        body["metaTags"] = tags
    image = category_image(category.image, media_url)
    if image:
        body["images"] = image
    return body


def category_key(slug: str, locale: str) -> dict[str, Any]:
    """FeedCategoryDelete; `locale` in Magento form."""
    return {"slug": slug, "source": source(locale)}


# ---- metadata ---------------------------------------------------------------------------


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


# The Magento attributes behind SYSTEM_METADATA's five entries: never given metadata of their own.
SYSTEM_METADATA_SOURCES = frozenset({"sku", "name", "description", "short_description", "price"})


def data_type(backend_type: str, frontend_input: str | None = None) -> str:
    """FeedMetadata.dataType (TEXT/DECIMAL/INTEGER/BOOLEAN), by Adobe's connector table, except:
    select/multiselect values are sent as option labels, so they are TEXT whatever the backend, and an
    int with a text input stays INTEGER (its values are integers, which the target can range and sort)."""
    if frontend_input in ("select", "multiselect"):
        return "TEXT"
    if backend_type == "int" and frontend_input == "boolean":
        return "BOOLEAN"
    return {"decimal": "DECIMAL", "int": "INTEGER"}.get(backend_type, "TEXT")


def visible_in(a: Any) -> list[str]:
    """FeedMetadata.visibleIn from Magento's storefront properties. Magento's search results page is a
    product listing (the same list template), so an attribute shown in listings is shown there too;
    is_searchable only makes values match a query, it shows nothing."""
    places = []
    if a.is_visible_on_front:  # "Visible on Catalog Pages on Storefront": the product page's More Information
        places.append("PRODUCT_DETAIL")
    if a.used_in_product_listing:
        places += ["PRODUCT_LISTING", "SEARCH_RESULTS"]
    if a.is_comparable:
        places.append("PRODUCT_COMPARE")
    return places


def _number(value: float) -> int | float:
    """search_weight is a float column holding whole numbers: 1, not 1.0, in the body."""
    return int(value) if float(value).is_integer() else float(value)


def attribute_metadata(a: Any, locale: str, store_id: int | None = None) -> dict[str, Any]:
    """FeedMetadata of one attribute in one store view (its locale, and its label there)."""
    return {
        "code": a.code, "source": source(locale), "label": a.label_in(store_id),
        "dataType": data_type(a.backend_type, a.frontend_input), "visibleIn": visible_in(a),
        # is_filterable 1 and 2 both show the attribute in layered navigation (2 also without results).
        "filterable": bool(a.is_filterable) or bool(a.is_filterable_in_search),
        "sortable": bool(a.used_for_sort_by), "searchable": bool(a.is_searchable),
        "searchWeight": _number(a.search_weight),
    }


def metadata_attributes(ctx: CatalogContext) -> list[Attribute]:
    """The attributes that get metadata besides the five: those whose values products carry in `attributes`
    (every custom one, and each system one Magento shows on the storefront), less the five's sources."""
    return [a for a in record_attributes(ctx) if a.code not in SYSTEM_METADATA_SOURCES]


def metadata_items(attributes: Iterable[Any], locales: Iterable[str],
                   store_ids: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """FeedMetadata for sku, name, description, shortDescription, price and each of `attributes`,
    once per locale (Magento form); `store_ids` (locale -> its store view) picks each locale's labels."""
    attributes = sorted(attributes, key=lambda a: a.code)
    items: list[dict[str, Any]] = []
    for locale in sorted(set(locales)):
        for system in SYSTEM_METADATA:
            items.append({"code": system["code"], "source": source(locale),
                          **{k: v for k, v in system.items() if k != "code"}})
        store_id = (store_ids or {}).get(locale)
        items += [attribute_metadata(a, locale, store_id) for a in attributes]
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


def group_price_book_id(price_book_id: str, customer_group_id: int) -> str:
    """A customer group's child price book of a website's book, named as Adobe's connector names it
    (`websiteCode::sha1(customerGroupId)`, the guest's group 0 included), so a storefront that resolves
    a shopper's book as Adobe documents finds it."""
    return f"{price_book_id}::{hashlib.sha1(str(customer_group_id).encode(), usedforsecurity=False).hexdigest()}"


def group_price_book(price_book_id: str, customer_group_id: int, group_code: str) -> dict[str, Any]:
    """FeedPricebook, a child book (PriceBookChild): the currency is its parent's."""
    return {"priceBookId": group_price_book_id(price_book_id, customer_group_id), "name": f"{price_book_id} {group_code}",
            "parentId": price_book_id}


def group_prices(record: dict[str, Any], price_book_id: str, day: date, groups: dict[int, str]) -> list[dict[str, Any]]:
    """FeedPrices in the child books of the customer groups that have tier prices of their own: a child's
    price replaces its parent's, so it repeats the regular price, the discounts and the tiers for every
    group, with the group's own rows added (the lower wins at one quantity, as in Magento)."""
    own = sorted({row["customer_group_id"] for row in record.get("tier_prices") or []
                  if row.get("customer_group_id") is not None and row["customer_group_id"] in groups})
    found = []
    for group in own:
        price = prices(record, group_price_book_id(price_book_id, group), day, group)
        if price is not None:
            found.append(price)
    return found


def prices(record: dict[str, Any], price_book_id: str, day: date, customer_group_id: int | None = None) -> dict[str, Any] | None:
    """FeedPrices for a record, or None when it has no price of its own (no price, or a configurable:
    the contract says its price comes from the selected variant).

    An active special price below the regular one becomes a fixed-amount discount
    (DiscountsFinalPrice: `price` is the amount taken off, so regular - special)."""
    if record.get("price") is None or record.get("type") == CONFIGURABLE:
        return None
    item: dict[str, Any] = {"sku": record["sku"], "priceBookId": price_book_id, "regular": record["price"]}
    regular = Decimal(str(record["price"]))
    discounts = []
    if special_price_active(record, day):
        amount = regular - Decimal(str(record["special_price"]))
        # The contract wants 0 < amount < regular: a special price of 0 or >= price gives no discount.
        if 0 < amount < regular:
            discounts.append({"code": SPECIAL_PRICE_DISCOUNT_CODE, "price": float(amount)})
    rows = [row for row in record.get("tier_prices") or []
            if row.get("customer_group_id") is None or row["customer_group_id"] == customer_group_id]
    tiers, for_everyone = tier_prices(rows, regular)
    if for_everyone is not None:
        discounts.append(for_everyone)
    if discounts:
        item["discounts"] = discounts
    if tiers:
        item["tierPrices"] = tiers
    return item


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def tier_prices(rows: list[dict[str, Any]], regular: Decimal) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Magento's tier prices for every customer group (magento/tier_prices) as the contract's `tierPrices`
    (from a quantity above 1: TierFinalPrice or TierPercentage), and a tier at quantity 1, a price for
    everyone, as a discount (DiscountsFinalPrice: the amount off, or DiscountsPercentage). When every
    website's row and the website's own give the same quantity, the lower price wins, as in Magento.
    A tier the contract cannot take (a price above the regular one or not above 0, a percentage outside
    0.01-99.99) fails the product's mapping with the reason, so it is held, never sent half-priced."""
    best: dict[Decimal, tuple[Decimal, dict[str, Any]]] = {}
    for row in rows:
        qty = Decimal(str(row["qty"]))
        if row["percentage"] is not None:
            percentage = Decimal(str(row["percentage"]))
            if not Decimal("0.01") <= percentage <= Decimal("99.99"):
                raise ValueError(f"tier price at qty {_plain(qty)}: {_plain(percentage)}% off is outside the contract's "
                                 "0.01-99.99")
            final, body = regular * (100 - percentage) / 100, {"percentage": float(percentage)}
        else:
            final = Decimal(str(row["value"]))
            if not 0 < final <= regular:
                raise ValueError(f"tier price at qty {_plain(qty)}: {_plain(final)} is not above 0 and at most the regular "
                                 f"price {_plain(regular)}")
            body = {"price": float(final)}
        if qty not in best or final < best[qty][0]:
            best[qty] = (final, body)
    tiers = [{"qty": float(qty), **body} for qty, (_, body) in sorted(best.items()) if qty > 1]
    everyone = next(((final, body) for qty, (final, body) in sorted(best.items()) if qty <= 1), None)
    if everyone is None or everyone[0] >= regular:
        return tiers, None
    final, body = everyone
    return tiers, ({"code": TIER_PRICE_DISCOUNT_CODE, "percentage": body["percentage"]} if "percentage" in body
                   else {"code": TIER_PRICE_DISCOUNT_CODE, "price": float(regular - final)})


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
        self.catalog = ProductCatalog(ctx)
        self.locales = {v.code: v.locale for v in ctx.store_views}
        self.ranks = {v.code: v.locale_rank for v in ctx.store_views}
        # Each locale's base view (rank 0): its labels and categories are the locale's.
        self.base_views = [v for v in sorted(ctx.store_views, key=lambda v: v.store_id) if v.locale_rank == 0]
        self.gaps: list[LayerGap] = []
        # A website's prices (one price book) are judged in one store view: its default one, as
        # Magento's price index judges a website's dates in its default store's time zone.
        self.price_views: dict[str, str] = {}
        self.currencies: dict[str, str] = {}
        for view in sorted(ctx.store_views, key=lambda v: (not v.is_website_default, v.store_id)):
            if view.website_code not in self.price_views:
                self.price_views[view.website_code] = view.code
                self.currencies[view.website_code] = view.base_currency  # prices are in the base currency

    def catalog_items(self) -> Iterator[FeedItem]:
        store_ids = {v.locale: v.store_id for v in self.base_views}
        for body in metadata_items(metadata_attributes(self.ctx), self.locales.values(), store_ids):
            yield FeedItem(METADATA.name, metadata_key(body), body)
        for website in sorted(self.price_views):
            book = self.options.price_book(website)
            yield FeedItem(PRICE_BOOKS.name, price_book_key(book), price_book(book, self.currencies[website]))
            for group, code in sorted(self.ctx.customer_groups.items()):  # after their parent
                child = group_price_book(book, group, code)
                yield FeedItem(PRICE_BOOKS.name, price_book_key(child["priceBookId"]), child)
        yield from self.category_items()

    def category_views(self) -> Iterator[tuple[StoreView, dict[int, ViewCategory]]]:
        """Each locale's base view and the categories it exports."""
        for view in self.base_views:
            yield view, view_categories_of(self.ctx, view.store_id)

    def category_items(self) -> Iterator[FeedItem]:
        """The categories feed: each locale's base view's exported categories, parents before children."""
        return (item for _, item in self.category_entries())

    # What an incremental run's scope asks about categories (steps/scope.py, recategorized_ids).
    category_feed = CATEGORIES.name

    def category_entries(self) -> Iterator[tuple[int, FeedItem]]:
        """The categories feed's items, each with its Magento category id."""
        for view, found in self.category_views():
            for cid, category in found.items():
                yield cid, FeedItem(CATEGORIES.name, category_key(category.slug, view.locale),
                                    feed_category(category, view.locale, view.media_url))

    @staticmethod
    def routes_naming(category_keys: Iterable[str]) -> Iterator[tuple[str, list[Any]]]:
        """DuckDB conditions over a products feed's snapshot rows (key, body) that hold for the products whose
        sent routes name one of these categories (keys of the categories feed), one per locale."""
        slugs: dict[str, list[str]] = {}
        for text in category_keys:
            key = json.loads(text)
            slugs.setdefault(key["source"]["locale"], []).append(key["slug"])
        for locale, found in sorted(slugs.items()):
            yield ("json_extract_string(key, '$.source.locale') = ? AND body IS NOT NULL "
                   "AND list_has_any(json_extract_string(body, '$.routes[*].path'), ?::VARCHAR[])", [locale, sorted(found)])

    def product_items(self, rows: Sequence[StagingRow]) -> Iterator[FeedItem]:
        """One product's items, from its staging rows (one per store view). In each locale, the view of the
        lowest rank the product is in gives the product; each other view of the locale, a layer over it."""
        bases: dict[str, tuple[str, dict[str, Any] | None]] = {}  # locale -> (view, its product; None: unmapped)
        order = sorted(range(len(rows)), key=lambda i: self.ranks.get(rows[i].record.get("store_view_code") or "", 0))
        for index in order:
            for item in self._view_items(rows[index], bases):
                item.row = index
                yield item

    def take_gaps(self) -> list[LayerGap]:
        gaps, self.gaps = self.gaps, []
        return gaps

    def _view_items(self, row: StagingRow, bases: dict[str, tuple[str, dict[str, Any] | None]]) -> Iterator[FeedItem]:
        record = row.record
        sku, view, website = record.get("sku") or "", record.get("store_view_code") or "", record.get("website_code")
        locale = self.locales.get(view) or record.get("locale") or ""
        base = bases.get(locale)
        if base is None:
            feed, key = PRODUCTS.name, product_key(sku, locale)
        else:
            feed, key = PRODUCT_LAYERS.name, layer_key(sku, api_locale(locale), view)
        if row.quarantine_reason or (base is not None and base[1] is None):
            bases.setdefault(locale, (view, None))
            yield FeedItem(feed, key, None, row.quarantine_reason or f"its base view {base[0]} cannot be mapped")
            return
        try:
            product = feed_product(record, self.catalog)
            price = day = None
            children: list[dict[str, Any]] = []
            if website is not None and self.price_views.get(website) == view:
                day = date.fromisoformat(row.judged_on)
                price = prices(record, self.options.price_book(website), day)
                children = group_prices(record, self.options.price_book(website), day, self.ctx.customer_groups)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            bases.setdefault(locale, (view, None))
            yield FeedItem(feed, key, None, f"cannot map the staging record: {type(exc).__name__}: {exc}")
            return
        if base is None:
            bases[locale] = (view, product)
            yield FeedItem(feed, key, product)
        else:
            layer, gaps = product_layer(base[1], product, view)
            self.gaps += [LayerGap(sku, view, base[0], field) for field in gaps]
            if layer is not None:
                yield FeedItem(feed, key, layer)
        for body in ([price] if price is not None else []) + children:
            yield FeedItem(PRICES.name, price_key(sku, body["priceBookId"]), body, judged_on=row.judged_on,
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

