"""The state the reference receiver accepted, in SQLite.

One table per entity kind, keyed like the real service keys them:

    products        (sku, locale)            FeedProduct
    metadata        (code, locale)           FeedMetadata
    price_books     (price_book_id)          FeedPricebook
    prices          (sku, price_book_id)     FeedPrices
    categories      (slug, locale)           FeedCategory
    product_layers  (sku, locale, layer)     FeedProductLayer  (locale "" when omitted)

`body` holds the full accepted JSON item. A create replaces the whole row, an update (PATCH, categories)
merges into a held row and does nothing to a missing one, a delete removes it (deleting a missing row is
fine: deletes are idempotent).
As the contract says: deleting a price book deletes its child price books and every
price of them, and a price that references a price book that does not exist is ignored
(accepted, not stored). One connection guarded by a lock: safe to share between threads.

Categories, as the contract says: deleting a category deletes its children (every category of that locale
whose slug extends its slug with '/'), and re-creating a deleted category within a week
(RESTORE_WINDOW_S) restores what its delete took. The store keeps, per delete, a tombstone of the
branch it removed (`category_tombstones`: the top-most slug deleted, each removed row's body, when);
a create of that top-most slug within the window stores the body sent for it and brings back the
rest of the branch as it was at the delete (a row created since is kept), then forgets the tombstone.
A category deleted by its own request before its parent's is its own tombstone, so re-creating the
parent does not bring it back. "When" is the engine's operational clock (catalog_sync.clock, which
tests drive with a FakeClock), never the wall clock directly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import orjson

from catalog_sync import clock

RESTORE_WINDOW_S = 7 * 24 * 3600  # the contract: "up to one week to restore deleted categories"


def _locale(item: dict[str, Any]) -> str:
    source = item.get("source")
    locale = source.get("locale") if isinstance(source, dict) else None
    return "" if locale is None else str(locale)


def _layer(item: dict[str, Any]) -> str:
    source = item.get("source")
    layer = source.get("layer") if isinstance(source, dict) else None
    return "" if layer is None else str(layer)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def merge_patch(held: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`held` updated by `patch`: objects merged field by field, a null removing the field; anything else
    (a scalar, an array) replaced."""
    merged = dict(held)
    for field, value in patch.items():
        if value is None:
            merged.pop(field, None)
        elif isinstance(value, dict) and isinstance(merged.get(field), dict):
            merged[field] = merge_patch(merged[field], value)
        else:
            merged[field] = value
    return merged


@dataclass(frozen=True)
class Kind:
    table: str
    columns: tuple[str, ...]
    key: Callable[[dict[str, Any]], tuple[str, ...]]


KINDS: dict[str, Kind] = {
    "products": Kind("products", ("sku", "locale"), lambda i: (_text(i.get("sku")), _locale(i))),
    "metadata": Kind("metadata", ("code", "locale"), lambda i: (_text(i.get("code")), _locale(i))),
    "price_books": Kind("price_books", ("price_book_id",), lambda i: (_text(i.get("priceBookId")),)),
    "prices": Kind("prices", ("sku", "price_book_id"), lambda i: (_text(i.get("sku")), _text(i.get("priceBookId")))),
    "categories": Kind("categories", ("slug", "locale"), lambda i: (_text(i.get("slug")), _locale(i))),
    "product_layers": Kind(
        "product_layers", ("sku", "locale", "layer"), lambda i: (_text(i.get("sku")), _locale(i), _layer(i))
    ),
}


class ReceiverStore:
    """Accepted catalog state. `db_path` ":memory:" (default) keeps it in memory."""

    def __init__(self, db_path: str = ":memory:"):
        self.db_path = db_path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        if db_path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            # A test double's state: surviving a crash of the process is enough, not a power cut.
            self._conn.execute("PRAGMA synchronous=OFF")
        with self._lock:
            for kind in KINDS.values():
                cols = ", ".join(f"{c} TEXT NOT NULL" for c in kind.columns)
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind.table} ({cols}, body TEXT NOT NULL, "
                    f"accepted_at REAL NOT NULL, PRIMARY KEY ({', '.join(kind.columns)}))"
                )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS category_tombstones (top TEXT NOT NULL, locale TEXT NOT NULL, slug TEXT NOT NULL, "
                "body TEXT NOT NULL, deleted_at REAL NOT NULL, PRIMARY KEY (top, locale, slug))")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def upsert(self, kind_name: str, items: Iterable[dict[str, Any]]) -> int:
        """Create or replace items (one transaction). Returns how many were written."""
        kind = KINDS[kind_name]
        now = time.time()
        # The item as received (key order kept: readers decode it); orjson writes it again faster than sorted.
        rows = [(*kind.key(item), orjson.dumps(item).decode(), now) for item in items]
        marks = ", ".join("?" for _ in range(len(kind.columns) + 2))
        with self._lock:
            if kind_name == "prices":  # prices of a price book that does not exist are ignored
                books = {r[0] for r in self._conn.execute("SELECT price_book_id FROM price_books")}
                rows = [row for row in rows if row[1] in books]
            self._conn.execute("BEGIN")
            try:
                if kind_name == "categories":
                    self._restore_categories([(row[0], row[1]) for row in rows], now)
                self._conn.executemany(
                    f"INSERT OR REPLACE INTO {kind.table} ({', '.join(kind.columns)}, body, accepted_at) VALUES ({marks})",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(rows)

    def update(self, kind_name: str, items: Iterable[dict[str, Any]]) -> int:
        """Apply updates (PATCH) to held items, one transaction: the contract's merge strategy for scalar and
        object fields (a null removes the field, as in a JSON merge patch) and its replace strategy for arrays.
        An update of an item not held has no effect, as the contract says. Returns how many were changed."""
        kind = KINDS[kind_name]
        where = " AND ".join(f"{c} = ?" for c in kind.columns)
        changed, now = 0, time.time()
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for item in items:
                    key = kind.key(item)
                    row = self._conn.execute(f"SELECT body FROM {kind.table} WHERE {where}", key).fetchone()
                    if row is None:
                        continue
                    body = orjson.dumps(merge_patch(orjson.loads(row[0]), item)).decode()
                    self._conn.execute(f"UPDATE {kind.table} SET body = ?, accepted_at = ? WHERE {where}", (body, now, *key))
                    changed += 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return changed

    def delete(self, kind_name: str, items: Iterable[dict[str, Any]]) -> int:
        """Delete items by key (one transaction). Returns how many rows existed and were removed."""
        kind = KINDS[kind_name]
        keys = [kind.key(item) for item in items]
        where = " AND ".join(f"{c} = ?" for c in kind.columns)
        removed = 0
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for key in keys if kind_name != "categories" else ():  # categories: _cascade_categories
                    removed += self._conn.execute(f"DELETE FROM {kind.table} WHERE {where}", key).rowcount
                if kind_name == "price_books":
                    self._cascade_price_books([key[0] for key in keys])
                if kind_name == "categories":
                    removed += self._cascade_categories(keys)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return removed

    def _cascade_price_books(self, deleted: list[str]) -> None:
        """The deleted books' child books, all the way down, and every price of any of them."""
        gone, todo = set(deleted), list(deleted)
        while todo:
            parent = todo.pop()
            for (child, body) in self._conn.execute("SELECT price_book_id, body FROM price_books").fetchall():
                if child not in gone and json.loads(body).get("parentId") == parent:
                    gone.add(child)
                    todo.append(child)
        for book in gone:
            self._conn.execute("DELETE FROM price_books WHERE price_book_id = ?", (book,))
            self._conn.execute("DELETE FROM prices WHERE price_book_id = ?", (book,))

    @staticmethod
    def _now() -> float:
        return clock.now().timestamp()

    def _cascade_categories(self, keys: list[tuple[str, ...]]) -> int:
        """Delete each category with its branch, keeping a tombstone of what each delete took."""
        removed, now = 0, self._now()
        for slug, locale in keys:
            branch = self._conn.execute(
                "SELECT slug, body FROM categories WHERE locale = ? AND (slug = ? OR substr(slug, 1, ?) = ?)",
                (locale, slug, len(slug) + 1, slug + "/")).fetchall()
            if not branch:
                continue
            self._conn.execute("DELETE FROM category_tombstones WHERE top = ? AND locale = ?", (slug, locale))
            self._conn.executemany(
                "INSERT OR REPLACE INTO category_tombstones (top, locale, slug, body, deleted_at) VALUES (?, ?, ?, ?, ?)",
                [(slug, locale, child, body, now) for child, body in branch])
            self._conn.executemany("DELETE FROM categories WHERE slug = ? AND locale = ?",
                                   [(child, locale) for child, _ in branch])
            removed += len(branch)
        return removed

    def _restore_categories(self, keys: list[tuple[str, str]], accepted_at: float) -> None:
        """A create of a category deleted within the window brings back the rest of its branch as deleted."""
        now = self._now()
        self._conn.execute("DELETE FROM category_tombstones WHERE deleted_at < ?", (now - RESTORE_WINDOW_S,))
        for slug, locale in keys:
            kept = self._conn.execute("SELECT slug, body FROM category_tombstones WHERE top = ? AND locale = ? AND slug <> ?",
                                      (slug, locale, slug)).fetchall()
            self._conn.executemany(
                "INSERT OR IGNORE INTO categories (slug, locale, body, accepted_at) VALUES (?, ?, ?, ?)",
                [(child, locale, body, accepted_at) for child, body in kept])
            self._conn.execute("DELETE FROM category_tombstones WHERE top = ? AND locale = ?", (slug, locale))

    def tombstones(self) -> dict[str, list[str]]:
        """Deleted category branches still restorable: 'top|locale' -> the slugs its delete took."""
        with self._lock:
            rows = self._conn.execute("SELECT top, locale, slug FROM category_tombstones ORDER BY top, locale, slug").fetchall()
        found: dict[str, list[str]] = {}
        for top, locale, slug in rows:
            found.setdefault(f"{top}|{locale}", []).append(slug)
        return found

    def bodies(self, kind_name: str) -> dict[str, str]:
        """Every accepted item of a kind as the JSON text stored, keyed like `all`."""
        kind = KINDS[kind_name]
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(kind.columns)}, body FROM {kind.table} ORDER BY {', '.join(kind.columns)}"
            ).fetchall()
        return {"|".join(row[:-1]): row[-1] for row in rows}

    def all(self, kind_name: str) -> dict[str, Any]:
        """Every accepted item of a kind, keyed by its key columns joined with "|" (e.g. "sku|locale")."""
        kind = KINDS[kind_name]
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(kind.columns)}, body FROM {kind.table} ORDER BY {', '.join(kind.columns)}"
            ).fetchall()
        return {"|".join(row[:-1]): json.loads(row[-1]) for row in rows}

    def get(self, kind_name: str, *key: str) -> Any | None:
        kind = KINDS[kind_name]
        where = " AND ".join(f"{c} = ?" for c in kind.columns)
        with self._lock:
            row = self._conn.execute(f"SELECT body FROM {kind.table} WHERE {where}", key).fetchone()
        return None if row is None else json.loads(row[0])

    def product_locales(self, sku: str) -> dict[str, Any]:
        """All accepted locales of one SKU: {locale: product}."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT locale, body FROM products WHERE sku = ? ORDER BY locale", (sku,)
            ).fetchall()
        return {locale: json.loads(body) for locale, body in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                name: self._conn.execute(f"SELECT COUNT(*) FROM {kind.table}").fetchone()[0]
                for name, kind in KINDS.items()
            }

    def reset(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            for kind in KINDS.values():
                self._conn.execute(f"DELETE FROM {kind.table}")
            self._conn.execute("DELETE FROM category_tombstones")
            self._conn.execute("COMMIT")
