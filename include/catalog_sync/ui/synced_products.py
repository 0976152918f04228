"""What the page shows about synced items: read-only queries on the current snapshot.

The snapshot keeps one Parquet file per feed, each row an item with the exact body sent.
For the page, the primary feed's listed columns (not the bodies) are loaded once per
snapshot version into an in-memory DuckDB table with an index on sku, so an exact-SKU lookup
is an index probe and a name search one scan of a narrow column; a new manifest version
replaces the table. Bodies are read from the Parquet files on demand, one SKU at a time, by
file and row number (a feed is a base file and delta files, written in small row groups, so
that reads one row group of each file that holds the SKU).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import FeedFiles, Manifest, SnapshotStore
from catalog_sync.targets.base import FeedScope, FeedSpec
from catalog_sync.ui.paging import PAGE_SIZE, Page, offset_in

SORTS = {"exported_desc": "exported_at DESC, sku, store_view_code", "exported_asc": "exported_at ASC, sku, store_view_code"}
LIST_COLUMNS = ("product_id", "sku", "store_view_code", "name", "type", "price", "visibility", "exported_at",
                "source_updated_at", "run_id")

# Magento's labels for catalog_product_entity_int visibility.
VISIBILITY_LABELS = {1: "Not Visible Individually", 2: "Catalog", 3: "Search", 4: "Catalog, Search"}


# How the page names a pending item's status. A rejected item is held: no run sends it again
# until its body changes or a resync forces it, so the page says so in words.
PENDING_LABELS = {"rejected": "held: rejected by the target", "retryable": "retryable: sent again by the next run",
                  "unconfirmed": "unconfirmed: the target did not answer; sent again after the late-write window"}
SYNC_STATE_LABELS = {"rejected": PENDING_LABELS["rejected"]}


@dataclass(frozen=True)
class PendingItem:
    feed: str
    key: str
    sku: str | None
    store_view_code: str | None
    op: str
    status: str  # retryable | rejected (held) | any newer status, shown by name
    reason: str | None
    run_id: str | None

    @property
    def label(self) -> str:
        return PENDING_LABELS.get(self.status, self.status)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "label": self.label}


@dataclass(frozen=True)
class SentItem:
    """One item as the target accepted it: the exact JSON text of its body."""

    feed: str
    key: str
    store_view_code: str | None
    body: str | None  # None: sent by an earlier release, whose body was not kept
    exported_at: str | None
    run_id: str | None


class SyncedProducts:
    """Queries on one state folder's snapshot; thread-safe (one DuckDB connection, cursors per call).
    `feeds` are the target's: the primary one is listed, the product feeds are shown per SKU."""

    def __init__(self, state_url: str, feeds: tuple[FeedSpec, ...], storage_options: dict | None = None):
        self.store = SnapshotStore(open_state(state_url, storage_options))
        self.primary = next(f.name for f in feeds if f.primary)
        self.product_feeds = [f.name for f in feeds if f.scope is FeedScope.PRODUCT]
        self._con = duckdb_session.connect()
        self._lock = threading.Lock()
        self._loaded: tuple[int, FeedFiles] | None = None  # (version, the primary feed's files) in the table
        self._manifest = Manifest()

    def close(self) -> None:
        self._con.close()

    # ---- loading -------------------------------------------------------------------

    def manifest(self) -> Manifest:
        """The current manifest; reloads the table when the snapshot has moved on."""
        manifest = self.store.read_manifest()
        key = (manifest.version, manifest.files(self.primary))
        with self._lock:
            if key != self._loaded:
                self._load(manifest)
                self._loaded, self._manifest = key, manifest
        return manifest

    def _load(self, manifest: Manifest) -> None:
        cols = ", ".join(LIST_COLUMNS)
        con = self._con
        con.execute("DROP TABLE IF EXISTS items")
        con.execute("DROP TABLE IF EXISTS pending")
        primary = self.store.feed_relation(manifest.files(self.primary), positions=True)
        if primary:
            con.execute(f"CREATE TABLE items AS SELECT {cols}, lower(name) AS name_lc, part, part_row FROM {primary}")
        else:
            con.execute(
                "CREATE TABLE items (product_id BIGINT, sku VARCHAR, store_view_code VARCHAR, name VARCHAR, type VARCHAR, "
                "price DOUBLE, visibility INTEGER, exported_at VARCHAR, source_updated_at VARCHAR, run_id VARCHAR, "
                "name_lc VARCHAR, part INTEGER, part_row BIGINT)"
            )
        con.execute("CREATE INDEX items_sku ON items (sku)")
        con.execute("CREATE TABLE pending (feed VARCHAR, key VARCHAR, sku VARCHAR, store_view_code VARCHAR, op VARCHAR, "
                    "status VARCHAR, reason VARCHAR, run_id VARCHAR)")
        for feed, files in sorted(manifest.feeds.items()):
            if files.pending:
                path = duckdb_session.sql_literal(self.store.file_url(files.pending))
                con.execute(f"INSERT INTO pending SELECT {duckdb_session.sql_literal(feed)}, key, sku, store_view_code, op, "
                            f"status, reason, run_id FROM read_parquet({path})")

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self._con.cursor()
        try:
            result = cur.execute(sql, params)
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
        finally:
            cur.close()

    # ---- queries -------------------------------------------------------------------

    def count(self) -> int:
        self.manifest()
        return self._rows("SELECT count(*) AS n FROM items", [])[0]["n"]

    def store_views(self) -> list[str]:
        self.manifest()
        return [r["v"] for r in self._rows("SELECT DISTINCT store_view_code AS v FROM items ORDER BY 1", [])]

    def search(self, q: str = "", store_view: str | None = None, sort: str = "exported_desc", page: int = 1,
               page_size: int = PAGE_SIZE) -> Page:
        """Items whose SKU or id equals `q`, or whose name or SKU contains it (case-insensitive)."""
        self.manifest()
        where, params = self._filters(q, store_view)
        total = self._rows(f"SELECT count(*) AS n FROM items WHERE {where}", params)[0]["n"]
        page = max(1, page)
        offset = offset_in(total, page, page_size)
        rows = [] if offset is None else self._rows(
            f"SELECT {', '.join(LIST_COLUMNS)} FROM items WHERE {where} ORDER BY {SORTS.get(sort, SORTS['exported_desc'])} "
            "LIMIT ? OFFSET ?",
            [*params, page_size, offset],
        )
        for row in rows:
            row["visibility_label"] = VISIBILITY_LABELS.get(row["visibility"], str(row["visibility"]))
        return Page(rows, total, page, page_size)

    @staticmethod
    def _filters(q: str, store_view: str | None) -> tuple[str, list[Any]]:
        clauses, params = ["true"], []
        q = (q or "").strip()
        if q:
            exact = ["sku = ?"]
            params.append(q)
            if q.isdigit():
                exact.append("product_id = ?")
                params.append(int(q))
            clauses.append(f"({' OR '.join(exact)} OR contains(name_lc, ?) OR contains(lower(sku), ?))")
            params += [q.lower(), q.lower()]
        if store_view:
            clauses.append("store_view_code = ?")
            params.append(store_view)
        return " AND ".join(clauses), params

    def find_sku(self, sku: str) -> list[dict[str, Any]]:
        """The listed columns of a SKU's items (an index lookup)."""
        self.manifest()
        return self._rows(f"SELECT {', '.join(LIST_COLUMNS)} FROM items WHERE sku = ? ORDER BY store_view_code", [sku])

    def sent(self, sku: str) -> list[SentItem]:
        """Every item of the product feeds the target accepted for this SKU, with the exact body text."""
        manifest = self.manifest()
        found: list[SentItem] = []
        for feed in self.product_feeds:
            files = manifest.files(feed)
            if feed == self.primary:
                rows = self._sent_by_position(files, sku)
            else:
                merged = self.store.feed_relation(files)
                rows = [] if merged is None else self._rows(
                    f"SELECT key, store_view_code, body, exported_at, run_id FROM {merged} WHERE sku = ?", [sku])
            found += [SentItem(feed, r["key"], r["store_view_code"], r["body"], r["exported_at"], r["run_id"])
                      for r in sorted(rows, key=lambda r: r["key"])]
        return found

    def _sent_by_position(self, files: FeedFiles, sku: str) -> list[dict[str, Any]]:
        """A SKU's rows of the primary feed, read by the file and row numbers the table holds (an index
        probe), so DuckDB reads only the row groups that hold them."""
        where: dict[int, list[int]] = {}
        for r in self._rows("SELECT part, part_row FROM items WHERE sku = ?", [sku]):
            where.setdefault(r["part"], []).append(r["part_row"])
        parts = [files.file, *(d.file for d in files.deltas)]
        rows: list[dict[str, Any]] = []
        for part, numbers in sorted(where.items()):
            path = duckdb_session.sql_literal(self.store.file_url(parts[part]))
            rows += self._rows(f"SELECT key, store_view_code, body, exported_at, run_id FROM read_parquet({path}, "
                               "file_row_number = true) WHERE file_row_number IN (SELECT unnest(?)) AND sku = ?",
                               [numbers, sku])
        return rows

    def feeds(self) -> list[dict[str, Any]]:
        """Every feed of the snapshot and how many items the target holds in it."""
        manifest = self.manifest()
        return [{"name": name, "items": files.items, "pending": files.pending_items}
                for name, files in sorted(manifest.feeds.items())]

    def feed_page(self, feed: str, page: int = 1, page_size: int = PAGE_SIZE) -> Page:
        """One page of a feed's items, by key: the key, the exact body text, when and by which run."""
        manifest = self.manifest()
        if feed not in manifest.feeds:
            raise KeyError(feed)
        page = max(1, page)
        merged = self.store.feed_relation(manifest.files(feed))
        if not merged:
            return Page([], 0, page, page_size)
        total = self._rows(f"SELECT count(*) AS n FROM {merged}", [])[0]["n"]
        offset = offset_in(total, page, page_size)
        rows = [] if offset is None else self._rows(
            f"SELECT key, body, exported_at, run_id FROM {merged} ORDER BY key LIMIT ? OFFSET ?", [page_size, offset])
        return Page(rows, total, page, page_size)

    def pending(self, limit: int = 500, sku: str | None = None, offset: int = 0) -> list[PendingItem]:
        """Items not in sync: retryable (sent again next run) and rejected (held: sent again when they
        change, or by a resync)."""
        self.manifest()
        where, params = ("sku = ?", [sku]) if sku else ("true", [])
        rows = self._rows(
            f"SELECT feed, key, sku, store_view_code, op, status, reason, run_id FROM pending WHERE {where} "
            "ORDER BY status, sku, store_view_code, feed, key LIMIT ? OFFSET ?", [*params, limit, offset])
        return [PendingItem(**r) for r in rows]

    def pending_page(self, page: int = 1, page_size: int = PAGE_SIZE) -> Page:
        """One page of every feed's pending items (rows: PendingItem), held ones first."""
        total = sum(self.pending_counts().values())
        page = max(1, page)
        offset = offset_in(total, page, page_size)
        return Page([] if offset is None else self.pending(page_size, offset=offset), total, page, page_size)

    def pending_counts(self) -> dict[str, int]:
        self.manifest()
        return {r["status"]: r["n"] for r in self._rows("SELECT status, count(*) AS n FROM pending GROUP BY 1", [])}

    def sync_states(self, skus: list[str]) -> dict[str, str]:
        """sku -> in sync | pending | rejected | never synced (the worst state over its store views)."""
        self.manifest()
        if not skus:
            return {}
        synced = {r["sku"] for r in self._rows("SELECT DISTINCT sku FROM items WHERE sku IN (SELECT unnest(?))", [skus])}
        pending = {r["sku"]: r["rejected"] for r in self._rows(
            "SELECT sku, bool_or(status = 'rejected') AS rejected FROM pending WHERE sku IN (SELECT unnest(?)) GROUP BY 1",
            [skus])}
        states = {}
        for sku in skus:
            if pending.get(sku):
                states[sku] = "rejected"
            elif sku in pending:
                states[sku] = "pending"
            else:
                states[sku] = "in sync" if sku in synced else "never synced"
        return states

