"""Settings from Airflow Connections and Variables (the DAGs' only config source).

Connections:
    catalog_sync_source   the Magento database (mysql, postgres or sqlite; or extra {"sqlalchemy_url": ...})
    catalog_sync_target   where the delta goes: extra {"url": "file:///..."}, or the ingestion API's
                          https://.../<tenantId> with the bearer token as password, or IMS client
                          credentials: extras ims_token_url, ims_client_id, ims_scope + the secret as password
    catalog_sync_status   optional: the status store database (default SQLite beside a local state folder)
    catalog_sync_state    optional: credentials of an object-storage state URL (aws: login = access key id,
                          password = secret, extra endpoint_url / region_name; or extra {"storage_options": {...}})
Variables:
    catalog_sync_state_url     folder or URL of the snapshot and staging (default $AIRFLOW_HOME/catalog_sync_state)
    catalog_sync_chunk_size    products per extract chunk (default 10000)
    catalog_sync_batch_size    items per request to the target (default 100)
    catalog_sync_buckets       hash buckets of sku, each synced by its own mapped tasks (default 1)

Secrets stay in the Connection: the URLs built here are used in-process and
never logged unredacted, put in XCom or written to the snapshot.
"""

from __future__ import annotations

import os
from urllib.parse import quote_plus

from catalog_sync.settings import (
    DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_REQUESTS_PER_MINUTE, ConfigurationError, SyncSettings,
    parse_price_books, pinned_instant,
)

SOURCE_CONN_ID = "catalog_sync_source"
TARGET_CONN_ID = "catalog_sync_target"
STATUS_CONN_ID = "catalog_sync_status"
STATE_CONN_ID = "catalog_sync_state"
STATE_URL_VARIABLE = "catalog_sync_state_url"
BUCKETS_VARIABLE = "catalog_sync_buckets"

_DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
}


def sqlalchemy_url(conn) -> str:
    """An SQLAlchemy URL for an Airflow Connection object."""
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return extra["sqlalchemy_url"]
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        if not conn.host:
            raise ConfigurationError(f"Connection {conn.conn_id}: a sqlite connection needs the database file path as host")
        return f"sqlite:///{conn.host}"
    driver = _DRIVERS.get(conn_type)
    if driver is None:
        raise ConfigurationError(
            f"Connection {conn.conn_id}: unsupported conn_type {conn.conn_type!r}; use mysql, postgres or sqlite, "
            "or put a full SQLAlchemy URL in the extra field as sqlalchemy_url"
        )
    auth = ""
    if conn.login:
        auth = quote_plus(conn.login) + (f":{quote_plus(conn.password)}" if conn.password else "") + "@"
    port = f":{conn.port}" if conn.port else ""
    query = "?charset=utf8mb4" if driver.startswith("mysql") else ""
    return f"{driver}://{auth}{conn.host}{port}/{conn.schema or ''}{query}"


def target_url(conn) -> str:
    extra = conn.extra_dejson or {}
    if extra.get("url"):
        return extra["url"]
    if conn.host and "://" in conn.host:
        return conn.host
    raise ConfigurationError(
        f"Connection {conn.conn_id}: set the target in the extra field, e.g. {{\"url\": \"file:///data/catalog-deltas\"}}"
    )


def storage_options(conn) -> dict:
    """fsspec options for the state's object storage from an Airflow Connection (s3fs's names)."""
    if conn is None:
        return {}
    extra = conn.extra_dejson or {}
    if extra.get("storage_options"):
        return dict(extra["storage_options"])
    options: dict = {}
    if conn.login:
        options["key"] = conn.login
    if conn.password:
        options["secret"] = conn.password
    client = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
    if client:
        options["client_kwargs"] = client
    return options


def load_settings(get_connection=None, get_variable=None) -> SyncSettings:
    """Settings from the Connections and Variables above. Tasks use the Task SDK's lookups (the
    defaults); the plugin page, which runs in the API server, passes the server-side ones."""
    if get_connection is None or get_variable is None:
        from airflow.sdk import BaseHook, Variable

        get_connection = get_connection or BaseHook.get_connection
        get_variable = get_variable or (lambda key, default: Variable.get(key, default=default))

    def connection(conn_id: str, required: bool = True):
        try:
            return get_connection(conn_id)
        except Exception as exc:  # each Airflow layer raises its own "not found" error
            if not required:
                return None
            raise ConfigurationError(f"Airflow Connection {conn_id!r} is missing or unreadable: create it (see README, Configuration)") from exc

    status = connection(STATUS_CONN_ID, required=False)
    target = connection(TARGET_CONN_ID)
    extra = target.extra_dejson or {}
    ims = {}
    if extra.get("ims_token_url"):
        ims = {"token_url": extra["ims_token_url"], "client_id": extra.get("ims_client_id", ""),
               "client_secret": target.password or "", "scope": extra.get("ims_scope", "")}
    default_state = os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "catalog_sync_state")
    return SyncSettings(
        source_url=sqlalchemy_url(connection(SOURCE_CONN_ID)),
        target_url=target_url(target),
        target_token="" if ims else (target.password or ""),
        target_ims=ims,
        state_url=get_variable(STATE_URL_VARIABLE, default_state),
        status_url=sqlalchemy_url(status) if status else "",
        chunk_size=int(get_variable("catalog_sync_chunk_size", DEFAULT_CHUNK_SIZE)),
        batch_size=int(get_variable("catalog_sync_batch_size", DEFAULT_BATCH_SIZE)),
        buckets=int(get_variable(BUCKETS_VARIABLE, 1)),
        price_books=parse_price_books(extra.get("price_books") or {}),
        max_requests_per_minute=int(extra.get("max_requests_per_minute", DEFAULT_MAX_REQUESTS_PER_MINUTE)),
        state_storage_options=storage_options(connection(STATE_CONN_ID, required=False)),
        now=pinned_instant(os.environ),  # replays and tests only: the worker's CATALOG_SYNC_NOW
    )
