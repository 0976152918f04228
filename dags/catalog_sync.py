"""Hourly incremental catalog sync. Wiring only: the logic lives in include/catalog_sync."""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable

from catalog_sync.airflow.tasks import DEFAULT_ARGS, add_sync_tasks, airflow_run_ids
from catalog_sync.steps import SyncRequest

DOC = """
### Catalog Sync: hourly incremental sync

Reads the products that changed in Magento (its `*_cl` changelog tables, from our own watermark),
diffs them against the Parquet snapshot of what the target accepted, sends only the delta, then
commits the accepted items and the new watermarks in one atomic manifest swap.

* **plan** waits for the sync lock (shared with `catalog_full_resync`), then picks the mode:
  incremental, or full on the first run or when Magento trimmed its changelog past our watermark.
* **extract / diff / export / commit** each re-run safely; a failure before commit only causes a re-send.
* **report** writes the counts to the status store and emits the `catalog_sync_target_feed` asset event.

Configuration: Connections `catalog_sync_source`, `catalog_sync_target`, `catalog_sync_status`,
Variable `catalog_sync_state_url`. See the README's Troubleshooting section when a run fails.
"""


def _request(context) -> SyncRequest:
    run_id, dag_id, airflow_run_id = airflow_run_ids(context)
    return SyncRequest(run_id, dag_id=dag_id, airflow_run_id=airflow_run_id)


with DAG(
    dag_id="catalog_sync",
    description="Hourly incremental sync of the Magento catalog to the target",
    # Hourly, and the first run right after deployment (no start_date: nothing to catch up).
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", run_immediately=True),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    tags=["catalog-sync", "magento"],
) as dag:
    add_sync_tasks(_request)
