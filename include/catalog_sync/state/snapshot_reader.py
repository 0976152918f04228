"""Read-only queries on the current snapshot (CLI `show`, the plugin page)."""

from __future__ import annotations

from typing import Any

from catalog_sync.state import duckdb_session
import orjson

from catalog_sync.state.snapshot import SnapshotStore
from catalog_sync.state.location import StateLocation


def find_exported(state_url: str, sku: str, store_view: str | None = None) -> list[dict[str, Any]]:
    """The payloads last accepted by the target for a SKU, with when and by which run."""
    store = SnapshotStore(StateLocation(state_url))
    manifest = store.read_manifest()
    if not manifest.snapshot_file:
        return []
    query = "SELECT store_view_code, payload, exported_at, run_id FROM read_parquet(?) WHERE sku = ?"
    params: list[Any] = [store.file_url(manifest.snapshot_file), sku]
    if store_view:
        query += " AND store_view_code = ?"
        params.append(store_view)
    rows = duckdb_session.fetch_all(query + " ORDER BY store_view_code", params)
    return [
        {"sku": sku, "store_view_code": r[0], "exported_at": r[2], "run_id": r[3], "payload": orjson.loads(r[1])}
        for r in rows
    ]


def snapshot_items(state_url: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the current snapshot, keyed by (sku, store view). For tests and small catalogs."""
    store = SnapshotStore(StateLocation(state_url))
    manifest = store.read_manifest()
    if not manifest.snapshot_file:
        return {}
    rows = duckdb_session.fetch_all(
        "SELECT sku, store_view_code, payload FROM read_parquet(?)", [store.file_url(manifest.snapshot_file)]
    )
    return {(r[0], r[1]): orjson.loads(r[2]) for r in rows}
