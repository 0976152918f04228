"""The whole sync in one process (the CLI): the same steps, in the order the DAGs run them."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from catalog_sync.settings import SyncSettings
from catalog_sync.state import sync_lock
from catalog_sync.state.status_store import this_process
from catalog_sync.steps.commit import commit
from catalog_sync.steps.diff import diff
from catalog_sync.steps.export import export, export_catalog
from catalog_sync.steps.extract import extract
from catalog_sync.steps.plan import plan
from catalog_sync.steps.report import report
from catalog_sync.steps.run import RunPlan, SyncRequest, Workspace
from catalog_sync.targets.base import DELETE, UPSERT

log = logging.getLogger("catalog_sync.steps")


def run_sync(settings: SyncSettings, request: SyncRequest) -> dict[str, Any]:
    """plan, then per bucket extract and diff, the catalog feeds' upserts, per bucket export, the
    catalog feeds' deletes, commit, report. The lock records this process, so a crash frees it."""
    if not request.holder_process:
        request = replace(request, holder_process=this_process())
    run = plan(settings, request)
    # One process runs every step: one heartbeat renews the lease from the end of plan to report.
    with Workspace(settings) as ws, sync_lock.heartbeat(ws.status, run.run_id, settings.lock_ttl_s, strict=False):
        return _steps_then_report(settings, run)


def _steps_then_report(settings: SyncSettings, run: RunPlan) -> dict[str, Any]:
    error: str | None = None
    try:
        for bucket in range(run.buckets):
            extract(settings, run, bucket)
            diff(settings, run, bucket)
        export_catalog(settings, run, UPSERT)
        for bucket in range(run.buckets):
            export(settings, run, bucket)
        export_catalog(settings, run, DELETE)
        commit(settings, run)
    except Exception as exc:  # reported, then re-raised by the caller's exit code
        log.exception("sync failed")
        error = f"{type(exc).__name__}: {exc}"
    return report(settings, run, error)
