"""Hash buckets of sku: a run split into N buckets ends exactly where the plain run ends."""

from __future__ import annotations

import json
import shutil

import pytest

import airflow_env
from catalog_sync import cli
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.state import duckdb_session
from catalog_sync.state.location import StateLocation
from catalog_sync.state.snapshot import SnapshotStore
from catalog_sync.steps.buckets import bucket_of, duckdb_bucket
from receiver_helpers import ThreadedReceiver
from sync_helpers import SyncEnv, expected_feed, mapped_source

TOKEN = "bucket-token"
# What differs between two snapshots of the same catalog: when, by which run, in which row order.
VOLATILE = ("exported_at", "run_id")


def test_python_and_duckdb_put_every_sku_in_the_same_bucket():
    skus = [f"SKU-{n}" for n in range(500)] + ["Camiseta Básica Algodão-azul", "a/b c", "😀-emoji", ""]
    con = duckdb_session.connect()
    rows = con.execute(f"SELECT sku, {duckdb_bucket('sku', 4)} FROM (SELECT unnest(?) AS sku)", [skus]).fetchall()
    assert {sku: int(b) for sku, b in rows} == {sku: bucket_of(sku, 4) for sku in skus}
    assert {bucket_of(s, 4) for s in skus} == {0, 1, 2, 3}
    assert {bucket_of(s, 1) for s in skus} == {0}


def _receiver(db_path: str, tenant: str) -> ThreadedReceiver:
    return ThreadedReceiver(db_path, ReceiverOptions(tenant_id=tenant, required_token=TOKEN))


def _receiver_state(receiver: ThreadedReceiver) -> dict:
    return {kind: receiver.get(kind) for kind in ("products", "prices", "price-books", "metadata")}


def snapshot_rows(state_dir) -> dict[str, list[tuple]]:
    """Every feed's current snapshot rows without the volatile columns, in a fixed order."""
    store = SnapshotStore(StateLocation(str(state_dir)))
    rows = {}
    con = duckdb_session.connect()
    for feed, files in sorted(store.read_manifest().feeds.items()):
        path = store.file_url(files.file)
        cols = [c for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall() if c[0] not in VOLATILE]
        names = ", ".join(c[0] for c in cols)
        rows[feed] = con.execute(f"SELECT {names} FROM read_parquet('{path}') ORDER BY key").fetchall()
    return rows


def _sync(env: SyncEnv, capsys, target: str, state_dir, *extra: str) -> dict:
    capsys.readouterr()
    code = cli.main(["sync", "--source-url", env.source_url, "--target-url", target, "--state-url", str(state_dir), *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    return json.loads(out[-1])


def test_four_buckets_and_one_give_the_same_receiver_state_and_snapshot(sync_env, tmp_path, capsys, monkeypatch):
    """A full sync, then renames, a delete and a removal from a website, then an incremental sync."""
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    plain, bucketed = _receiver(str(tmp_path / "plain.db"), "plain"), _receiver(str(tmp_path / "bucketed.db"), "bucketed")
    try:
        runs = {}
        for name, receiver, extra in (("plain", plain, ()), ("bucketed", bucketed, ("--buckets", "4"))):
            runs[name] = [_sync(sync_env, capsys, receiver.target, tmp_path / f"state-{name}", *extra)]
        sync_env.execute(
            "UPDATE catalog_product_entity_varchar SET value = value || ' (new)' WHERE attribute_id = 73 AND entity_id % 7 = 0",
            "DELETE FROM catalog_product_entity WHERE entity_id IN (SELECT entity_id FROM catalog_product_entity "
            "WHERE type_id = 'simple' ORDER BY entity_id LIMIT 2)",
            "DELETE FROM catalog_product_website WHERE product_id = (SELECT max(entity_id) FROM catalog_product_entity "
            "WHERE type_id = 'simple') AND website_id = 2",
        )
        for name, receiver, extra in (("plain", plain, ()), ("bucketed", bucketed, ("--buckets", "4"))):
            runs[name].append(_sync(sync_env, capsys, receiver.target, tmp_path / f"state-{name}", *extra))

        for first, second in (runs["plain"], runs["bucketed"]):
            assert first["mode"] == "full" and second["mode"] == "incremental" and second["failed"] == 0
            assert second["deleted"] >= 3 and second["updated"] >= 1
        strip = [{k: v for k, v in r.items() if k != "duration_s"} for r in runs["plain"]]
        assert strip == [{k: v for k, v in r.items() if k != "duration_s"} for r in runs["bucketed"]]
        assert _receiver_state(plain) == _receiver_state(bucketed)
        assert len(plain.get("products")) == len(expected_feed(sync_env.source_url))
        assert snapshot_rows(tmp_path / "state-plain") == snapshot_rows(tmp_path / "state-bucketed")
    finally:
        plain.stop()
        bucketed.stop()


@pytest.mark.airflow
def test_the_dag_runs_extract_diff_and_export_once_per_bucket(sync_env, tmp_path, capsys, monkeypatch):
    """dag.test() with catalog_sync_buckets = 4: four mapped instances each, one commit, the plain run's snapshot."""
    from test_dags import load_dag

    airflow_env.migrate_once()
    db_path = sync_env.source_url.removeprefix("sqlite:///")
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_SOURCE", json.dumps({"conn_type": "sqlite", "host": db_path}))
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_SYNC_TARGET", json.dumps({"conn_type": "generic", "extra": {"url": sync_env.target_url}}))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_STATE_URL", str(sync_env.state_dir))
    monkeypatch.setenv("AIRFLOW_VAR_CATALOG_SYNC_BUCKETS", "4")

    dag_run = load_dag("catalog_sync").test()

    instances = dag_run.get_task_instances()
    assert dag_run.state == "success", {(ti.task_id, ti.map_index): ti.state for ti in instances}
    mapped = {}
    for ti in instances:
        mapped.setdefault(ti.task_id, set()).add(ti.map_index)
    assert mapped["extract"] == mapped["diff"] == mapped["export"] == {0, 1, 2, 3}
    assert mapped["commit"] == mapped["report"] == mapped["export_catalog_upserts"] == {-1}
    assert sync_env.target_state() == mapped_source(sync_env.source_url)

    plain_state = tmp_path / "plain-state"
    shutil.rmtree(plain_state, ignore_errors=True)
    _sync(sync_env, capsys, f"file://{tmp_path / 'plain-target'}", plain_state)
    assert snapshot_rows(sync_env.state_dir) == snapshot_rows(plain_state)
