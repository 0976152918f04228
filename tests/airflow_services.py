"""Real Airflow services for end-to-end tests: processes, a REST client, the receiver, environments.

Used by tests/test_production_services.py (LocalExecutor) and tests/test_distributed_celery.py
(CeleryExecutor, two workers, state on S3). Every service runs in its own process group, with its
log in the Airflow home; `diagnostics()` prints their tails when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import requests
import sqlalchemy as sa

import shop_sql
from services import POSTGRES_HOST, POSTGRES_PORT
from sync_helpers import PINNED_NOW  # every run of the services is judged at this instant

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "airflow").exists() else Path(sys.executable).parent

DAG_IDS = ("catalog_sync", "catalog_full_resync")
TASK_IDS = ("plan", "extract", "diff", "export", "commit", "report")  # at least these (plus e.g. "buckets")
WORK_TASKS = ("extract", "diff", "export", "commit")  # the working window of a run
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

TENANT, TOKEN = "prod-tenant", "prod-token-0123456789"
ADMIN_PASSWORD = "admin-pw-for-the-production-test"
JWT_SECRET = "catalog-sync-production-test-jwt-secret-0123456789abcdef"

MIGRATE_TIMEOUT = 300
HEALTH_TIMEOUT = 180
DAGS_TIMEOUT = 180
SETTLE_TIMEOUT = 360
LOCK_WAIT_OBSERVED_TIMEOUT = 180
STOP_TIMEOUT = 20

ACTIVE_RUN_STATES = {"queued", "running"}
BAD_TI_STATES = {"failed", "upstream_failed", "up_for_retry", "removed"}
RECEIVER_KINDS = ("products", "prices", "metadata", "price-books", "categories", "product-layers")
RECEIVER_LATENCY_S = 5.0  # keeps the catalog_sync run in export while the full resync is triggered

# ---- small helpers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text[-lines:])


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def drop_postgres_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(
        f"postgresql+psycopg2://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def run_sql(url: str, *statements: str) -> None:
    """Statements written for Open Source's tables, run in the database's layout (shop_sql)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            shop_sql.execute(conn, shop_sql.layout_of(url), statement)
    engine.dispose()


def descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (and any descendant that left it), then SIGKILL what is left."""
    import psutil

    if proc is None:
        return
    children = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # start_new_session: the group id is the leader's pid
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT)
    _, alive = psutil.wait_procs(children, timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ---- what the receiver should hold ------------------------------------------------------------


def mapped_source(source_url: str) -> tuple[dict, dict]:
    """(products, prices) the receiver must hold for the source at the services' pinned instant:
    keyed like /_receiver/products and /prices."""
    from sync_helpers import mapped_source as mapped

    state = mapped(source_url, PINNED_NOW)
    products = {f"{b['sku']}|{b['source']['locale']}": b for b in state.get("products", {}).values()}
    prices = {f"{b['sku']}|{b['priceBookId']}": b for b in state.get("prices", {}).values()}
    return products, prices


def changed_keys(before: dict, after: dict) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


# ---- the receiver, in its own process -------------------------------------------------------------


class Receiver:
    def __init__(self, home: Path):
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/{TENANT}"
        self.log_path = home / "receiver.log"
        self.db = home / "receiver.db"
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "catalog_sync", "receiver", "--port", str(self.port), "--db", str(self.db),
             "--tenant-id", TENANT, "--token", TOKEN],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the receiver exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.root}/_receiver/health", timeout=1).ok:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the receiver is not healthy after 30 s:\n{tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self._log.close()

    def state(self) -> tuple[dict, dict]:
        """(products, prices) the receiver accepted."""
        everything = self.everything()
        return everything["products"], everything["prices"]

    def everything(self) -> dict[str, dict]:
        """Every kind the receiver stores, keyed like the API keys it."""
        return {kind: requests.get(f"{self.root}/_receiver/{kind}", timeout=30).json() for kind in RECEIVER_KINDS}

    def accepted(self, kind: str, operation: str) -> int:
        """How many items of a kind the receiver has accepted for an operation, since it started."""
        stats = requests.get(f"{self.root}/_receiver/stats", timeout=10).json()
        return stats["items"].get(kind, {}).get(operation, 0)

    def faults(self, **changes) -> None:
        resp = requests.post(f"{self.root}/_receiver/faults", json=changes, timeout=10)
        assert resp.ok, resp.text


# ---- Airflow: four services and a REST client ----------------------------------------------------


class AirflowRestClient:
    """A logged-in client of Airflow's REST API (/api/v2), and the health wait every test needs."""

    def __init__(self, port: int):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()

    def check_running(self) -> None:
        """Subclasses: fail fast when the processes behind the API have died."""

    def api(self, method: str, path: str, **kwargs):
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        assert resp.ok, f"{method} /api/v2{path} -> {resp.status_code}: {resp.text[:2000]}"
        return resp.json()

    def wait_for_health(self, timeout: float, parts: tuple[str, ...]) -> dict:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.check_running()
            try:
                resp = self.session.get(f"{self.base}/api/v2/monitor/health", timeout=5)
                last = resp.text[:500] if resp.ok else f"HTTP {resp.status_code}"
                if resp.ok and all((resp.json().get(part) or {}).get("status") == "healthy" for part in parts):
                    return resp.json()
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(1)
        raise AssertionError(f"Airflow is not healthy on port {self.port} after {timeout}s; last: {last}")

    def login_as(self, username: str, password: str) -> None:
        """POST /auth/token (simple auth manager); Bearer from then on."""
        resp = self.session.post(f"{self.base}/auth/token", json={"username": username, "password": password}, timeout=15)
        assert resp.status_code in (200, 201), f"POST /auth/token -> {resp.status_code}: {resp.text[:500]}"
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"


class AirflowServices(AirflowRestClient):
    def __init__(self, home: Path, metadata_url: str, env: dict[str, str]):
        super().__init__(int(env["AIRFLOW__API__PORT"]))
        self.home = home
        self.env = env
        self.metadata_url = metadata_url
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    # --- processes ---------------------------------------------------------------------------
    def migrate(self) -> None:
        log = self.home / "db-migrate.log"
        with log.open("wb") as out:
            done = subprocess.run(["airflow", "db", "migrate"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=MIGRATE_TIMEOUT)
        assert done.returncode == 0, f"airflow db migrate failed:\n{tail(log, 80)}"

    def start(self) -> None:
        for name in COMPONENTS:
            args = ["airflow", name]
            if name == "api-server":
                args += ["--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"]
            self.start_process(name, args)

    def start_process(self, name: str, args: list[str], cwd: Path | None = None,
                      extra_env: dict[str, str] | None = None) -> None:
        """One more process (e.g. a Celery worker in its own folder), stopped with the rest."""
        out = (self.home / f"{name}.log").open("wb")
        self._logs.append(out)
        self.procs[name] = subprocess.Popen(args, env={**self.env, **(extra_env or {})}, cwd=cwd or self.home,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self) -> None:
        # The scheduler first: the LocalExecutor's task processes are its children; then workers, the rest.
        others = [n for n in self.procs if n not in ("scheduler", "triggerer", "dag-processor", "api-server")]
        for name in ("scheduler", *others, "triggerer", "dag-processor", "api-server"):
            if name in self.procs:
                stop_group(self.procs[name])
        for out in self._logs:
            out.close()
        self.session.close()

    def check_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"`airflow {name}` exited with code {proc.returncode}")

    # --- REST API: see AirflowRestClient ------------------------------------------------------------
    def wait_healthy(self, timeout: float) -> None:
        self.wait_for_health(timeout, ("metadatabase", "scheduler", "dag_processor", "triggerer"))

    def login(self) -> None:
        self.login_as("admin", ADMIN_PASSWORD)

    def wait_dags(self, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            dags = self.api("GET", "/dags", params={"limit": 100})["dags"]
            if {d["dag_id"] for d in dags} >= set(DAG_IDS) or time.monotonic() > deadline:
                return dags
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        dag = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert dag["is_paused"] is False

    def wait_for_a_run(self, dag_id: str, timeout: float = 120) -> None:
        """Until the scheduler has created a run of the DAG (run_immediately on unpause). Right after the
        unpause, the DAG may not know its next run yet, and `settle` would find nothing to wait for."""
        deadline = time.monotonic() + timeout
        while not self.dag_runs(dag_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"no run of {dag_id} was created within {timeout}s of its unpause")
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        body = {"logical_date": None, **({"conf": conf} if conf is not None else {})}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, list[dict]]:
        """task_id -> its task instances (one, or one per map index for a mapped task)."""
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                       params={"limit": 1000})["task_instances"]
        by_task: dict[str, list[dict]] = {}
        for ti in sorted(tis, key=lambda t: t.get("map_index", -1)):
            by_task.setdefault(ti["task_id"], []).append(ti)
        return by_task

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id -> state (for a mapped task, its instances' states joined with commas)."""
        return {task: ",".join(sorted({str(ti["state"]) for ti in tis})) if len(tis) > 1 else tis[0]["state"]
                for task, tis in self.task_instances(dag_id, run_id).items()}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        data = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}",
                        params={"full_content": "true"}, headers={"Accept": "application/json"})
        content = data.get("content")
        return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        data = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}",
                        params={"deserialize": "true", "stringify": "false"})
        value = data["value"]
        return json.loads(value) if isinstance(value, str) else value

    def scheduled_run_due(self, dag_id: str) -> bool:
        """The scheduler owes this DAG a run now (run_immediately, or an hour boundary passed)."""
        dag = self.api("GET", f"/dags/{dag_id}")
        due = parse_time(dag.get("next_dagrun_run_after"))
        return not dag["is_paused"] and due is not None and due <= datetime.now(timezone.utc)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> dict[str, list[dict]]:
        """Wait until no run of either DAG is queued or running and none is due; fail fast on a failure."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            runs = {dag_id: self.dag_runs(dag_id) for dag_id in DAG_IDS}
            active = False
            for dag_id, dag_runs in runs.items():
                for run in dag_runs:
                    if run["state"] == "failed":
                        raise AssertionError(f"{dag_id} run {run['dag_run_id']} failed; task states: "
                                             f"{self.task_states(dag_id, run['dag_run_id'])}")
                    if run["state"] in ACTIVE_RUN_STATES:
                        active = True
                        states = self.task_states(dag_id, run["dag_run_id"])
                        bad = {t: s for t, s in states.items() if set(str(s).split(",")) & BAD_TI_STATES}
                        if bad:
                            raise AssertionError(f"{dag_id} run {run['dag_run_id']} is going wrong: {states}")
            if not active and not any(self.scheduled_run_due(dag_id) for dag_id in DAG_IDS):
                return runs
            if time.monotonic() > deadline:
                summary = {d: [(r["dag_run_id"], r["state"]) for r in rs] for d, rs in runs.items()}
                raise AssertionError(f"runs still active after {timeout}s: {summary}")
            time.sleep(2)

    def work_window(self, dag_id: str, run_id: str) -> tuple[datetime, datetime]:
        """From the first start to the last end of the run's extract..commit task instances."""
        tis = self.task_instances(dag_id, run_id)
        work = [ti for task in WORK_TASKS for ti in tis.get(task, [])]
        starts = [parse_time(ti["start_date"]) for ti in work]
        ends = [parse_time(ti["end_date"]) for ti in work]
        assert work and all(starts) and all(ends), f"{dag_id} {run_id}: a work task has no start/end date: {work}"
        return min(starts), max(ends)

    def assert_run_succeeded(self, dag_id: str, run_id: str) -> dict[str, list[dict]]:
        run = self.dag_run(dag_id, run_id)
        tis = self.task_instances(dag_id, run_id)
        states = self.task_states(dag_id, run_id)
        assert run["state"] == "success", f"{dag_id} {run_id}: {run['state']}, tasks {states}"
        assert set(tis) >= set(TASK_IDS), f"{dag_id} {run_id}: tasks {states}"
        assert {ti["state"] for group in tis.values() for ti in group} == {"success"}, f"{dag_id} {run_id}: tasks {states}"
        # No retry hid a failure: every working task succeeded on its first try.
        tries = {(ti["task_id"], ti.get("map_index", -1)): ti["try_number"]
                 for task in (*WORK_TASKS, "report") for ti in tis[task]}
        assert set(tries.values()) == {1}, f"{dag_id} {run_id}: retried tasks {tries}"
        return tis

    # --- diagnostics ------------------------------------------------------------------------------
    def diagnostics(self) -> str:
        parts = []
        for name in ("db-migrate", *COMPONENTS, *(n for n in self.procs if n not in COMPONENTS)):
            parts += [f"--- airflow {name} (tail of {name}.log) ---", tail(self.home / f"{name}.log", 40)]
        logs = self.home / "logs"
        task_logs = sorted(logs.glob("dag_id=*/**/*.log"), key=lambda p: p.stat().st_mtime) if logs.is_dir() else []
        for path in task_logs[-8:]:
            parts += [f"--- task log {path.relative_to(logs)} ---", tail(path, 40)]
        return "\n".join(parts)


# ---- fixtures ---------------------------------------------------------------------------------------


def async_metadata_url(url: str) -> str:
    """Airflow 3 also opens an async engine on the metadata database: postgresql+asyncpg (pinned)."""
    return url.replace("postgresql+psycopg2://", "postgresql+asyncpg://", 1)




def service_env(home: Path, api_port: int, metadata_url: str, status_url: str, source_url: str,
                receiver: Receiver) -> dict[str, str]:
    """The environment shared by every Airflow component: nothing inherited from conftest's dag.test() home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW", "CATALOG_SYNC_"))}
    include = str(ROOT / "include")
    pythonpath = [include, *(p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and p != include)]
    source, status = sa.engine.make_url(source_url), sa.engine.make_url(status_url)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    base_url = f"http://127.0.0.1:{api_port}"
    env.update({
        "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),  # Airflow starts its parts as `airflow`
        "VIRTUAL_ENV": str(VENV_BIN.parent),
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the test unpauses them through the API
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # a 2-core machine
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",  # as run_demo.sh: the cores are shared
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": async_metadata_url(metadata_url),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__API__SECRET_KEY": JWT_SECRET,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        # Tasks reach the execution API through these (default: localhost:8080).
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Private log-server ports: a demo or another Airflow on this machine keeps 8793/8794.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Catalog Sync's Connections and Variables.
        "AIRFLOW_CONN_CATALOG_SYNC_SOURCE": json.dumps({
            "conn_type": "mysql", "host": source.host, "port": source.port, "login": source.username,
            "schema": source.database}),
        "AIRFLOW_CONN_CATALOG_SYNC_TARGET": json.dumps({
            "conn_type": "generic", "password": TOKEN, "extra": {"url": receiver.base_url}}),
        "AIRFLOW_CONN_CATALOG_SYNC_STATUS": json.dumps({
            "conn_type": "postgres", "host": status.host, "port": status.port, "login": status.username,
            "schema": status.database}),
        "AIRFLOW_VAR_CATALOG_SYNC_STATE_URL": str(home.parent / "state"),
        "AIRFLOW_VAR_CATALOG_SYNC_CHUNK_SIZE": "10000",
        "AIRFLOW_VAR_CATALOG_SYNC_BATCH_SIZE": "100",
        # Every run is judged at one instant, so expected prices never depend on the calendar.
        "CATALOG_SYNC_NOW": PINNED_NOW,
    })
    return env


