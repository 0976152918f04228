"""Which products a run extracts: every one (full), or what changed since the last sync.

Changed means: ids in Magento's changelogs between the plan's watermarks, the other side of
their configurable links (now and as last exported), the items still to retry, the products
whose special price started or ended since they were exported (Magento logs nothing for a
date passing), and, without changelogs, the deleted ones a key scan finds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from catalog_sync.state import duckdb_session
from catalog_sync.steps.buckets import bucket_of
from catalog_sync.magento.catalog_reader import CatalogContext, MagentoCatalogReader
from catalog_sync.magento.change_detection import UPDATED_AT, ChangeDetector, ChangeMarks
from catalog_sync.run_clock import local_date
from catalog_sync.steps.modes import FULL, SKUS

if TYPE_CHECKING:
    from catalog_sync.steps.pipeline import RunPlan, Workspace

log = logging.getLogger("catalog_sync.steps.pipeline")


def id_chunks(ws: Workspace, run: RunPlan, reader: MagentoCatalogReader, ctx: CatalogContext, size: int,
              bucket: int = 0) -> tuple[Iterator[list[int]], set[int] | None, set[int]]:
    """The product ids to extract, in chunks: all of them (full), or the changed ones, their linked
    configurables/variants, the retries and the special-price window crossings; with buckets, only
    those whose sku falls in `bucket`. Also returns the scope (None: full) and the ids to re-send
    even when unchanged."""
    n = run.buckets
    if run.mode == FULL:
        keep = (lambda sku: bucket_of(sku, n) == bucket) if n > 1 else None
        return reader.iter_all_id_chunks(size, keep), None, set()
    scope: set[int] = set()
    forced: set[int] = set()
    if run.mode == SKUS:
        scope.update(reader.ids_for_skus(run.skus))
        if run.base_snapshot:
            scope.update(_snapshot_ids(ws, run.base_snapshot, "sku IN (SELECT unnest(?))", [run.skus]))
    else:
        detector = ChangeDetector(ws.source)
        since, until = ChangeMarks.from_dict(run.since_marks), ChangeMarks.from_dict(run.until_marks)
        changed = detector.changed_ids(since, until)
        scope.update(changed)
        # Magento logs only the child when a configurable link changes; re-read both sides,
        # as linked now (source) and as linked when last exported (snapshot).
        linked = reader.linked_ids(changed)
        if run.base_snapshot and changed:
            linked |= _snapshot_linked_ids(ws, run.base_snapshot, changed)
        scope.update(linked)
        if until.method == UPDATED_AT and run.base_snapshot:
            # No changelog: a key-only scan finds the deletes.
            gone = _snapshot_ids(ws, run.base_snapshot) - detector.all_ids()
            scope.update(gone)
        retries = _snapshot_ids(ws, run.base_pending, "status <> 'rejected'") if run.base_pending else set()
        scope.update(retries)
        if run.base_snapshot:
            # Nothing changed in Magento, but the store's date did: a special price that started or
            # ended since the item was judged changes the price the target must show.
            today = {v.code: local_date(run.at, v.timezone).isoformat() for v in ctx.store_views}
            forced = _special_price_crossings(ws, run.base_snapshot, today)
            scope.update(forced)
        log.info(
            "extract: %d changed product id(s) since the last sync, %d linked configurable(s)/variant(s), %d retried, "
            "%d whose special price started or ended",
            len(changed), len(linked - changed), len(retries), len(forced),
        )
    if n > 1:
        # By the current sku; a product gone from Magento goes to bucket 0, whose diff then
        # deletes its items whatever their sku (the incremental diff keys on product ids).
        skus = reader.skus_for_ids(scope)
        scope = {i for i in scope if (bucket_of(skus[i], n) if i in skus else 0) == bucket}
    ordered = sorted(scope)
    return (ordered[i:i + size] for i in range(0, len(ordered), size)), scope, forced & scope


def _special_price_crossings(ws: Workspace, relative: str, today: dict[str, str]) -> set[int]:
    """Products with a special price that is active on the store view's local date today but was not
    on the day the item was judged on, or the other way round (Magento's rule: from-date to to-date,
    both inclusive, in the store's time zone). An item with no recorded day (sent before the state
    recorded it) is re-judged once when its special price has a window."""
    views = list(today.items())
    rows = duckdb_session.fetch_all(
        """WITH items AS (
               SELECT s.product_id, TRY_CAST(s.judged_on AS DATE) AS judged, t.today::DATE AS today,
                      TRY_CAST(json_extract_string(s.payload, '$.special_price_from') AS DATE) AS since,
                      TRY_CAST(json_extract_string(s.payload, '$.special_price_to') AS DATE) AS until
               FROM read_parquet(?) s
               JOIN (SELECT unnest(?::VARCHAR[]) AS code, unnest(?::VARCHAR[]) AS today) t ON t.code = s.store_view_code
               WHERE NOT contains(s.payload, '"special_price":null'))
           SELECT DISTINCT product_id FROM items
           WHERE (since IS NOT NULL OR until IS NOT NULL) AND (
                 judged IS NULL
                 OR ((since IS NULL OR since <= judged) AND (until IS NULL OR judged <= until))
                    <> ((since IS NULL OR since <= today) AND (until IS NULL OR today <= until)))""",
        [ws.snapshots.file_url(relative), [v for v, _ in views], [d for _, d in views]],
    )
    return {int(r[0]) for r in rows}


def _snapshot_linked_ids(ws: Workspace, relative: str, ids: set[int]) -> set[int]:
    path = ws.snapshots.file_url(relative)
    rows = duckdb_session.fetch_all(
        "SELECT DISTINCT unnest(linked_product_ids) FROM read_parquet(?) WHERE product_id IN (SELECT unnest(?))",
        [path, sorted(ids)],
    )
    return {int(r[0]) for r in rows if r[0] is not None}


def _snapshot_ids(ws: Workspace, relative: str, where: str = "true", params: list | None = None) -> set[int]:
    path = ws.snapshots.file_url(relative)
    rows = duckdb_session.fetch_all(f"SELECT DISTINCT product_id FROM read_parquet(?) WHERE {where}", [path, *(params or [])])
    return {int(r[0]) for r in rows}
