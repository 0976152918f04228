"""plan: take the sync lock, bring the state to the current format, fix the run's instant, choose the mode."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from catalog_sync import clock, run_clock
from catalog_sync.feed import feed_builder, feed_record
from catalog_sync.magento.catalog_reader import SCOPE_MARK
from catalog_sync.magento.change_detection import UPDATED_AT, ChangeDetector, ChangeMarks
from catalog_sync.settings import SyncSettings, redact_url
from catalog_sync.state import recovery, sync_lock, upgrades
from catalog_sync.state.snapshot import Manifest
from catalog_sync.steps.buckets import check_buckets
from catalog_sync.steps.modes import FULL, INCREMENTAL, SKUS
from catalog_sync.steps.run import RunPlan, SyncRequest, Workspace, run_key
from catalog_sync.targets.base import source_fingerprint

log = logging.getLogger("catalog_sync.steps")


def plan(settings: SyncSettings, request: SyncRequest) -> RunPlan:
    instant = run_clock.run_instant(settings.now)
    with Workspace(settings, at=instant) as ws:
        ws.target  # an unusable target configuration fails here, before any work
        ws.reader().verify_schema()
        # Renewed while plan works (upgrading the state may take long), released if plan fails; a stale
        # holder's lock is taken over and its run marked abandoned.
        with sync_lock.taken(ws.status, request.run_id, settings.lock_ttl_s, process=request.holder_process):
            # A damaged state is repaired (or the run refused) and leftovers go, before anything reads it.
            recovered = recovery.prepare(ws.snapshots, ws.status, request.run_id, rebuild=request.rebuild,
                                         dry_run=request.dry_run)
            manifest, upgraded_from = upgrades.upgrade(ws.snapshots, ws.target)
            detector = ChangeDetector(ws.source)
            until = detector.current_marks()
            fingerprints = current_fingerprints(ws)
            mode, reason = (FULL, recovered) if recovered else _mode(request, manifest, detector, upgraded_from, fingerprints)
            started = clock.now()  # operational: run keys and delta file names sort in run order
            key = run_key(request.run_id, started)
            result = RunPlan(
                run_id=request.run_id,
                run_key=key,
                mode=mode,
                mode_reason=reason,
                dry_run=request.dry_run,
                force_resend=request.cleanup or mode == SKUS,
                skus=list(request.skus),
                staging=f"staging/{key}",
                base_version=manifest.version,
                base_feeds={name: dataclasses.asdict(files) for name, files in manifest.feeds.items()},  # JSON, as tasks pass it
                since_marks=manifest.change_marks,
                until_marks=until.to_dict(),
                started_at=started.isoformat(timespec="seconds"),
                instant=run_clock.format_instant(instant),
                buckets=check_buckets(settings.buckets),
                fingerprints=fingerprints,
                label_changes=changed_labels(manifest, fingerprints) if mode == INCREMENTAL else {},
            )
            staging = ws.staging(result)
            staging.makedirs()
            staging.write_json(result.to_dict(), staging.PLAN)
            ws.status.start_run(request.run_id, mode, dry_run=request.dry_run, mode_reason=reason,
                                dag_id=request.dag_id, airflow_run_id=request.airflow_run_id)
        log.info(
            "plan: run %s, mode %s (%s)%s; run instant %s%s; source %s, target %s, snapshot v%d (%s)",
            request.run_id, mode, reason, " [dry run]" if request.dry_run else "", result.instant,
            f" (pinned by {run_clock.PIN_ENV})" if settings.now else "", redact_url(settings.source_url),
            ws.target.description, manifest.version,
            ", ".join(f"{name} {files.items}" for name, files in sorted(manifest.feeds.items())) or "empty",
        )
        return result


def current_fingerprints(ws: Workspace) -> dict[str, Any]:
    """What every body depends on besides its product: how staging records are built, the target's
    mapping, the shop's product attributes, the labels products carry, where each website's stock comes from,
    and the shop settings (locale, currency, price scope, time zone, ... per scope; the active store views)."""
    reader = ws.reader()
    return {
        "staging_records": source_fingerprint(feed_builder, feed_record),
        "mapping": ws.target.mapping_fingerprint(),
        "attributes": reader.attribute_fingerprint(),
        "labels": reader.label_digests(),
        "stock_layout": reader.stock_fingerprint(),
        "shop_settings": reader.shop_settings(),
    }


MAX_SETTINGS_NAMED = 5
WHAT_CHANGED = {
    "staging_records": "how this release builds Magento's records changed",
    "mapping": "the target's mapping changed (a new release, or its options)",
    "attributes": "the shop's product attributes changed (added, removed or retyped)",
    "labels": "the labels products carry were last read by an older release",
    "stock_layout": "which stock a website sells from changed (MSI sales channels, the sources linked to a stock, a "
                    "source enabled or disabled, a stock index created or dropped)",
    "shop_settings": "the shop settings every item depends on were last read by an older release",
}


def _mode(request: SyncRequest, manifest: Manifest, detector: ChangeDetector,
          upgraded_from: int | None, fingerprints: dict[str, Any]) -> tuple[str, str]:
    since = manifest.marks
    if request.skus:
        return SKUS, f"resync of {len(request.skus)} requested sku(s)"
    if request.cleanup:
        return FULL, "full resync with cleanup requested: every item is re-sent"
    if request.full:
        return FULL, "full resync requested"
    if upgraded_from in upgrades.RECORD_FORMATS:  # a format-3 state is only re-listed: nothing to reconcile
        return FULL, (f"reconcile once after upgrading the state from format {upgraded_from}: items whose sent "
                      "body was not kept are re-sent, unchanged ones are not")
    if manifest.version == 0:
        return FULL, "no snapshot yet: first sync"
    if since is None:
        return FULL, "the snapshot has no change watermark yet"
    kept = manifest.fingerprints or {}
    changed = [_what_changed(k, kept.get(k), fingerprints[k])
               for k in fingerprints if kept and _escalates(k, kept.get(k), fingerprints[k])]
    if changed:
        return FULL, f"escalated to a full reconcile: {'; '.join(changed)} since the last full sync"
    gap = detector.gap_reason(since)
    if gap:
        return FULL, f"escalated to a full reconcile: {gap}"
    return INCREMENTAL, f"changes since {_describe(since)}"


def _escalates(key: str, before: Any, now: Any) -> bool:
    """Whether this fingerprint's change makes the run a full reconcile. Not for labels (an incremental
    run re-reads the products that carry a changed one: changed_labels), nor for a store view that only
    went away; yes when the last full sync's value came from an older release (not a dict)."""
    if before == now:
        return False
    if key == "labels" and isinstance(before, dict):
        return False
    if key == "shop_settings" and isinstance(before, dict):
        return bool(_setting_changes(before, now))
    return True


def _setting_changes(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """The shop settings that differ, as `name: old -> new`. A store view no longer exported (switched off,
    or left out by the settings) is not one, nor are the settings of its scope: the incremental run deletes
    its items from the snapshot's keys (scope: store views no longer exported)."""
    def gone_with_its_scope(name: str) -> bool:
        if name in now:
            return False
        if name.startswith(("store view ", SCOPE_MARK)):
            return True
        scope = "/".join(name.split("/", 2)[:2])  # stores/2/general/locale/code -> stores/2
        return SCOPE_MARK + scope in before and SCOPE_MARK + scope not in now

    return [f"{name}: {before.get(name, '(unset)')!r} -> {now.get(name, '(unset)')!r}"
            for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name) and not gone_with_its_scope(name)]


def _what_changed(key: str, before: Any, now: Any) -> str:
    """Why a fingerprint that changed makes this run a full reconcile; shop settings name what changed."""
    if key != "shop_settings" or not isinstance(before, dict):
        return WHAT_CHANGED[key]
    changes = _setting_changes(before, now)
    shown = "; ".join(changes[:MAX_SETTINGS_NAMED]) + (f"; and {len(changes) - MAX_SETTINGS_NAMED} more"
                                                       if len(changes) > MAX_SETTINGS_NAMED else "")
    return f"a shop setting every item depends on changed ({shown})"


def changed_labels(manifest: Manifest, fingerprints: dict) -> dict[str, list[int]]:
    """The label buckets (kind -> bucket numbers) that differ from the last run's: an incremental run reads
    the products that carry them again (MagentoCatalogReader.label_products)."""
    before, now = manifest.fingerprints.get("labels"), fingerprints.get("labels")
    if not isinstance(before, dict) or not isinstance(now, dict):
        return {}
    changed: dict[str, list[int]] = {}
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            kind, bucket = key.split(":")
            changed.setdefault(kind, []).append(int(bucket))
    return changed


def _describe(marks: ChangeMarks) -> str:
    if marks.method == UPDATED_AT:
        return f"updated_at {marks.updated_at}"
    return ", ".join(f"{name}@{version}" for name, version in sorted(marks.changelog_versions.items()))
