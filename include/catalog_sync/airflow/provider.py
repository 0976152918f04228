"""Catalog Sync as an Airflow provider: its connection types and their form fields.

Airflow finds this through the package's `apache_airflow_provider` entry point (pyproject.toml),
so installing the package (`pip install -e .`, as the Dockerfile does) adds the types to the
Connection form: each setting is a field, nothing is hand-written JSON. The fields are stored
in the Connection's extra under the names below, which the hooks read.
"""

from __future__ import annotations

from typing import Any

from catalog_sync.targets.forms import target_forms

# Read by every Airflow component when it discovers providers: names only, no engine imports.
HOOKS = "catalog_sync.airflow.hooks"

_DATABASE_TYPE = {"label": "Database type", "schema": {"type": "string", "enum": ["mysql", "postgresql", "sqlite"],
                                                       "default": "mysql"},
                  "description": "mysql also covers MariaDB. sqlite: the database file's path goes in Host."}
_TEXT = {"type": ["string", "null"]}


def _type(conn_type: str, hook: str, name: str, fields: dict[str, dict], behaviour: dict[str, Any]) -> dict[str, Any]:
    return {"connection-type": conn_type, "hook-class-name": f"{HOOKS}.{hook}", "hook-name": name,
            "conn-fields": fields, "ui-field-behaviour": behaviour}


def connection_types() -> list[dict[str, Any]]:
    return [
        _type("catalog_sync_magento", "MagentoDatabaseHook", "Catalog Sync: Magento database",
              {"database_type": _DATABASE_TYPE,
               "table_prefix": {"label": "Table prefix", "schema": _TEXT,
                                "description": "db.table_prefix in app/etc/env.php, if the shop was installed with one."},
               "edition": {"label": "Edition",
                           "schema": {"type": ["string", "null"], "enum": [None, "auto", "open_source", "commerce"]},
                           "description": "auto (the default) tells Adobe Commerce's content staging layout (row_id) "
                                          "from Magento Open Source's by its columns."}}, {
                  "hidden-fields": ["extra"],
                  "relabeling": {"schema": "Database", "login": "User (SELECT only)"},
                  "placeholders": {"host": "magento-db.internal", "schema": "magento", "port": "3306"},
              }),
        _type("catalog_sync_status_store", "StatusStoreHook", "Catalog Sync: status store database",
              {"database_type": {**_DATABASE_TYPE, "schema": {**_DATABASE_TYPE["schema"], "default": "postgresql"}}}, {
                  "hidden-fields": ["extra"],
                  "relabeling": {"schema": "Database"},
                  "placeholders": {"host": "status-db.internal", "schema": "catalog_sync", "port": "5432"},
              }),
        _type("catalog_sync_object_store", "StateStorageHook", "Catalog Sync: object storage (state)", {
            "endpoint_url": {"label": "Endpoint URL", "schema": _TEXT,
                             "description": "Only for S3-compatible stores other than AWS."},
            "region_name": {"label": "Region", "schema": _TEXT},
        }, {
            "hidden-fields": ["host", "schema", "port", "extra"],
            "relabeling": {"login": "Access key id", "password": "Secret access key"},
        }),
        *(_type(f.conn_type, f.hook_class, f.hook_name, f.fields, f.behaviour) for f in target_forms()),
    ]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "catalog-sync",
        "name": "Catalog Sync",
        "description": "Keeps commerce services in sync with a Magento 2 / Adobe Commerce catalog.",
        "versions": ["0.1.0"],
        "connection-types": connection_types(),
    }
