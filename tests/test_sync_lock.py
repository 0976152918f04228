"""The per-target sync lock that keeps the hourly sync and the full resync apart."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from catalog_sync.state.status_store import StatusStore, SyncLockedError, sync_lock, this_process, utcnow

pytestmark = pytest.mark.dates  # leases live on the operational clock


@pytest.fixture
def store(tmp_path):
    return StatusStore(f"sqlite:///{tmp_path / 'status.db'}")


def test_one_holder_at_a_time(store):
    store.acquire_lock("catalog_sync__run1", 3600)

    with pytest.raises(SyncLockedError, match="being synced by catalog_sync__run1"):
        store.acquire_lock("catalog_full_resync__run7", 3600)

    store.acquire_lock("catalog_sync__run1", 3600)  # a retry of the holder's task
    assert store.release_lock("catalog_full_resync__run7") is False  # not the holder: no effect
    assert store.lock_holder().owner == "catalog_sync__run1"
    assert store.release_lock("catalog_sync__run1") is True
    store.acquire_lock("catalog_full_resync__run7", 3600)
    assert store.lock_holder().owner == "catalog_full_resync__run7"


def test_expired_lease_is_taken_over(store):
    store.acquire_lock("catalog_sync__crashed", 3600)
    with store.engine.begin() as conn:
        conn.execute(sa.update(sync_lock).values(expires_at=utcnow() - timedelta(seconds=1)))

    assert store.acquire_lock("catalog_sync__next", 3600) == "catalog_sync__crashed"
    assert store.lock_holder().owner == "catalog_sync__next"


def test_lock_of_a_dead_cli_process_is_taken_over_but_not_a_live_one(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = this_process().rsplit(":", 1)[0]
    store.acquire_lock("cli-dead", 3600, process=f"{host}:{dead.stdout.strip()}")

    assert store.acquire_lock("cli-next", 3600, process=this_process()) == "cli-dead"

    with pytest.raises(SyncLockedError):
        store.acquire_lock("cli-third", 3600, process=f"{host}:99999999")


def test_airflow_locks_are_never_taken_over_by_process_liveness(store):
    # Airflow runs span many short task processes: the lock records no process and lives by its lease.
    store.acquire_lock("catalog_sync__manual__1", 3600)
    with pytest.raises(SyncLockedError):
        store.acquire_lock("catalog_full_resync__manual__2", 3600, process=this_process())
