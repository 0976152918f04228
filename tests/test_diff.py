"""The diff's classification, on small hand-made Parquet inputs of one feed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog_sync.state.snapshot import MAPPED_SCHEMA, PENDING_SCHEMA, SNAPSHOT_SCHEMA
from catalog_sync.steps.diff import FeedDiff, FeedInputs, compare

RECORD_SCHEMA = pa.schema([("product_id", pa.int64()), ("sku", pa.string()), ("store_view_code", pa.string()),
                           ("name", pa.string()), ("type", pa.string()), ("price", pa.float64()), ("visibility", pa.int32()),
                           ("source_updated_at", pa.string()), ("linked_product_ids", pa.list_(pa.int64()))])


def _item(pid, sku, view, sha1, reason=None, key=None):
    """A mapped item and its staging record (the diff joins them by row)."""
    return ({"key": key or f"{sku}|{view}", "body": None if reason else "{}", "sha1": sha1, "reason": reason},
            {"product_id": pid, "sku": sku, "store_view_code": view, "name": sku, "type": "simple", "price": 1.0,
             "visibility": 4, "source_updated_at": None, "linked_product_ids": []})


def _sent(pid, sku, view, sha1):
    return {"key": f"{sku}|{view}", "body": "{}", "sha1": sha1, "product_id": pid, "sku": sku, "store_view_code": view,
            "exported_at": "2026-01-01T00:00:00+00:00", "run_id": "r0"}


def _rejected(pid, sku, view, sha1):
    return {"key": f"{sku}|{view}", "product_id": pid, "sku": sku, "store_view_code": view, "op": "upsert",
            "status": "rejected", "reason": "invalid price", "sha1": sha1, "run_id": "r0"}


@pytest.fixture
def files(tmp_path):
    def write(name, rows, schema):
        path = tmp_path / name
        if schema is MAPPED_SCHEMA:  # items: their records beside them, joined by row number
            records = tmp_path / f"{name}.records.parquet"
            pq.write_table(pa.Table.from_pylist([r for _, r in rows], schema=RECORD_SCHEMA), records)
            rows = [{**item, "record_row": n} for n, (item, _) in enumerate(rows)]
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
            return str(path), str(records)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return str(path)

    return write


def _ops(delta_path) -> dict[str, str]:
    return {r["key"]: r["op"] for r in pq.read_table(delta_path).to_pylist()}


def test_full_scope_classifies_every_item(files, tmp_path):
    items = files("e.parquet", [
        _item(1, "A", "default", "h1"),          # unchanged
        _item(2, "B", "default", "h2-new"),      # update
        _item(3, "C", "default", "h3"),          # insert
        _item(4, "D", "default", None, "empty name"),  # quarantined
        _item(5, "E", "default", "h5-bad"),      # held: rejected before with this body
        _item(6, "F", "default", "h6-fixed"),    # rejected before, body changed: update
    ], MAPPED_SCHEMA)
    snapshot = files("s.parquet", [
        _sent(1, "A", "default", "h1"), _sent(2, "B", "default", "h2"),
        _sent(9, "Z", "default", "h9"),  # gone from the source: delete
        _sent(6, "F", "default", "h6"),
    ], SNAPSHOT_SCHEMA)
    pending = files("p.parquet", [_rejected(5, "E", "default", "h5-bad"), _rejected(6, "F", "default", "h6-bad")],
                    PENDING_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compare(FeedInputs(items[0], delta, snapshot, pending, records=items[1]))

    assert counts == FeedDiff(items=6, inserted=1, updated=2, deleted=1, unchanged=1, quarantined=1, held=1)
    assert _ops(delta) == {"B|default": "update", "C|default": "insert", "D|default": "quarantined",
                           "E|default": "held", "F|default": "update", "Z|default": "delete"}
    reasons = {r["sku"]: r["reason"] for r in pq.read_table(delta).to_pylist()}
    assert reasons["D"] == "empty name" and reasons["E"] == "invalid price" and reasons["B"] is None


def test_incremental_scope_only_deletes_products_in_scope(files, tmp_path):
    items = files("e.parquet", [_item(1, "A", "default", "h1")], MAPPED_SCHEMA)
    snapshot = files("s.parquet", [
        _sent(1, "A", "default", "h1"), _sent(1, "A", "fr", "h1"),  # A left the fr view
        _sent(2, "B", "default", "h2"),  # not in scope: untouched even though not extracted
    ], SNAPSHOT_SCHEMA)
    scope = files("scope.parquet", [{"product_id": 1}], pa.schema([("product_id", pa.int64())]))
    delta = str(tmp_path / "delta.parquet")

    counts = compare(FeedInputs(items[0], delta, snapshot, records=items[1],
                                snapshot_scope=f"product_id IN (SELECT product_id FROM '{scope}')"))

    assert _ops(delta) == {"A|fr": "delete"}
    assert (counts.deleted, counts.unchanged) == (1, 1)


def test_a_forced_resend_sends_unchanged_and_held_items(files, tmp_path):
    items = files("e.parquet", [_item(1, "A", "default", "h1"), _item(2, "B", "default", "h2-bad")], MAPPED_SCHEMA)
    snapshot = files("s.parquet", [_sent(1, "A", "default", "h1")], SNAPSHOT_SCHEMA)
    pending = files("p.parquet", [_rejected(2, "B", "default", "h2-bad")], PENDING_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compare(FeedInputs(items[0], delta, snapshot, pending, records=items[1], force=True))

    assert _ops(delta) == {"A|default": "update", "B|default": "insert"}
    assert (counts.updated, counts.inserted, counts.held, counts.unchanged) == (1, 1, 0, 0)


def test_one_key_from_two_store_views_is_one_item_or_refused(files, tmp_path):
    """Two views giving one key the same body send it once; different bodies are quarantined, not raced."""
    same = _item(1, "A", "en", "h1", key="A"), _item(1, "A", "en_gb", "h1", key="A")
    differ = _item(2, "B", "en", "h2", key="B"), _item(2, "B", "en_gb", "h2-other", key="B")
    items = files("e.parquet", [*same, *differ], MAPPED_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compare(FeedInputs(items[0], delta, records=items[1]))

    rows = {r["key"]: r for r in pq.read_table(delta).to_pylist()}
    assert {k: r["op"] for k, r in rows.items()} == {"A": "insert", "B": "quarantined"}
    assert rows["B"]["reason"] == "store views en, en_gb give different bodies for one key"
    assert (counts.items, counts.inserted, counts.quarantined) == (2, 1, 1)


def test_a_product_with_a_quarantined_item_keeps_its_other_items(files, tmp_path):
    """A bad input must not delete what the target holds: the price of a product whose record is refused stays."""
    products = files("products.parquet", [_item(1, "A", "default", None, "no name")], MAPPED_SCHEMA)
    prices = files("prices.parquet", [], MAPPED_SCHEMA)  # the mapping makes no price for a refused record
    snapshot = files("s.parquet", [_sent(1, "A-price", "default", "p1")], SNAPSHOT_SCHEMA)
    delta = str(tmp_path / "delta.parquet")

    counts = compare(FeedInputs(prices[0], delta, snapshot, records=products[1],
                                quarantine_from=(products[0], prices[0])))

    assert _ops(delta) == {} and counts.deleted == 0
