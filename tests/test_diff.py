"""The diff's classification, on small hand-made Parquet inputs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog_sync.steps.diff import DiffCounts, DiffInputs, compute_delta
from catalog_sync.feed.feed_record import EXTRACT_SCHEMA
from catalog_sync.state.snapshot import PENDING_SCHEMA, SNAPSHOT_SCHEMA


def _extract_row(pid, sku, view, h, reason=None):
    return {"product_id": pid, "sku": sku, "store_view_code": view, "content_hash": h, "payload": "{}", "name": sku,
            "type": "simple", "price": 1.0, "visibility": 4, "source_updated_at": None, "linked_product_ids": [],
            "quarantine_reason": reason}


def _snapshot_row(pid, sku, view, h):
    return {"product_id": pid, "sku": sku, "store_view_code": view, "content_hash": h, "payload": "{}", "name": sku,
            "type": "simple", "price": 1.0, "visibility": 4, "source_updated_at": None, "linked_product_ids": [],
            "exported_at": "2026-01-01", "run_id": "r0"}


@pytest.fixture
def files(tmp_path):
    def write(name, rows, schema):
        path = tmp_path / name
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return str(path)

    return write


def _ops(delta_path) -> dict[tuple[str, str], str]:
    table = pq.read_table(delta_path)
    return {(r["sku"], r["store_view_code"]): r["op"] for r in table.to_pylist()}


def test_full_scope_classifies_every_item(files, tmp_path):
    extract = files("e.parquet", [
        _extract_row(1, "A", "default", "h1"),          # unchanged
        _extract_row(2, "B", "default", "h2-new"),      # update
        _extract_row(3, "C", "default", "h3"),          # insert
        _extract_row(4, "D", "default", "h4", "empty name"),  # quarantined
        _extract_row(5, "E", "default", "h5-bad"),      # held: rejected before with this content
        _extract_row(6, "F", "default", "h6-fixed"),    # rejected before, content changed: update
    ], EXTRACT_SCHEMA)
    snapshot = files("s.parquet", [
        _snapshot_row(1, "A", "default", "h1"), _snapshot_row(2, "B", "default", "h2"),
        _snapshot_row(9, "Z", "default", "h9"),  # gone from the source: delete
        _snapshot_row(6, "F", "default", "h6"),
    ], SNAPSHOT_SCHEMA)
    pending = files("p.parquet", [
        {"product_id": 5, "sku": "E", "store_view_code": "default", "op": "upsert", "status": "rejected",
         "reason": "invalid price", "content_hash": "h5-bad", "run_id": "r0"},
        {"product_id": 6, "sku": "F", "store_view_code": "default", "op": "upsert", "status": "rejected",
         "reason": "invalid price", "content_hash": "h6-bad", "run_id": "r0"},
    ], PENDING_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compute_delta(DiffInputs(extract, delta, snapshot, pending))

    assert counts == DiffCounts(extracted=6, inserted=1, updated=2, deleted=1, unchanged=1, quarantined=1, held=1)
    assert _ops(delta) == {("B", "default"): "update", ("C", "default"): "insert", ("D", "default"): "quarantined",
                           ("E", "default"): "held", ("F", "default"): "update", ("Z", "default"): "delete"}
    reasons = {r["sku"]: r["reason"] for r in pq.read_table(delta).to_pylist()}
    assert reasons["D"] == "empty name" and reasons["E"] == "invalid price" and reasons["B"] is None


def test_incremental_scope_only_deletes_products_in_scope(files, tmp_path):
    extract = files("e.parquet", [_extract_row(1, "A", "default", "h1")], EXTRACT_SCHEMA)
    snapshot = files("s.parquet", [
        _snapshot_row(1, "A", "default", "h1"), _snapshot_row(1, "A", "fr", "h1"),  # A left the fr view
        _snapshot_row(2, "B", "default", "h2"),  # not in scope: untouched even though not extracted
    ], SNAPSHOT_SCHEMA)
    scope = files("scope.parquet", [{"product_id": 1}], pa.schema([("product_id", pa.int64())]))
    delta = str(tmp_path / "delta.parquet")

    counts = compute_delta(DiffInputs(extract, delta, snapshot, scope_path=scope))

    assert _ops(delta) == {("A", "fr"): "delete"}
    assert (counts.deleted, counts.unchanged) == (1, 1)


def test_force_resend_turns_unchanged_into_updates(files, tmp_path):
    extract = files("e.parquet", [_extract_row(1, "A", "default", "h1")], EXTRACT_SCHEMA)
    snapshot = files("s.parquet", [_snapshot_row(1, "A", "default", "h1")], SNAPSHOT_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compute_delta(DiffInputs(extract, delta, snapshot, force_resend=True))

    assert (counts.updated, counts.unchanged) == (1, 0)
