"""The feed record, built product by product in Python: the reference implementation.

One record per (sku, store view). A store-scoped value overrides the default
(store 0); a product is in a store view only when the view's website is
assigned to it. Arrays whose order carries no meaning are sorted so the
content hash is stable.

Extract uses the vectorized builder in `feed_builder.py` (DuckDB); this module
states the same rules in plain Python. Tests hold the two to byte-identical
payloads, and it serves single-product reads (what Magento holds right now).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from catalog_sync.feed.content_hash import canonical_json, content_hash
from catalog_sync.magento.catalog_reader import Attribute, CatalogContext, ProductChunk, StoreView
from catalog_sync.magento.schema import ADMIN_STORE_ID
from catalog_sync.run_clock import local_date

IMAGE_ROLES = ("image", "small_image", "thumbnail", "swatch_image")
# Attributes mapped to named fields of the record; the rest go to `attributes`.
CORE_ATTRIBUTES = frozenset(
    {
        "name", "status", "visibility", "url_key", "description", "short_description", "meta_title",
        "meta_description", "meta_keyword", "price", "special_price", "special_from_date", "special_to_date",
        "weight", *IMAGE_ROLES,
    }
)
SKU_MAX_LENGTH = 64
NEGATIVE_PRICE = "negative price"
NEGATIVE_SPECIAL_PRICE = "negative special price"
# The ingestion API refuses a bundle that offers one SKU in two of its options ("Duplicate SKU found in bundle items").
BUNDLE_DUPLICATE_SKU = "a SKU in two options of this bundle, which the ingestion API refuses: "
# Price attributes follow `catalog/price/scope`: global (0) means store 0 only.
PRICE_ATTRIBUTES = ("price", "special_price", "special_from_date", "special_to_date")

# The Parquet layout of an extract. `payload` is the canonical JSON of the whole record.
EXTRACT_SCHEMA = pa.schema(
    [
        ("product_id", pa.int64()),
        ("sku", pa.string()),
        ("store_view_code", pa.string()),
        ("content_hash", pa.string()),
        ("payload", pa.string()),
        ("name", pa.string()),
        ("type", pa.string()),
        ("price", pa.float64()),
        ("visibility", pa.int32()),
        ("source_updated_at", pa.string()),
        # Configurable parents and variants: a change to one re-reads the others.
        ("linked_product_ids", pa.list_(pa.int64())),
        # The store view's local date at the run's instant (ISO): the day its price window was judged on.
        ("judged_on", pa.string()),
        ("quarantine_reason", pa.string()),
    ]
)


@dataclass(slots=True)
class StagingRow:
    """A staging record as the target's mapping gets it: the record, the local day it is judged
    on, and why extract refused it (None: it is sendable)."""

    record: dict[str, Any]
    judged_on: str | None = None
    quarantine_reason: str | None = None


@dataclass(frozen=True)
class FeedRow:
    product_id: int
    sku: str
    store_view_code: str
    payload: dict[str, Any]
    linked_product_ids: tuple[int, ...] = ()
    quarantine_reason: str | None = None
    judged_on: str | None = None  # the store view's local date at the run's instant

    def staging(self) -> StagingRow:
        return StagingRow(self.payload, self.judged_on, self.quarantine_reason)


@dataclass
class _Variants:
    """A chunk's configurable options, indexed: by configurable, by variant, and the option labels."""

    # parent_id -> attribute_id -> (position, child_id -> store_id -> raw value)
    options: dict[int, dict[int, tuple[int, dict[int, dict[int, Any]]]]]
    # child_id -> attribute_id -> store_id -> raw value
    values: dict[int, dict[int, dict[int, Any]]]
    # (parent_id, attribute_id) -> store_id -> (use_default, label)
    labels: dict[tuple[int, int], dict[int, tuple[int, str | None]]]

    @classmethod
    def of(cls, chunk: ProductChunk) -> _Variants:
        options: dict[int, dict[int, tuple[int, dict[int, dict[int, Any]]]]] = {}
        values: dict[int, dict[int, dict[int, Any]]] = {}
        for parent_id, attribute_id, position, child_id, store_id, value in chunk.variant_values:
            _, children = options.setdefault(int(parent_id), {}).setdefault(int(attribute_id), (int(position), {}))
            children.setdefault(int(child_id), {})[int(store_id)] = value
            values.setdefault(int(child_id), {}).setdefault(int(attribute_id), {})[int(store_id)] = value
        labels: dict[tuple[int, int], dict[int, tuple[int, str | None]]] = {}
        for parent_id, attribute_id, store_id, use_default, label in chunk.option_labels:
            labels.setdefault((int(parent_id), int(attribute_id)), {})[int(store_id)] = (int(use_default or 0), label)
        return cls(options, values, labels)

    def configurable_options(self, eid: int, store_id: int) -> list[dict[str, Any]]:
        """The options of a configurable in a store view: each attribute its variants differ by, the label
        the configurable gives it, and the option ids its variants have (options no variant has are left out)."""
        result = []
        for attribute_id, (position, children) in self.options.get(eid, {}).items():
            resolved = (_option_id(_resolve(by_store, store_id)) for by_store in children.values())
            option_ids = sorted({o for o in resolved if o is not None})
            if option_ids:
                result.append({"attribute_id": attribute_id, "label": self.label(eid, attribute_id, store_id),
                               "option_ids": option_ids, "position": position})
        return sorted(result, key=lambda o: (o["position"], o["attribute_id"]))

    def label(self, eid: int, attribute_id: int, store_id: int) -> str | None:
        """The store view's own label unless it uses the default; else the admin one (None: the attribute's label)."""
        by_store = self.labels.get((eid, attribute_id), {})
        for store in (store_id, ADMIN_STORE_ID):
            use_default, label = by_store.get(store, (1, None))
            if not use_default and label:
                return label
        return None

    def variant_options(self, eid: int, store_id: int) -> list[dict[str, Any]]:
        """A variant's option ids for the attributes of the configurables it is in."""
        found = ((a, _option_id(_resolve(by_store, store_id))) for a, by_store in self.values.get(eid, {}).items())
        return [{"attribute_id": a, "option_id": o} for a, o in sorted(found) if o is not None]


@dataclass
class _Bundles:
    """A chunk's bundle options, indexed: by bundle, the option titles, and the bundles each product is in."""

    options: dict[int, list[tuple]]  # parent_id -> (option_id, required, position, type)
    titles: dict[int, dict[int, str | None]]  # option_id -> store_id -> title
    selections: dict[int, list[dict[str, Any]]]  # option_id -> selections, by position then sku
    parents: dict[int, set[tuple[int, str]]]  # product_id -> {(bundle id, bundle sku)}
    offered: dict[int, set[int]]  # bundle id -> the product ids its options offer

    @classmethod
    def of(cls, chunk: ProductChunk) -> _Bundles:
        options: dict[int, list[tuple]] = {}
        for parent_id, option_id, required, position, kind in chunk.bundle_options:
            options.setdefault(int(parent_id), []).append((int(option_id), bool(required), int(position), kind))
        titles: dict[int, dict[int, str | None]] = {}
        for option_id, store_id, title in chunk.bundle_titles:
            titles.setdefault(int(option_id), {})[int(store_id)] = title
        selections: dict[int, list[dict[str, Any]]] = {}
        parents: dict[int, set[tuple[int, str]]] = {}
        offered: dict[int, set[int]] = {}
        for parent_id, parent_sku, option_id, product_id, sku, position, is_default, qty, can_change in chunk.bundle_selections:
            offered.setdefault(int(parent_id), set()).add(int(product_id))
            selections.setdefault(int(option_id), []).append({
                "can_change_qty": bool(can_change), "is_default": bool(is_default), "position": int(position),
                "qty": _number(qty), "sku": sku})
            parents.setdefault(int(product_id), set()).add((int(parent_id), parent_sku))
        for chosen in selections.values():
            chosen.sort(key=lambda c: (c["position"], c["sku"]))
        return cls(options, titles, selections, parents, offered)

    def bundle_options(self, eid: int, store_id: int) -> list[dict[str, Any]]:
        """A bundle's options in a store view: the title there (else the admin one), the products offered."""
        result = []
        for option_id, required, position, kind in sorted(self.options.get(eid, []), key=lambda o: (o[2], o[0])):
            by_store = self.titles.get(option_id, {})
            result.append({"option_id": option_id, "position": position, "required": required,
                           "selections": self.selections.get(option_id, []),
                           "title": by_store.get(store_id) or by_store.get(ADMIN_STORE_ID), "type": kind})
        return result

    def bundle_skus(self, eid: int) -> list[str]:
        return sorted({sku for _, sku in self.parents.get(eid, ())})

    def related(self, eid: int) -> set[int]:
        """The products a bundle offers, and the bundles a product is in."""
        return self.offered.get(eid, set()) | {pid for pid, _ in self.parents.get(eid, ())}


def _tier_prices(chunk: ProductChunk) -> dict[int, list[dict[str, Any]]]:
    """product id -> its tier prices (magento/tier_prices), by customer group (every group first), qty, website."""
    tiers: dict[int, list[dict[str, Any]]] = {}
    for entity_id, website, group, qty, value, percentage in chunk.tier_prices:
        tiers.setdefault(int(entity_id), []).append({
            "customer_group_id": None if group is None else int(group), "percentage": _number(percentage),
            "qty": _number(qty), "value": None if percentage is not None else _number(value), "website_id": int(website)})
    return {pid: sorted(rows, key=lambda t: (t["customer_group_id"] is not None, t["customer_group_id"] or 0, t["qty"],
                                             t["website_id"]))
            for pid, rows in tiers.items()}


def _product_links(chunk: ProductChunk) -> dict[int, list[dict[str, str]]]:
    """product id -> its links to other products, {sku, type (Magento's code)}, by type then sku."""
    links: dict[int, set[tuple[str, str]]] = {}
    for product_id, link_type, sku in chunk.product_links:
        links.setdefault(int(product_id), set()).add((link_type, sku))
    return {pid: [{"sku": sku, "type": t} for t, sku in sorted(pairs)] for pid, pairs in links.items()}


def _option_id(raw: Any) -> int | None:
    """An option id from a raw int value; None for an empty or malformed value, and for 0 (no option)."""
    text = None if raw is None else str(raw).strip()
    return int(text) or None if text and text.isascii() and text.isdigit() else None


def record_attributes(ctx: CatalogContext) -> list[Attribute]:
    """The attributes a record lists in `attributes`: every custom one, and each system one Magento shows
    on the storefront (is_visible_on_front), unless it is mapped to a named field of the record. System
    select attributes are left out: their labels come from source models (tax classes, countries), not
    from eav_attribute_option, and their ids would be sent as values."""
    return [a for a in ctx.attributes_by_id.values()
            if a.code not in CORE_ATTRIBUTES and a.backend_type != "static"
            and (a.is_user_defined or (a.is_visible_on_front and a.frontend_input not in ("select", "multiselect")))]


def build_feed_rows(chunk: ProductChunk, ctx: CatalogContext, instant: datetime | None = None) -> Iterator[FeedRow]:
    """The records of a chunk; with the run's `instant`, each carries its store view's local date."""
    variants = _Variants.of(chunk)
    links = _product_links(chunk)
    tiers = _tier_prices(chunk)
    bundles = _Bundles.of(chunk)
    attr_ids = {a.code: a.attribute_id for a in ctx.attributes_by_id.values()}
    custom = record_attributes(ctx)
    views_by_website: dict[int, list[StoreView]] = {}
    for view in ctx.store_views:
        views_by_website.setdefault(view.website_id, []).append(view)

    global_prices = {attr_ids[c] for c in PRICE_ATTRIBUTES if c in attr_ids} if not ctx.price_scope else set()

    for entity in chunk.entities:
        eid = int(entity["entity_id"])
        values = chunk.values.get(eid, {})
        for website_id in sorted(chunk.websites.get(eid, ())):
            for view in views_by_website.get(website_id, ()):
                def value(code: str, _values=values, _store=view.store_id) -> Any:
                    attribute_id = attr_ids.get(code, -1)
                    return _resolve(_values.get(attribute_id), _store, attribute_id in global_prices)

                row = _build_row(entity, view, value, chunk, ctx, custom, values, variants, links, bundles, tiers)
                yield replace(row, judged_on=local_date(instant, view.timezone).isoformat()) if instant else row


def _resolve(by_store: dict[int, Any] | None, store_id: int, default_only: bool = False) -> Any:
    """The store view's value if it has a row (even an empty one), else the default (store 0)."""
    if not by_store:
        return None
    if store_id in by_store and not default_only:
        return by_store[store_id]
    return by_store.get(ADMIN_STORE_ID)


def _configurable_price(chunk: ProductChunk, eid: int, store_id: int, default_only: bool) -> float | None:
    """A configurable without a price of its own shows its cheapest variant's price."""
    prices = [_number(_resolve(by_store, store_id, default_only)) for by_store in chunk.child_prices.get(eid, {}).values()]
    prices = [p for p in prices if p is not None]
    return min(prices) if prices else None


def _build_row(entity, view: StoreView, value, chunk: ProductChunk, ctx: CatalogContext, custom, values,
               variants: _Variants, links: dict[int, list[dict[str, str]]], bundles: _Bundles,
               tiers: dict[int, list[dict[str, Any]]]) -> FeedRow:
    eid = int(entity["entity_id"])
    sku = entity["sku"] or ""
    qty, in_stock = chunk.stock.get((eid, view.stock_id), (None, 0))
    gallery_files = {role: value(role) for role in IMAGE_ROLES}
    price = _number(value("price"))
    if price is None and entity["type_id"] == "configurable":
        price = _configurable_price(chunk, eid, view.store_id, not ctx.price_scope)
    payload: dict[str, Any] = {
        "product_id": eid,
        "sku": sku,
        "store_view_code": view.code,
        "store_code": view.group_code,
        "website_code": view.website_code,
        "locale": view.locale,
        "type": entity["type_id"],
        "attribute_set_id": int(entity["attribute_set_id"]),
        "name": _text(value("name")),
        "status": _int(value("status")),
        "visibility": _int(value("visibility")),
        "url_key": _text(value("url_key")),
        "description": _text(value("description")),
        "short_description": _text(value("short_description")),
        "meta_title": _text(value("meta_title")),
        "meta_description": _text(value("meta_description")),
        "meta_keywords": _text(value("meta_keyword")),
        "price": price,
        "product_links": links.get(eid, []),
        "special_price": _number(value("special_price")),
        "special_price_from": _date(value("special_from_date")),
        "special_price_to": _date(value("special_to_date")),
        "currency": view.currency,
        "qty": _number(qty),
        "in_stock": bool(in_stock),
        "category_ids": sorted(chunk.category_ids.get(eid, [])),
        # aligned with category_ids: the product's position in each (catalog_category_product.position)
        "category_positions": [chunk.category_positions.get((eid, c), 0) for c in sorted(chunk.category_ids.get(eid, []))],
        "category_paths": sorted(
            p for p in (ctx.category_path(c, view.store_id) for c in chunk.category_ids.get(eid, [])) if p
        ),
        "configurable_options": variants.configurable_options(eid, view.store_id),
        "images": _images(chunk.gallery.get(eid, []), gallery_files, view.store_id, view.media_url),
        "parent_skus": sorted(chunk.linked_skus[p] for p in chunk.parent_ids.get(eid, []) if p in chunk.linked_skus),
        "variant_options": variants.variant_options(eid, view.store_id),
        "variant_skus": sorted(chunk.linked_skus[c] for c in chunk.child_ids.get(eid, []) if c in chunk.linked_skus),
        "attributes": _custom_attributes(custom, values, view.store_id, ctx),
        "bundle_options": bundles.bundle_options(eid, view.store_id),
        "bundle_skus": bundles.bundle_skus(eid),
        "created_at": _timestamp(entity["created_at"]),
        "updated_at": _timestamp(entity["updated_at"]),
        "weight": _number(value("weight")),
        # of every website (0) and this view's
        "tier_prices": [t for t in tiers.get(eid, []) if t["website_id"] in (0, view.website_id)],
    }
    linked = tuple(sorted({*chunk.parent_ids.get(eid, ()), *chunk.child_ids.get(eid, ()), *bundles.related(eid)}))
    return FeedRow(eid, sku, view.code, payload, linked,
                   _quarantine_reason(payload) or chunk.url_key_clashes.get((eid, view.store_id)))


def _quarantine_reason(payload: dict[str, Any]) -> str | None:
    """Why a record must not be sent (Magento accepted data the target cannot take as it is)."""
    sku = payload["sku"]
    if not sku.strip():
        return "empty sku"
    if len(sku) > SKU_MAX_LENGTH:
        return f"sku longer than {SKU_MAX_LENGTH} characters"
    if not payload["name"]:
        return "no name in this store view (nor at default scope)"
    if payload["price"] is not None and payload["price"] < 0:
        return NEGATIVE_PRICE
    if payload["special_price"] is not None and payload["special_price"] < 0:
        return NEGATIVE_SPECIAL_PRICE
    options_of: dict[str, set[int]] = {}
    for option in payload["bundle_options"]:
        for chosen in option["selections"]:
            options_of.setdefault(chosen["sku"], set()).add(option["option_id"])
    twice = sorted(sku for sku, options in options_of.items() if len(options) > 1)
    if twice:
        return BUNDLE_DUPLICATE_SKU + twice[0]
    return None


def _images(gallery: list[dict[str, Any]], role_files: dict[str, Any], store_id: int, media_url: str) -> list[dict[str, Any]]:
    images = []
    for image in gallery:
        if image["file"] is None:
            continue
        disabled = image["disabled_by_store"].get(store_id, image["disabled_by_store"].get(ADMIN_STORE_ID, image["disabled"]))
        if disabled:
            continue
        label = image["labels"].get(store_id) or image["labels"].get(ADMIN_STORE_ID)
        position = image["positions"].get(store_id)
        if position is None:
            position = image["positions"].get(ADMIN_STORE_ID)
        images.append(
            {
                "url": f"{media_url}catalog/product{image['file']}",
                "label": label,
                "roles": sorted(role for role, file in role_files.items() if file and file == image["file"]),
                "position": position if position is not None else 0,
            }
        )
    images.sort(key=lambda i: (i["position"], i["url"] or ""))
    return images


def _custom_attributes(custom, values, store_id: int, ctx: CatalogContext) -> list[dict[str, Any]]:
    result = []
    for attribute in sorted(custom, key=lambda a: a.code):
        by_store = values.get(attribute.attribute_id)
        if not by_store:
            continue
        raw = by_store[store_id] if store_id in by_store else by_store.get(ADMIN_STORE_ID)
        if raw is None or raw == "":
            continue
        if attribute.frontend_input in ("select", "multiselect"):
            option_ids = [int(o) for o in str(raw).split(",") if o.strip().isdigit()]
            labels = [ctx.option_label(o, store_id) or str(o) for o in option_ids]
            vals = sorted(labels) if attribute.frontend_input == "multiselect" else labels
            if not vals:
                continue
        else:
            vals = [_attribute_text(raw, attribute.backend_type)]
        result.append({"code": attribute.code, "label": attribute.label, "values": vals})
    return result


def _text(raw: Any) -> str | None:
    return None if raw is None else str(raw)


def _int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def _number(raw: Any) -> float | None:
    if raw is None:
        return None
    return float(round(Decimal(str(raw)), 6))


def _attribute_text(raw: Any, backend_type: str) -> str:
    """Custom attribute values are strings; numbers and dates in one canonical form."""
    if backend_type == "decimal":
        return str(float(raw))
    if backend_type == "int":
        return str(int(raw))
    if backend_type == "datetime":
        return raw.strftime("%Y-%m-%d %H:%M:%S") if isinstance(raw, datetime) else str(raw)[:19]
    return str(raw)


def _date(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw)
    if text.startswith("0000-00-00"):
        return None
    return text[:10]


def _timestamp(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.strftime("%Y-%m-%dT%H:%M:%S")
    return str(raw).replace(" ", "T")[:19]


def rows_to_arrow(rows: list[FeedRow]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in EXTRACT_SCHEMA.names}
    for row in rows:
        p = row.payload
        columns["product_id"].append(row.product_id)
        columns["sku"].append(row.sku)
        columns["store_view_code"].append(row.store_view_code)
        columns["content_hash"].append(content_hash(p))
        columns["payload"].append(canonical_json(p).decode())
        columns["name"].append(p["name"])
        columns["type"].append(p["type"])
        columns["price"].append(p["price"])
        columns["visibility"].append(p["visibility"])
        columns["source_updated_at"].append(p["updated_at"])
        columns["linked_product_ids"].append(list(row.linked_product_ids))
        columns["judged_on"].append(row.judged_on)
        columns["quarantine_reason"].append(row.quarantine_reason)
    return pa.table(columns, schema=EXTRACT_SCHEMA)
