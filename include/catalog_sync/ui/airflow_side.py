"""The page's view of Airflow itself. Runs inside the API server, which has the metadata database.

Reads: the settings (Connections and Variables, through the server-side lookups), whether
a DAG is paused and when its next run is due, which task of a run failed. Writes: only a
new DAG run, and only through Airflow's REST API with the caller's own credentials, so the
API applies the same permission checks as anywhere else in Airflow.

The REST API is called at Airflow's configured address (`[api] base_url`), never at the
request's Host: a caller controls that header, and would make the server send its bearer
token to any address it names (SSRF), or downgrade a TLS proxy's https to http.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from catalog_sync.airflow.connections import load_settings
from catalog_sync.settings import ConfigurationError, SyncSettings

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


def api_base_url(base_url: str | None, port: str | int = 8080, tls: bool = False) -> str:
    """Airflow's address from `[api] base_url`, without a trailing slash; its path prefix is kept.

    Unset, or a path only ("/airflow"): this API server on this machine, as Airflow's own
    executors assume (`http://localhost:8080` + the path), at the configured `[api] port`.
    """
    value = (base_url or "").strip()
    if not value or value.startswith("/"):
        return f"{'https' if tls else 'http'}://localhost:{port}{value.rstrip('/')}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"Airflow's [api] base_url must be an http(s) URL such as https://airflow.example.com, "
                                 f"got {value!r}")
    return value.rstrip("/")


class AirflowSide:
    def settings(self) -> SyncSettings:
        from airflow.models.connection import Connection
        from airflow.models.variable import Variable

        return load_settings(Connection.get_connection_from_secrets,
                             lambda key, default: Variable.get(key, default_var=default))

    def base_url(self) -> str:
        """Read at each call: Airflow's configuration is the one truth (and tests change it)."""
        from airflow.configuration import conf

        return api_base_url(conf.get("api", "base_url", fallback=None), conf.get("api", "port", fallback="8080"),
                            tls=bool(conf.get("api", "ssl_cert", fallback="")))

    def ui_prefix(self) -> str:
        """The path Airflow's UI lives under ("" or e.g. "/airflow"), for links to its pages."""
        return urlsplit(self.base_url()).path

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

    def trigger(self, dag_id: str, conf: dict[str, Any], authorization: str | None, jwt_cookie: str | None) -> str:
        """POST /api/v2/dags/{dag_id}/dagRuns at Airflow's base URL, as the caller; returns the new run id."""
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        elif jwt_cookie:
            headers["Authorization"] = f"Bearer {jwt_cookie}"
        url = f"{self.base_url()}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns"
        try:
            # No redirects: the caller's token goes to the configured address and nowhere else.
            response = requests.post(url, json={"logical_date": None, "conf": conf}, headers=headers, timeout=30,
                                     allow_redirects=False)
        except requests.RequestException as exc:
            raise TriggerError(502, f"cannot reach Airflow's REST API at {url} ({type(exc).__name__}): "
                                    "check Airflow's [api] base_url") from None
        if response.status_code != 200:
            try:
                detail = response.json().get("detail")
            except (ValueError, AttributeError):
                detail = response.text[:200]
            raise TriggerError(response.status_code, f"Airflow refused to start {dag_id} (HTTP {response.status_code}): {detail}")
        return response.json()["dag_run_id"]
