"""Store views that share a locale: the base view's product, and a product layer for each other view.

The ingestion API keeps one product per sku and locale. When several exported views share a locale,
the locale's base view (ViewSelection.ranked) gives the product, and each other view becomes a layer
(FeedProductLayer, `source.layer` = the view's code) that carries only what differs from the base:

* replaced whole: name, description, shortDescription (null clears them), metaTags;
* merged, first level (the contract merges these arrays with the base's): attributes, images, links and
  externalIds. The layer holds the entries that are new or differ, matched by their identity below;
  an entry of the base that the view does not have cannot be taken away by a layer.

A layer has no slug, status, visibleIn, routes, configurations or bundles: where the view differs in
one of those, or lacks a merged entry or the metaTags the base has, the difference is a gap,
reported per run with the product and the field (steps/report.py), and the view's shoppers see the base's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REPLACED = ("name", "description", "shortDescription", "metaTags")
NULLABLE = ("description", "shortDescription")  # FeedProductLayer lets these be null: the layer clears them
# Merged arrays, and what identifies an entry in them (the fields of an entry that make it the same one).
MERGED: dict[str, tuple[str, ...]] = {
    "attributes": ("code",),
    "images": ("url",),
    "links": ("sku", "type"),
    "externalIds": ("origin", "id"),
}
NOT_CARRIED = ("slug", "status", "visibleIn", "routes", "configurations", "bundles")


@dataclass(frozen=True)
class LayerGap:
    """A field where a layer's store view differs from its base view and the layer cannot say so."""

    sku: str
    store_view_code: str  # the layer's view
    base_view_code: str
    field: str  # e.g. "visibleIn", or "attributes color" for a merged entry the view does not have

    def as_dict(self) -> dict[str, str]:
        return {"sku": self.sku, "store_view_code": self.store_view_code, "base_view_code": self.base_view_code,
                "field": self.field}


def layer_key(sku: str, api_locale: str, layer: str) -> dict[str, Any]:
    """FeedProductLayerDelete: the product's sku and the layer's source."""
    return {"sku": sku, "source": {"locale": api_locale, "layer": layer}}


def product_layer(base: dict[str, Any], view: dict[str, Any], layer: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The layer that makes `base` (a FeedProduct) read as `view` (the same product in the layer's view),
    None when nothing it can carry differs; and the fields it cannot carry that differ (gaps)."""
    body: dict[str, Any] = {}
    gaps = [f for f in NOT_CARRIED if base.get(f) != view.get(f)]
    for field in REPLACED:
        if base.get(field) == view.get(field):
            continue
        if field in view:
            body[field] = view[field]
        elif field in NULLABLE:
            body[field] = None
        else:
            gaps.append(field)
    for field, identity in MERGED.items():
        held = {_identity(e, identity): e for e in base.get(field) or []}
        wanted = {_identity(e, identity): e for e in view.get(field) or []}
        changed = [e for ident, e in wanted.items() if held.get(ident) != e]
        if changed:
            body[field] = changed
        gaps += [f"{field} {' '.join(ident)}" for ident in held if ident not in wanted]
    if not body:
        return None, gaps
    return {"sku": view["sku"], "source": {**view["source"], "layer": layer}, **body}, gaps


def _identity(entry: dict[str, Any], fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(entry.get(f)) for f in fields)

