"""Status stores for tests: one per database kind on this machine, and one written by an earlier release."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from previous_release import STATE_FORMAT_2, PreviousRelease

# The status store's schema each release wrote: 1 before it was versioned, 2 with per-feed counts.
STATUS_SCHEMA_1 = STATE_FORMAT_2
STATUS_SCHEMA_2 = "f47f218086d995a28198eadf3771f87b5e31552a"
RELEASES = {1: STATUS_SCHEMA_1, 2: STATUS_SCHEMA_2}

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@contextmanager
def empty_store_url(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty status store database of that kind, dropped afterwards."""
    from airflow_services import drop_postgres_database
    from services import drop_mariadb_database, fresh_mariadb_database, fresh_postgres_database

    if backend == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'status.db'}"
        return
    fresh, drop = {"postgresql": (fresh_postgres_database, drop_postgres_database),
                   "mariadb": (fresh_mariadb_database, drop_mariadb_database)}[backend]
    url = fresh("cs_status")
    try:
        yield url
    finally:
        drop(url)


# What a store of the earlier release holds: a finished run with failed items, and a running one with the lock.
_WRITE_WITH_OLD_RELEASE = '''
import inspect, sys
from catalog_sync.state.status_store import StatusStore

store = StatusStore(sys.argv[1])
store.start_run("cli-old-finished", "full", dry_run=False, mode_reason="no snapshot yet: first sync")
store.record_failures("cli-old-finished", [
    dict(product_id=7, sku="MS-0000007", store_view_code="default", op="upsert", status="rejected", reason="400: name"),
    dict(product_id=None, sku="", store_view_code="", op="delete", status="retryable", reason="503 from the target"),
])
counts = dict(extracted=600, inserted=580, updated=0, deleted=0, unchanged=0, failed=2)
if "feeds" in inspect.signature(store.finish_run).parameters:
    store.finish_run("cli-old-finished", "success", counts, feeds={"products": {"inserted": 580}})
else:
    store.finish_run("cli-old-finished", "success", counts)
store.start_run("catalog_sync__scheduled__old", "incremental", dry_run=False, dag_id="catalog_sync",
                airflow_run_id="scheduled__old")
store.acquire_lock("catalog_sync__scheduled__old", 6 * 3600)
store.dispose()
'''


def write_old_store(version: int, url: str, workdir: Path) -> None:
    """Have the release whose status store has schema `version` create the store at `url` and write to it."""
    release = PreviousRelease(RELEASES[version], workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_SYNC_")}
    env["PYTHONPATH"] = str(release.root / "include")
    done = subprocess.run([sys.executable, "-c", _WRITE_WITH_OLD_RELEASE, url], env=env, capture_output=True, text=True,
                          timeout=120, cwd=release.root)
    assert done.returncode == 0, done.stderr[-3000:]


def dump(url: str) -> dict[str, list[dict]]:
    """Every row of every table, as the database holds them, in key order."""
    engine = sa.create_engine(url)
    try:
        tables = sa.MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            return {name: [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                    for name, t in sorted(tables.tables.items())}
    finally:
        engine.dispose()


def columns(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        found = sa.inspect(engine)
        return {t: [c["name"] for c in found.get_columns(t)] for t in sorted(found.get_table_names())}
    finally:
        engine.dispose()

