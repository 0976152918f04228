"""Settings from Airflow Connections and Variables (the DAGs' only config source), through the hooks.

Connections (each has its own connection type, whose form asks for every setting; see README):
    catalog_sync_source   the Magento database                     MagentoDatabaseHook
                          (extra: table_prefix, edition: open_source, commerce or auto)
    catalog_sync_target   the target (ingestion API, or feed files) CatalogTargetHook
    catalog_sync_status   optional: the status store database       StatusStoreHook
    catalog_sync_state    optional: the state's object storage      StateStorageHook
Variables:
    catalog_sync_state_url     folder or URL of the snapshot and staging (default $AIRFLOW_HOME/catalog_sync_state)
    catalog_sync_chunk_size    products per extract chunk (default 10000)
    catalog_sync_batch_size    items per request to the target (default: the target's)
    catalog_sync_buckets       hash buckets of sku, each synced by its own mapped tasks (default 1)
    catalog_sync_lock_lease_s  the sync lock's lease in seconds, renewed by every step while it runs (default 1800)
    catalog_sync_late_write_window_s  seconds the target may take to apply a request it did not answer
                               (default 1800); such items are re-sent by the first run after it
    catalog_sync_compact_share share of the snapshot base the delta files may hold before a commit
                               writes a new base (default 0.1)
    catalog_sync_websites      comma-separated website codes whose store views are exported (default: all)
    catalog_sync_store_views   comma-separated store view codes to export (default: every active one)
    catalog_sync_base_views    comma-separated store view codes: each locale's base view, where views share one

Secrets stay in the Connections: the settings built here are used in-process and never logged
unredacted, put in XCom or written to the snapshot.
"""

from __future__ import annotations

import os

from catalog_sync.airflow.hooks import (
    CatalogTargetHook,
    MagentoDatabaseHook,
    StateStorageHook,
    StatusStoreHook,
    sqlalchemy_url,
    storage_options,
)
from catalog_sync.settings import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_COMPACT_SHARE,
    DEFAULT_LATE_WRITE_WINDOW_S,
    SyncSettings,
    codes,
    lock_lease_s,
    pinned_instant,
)

STATE_URL_VARIABLE = "catalog_sync_state_url"
BUCKETS_VARIABLE = "catalog_sync_buckets"
LOCK_LEASE_VARIABLE = "catalog_sync_lock_lease_s"

__all__ = ["load_settings", "sqlalchemy_url", "storage_options"]


def load_settings(get_connection=None, get_variable=None) -> SyncSettings:
    """Settings from the Connections and Variables above. Tasks use the Task SDK's lookups (the
    defaults); the plugin page, which runs in the API server, passes the server-side ones."""
    if get_variable is None:
        from airflow.sdk import Variable

        get_variable = lambda key, default: Variable.get(key, default=default)  # noqa: E731
    target = CatalogTargetHook(get_connection=get_connection).get_config(
        {"batch_size": get_variable("catalog_sync_batch_size", None)})
    default_state = os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "catalog_sync_state")
    source = MagentoDatabaseHook(get_connection=get_connection)
    return SyncSettings(
        source_url=source.get_uri(),
        **source.get_layout(),
        target_url=target.url,
        target=target,
        state_url=get_variable(STATE_URL_VARIABLE, default_state),
        status_url=StatusStoreHook(get_connection=get_connection, required=False).get_uri(),
        chunk_size=int(get_variable("catalog_sync_chunk_size", DEFAULT_CHUNK_SIZE)),
        buckets=int(get_variable(BUCKETS_VARIABLE, 1)),
        lock_ttl_s=lock_lease_s(get_variable(LOCK_LEASE_VARIABLE, None)),
        late_write_window_s=int(get_variable("catalog_sync_late_write_window_s", DEFAULT_LATE_WRITE_WINDOW_S)),
        compact_share=float(get_variable("catalog_sync_compact_share", DEFAULT_COMPACT_SHARE)),
        websites=codes(get_variable("catalog_sync_websites", None)),
        store_views=codes(get_variable("catalog_sync_store_views", None)),
        base_views=codes(get_variable("catalog_sync_base_views", None)),
        state_storage_options=StateStorageHook(get_connection=get_connection, required=False).get_storage_options(),
        now=pinned_instant(os.environ),  # replays and tests only: the worker's CATALOG_SYNC_NOW
    )
