"""diff: map the staging records onto the target's feeds, then compare each feed with the snapshot.

The target's mapping turns each staging record into feed items (and bucket 0 builds the
catalog-wide feeds). Then, per feed, in DuckDB, each item keyed by its key becomes one of:

    insert       new: the target does not hold it
    update       the body's sha1 differs from the one the target accepted (or a re-send is forced)
    delete       in the snapshot's scope, and the extract no longer produces it
    unchanged    same sha1: not written to the delta
    quarantined  the mapping refused it (bad input); reported, never sent
    held         rejected by the target before with this exact body; sent again once it changes,
                 or when a re-send is forced

An incremental run compares only the items of the products in its scope; a full run every
item (of its sku bucket). A product with a quarantined item keeps its other items as they
are at the target: nothing of it is deleted while its input is bad.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync import clock
from catalog_sync.feed.feed_record import StagingRow
from catalog_sync.magento.catalog_reader import MagentoCatalogReader
from catalog_sync.settings import SyncSettings
from catalog_sync.state import duckdb_session
from catalog_sync.state.duckdb_session import file_or_empty_view, sql_literal
from catalog_sync.state.snapshot import ITEM_SCHEMA, PENDING_SCHEMA, SNAPSHOT_SCHEMA
from catalog_sync.state.staging import CATALOG_PART, StagingFolder, bucket_part
from catalog_sync.steps.buckets import duckdb_bucket
from catalog_sync.steps.modes import FULL, SKUS
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import REJECTED, FeedItem, FeedScope, FeedSpec, canonical, sha1_hex

log = logging.getLogger("catalog_sync.steps")

OPS = ("insert", "update", "delete", "quarantined", "held")
SENDABLE_OPS = ("insert", "update", "delete")
_STAGING_COLUMNS = ["product_id", "sku", "store_view_code", "payload", "judged_on", "quarantine_reason", "name", "type",
                    "price", "visibility", "source_updated_at", "linked_product_ids"]
_LISTING = ("product_id", "sku", "store_view_code", "name", "type", "price", "visibility", "source_updated_at",
            "linked_product_ids")
FLUSH_ROWS = 10_000


@dataclass(frozen=True)
class FeedDiff:
    items: int = 0  # items the mapping made (in scope)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    held: int = 0


def diff(settings: SyncSettings, run: RunPlan, bucket: int = 0) -> dict[str, Any]:
    """Map this bucket's staging records and compare every feed; returns the counts per feed."""
    started = clock.monotonic()
    with Workspace(settings) as ws:
        staging = ws.staging(run)
        target = ws.target
        ctx = MagentoCatalogReader(ws.source).load_context()
        feeds = [f for f in target.feeds if f.scope is FeedScope.PRODUCT or bucket == 0]
        mapped = _write_items(staging, run, bucket, target.mapper(ctx), feeds)
        extracted = staging.read_json(staging.extract(bucket, "json"))["records"]
        product_feeds = [f for f in feeds if f.scope is FeedScope.PRODUCT]
        with duckdb_session.connect() as con:
            counts = {f.name: compare(_inputs(ws, run, staging, bucket, f, product_feeds), con) for f in feeds}
        result = {"extracted": extracted, "feeds": {name: c.__dict__ for name, c in counts.items()}}
        staging.write_json(result, staging.diff_counts(bucket))
    log.info(
        "diff%s: %d staging record(s) -> %s in %.2fs", run.batch_label(bucket), extracted,
        "; ".join(f"{name}: {mapped.get(name, 0)} item(s), {c.inserted} insert, {c.updated} update, {c.deleted} delete, "
                  f"{c.unchanged} unchanged, {c.quarantined} quarantined, {c.held} held" for name, c in counts.items()),
        clock.monotonic() - started,
    )
    return result


def part_of(feed: FeedSpec, bucket: int) -> str:
    return bucket_part(bucket) if feed.scope is FeedScope.PRODUCT else CATALOG_PART


# ---- mapping ------------------------------------------------------------------------------------


class _ItemWriter:
    """Buffers a feed's items column by column and writes them in row groups."""

    def __init__(self, staging: StagingFolder, name: str):
        self.path = staging.path(name)
        self.writer = pq.ParquetWriter(self.path, ITEM_SCHEMA, compression="zstd", compression_level=1,
                                       filesystem=staging.fs)
        self.columns: dict[str, list] = {f.name: [] for f in ITEM_SCHEMA}
        self.count = 0

    def add(self, item: FeedItem, listing: dict[str, Any] | None) -> None:
        c = self.columns
        body = None if item.body is None else canonical(item.body)
        c["key"].append(canonical(item.key).decode())
        c["body"].append(None if body is None else body.decode())
        c["sha1"].append(None if body is None else sha1_hex(body))
        c["judged_on"].append(item.judged_on)
        c["recheck_on"].append(item.recheck_on)
        c["reason"].append(item.reason)
        for name in _LISTING:
            c[name].append(None if listing is None else listing[name])
        self.count += 1
        if len(c["key"]) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.columns["key"]:
            self.writer.write_table(pa.table(self.columns, schema=ITEM_SCHEMA))
            self.columns = {name: [] for name in self.columns}

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _write_items(staging: StagingFolder, run: RunPlan, bucket: int, mapper: Any, feeds: list[FeedSpec]) -> dict[str, int]:
    staging.makedirs("items")
    writers = {f.name: _ItemWriter(staging, staging.items(f.name, part_of(f, bucket))) for f in feeds}
    try:
        source = pq.ParquetFile(staging.open(staging.extract(bucket)))
        for batch in source.iter_batches(batch_size=FLUSH_ROWS, columns=_STAGING_COLUMNS):
            columns = {name: batch.column(name).to_pylist() for name in _STAGING_COLUMNS}
            for i, payload in enumerate(columns["payload"]):
                listing = {name: columns[name][i] for name in _LISTING}
                row = StagingRow(orjson.loads(payload), columns["judged_on"][i], columns["quarantine_reason"][i])
                for item in mapper.product_items(row):
                    writers[item.feed].add(item, listing)
        if bucket == 0:
            for item in mapper.catalog_items():
                writers[item.feed].add(item, None)
    finally:
        for writer in writers.values():
            writer.close()
    return {name: w.count for name, w in writers.items()}


# ---- comparing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedInputs:
    """What one feed's comparison reads and writes (paths DuckDB opens)."""

    items: str  # the feed items the mapping made
    delta: str  # written: every item that is not unchanged, with its op
    snapshot: str | None = None  # the feed's snapshot file (None: the target holds nothing yet)
    pending: str | None = None  # the feed's pending items (rejected ones are held)
    snapshot_scope: str = "true"  # SQL on the snapshot's columns: the part of it this comparison answers for
    force: bool = False  # a forced re-send: unchanged and held items are sent again
    # Items files of every product feed of the bucket: a product with a quarantined item loses none of its items.
    quarantine_from: tuple[str, ...] = ()


def compare(inputs: FeedInputs, con: duckdb.DuckDBPyConnection | None = None) -> FeedDiff:
    if con is None:
        with duckdb_session.connect() as own:  # closed at the end: its buffers go with it
            return compare(inputs, own)
    q = sql_literal
    files = ", ".join(q(f) for f in inputs.quarantine_from)
    con.execute("CREATE OR REPLACE TEMP TABLE quarantined AS " + (
        f"SELECT DISTINCT product_id FROM read_parquet([{files}]) WHERE reason IS NOT NULL" if files
        else "SELECT NULL::BIGINT AS product_id WHERE false"))
    raw = f"read_parquet({q(inputs.items)})"
    # One item per key: store views that give one key the same body are one item; different bodies
    # for one key are refused (the target would keep whichever came last).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE dup AS
        SELECT key, count(DISTINCT sha1) AS variants, string_agg(DISTINCT store_view_code, ', ' ORDER BY store_view_code) AS views
        FROM {raw} GROUP BY key HAVING count(*) > 1""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW e AS
        SELECT * FROM {raw} WHERE key NOT IN (SELECT key FROM dup)
        UNION ALL
        SELECT * FROM (
            SELECT DISTINCT ON (i.key) i.* REPLACE (
                       CASE WHEN dup.variants > 1 THEN NULL ELSE i.body END AS body,
                       CASE WHEN dup.variants > 1 THEN 'store views ' || dup.views || ' give different bodies for one key'
                            ELSE i.reason END AS reason)
            FROM {raw} i JOIN dup ON dup.key = i.key
            ORDER BY i.key, i.store_view_code)""")
    con.execute(file_or_empty_view("snapshot_all", inputs.snapshot, SNAPSHOT_SCHEMA))
    con.execute("CREATE OR REPLACE TEMP VIEW s AS SELECT key, sha1, product_id, sku, store_view_code FROM snapshot_all "
                f"WHERE {inputs.snapshot_scope}")
    con.execute(file_or_empty_view("pending_all", inputs.pending, PENDING_SCHEMA))
    force = "true" if inputs.force else "false"
    con.execute(f"""
        COPY (
            SELECT
                CASE
                    WHEN e.key IS NULL THEN 'delete'
                    WHEN e.reason IS NOT NULL OR e.body IS NULL THEN 'quarantined'
                    WHEN ({force}) THEN CASE WHEN s.key IS NULL THEN 'insert' ELSE 'update' END
                    WHEN r.sha1 IS NOT NULL THEN 'held'
                    WHEN s.key IS NULL THEN 'insert'
                    WHEN e.sha1 IS DISTINCT FROM s.sha1 THEN 'update'
                    ELSE 'unchanged'
                END AS op,
                coalesce(e.key, s.key) AS key, e.body, e.sha1,
                coalesce(e.product_id, s.product_id) AS product_id, coalesce(e.sku, s.sku) AS sku,
                coalesce(e.store_view_code, s.store_view_code) AS store_view_code,
                e.judged_on, e.recheck_on, e.name, e.type, e.price, e.visibility, e.source_updated_at, e.linked_product_ids,
                coalesce(e.reason, r.reason) AS reason
            FROM e
            FULL OUTER JOIN s ON e.key = s.key
            LEFT JOIN (SELECT key, sha1, reason FROM pending_all WHERE status = '{REJECTED}') r
                   ON r.key = e.key AND r.sha1 = e.sha1
            WHERE op <> 'unchanged'
              -- nothing of a product with a quarantined item is deleted: the target keeps what it holds
              AND NOT (e.key IS NULL AND s.product_id IN (SELECT product_id FROM quarantined))
        ) TO {q(inputs.delta)} (FORMAT parquet, COMPRESSION zstd)""")
    by_op = dict(con.execute(f"SELECT op, count(*) FROM read_parquet({q(inputs.delta)}) GROUP BY op").fetchall())
    produced = con.execute("SELECT count(*) FROM e").fetchone()[0]
    changed = sum(by_op.get(op, 0) for op in ("insert", "update", "quarantined", "held"))
    return FeedDiff(items=produced, inserted=by_op.get("insert", 0), updated=by_op.get("update", 0),
                    deleted=by_op.get("delete", 0), unchanged=produced - changed,
                    quarantined=by_op.get("quarantined", 0), held=by_op.get("held", 0))


def _inputs(ws: Workspace, run: RunPlan, staging: StagingFolder, bucket: int, feed: FeedSpec,
            product_feeds: list[FeedSpec]) -> FeedInputs:
    part = part_of(feed, bucket)
    base = run.base(feed.name)
    staging.makedirs("delta")
    # A resync of some SKUs forces their items; a re-send of everything (cleanup) forces every feed's.
    forced = run.force_resend and (feed.scope is FeedScope.PRODUCT or run.mode != SKUS)
    return FeedInputs(
        items=staging.url_of(staging.items(feed.name, part)), delta=staging.url_of(staging.delta(feed.name, part)),
        snapshot=ws.snapshot_url(base.file), pending=ws.snapshot_url(base.pending),
        snapshot_scope=_snapshot_scope(run, staging, bucket, feed), force=forced,
        quarantine_from=tuple(staging.url_of(staging.items(f.name, bucket_part(bucket))) for f in product_feeds)
        if feed.scope is FeedScope.PRODUCT else (),
    )


def _snapshot_scope(run: RunPlan, staging: StagingFolder, bucket: int, feed: FeedSpec) -> str:
    """The snapshot's items this bucket of this run answers for."""
    if feed.scope is FeedScope.CATALOG:
        return "true"  # built whole every run
    if run.mode != FULL:
        scope = sql_literal(staging.url_of(staging.scope(bucket)))
        return f"product_id IN (SELECT product_id FROM read_parquet({scope})) OR key IN (SELECT key FROM e)"
    if run.buckets > 1:
        return f"{duckdb_bucket('sku', run.buckets)} = {bucket}"
    return "true"
