"""The Catalog Sync page's content, rendered by its FastAPI app over a real synced demo catalog.

Airflow's parts (DAG state, triggering, auth) are stand-ins here; tests/test_ui_airflow.py runs
the same app inside a real `airflow api-server`, with Airflow's own auth, and drives it in Chromium.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from catalog_sync.settings import SyncSettings
from catalog_sync.ui.airflow_side import DagState
from catalog_sync.ui.app import create_app
from catalog_sync.ui.synced_products import VISIBILITY_LABELS

XSS = "<script>alert(1)</script>"
NEXT_RUN = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)


class FakeAirflow:
    """Airflow's metadata database and REST API, as the page sees them."""

    def __init__(self, paused: bool = False):
        self.paused = paused
        self.triggered: list[tuple[str, dict]] = []

    def dag_state(self, dag_id: str) -> DagState:
        return DagState(dag_id, True, self.paused, NEXT_RUN)

    def failed_task_id(self, dag_id: str, run_id: str) -> str | None:
        return "export"

    def ui_prefix(self) -> str:
        return ""

    def trigger(self, dag_id, conf, authorization, jwt_cookie) -> str:
        self.triggered.append((dag_id, conf))
        return f"manual__{len(self.triggered)}"


@pytest.fixture
def page(sync_env, capsys):
    """A synced demo catalog (one product renamed to a script tag first) and a client on the page's app."""
    sync_env.execute(
        "UPDATE catalog_product_entity_varchar SET value = :name WHERE attribute_id = 73 AND store_id = 0 AND entity_id = "
        "(SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1)",
        params={"name": XSS},
    )
    summary = sync_env.sync(capsys)
    settings = SyncSettings(source_url=sync_env.source_url, target_url=sync_env.target_url, state_url=str(sync_env.state_dir))
    airflow = FakeAirflow()
    client = TestClient(create_app(lambda: settings, airflow))
    sku = sync_env.scalar("SELECT sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1")
    return client, airflow, summary, sku, sync_env


def test_overview_shows_the_last_sync_the_schedule_and_the_count(page):
    client, _airflow, summary, _sku, _env = page
    body = client.get("/").text
    last = _section(body, "last-sync")
    assert "Success" in last and f"{summary['inserted']} product(s) updated" in last
    assert "Active" in _section(body, "schedule") and "2026-11-26 03:00:00 UTC" in _section(body, "schedule")
    assert f"{summary['inserted']:,}" in _section(body, "products-synced")
    assert body.count("<rect") >= 1  # the history chart has the run


def test_a_failed_last_run_shows_when_the_error_and_the_failed_task_log(page):
    client, _airflow, _summary, _sku, env = page
    from catalog_sync.state.status_store import StatusStore

    store = StatusStore(f"sqlite:///{env.state_dir / 'status.db'}")
    store.start_run("catalog_sync__manual_2", "incremental", dry_run=False, dag_id="catalog_sync", airflow_run_id="manual_2")
    store.finish_run("catalog_sync__manual_2", "failed", {}, error="the ingestion API refused the credentials (HTTP 401)")

    last = _section(client.get("/").text, "last-sync")
    assert "Failed" in last and "refused the credentials (HTTP 401)" in last
    assert 'href="/dags/catalog_sync/runs/manual_2/tasks/export"' in last
    status = client.get("/api/status").json()["last_sync"]
    assert (status["state"], status["failed_task"]) == ("Failed", "export")


def test_products_are_listed_searched_filtered_and_paged(page):
    client, _airflow, summary, sku, _env = page
    everything = client.get("/api/products").json()
    assert everything["total"] == summary["inserted"] and len(everything["items"]) == 50
    assert everything["pages"] == -(-summary["inserted"] // 50)
    second = client.get("/api/products", params={"page": 2}).json()["items"]
    assert not {(i["sku"], i["store_view_code"]) for i in second} & {(i["sku"], i["store_view_code"]) for i in everything["items"]}

    by_sku = client.get("/api/products", params={"q": sku}).json()
    assert {i["sku"] for i in by_sku["items"]} >= {sku}
    product_id = by_sku["items"][0]["product_id"]
    by_id = client.get("/api/products", params={"q": str(product_id)}).json()["items"]
    assert product_id in {i["product_id"] for i in by_id}
    one_view = client.get("/api/products", params={"q": sku, "store_view": "default"}).json()["items"]
    assert {i["store_view_code"] for i in one_view} == {"default"}

    table = client.get("/products", params={"q": sku}).text
    label = VISIBILITY_LABELS[by_sku["items"][0]["visibility"]]
    assert html.escape(sku) in table and f"<td>{html.escape(label)}</td>" in table


def test_a_script_in_a_product_name_is_shown_as_text_everywhere(page):
    client, _airflow, _summary, sku, _env = page
    escaped = html.escape(XSS)
    listing = client.get("/products", params={"q": "alert"}).text
    detail = client.get(f"/products/{sku}").text
    for body in (listing, detail):
        assert XSS not in body and escaped in body
    item = client.get(f"/api/products/{sku}").json()["store_views"][0]["items"][-1]  # the products feed's item
    assert item["feed"] == "products" and json.loads(item["sent"]["body"])["name"] == XSS  # JSON: data, not markup
    assert client.get(f"/api/products/{sku}").headers["content-type"].startswith("application/json")


def test_product_detail_has_the_sent_json_magento_now_a_field_diff_and_history(page):
    client, _airflow, _summary, sku, env = page
    env.execute("UPDATE catalog_product_entity_decimal SET value = 12345.5 WHERE attribute_id = 77 AND store_id = 0 "
                "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :sku)", params={"sku": sku})
    detail = client.get(f"/api/products/{sku}", params={"store_view": "default"}).json()
    [view] = detail["store_views"]
    items = {item["feed"]: item for item in view["items"]}
    assert set(items) == {"products", "prices"}  # the default view's website judges the price
    price = items["prices"]
    assert json.loads(price["sent"]["body"])["sku"] == sku and json.loads(price["now"])["regular"] == 12345.5
    assert [d["field"] for d in price["diff"]] == ["regular"] and not price["in_sync"]  # only real discrepancies
    assert items["products"]["in_sync"] and items["products"]["diff"] == []
    assert view["record"]["price"] == 12345.5  # Magento's record now
    page_html = client.get(f"/products/{sku}").text
    assert 'class="differs"' in page_html and "Resync this product" in page_html and "sent-json" in page_html


def test_text_is_shown_as_text_in_the_body_and_the_diff(page):
    client, _airflow, _summary, sku, env = page
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Zürich Jacket' WHERE attribute_id = 73 AND store_id = 0 "
                "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :sku)", params={"sku": sku})
    page_html = client.get(f"/products/{sku}", params={"store_view": "default"}).text
    assert "Zürich Jacket" in page_html and "\\u00fc" not in page_html


def test_store_catalog_search_shows_sync_states(page):
    client, _airflow, _summary, sku, env = page
    env.execute("INSERT INTO catalog_product_entity (attribute_set_id, type_id, sku, has_options, required_options, "
                "created_at, updated_at) VALUES (4, 'simple', 'BRAND-NEW-1', 0, 0, '2026-11-25 10:00:00', '2026-11-25 10:00:00')")
    body = client.get("/search", params={"q": "BRAND-NEW"}).text
    assert "BRAND-NEW-1" in body and "never synced" in body
    assert "in sync" in client.get("/search", params={"q": sku}).text


def test_resync_actions_need_a_json_post_and_start_catalog_full_resync(page):
    client, airflow, _summary, sku, _env = page
    assert client.post("/actions/resync", data={"skus": sku}).status_code == 415  # a plain form: refused
    one = client.post("/actions/resync", json={"skus": [sku]}).json()
    everything = client.post("/actions/resync", json={}).json()
    resend = client.post("/actions/resync", json={"cleanup": True}).json()
    assert airflow.triggered == [("catalog_full_resync", {"skus": [sku]}), ("catalog_full_resync", {}),
                                 ("catalog_full_resync", {"cleanup": True})]
    assert one["url"] == "/dags/catalog_full_resync/runs/manual__1" and everything["dag_run_id"] == "manual__2"
    assert resend["dag_run_id"] == "manual__3"
    assert client.post("/actions/resync", json={"cleanup": "yes"}).status_code == 400
    settings_page = client.get("/settings").text
    assert "loads the" in settings_page  # the warning before a full resync
    # Both of Adobe's meanings, each explained.
    assert "Reconcile" in settings_page and "sends only what differs" in settings_page
    assert "Re-send everything" in settings_page and "Sends every item again" in settings_page


def test_failed_items_list_retryable_and_rejected_with_reasons(page):
    client, _airflow, _summary, _sku, env = page
    import pyarrow as pa
    import pyarrow.parquet as pq

    from catalog_sync.state.location import StateLocation
    from catalog_sync.state.snapshot import PENDING_SCHEMA, SnapshotStore

    store = SnapshotStore(StateLocation(str(env.state_dir)))
    manifest = store.read_manifest()
    rows = [{"key": '{"sku":"BAD-1"}', "product_id": 1, "sku": "BAD-1", "store_view_code": "default", "op": "upsert",
             "status": "rejected", "reason": "HTTP 400: Invalid SKU", "sha1": "x", "run_id": "r1"},
            {"key": '{"sku":"SLOW-2"}', "product_id": 2, "sku": "SLOW-2", "store_view_code": "fr", "op": "upsert",
             "status": "retryable", "reason": "HTTP 503 (6 attempts)", "sha1": "y", "run_id": "r1"}]
    pq.write_table(pa.Table.from_pylist(rows, PENDING_SCHEMA), store.file_url(manifest.files("products").pending))
    client.app.state.page_context.get().products._loaded = None  # same version, rewritten file: reload

    body = _section(client.get("/failed").text, "failed-items")
    assert "BAD-1" in body and "HTTP 400: Invalid SKU" in body and "SLOW-2" in body and "HTTP 503 (6 attempts)" in body
    assert client.get("/api/status").json()["pending"] == {"rejected": 1, "retryable": 1}


def _section(body: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?(?=<div class="card"|<h2>|</table>|$)', body, re.S)
    assert match, f"no element {element_id!r}"
    return match.group(0)


def test_last_sync_follows_adobes_three_states():
    from catalog_sync.ui.sync_overview import last_sync

    ok = {"run_id": "a", "state": "success", "dry_run": False, "started_at": "2026-11-25T09:00:00+00:00",
          "ended_at": "2026-11-25T09:01:00+00:00", "inserted": 2, "updated": 3, "deleted": 1}
    running = {"run_id": "b", "state": "running", "dry_run": False, "started_at": "2026-11-25T10:00:00+00:00", "ended_at": None}
    failed = {"run_id": "c", "state": "failed", "dry_run": False, "started_at": "2026-11-25T11:00:00+00:00",
              "ended_at": "2026-11-25T11:00:05+00:00", "error": "boom"}
    dry = {**ok, "run_id": "d", "dry_run": True, "state": "failed"}

    assert (last_sync([ok]).state, last_sync([ok]).at, last_sync([ok]).products_updated) == (
        "Success", "2026-11-25T09:01:00+00:00", 6)
    assert (last_sync([running, ok]).state, last_sync([running, ok]).at) == ("In Progress", "2026-11-25T09:01:00+00:00")
    assert (last_sync([failed, ok]).state, last_sync([failed, ok]).at, last_sync([failed, ok]).error) == (
        "Failed", "2026-11-25T11:00:00+00:00", "boom")
    assert last_sync([dry, ok]).state == "Success"  # a dry run changes nothing on the target
    assert last_sync([]).state == "Never synced"


def test_a_missing_connection_is_named_not_a_bare_500():
    from catalog_sync.settings import ConfigurationError

    def settings():
        raise ConfigurationError("Airflow Connection 'catalog_sync_source' is missing or unreadable")

    client = TestClient(create_app(settings, FakeAirflow()))
    response = client.get("/api/status")
    assert response.status_code == 503
    assert "catalog_sync_source" in response.json()["detail"]


# ---- paging past the end ----------------------------------------------------------------


def _text(fragment: str) -> str:
    """What a browser shows of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _elements(body: str, css_class: str) -> list[str]:
    return [_text(m) for m in re.findall(rf'<p class="[^"]*\b{css_class}\b[^"]*"[^>]*>(.*?)</p>', body, re.S)]


def _by_id(body: str, element_id: str) -> str:
    """The shown text of the element with this id (one that holds no element of its own kind)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', body, re.S)
    assert match, f"no element {element_id!r}"
    return _text(match.group(2))


HUGE_PAGE = 2**70  # larger than any 64-bit OFFSET: must not reach a database


@pytest.mark.parametrize("number", ["past", HUGE_PAGE])
@pytest.mark.parametrize("route", ["/products", "/search", "/feeds/products", "/failed"])
def test_a_page_past_the_end_is_an_empty_page_not_an_error(page, route, number):
    client, _airflow, summary, _sku, _env = page
    # The listings' sizes: every (sku, store view) item, the one product named like a script tag, no pending item.
    pages = {"/products": -(-summary["inserted"] // 50), "/search": 1,
             "/feeds/products": -(-summary["feeds"]["products"]["inserted"] // 50), "/failed": 1}[route]
    number = pages + 1 if number == "past" else number
    params = {"page": number, **({"q": "alert("} if route == "/search" else {})}
    response = client.get(route, params=params)
    assert response.status_code == 200
    there = "there is 1 page" if pages == 1 else f"there are {pages} pages"
    assert _elements(response.text, "pager") == [f"Page {number} is past the end: {there}. ← Page {pages}"]
    table = {"/products": "products", "/search": "catalog-hits", "/feeds/products": "feed-items", "/failed": "failed-items"}[route]
    rows = re.findall(r"<tr>(.*?)</tr>", _section(response.text, table), re.S)
    assert [_text(r) for r in rows[1:]] == [{"/products": "No item on this page.", "/search": "No product on this page.",
                                             "/feeds/products": "No item.", "/failed": "Every item is in sync."}[route]]


@pytest.mark.parametrize("number", ["past", HUGE_PAGE])
@pytest.mark.parametrize("route", ["/api/products", "/api/feeds/products"])
def test_a_json_page_past_the_end_is_empty_with_the_real_totals(page, route, number):
    client, _airflow, summary, _sku, _env = page
    total = summary["inserted"] if route == "/api/products" else summary["feeds"]["products"]["inserted"]
    pages = -(-total // 50)
    number = pages + 1 if number == "past" else number
    response = client.get(route, params={"page": number})
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("total", "page", "pages", "page_size", "items")} == {
        "total": total, "page": number, "pages": pages, "page_size": 50, "items": []}


def test_the_last_page_still_has_its_rows_and_no_next_link(page):
    client, _airflow, summary, _sku, _env = page
    pages = -(-summary["inserted"] // 50)
    last = client.get("/api/products", params={"page": pages}).json()
    assert len(last["items"]) == summary["inserted"] - 50 * (pages - 1)
    pager = _elements(client.get("/products", params={"page": pages}).text, "pager")
    assert pager == [f"← Previous Page {pages} of {pages}"]


def test_search_treats_like_wildcards_as_text(page):
    client, _airflow, _summary, _sku, _env = page
    assert "0 product(s) match “%”." in _text(client.get("/search", params={"q": "%"}).text)
    assert "0 product(s) match “_”." in _text(client.get("/search", params={"q": "_"}).text)


# ---- held items and an honest "Success" ---------------------------------------------------


@pytest.fixture
def held(sync_env, tmp_path, capsys, monkeypatch):
    """The demo catalog synced to the reference receiver, which rejects every item of one SKU: those are held."""
    from catalog_sync import cli
    from catalog_sync.receiver import ReceiverOptions
    from receiver_helpers import ThreadedReceiver

    sku = sync_env.scalar("SELECT sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1 OFFSET 3")
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"),
                                ReceiverOptions(tenant_id="ui", required_token="ui-token", reject_skus={sku}))
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", "ui-token")
    try:
        capsys.readouterr()
        cli.main(["sync", "--source-url", sync_env.source_url, "--target-url", receiver.target, "--state-url",
                  str(sync_env.state_dir)])  # the exit code says "not everything accepted"; the page must say it too
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert "error" not in summary
    finally:
        receiver.stop()
    settings = SyncSettings.from_env(source_url=sync_env.source_url, target_url=receiver.target,
                                     state_url=str(sync_env.state_dir))
    airflow = FakeAirflow()
    return TestClient(create_app(lambda: settings, airflow)), airflow, summary, sku, _pending_rows(sync_env)


def _pending_rows(env) -> list[dict]:
    """The snapshot's pending files, as the engine wrote them: what the page must show."""
    import pyarrow.parquet as pq

    from catalog_sync.state.location import StateLocation
    from catalog_sync.state.snapshot import SnapshotStore

    store = SnapshotStore(StateLocation(str(env.state_dir)))
    manifest = store.read_manifest()
    rows = []
    for feed, files in sorted(manifest.feeds.items()):
        if files.pending:
            rows += [{**r, "feed": feed} for r in pq.read_table(store.file_url(files.pending)).to_pylist()]
    return sorted(rows, key=lambda r: (r["feed"], r["key"]))


def test_held_items_are_listed_with_their_reason(held):
    client, _airflow, _summary, sku, pending = held
    # The receiver rejected the SKU's product and its price: both are held, with the target's reason.
    assert [(p["feed"], p["sku"], p["status"]) for p in pending] == [("prices", sku, "rejected"), ("products", sku, "rejected")]
    reason = pending[0]["reason"]
    assert f"Invalid SKU: '{sku}' is rejected by this receiver" in reason and {p["reason"] for p in pending} == {reason}

    body = client.get("/failed").text
    assert _by_id(body, "failed-counts") == "0 retryable, 2 held (rejected by the target)."
    rows = re.findall(r"<tr>(.*?)</tr>", _section(body, "failed-items"), re.S)
    assert [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows[1:]] == [
        [p["feed"], p["key"], sku, "default", "upsert", "held: rejected by the target", reason, p["run_id"]] for p in pending]
    assert all('<td class="rejected">held: rejected by the target</td>' in r and f'<a href="/products/{sku}">' in r
               for r in rows[1:])
    card = _section(client.get("/").text, "not-in-sync").partition(">")[2]
    assert _text(card) == "Not in sync 2 0 retryable, 2 held (rejected by the target)"


def test_a_held_product_shows_its_state_and_reason_and_can_be_resynced(held):
    client, airflow, _summary, sku, pending = held
    reason = pending[0]["reason"]
    body = client.get(f"/products/{sku}").text
    assert _by_id(body, "sync-state") == "(held: rejected by the target)"
    assert _elements(body, "pending-item") == [
        f"Not in sync (prices, upsert): held: rejected by the target — {reason}",
        f"Not in sync (products, upsert): held: rejected by the target — {reason}"]
    badges = re.findall(r'<h3 class="feed-item" data-feed="(\w+)">.*?<span class="rejected">(.*?)</span>', body, re.S)
    assert badges == [("prices", "held: rejected by the target"), ("products", "held: rejected by the target")]
    assert re.search(rf'<button type="button" id="resync-product" [^>]*data-sku="{sku}">Resync this product</button>', body)
    assert client.post("/actions/resync", json={"skus": [sku]}).status_code == 200
    assert airflow.triggered == [("catalog_full_resync", {"skus": [sku]})]

    detail = client.get(f"/api/products/{sku}").json()
    assert detail["sync_state"] == "rejected"
    assert [(p["feed"], p["label"], p["reason"]) for v in detail["store_views"] for p in v["pending"]] == [
        ("prices", "held: rejected by the target", reason), ("products", "held: rejected by the target", reason)]
    search = _section(client.get("/search", params={"q": sku}).text, "catalog-hits")
    [state] = re.findall(r'<td class="rejected">(.*?)</td>', search, re.S)
    assert _text(state) == f"held: rejected by the target: {reason}"


def test_a_success_with_items_not_accepted_says_how_many_in_the_warning_colour(held):
    client, _airflow, summary, _sku, _pending = held
    assert summary["failed"] == 1 and summary["feeds"]["prices"]["failed"] == 1  # the run's headline counts products only
    last = _section(client.get("/").text, "last-sync")
    assert re.search(r'<div class="big state-Success">(.*?)</div>', last, re.S).group(1) == (
        'Success <a class="warn not-accepted" id="not-accepted" href="/failed">2 items not accepted</a>')
    status = client.get("/api/status").json()["last_sync"]
    assert (status["state"], status["not_accepted"], status["products_updated"]) == ("Success", 2, summary["inserted"])


def test_a_clean_success_says_nothing_more(page):
    client, _airflow, summary, _sku, _env = page
    last = _section(client.get("/").text, "last-sync")
    assert re.search(r'<div class="big state-Success">(.*?)</div>', last, re.S).group(1) == "Success"
    assert "not accepted" not in last and "warn" not in last
    status = client.get("/api/status").json()["last_sync"]
    assert (status["state"], status["not_accepted"]) == ("Success", 0)


@pytest.mark.parametrize(("failed", "feeds", "shown"), [
    (1, None, "1 item not accepted"),  # a run recorded without per-feed counts
    (3, {"products": {"failed": 3}, "prices": {"failed": 0}}, "3 items not accepted"),
    (0, {"products": {"failed": 0}, "prices": {"failed": 2}}, "2 items not accepted"),  # only prices: still said
])
def test_not_accepted_counts_every_feed_of_the_run(page, tmp_path, failed, feeds, shown):
    from catalog_sync import clock
    from catalog_sync.state.status_store import StatusStore

    _client, _airflow, _summary, _sku, env = page
    status_url = f"sqlite:///{tmp_path / 'runs.db'}"  # only this run: its place in the history needs no clock
    with clock.use(clock.FakeClock(datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc))):
        store = StatusStore(status_url)
        store.start_run("r1", "incremental", dry_run=False)
        store.finish_run("r1", "success", {"inserted": 4, "failed": failed}, feeds=feeds)
        store.dispose()
    settings = SyncSettings(source_url=env.source_url, target_url=env.target_url, state_url=str(env.state_dir),
                            status_url=status_url)
    client = TestClient(create_app(lambda: settings, FakeAirflow()))
    last = _section(client.get("/").text, "last-sync")
    assert _text(re.search(r'<div class="big state-Success">(.*?)</div>', last, re.S).group(1)) == f"Success {shown}"
    assert client.get("/api/status").json()["last_sync"]["not_accepted"] == int(shown.split()[0])
