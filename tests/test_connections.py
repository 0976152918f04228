"""Catalog Sync's connection types: registered with Airflow, with their form fields, and read by the hooks."""

from __future__ import annotations

import json

import pytest

import airflow_env  # noqa: F401  (conftest configured Airflow's home before this import)
from catalog_sync.airflow.connections import load_settings
from catalog_sync.airflow.provider import get_provider_info
from catalog_sync.targets.forms import target_forms

pytestmark = pytest.mark.airflow

OUR_TYPES = {"catalog_sync_magento", "catalog_sync_status_store", "catalog_sync_object_store",
             "catalog_sync_ingestion_api", "catalog_sync_files"}


def test_airflow_finds_every_connection_type_with_its_form_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hooks = {conn_type: info for conn_type, info in manager.hooks.items() if conn_type in OUR_TYPES}
    assert set(hooks) == OUR_TYPES and {info.package_name for info in hooks.values()} == {"catalog-sync"}
    fields = {name for name in manager.connection_form_widgets if name.startswith("extra__catalog_sync")}
    assert {"extra__catalog_sync_ingestion_api__price_books", "extra__catalog_sync_ingestion_api__ims_token_url",
            "extra__catalog_sync_magento__database_type", "extra__catalog_sync_object_store__endpoint_url",
            "extra__catalog_sync_files__price_books"} <= fields
    assert manager.field_behaviours["catalog_sync_ingestion_api"]["relabeling"]["host"] == "Base URL (with the tenant id)"


def test_each_hook_class_has_the_type_it_is_registered_for():
    import importlib

    for entry in get_provider_info()["connection-types"]:
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert (hook.conn_type, hook.hook_name) == (entry["connection-type"], entry["hook-name"])
    assert {f.conn_type for f in target_forms()} == {"catalog_sync_ingestion_api", "catalog_sync_files"}


def test_settings_come_from_connections_of_these_types_field_by_field(monkeypatch, tmp_path):
    """What a user fills in the forms (extra fields by name, no JSON by hand) is what the engine gets."""
    connections = {
        "catalog_sync_source": {"conn_type": "catalog_sync_magento", "host": "db.internal", "port": 3306, "schema": "magento",
                                "login": "reader", "password": "p@ss", "extra": {"database_type": "mysql"}},
        "catalog_sync_target": {"conn_type": "catalog_sync_ingestion_api", "host": "https://na1.example/t-1",
                                "password": "client-secret",
                                "extra": {"ims_token_url": "https://ims.example/token", "ims_client_id": "cid",
                                          "ims_scope": "openid", "price_books": "base=main-usd",
                                          "max_requests_per_minute": 120}},
        "catalog_sync_status": {"conn_type": "catalog_sync_status_store", "host": "pg.internal", "schema": "status",
                                "login": "cs", "extra": {"database_type": "postgresql"}},
        "catalog_sync_state": {"conn_type": "catalog_sync_object_store", "login": "AKIA", "password": "s3-secret",
                               "extra": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}},
    }
    for conn_id, value in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_STATE_URL", "s3://bucket/state")
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_BATCH_SIZE", "50")

    settings = load_settings()

    assert settings.source_url == "mysql+pymysql://reader:p%40ss@db.internal:3306/magento?charset=utf8mb4"
    assert settings.status_url == "postgresql+psycopg2://cs@pg.internal/status"
    assert settings.state_storage_options == {"key": "AKIA", "secret": "s3-secret", "client_kwargs": {
        "endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}}
    target = settings.target
    assert (target.url, dict(target.feed.price_books), target.max_requests_per_minute, target.batch_size) == (
        "https://na1.example/t-1", {"base": "main-usd"}, 120, 50)
    assert dict(target.ims) == {"token_url": "https://ims.example/token", "client_id": "cid",
                                "client_secret": "client-secret", "scope": "openid"}
    assert "client-secret" not in repr(settings) and "s3-secret" not in repr(settings) and "p@ss" not in repr(settings)
