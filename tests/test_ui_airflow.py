"""The Catalog Sync page inside a real `airflow api-server`: Airflow's auth, its REST API, and a browser.

One api-server (SQLite metadata, this repository's dags/ and plugins/) serves a demo catalog
synced beforehand by the CLI to the reference receiver, whose stored bodies the page must show
byte for byte. Users: admin (admin), viewer (viewer: may read, may not trigger)
and outsider (a viewer whom tests/support/restricted_auth_manager.py denies the two DAGs).
The browser test drives Debian's Chromium with Playwright and saves screenshots to
test-artifacts/ui/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from airflow_services import free_port
from catalog_sync.receiver import ReceiverOptions
from receiver_helpers import FEEDS, ThreadedReceiver
from services import unavailable
from sync_helpers import PINNED_NOW, SyncEnv, key_text

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "ui"
XSS = "<script>alert(1)</script>"
PASSWORDS = {"admin": "admin-pw", "viewer": "viewer-pw", "outsider": "outsider-pw"}


class ApiServer:
    def __init__(self, home: Path, env: dict[str, str], port: int):
        self.home, self.env, self.port = home, env, port
        self.root = f"http://127.0.0.1:{port}"
        self.log = home / "api-server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"],
            env=self.env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"api-server exited:\n{self.log.read_text()[-4000:]}")
            try:
                if requests.get(f"{self.root}/api/v2/monitor/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"api-server not healthy after 120 s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def token(self, user: str) -> str:
        response = requests.post(f"{self.root}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def get(self, path: str, user: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return requests.get(self.root + path, headers=headers, timeout=30, **kwargs)

    def post(self, path: str, user: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return requests.post(self.root + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory, demo_catalog_template):
    """A synced demo catalog (one product named like a script tag) behind a real api-server with the plugin."""
    home = tmp_path_factory.mktemp("airflow-ui")
    db = home / "magento.db"
    shutil.copy(demo_catalog_template[0], db)
    env_sync = SyncEnv(source_url=f"sqlite:///{db}", target_dir=home / "target", state_dir=home / "state")
    env_sync.execute(
        "UPDATE catalog_product_entity_varchar SET value = :name WHERE attribute_id = 73 AND store_id = 0 AND entity_id = "
        "(SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1)",
        params={"name": XSS})
    sku = env_sync.scalar("SELECT sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1")
    receiver = ThreadedReceiver(str(home / "receiver.db"), ReceiverOptions(tenant_id="ui", required_token="ui-token"))
    try:
        cli = [sys.executable, "-m", "catalog_sync", *env_sync.cli_args("--target-url", receiver.target)]
        subprocess.run(cli, check=True, capture_output=True, env={
            **os.environ, "PYTHONPATH": str(ROOT / "include"), "CATALOG_SYNC_TARGET_TOKEN": "ui-token",
            "CATALOG_SYNC_NOW": PINNED_NOW})
        # What the receiver stored, as text: feed -> canonical key -> body text.
        stored = {feed: _stored_bodies(receiver.root, endpoint, key_fields) for feed, (endpoint, key_fields) in FEEDS.items()}
        target = receiver.target
    finally:
        receiver.stop()

    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth_manager.RestrictedAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,outsider:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "catalog-sync-ui-test-secret-0123456789abcdef",
        # Where Airflow is: the page starts runs through the REST API here, whatever a request's Host says.
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW_CONN_CATALOG_SYNC_SOURCE": json.dumps({"conn_type": "sqlite", "host": str(db)}),
        "AIRFLOW_CONN_CATALOG_SYNC_TARGET": json.dumps({"conn_type": "catalog_sync_ingestion_api", "host": target,
                                                        "password": "ui-token"}),
        "AIRFLOW_VAR_CATALOG_SYNC_STATE_URL": str(env_sync.state_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "tests" / "support")]),
    }
    for step in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([sys.executable, "-m", "airflow", *step], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    server = ApiServer(home, env, port)
    server.start()
    server.stored = stored
    yield server, sku
    server.stop()


def _stored_bodies(root: str, endpoint: str, key_fields: tuple[str, ...]) -> dict[str, str]:
    raw = requests.get(f"{root}/_receiver/raw/{endpoint}", timeout=30).json()
    return {key_text({f: json.loads(text)[f] for f in key_fields}): text for text in raw.values()}


def test_the_plugin_is_registered_with_its_nav_entry(airflow_ui):
    server, _sku = airflow_ui
    plugins = server.get("/api/v2/plugins", "admin").json()["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "catalog_sync"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/catalog-sync"
    [view] = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "Catalog Sync", "/catalog-sync/", "catalog-sync", "nav")


@pytest.mark.parametrize("path", ["/catalog-sync/", "/catalog-sync/products", "/catalog-sync/api/status",
                                  "/catalog-sync/api/products?q=a", "/catalog-sync/settings"])
def test_anonymous_requests_get_401(airflow_ui, path):
    server, _sku = airflow_ui
    assert server.get(path).status_code == 401


def test_a_user_without_access_to_the_dag_gets_403(airflow_ui):
    server, sku = airflow_ui
    assert server.get("/api/v2/dags/catalog_sync", "outsider").status_code == 403  # Airflow agrees
    for path in ("/catalog-sync/", "/catalog-sync/api/status", f"/catalog-sync/api/products/{sku}"):
        assert server.get(path, "outsider").status_code == 403


def test_reading_needs_dag_read_access_and_resync_needs_trigger_permission(airflow_ui):
    server, sku = airflow_ui
    status = server.get("/catalog-sync/api/status", "viewer")
    assert status.status_code == 200 and status.json()["last_sync"]["state"] == "Success"
    assert server.get(f"/catalog-sync/api/products/{sku}", "viewer").json()["sku"] == sku

    assert server.post("/catalog-sync/actions/resync", "viewer", json={"skus": [sku]}).status_code == 403
    before = _runs(server, "catalog_full_resync")
    started = server.post("/catalog-sync/actions/resync", "admin", json={"skus": [sku]})
    assert started.status_code == 200, started.text
    run_id = started.json()["dag_run_id"]
    runs = {r["dag_run_id"]: r for r in _runs(server, "catalog_full_resync")}
    assert set(runs) - {r["dag_run_id"] for r in before} == {run_id}
    assert runs[run_id]["conf"] == {"skus": [sku]}


def test_the_json_view_keeps_a_script_name_as_data(airflow_ui):
    server, sku = airflow_ui
    detail = server.get(f"/catalog-sync/api/products/{sku}", "admin")
    assert detail.headers["content-type"].startswith("application/json")
    names = {v["store_view_code"]: json.loads(next(i for i in v["items"] if i["feed"] == "products")["sent"]["body"])["name"]
             for v in detail.json()["store_views"]}
    assert names["default"] == XSS  # the French view has a name of its own
    page = server.get(f"/catalog-sync/products/{sku}", "admin").text
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_page_shows_the_exact_bytes_the_receiver_stored(airflow_ui):
    """Through the real plugin: every item of every feed on one page of each, and a product's items."""
    server, sku = airflow_ui
    checked = 0
    for feed in ("metadata", "price_books", "products", "prices"):
        page = server.get(f"/catalog-sync/api/feeds/{feed}", "admin").json()
        assert page["total"] == len(server.stored[feed]) and page["items"]
        for item in page["items"]:
            assert item["body"] == server.stored[feed][item["key"]], (feed, item["key"])
            checked += 1
    detail = server.get(f"/catalog-sync/api/products/{sku}", "admin").json()
    for view in detail["store_views"]:
        for item in view["items"]:
            assert item["sent"]["body"] == server.stored[item["feed"]][item["key"]]
            checked += 1
    assert checked >= 50


def _runs(server: ApiServer, dag_id: str) -> list[dict]:
    return server.get(f"/api/v2/dags/{dag_id}/dagRuns", "admin").json()["dag_runs"]


# ---- where the resync action sends the caller's token ----------------------------------


class Trap:
    """A local listener that records every connection made to it (what was sent) and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextmanager
def trap() -> Iterator[Trap]:
    listener = Trap()
    try:
        yield listener
    finally:
        listener.close()


def test_resync_calls_airflow_at_its_base_url_never_at_the_request_host(airflow_ui):
    """A caller who names another address in Host (or the proxy headers) gets neither the token nor the reply."""
    server, sku = airflow_ui
    before = {r["dag_run_id"] for r in _runs(server, "catalog_full_resync")}
    with trap() as listener:
        hostile = f"127.0.0.1:{listener.port}"
        response = requests.post(f"{server.root}/catalog-sync/actions/resync", json={"skus": [sku]}, timeout=60, headers={
            "Authorization": f"Bearer {server.token('admin')}", "Host": hostile, "X-Forwarded-Host": hostile,
            "X-Forwarded-Proto": "http", "Forwarded": f"host={hostile};proto=http"})
    assert listener.received == []
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    runs = {r["dag_run_id"]: r for r in _runs(server, "catalog_full_resync")}
    assert set(runs) - before == {run_id} and runs[run_id]["conf"] == {"skus": [sku]}
    assert response.json()["url"] == f"/dags/catalog_full_resync/runs/{run_id}"  # Airflow's UI, no prefix here


@contextmanager
def fake_rest_api(status: int = 200, reply: dict | None = None, headers: dict | None = None) -> Iterator[tuple[str, list]]:
    """An HTTP server standing in for Airflow's REST API: records each POST (path, Authorization, JSON body)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": json.loads(body)})
            text = json.dumps(reply if reply is not None else {"dag_run_id": "manual__1"}).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(text)), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}", seen
    finally:
        http.shutdown()
        http.server_close()


def test_a_base_url_with_a_path_prefix_is_kept(monkeypatch):
    from catalog_sync.ui.airflow_side import AirflowSide

    with fake_rest_api() as (root, seen):
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"{root}/team-a/")
        side = AirflowSide()
        assert side.trigger("catalog_full_resync", {"skus": ["A"]}, "Bearer header-token", "cookie-token") == "manual__1"
        assert side.trigger("catalog_full_resync", {}, None, "cookie-token") == "manual__1"
        assert side.ui_prefix() == "/team-a"
    assert seen == [
        {"path": "/team-a/api/v2/dags/catalog_full_resync/dagRuns", "authorization": "Bearer header-token",
         "body": {"logical_date": None, "conf": {"skus": ["A"]}}},
        {"path": "/team-a/api/v2/dags/catalog_full_resync/dagRuns", "authorization": "Bearer cookie-token",
         "body": {"logical_date": None, "conf": {}}},
    ]


def test_a_redirect_from_the_base_url_is_not_followed(monkeypatch):
    """The caller's token goes to the configured address only: a redirect elsewhere is an error, not a second call."""
    from catalog_sync.ui.airflow_side import AirflowSide, TriggerError

    with trap() as listener, fake_rest_api(307, {"detail": "moved"}, {"Location": f"http://127.0.0.1:{listener.port}/x"}) as (
            root, seen):
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", root)
        with pytest.raises(TriggerError) as refused:
            AirflowSide().trigger("catalog_full_resync", {}, "Bearer t", None)
    assert (refused.value.status, str(refused.value)) == (
        307, "Airflow refused to start catalog_full_resync (HTTP 307): moved")
    assert len(seen) == 1 and listener.received == []


def test_an_unreachable_base_url_is_named(monkeypatch):
    from catalog_sync.ui.airflow_side import AirflowSide, TriggerError

    port = free_port()  # nothing listens there
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}/airflow")
    with pytest.raises(TriggerError) as failed:
        AirflowSide().trigger("catalog_full_resync", {}, "Bearer t", None)
    assert failed.value.status == 502
    assert str(failed.value) == (f"cannot reach Airflow's REST API at http://127.0.0.1:{port}/airflow/api/v2/dags/"
                                 "catalog_full_resync/dagRuns (ConnectionError): check Airflow's [api] base_url")


@pytest.mark.parametrize(("base_url", "port", "tls", "expected"), [
    (None, "8080", False, "http://localhost:8080"),  # unset: this API server, as Airflow's executors assume
    ("", "9091", False, "http://localhost:9091"),
    ("/airflow/", "8080", False, "http://localhost:8080/airflow"),  # a path only
    (None, "8443", True, "https://localhost:8443"),  # the API server serves TLS itself
    ("https://airflow.example.com/", "8080", False, "https://airflow.example.com"),
    ("https://airflow.example.com/team-a/", "8080", False, "https://airflow.example.com/team-a"),
    (" http://10.0.0.5:8080 ", "8080", False, "http://10.0.0.5:8080"),
])
def test_airflows_base_url_is_read_from_its_configuration(base_url, port, tls, expected):
    from catalog_sync.ui.airflow_side import api_base_url

    assert api_base_url(base_url, port, tls) == expected


@pytest.mark.parametrize("base_url", ["airflow.example.com", "ftp://airflow.example.com", "https://", "https://a.example/?x=1"])
def test_a_base_url_that_is_no_http_url_is_a_configuration_error(base_url):
    from catalog_sync.settings import ConfigurationError
    from catalog_sync.ui.airflow_side import api_base_url

    with pytest.raises(ConfigurationError, match=r"\[api\] base_url must be an http\(s\) URL"):
        api_base_url(base_url)


# ---- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    if not shutil.which("chromium"):
        unavailable("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_in_chromium_log_in_find_a_product_open_its_json_and_resync(airflow_ui, chromium):
    server, sku = airflow_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(server.root + "/")
    page.wait_for_selector("input[name=username]", timeout=60_000)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORDS["admin"])
    page.screenshot(path=str(ARTIFACTS / "01-login.png"))
    page.locator("button[type=submit]").click()

    page.get_by_role("link", name="Catalog Sync").first.click(timeout=60_000)
    page.wait_for_url("**/plugin/catalog-sync", timeout=30_000)
    frame = page.frame_locator("iframe").first
    frame.locator("#last-sync").wait_for(timeout=30_000)
    assert "Success" in frame.locator("#last-sync").inner_text()
    page.screenshot(path=str(ARTIFACTS / "02-overview.png"))

    frame.get_by_role("link", name="Synced products").click()
    frame.get_by_label("Search").fill(sku)
    frame.get_by_role("button", name="Search").click()
    frame.get_by_text(f"matching “{sku}”").wait_for()  # only on the results page: the navigation is done
    rows = frame.locator("#products tr").all_inner_texts()
    assert any(sku in r and XSS in r for r in rows), rows  # the name shows as text
    page.screenshot(path=str(ARTIFACTS / "03-search.png"))

    frame.locator("#products a.product-link").first.click()
    sent = frame.locator("pre.sent-json").first
    sent.wait_for()
    assert json.loads(sent.inner_text())["sku"] == sku
    page.screenshot(path=str(ARTIFACTS / "04-product-json.png"), full_page=True)

    before = {r["dag_run_id"] for r in _runs(server, "catalog_full_resync")}
    frame.get_by_role("link", name="Settings").click()
    frame.locator("#resync-all").click()
    link = frame.locator("#new-run-link")
    link.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "05-resync-started.png"))
    new = {r["dag_run_id"] for r in _runs(server, "catalog_full_resync")} - before
    assert len(new) == 1 and next(iter(new)) in link.inner_text()
    assert dialogs == []  # no alert(): the script in the product name never ran
    page.close()
