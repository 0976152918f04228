"""The sync as Airflow tasks: thin wrappers over `catalog_sync.steps`.

Both DAGs (hourly sync, manual full resync) build the same chain with
`add_sync_tasks`; only how the request is made differs. Tasks pass the small
RunPlan through XCom, never data. Settings are read from Connections inside
each task, so no secret reaches XCom.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, PokeReturnValue, TriggerRule, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from catalog_sync import steps
from catalog_sync.airflow.connections import load_settings
from catalog_sync.settings import ConfigurationError
from catalog_sync.state import sync_lock
from catalog_sync.state.status_store import SyncLockedError
from catalog_sync.steps import RunPlan, SyncRequest
from catalog_sync.targets.base import DELETE, UPSERT

log = logging.getLogger("catalog_sync.airflow")

# Downstream DAGs can schedule on this; each event's extra carries the run's counts.
CATALOG_FEED_ASSET = Asset(name="catalog_sync_target_feed", uri="catalog-sync://target/feed")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "catalog-sync",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=30),
}
LOCK_WAIT = timedelta(hours=2)
# Celery/Astro: the heavy steps go to a worker queue sized for them (ignored by the LocalExecutor).
HEAVY_QUEUE = os.environ.get("CATALOG_SYNC_WORKER_QUEUE", "default")
# A pool capping concurrent heavy tasks (Magento and worker load); it must exist when set.
HEAVY_POOL = os.environ.get("CATALOG_SYNC_POOL", "default_pool")
def add_sync_tasks(make_request: Callable[[dict[str, Any]], SyncRequest]) -> None:
    """Create plan -> buckets -> extract[b] -> diff[b] -> export_catalog_upserts -> export[b]
    -> export_catalog_deletes -> commit -> report in the current DAG.

    extract, diff and export are mapped over the run's hash buckets of sku (Variable
    catalog_sync_buckets, default 1), so large catalogs spread over workers. The catalog-wide
    feeds (metadata, price books) go before every bucket's products and prices, and their
    deletes after them; commit stays one atomic step over every bucket's files."""

    @task.sensor(task_id="plan", poke_interval=30, timeout=LOCK_WAIT.total_seconds(), mode="reschedule",
                 execution_timeout=None)
    def plan() -> PokeReturnValue:
        """Take the sync lock (waiting while another sync holds it) and choose the mode."""
        request = make_request(get_current_context())
        try:
            run = steps.plan(load_settings(), request)
        except SyncLockedError as exc:
            log.info("waiting for the sync lock: %s", exc)
            return PokeReturnValue(is_done=False)
        except ConfigurationError as exc:
            # Wrong settings, or a state the plan refuses (unrecoverable, or written by a newer
            # release): a retry would refuse the same way, so fail at once with the reason.
            raise AirflowFailException(f"plan refused to start the sync: {exc}") from exc
        return PokeReturnValue(is_done=True, xcom_value=run.to_dict())

    @task
    def buckets(plan: dict) -> list[int]:
        """The bucket numbers the mapped steps run over (fixed in the plan, so every step agrees)."""
        return list(range(RunPlan.from_dict(plan).buckets))

    @task(queue=HEAVY_QUEUE, pool=HEAVY_POOL)
    def extract(plan: dict, bucket: int) -> dict:
        return _step("extract", lambda s, r: steps.extract(s, r, bucket), plan)

    @task(queue=HEAVY_QUEUE, pool=HEAVY_POOL)
    def diff(plan: dict, bucket: int) -> dict:
        return _step("diff", lambda s, r: steps.diff(s, r, bucket), plan)

    @task
    def export_catalog_upserts(plan: dict) -> dict:
        """Metadata and price books, before any product or price that uses them."""
        return _step("export_catalog_upserts", lambda s, r: steps.export_catalog(s, r, UPSERT), plan)

    @task(queue=HEAVY_QUEUE, pool=HEAVY_POOL, execution_timeout=timedelta(hours=1))
    def export(plan: dict, bucket: int) -> dict:
        # The buckets' exports run as parallel tasks: together they keep the target's rate limit.
        return _step("export", lambda s, r: steps.export(s, r, bucket, side_by_side=r.buckets), plan)

    @task
    def export_catalog_deletes(plan: dict) -> dict:
        """Price books and metadata that are gone, after every product and price."""
        return _step("export_catalog_deletes", lambda s, r: steps.export_catalog(s, r, DELETE), plan)

    @task(pool=HEAVY_POOL)
    def commit(plan: dict) -> dict:
        return _step("commit", steps.commit, plan)

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=1, outlets=[CATALOG_FEED_ASSET])
    def report(plan: dict | None) -> dict:
        """Record the outcome, release the lock; fail the run if the sync failed."""
        if not plan:
            raise AirflowFailException("the sync never started: the plan task failed (see its log)")
        run = RunPlan.from_dict(plan)
        settings = load_settings()
        with steps.Workspace(settings) as ws:
            staging = ws.staging(run)
            failure = staging.read_json(staging.ERROR) if staging.exists(staging.ERROR) else None
        error = f"{failure['step']} failed: {failure['error']}" if failure else None
        with steps.Workspace(settings) as ws, sync_lock.heartbeat(ws.status, run.run_id, settings.lock_ttl_s, strict=False):
            summary = steps.report(settings, run, error)
        get_current_context()["outlet_events"][CATALOG_FEED_ASSET].extra = {"run_id": run.run_id, **summary}
        if "error" in summary:
            raise AirflowFailException(f"catalog sync failed: {summary['error']}")
        return summary

    planned = plan()
    bucket_ids = buckets(planned)
    extracted = extract.partial(plan=planned).expand(bucket=bucket_ids)
    diffed = diff.partial(plan=planned).expand(bucket=bucket_ids)
    catalog_upserts = export_catalog_upserts(planned)
    exported = export.partial(plan=planned).expand(bucket=bucket_ids)
    catalog_deletes = export_catalog_deletes(planned)
    committed = commit(planned)
    extracted >> diffed >> catalog_upserts >> exported >> catalog_deletes >> committed
    committed >> report(planned)


def _step(name: str, fn: Callable, plan: dict) -> dict:
    """Run one engine step; leave a note for `report` if it fails, clear it when a retry succeeds."""
    run = RunPlan.from_dict(plan)
    settings = load_settings()
    with steps.Workspace(settings) as ws:
        staging = ws.staging(run)
        try:
            # Renews the run's lease while this task works; refuses to start once the run lost the lock.
            with sync_lock.heartbeat(ws.status, run.run_id, settings.lock_ttl_s):
                result = fn(settings, run)
        except Exception as exc:
            staging.write_json({"step": name, "error": f"{type(exc).__name__}: {exc}"}, staging.ERROR)
            if isinstance(exc, sync_lock.LockLostError):  # no retry can win the lock back
                raise AirflowFailException(f"{name}: {exc}") from exc
            raise
        staging.remove(staging.ERROR)
    return result


def airflow_run_ids(context: dict[str, Any]) -> tuple[str, str, str]:
    """(our run id, dag id, Airflow run id) for the running task."""
    dag_id = context["dag"].dag_id
    airflow_run_id = context["run_id"]
    return f"{dag_id}__{airflow_run_id}", dag_id, airflow_run_id
