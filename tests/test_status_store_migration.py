"""A status store written by an earlier release is upgraded in place: every row kept, never dropped,
also when several processes open it at the same moment."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from catalog_sync import clock
from catalog_sync.clock import FakeClock
from catalog_sync.state.status_schema import SCHEMA_VERSION, stored_version
from catalog_sync.state.status_store import LockHolder, StatusStore
from catalog_sync.state.sync_lock import LockState, lock_status
from status_store_helpers import BACKENDS, columns, dump, empty_store_url, write_old_store

pytestmark = pytest.mark.dates  # the old lease is judged on the operational clock

V1_COLUMNS = {
    "catalog_sync_runs": ["run_id", "target", "dag_id", "airflow_run_id", "mode", "dry_run", "state", "started_at", "ended_at",
                          "duration_s", "extracted", "inserted", "updated", "deleted", "unchanged", "failed", "mode_reason",
                          "error"],
    "catalog_sync_item_failures": ["id", "run_id", "product_id", "sku", "store_view_code", "op", "status", "reason"],
    "catalog_sync_lock": ["target", "owner", "process", "acquired_at", "expires_at"],
}
V2_COLUMNS = {**V1_COLUMNS,
              "catalog_sync_runs": [*V1_COLUMNS["catalog_sync_runs"], "feeds"],
              "catalog_sync_item_failures": [*V1_COLUMNS["catalog_sync_item_failures"], "feed", "item_key"],
              "catalog_sync_schema": ["id", "version"]}
V3_COLUMNS = {**V2_COLUMNS,
              "catalog_sync_runs": [*V2_COLUMNS["catalog_sync_runs"], "not_accepted"],
              "catalog_sync_lock": [*V1_COLUMNS["catalog_sync_lock"], "renewed_at", "process_start"],
              "catalog_sync_lock_events": ["id", "target", "happened_at", "event", "owner", "holder_state", "done_by",
                                           "reason"]}
# Per version, what it added to the tables that were there before (NULL on the rows kept).
ADDED = {2: {"catalog_sync_runs": ["feeds"], "catalog_sync_item_failures": ["feed", "item_key"]},
         3: {"catalog_sync_lock": ["renewed_at", "process_start"], "catalog_sync_runs": ["not_accepted"]}}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _without(rows: list[dict], names: list[str]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in names} for row in rows]


@pytest.mark.parametrize("old_version", [1, 2], ids=["from-v1", "from-v2"])
def test_an_older_store_is_upgraded_in_place_with_every_row_kept(old_version, backend, tmp_path):
    with empty_store_url(backend, tmp_path / "store") as url:
        write_old_store(old_version, url, tmp_path)
        assert columns(url) == (V1_COLUMNS if old_version == 1 else V2_COLUMNS)
        before = dump(url)
        assert {t: len(rows) for t, rows in before.items()} == {
            "catalog_sync_item_failures": 2, "catalog_sync_lock": 1, "catalog_sync_runs": 2,
            **({"catalog_sync_schema": 1} if old_version == 2 else {})}

        store = StatusStore(url)

        assert stored_version(store.engine) == SCHEMA_VERSION == 3
        assert columns(url) == V3_COLUMNS
        after = dump(url)
        assert after["catalog_sync_schema"] == [{"id": 1, "version": 3}]
        assert after["catalog_sync_lock_events"] == []
        added = {t: [c for v in range(old_version + 1, 4) for c in ADDED[v].get(t, [])] for t in V1_COLUMNS}
        for table in V1_COLUMNS:
            assert _without(after[table], added[table]) == before[table], table  # every row, every value
            assert {c: {row[c] for row in after[table]} for c in added[table]} == {c: {None} for c in added[table]}

        # The new code reads the old rows...
        old_lock = before["catalog_sync_lock"][0]
        holder = store.lock_holder()
        assert holder == LockHolder("catalog_sync__scheduled__old", "", holder.acquired_at, holder.expires_at,
                                    holder.acquired_at, "")
        assert holder.expires_at - holder.acquired_at == timedelta(hours=6)
        assert holder.acquired_at.replace(tzinfo=None) == old_lock["acquired_at"].replace(tzinfo=None)
        finished = store.get_run("cli-old-finished")
        assert (finished["state"], finished["inserted"], finished["failed"]) == ("success", 580, 2)
        assert finished["feeds"] == ({} if old_version == 1 else {"products": {"inserted": 580}})
        assert [(f["sku"], f["status"], f["feed"]) for f in store.failures("cli-old-finished")] == [
            ("MS-0000007", "rejected", None), ("", "retryable", None)]

        # ...and works on them: the old run's lease ended, the next sync takes the lock over and says so.
        with clock.use(FakeClock(holder.expires_at + timedelta(seconds=1))):
            assert lock_status(holder).state is LockState.EXPIRED
            assert store.acquire_lock("catalog_full_resync__new", 1800) == "catalog_sync__scheduled__old"
        assert [(e["event"], e["owner"], e["holder_state"], e["done_by"]) for e in store.lock_events()] == [
            ("taken_over", "catalog_sync__scheduled__old", "expired", "catalog_full_resync__new")]
        assert dump(url)["catalog_sync_runs"] == after["catalog_sync_runs"]  # nothing else changed
        store.dispose()


def test_processes_opening_an_old_store_at_once_all_upgrade_it(backend, tmp_path):
    """Two runs starting together after a deploy both migrate: one does it, the others wait and find it done."""
    for trial in range(3):
        with empty_store_url(backend, tmp_path / f"store-{trial}") as url:
            write_old_store(2, url, tmp_path)
            before = dump(url)
            barrier = threading.Barrier(4)
            outcomes: list[str] = []

            def open_store() -> None:
                barrier.wait()
                try:
                    StatusStore(url).dispose()
                    outcomes.append("ok")
                except Exception as exc:  # the failure this test is about
                    outcomes.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=open_store) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)

            assert outcomes == ["ok"] * 4, f"trial {trial}: {outcomes}"
            assert columns(url) == V3_COLUMNS
            after = dump(url)
            assert after["catalog_sync_schema"] == [{"id": 1, "version": 3}]
            for table in V1_COLUMNS:
                assert _without(after[table], ADDED[3].get(table, [])) == before[table]


def test_a_store_of_a_newer_release_is_used_as_it_is(tmp_path):
    url = f"sqlite:///{tmp_path / 'status.db'}"
    StatusStore(url).dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE catalog_sync_schema SET version = 4"))

    store = StatusStore(url)

    assert stored_version(engine) == 4
    store.acquire_lock("cli-a", 1800)
    assert store.lock_holder().owner == "cli-a"
    engine.dispose()
    store.dispose()
