"""Which products a run extracts: every one (full), or what changed since the last sync.

Changed means: ids in Magento's changelogs between the plan's watermarks, the products carrying a
label that changed since the last run (Magento logs no product for it; see plan.changed_labels), the products whose
routes a category change moves (a category renamed, moved, enabled or disabled: Magento logs no product for it
either; see recategorized_ids), the other side of
their configurable links (now and as last sent), the items still to retry, the items whose
body may have changed with no change in Magento (a special price's window opening or closing,
found from the day each item was judged on), the products of store views no longer exported,
and, without changelogs, the deleted ones a key scan finds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from catalog_sync.magento import categories
from catalog_sync.magento.catalog_reader import LABEL_BUCKETS, CatalogContext, MagentoCatalogReader
from catalog_sync.magento.change_detection import UPDATED_AT, ChangeDetector, ChangeMarks
from catalog_sync.magento.url_keys import UrlKeyCheck
from catalog_sync.run_clock import local_date
from catalog_sync.state import duckdb_session
from catalog_sync.state.snapshot import PENDING_SCHEMA, SNAPSHOT_SCHEMA
from catalog_sync.steps.buckets import bucket_of
from catalog_sync.steps.modes import FULL, SKUS
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import RETRYABLE, UNCONFIRMED, FeedScope, canonical, sha1_hex

log = logging.getLogger("catalog_sync.steps")


def id_chunks(ws: Workspace, run: RunPlan, reader: MagentoCatalogReader, ctx: CatalogContext, size: int,
              bucket: int = 0, url_keys: UrlKeyCheck | None = None) -> tuple[Iterator[list[int]], set[int] | None]:
    """The product ids to extract, in chunks: all of them (full), or those in an incremental run's
    scope; with buckets, only those whose sku falls in `bucket`. Also returns the scope (None: full).
    `url_keys`: the run's check with its shared values read, if the caller has it."""
    n = run.buckets
    if run.mode == FULL:
        keep = (lambda sku: bucket_of(sku, n) == bucket) if n > 1 else None
        return reader.iter_all_id_chunks(size, keep), None
    snapshot = SnapshotView(ws, run)
    scope: set[int] = set()
    if run.mode == SKUS:
        scope.update(reader.ids_for_skus(run.skus))
        scope.update(snapshot.product_ids("sku IN (SELECT unnest(?))", [run.skus]))
    else:
        detector = ChangeDetector(ws.source)
        since, until = ChangeMarks.from_dict(run.since_marks), ChangeMarks.from_dict(run.until_marks)
        changed = detector.changed_ids(since, until)
        # Labels Magento logs no product for (an option relabelled, say): the products that carry them.
        relabelled = reader.label_products(run.label_changes) - changed if run.label_changes else set()
        changed |= relabelled
        recategorized = recategorized_ids(ws, run, reader, ctx, snapshot) - changed
        changed |= recategorized
        # Magento logs only the child when a configurable link changes; re-read both sides,
        # as linked now (source) and as linked when last sent (snapshot).
        linked = reader.linked_ids(changed) | snapshot.linked_ids(changed)
        gone = snapshot.product_ids() - detector.all_ids() if until.method == UPDATED_AT else set()
        # Items whose sent body is unknown (kept by key only, after an upgrade) are compared again.
        retries = snapshot.retryable_ids(run.started_at) | snapshot.product_ids("sha1 IS NULL")
        today = {v.code: local_date(run.at, v.timezone).isoformat() for v in ctx.store_views}
        rechecks = snapshot.due_for_recheck(today)
        dropped_views = snapshot.product_ids("store_view_code NOT IN (SELECT unnest(?))", [sorted(today)])
        scope = changed | linked | gone | retries | rechecks | dropped_views
        url_keys = url_keys or UrlKeyCheck.from_context(ctx)
        # A product that takes another's url_key quarantines both: the other is judged again too.
        peers = reader.url_key_peers(scope, url_keys) if url_keys and scope else set()
        scope |= peers
        log.info(
            "scope: %d changed product id(s) since the last sync (%d of them carry a label changed since: %s; "
            "%d are in a category whose slug appeared or went away), "
            "%d linked configurable(s)/variant(s), %d retried, %d whose body may change today (price windows), "
            "%d in store views no longer exported, %d gone, %d sharing a url_key with one of them",
            len(changed), len(relabelled), _describe_labels(run.label_changes), len(recategorized), len(linked - changed),
            len(retries),
            len(rechecks), len(dropped_views), len(gone), len(peers),
        )
    if n > 1:
        # By the current sku; a product gone from Magento goes to bucket 0, whose diff then
        # deletes its items whatever their sku (the incremental diff keys on product ids).
        skus = reader.skus_for_ids(scope)
        scope = {i for i in scope if (bucket_of(skus[i], n) if i in skus else 0) == bucket}
    ordered = sorted(scope)
    return (ordered[i:i + size] for i in range(0, len(ordered), size)), scope


def recategorized_ids(ws: Workspace, run: RunPlan, reader: MagentoCatalogReader, ctx: CatalogContext,
                      snapshot: SnapshotView) -> set[int]:
    """The products whose routes a category change moves, read-only, from the target's categories feed as the
    target holds it (the snapshot) and as the catalog gives it now: a category the target does not hold yet (enabled,
    moved, or given another url_key) re-reads the products assigned to it in Magento; one the target holds but the
    catalog no longer gives (disabled, moved away, deleted) re-reads the products whose sent routes name it; and one
    held with another body (renamed, or two categories that swapped url_keys: the key is another category's now)
    re-reads both. A target without a categories feed: none."""
    mapper = ws.target.mapper(ctx)
    if not hasattr(mapper, "category_entries"):
        return set()
    now: dict[str, int] = {}  # key (canonical JSON text) -> category id
    bodies: dict[str, str] = {}  # key -> sha1 of the body
    for cid, item in mapper.category_entries():
        key = canonical(item.key).decode()
        now[key], bodies[key] = cid, sha1_hex(canonical(item.body))
    base = ws.snapshots.feed_relation(run.base(mapper.category_feed))
    held: dict[str, str] = dict(duckdb_session.fetch_all(f"SELECT key, sha1 FROM {base}")) if base else {}
    changed = {key for key in now if held.get(key) != bodies.get(key)}
    found = categories.category_products(reader.engine, {cid for key, cid in now.items() if key in changed})
    # A store view no longer exported is not asked about here: its products go with it (dropped_views).
    for where, params in mapper.routes_naming(sorted((held.keys() - now.keys()) | (changed & held.keys()))):
        found |= snapshot.product_ids(where, params)
    return found


def _describe_labels(changes: dict[str, list[int]]) -> str:
    if not changes:
        return "none"
    return ", ".join(f"{kind} labels in {len(buckets)} of {LABEL_BUCKETS} buckets" for kind, buckets in sorted(changes.items()))


class SnapshotView:
    """Questions about the product feeds of the snapshot the run planned against."""

    def __init__(self, ws: Workspace, run: RunPlan):
        feeds = [f for f in ws.target.feeds if f.scope is FeedScope.PRODUCT]
        merged = [r for f in feeds if (r := ws.snapshots.feed_relation(run.base(f.name)))]
        # Every column of the snapshot's schema, also from files written before one existed (read as NULL).
        self.items = " UNION ALL BY NAME ".join(
            [f"SELECT * FROM {r}" for r in merged] + [duckdb_session.empty_select(SNAPSHOT_SCHEMA)]) if merged else None
        self.pending = [ws.snapshot_url(run.base(f.name).pending) for f in feeds if run.base(f.name).pending]

    @staticmethod
    def _ids(source: str | None, where: str, params: list) -> set[int]:
        if source is None:
            return set()
        rows = duckdb_session.fetch_all(
            f"SELECT DISTINCT product_id FROM ({source}) WHERE product_id IS NOT NULL AND ({where})", params)
        return {int(r[0]) for r in rows}

    def product_ids(self, where: str = "true", params: list | None = None) -> set[int]:
        return self._ids(self.items, where, params or [])

    def retryable_ids(self, now: str) -> set[int]:
        """Items to retry, and unconfirmed ones whose late-write window has passed at `now`."""
        if not self.pending:
            return set()
        files = "[" + ", ".join(duckdb_session.sql_literal(f) for f in self.pending) + "]"
        source = (f"SELECT * FROM read_parquet({files}, union_by_name = true) "
                  f"UNION ALL BY NAME {duckdb_session.empty_select(PENDING_SCHEMA)}")
        return self._ids(source, "status = ? OR (status = ? AND resend_after <= ?)", [RETRYABLE, UNCONFIRMED, now])

    def due_for_recheck(self, today: dict[str, str]) -> set[int]:
        """Items whose recheck day (a window's first day, or the day after its last) has come in
        their store view's local date."""
        views = sorted(today.items())
        return self._ids(
            self.items,
            "recheck_on IS NOT NULL AND recheck_on <= "
            "map_extract(map(?::VARCHAR[], ?::VARCHAR[]), store_view_code)[1]",
            [[v for v, _ in views], [d for _, d in views]],
        )

    def linked_ids(self, ids: set[int]) -> set[int]:
        if not self.items or not ids:
            return set()
        rows = duckdb_session.fetch_all(
            f"SELECT DISTINCT unnest(linked_product_ids) FROM ({self.items}) "
            "WHERE product_id IN (SELECT unnest(?))", [sorted(ids)])
        return {int(r[0]) for r in rows if r[0] is not None}
