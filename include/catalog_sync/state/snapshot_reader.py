"""Read-only questions about the current snapshot (CLI `show`, tests, scripts)."""

from __future__ import annotations

from typing import Any

import orjson

from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import SnapshotStore


def find_exported(state_url: str, sku: str, store_view: str | None = None,
                  storage_options: dict | None = None) -> list[dict[str, Any]]:
    """Every item the target accepted for a SKU, in every feed: its key, the exact body sent, when and by which run."""
    store = SnapshotStore(open_state(state_url, storage_options))
    manifest = store.read_manifest()
    found: list[dict[str, Any]] = []
    for feed, files in sorted(manifest.feeds.items()):
        merged = store.feed_relation(files)
        if not merged:
            continue
        query = f"SELECT key, body, store_view_code, exported_at, run_id FROM {merged} WHERE sku = ?"
        params: list[Any] = [sku]
        if store_view:
            query += " AND store_view_code = ?"
            params.append(store_view)
        for key, body, view, exported_at, run_id in duckdb_session.fetch_all(query + " ORDER BY key", params):
            found.append({"feed": feed, "key": orjson.loads(key), "store_view_code": view, "exported_at": exported_at,
                          "run_id": run_id, "body": None if body is None else orjson.loads(body)})
    return found


def feed_items(state_url: str, storage_options: dict | None = None) -> dict[str, dict[str, Any]]:
    """Every item of the current snapshot: feed -> canonical key JSON -> body (None: sent by an
    earlier release, body not kept). For tests and small catalogs."""
    store = SnapshotStore(open_state(state_url, storage_options))
    manifest = store.read_manifest()
    items: dict[str, dict[str, Any]] = {}
    for feed, files in manifest.feeds.items():
        merged = store.feed_relation(files)
        rows = duckdb_session.fetch_all(f"SELECT key, body FROM {merged}") if merged else []
        if rows:  # a feed that holds nothing is left out, as the file target's replay leaves it out
            items[feed] = {key: None if body is None else orjson.loads(body) for key, body in rows}
    return items
