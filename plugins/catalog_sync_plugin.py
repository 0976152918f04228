"""The Catalog Sync page in the Airflow UI (Airflow 3 plugin).

Mounts the FastAPI app of `catalog_sync.ui.app` at /catalog-sync and adds
"Catalog Sync" to Airflow's navigation (an external view shown inside the UI).
Airflow mounts plugin apps without authentication, so every route here depends
on Airflow's own checks: a login with read access to the catalog_sync DAG, and
for actions, permission to start runs of catalog_full_resync. Actions start runs
through Airflow's REST API at its `[api] base_url`, never at a request's Host.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin

from catalog_sync.ui.airflow_side import AirflowSide
from catalog_sync.ui.app import RESYNC_DAG, SYNC_DAG, create_app

URL_PREFIX = "/catalog-sync"

_airflow = AirflowSide()
app = create_app(
    settings=_airflow.settings,
    airflow=_airflow,
    read_access=[requires_access_dag("GET", param_dag_id=SYNC_DAG)],
    trigger_access=[requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=RESYNC_DAG)],
)


class CatalogSyncPlugin(AirflowPlugin):
    name = "catalog_sync"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Catalog Sync"}]
    external_views = [
        {
            "name": "Catalog Sync",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "catalog-sync",
            "nav_top_level": True,
        }
    ]
