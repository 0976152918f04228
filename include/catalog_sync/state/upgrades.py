"""Upgrades of the state folder, one format at a time; the plan step runs them under the sync lock.

Formats 1 and 2 kept one Magento-shaped record per (sku, store view). Format 3 keeps the
target's feeds. The target says what an earlier release sent for each kept record
(`Target.adopt`): the exact body where it knows it (the ingestion API's products), or only the
key (prices, price books: their bodies were built at send time and never kept). A key with no
body is re-sent once by the next run; a key the source no longer produces is deleted, so no
delete is lost. Nothing is sent here.

Format 4 adds delta files on each feed's base: a format-3 feed is a base with none, so that
upgrade rewrites the manifest only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync.state.snapshot import (
    ITEM_SCHEMA,
    MANIFEST_FORMAT,
    PENDING_SCHEMA,
    SNAPSHOT_ROW_GROUP_SIZE,
    SNAPSHOT_SCHEMA,
    FeedFiles,
    Manifest,
    SnapshotStore,
    UnsupportedState,
)
from catalog_sync.targets.base import RETRYABLE, FeedItem, Target, canonical, sha1_hex

log = logging.getLogger(__name__)

RECORD_FORMATS = (1, 2)
FEED_FORMAT_WITHOUT_DELTAS = 3
BATCH = 10_000


def upgrade(store: SnapshotStore, target: Target) -> tuple[Manifest, int | None]:
    """The manifest in force, upgraded to MANIFEST_FORMAT if it was older, and the format it had
    (None when it needed no upgrade)."""
    raw = store.read_raw()
    if raw is None:
        return Manifest(), None
    found = raw.get("format")
    if found == FEED_FORMAT_WITHOUT_DELTAS:
        previous = Manifest.from_dict({**raw, "format": MANIFEST_FORMAT})
        manifest = store.swap_manifest(previous, dict(previous.feeds), previous.marks,
                                       f"upgrade-to-format-{MANIFEST_FORMAT} (after {previous.run_id})")
    elif found == MANIFEST_FORMAT or found not in RECORD_FORMATS:
        return store.read_manifest(), None  # an unknown format raises UnsupportedState, naming it
    else:
        manifest = _from_records(store, raw, target)
    log.info("state at %s upgraded from format %s to %d as v%d: %s", store.location.url, found, MANIFEST_FORMAT,
             manifest.version, ", ".join(f"{f} {files.items} item(s)" for f, files in sorted(manifest.feeds.items())))
    return manifest, found


def _from_records(store: SnapshotStore, raw: dict[str, Any], target: Target) -> Manifest:
    previous = Manifest(version=int(raw.get("version", 0)), change_marks=raw.get("change_marks"),
                        run_id=raw.get("run_id"), committed_at=raw.get("committed_at"), history=raw.get("history") or [])
    version = previous.version + 1
    snapshot, pending = raw.get("snapshot_file"), raw.get("pending_file")
    if snapshot and not store.location.exists(snapshot):
        raise UnsupportedState(
            f"the format-{raw.get('format')} manifest at {store.location.url} names {snapshot}, which is missing")
    rows: dict[str, dict[str, dict[str, Any]]] = {feed.name: {} for feed in target.feeds}
    exported: dict[str, tuple[str | None, str | None]] = {}
    for record, row in _records(store, snapshot):
        exported_by = (row.get("exported_at"), row.get("run_id"))
        for item in target.adopt(record):
            key = canonical(item.key).decode()
            body = None if item.body is None else canonical(item.body).decode()
            rows[item.feed].setdefault(key, {
                "key": key, "body": body, "sha1": None if body is None else sha1_hex(body.encode()),
                **_listing(row, record, item), "exported_at": exported_by[0], "run_id": exported_by[1],
            })
        exported[row["sku"]] = exported_by
    feeds: dict[str, FeedFiles] = {}
    primary = next(f.name for f in target.feeds if f.primary)
    legacy_pending = _pending_rows(store, pending)
    for feed in target.feeds:
        file_rel, pending_rel = store.new_files(feed.name, version)
        store.location.makedirs(file_rel.rsplit("/", 1)[0])
        table = pa.Table.from_pylist(list(rows[feed.name].values()), schema=SNAPSHOT_SCHEMA)
        with store.location.open(file_rel, mode="wb") as fh:
            pq.write_table(table, fh, compression="zstd", row_group_size=SNAPSHOT_ROW_GROUP_SIZE)
        pend = pa.Table.from_pylist(legacy_pending if feed.name == primary else [], schema=PENDING_SCHEMA)
        with store.location.open(pending_rel, mode="wb") as fh:
            pq.write_table(pend, fh)
        feeds[feed.name] = FeedFiles(file_rel, pending_rel, table.num_rows, pend.num_rows)
    marks = previous.marks
    return store.swap_manifest(previous, feeds, marks, f"upgrade-to-format-{MANIFEST_FORMAT} (after {previous.run_id})")


def _records(store: SnapshotStore, relative: str | None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    if not relative:
        return
    with store.location.open(relative) as fh:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=BATCH):
            for row in batch.to_pylist():
                yield orjson.loads(row["payload"]), row


def _listing(row: dict[str, Any], record: dict[str, Any], item: FeedItem) -> dict[str, Any]:
    """Which product an adopted item comes from, and the columns the page lists."""
    listing = {name: row.get(name) for name in ("product_id", "sku", "store_view_code", "name", "type", "price",
                                                "visibility", "source_updated_at", "linked_product_ids")}
    listing.update(judged_on=row.get("judged_on"), recheck_on=None)
    return {f.name: listing.get(f.name) for f in ITEM_SCHEMA if f.name in listing}


def _pending_rows(store: SnapshotStore, relative: str | None) -> list[dict[str, Any]]:
    """Items an earlier release had not synced: retried by the next run (their products join its scope)."""
    if not relative or not store.location.exists(relative):
        return []
    with store.location.open(relative) as fh:
        old = pq.read_table(fh).to_pylist()
    return [{"key": canonical({"legacy": [r["sku"], r["store_view_code"]]}).decode(), "product_id": r["product_id"],
             "sku": r["sku"], "store_view_code": r["store_view_code"], "op": r["op"], "status": RETRYABLE,
             "reason": f"not in sync before the upgrade: {r['reason']}", "sha1": None, "run_id": r["run_id"]}
            for r in old]
