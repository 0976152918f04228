"""commit: apply only what the target accepted to a new snapshot version, then swap the manifest.

Per feed: the base version's items, less every key the target accepted a change of, plus the
accepted upserts as they were sent; and the items not in sync yet (pending). What changed is
written as one delta file on the feed's base (state.snapshot), so the cost follows the change;
past the compaction share, the merged view is written as a new base instead. A feed with
nothing accepted keeps its files. The manifest swap, which covers every feed and the change
watermarks, is the single commit point.

The late-write guard: the target may apply a request it never answered (a timeout, a dropped
connection) at any time later, after a newer body. So every item such a request held is kept
as `unconfirmed` with `resend_after` = now + the late-write window, and stays so until a run
planned at or after that instant has sent its newest body (or its delete) and got an answer:
that send is then the last write the target applies, if it applies any request within the window.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from catalog_sync import clock
from catalog_sync.magento.change_detection import ChangeMarks
from catalog_sync.settings import SyncSettings
from catalog_sync.state import duckdb_session, sync_lock
from catalog_sync.state.duckdb_session import file_or_empty_view, relation_or_empty_view, sql_literal
from catalog_sync.state.snapshot import (
    MAX_DELTAS,
    PENDING_SCHEMA,
    SNAPSHOT_ROW_GROUP_SIZE,
    SNAPSHOT_SCHEMA,
    DeltaFile,
    FeedFiles,
)
from catalog_sync.state.staging import StagingFolder
from catalog_sync.steps.export import RESULTS_SCHEMA
from catalog_sync.steps.modes import FULL, INCREMENTAL, SKUS
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import OK, UNCONFIRMED, FeedScope, FeedSpec, primary_feed

log = logging.getLogger("catalog_sync.steps")


def commit(settings: SyncSettings, run: RunPlan) -> dict:
    with Workspace(settings) as ws:
        staging = ws.staging(run)
        if run.dry_run:
            log.info("commit: dry run, snapshot left at v%d", run.base_version)
            counts = {"feeds": {}, "dry_run": True}
            staging.write_json(counts, staging.COMMIT)
            return counts
        manifest = ws.snapshots.read_manifest()
        if manifest.run_id == run.run_id and staging.exists(staging.COMMIT):
            log.info("commit: run %s is already committed as v%d; nothing to do", run.run_id, manifest.version)
            return staging.read_json(staging.COMMIT)
        # Only the lock's holder may move the snapshot: a run that lost it (unlocked, taken over) fails here.
        sync_lock.require_lock(ws.status, run.run_id)
        if manifest.version != run.base_version:
            raise RuntimeError(
                f"the snapshot is at v{manifest.version} but this run planned against v{run.base_version} "
                f"(last committed by {manifest.run_id}); start a new run"
            )
        _require_results(staging, run, ws.target.feeds)
        version = manifest.version + 1
        feeds: dict[str, FeedFiles] = {}
        counts: dict[str, dict[str, int]] = {}
        with duckdb_session.connect() as con:
            con.execute(_scope_view(staging, run))
            for feed in ws.target.feeds:
                feeds[feed.name], counts[feed.name] = _commit_feed(con, ws, settings, run, staging, feed, version)
        sync_lock.require_lock(ws.status, run.run_id)  # again: writing the files may have taken long
        new = ws.snapshots.swap_manifest(manifest, feeds, None if run.mode == SKUS else ChangeMarks.from_dict(run.until_marks),
                                         run.run_id, fingerprints=_fingerprints(run, manifest.fingerprints))
        primary = primary_feed(ws.target.feeds).name
        result = {"version": new.version, "feeds": counts, **{k: counts[primary][k] for k in ("inserted", "updated", "deleted")}}
        staging.write_json(result, staging.COMMIT)
    log.info("commit: snapshot v%d -> v%d: %s", run.base_version, new.version, "; ".join(
        f"{name}: {c['items']} in sync ({c['inserted']} inserted, {c['updated']} updated, {c['deleted']} deleted), "
        f"{c['pending']} pending, " + _files_note(c) for name, c in counts.items()))
    return result


def _files_note(counts: dict) -> str:
    if not counts["rewritten"]:
        return "unchanged files"
    return "compacted into a new base" if counts["compacted"] else f"a delta file ({counts['deltas']} on the base)"


def _require_results(staging: StagingFolder, run: RunPlan, feeds: tuple[FeedSpec, ...]) -> None:
    """Every delta has its results: an export that did not finish must not be committed."""
    for feed in feeds:
        for delta in staging.parts_of("delta", feed.name):
            part = delta.rsplit("-", 1)[-1].removesuffix(".parquet")
            ops = ("upsert", "delete")
            present = [op for op in ops if staging.exists(staging.results(feed.name, f"{part}-{op}"))]
            if len(present) != len(ops):
                raise RuntimeError(f"commit needs the export results of {feed.name} ({part}); found {present or 'none'}")


def _scope_view(staging: StagingFolder, run: RunPlan) -> str:
    if run.mode == FULL:
        return "CREATE TEMP VIEW scope AS SELECT NULL::BIGINT AS product_id WHERE false"
    files = ", ".join(sql_literal(staging.url_of(staging.scope(b))) for b in range(run.buckets))
    return f"CREATE TEMP VIEW scope AS SELECT product_id FROM read_parquet([{files}])"


def _commit_feed(con, ws: Workspace, settings: SyncSettings, run: RunPlan, staging: StagingFolder, feed: FeedSpec,
                 version: int) -> tuple[FeedFiles, dict[str, int]]:
    base = run.base(feed.name)
    deltas = [staging.url_of(d) for d in staging.parts_of("delta", feed.name)]
    results = [staging.url_of(r) for r in staging.parts_of("results", feed.name)]
    q = sql_literal
    con.execute(relation_or_empty_view("base", ws.snapshots.feed_relation(base), SNAPSHOT_SCHEMA))
    con.execute(file_or_empty_view("old_pending", ws.snapshot_url(base.pending), PENDING_SCHEMA))
    if deltas:
        con.execute(f"CREATE OR REPLACE TEMP VIEW d AS SELECT * FROM read_parquet([{', '.join(q(d) for d in deltas)}])")
        # (union_by_name: results written before `unconfirmed` existed read it as NULL)
        con.execute(f"CREATE OR REPLACE TEMP VIEW res AS SELECT key, status, reason, coalesce(unconfirmed, false) AS unconfirmed "
                    f"FROM (SELECT * FROM read_parquet([{', '.join(q(r) for r in results)}], union_by_name = true) "
                    f"UNION ALL BY NAME {duckdb_session.empty_select(RESULTS_SCHEMA)})")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW d AS SELECT NULL::VARCHAR AS op, NULL::VARCHAR AS key WHERE false")
        con.execute("CREATE OR REPLACE TEMP VIEW res AS SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS status, "
                    "NULL::VARCHAR AS reason, false AS unconfirmed WHERE false")
    # Keys only: bodies stream from the delta in the COPY below, so memory stays bounded.
    con.execute(f"CREATE OR REPLACE TEMP TABLE accepted AS SELECT d.key, d.op FROM d JOIN res USING (key) "
                f"WHERE res.status = '{OK}' AND d.op IN ('insert', 'update', 'delete')")
    by_op = dict(con.execute("SELECT op, count(*) FROM accepted GROUP BY op").fetchall())
    # Old pending items stay while this run did not look at them (catalog feeds are looked at whole).
    keep_old = "false" if run.mode == FULL or feed.scope is FeedScope.CATALOG else \
        "(product_id IS NULL OR product_id NOT IN (SELECT product_id FROM scope)) AND key NOT IN (SELECT key FROM d)"
    resend_after = (clock.now() + timedelta(seconds=settings.late_write_window_s)).isoformat(timespec="seconds")
    item = "d.key, d.product_id, d.sku, d.store_view_code, CASE WHEN d.op = 'delete' THEN 'delete' ELSE 'upsert' END AS op"
    pending_sql = f"""
        SELECT * FROM old_pending WHERE status <> '{UNCONFIRMED}' AND {keep_old}
        UNION ALL BY NAME
        -- an unconfirmed item stays so until a send after its window got an answer, or a new one replaces it
        SELECT * FROM old_pending o WHERE status = '{UNCONFIRMED}'
          AND key NOT IN (SELECT key FROM res WHERE unconfirmed)
          AND NOT (resend_after <= {q(run.started_at)} AND key IN (SELECT key FROM res WHERE NOT unconfirmed))
        UNION ALL BY NAME
        SELECT {item}, res.status, res.reason, d.sha1, {q(run.run_id)} AS run_id
        FROM d JOIN res USING (key) WHERE res.status <> '{OK}'
        UNION ALL BY NAME
        SELECT {item}, '{UNCONFIRMED}' AS status,
               'a request got no answer; re-sent after ' || {q(resend_after)} || ' in case the target applies it late' AS reason,
               d.sha1, {q(run.run_id)} AS run_id, {q(resend_after)} AS resend_after
        FROM d JOIN res USING (key) WHERE res.unconfirmed"""
    changed = bool(by_op) or base.file is None
    accepted_rows = sum(by_op.values())
    compact = base.file is None or len(base.deltas) >= MAX_DELTAS or \
        base.delta_rows + accepted_rows > settings.compact_share * base.base_rows
    file_rel, pending_rel = ws.snapshots.new_files(feed.name, version)
    files = base
    if changed:
        ws.state.makedirs(file_rel.rsplit("/", 1)[0])
        columns = ", ".join(f"d.{f.name}" for f in SNAPSHOT_SCHEMA if f.name not in ("exported_at", "run_id"))
        upserts = f"""SELECT {columns}, {q(run.instant)} AS exported_at, {q(run.run_id)} AS run_id
            FROM d SEMI JOIN (SELECT key FROM accepted WHERE op <> 'delete') a USING (key)"""
        if compact:
            con.execute(f"""COPY (
                SELECT base.* FROM base ANTI JOIN accepted a USING (key) UNION ALL BY NAME {upserts}
            ) TO {q(ws.snapshot_url(file_rel))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})""")
            rows = con.execute(f"SELECT count(*) FROM read_parquet({q(ws.snapshot_url(file_rel))})").fetchone()[0]
            files = FeedFiles(file_rel, items=rows)
        else:
            delta_rel = ws.snapshots.new_delta(feed.name, version)
            con.execute(f"""COPY (
                SELECT *, false AS deleted FROM ({upserts})
                UNION ALL BY NAME
                SELECT d.key, d.product_id, d.sku, d.store_view_code, {q(run.instant)} AS exported_at,
                       {q(run.run_id)} AS run_id, true AS deleted
                FROM d SEMI JOIN (SELECT key FROM accepted WHERE op = 'delete') a USING (key)
            ) TO {q(ws.snapshot_url(delta_rel))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})""")
            files = replace(base, deltas=(*base.deltas, DeltaFile(delta_rel, accepted_rows)), base_items=base.base_rows)
            merged = ws.snapshots.feed_relation(files)
            files = replace(files, items=con.execute(f"SELECT count(*) FROM {merged}").fetchone()[0])
    # Pending items are few: their file is written every time.
    ws.state.makedirs(pending_rel.rsplit("/", 1)[0])
    con.execute(f"COPY ({pending_sql}) TO {q(ws.snapshot_url(pending_rel))} (FORMAT parquet)")
    new_pending, not_accepted = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status <> '{UNCONFIRMED}') "
        f"FROM read_parquet({q(ws.snapshot_url(pending_rel))})").fetchone()
    counts = {"inserted": by_op.get("insert", 0), "updated": by_op.get("update", 0), "deleted": by_op.get("delete", 0),
              "items": files.items, "pending": new_pending, "not_accepted": not_accepted, "rewritten": changed,
              "compacted": changed and compact, "deltas": len(files.deltas)}
    return replace(files, pending=pending_rel, pending_items=new_pending, pending_bytes=None), counts


# Fingerprints an incremental run brings up to date: it re-read the products whose labels changed, and
# deleted the items of store views no longer active (the only shop-setting change that is not a full reconcile).
_MOVED_BY_INCREMENTAL = ("labels", "shop_settings")


def _fingerprints(run: RunPlan, kept: dict) -> dict | None:
    """A full reconcile made every body from the current fingerprints; an incremental run moves on those it
    delivered (_MOVED_BY_INCREMENTAL) and keeps the rest; others keep all (None)."""
    if run.mode == FULL:
        return run.fingerprints
    if run.mode == INCREMENTAL:
        moved = {k: run.fingerprints[k] for k in _MOVED_BY_INCREMENTAL
                 if isinstance(kept.get(k), dict) and isinstance(run.fingerprints.get(k), dict)}
        return {**kept, **moved} if moved else None
    return None
