"""report: record the run's outcome in the status store and the log, release the lock, return the summary.

The headline counts (inserted, updated, deleted, unchanged, failed) are the primary feed's
(products); `feeds` has the same per feed. They count what the target accepted: a run that
failed before its commit accepted nothing, whatever it sent. `not_accepted` counts the items of
every feed the target does not hold as Magento has them after the run (rejected, held, still to
retry; this run's or earlier ones'): a run that succeeded with some is still a success, and says
so (the CLI exits EXIT_NOT_ACCEPTED) until they are fixed or re-sent.

`not_carried` counts, by kind, the products of the run's scope (a full run: the whole catalog) whose
Magento data holds something the ingestion contract cannot carry and that is not sent (custom
options, downloadable links, ...: magento/not_carried.py), summed over the buckets' extracts;
`not_carried_products` counts each such product once. Kinds no product holds are left out.

`layer_gaps` counts the fields where a store view that is a layer over its locale's base view differs
from it in a way a layer cannot carry (see the target's mapping); `layer_gaps_listed` names the
first of them, each with its product (sku), its view, its base view and the field.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from catalog_sync.magento import not_carried as nc
from catalog_sync.settings import SyncSettings
from catalog_sync.state import duckdb_session
from catalog_sync.state.staging import StagingFolder
from catalog_sync.state.status_store import FAILED, SUCCESS
from catalog_sync.steps.export import DEADLINE_REASON, RESULTS_SCHEMA
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import OK, primary_feed

log = logging.getLogger("catalog_sync.steps")

MAX_FAILURES_RECORDED = 10_000
MAX_GAPS_LISTED = 1_000  # layer gaps named in the summary (all are counted)
MAX_GAPS_LOGGED = 50
SUMMARY_KEYS = ("extracted", "inserted", "updated", "deleted", "unchanged", "failed")


def report(settings: SyncSettings, run: RunPlan, error: str | None = None) -> dict[str, Any]:
    with Workspace(settings) as ws:
        staging = ws.staging(run)
        try:
            done = ws.status.get_run(run.run_id)
            if done["state"] == SUCCESS and not staging.exists(staging.PLAN):
                # Reported already (the staging folder goes with a successful report): a retry changes nothing.
                return {"mode": run.mode, **{k: done[k] for k in (*SUMMARY_KEYS, "duration_s")}, "feeds": done["feeds"]}
            feeds = [f.name for f in ws.target.feeds]
            primary = primary_feed(ws.target.feeds).name
            diffs = [staging.read_json(n) for n in staging.glob("diff-b*.json")]
            committed = staging.read_json(staging.COMMIT) if staging.exists(staging.COMMIT) else None
            if error is None and committed is None:
                error = "the run ended before its commit step completed"
            failures = [] if run.dry_run else _failures(staging, feeds)
            per_feed = {name: _feed_counts(name, diffs, committed, failures, run.dry_run) for name in feeds}
            counts = {"extracted": sum(d["extracted"] for d in diffs), **per_feed[primary]}
            not_accepted = _not_accepted(committed, failures)
            not_carried, not_carried_products = _not_carried(staging)
            gap_count = sum(int(d.get("layer_gap_count") or 0) for d in diffs)
            gaps = [g for d in diffs for g in d.get("layer_gaps") or []][:MAX_GAPS_LISTED]
            ws.status.record_failures(run.run_id, failures[:MAX_FAILURES_RECORDED])
            row = ws.status.finish_run(run.run_id, FAILED if error else SUCCESS, {**counts, "not_accepted": not_accepted},
                                       error, feeds=per_feed)
            summary: dict[str, Any] = {"mode": run.mode, "mode_reason": run.mode_reason, **counts,
                                       "duration_s": row["duration_s"], "feeds": per_feed,
                                       "not_accepted": not_accepted, "unconfirmed": _unconfirmed(staging, feeds),
                                       "not_carried": not_carried, "not_carried_products": not_carried_products,
                                       "layer_gaps": gap_count, "layer_gaps_listed": gaps}
            if any(f["reason"] == DEADLINE_REASON for f in failures):
                summary["deadline_reached"] = True
            if run.dry_run:
                summary["dry_run"] = True
            if error:
                summary["error"] = error
            duration = row["duration_s"] or 0
            log.info("report: run %s %s in %.2fs (%.0f records/s): %s", run.run_id, "FAILED" if error else "succeeded",
                     duration, counts["extracted"] / duration if duration else 0, orjson.dumps(summary).decode())
            log.info("report: %s", _not_carried_line(not_carried, not_carried_products))
            if gap_count:
                log.warning("report: %d field(s) of store views that are layers differ from their base view where a "
                            "layer cannot say so; those views show the base's (see README, 'Store views that share a "
                            "locale'):", gap_count)
                for gap in gaps[:MAX_GAPS_LOGGED]:
                    log.warning("report:   %s in %s (layer over %s): %s", gap["sku"], gap["store_view_code"],
                                gap["base_view_code"], gap["field"])
            for failure in failures[:20]:
                log.warning("report: %s %s %s not in sync: %s", failure["status"], failure["feed"], failure["item_key"],
                            failure["reason"])
            if summary["unconfirmed"]:
                log.warning("report: %d item(s) were in requests the target never answered; it may apply those late, so "
                            "the first run after the late-write window (%ds) sends them again", summary["unconfirmed"],
                            settings.late_write_window_s)
            if not error:
                staging.remove(recursive=True)
            return summary
        finally:
            ws.status.release_lock(run.run_id)


def _feed_counts(feed: str, diffs: list[dict], committed: dict | None, failures: list[dict], dry_run: bool) -> dict[str, int]:
    seen = [d["feeds"][feed] for d in diffs if feed in d["feeds"]]
    if dry_run:  # what would have been sent
        accepted = {k: sum(s[k] for s in seen) for k in ("inserted", "updated", "deleted")}
    else:
        accepted = {k: (committed or {}).get("feeds", {}).get(feed, {}).get(k, 0) for k in ("inserted", "updated", "deleted")}
    return {**accepted, "unchanged": sum(s["unchanged"] for s in seen),
            "failed": sum(1 for f in failures if f["feed"] == feed)}


def _not_accepted(committed: dict | None, failures: list[dict]) -> int:
    """Items not in sync after the run: the committed snapshot's (dry runs and failed runs: this run's)."""
    if committed and "feeds" in committed and not committed.get("dry_run"):
        return sum(c.get("not_accepted", c.get("pending", 0)) for c in committed["feeds"].values())
    return len(failures)


def _not_carried(staging: StagingFolder) -> tuple[dict[str, int], int]:
    """The buckets' extracts' counts of what the contract cannot carry: ({kind: products}, products)."""
    extracts = [staging.read_json(n) for n in staging.glob("extract-b*.json")]
    return (nc.summed([e.get("not_carried") or {} for e in extracts]),
            sum(int(e.get("not_carried_products") or 0) for e in extracts))


def _not_carried_line(kinds: dict[str, int], products: int) -> str:
    if not kinds:
        return "no product in this run holds data the ingestion API cannot carry"
    listed = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], nc.KINDS.index(kv[0]))))
    return (f"{products} product(s) hold data the ingestion API cannot carry, not sent: {listed} "
            "(see README, 'What the contract cannot carry')")


def _unconfirmed(staging: StagingFolder, feeds: list[str]) -> int:
    results = [staging.url_of(r) for feed in feeds for r in staging.parts_of("results", feed)]
    if not results:
        return 0
    return duckdb_session.fetch_all(
        "SELECT count(*) FROM (SELECT * FROM read_parquet(?, union_by_name = true) "
        f"UNION ALL BY NAME {duckdb_session.empty_select(RESULTS_SCHEMA)}) WHERE unconfirmed", [results])[0][0]


def _failures(staging: StagingFolder, feeds: list[str]) -> list[dict[str, Any]]:
    """Every item of this run the target did not accept, with its reason."""
    rows: list[dict[str, Any]] = []
    for feed in feeds:
        deltas, results = staging.parts_of("delta", feed), staging.parts_of("results", feed)
        if not deltas or not results:
            continue
        found = duckdb_session.fetch_all(
            "SELECT d.product_id, d.sku, d.store_view_code, d.op, r.status, r.reason, d.key "
            "FROM read_parquet(?) r JOIN read_parquet(?) d USING (key) WHERE r.status <> ? ORDER BY d.sku, d.key",
            [[staging.url_of(r) for r in results], [staging.url_of(d) for d in deltas], OK])
        rows += [dict(zip(("product_id", "sku", "store_view_code", "op", "status", "reason", "item_key"), r),
                      feed=feed) for r in found]
    for row in rows:  # the status store wants text here; catalog-wide items name no product
        row["sku"] = row["sku"] or ""
        row["store_view_code"] = row["store_view_code"] or ""
    return rows
