"""Airflow's SimpleAuthManager, except that the user "outsider" may not see the Catalog Sync DAGs.

The simple auth manager's roles are global (a viewer reads every DAG); deployments with
per-DAG permissions (FAB, Keycloak...) can deny one DAG. This stands in for them in the
auth tests of the plugin page. Loaded by the test api-server through
AIRFLOW__CORE__AUTH_MANAGER=restricted_auth_manager.RestrictedAuthManager.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HIDDEN_DAGS = {"catalog_sync", "catalog_full_resync"}
OUTSIDER = "outsider"


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == OUTSIDER and details is not None and details.id in HIDDEN_DAGS:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
