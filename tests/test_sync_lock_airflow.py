"""The sync lock in real Airflow runs (dag.test()): each task renews the lease, and a run that lost the
lock fails at its next step. Not marked `dates`: the leases here run on a FakeClock, and Airflow's own
retries of a failing task would wait out real delays under a moved system clock."""

from __future__ import annotations

import json

import pytest

from catalog_sync import clock, steps
from catalog_sync.state.status_store import StatusStore
from catalog_sync.state.sync_lock import lock_status

# The FakeClock, the fast heartbeat and the wait of the lock tests (fixtures, imported to be used here).
from test_sync_lock import T0, fake, fast_heartbeat, wait_until  # noqa: E402, F401


@pytest.fixture
def airflow_sync_env(sync_env, monkeypatch):
    """The DAGs' Connections and Variables pointed at the test's catalog, target and state; a 10-minute lease."""
    import airflow_env

    airflow_env.migrate_once()
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_SOURCE", json.dumps(
        {"conn_type": "catalog_sync_magento", "host": sync_env.source_url.removeprefix("sqlite:///"),
         "extra": {"database_type": "sqlite"}}))
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_TARGET", json.dumps({"conn_type": "catalog_sync_files",
                                                                       "host": sync_env.target_url}))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_STATE_URL", str(sync_env.state_dir))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_LOCK_LEASE_S", "600")
    return sync_env


@pytest.mark.airflow
def test_each_airflow_task_renews_the_lease_while_it_works(airflow_sync_env, fake, fast_heartbeat, monkeypatch):  # noqa: F811
    """An export task that works for five leases keeps the lock (its own heartbeat), and the run commits."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("dag_catalog_sync_lock", Path(__file__).parents[1] / "dags" / "catalog_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = StatusStore(f"sqlite:///{airflow_sync_env.state_dir / 'status.db'}")
    real_export = steps.export
    seen: list[tuple[str, float]] = []

    def slow_export(settings, run, bucket, **kwargs):
        for _ in range(5 * 4):
            fake.advance(150)
            wait_until(lambda: store.lock_holder().renewed_at == clock.now(), "the export task's renewal")
        holder = store.lock_holder()
        seen.append((lock_status(holder).state.value, (holder.expires_at - holder.renewed_at).total_seconds()))
        return real_export(settings, run, bucket, **kwargs)

    monkeypatch.setattr(steps, "export", slow_export)
    dag_run = module.dag.test()

    assert dag_run.state == "success"
    assert seen == [("unknown", 600.0)]  # an Airflow run; the lease from the Variable
    assert store.lock_holder() is None
    run = store.recent_runs(1)[0]
    assert (run["state"], run["started_at"]) == ("success", T0.isoformat())


@pytest.mark.airflow
def test_an_airflow_run_whose_lock_was_released_fails_at_its_next_step_and_commits_nothing(airflow_sync_env, monkeypatch):
    import importlib.util
    from pathlib import Path

    from catalog_sync.state.sync_lock import unlock

    spec = importlib.util.spec_from_file_location("dag_catalog_sync_unlocked", Path(__file__).parents[1] / "dags" / "catalog_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = StatusStore(f"sqlite:///{airflow_sync_env.state_dir / 'status.db'}")
    real_export = steps.export
    released: list[str] = []

    def export_then_unlocked(settings, run, bucket, **kwargs):
        result = real_export(settings, run, bucket, **kwargs)
        released.append(unlock(store, force=True, by="ops@bastion:1").message)
        return result

    monkeypatch.setattr(steps, "export", export_then_unlocked)
    dag_run = module.dag.test()

    tasks = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    assert (tasks["export"], tasks["export_catalog_deletes"], tasks["commit"], tasks["report"]) == (
        "success", "failed", "upstream_failed", "failed")
    run = store.recent_runs(1)[0]
    assert released == [f"unlocked target 'default': released the lock of {run['run_id']} (unknown); its run is marked "
                        "abandoned"]
    assert (run["state"], run["error"]) == ("failed", (
        f"export_catalog_deletes failed: LockLostError: run {run['run_id']} no longer holds the sync lock of target "
        "'default': it was released (`status` lists who released it); the step did not start, nothing was committed"))
    assert not (airflow_sync_env.state_dir / "manifest.json").exists()
    assert store.lock_holder() is None
    assert [(e["event"], e["done_by"]) for e in store.lock_events()] == [("force_unlocked", "ops@bastion:1")]
