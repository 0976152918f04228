"""The sync pipeline: plan -> extract -> diff -> export -> commit -> report.

Each step is a plain function of (settings, plan). The Airflow tasks and the
CLI call these same functions; `run_sync` chains them for the CLI. Steps pass
data as files in a per-run staging folder; only the small `RunPlan` travels
between them (through XCom in Airflow). Every step can be re-run: it rewrites
its own outputs and nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from catalog_sync import clock, run_clock

from catalog_sync.state import duckdb_session

from catalog_sync.steps import scope as extract_scope
from catalog_sync.steps.buckets import all_parts, check_buckets, duckdb_bucket, part
from catalog_sync.steps.diff import DiffCounts, DiffInputs, compute_delta
from catalog_sync.state.duckdb_session import file_or_empty_view, sql_literal
from catalog_sync.feed.feed_builder import FeedBuilder
from catalog_sync.feed.feed_record import EXTRACT_SCHEMA
from catalog_sync.magento.arrow_reader import ArrowQueries, read_chunk
from catalog_sync.magento.catalog_reader import MagentoCatalogReader, read_only_engine
from catalog_sync.magento.change_detection import UPDATED_AT, ChangeDetector, ChangeMarks
from catalog_sync.steps.modes import FULL, INCREMENTAL, SKUS
from catalog_sync.settings import SyncSettings, redact_url
from catalog_sync.sinks import check_distinct_locales, is_ingestion_api, open_sink
from catalog_sync.sinks.base import DELETE, OK, REJECTED, UPSERT, DeltaItem, ItemResult
from catalog_sync.state.snapshot import PENDING_SCHEMA, SNAPSHOT_ROW_GROUP_SIZE, SNAPSHOT_SCHEMA, SnapshotStore
from catalog_sync.state.status_store import FAILED, SUCCESS, StatusStore, this_process
from catalog_sync.state.location import StateLocation, open_state

log = logging.getLogger("catalog_sync.steps.pipeline")

RESULTS_SCHEMA = pa.schema([("sku", pa.string()), ("store_view_code", pa.string()), ("status", pa.string()), ("reason", pa.string())])
MAX_FAILURES_RECORDED = 10_000
# Queries of one chunk run side by side: the database scans tables while others decode.
READ_CONCURRENCY = 3


@dataclass(frozen=True)
class SyncRequest:
    """What the caller asks for. The plan step decides the actual mode."""

    run_id: str
    full: bool = False
    cleanup: bool = False
    skus: tuple[str, ...] = ()
    dry_run: bool = False
    dag_id: str | None = None
    airflow_run_id: str | None = None
    holder_process: str = ""  # host:pid when one process runs the whole sync (CLI)

    @staticmethod
    def new_run_id(prefix: str = "cli") -> str:
        return f"{prefix}-{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    run_key: str
    mode: str
    mode_reason: str
    dry_run: bool
    force_resend: bool
    skus: list[str]
    staging: str
    base_version: int
    base_snapshot: str | None
    base_pending: str | None
    since_marks: dict | None
    until_marks: dict
    started_at: str  # when the run started (operational clock): status and run keys
    # The run's instant (ISO, UTC): every date question of every step is answered at it (run_clock).
    instant: str = ""
    buckets: int = 1  # hash buckets of sku: extract, diff and export run once per bucket
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunPlan":
        known = {f.name for f in fields(cls)}
        plan = cls(**{k: v for k, v in data.items() if k in known})
        # A plan made before the run instant existed (a run in flight across an upgrade): its start.
        return plan if plan.instant else replace(plan, instant=plan.started_at)

    @property
    def at(self) -> datetime:
        """The run's instant."""
        return run_clock.parse_instant(self.instant)


class Workspace:
    """The services one step needs, built from settings."""

    def __init__(self, settings: SyncSettings):
        self.settings = settings
        self.state = open_state(settings.state_url, settings.state_storage_options)
        self.snapshots = SnapshotStore(self.state, settings.keep_snapshot_versions)
        self._status: StatusStore | None = None
        self._source: sa.Engine | None = None

    @property
    def status(self) -> StatusStore:
        if self._status is None:
            self._status = StatusStore(self.settings.status_url, self.settings.target_name)
        return self._status

    @property
    def source(self) -> sa.Engine:
        if self._source is None:
            self._source = read_only_engine(self.settings.source_url)
        return self._source

    def staging(self, plan: RunPlan) -> StateLocation:
        return self.state.child(plan.staging)

    def close(self) -> None:
        if self._status is not None:
            self._status.dispose()
        if self._source is not None:
            self._source.dispose()


def _run_key(run_id: str, started: datetime) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:80]
    # Microseconds keep keys (and the file sink's delta files) in run order.
    return f"{started:%Y%m%dT%H%M%S%f}Z-{slug}"


# ---- plan -----------------------------------------------------------------------------


def plan(settings: SyncSettings, request: SyncRequest) -> RunPlan:
    """Take the sync lock, read the manifest, and choose the mode."""
    ws = Workspace(settings)
    open_sink(settings).close()  # an unusable target fails here, before any work
    MagentoCatalogReader(ws.source).verify_schema()
    try:
        stale = ws.status.acquire_lock(request.run_id, settings.lock_ttl_s, process=request.holder_process)
        if stale:
            ws.status.abandon_run(stale, f"abandoned: the run died without reporting; its lock was taken over by {request.run_id}")
        manifest = ws.snapshots.upgrade()
        detector = ChangeDetector(ws.source)
        until = detector.current_marks()
        since = manifest.marks

        if request.skus:
            mode, reason = SKUS, f"resync of {len(request.skus)} requested sku(s)"
        elif request.cleanup:
            mode, reason = FULL, "full resync with cleanup requested: every item is re-sent"
        elif request.full:
            mode, reason = FULL, "full resync requested"
        elif manifest.version == 0:
            mode, reason = FULL, "no snapshot yet: first sync"
        elif since is None:
            mode, reason = FULL, "the snapshot has no change watermark yet"
        else:
            gap = detector.gap_reason(since)
            mode, reason = (FULL, f"escalated to a full reconcile: {gap}") if gap else (INCREMENTAL, f"changes since {_describe(since)}")

        started = clock.now()  # operational: run keys and delta file names sort in run order
        instant = run_clock.run_instant(settings.now)
        run_key = _run_key(request.run_id, started)
        result = RunPlan(
            run_id=request.run_id,
            run_key=run_key,
            mode=mode,
            mode_reason=reason,
            dry_run=request.dry_run,
            force_resend=request.cleanup or mode == SKUS,
            skus=list(request.skus),
            staging=f"staging/{run_key}",
            base_version=manifest.version,
            base_snapshot=manifest.snapshot_file,
            base_pending=manifest.pending_file,
            since_marks=since.to_dict() if since else None,
            until_marks=until.to_dict(),
            started_at=started.isoformat(timespec="seconds"),
            instant=run_clock.format_instant(instant),
            buckets=check_buckets(settings.buckets),
        )
        ws.staging(result).makedirs()
        ws.staging(result).write_json_atomic(result.to_dict(), "plan.json")
        ws.status.start_run(request.run_id, mode, dry_run=request.dry_run, mode_reason=reason,
                            dag_id=request.dag_id, airflow_run_id=request.airflow_run_id)
        log.info(
            "plan: run %s, mode %s (%s)%s; run instant %s%s; source %s, target %s, snapshot v%d with %d items",
            request.run_id, mode, reason, " [dry run]" if request.dry_run else "", result.instant,
            f" (pinned by {run_clock.PIN_ENV})" if settings.now else "", redact_url(settings.source_url),
            redact_url(settings.target_url), manifest.version, manifest.item_count,
        )
        return result
    except Exception:
        # A plan that fails after taking the lock must not leave it held
        # (release only deletes the lock if this run owns it).
        ws.status.release_lock(request.run_id)
        raise
    finally:
        ws.close()


def _describe(marks: ChangeMarks) -> str:
    if marks.method == UPDATED_AT:
        return f"updated_at {marks.updated_at}"
    return ", ".join(f"{name}@{version}" for name, version in sorted(marks.changelog_versions.items()))


# ---- extract --------------------------------------------------------------------------


def extract(settings: SyncSettings, run: RunPlan, bucket: int = 0) -> dict[str, int]:
    """Read the products in scope (of this sku bucket) from Magento, chunk by chunk, straight into Parquet.

    A reader thread fetches the next chunk (connectorx/the database work outside
    the GIL) while DuckDB builds the current one, so memory holds two chunks at most.
    """
    ws = Workspace(settings)
    staging = ws.staging(run)
    started = clock.monotonic()
    builder: FeedBuilder | None = None
    try:
        reader = MagentoCatalogReader(ws.source)
        ctx = reader.load_context()
        _check_store_views(ctx.store_views)
        builder = FeedBuilder(ctx, run.at)
        id_chunks, scope_ids, forced_ids = extract_scope.id_chunks(ws, run, reader, ctx, settings.chunk_size, bucket)
        if scope_ids is not None:
            for name, ids in (("scope", scope_ids), ("forced", forced_ids)):
                pq.write_table(pa.table({"product_id": pa.array(sorted(ids), pa.int64())}),
                               staging.path(part(name, bucket)), filesystem=staging.fs)
        queries = ArrowQueries(ws.source)
        price = ctx.attributes_by_code.get("price")
        records = products = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-read") as pool, \
                ThreadPoolExecutor(max_workers=READ_CONCURRENCY, thread_name_prefix="catalog-query") as query_pool, \
                pq.ParquetWriter(staging.path(part("extract", bucket)), EXTRACT_SCHEMA, compression="zstd",
                                 compression_level=1, use_dictionary=_DICTIONARY_COLUMNS, filesystem=staging.fs) as writer:
            reads = (
                pool.submit(read_chunk, queries, ids, price.attribute_id if price else None, builder.attribute_ids, query_pool)
                for ids in id_chunks
            )
            pending = next(reads, None)
            while pending is not None:
                upcoming = next(reads, None)  # starts the next read before building this chunk
                raw = pending.result()
                table = builder.build(raw)
                writer.write_table(table)
                records += table.num_rows
                products += raw.entities.num_rows
                pending = upcoming
        counts = {"products": products, "records": records, "scope": -1 if scope_ids is None else len(scope_ids)}
        staging.write_json_atomic(counts, part("extract", bucket, "json"))
        elapsed = clock.monotonic() - started
        log.info(
            "extract%s: %d products -> %d feed records across %d store view(s) in %.2fs (%.0f records/s, %s)",
            _bucket_label(run, bucket), products, records, len(ctx.store_views), elapsed, records / elapsed if elapsed else 0,
            "connectorx" if queries.cx_url else "SQLAlchemy",
        )
        return counts
    finally:
        if builder is not None:
            builder.close()
        ws.close()


# Payloads and hashes are unique per record: dictionary-encoding them only costs time. The extract
# is a staging file read once: zstd level 1 gives the same size here as the default for 2/3 of the CPU.
_DICTIONARY_COLUMNS = [f.name for f in EXTRACT_SCHEMA if f.name not in ("payload", "content_hash")]


def _check_store_views(views) -> None:
    if not views:
        raise RuntimeError("the Magento database has no active store view (table `store`, store_id > 0, is_active = 1)")


def _bucket_label(run: RunPlan, bucket: int) -> str:
    return f" [bucket {bucket + 1}/{run.buckets}]" if run.buckets > 1 else ""


# ---- diff -----------------------------------------------------------------------------


def diff(settings: SyncSettings, run: RunPlan, bucket: int = 0) -> DiffCounts:
    ws = Workspace(settings)
    staging = ws.staging(run)
    started = clock.monotonic()
    counts = compute_delta(
        DiffInputs(
            extract_glob=staging.url_of(part("extract", bucket)),
            delta_path=staging.url_of(part("delta", bucket)),
            snapshot_path=ws.snapshots.file_url(run.base_snapshot),
            pending_path=ws.snapshots.file_url(run.base_pending),
            scope_path=staging.url_of(part("scope", bucket)) if run.mode != FULL else None,
            forced_path=staging.url_of(part("forced", bucket)) if run.mode != FULL else None,
            force_resend=run.force_resend,
            # A full reconcile of one bucket compares it with the snapshot's items of that bucket only.
            snapshot_filter=f"{duckdb_bucket('sku', run.buckets)} = {bucket}" if run.mode == FULL and run.buckets > 1 else None,
        )
    )
    staging.write_json_atomic(counts.to_dict(), part("diff", bucket, "json"))
    log.info(
        "diff%s: %d extracted -> %d insert, %d update, %d delete, %d unchanged, %d quarantined, %d held (rejected before) in %.2fs",
        _bucket_label(run, bucket), counts.extracted, counts.inserted, counts.updated, counts.deleted, counts.unchanged,
        counts.quarantined, counts.held, clock.monotonic() - started,
    )
    ws.close()
    return counts


# ---- export ---------------------------------------------------------------------------


def export(settings: SyncSettings, run: RunPlan, bucket: int = 0) -> dict[str, int]:
    """Send the delta and write one result per item: ok, retryable or rejected."""
    ws = Workspace(settings)
    staging = ws.staging(run)
    if run.dry_run:
        log.info("export: dry run, nothing sent")
        counts = {"sent": 0, OK: 0, "retryable": 0, REJECTED: 0}
        staging.write_json_atomic(counts, part("export", bucket, "json"))
        return counts
    started = clock.monotonic()
    locales = None
    ctx = None
    if is_ingestion_api(settings.target_url):
        ctx = MagentoCatalogReader(ws.source).load_context()
        locales = {v.code: v.locale for v in ctx.store_views}
        check_distinct_locales(locales)
    sink = open_sink(settings, locales)
    if ctx is not None:
        _send_attribute_metadata(ws, sink, ctx, set(locales.values()))
    counts = {"sent": 0, OK: 0, "retryable": 0, REJECTED: 0}
    not_sent: list[ItemResult] = []

    def items():
        columns = ["op", "product_id", "sku", "store_view_code", "payload", "content_hash", "judged_on", "reason"]
        for batch in pq.ParquetFile(staging.open(part("delta", bucket))).iter_batches(batch_size=10_000, columns=columns):
            for op, product_id, sku, view, payload, digest, day, reason in zip(*(batch.column(c).to_pylist() for c in columns)):
                if op in ("insert", "update"):
                    yield DeltaItem(UPSERT, product_id, sku, view, payload, digest, day)
                elif op == "delete":
                    yield DeltaItem(DELETE, product_id, sku, view, None, None)
                else:  # quarantined or held: never sent, reported as rejected with the reason
                    not_sent.append(ItemResult(sku, view, REJECTED, reason))

    with pq.ParquetWriter(staging.path(part("results", bucket)), RESULTS_SCHEMA, filesystem=staging.fs) as writer:
        buffer: list[ItemResult] = []
        # Each bucket writes its own delta file (the file sink names files after this key).
        batch_key = run.run_key if run.buckets == 1 else f"{run.run_key}-b{bucket:03d}"
        for result in sink.send(items(), batch_key):
            counts["sent"] += 1
            counts[result.status] += 1
            buffer.append(result)
            if len(buffer) >= 10_000:
                writer.write_table(_results_table(buffer))
                buffer = []
        buffer.extend(not_sent)
        counts[REJECTED] += len(not_sent)
        writer.write_table(_results_table(buffer))
    sink.close()
    staging.write_json_atomic(counts, part("export", bucket, "json"))
    elapsed = clock.monotonic() - started
    log.info(
        "export%s: sent %d item(s) to %s in %.2fs (%.0f items/s): %d ok, %d retryable, %d rejected",
        _bucket_label(run, bucket), counts["sent"], sink.description, elapsed, counts["sent"] / elapsed if elapsed else 0,
        counts[OK], counts["retryable"], counts[REJECTED],
    )
    return counts


METADATA_STATE = "target_metadata.json"


def _send_attribute_metadata(ws: Workspace, sink, ctx, locales: set[str]) -> None:
    """Attribute metadata goes before products, for every locale, and again whenever it changes."""
    from catalog_sync.feed.content_hash import canonical_json
    from catalog_sync.feed.feed_record import CORE_ATTRIBUTES
    from catalog_sync.ingestion.mapping import metadata_items
    from catalog_sync.sinks.ingestion_api import METADATA

    custom = [a for a in ctx.attributes_by_id.values() if a.is_user_defined and a.code not in CORE_ATTRIBUTES]
    bodies = metadata_items(custom, locales)
    digest = hashlib.sha1(canonical_json({"items": bodies}), usedforsecurity=False).hexdigest()
    if ws.state.exists(METADATA_STATE) and ws.state.read_json(METADATA_STATE).get("sha1") == digest:
        return
    failed = [r for r in sink.deliver(METADATA, bodies) if r.status != OK]
    if failed:
        # Products can still go; the metadata is re-sent next run because its state is not recorded.
        log.warning("export: %d of %d attribute metadata item(s) not accepted, e.g. %s",
                    len(failed), len(bodies), failed[0].reason)
        return
    ws.state.write_json_atomic({"sha1": digest, "items": len(bodies), "locales": sorted(locales)}, METADATA_STATE)
    log.info("export: sent attribute metadata (%d item(s) for %d locale(s))", len(bodies), len(locales))


def _results_table(results: list[ItemResult]) -> pa.Table:
    return pa.table(
        {
            "sku": [r.sku for r in results],
            "store_view_code": [r.store_view_code for r in results],
            "status": [r.status for r in results],
            "reason": [r.reason for r in results],
        },
        schema=RESULTS_SCHEMA,
    )


# ---- commit ---------------------------------------------------------------------------


def commit(settings: SyncSettings, run: RunPlan) -> dict[str, int]:
    """Apply the accepted items to a new snapshot version and swap the manifest atomically."""
    ws = Workspace(settings)
    staging = ws.staging(run)
    if run.dry_run:
        log.info("commit: dry run, snapshot left at v%d", run.base_version)
        counts = {"inserted": 0, "updated": 0, "deleted": 0, "failed": 0, "items": -1}
        staging.write_json_atomic(counts, "commit.json")
        return counts
    manifest = ws.snapshots.read_manifest()
    if manifest.run_id == run.run_id and staging.exists("commit.json"):
        log.info("commit: run %s is already committed as v%d; nothing to do", run.run_id, manifest.version)
        return staging.read_json("commit.json")

    if manifest.version != run.base_version:
        raise RuntimeError(
            f"the snapshot is at v{manifest.version} but this run planned against v{run.base_version} "
            f"(last committed by {manifest.run_id}); start a new run"
        )
    snapshot_rel, pending_rel = ws.snapshots.new_version_files(manifest)
    ws.state.makedirs("snapshot")
    con = duckdb_session.connect()
    q = sql_literal
    # Every bucket's files: the commit is one step, whatever the number of buckets.
    _require_parts(staging, run, ("delta", "results"))
    con.execute(f"CREATE TEMP VIEW d AS SELECT * FROM read_parquet({q(staging.url_of(all_parts('delta')))})")
    con.execute(f"CREATE TEMP VIEW res AS SELECT * FROM read_parquet({q(staging.url_of(all_parts('results')))})")
    con.execute(file_or_empty_view("base", ws.snapshots.file_url(run.base_snapshot), SNAPSHOT_SCHEMA))
    con.execute(file_or_empty_view("old_pending", ws.snapshots.file_url(run.base_pending), PENDING_SCHEMA))
    if run.mode == FULL:
        con.execute("CREATE TEMP VIEW scope AS SELECT NULL::BIGINT AS product_id WHERE false")
        keep_old_pending = "false"
    else:
        con.execute(f"CREATE TEMP VIEW scope AS SELECT product_id FROM read_parquet({q(staging.url_of(all_parts('scope')))})")
        keep_old_pending = "product_id NOT IN (SELECT product_id FROM scope)"
    # Keys only: payloads stream from the delta file in the COPY below, so memory stays bounded.
    con.execute(
        "CREATE TEMP TABLE accepted AS SELECT d.sku, d.store_view_code, d.op FROM d JOIN res USING (sku, store_view_code) "
        "WHERE res.status = 'ok' AND d.op IN ('insert', 'update', 'delete')"
    )
    exported_at = run.instant  # the run's instant, like every date of the run
    con.execute(
        f"""COPY (
            SELECT base.* FROM base ANTI JOIN accepted a USING (sku, store_view_code)
            UNION ALL BY NAME
            SELECT d.product_id, d.sku, d.store_view_code, d.content_hash, d.payload, d.name, d.type, d.price,
                   d.visibility, d.source_updated_at, d.linked_product_ids, d.judged_on,
                   {q(exported_at)} AS exported_at, {q(run.run_id)} AS run_id
            FROM d SEMI JOIN (SELECT sku, store_view_code FROM accepted WHERE op <> 'delete') a USING (sku, store_view_code)
        ) TO {q(ws.snapshots.file_url(snapshot_rel))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})"""
    )
    con.execute(
        f"""COPY (
            SELECT * FROM old_pending
            WHERE {keep_old_pending} AND (sku, store_view_code) NOT IN (SELECT (sku, store_view_code) FROM d)
            UNION ALL BY NAME
            SELECT d.product_id, d.sku, d.store_view_code,
                   CASE WHEN d.op = 'delete' THEN 'delete' ELSE 'upsert' END AS op,
                   res.status, res.reason, d.content_hash, {q(run.run_id)} AS run_id
            FROM d JOIN res USING (sku, store_view_code) WHERE res.status <> 'ok'
        ) TO {q(ws.snapshots.file_url(pending_rel))} (FORMAT parquet)"""
    )
    by_op = dict(con.execute("SELECT op, count(*) FROM accepted GROUP BY op").fetchall())
    items = con.execute(f"SELECT count(*) FROM read_parquet({q(ws.snapshots.file_url(snapshot_rel))})").fetchone()[0]
    failed = con.execute(f"SELECT count(*) FROM read_parquet({q(ws.snapshots.file_url(pending_rel))})").fetchone()[0]
    con.close()

    # The swap is the commit point: before it, the old version is in force.
    new_manifest = ws.snapshots.swap_manifest(
        manifest,
        snapshot_rel, pending_rel,
        None if run.mode == SKUS else ChangeMarks.from_dict(run.until_marks),
        items, run.run_id,
    )
    counts = {"inserted": by_op.get("insert", 0), "updated": by_op.get("update", 0),
              "deleted": by_op.get("delete", 0), "failed": failed, "items": items}
    staging.write_json_atomic(counts, "commit.json")
    log.info(
        "commit: snapshot v%d -> v%d: %d item(s) in sync, %d accepted upsert(s), %d accepted delete(s), %d pending",
        run.base_version, new_manifest.version, items, counts["inserted"] + counts["updated"], counts["deleted"], failed,
    )
    ws.close()
    return counts


# ---- report ---------------------------------------------------------------------------


def report(settings: SyncSettings, run: RunPlan, error: str | None = None) -> dict[str, Any]:
    """Record the outcome in the status store and the log, release the lock, and return the summary."""
    ws = Workspace(settings)
    staging = ws.staging(run)
    try:
        done = ws.status.get_run(run.run_id)
        if done["state"] == SUCCESS and not staging.exists("plan.json"):
            # Reported already (the staging folder goes with a successful report): a retry changes nothing.
            return {"mode": run.mode, **{k: done[k] for k in ("extracted", "inserted", "updated", "deleted",
                                                              "unchanged", "failed", "duration_s")}}
        diff_counts = _summed_counts(staging, "diff")
        commit_counts = staging.read_json("commit.json") if staging.exists("commit.json") else None
        if error is None and commit_counts is None:
            error = "the run ended before its commit step completed"
        accepted = commit_counts if (commit_counts and not run.dry_run) else diff_counts
        failures = _failures(staging)
        summary_counts = {
            "extracted": diff_counts.get("extracted", 0),
            "inserted": accepted.get("inserted", 0),
            "updated": accepted.get("updated", 0),
            "deleted": accepted.get("deleted", 0),
            "unchanged": diff_counts.get("unchanged", 0),
            "failed": len(failures) if not run.dry_run else 0,
        }
        ws.status.record_failures(run.run_id, failures[:MAX_FAILURES_RECORDED])
        row = ws.status.finish_run(run.run_id, FAILED if error else SUCCESS, summary_counts, error)
        summary = {"mode": run.mode, **summary_counts, "duration_s": row["duration_s"]}
        if run.dry_run:
            summary["dry_run"] = True
        if error:
            summary["error"] = error
        duration = row["duration_s"] or 0
        log.info(
            "report: run %s %s in %.2fs (%.0f records/s): %s",
            run.run_id, "FAILED" if error else "succeeded", duration,
            summary_counts["extracted"] / duration if duration else 0, orjson.dumps(summary).decode(),
        )
        for failure in failures[:20]:
            log.warning("report: %s %s/%s not in sync: %s", failure["status"], failure["sku"], failure["store_view_code"], failure["reason"])
        if not error:
            staging.remove(recursive=True)
        return summary
    finally:
        ws.status.release_lock(run.run_id)
        ws.close()


def _parts_present(staging: StateLocation, name: str, ext: str = "parquet") -> int:
    return len(staging.fs.glob(staging.path(all_parts(name, ext))))


def _require_parts(staging: StateLocation, run: RunPlan, names: tuple[str, ...]) -> None:
    for name in names:
        found = _parts_present(staging, name)
        if found != run.buckets:
            raise RuntimeError(f"commit needs the {name} file of all {run.buckets} bucket(s), found {found}")


def _summed_counts(staging: StateLocation, name: str) -> dict[str, int]:
    """A step's counts, added up over the buckets."""
    total: dict[str, int] = {}
    for path in sorted(staging.fs.glob(staging.path(all_parts(name, "json")))):
        for key, value in staging.read_json(path.rsplit("/", 1)[-1]).items():
            total[key] = total.get(key, 0) + value
    return total


def _failures(staging: StateLocation) -> list[dict[str, Any]]:
    if not (_parts_present(staging, "results") and _parts_present(staging, "delta")):
        return []
    rows = duckdb_session.fetch_all(
        "SELECT d.product_id, d.sku, d.store_view_code, d.op, r.status, r.reason "
        "FROM read_parquet(?) r JOIN read_parquet(?) d USING (sku, store_view_code) WHERE r.status <> 'ok' "
        "ORDER BY d.sku, d.store_view_code",
        [staging.url_of(all_parts("results")), staging.url_of(all_parts("delta"))],
    )
    return [dict(zip(("product_id", "sku", "store_view_code", "op", "status", "reason"), r)) for r in rows]


# ---- the whole run (CLI) ----------------------------------------------------------------


CRASH_BEFORE_COMMIT_ENV = "CATALOG_SYNC_TEST_CRASH_BEFORE_COMMIT"


def run_sync(settings: SyncSettings, request: SyncRequest) -> dict[str, Any]:
    """The whole sync in this process (the CLI). The lock records this process so a crash frees it."""
    if not request.holder_process:
        request = replace(request, holder_process=this_process())
    run = plan(settings, request)
    error: str | None = None
    try:
        for bucket in range(run.buckets):
            extract(settings, run, bucket)
            diff(settings, run, bucket)
            export(settings, run, bucket)
        if os.environ.get(CRASH_BEFORE_COMMIT_ENV) == "1":
            # Fault-injection hook for the tests: die like a killed worker, between export and commit.
            log.error("%s=1: crashing between export and commit", CRASH_BEFORE_COMMIT_ENV)
            os._exit(70)
        commit(settings, run)
    except Exception as exc:  # reported, then re-raised by the caller's exit code
        log.exception("sync failed")
        error = f"{type(exc).__name__}: {exc}"
    return report(settings, run, error)
