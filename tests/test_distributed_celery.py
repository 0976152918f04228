"""Distributed mode: the CeleryExecutor (Redis broker), two workers in separate folders, state on S3.

The Airflow services run on PostgreSQL; two `airflow celery worker` processes, each in its own working
folder and temp folder, split the queues as the Astro deployment does: worker-a takes the `default`
queue (plan, buckets, commit, report), worker-b the `catalog-sync` queue (extract, diff, export, in 4
buckets). So commit always reads what another worker wrote: the run can only succeed if snapshot and
staging live in object storage (moto in server mode, through the catalog_sync_state Connection).
The source is the real Magento fixture in MariaDB, the target the reference receiver.
"""

from __future__ import annotations

import json
import time

import pytest
import s3fs

from airflow_services import (
    DAGS_TIMEOUT,
    HEALTH_TIMEOUT,
    ROOT,
    AirflowServices,
    Receiver,
    free_port,
    mapped_source,
    service_env,
)
from services import MotoS3, port_open, unavailable

REDIS_URL = "redis://127.0.0.1:6379/11"
WORKERS = {"worker-a": "default", "worker-b": "catalog-sync"}  # name -> the queue it consumes
BUCKETS = 4

pytestmark = [pytest.mark.airflow, pytest.mark.mariadb, pytest.mark.postgres]


@pytest.fixture
def celery_deployment(tmp_path, magento_fixture_url, postgres_databases):
    if not port_open("127.0.0.1", 6379):
        unavailable("Redis is not listening on 127.0.0.1:6379 (the Celery broker)")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    metadata_url, status_url = postgres_databases
    home = tmp_path / "airflow"
    home.mkdir()
    s3 = MotoS3(tmp_path)
    receiver = Receiver(tmp_path)
    env = service_env(home, free_port(), metadata_url, status_url, magento_fixture_url, receiver)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.name",
        "PYTHONPATH": env["PYTHONPATH"] + ":" + str(ROOT / "tests" / "support"),
        "CATALOG_SYNC_WORKER_QUEUE": "catalog-sync",
        "AIRFLOW_VAR_CATALOG_SYNC_STATE_URL": f"s3://{s3.bucket}/catalog-sync",
        "AIRFLOW_VAR_CATALOG_SYNC_BUCKETS": str(BUCKETS),
        "AIRFLOW_CONN_CATALOG_SYNC_STATE": json.dumps({
            "conn_type": "aws", "login": "test", "password": "test",
            "extra": {"endpoint_url": s3.endpoint, "region_name": "us-east-1"}}),
    })
    airflow = AirflowServices(home, metadata_url, env)
    try:
        receiver.start({k: v for k, v in env.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW"))})
        yield airflow, receiver, s3, magento_fixture_url, tmp_path
    finally:
        airflow.stop()
        receiver.stop()
        s3.stop()


@pytest.mark.timeout(900)
def test_a_sync_on_two_celery_workers_that_share_nothing_but_s3(celery_deployment):
    airflow, receiver, s3, source_url, tmp_path = celery_deployment
    t0 = time.monotonic()
    airflow.migrate()
    airflow.start()
    folders = {}
    for name, queue in WORKERS.items():
        folder = tmp_path / name
        (folder / "tmp").mkdir(parents=True)
        folders[name] = folder
        airflow.start_process(
            name, ["airflow", "celery", "worker", "--queues", queue, "--concurrency", "2",
                   "--celery-hostname", f"{name}@%h"],
            cwd=folder, extra_env={"CATALOG_SYNC_TEST_WORKER_NAME": name, "TMPDIR": str(folder / "tmp"),
                                   "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
    try:
        airflow.wait_healthy(HEALTH_TIMEOUT)
        airflow.login()
        dags = {d["dag_id"] for d in airflow.wait_dags(DAGS_TIMEOUT)}
        assert {"catalog_sync", "catalog_full_resync"} <= dags
        started = time.monotonic()
        airflow.unpause("catalog_sync")  # run_immediately: the first run starts now
        airflow.wait_for_a_run("catalog_sync")
        runs = airflow.settle()
        sync_s = time.monotonic() - started

        # run_immediately starts one run now; a test that crosses the top of an hour also gets that hour's run.
        run, *later = sorted(runs["catalog_sync"], key=lambda r: r.get("start_date") or "")
        for extra in later:
            airflow.assert_run_succeeded("catalog_sync", extra["dag_run_id"])
        tis = airflow.assert_run_succeeded("catalog_sync", run["dag_run_id"])
        hosts = {(ti["task_id"], ti.get("map_index", -1)): ti["hostname"] for group in tis.values() for ti in group}
        assert {hosts[("extract", b)] for b in range(BUCKETS)} == {"worker-b"}
        assert {hosts[("diff", b)] for b in range(BUCKETS)} == {hosts[("export", b)] for b in range(BUCKETS)} == {"worker-b"}
        assert hosts[("commit", -1)] == hosts[("report", -1)] == hosts[("plan", -1)] == "worker-a"

        products, prices = receiver.state()
        expected_products, expected_prices = mapped_source(source_url)
        assert (products, prices) == (expected_products, expected_prices)

        fs = s3fs.S3FileSystem(**s3.storage_options())
        manifest = json.loads(fs.cat(f"{s3.bucket}/catalog-sync/manifest.json"))
        assert manifest["version"] == 1 + len(later) and manifest["feeds"]["products"]["items"] == len(expected_products)
        assert manifest["feeds"]["prices"]["items"] == len(expected_prices)
        assert fs.glob(f"{s3.bucket}/catalog-sync/snapshot/products/*.parquet")
        assert fs.glob(f"{s3.bucket}/catalog-sync/staging/**/*.parquet") == []  # the report cleaned up
        for name, folder in folders.items():  # nothing of the sync's data was written in a worker's folder
            leftovers = [p for p in folder.rglob("*") if p.suffix in (".parquet", ".json")]
            assert leftovers == [], f"{name} kept local files: {leftovers}"
        print(f"\n[celery] services up + first sync on 2 workers, {BUCKETS} buckets: sync {sync_s:.1f}s, "
              f"total {time.monotonic() - t0:.1f}s; tasks per worker: "
              f"{ {w: sum(1 for h in hosts.values() if h == w) for w in WORKERS} }")
    except BaseException:
        print(airflow.diagnostics())
        raise
