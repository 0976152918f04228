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
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

import catalog_sync
from catalog_sync import clock
from catalog_sync.feed.feed_record import StagingRow
from catalog_sync.magento.catalog_reader import CatalogContext
from catalog_sync.settings import SyncSettings
from catalog_sync.state import duckdb_session
from catalog_sync.state.duckdb_session import file_or_empty_view, relation_or_empty_view, sql_literal
from catalog_sync.state.snapshot import MAPPED_SCHEMA, PENDING_SCHEMA, SNAPSHOT_SCHEMA, feed_relation
from catalog_sync.state.staging import CATALOG_PART, StagingFolder, bucket_part
from catalog_sync.steps.buckets import duckdb_bucket
from catalog_sync.steps.modes import FULL, SKUS
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import REJECTED, UNCONFIRMED, FeedItem, FeedScope, FeedSpec, canonical, sha1_hex

log = logging.getLogger("catalog_sync.steps")

OPS = ("insert", "update", "delete", "quarantined", "held")
SENDABLE_OPS = ("insert", "update", "delete")
_STAGING_COLUMNS = ["payload", "judged_on", "quarantine_reason"]
# The staging record's columns every product item carries (joined in by record_row).
_LISTING = ("product_id", "sku", "store_view_code", "name", "type", "price", "visibility", "source_updated_at",
            "linked_product_ids")
FLUSH_ROWS = 10_000
# DuckDB holds a row group of bodies per thread while it writes one: the default (122,880 rows)
# took a 100k x 2 diff from 585 to 818 MiB.
DELTA_ROW_GROUP_SIZE = 16_384
MAX_MAP_WORKERS = 4
MAP_BATCH_ROWS = 2_000  # staging records decoded at a time: a whole row group's payloads as Python objects is ~100 MB
MIN_ROWS_PER_WORKER = 25_000  # below this, starting a process costs more than it saves
MAX_GAPS_KEPT = 1_000  # fields a layer cannot carry, listed per bucket (all are counted)
_TYPES = {"product_id": "BIGINT", "sku": "VARCHAR", "store_view_code": "VARCHAR", "name": "VARCHAR", "type": "VARCHAR",
          "price": "DOUBLE", "visibility": "INTEGER", "source_updated_at": "VARCHAR", "linked_product_ids": "BIGINT[]"}


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
    with Workspace(settings, at=run.at) as ws:
        staging = ws.staging(run)
        target = ws.target
        ctx = ws.reader().load_context()
        feeds = [f for f in target.feeds if f.scope is FeedScope.PRODUCT or bucket == 0]
        mapped = map_records(staging, bucket, settings.target, ctx, feeds)
        extracted = staging.read_json(staging.extract(bucket, "json"))["records"]
        product_feeds = [f for f in feeds if f.scope is FeedScope.PRODUCT]
        with duckdb_session.connect() as con:
            counts = {f.name: compare(_inputs(ws, run, staging, bucket, f, product_feeds, mapped.workers), con)
                      for f in feeds}
        result = {"extracted": extracted, "feeds": {name: c.__dict__ for name, c in counts.items()},
                  "layer_gaps": mapped.gaps, "layer_gap_count": mapped.gap_count}
        staging.write_json(result, staging.diff_counts(bucket))
    log.info(
        "diff%s: %d staging record(s) -> %s in %.2fs", run.batch_label(bucket), extracted,
        "; ".join(f"{name}: {mapped.items.get(name, 0)} item(s), {c.inserted} insert, {c.updated} update, {c.deleted} delete, "
                  f"{c.unchanged} unchanged, {c.quarantined} quarantined, {c.held} held" for name, c in counts.items()),
        clock.monotonic() - started,
    )
    return result


def part_of(feed: FeedSpec, bucket: int) -> str:
    return bucket_part(bucket) if feed.scope is FeedScope.PRODUCT else CATALOG_PART


# ---- mapping ------------------------------------------------------------------------------------


class _ItemWriter:
    """Buffers a feed's mapped items column by column and writes them in row groups."""

    def __init__(self, staging: StagingFolder, name: str):
        self.writer = pq.ParquetWriter(staging.path(name), MAPPED_SCHEMA, compression="zstd", compression_level=1,
                                       filesystem=staging.fs)
        self.columns: dict[str, list] = {f.name: [] for f in MAPPED_SCHEMA}
        self.count = 0

    def add(self, item: FeedItem, row: int | None) -> None:
        c = self.columns
        c["key"].append(canonical(item.key).decode())
        if item.body is None:
            c["body"].append(None)
            c["sha1"].append(None)
        else:
            body = canonical(item.body)
            c["body"].append(body.decode())
            c["sha1"].append(sha1_hex(body))
        c["judged_on"].append(item.judged_on)
        c["recheck_on"].append(item.recheck_on)
        c["reason"].append(item.reason)
        c["record_row"].append(row)
        self.count += 1
        if self.count % FLUSH_ROWS == 0:
            self.flush()

    def flush(self) -> None:
        if self.columns["key"]:
            self.writer.write_table(pa.table(self.columns, schema=MAPPED_SCHEMA))
            self.columns = {name: [] for name in self.columns}

    def close(self) -> None:
        self.flush()
        self.writer.close()


@dataclass(frozen=True)
class _MapJob:
    """One process's share of a bucket's mapping: a range of the staging file's row groups."""

    staging: StagingFolder
    bucket: int
    groups: tuple[int, int]  # [first, last) row groups
    first_row: int  # the staging file's row number of the range's first record
    worker: int
    target: Any  # the target's config (the mapping is built from it and the catalog context)
    ctx: CatalogContext
    feeds: tuple[FeedSpec, ...]
    catalog: bool  # this job also writes the catalog-wide feeds


@dataclass(frozen=True)
class Mapped:
    """What a bucket's mapping made: items per feed, in how many processes, and the layers' gaps."""

    items: dict[str, int]
    workers: int
    gaps: list[dict[str, str]]  # the first MAX_GAPS_KEPT (layers.LayerGap.as_dict)
    gap_count: int


def map_records(staging: StagingFolder, bucket: int, target: Any, ctx: CatalogContext, feeds: list[FeedSpec]) -> Mapped:
    """Write the items the target's mapping makes of this bucket's staging records, one file per feed
    and worker (`items_files`). The mapping is Python, so a large bucket is split over processes, one
    per core, at row group boundaries (a product's store views are in one row group)."""
    # No clean-up of earlier attempts' files: other buckets' diffs write beside these, perhaps right
    # now on another worker, and files of another split are never read (items_files names them).
    staging.makedirs("items")
    metadata = pq.ParquetFile(staging.open(staging.extract(bucket))).metadata
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    workers = max(1, min(os.cpu_count() or 1, MAX_MAP_WORKERS, -(-sum(sizes) // MIN_ROWS_PER_WORKER), len(sizes)))
    bounds = [round(len(sizes) * w / workers) for w in range(workers + 1)]
    jobs = [_MapJob(staging, bucket, (bounds[w], bounds[w + 1]), sum(sizes[:bounds[w]]), w, target, ctx, tuple(feeds),
                    catalog=bucket == 0 and w == 0) for w in range(workers)]
    if workers == 1:
        results = [map_job(jobs[0])]
    else:
        log.info("diff%s: mapping %d staging records in %d processes", f" [bucket {bucket}]" if bucket else "",
                 sum(sizes), workers)
        results = _in_processes(jobs)
    gaps = [g for r in results for g in r["gaps"]][:MAX_GAPS_KEPT]
    return Mapped({f.name: sum(r["items"].get(f.name, 0) for r in results) for f in feeds}, workers, gaps,
                  sum(r["gap_count"] for r in results))


def items_files(staging: StagingFolder, feed: FeedSpec, bucket: int, workers: int) -> tuple[str, ...]:
    """Every worker writes a file for every feed (maybe empty): named, never globbed (an object
    store's cached listing may not show files just written)."""
    return tuple(staging.url_of(staging.items(feed.name, f"{part_of(feed, bucket)}-w{w}")) for w in range(workers))


def _in_processes(jobs: list[_MapJob]) -> list[dict[str, Any]]:
    """The first job here, each other in its own `python -m catalog_sync.steps.map_worker`, its job
    given on stdin (never on disk: the target's config holds its credentials). A plain subprocess, not
    multiprocessing: the parent may be an Airflow task runner whose main module must not be imported
    again, or fork with threads."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(catalog_sync.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    procs = []
    try:
        for job in jobs[1:]:
            proc = subprocess.Popen([sys.executable, "-m", "catalog_sync.steps.map_worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env)
            proc.stdin.write(pickle.dumps(job))
            proc.stdin.close()
            procs.append(proc)
        results = [map_job(jobs[0])]
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise
    failed = []
    for job, proc in zip(jobs[1:], procs):
        out = proc.stdout.read()
        if proc.wait() != 0:
            failed.append(f"worker {job.worker} (row groups {job.groups[0]}-{job.groups[1] - 1}) exited with {proc.returncode}")
        else:
            results.append(orjson.loads(out))
    if failed:
        raise RuntimeError(f"mapping the staging records failed: {'; '.join(failed)} (its error is in the log above)")
    return results


def map_job(job: _MapJob) -> dict[str, Any]:
    """Map the job's staging records, a product's store views together (extract writes them side by side,
    and a product never spans two chunks, so never two row groups); returns the items per feed and what
    the items could not carry (`gaps`: the first MAX_GAPS_KEPT, and their count)."""
    from catalog_sync.targets.registry import open_target

    mapper = open_target(job.target).mapper(job.ctx)
    writers = {f.name: _ItemWriter(job.staging, job.staging.items(f.name, f"{part_of(f, job.bucket)}-w{job.worker}"))
               for f in job.feeds}
    gaps: list[dict[str, str]] = []
    gap_count = 0

    def map_product(rows: list[StagingRow], first_row: int) -> None:
        nonlocal gap_count
        for item in mapper.product_items(rows):
            writers[item.feed].add(item, first_row + item.row)
        found = mapper.take_gaps()
        gap_count += len(found)
        gaps.extend(g.as_dict() for g in found[:max(0, MAX_GAPS_KEPT - len(gaps))])

    try:
        source = pq.ParquetFile(job.staging.open(job.staging.extract(job.bucket)))
        row = first = job.first_row
        product: list[StagingRow] = []
        for batch in source.iter_batches(batch_size=MAP_BATCH_ROWS, row_groups=range(*job.groups), columns=_STAGING_COLUMNS):
            payloads, days, reasons = (batch.column(name).to_pylist() for name in _STAGING_COLUMNS)
            for payload, day, reason in zip(payloads, days, reasons):
                record = orjson.loads(payload)
                if product and product[0].record.get("product_id") != record.get("product_id"):
                    map_product(product, first)
                    product, first = [], row
                product.append(StagingRow(record, day, reason))
                row += 1
        if product:
            map_product(product, first)
        if job.catalog:
            for item in mapper.catalog_items():
                writers[item.feed].add(item, None)
    finally:
        for writer in writers.values():
            writer.close()
    return {"items": {name: w.count for name, w in writers.items()}, "gaps": gaps, "gap_count": gap_count}


# ---- comparing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedInputs:
    """What one feed's comparison reads and writes (paths DuckDB opens)."""

    items: str | tuple[str, ...]  # the feed items the mapping made (MAPPED_SCHEMA): a file, or files
    delta: str  # written: every item that is not unchanged, with its op
    snapshot: str | None = None  # the feed's snapshot base file (None: the target holds nothing yet)
    pending: str | None = None  # the feed's pending items (rejected ones are held)
    snapshot_scope: str = "true"  # SQL on the snapshot's columns: the part of it this comparison answers for
    force: bool = False  # a forced re-send: unchanged and held items are sent again
    # Unconfirmed items (see steps/commit.py) whose resend_after is at or before this instant are
    # sent again: their newest body, or their delete when the item is gone. None: none are due.
    resend_due: str | None = None
    # Items files of every product feed of the bucket: a product with a quarantined item loses none of its items.
    quarantine_from: tuple[str, ...] = ()
    records: str | None = None  # the staging records the items' record_row point into
    snapshot_deltas: tuple[str, ...] = ()  # the delta files on the base, oldest first (state.snapshot)


def compare(inputs: FeedInputs, con: duckdb.DuckDBPyConnection | None = None) -> FeedDiff:
    if con is None:
        with duckdb_session.connect() as own:  # closed at the end: its buffers go with it
            return compare(inputs, own)
    q = sql_literal
    if inputs.records:
        records = (f"(SELECT file_row_number AS record_row, {', '.join(_LISTING)} "
                   f"FROM read_parquet({q(inputs.records)}, file_row_number = true))")
    else:
        nulls = ", ".join(f"NULL::{_TYPES[n]} AS {n}" for n in _LISTING)
        records = f"(SELECT NULL::BIGINT AS record_row, {nulls} WHERE false)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW records AS SELECT * FROM {records}")
    files = ", ".join(q(f) for f in inputs.quarantine_from)
    con.execute("CREATE OR REPLACE TEMP TABLE quarantined AS " + (
        f"SELECT DISTINCT r.product_id FROM read_parquet([{files}]) i JOIN records r USING (record_row) "
        "WHERE i.reason IS NOT NULL" if files else "SELECT NULL::BIGINT AS product_id WHERE false"))
    con.execute(f"""CREATE OR REPLACE TEMP VIEW items AS
        SELECT i.key, i.body, i.sha1, i.judged_on, i.recheck_on, i.reason, {', '.join(f'r.{n}' for n in _LISTING)}
        FROM read_parquet({_files(inputs.items)}) i LEFT JOIN records r USING (record_row)""")
    raw = "items"
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
    con.execute(relation_or_empty_view("snapshot_all", feed_relation(inputs.snapshot, list(inputs.snapshot_deltas)),
                                       SNAPSHOT_SCHEMA))
    con.execute("CREATE OR REPLACE TEMP VIEW s AS SELECT key, sha1, product_id, sku, store_view_code FROM snapshot_all "
                f"WHERE {inputs.snapshot_scope}")
    con.execute(file_or_empty_view("pending_all", inputs.pending, PENDING_SCHEMA))
    due = (f"status = '{UNCONFIRMED}' AND resend_after <= {q(inputs.resend_due)} AND ({inputs.snapshot_scope})"
           if inputs.resend_due else "false")
    con.execute("CREATE OR REPLACE TEMP VIEW u AS SELECT DISTINCT ON (key) key, product_id, sku, store_view_code "
                f"FROM pending_all WHERE {due}")
    force = "true" if inputs.force else "false"
    con.execute(f"""
        COPY (
            SELECT
                CASE
                    WHEN e.key IS NULL THEN 'delete'  -- gone; or gone, deleted, and that delete is due again (u)
                    WHEN e.reason IS NOT NULL OR e.body IS NULL THEN 'quarantined'
                    WHEN ({force}) OR u.key IS NOT NULL THEN CASE WHEN s.key IS NULL THEN 'insert' ELSE 'update' END
                    WHEN r.sha1 IS NOT NULL THEN 'held'
                    WHEN s.key IS NULL THEN 'insert'
                    WHEN e.sha1 IS DISTINCT FROM s.sha1 THEN 'update'
                    ELSE 'unchanged'
                END AS op,
                coalesce(e.key, s.key, u.key) AS key, e.body, e.sha1,
                coalesce(e.product_id, s.product_id, u.product_id) AS product_id, coalesce(e.sku, s.sku, u.sku) AS sku,
                coalesce(e.store_view_code, s.store_view_code, u.store_view_code) AS store_view_code,
                e.judged_on, e.recheck_on, e.name, e.type, e.price, e.visibility, e.source_updated_at, e.linked_product_ids,
                coalesce(e.reason, r.reason) AS reason
            FROM e
            FULL OUTER JOIN s ON e.key = s.key
            FULL OUTER JOIN u ON u.key = coalesce(e.key, s.key)
            LEFT JOIN (SELECT key, sha1, reason FROM pending_all WHERE status = '{REJECTED}') r
                   ON r.key = e.key AND r.sha1 = e.sha1
            WHERE op <> 'unchanged'
              -- nothing of a product with a quarantined item is deleted: the target keeps what it holds
              AND NOT (e.key IS NULL AND coalesce(s.product_id, u.product_id) IN (SELECT product_id FROM quarantined))
        ) TO {q(inputs.delta)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {DELTA_ROW_GROUP_SIZE})""")
    by_op = dict(con.execute(f"SELECT op, count(*) FROM read_parquet({q(inputs.delta)}) GROUP BY op").fetchall())
    produced = con.execute("SELECT count(*) FROM e").fetchone()[0]
    changed = sum(by_op.get(op, 0) for op in ("insert", "update", "quarantined", "held"))
    return FeedDiff(items=produced, inserted=by_op.get("insert", 0), updated=by_op.get("update", 0),
                    deleted=by_op.get("delete", 0), unchanged=produced - changed,
                    quarantined=by_op.get("quarantined", 0), held=by_op.get("held", 0))


def _files(paths: str | tuple[str, ...]) -> str:
    return sql_literal(paths) if isinstance(paths, str) else "[" + ", ".join(sql_literal(p) for p in paths) + "]"


def _inputs(ws: Workspace, run: RunPlan, staging: StagingFolder, bucket: int, feed: FeedSpec,
            product_feeds: list[FeedSpec], workers: int) -> FeedInputs:
    part = part_of(feed, bucket)
    base = run.base(feed.name)
    staging.makedirs("delta")
    # A resync of some SKUs forces their items; a re-send of everything (cleanup) forces every feed's.
    forced = run.force_resend and (feed.scope is FeedScope.PRODUCT or run.mode != SKUS)
    return FeedInputs(
        items=items_files(staging, feed, bucket, workers), delta=staging.url_of(staging.delta(feed.name, part)),
        records=staging.url_of(staging.extract(bucket)),
        snapshot=ws.snapshot_url(base.file), pending=ws.snapshot_url(base.pending),
        snapshot_deltas=tuple(ws.snapshot_url(d.file) for d in base.deltas),
        snapshot_scope=_snapshot_scope(run, staging, bucket, feed), force=forced, resend_due=run.started_at,
        quarantine_from=tuple(p for f in product_feeds for p in items_files(staging, f, bucket, workers))
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
