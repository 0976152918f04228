"""Manual full resync of the catalog. Wiring only: the logic lives in include/catalog_sync."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from catalog_sync.airflow.tasks import DEFAULT_ARGS, add_sync_tasks, airflow_run_ids
from catalog_sync.steps import SyncRequest

DOC = """
### Catalog Sync: full resync (manual)

Reconciles the whole catalog with the target: every product is extracted and compared with the
snapshot; changed items are re-sent and anything the target holds that Magento no longer has is
deleted. It waits for the hourly `catalog_sync` to finish (they share a lock) and never overlaps it.

Params (trigger with config):
* `cleanup`: re-send every item, even unchanged ones (deletes are still computed).
* `skus`: resync only these SKUs (re-sent even if unchanged; deleted at the target if gone from Magento).
* `dry_run`: compute and report the delta, send nothing, leave the snapshot as it was.
* `rebuild`: only when a run was refused because the state folder cannot be recovered (its plan
  log says so): start from an empty snapshot and re-send everything.

A full resync reads every product: on a large catalog it loads the Magento database for minutes.
"""


def _request(context) -> SyncRequest:
    run_id, dag_id, airflow_run_id = airflow_run_ids(context)
    params = context["params"]
    return SyncRequest(
        run_id,
        full=True,
        cleanup=bool(params["cleanup"]),
        skus=tuple(s.strip() for s in params["skus"] or [] if s and s.strip()),
        dry_run=bool(params["dry_run"]),
        rebuild=bool(params["rebuild"]),
        dag_id=dag_id,
        airflow_run_id=airflow_run_id,
    )


with DAG(
    dag_id="catalog_full_resync",
    description="Manual full resync of the Magento catalog to the target",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    tags=["catalog-sync", "magento"],
    params={
        "cleanup": Param(False, type="boolean", title="Cleanup",
                         description="Re-send every item, as if the target were empty."),
        "skus": Param([], type="array", items={"type": "string"}, title="SKUs",
                      description="Resync only these SKUs (empty: the whole catalog)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Compute and report the delta; send nothing, keep the snapshot."),
        "rebuild": Param(False, type="boolean", title="Rebuild the state",
                         description="Only after a refusal to use a damaged state: start from an empty snapshot "
                                     "and re-send everything."),
    },
) as dag:
    add_sync_tasks(_request)
