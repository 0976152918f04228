"""Magento's categories as each store view shows them: the tree the categories feed sends and product routes use.

A store view exports the categories of its own store's root tree (`store_group.root_category_id`: those whose
`path` starts with `1/<root>/`; the root itself is not a storefront category), and only active ones: the
category's `is_active` (store view value over the default) and every ancestor's below the root, since a child
of an inactive category is not reachable in the storefront and its slug would hang off a slug never created.

A category's slug is its url_key and its ancestors' below the root, joined with '/' (what Magento keeps,
regenerated, in `url_path`): built from the path rather than read from `url_path`, so a child's slug always
extends its parent's (the contract's hierarchy is the slug), also when a move was made without Magento
regenerating `url_path`. Without a url_key, a part is the slug of the category's name in the view.

Everything here is a SELECT.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog_sync.magento import schema as m
from catalog_sync.magento.id_lists import slices

# The category attributes the feed reads besides `name`, by the value table that holds them.
VALUE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "int": ("is_active",),
    "varchar": ("url_key", "url_path", "meta_title", "image"),
    "text": ("description", "meta_keywords", "meta_description"),
}
TREE_ROOT_ID = 1  # Magento's "Root Catalog": every store's root category is one of its children
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by '-', as Magento builds url keys from names (products use it too)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_SLUG.sub("-", ascii_text.lower()).strip("-")


@dataclass(frozen=True)
class ViewCategory:
    """One category as one store view exports it."""

    category_id: int
    slug: str
    name: str
    level: int  # Magento's level: 2 for a child of the store's root
    position: int
    description: str | None = None
    meta_title: str | None = None
    meta_keywords: str | None = None
    meta_description: str | None = None
    image: str | None = None


def _value_table(backend: str) -> sa.Table:
    return {"int": m.catalog_category_entity_int, "varchar": m.catalog_category_entity_varchar,
            "text": m.catalog_category_entity_text}[backend]


def read_categories(conn: sa.Connection) -> tuple[dict[int, Any], dict[tuple[int, int], str]]:
    """Every category (catalog_reader.Category, with the values the feed needs and the store views it is the
    root of) and every name by (category_id, store_id)."""
    from catalog_sync.magento.catalog_reader import Category

    c, a, t = m.catalog_category_entity.c, m.eav_attribute.c, m.eav_entity_type.c
    attribute_ids = {r.attribute_code: int(r.attribute_id) for r in conn.execute(
        sa.select(a.attribute_id, a.attribute_code)
        .join_from(m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id)
        .where(t.entity_type_code == m.CATEGORY_ENTITY_TYPE_CODE))}
    present = m.present_tables(conn)
    values: dict[int, list[tuple[str, int, Any]]] = {}
    names: dict[tuple[int, int], str] = {}
    name_id = attribute_ids.get("name")
    if name_id is not None:
        v = m.catalog_category_entity_varchar.c
        for r in conn.execute(sa.select(v.entity_id, v.store_id, v.value).where(v.attribute_id == name_id)):
            names[(int(r.entity_id), int(r.store_id))] = r.value
    for backend, codes in VALUE_ATTRIBUTES.items():
        table = _value_table(backend)
        ids = {attribute_ids[code]: code for code in codes if code in attribute_ids}
        if not ids or table.name not in present:
            continue
        v = table.c
        for r in conn.execute(sa.select(v.entity_id, v.attribute_id, v.store_id, v.value).where(v.attribute_id.in_(sorted(ids)))):
            values.setdefault(int(r.entity_id), []).append((ids[int(r.attribute_id)], int(r.store_id), r.value))
    # Without an is_active attribute (a shop, or the demo, that keeps none) every category counts as active.
    if "is_active" not in attribute_ids or m.catalog_category_entity_int.name not in present:
        for cid in {int(i) for i in conn.execute(sa.select(c.entity_id)).scalars()}:
            values.setdefault(cid, []).append(("is_active", m.ADMIN_STORE_ID, 1))
    s, g = m.store.c, m.store_group.c
    roots: dict[int, list[int]] = {}
    for r in conn.execute(sa.select(g.root_category_id, s.store_id).join_from(m.store, m.store_group, s.group_id == g.group_id)
                          .where(s.store_id != m.ADMIN_STORE_ID).order_by(s.store_id)):
        roots.setdefault(int(r.root_category_id), []).append(int(r.store_id))
    categories = {
        int(r.entity_id): Category(
            int(r.entity_id), tuple(int(p) for p in r.path.split("/") if p), int(r.level), parent_id=int(r.parent_id or 0),
            position=int(r.position or 0), values=tuple(sorted(values.get(int(r.entity_id), []), key=_value_order)),
            root_of=tuple(roots.get(int(r.entity_id), ())))
        for r in conn.execute(sa.select(c.entity_id, c.parent_id, c.path, c.position, c.level))
    }
    return categories, names


def _value_order(value: tuple[str, int, Any]) -> tuple[str, int, str]:
    return value[0], value[1], "" if value[2] is None else str(value[2])


def view_categories(categories: dict[int, Any], names: dict[tuple[int, int], str], store_id: int) -> dict[int, ViewCategory]:
    """The categories store view `store_id` exports, by id, parents before children."""
    root = next((cid for cid, cat in categories.items() if store_id in cat.root_of), None)
    if root is None or root not in categories:
        return {}

    def name(cid: int) -> str | None:
        return names.get((cid, store_id)) or names.get((cid, m.ADMIN_STORE_ID))

    def active(cid: int) -> bool:
        value = categories[cid].value("is_active", store_id)
        return value is not None and str(value).strip() not in ("", "0")

    def part(cid: int) -> str:
        cat = categories[cid]
        return slugify(str(cat.value("url_key", store_id) or "")) or slugify(name(cid) or "") or str(cid)

    prefix = (TREE_ROOT_ID, root)
    found: dict[int, ViewCategory] = {}
    for cat in sorted(categories.values(), key=lambda x: (len(x.path_ids), x.path_ids)):
        below = cat.path_ids[2:]
        if cat.path_ids[:2] != prefix or not below or any(p not in categories or not active(p) for p in below):
            continue
        text = lambda code: _text(cat.value(code, store_id))  # noqa: E731
        found[cat.category_id] = ViewCategory(
            cat.category_id, "/".join(part(p) for p in below), name(cat.category_id) or part(cat.category_id),
            cat.level, cat.position, description=text("description"), meta_title=text("meta_title"),
            meta_keywords=text("meta_keywords"), meta_description=text("meta_description"), image=text("image"))
    return found


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)


def category_products(engine: Engine, category_ids: Iterable[int]) -> set[int]:
    """The products assigned to any of these categories (catalog_category_product)."""
    cp = m.catalog_category_product.c
    found: set[int] = set()
    with engine.connect() as conn:
        for part in slices(sorted(set(category_ids))):
            found.update(int(i) for i in conn.execute(
                sa.select(cp.product_id).distinct().where(cp.category_id.in_(part))).scalars())
    return found
