"""The page's view of Airflow itself. Runs inside the API server, which has the metadata database.

Reads: the settings (Connections and Variables, through the server-side lookups), whether
a DAG is paused and when its next run is due, which task of a run failed. Writes: only a
new DAG run, and only through Airflow's REST API with the caller's own credentials, so the
API applies the same permission checks as anywhere else in Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from catalog_sync.airflow.connections import load_settings
from catalog_sync.settings import SyncSettings

JWT_COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN


@dataclass(frozen=True)
class DagState:
    dag_id: str
    exists: bool
    is_paused: bool | None = None
    next_run_at: datetime | None = None


class TriggerError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AirflowSide:
    def settings(self) -> SyncSettings:
        from airflow.models.connection import Connection
        from airflow.models.variable import Variable

        return load_settings(Connection.get_connection_from_secrets,
                             lambda key, default: Variable.get(key, default_var=default))

    def dag_state(self, dag_id: str) -> DagState:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            dag = session.get(DagModel, dag_id)
            if dag is None:
                return DagState(dag_id, exists=False)
            return DagState(dag_id, True, bool(dag.is_paused), dag.next_dagrun_create_after)

    def failed_task_id(self, dag_id: str, run_id: str) -> str | None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            ti = (
                session.query(TaskInstance.task_id)
                .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
                        TaskInstance.state.in_([TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED]))
                .order_by(TaskInstance.state, TaskInstance.start_date)
                .first()
            )
        return ti[0] if ti else None

    def trigger(self, api_root: str, dag_id: str, conf: dict[str, Any], authorization: str | None,
                jwt_cookie: str | None) -> str:
        """POST /api/v2/dags/{dag_id}/dagRuns as the caller; returns the new run id."""
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        elif jwt_cookie:
            headers["Authorization"] = f"Bearer {jwt_cookie}"
        response = requests.post(f"{api_root}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf},
                                 headers=headers, timeout=30)
        if response.status_code != 200:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            raise TriggerError(response.status_code, f"Airflow refused to start {dag_id} (HTTP {response.status_code}): {detail}")
        return response.json()["dag_run_id"]
