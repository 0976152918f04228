"""The DAGs on the real Airflow: structure, and whole runs through dag.test()."""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import pytest

import airflow_env
from sync_helpers import key_text, mapped_source, product_key

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.airflow


def load_dag(name: str):
    spec = importlib.util.spec_from_file_location(f"dag_{name}", ROOT / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture(scope="module")
def airflow_db():
    airflow_env.migrate_once()


@pytest.fixture
def airflow_sync_env(sync_env, monkeypatch, airflow_db):
    """Point the DAGs' Connections (of Catalog Sync's own types) and Variables at the test's catalog, target and state."""
    db_path = sync_env.source_url.removeprefix("sqlite:///")
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_SOURCE", json.dumps(
        {"conn_type": "catalog_sync_magento", "host": db_path, "extra": {"database_type": "sqlite"}}))
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_TARGET",
                       json.dumps({"conn_type": "catalog_sync_files", "host": sync_env.target_url}))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_STATE_URL", str(sync_env.state_dir))
    return sync_env


def _run(dag, **kwargs):
    dag_run = dag.test(**kwargs)
    # Mapped tasks (extract, diff, export: one per bucket) have one instance per map index.
    return dag_run.state, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def test_both_dags_are_wired_the_same_way():
    hourly, resync = load_dag("catalog_sync"), load_dag("catalog_full_resync")
    chain = ["plan", "buckets", "extract", "diff", "export_catalog_upserts", "export", "export_catalog_deletes", "commit",
             "report"]
    for dag in (hourly, resync):
        assert sorted(dag.task_ids) == sorted(chain)
        for upstream, downstream in zip(chain, chain[1:]):
            assert downstream in dag.get_task(upstream).downstream_task_ids
        assert dag.max_active_runs == 1
        assert dag.doc_md and "lock" in dag.doc_md
        for task in dag.tasks:
            if task.task_id in ("extract", "diff", "export_catalog_upserts", "export", "export_catalog_deletes", "commit"):
                assert task.retries == 3 and task.retry_exponential_backoff == 2.0
                assert task.execution_timeout is not None and task.execution_timeout <= timedelta(hours=1)
        assert dag.get_task("report").trigger_rule == "all_done"
        assert dag.get_task("plan").mode == "reschedule"
    assert type(hourly.timetable).__name__ == "CronTriggerTimetable"
    assert hourly.timetable.expression == "0 * * * *" and hourly.timetable.run_immediately is True
    assert type(resync.timetable).__name__ == "NullTimetable"
    assert set(resync.params.keys()) == {"cleanup", "skus", "dry_run", "rebuild"}
    assert (resync.params["cleanup"], resync.params["skus"], resync.params["dry_run"], resync.params["rebuild"]) == (
        False, [], False, False)


def test_hourly_dag_exports_everything_then_nothing_then_exactly_the_change(airflow_sync_env, demo_catalog_template):
    env = airflow_sync_env
    _, generated = demo_catalog_template
    dag = load_dag("catalog_sync")

    state, tasks = _run(dag)

    assert state == "success", tasks
    assert env.target_state() == mapped_source(env.source_url)
    assert len(env.target_state()["products"]) == generated.feed_records
    files_after_first = env.delta_files()

    state, _ = _run(dag)

    assert state == "success"
    assert env.delta_files() == files_after_first  # nothing changed, nothing sent

    entity_id, sku = env.scalar(
        "SELECT v.entity_id || '|' || e.sku FROM catalog_product_entity_varchar v "
        "JOIN catalog_product_entity e ON e.entity_id = v.entity_id WHERE v.attribute_id = 73 AND v.store_id = 2 "
        "ORDER BY v.entity_id LIMIT 1").split("|")
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Changé pour la vue 2' "
                "WHERE entity_id = :id AND attribute_id = 73 AND store_id = 2", params={"id": int(entity_id)})

    state, _ = _run(dag)

    assert state == "success"
    new_files = sorted(set(env.delta_files()) - set(files_after_first))
    lines = env.lines_of(new_files)
    assert [(line["op"], line["feed"], key_text(line["key"]), line["body"]["name"]) for line in lines] == [
        ("upsert", "products", product_key(sku, "fr-FR"), "Changé pour la vue 2")]
    from catalog_sync.state.status_store import StatusStore

    runs = StatusStore(f"sqlite:///{env.state_dir / 'status.db'}").recent_runs(3)
    assert [(r["state"], r["mode"], r["updated"], r["dag_id"]) for r in runs] == [
        ("success", "incremental", 1, "catalog_sync"),
        ("success", "incremental", 0, "catalog_sync"),
        ("success", "full", 0, "catalog_sync"),
    ]
    assert runs[2]["inserted"] == generated.feed_records and runs[0]["airflow_run_id"]


def test_full_resync_dag_cleanup_reexports_everything_and_dry_run_sends_nothing(airflow_sync_env, demo_catalog_template):
    env = airflow_sync_env
    _, generated = demo_catalog_template
    hourly, resync = load_dag("catalog_sync"), load_dag("catalog_full_resync")
    assert _run(hourly)[0] == "success"
    before = set(env.delta_files())
    manifest_before = (env.state_dir / "manifest.json").read_bytes()

    state, _ = _run(resync, run_conf={"dry_run": True, "cleanup": True, "skus": []})

    assert state == "success"
    assert set(env.delta_files()) == before
    assert (env.state_dir / "manifest.json").read_bytes() == manifest_before

    # Full conf each time: dag.test() keeps the previous run_conf in the DAG's params.
    state, _ = _run(resync, run_conf={"dry_run": False, "cleanup": True, "skus": []})

    assert state == "success"
    resent = env.lines_of(sorted(set(env.delta_files()) - before))
    expected = mapped_source(env.source_url)
    assert len(resent) == sum(len(items) for items in expected.values())  # every item of every feed, once
    assert {line["op"] for line in resent} == {"upsert"}
    assert env.target_state() == expected


def test_failed_commit_fails_the_run_releases_the_lock_and_the_next_run_resends(airflow_sync_env, monkeypatch):
    from catalog_sync import steps
    from catalog_sync.state.status_store import StatusStore

    env = airflow_sync_env
    dag = load_dag("catalog_sync")
    assert _run(dag)[0] == "success"
    entity_id = env.scalar("SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1")
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Lost unless re-sent' "
                "WHERE entity_id = :id AND attribute_id = 73 AND store_id = 0", params={"id": entity_id})
    real_commit = steps.commit

    def broken_commit(settings, run):
        raise OSError("disk full while writing the snapshot")

    monkeypatch.setattr(steps, "commit", broken_commit)
    monkeypatch.setitem(dag.get_task("commit").__dict__, "retries", 0)

    state, tasks = _run(dag)

    assert state == "failed"
    assert tasks["export"] == "success" and tasks["commit"] == "failed" and tasks["report"] == "failed"
    status = StatusStore(f"sqlite:///{env.state_dir / 'status.db'}")
    failed_run = status.recent_runs(1)[0]
    assert failed_run["state"] == "failed"
    assert failed_run["error"] == "commit failed: OSError: disk full while writing the snapshot"
    # The export sent the rename, but nothing was committed: the failed run counts nothing as accepted.
    assert (failed_run["inserted"], failed_run["updated"], failed_run["deleted"]) == (0, 0, 0)
    assert status.lock_holder() is None

    monkeypatch.setattr(steps, "commit", real_commit)
    state, _ = _run(dag)

    assert state == "success"
    assert status.recent_runs(1)[0]["updated"] >= 1
    assert env.target_state() == mapped_source(env.source_url)
