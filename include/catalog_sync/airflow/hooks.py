"""Airflow hooks: each owns one Connection and builds the engine's object for that system from it.

As Airflow's provider packages do, each hook names its connection type, and the provider
(`catalog_sync.airflow.provider`) registers the types' form fields, so a Connection is filled
in the Airflow UI field by field rather than as hand-written JSON. The engine never sees a
Connection: a hook turns it into the engine's settings, exactly as the CLI does from flags.

    MagentoDatabaseHook   catalog_sync_source   the Magento database (read only)
    CatalogTargetHook     catalog_sync_target   the target; one subclass per target kind's connection form
    StateStorageHook      catalog_sync_state    the object store of the snapshot and staging
    StatusStoreHook       catalog_sync_status   the status store database
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

from airflow.sdk import BaseHook

from catalog_sync.settings import ConfigurationError
from catalog_sync.targets import registry
from catalog_sync.targets.base import TargetConfig
from catalog_sync.targets.forms import target_forms

# SQLAlchemy drivers by database type (the `database_type` field, or a classic connection type).
DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
}


def extra_field(conn: Any, name: str) -> Any:
    """A form field's value: stored as `name`, or (older UIs) as `extra__<conn type>__<name>`."""
    extra = conn.extra_dejson or {}
    return extra.get(name, extra.get(f"extra__{conn.conn_type}__{name}"))


def sqlalchemy_url(conn: Any) -> str:
    """The SQLAlchemy URL of a database Connection: our types (with their database type field),
    mysql / postgres / sqlite, or any type with a full URL in the extra as sqlalchemy_url."""
    if extra_field(conn, "sqlalchemy_url"):
        return extra_field(conn, "sqlalchemy_url")
    kind = (extra_field(conn, "database_type") if conn.conn_type in OUR_DATABASE_TYPES else conn.conn_type) or ""
    kind = kind.lower()
    if kind == "sqlite":
        if not conn.host:
            raise ConfigurationError(f"Connection {conn.conn_id}: a sqlite database needs the database file path as host")
        return f"sqlite:///{conn.host}"
    driver = DRIVERS.get(kind)
    if driver is None:
        raise ConfigurationError(
            f"Connection {conn.conn_id}: unsupported database {kind or conn.conn_type!r}; use the connection type "
            f"catalog_sync_magento (or catalog_sync_status_store) with database type mysql, postgresql or sqlite, "
            "or put a full SQLAlchemy URL in the extra field as sqlalchemy_url"
        )
    auth = ""
    if conn.login:
        auth = quote_plus(conn.login) + (f":{quote_plus(conn.password)}" if conn.password else "") + "@"
    port = f":{conn.port}" if conn.port else ""
    query = "?charset=utf8mb4" if driver.startswith("mysql") else ""
    return f"{driver}://{auth}{conn.host}{port}/{conn.schema or ''}{query}"


def storage_options(conn: Any | None) -> dict:
    """fsspec options for the state's object storage (s3fs's names)."""
    if conn is None:
        return {}
    if extra_field(conn, "storage_options"):
        return dict(extra_field(conn, "storage_options"))
    options: dict = {}
    if conn.login:
        options["key"] = conn.login
    if conn.password:
        options["secret"] = conn.password
    client = {k: extra_field(conn, k) for k in ("endpoint_url", "region_name") if extra_field(conn, k)}
    if client:
        options["client_kwargs"] = client
    return options


class _ConnectionHook(BaseHook):
    """A hook that reads its Connection once, through `get_connection` (the Task SDK's lookup in
    tasks; the plugin page, in the API server, passes the server-side one)."""

    conn_name_attr = "conn_id"
    default_conn_name = ""

    def __init__(self, conn_id: str | None = None, get_connection: Callable[[str], Any] | None = None,
                 required: bool = True):
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._get = get_connection or self.get_connection
        self._required = required
        self._conn: Any = None

    @property
    def connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._get(self.conn_id)
            except Exception as exc:  # each Airflow layer raises its own "not found" error
                if not self._required:
                    return None
                raise ConfigurationError(
                    f"Airflow Connection {self.conn_id!r} is missing or unreadable: create it "
                    "(see README, Configuration)") from exc
        return self._conn


class MagentoDatabaseHook(_ConnectionHook):
    default_conn_name = "catalog_sync_source"
    conn_type = "catalog_sync_magento"
    hook_name = "Catalog Sync: Magento database"

    def get_uri(self) -> str:
        return sqlalchemy_url(self.connection)

    def get_layout(self) -> dict[str, str]:
        """The shop's table prefix and edition, from the Connection's extra (`table_prefix`, `edition`)."""
        return {key: str(extra_field(self.connection, key) or "").strip() for key in ("table_prefix", "edition")}


class StatusStoreHook(_ConnectionHook):
    default_conn_name = "catalog_sync_status"
    conn_type = "catalog_sync_status_store"
    hook_name = "Catalog Sync: status store database"

    def get_uri(self) -> str:
        """The status store's URL; "" when the optional Connection is not there (SQLite beside the state)."""
        conn = self.connection
        return sqlalchemy_url(conn) if conn is not None else ""


class StateStorageHook(_ConnectionHook):
    default_conn_name = "catalog_sync_state"
    conn_type = "catalog_sync_object_store"
    hook_name = "Catalog Sync: object storage (state)"

    def get_storage_options(self) -> dict:
        return storage_options(self.connection)


class CatalogTargetHook(_ConnectionHook):
    """The target's Connection, of any kind's type: the kind is chosen by the Connection's type
    (or, for a generic one, by the scheme of its URL)."""

    default_conn_name = "catalog_sync_target"

    def get_config(self, overrides: Mapping[str, Any] | None = None) -> TargetConfig:
        return registry.config_from_connection(self.connection, overrides)


# One hook class per target kind's connection type, as Airflow maps each type to its hook.
for _form in target_forms():
    globals()[_form.hook_class] = type(_form.hook_class, (CatalogTargetHook,), {
        "conn_type": _form.conn_type, "hook_name": _form.hook_name, "__module__": __name__,
        "__doc__": f"{_form.hook_name} (connection type {_form.conn_type})."})


OUR_DATABASE_TYPES = (MagentoDatabaseHook.conn_type, StatusStoreHook.conn_type)
