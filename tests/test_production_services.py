"""Catalog Sync on real, separately started Airflow services, driven only through Airflow's REST API.

Issue acceptance: start `airflow api-server`, `scheduler`, `dag-processor` and `triggerer`
against PostgreSQL with the LocalExecutor; the source is the real Magento 2.4.8 fixture in a
fresh MariaDB database, the target the reference receiver. Through the REST API:

1. unpause and trigger `catalog_sync`, then wait for success (the receiver holds the mapped source);
2. change the source through SQL (a store-scoped name, a price), trigger again: exactly those
   entries change at the receiver, nothing else;
3. trigger `catalog_full_resync` with Params while a `catalog_sync` run is still going: the full
   resync's `plan` sensor waits for the sync lock, the working windows (extract..commit) of the
   runs never intersect, and both runs succeed.

Everything is private to the test: two fresh PostgreSQL databases (Airflow's metadata and the
Catalog Sync status store), a temporary AIRFLOW_HOME and state folder, the receiver in its own
process. Every process group is killed and every database dropped at the end. On failure the
tails of the component logs and of the latest task logs are printed.

Mapped steps (extract/diff/export over hash buckets) are fine: a run's working window spans every
map index of extract..commit. An hourly run that the scheduler owes during the test (run_immediately
on unpause, or an hour boundary) is waited for and checked like the triggered ones.
About 95-110 s on the 2-core machine, most of it the full resync's 30 s lock poke interval.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from airflow_services import (
    ACTIVE_RUN_STATES,
    DAG_IDS,
    DAGS_TIMEOUT,
    HEALTH_TIMEOUT,
    LOCK_WAIT_OBSERVED_TIMEOUT,
    RECEIVER_KINDS,
    RECEIVER_LATENCY_S,
    AirflowServices,
    Receiver,
    changed_keys,
    free_port,
    mapped_source,
    parse_time,
    run_sql,
    service_env,
    tail,
)

# The real fixture (see tests/test_magento_fixture.py): a watch and a jacket, both simple products,
# in the one store view (default, pt_BR) of the one website (base, BRL).
WATCH, JACKET = "Relógio Analógico Clássico", "Jaqueta Jeans Feminina"
WATCH_ID, JACKET_ID = 11, 2
NAME_ATTRIBUTE, PRICE_ATTRIBUTE = 73, 77
LOCALE, PRICE_BOOK = "pt-BR", "base"

pytestmark = [pytest.mark.airflow, pytest.mark.mariadb, pytest.mark.postgres]


@pytest.fixture
def production(tmp_path, magento_fixture_url, postgres_databases):
    """Receiver + the four Airflow services on PostgreSQL, LocalExecutor. Yields (airflow, receiver, source, status)."""
    metadata_url, status_url = postgres_databases
    home = tmp_path / "airflow"
    home.mkdir()
    (tmp_path / "state").mkdir()
    receiver = Receiver(tmp_path)
    env = service_env(home, free_port(), metadata_url, status_url, magento_fixture_url, receiver)
    airflow = AirflowServices(home, metadata_url, env)
    receiver_env = {k: v for k, v in env.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW"))}
    try:
        receiver.start(receiver_env)
        yield airflow, receiver, magento_fixture_url, status_url
    finally:
        airflow.stop()
        receiver.stop()


# ---- the test ------------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_production_services_sync_change_and_full_resync_through_the_rest_api(production):
    airflow, receiver, source_url, status_url = production
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    last = [t0]

    def mark(phase: str) -> None:
        now = time.monotonic()
        timings[phase] = round(now - last[0], 1)
        last[0] = now

    try:
        # ---- the services ----------------------------------------------------------------------------
        airflow.migrate()
        mark("db migrate")
        airflow.start()
        airflow.wait_healthy(HEALTH_TIMEOUT)
        airflow.login()
        mark("services healthy")
        dags = airflow.wait_dags(DAGS_TIMEOUT)
        assert sorted(d["dag_id"] for d in dags) == sorted(DAG_IDS)
        assert all(d["is_paused"] for d in dags)  # paused at creation: nothing ran yet
        errors = airflow.api("GET", "/importErrors")
        assert errors["total_entries"] == 0, f"import errors: {errors['import_errors']}"
        mark("dags parsed")

        # ---- 1. unpause and trigger catalog_sync, wait for success ---------------------------------------
        for dag_id in DAG_IDS:
            airflow.unpause(dag_id)
        first = airflow.trigger("catalog_sync")
        runs = airflow.settle()
        assert runs["catalog_full_resync"] == []
        assert first["dag_run_id"] in {r["dag_run_id"] for r in runs["catalog_sync"]}
        for run in runs["catalog_sync"]:  # ours, and the one run_immediately=True scheduled on unpause
            airflow.assert_run_succeeded("catalog_sync", run["dag_run_id"])
        products, prices = receiver.state()
        expected_products, expected_prices = mapped_source(source_url)
        assert len(products) == 23 and {key.split("|")[1] for key in products} == {LOCALE}
        assert products == expected_products
        assert prices == expected_prices
        mark("1. first sync")
        phase1_runs = {r["dag_run_id"] for r in runs["catalog_sync"]}

        # ---- 2. change the source through SQL, trigger again: exactly those changes ---------------------
        before = receiver.everything()
        before_products, before_prices = before["products"], before["prices"]
        run_sql(source_url,
                # a name at store-view scope (store 1, the default store view) for the watch
                f"INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
                f"VALUES ({NAME_ATTRIBUTE}, 1, {WATCH_ID}, 'Relógio — loja')",
                # a new price for the jacket
                f"UPDATE catalog_product_entity_decimal SET value = 260.00 "
                f"WHERE entity_id = {JACKET_ID} AND attribute_id = {PRICE_ATTRIBUTE} AND store_id = 0")
        second = airflow.trigger("catalog_sync")
        runs = airflow.settle()
        new_runs = [r for r in runs["catalog_sync"] if r["dag_run_id"] not in phase1_runs]
        assert second["dag_run_id"] in {r["dag_run_id"] for r in new_runs}
        summaries = []
        for run in new_runs:
            airflow.assert_run_succeeded("catalog_sync", run["dag_run_id"])
            summaries.append(airflow.xcom("catalog_sync", run["dag_run_id"], "report"))
        assert all(s["mode"] == "incremental" and s["failed"] == 0 for s in summaries), summaries
        # The watch's name (a product body) and the jacket's price (a price body): one item of each feed.
        assert [sum(s["feeds"][f]["updated"] for s in summaries) for f in ("products", "prices")] == [1, 1]
        assert sum(s["feeds"][f][k] for s in summaries for f in s["feeds"] for k in ("inserted", "deleted")) == 0

        after = receiver.everything()
        after_products, after_prices = after["products"], after["prices"]
        changed = {kind: changed_keys(before[kind], after[kind]) for kind in RECEIVER_KINDS}
        assert changed == {**{kind: set() for kind in RECEIVER_KINDS},
                           "products": {f"{WATCH}|{LOCALE}"}, "prices": {f"{JACKET}|{PRICE_BOOK}"}}, changed
        assert after_products[f"{WATCH}|{LOCALE}"] == {**before_products[f"{WATCH}|{LOCALE}"], "name": "Relógio — loja"}
        assert after_prices[f"{JACKET}|{PRICE_BOOK}"] == {**before_prices[f"{JACKET}|{PRICE_BOOK}"], "regular": 260.0}
        assert (after_products, after_prices) == mapped_source(source_url)
        mark("2. SQL change synced")
        phase2_runs = {r["dag_run_id"] for r in runs["catalog_sync"]}

        # ---- 3. a full resync with Params while a catalog_sync run is still going -------------------------
        upserts_before = receiver.accepted("products", "upsert")
        receiver.faults(latency_s=RECEIVER_LATENCY_S, latency_rate=1.0)
        run_sql(source_url,
                f"INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
                f"VALUES ({NAME_ATTRIBUTE}, 1, {JACKET_ID}, 'Jaqueta Jeans — loja')")
        sync_run = airflow.trigger("catalog_sync")["dag_run_id"]
        # The sync holds the lock once its plan succeeded; it is still going while extract..report run.
        deadline = time.monotonic() + LOCK_WAIT_OBSERVED_TIMEOUT
        while airflow.task_states("catalog_sync", sync_run).get("plan") != "success":
            airflow.check_running()
            assert time.monotonic() < deadline, f"catalog_sync {sync_run}: plan never succeeded"
            time.sleep(0.5)
        params = {"cleanup": True, "skus": [], "dry_run": False}
        resync = airflow.trigger("catalog_full_resync", conf=params)
        resync_run = resync["dag_run_id"]
        assert resync["conf"] == params
        # The resync's plan sensor finds the lock taken and reschedules itself while the sync works.
        waiting_log = None
        while waiting_log is None:
            airflow.check_running()
            assert time.monotonic() < deadline, "the full resync's plan was never seen waiting for the lock"
            sync_state = airflow.dag_run("catalog_sync", sync_run)["state"]
            plan_ti = (airflow.task_instances("catalog_full_resync", resync_run).get("plan") or [{}])[0]
            if plan_ti.get("state") == "up_for_reschedule":
                waiting_log = airflow.task_log("catalog_full_resync", resync_run, "plan", plan_ti["try_number"] or 1)
                assert sync_state in ACTIVE_RUN_STATES
            else:
                assert sync_state in ACTIVE_RUN_STATES, (
                    f"catalog_sync {sync_run} ended ({sync_state}) before the full resync's plan was seen waiting "
                    f"(plan: {plan_ti.get('state')}): raise RECEIVER_LATENCY_S")
                time.sleep(0.5)
        mark("3a. resync waiting on the lock")
        receiver.faults(latency_s=0.0)
        runs = airflow.settle()
        mark("3b. both runs done")

        assert "waiting for the sync lock" in waiting_log, waiting_log[-3000:]
        assert f"being synced by catalog_sync__{sync_run}" in waiting_log, waiting_log[-3000:]
        airflow.assert_run_succeeded("catalog_sync", sync_run)
        resync_tis = airflow.assert_run_succeeded("catalog_full_resync", resync_run)
        assert [r["dag_run_id"] for r in runs["catalog_full_resync"]] == [resync_run]
        sync_dag_run = airflow.dag_run("catalog_sync", sync_run)
        resync_dag_run = airflow.dag_run("catalog_full_resync", resync_run)
        assert resync_dag_run["conf"] == params

        # The two DAG runs were live at the same time, their working windows never intersect: the resync
        # took the lock (its plan ended) only after the sync's commit.
        assert parse_time(resync_dag_run["start_date"]) < parse_time(sync_dag_run["end_date"])
        sync_window = airflow.work_window("catalog_sync", sync_run)
        resync_window = airflow.work_window("catalog_full_resync", resync_run)
        assert sync_window[1] < resync_window[0], (sync_window, resync_window)
        assert parse_time(resync_tis["plan"][0]["end_date"]) > sync_window[1]
        # ... and no two runs of the whole test ever worked at the same time.
        windows = sorted(
            (*airflow.work_window(dag_id, run["dag_run_id"]), dag_id, run["dag_run_id"])
            for dag_id in DAG_IDS for run in runs[dag_id])
        for earlier, later in zip(windows, windows[1:]):
            assert earlier[1] < later[0], f"working windows overlap: {earlier} and {later}"

        sync_summary = airflow.xcom("catalog_sync", sync_run, "report")
        resync_summary = airflow.xcom("catalog_full_resync", resync_run, "report")
        assert (sync_summary["mode"], sync_summary["updated"], sync_summary["failed"]) == ("incremental", 1, 0), sync_summary
        assert (resync_summary["mode"], resync_summary["extracted"], resync_summary["failed"]) == ("full", 23, 0), resync_summary
        assert receiver.state() == mapped_source(source_url)
        assert receiver.state()[0][f"{JACKET}|{LOCALE}"]["name"] == "Jaqueta Jeans — loja"
        # cleanup=True was honoured: the resync re-sent all 23 products although none had changed since the
        # sync, which sent the one it changed.
        assert receiver.accepted("products", "upsert") - upserts_before == 1 + 23

        # The status store (PostgreSQL) recorded every Airflow run as a success, and the lock is free.
        engine = sa.create_engine(status_url)
        with engine.connect() as conn:
            recorded = {(r.dag_id, r.airflow_run_id): r.state for r in conn.execute(
                sa.text("SELECT dag_id, airflow_run_id, state FROM catalog_sync_runs"))}
            locks = conn.execute(sa.text("SELECT count(*) FROM catalog_sync_lock")).scalar()
        engine.dispose()
        all_runs = {(dag_id, r["dag_run_id"]) for dag_id in DAG_IDS for r in runs[dag_id]}
        assert recorded == {key: "success" for key in all_runs}
        assert locks == 0
        mark("3c. checks")

        timings["total"] = round(time.monotonic() - t0, 1)
        print(f"\n[production services] api-server port {airflow.port}, receiver port {receiver.port}; "
              f"catalog_sync runs: {len(runs['catalog_sync'])} (phase 1: {len(phase1_runs)}, "
              f"phase 2: {len(phase2_runs - phase1_runs)}); async metadata engine: "
              f"{airflow.env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC'].split(':', 1)[0]}; "
              f"durations (s): {timings}")
        print("[production services] working windows (UTC):")
        for start, end, dag_id, run_id in windows:
            print(f"    {dag_id:20} {run_id:50} {start:%H:%M:%S.%f} .. {end:%H:%M:%S.%f}")
    except BaseException:
        timings["failed after"] = round(time.monotonic() - t0, 1)
        print(f"\n[production services] durations (s): {timings}")
        print(airflow.diagnostics())
        print(f"--- receiver (tail of {receiver.log_path}) ---\n{tail(receiver.log_path, 30)}")
        raise
