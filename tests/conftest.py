from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import airflow_env  # noqa: E402
import shop_sql  # noqa: E402

airflow_env.configure()

from services import drop_mariadb_database, fresh_mariadb_database, load_magento_fixture  # noqa: E402


@pytest.fixture
def mariadb_url():
    """A fresh, empty MariaDB database, dropped afterwards."""
    url = fresh_mariadb_database()
    yield url
    drop_mariadb_database(url)


@pytest.fixture(params=[shop_sql.OPEN_SOURCE, shop_sql.COMMERCE])
def magento_fixture_url(request, mariadb_url):
    """A fresh MariaDB database holding the real Magento 2.4.8 catalog, with its triggers: as dumped (Magento
    Open Source's layout), and derived into Adobe Commerce's content staging layout (tests/magento_layouts.py).
    Every test on it runs on both, and writes the shop through shop_sql (SyncEnv.execute), once for both."""
    if request.param == shop_sql.COMMERCE:
        from magento_layouts import load_commerce_fixture

        load_commerce_fixture(mariadb_url)
    else:
        load_magento_fixture(mariadb_url)
    shop_sql.register(mariadb_url, request.param)
    return mariadb_url


@pytest.fixture(scope="session")
def demo_catalog_template(tmp_path_factory):
    """A 300-product x 2 store-view demo catalog, generated once and copied per test."""
    from catalog_sync.demo.generator import generate_demo_catalog

    path = tmp_path_factory.mktemp("demo") / "magento-demo.db"
    summary = generate_demo_catalog(f"sqlite:///{path}", products=300, store_views=2, seed=7)
    return path, summary


@pytest.fixture
def sync_env(tmp_path, demo_catalog_template, monkeypatch):
    """A private copy of the demo catalog, an empty file target and an empty state folder; every
    run is judged at one pinned instant, so expected prices never depend on the calendar."""
    import shutil

    from sync_helpers import PINNED_NOW, SyncEnv

    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    template, _ = demo_catalog_template
    db = tmp_path / "magento.db"
    shutil.copy(template, db)
    return SyncEnv(source_url=f"sqlite:///{db}", target_dir=tmp_path / "target", state_dir=tmp_path / "state")


@pytest.fixture
def postgres_databases():
    """Two fresh PostgreSQL databases: Airflow's metadata and the Catalog Sync status store; dropped after."""
    from airflow_services import drop_postgres_database
    from services import fresh_postgres_database

    created = []
    try:
        for prefix in ("cs_airflow", "cs_status"):
            created.append(fresh_postgres_database(prefix))
        yield tuple(created)
    finally:
        for url in created:
            drop_postgres_database(url)
