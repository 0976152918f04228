"""The whole sync against the reference receiver over HTTP: the receiver ends up holding the mapped source."""

from __future__ import annotations

import pytest
import requests

from catalog_sync.receiver import ReceiverOptions
from catalog_sync.receiver.ims import ImsSettings
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, mapped_source, product_key

TENANT, TOKEN = "acme-tenant", "test-token-123"
NOT_ACCEPTED = 4  # the CLI's exit code for a run that left items not accepted (README)


@pytest.fixture
def receiver(tmp_path):
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN, seed=1))
    yield running.root, running.target
    running.stop()


def _received(root: str) -> dict:
    return receiver_state(root)


def _mapped_source(source_url: str) -> dict:
    return mapped_source(source_url)


def test_the_receiver_converges_to_the_mapped_source(sync_env, receiver, capsys, monkeypatch):
    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    env = SyncEnv(sync_env.source_url, sync_env.target_dir, sync_env.state_dir)
    args = ["--target-url", target]

    def sync(*extra):
        return _cli_sync(env, capsys, *args, *extra)

    first = sync()
    assert first["failed"] == 0 and first["inserted"] > 0
    assert _received(root) == _mapped_source(env.source_url)
    metadata = requests.get(f"{root}/_receiver/metadata", timeout=10).json()
    # sku, name, description, shortDescription, price and the demo's custom attributes, for both locales.
    assert {key.split("|")[1] for key in metadata} == {"en-US", "fr-FR"}
    assert {"sku|en-US", "name|fr-FR", "price|en-US", "color|fr-FR", "activity|en-US"} <= set(metadata)
    assert first["feeds"]["metadata"]["inserted"] == len(metadata)
    metadata_requests = _metadata_requests(root)
    assert metadata_requests > 0

    sku = env.scalar("SELECT sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id DESC LIMIT 1")
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Renamed for the API' WHERE attribute_id = 73 "
                "AND store_id = 0 AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :sku)",
                params={"sku": sku})
    env.execute("DELETE FROM catalog_product_website WHERE product_id = "
                "(SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1)")

    second = sync()

    assert second["mode"] == "incremental" and second["failed"] == 0
    assert second["deleted"] >= 1 and second["updated"] >= 1
    assert _metadata_requests(root) == metadata_requests  # unchanged metadata is not re-sent
    assert _received(root) == _mapped_source(env.source_url)


def _metadata_requests(root: str) -> int:
    by_endpoint = requests.get(f"{root}/_receiver/stats", timeout=10).json()["requests"]
    return sum(sum(by_status.values()) for endpoint, by_status in by_endpoint.items() if "metadata" in endpoint)


def test_a_wrong_token_fails_the_run_with_a_clear_message(sync_env, receiver, capsys, monkeypatch):
    _, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", "not-the-token")

    summary = _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=1)

    assert "refused the credentials (HTTP 401)" in summary["error"]


def _cli_sync(env: SyncEnv, capsys, *extra: str, expect_exit: int | tuple[int, ...] = 0) -> dict:
    import json

    from catalog_sync import cli

    capsys.readouterr()
    code = cli.main(["sync", "--source-url", env.source_url, "--state-url", str(env.state_dir), *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert code in (expect_exit if isinstance(expect_exit, tuple) else (expect_exit,)), (code, out)
    return json.loads(out[-1])


def test_faulty_runs_then_a_clean_run_converge_and_invalid_skus_stay_reported(sync_env, receiver, capsys, monkeypatch):
    """All faults at once: 30% 5xx, 20% 429, 10% answers slower than the client's timeout, 10% dropped
    connections and three invalid SKUs; then the faults stop: nothing lost, nothing extra."""
    from catalog_sync.state.status_store import StatusStore

    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    monkeypatch.setenv("CATALOG_SYNC_BATCH_SIZE", "25")  # more requests, more faults
    monkeypatch.setenv("CATALOG_SYNC_HTTP_TIMEOUT_S", "0.5")
    invalid = sync_env.scalar("SELECT group_concat(sku) FROM (SELECT sku FROM catalog_product_entity "
                              "WHERE type_id = 'simple' ORDER BY entity_id LIMIT 3 OFFSET 40)").split(",")
    faults = {"rate_5xx": 0.3, "rate_429": 0.2, "retry_after_s": 1, "latency_s": 0.8, "latency_rate": 0.1,
              "drop_rate": 0.1, "reject_skus": invalid, "seed": 7}
    assert requests.post(f"{root}/_receiver/faults", json=faults, timeout=10).ok

    faulty = _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=NOT_ACCEPTED)
    requests.post(f"{root}/_receiver/faults", json={"rate_5xx": 0.0, "rate_429": 0.0, "latency_s": 0.0, "drop_rate": 0.0},
                  timeout=10)
    clean = _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=NOT_ACCEPTED)  # the invalid SKUs stay held

    injected = requests.get(f"{root}/_receiver/stats", timeout=10).json()["faults"]
    assert all(injected[kind] > 0 for kind in ("latency", "drop", "429", "5xx", "reject_sku_items")), injected
    expected = _mapped_source(sync_env.source_url)
    held = sum(1 for feed in ("products", "prices") for v in expected[feed].values() if v["sku"] in invalid)
    for feed in ("products", "prices"):
        expected[feed] = {k: v for k, v in expected[feed].items() if v["sku"] not in invalid}
    assert _received(root) == expected
    assert clean["not_accepted"] == held  # their products and prices, still held as rejected
    assert faulty["failed"] >= len(invalid)  # each invalid SKU, in every store view it is in
    store = StatusStore(f"sqlite:///{sync_env.state_dir / 'status.db'}")
    clean_run, faulty_run = store.recent_runs(2)
    rejected = [f for f in store.failures(faulty_run["run_id"]) if f["status"] == "rejected"]
    assert {f["sku"] for f in rejected} == set(invalid)
    assert all("Invalid SKU" in f["reason"] for f in rejected)
    # Still pending as rejected after the clean run, which did not send them again (their content did not change).
    from catalog_sync.state.location import StateLocation
    from catalog_sync.state.snapshot import SnapshotStore

    snapshots = SnapshotStore(StateLocation(str(sync_env.state_dir)))
    import pyarrow.parquet as pq

    manifest = snapshots.read_manifest()
    pending = [row for feed in ("products", "prices")
               for row in pq.read_table(snapshots.file_url(manifest.files(feed).pending)).to_pylist()]
    # Timed-out items stay pending as unconfirmed until the late-write window has passed (then they are re-sent).
    assert {(p["sku"], p["status"]) for p in pending if p["status"] != "unconfirmed"} == {
        (sku, "rejected") for sku in invalid}
    assert clean["failed"] == 0 and clean_run["state"] == "success"


@pytest.mark.mariadb
def test_the_real_magento_fixture_converges_on_the_receiver(magento_fixture_url, receiver, tmp_path, capsys, monkeypatch):
    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    env = SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state")

    summary = _cli_sync(env, capsys, "--target-url", target)

    assert (summary["inserted"], summary["failed"]) == (23, 0)
    received = _received(root)
    assert received == _mapped_source(magento_fixture_url)
    assert {body["source"]["locale"] for body in received["products"].values()} == {"pt-BR"}
    assert received["products"][product_key("Camiseta Básica Algodão-azul", "pt-BR")]["links"] == [
        {"type": "VARIANT_OF", "sku": "Camiseta Básica Algodão"}]


def test_slow_answers_and_dropped_connections_then_a_clean_run_converge(sync_env, receiver, capsys, monkeypatch):
    """Latency above the client's timeout and connections closed unanswered: retried, then a clean run."""
    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    monkeypatch.setenv("CATALOG_SYNC_HTTP_TIMEOUT_S", "0.5")
    assert requests.post(f"{root}/_receiver/faults", json={"latency_s": 0.8, "seed": 3}, timeout=10).ok

    slow = _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=NOT_ACCEPTED)
    assert slow["failed"] > 0 and slow["inserted"] == 0  # every request timed out: nothing accepted, everything retryable

    assert requests.post(f"{root}/_receiver/faults", json={"latency_s": 0.0, "drop_rate": 0.3}, timeout=10).ok
    _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=(0, NOT_ACCEPTED))
    requests.post(f"{root}/_receiver/faults", json={"drop_rate": 0.0}, timeout=10)
    clean = _cli_sync(sync_env, capsys, "--target-url", target)

    assert requests.get(f"{root}/_receiver/stats", timeout=10).json()["faults_injected"] > 0
    assert clean["failed"] == 0
    assert _received(root) == _mapped_source(sync_env.source_url)


@pytest.fixture
def ims_receiver(tmp_path):
    """A receiver that issues IMS-like tokens which it accepts for 1.5 s only, while claiming an hour."""
    options = ReceiverOptions(tenant_id=TENANT, seed=1, ims=ImsSettings("sync-client", "sync-secret", ttl_s=1.5))
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), options)
    yield running.root, running.target
    running.stop()


def _use_ims(monkeypatch, root: str, secret: str) -> None:
    monkeypatch.delenv("CATALOG_SYNC_TARGET_TOKEN", raising=False)
    monkeypatch.setenv("CATALOG_SYNC_IMS_TOKEN_URL", f"{root}/ims/token/v3")
    monkeypatch.setenv("CATALOG_SYNC_IMS_CLIENT_ID", "sync-client")
    monkeypatch.setenv("CATALOG_SYNC_IMS_CLIENT_SECRET", secret)
    monkeypatch.setenv("CATALOG_SYNC_IMS_SCOPE", "openid,AdobeID")


def test_an_expired_ims_token_is_refreshed_and_the_run_converges(sync_env, ims_receiver, capsys, monkeypatch):
    """Tokens die on the server after 1.5 s although IMS said an hour: each 401 fetches a new one, once."""
    root, target = ims_receiver
    _use_ims(monkeypatch, root, "sync-secret")
    monkeypatch.setenv("CATALOG_SYNC_BATCH_SIZE", "20")  # enough requests for the run to outlive a token

    summary = _cli_sync(sync_env, capsys, "--target-url", target)

    stats = requests.get(f"{root}/_receiver/stats", timeout=10).json()
    refused = sum(by_status.get("401", 0) for by_status in stats["requests"].values())
    assert refused >= 1 and stats["ims_tokens_issued"] >= 2, (refused, stats["ims_tokens_issued"])
    assert summary["failed"] == 0
    assert _received(root) == _mapped_source(sync_env.source_url)
    assert "sync-secret" not in capsys.readouterr().err


def test_wrong_ims_client_credentials_fail_the_run_with_a_clear_message(sync_env, ims_receiver, capsys, monkeypatch):
    root, target = ims_receiver
    _use_ims(monkeypatch, root, "not-the-secret")

    summary = _cli_sync(sync_env, capsys, "--target-url", target, expect_exit=1)

    assert "refused the client credentials (HTTP 401)" in summary["error"]
    assert "not-the-secret" not in summary["error"]


def test_price_book_ids_follow_the_configured_mapping(sync_env, receiver, capsys, monkeypatch):
    """--price-books names the book of each website; a website left out keeps its code as the id."""
    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)

    summary = _cli_sync(sync_env, capsys, "--target-url", target, "--price-books", "base=main-usd")

    assert summary["failed"] == 0
    books = requests.get(f"{root}/_receiver/price-books", timeout=10).json()
    websites = set(sync_env.scalar("SELECT group_concat(code) FROM store_website WHERE website_id > 0").split(","))
    assert set(books) == {"main-usd"} | (websites - {"base"})
    assert books["main-usd"]["currency"] == "USD"
    prices = requests.get(f"{root}/_receiver/prices", timeout=10).json()
    assert {p["priceBookId"] for p in prices.values()} == set(books)


@pytest.mark.dates
def test_a_special_price_is_sent_when_its_window_opens_and_closes_without_a_change(sync_env, receiver, capsys, monkeypatch):
    """Magento logs no change when a special price's dates arrive; the sync still re-sends the price.
    The demo shop runs on UTC; every run's instant is pinned, so the machine's date plays no part."""
    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    sku = sync_env.scalar("SELECT sku FROM catalog_product_entity e WHERE type_id = 'simple' AND NOT EXISTS ("
                          "SELECT 1 FROM catalog_product_entity_decimal d WHERE d.entity_id = e.entity_id "
                          "AND d.attribute_id = 78) ORDER BY entity_id LIMIT 1")
    sync_env.execute(
        "INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) "
        "SELECT 78, 0, entity_id, 1.00 FROM catalog_product_entity WHERE sku = :sku",
        "DELETE FROM catalog_product_entity_datetime WHERE attribute_id IN (79, 80) "
        "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :sku)",
        "INSERT INTO catalog_product_entity_datetime (attribute_id, store_id, entity_id, value) "
        "SELECT 79, 0, entity_id, '2026-12-01 00:00:00' FROM catalog_product_entity WHERE sku = :sku",
        "INSERT INTO catalog_product_entity_datetime (attribute_id, store_id, entity_id, value) "
        "SELECT 80, 0, entity_id, '2026-12-03 00:00:00' FROM catalog_product_entity WHERE sku = :sku",
        params={"sku": sku},
    )

    def discounts_at(instant: str) -> tuple[dict, list]:
        monkeypatch.setenv("CATALOG_SYNC_NOW", instant)
        summary = _cli_sync(sync_env, capsys, "--target-url", target)
        prices = requests.get(f"{root}/_receiver/prices", timeout=10).json()
        return summary, [p.get("discounts") for key, p in prices.items() if key.startswith(f"{sku}|")]

    before, none_yet = discounts_at("2026-11-30T23:59:59Z")
    opened, active = discounts_at("2026-12-01T00:00:00Z")
    still, _ = discounts_at("2026-12-03T23:59:59Z")
    closed, ended = discounts_at("2026-12-04T00:00:01Z")

    assert before["mode"] == "full" and none_yet and all(d is None for d in none_yet)
    # Only the prices change: the product bodies carry no price.
    assert opened["mode"] == "incremental" and opened["feeds"]["prices"]["updated"] == len(active) >= 1
    assert opened["updated"] == 0 and all(d and d[0]["code"] == "special_price" for d in active)
    assert sum(still["feeds"][f][k] for f in still["feeds"] for k in ("inserted", "updated", "deleted")) == 0
    assert closed["feeds"]["prices"]["updated"] == len(ended) and all(d is None for d in ended)


def test_the_page_shows_byte_for_byte_what_the_receiver_stored(sync_env, receiver, capsys, monkeypatch):
    """Every item of every feed: the body the page shows is the text the receiver stored."""
    import json

    from fastapi.testclient import TestClient

    from catalog_sync.settings import SyncSettings
    from catalog_sync.ui.app import create_app
    from receiver_helpers import FEEDS
    from sync_helpers import key_text
    from test_ui_pages import FakeAirflow

    root, target = receiver
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    _cli_sync(sync_env, capsys, "--target-url", target)
    settings = SyncSettings.from_env(source_url=sync_env.source_url, target_url=target, state_url=str(sync_env.state_dir))
    client = TestClient(create_app(lambda: settings, FakeAirflow()))
    checked = {}
    for feed, (endpoint, key_fields) in FEEDS.items():
        stored = {key_text({f: json.loads(t)[f] for f in key_fields}): t
                  for t in requests.get(f"{root}/_receiver/raw/{endpoint}", timeout=10).json().values()}
        shown, page = {}, 1
        while True:
            listing = client.get(f"/api/feeds/{feed}", params={"page": page}).json()
            shown.update({item["key"]: item["body"] for item in listing["items"]})
            if page >= listing["pages"]:
                break
            page += 1
        assert shown == stored, feed
        checked[feed] = len(shown)
    # Two views on two locales: no view is a layer (tests/test_shared_locale_views.py has them).
    assert checked.pop("product_layers") == 0
    assert min(checked.values()) >= 2 and sum(checked.values()) >= 50, checked
    for sku in sync_env.scalar("SELECT group_concat(sku) FROM (SELECT sku FROM catalog_product_entity "
                               "ORDER BY entity_id LIMIT 10)").split(","):
        for view in client.get(f"/api/products/{sku}").json()["store_views"]:
            for item in view["items"]:
                text = requests.get(f"{root}/_receiver/raw/{FEEDS[item['feed']][0]}", timeout=10).json()
                assert item["sent"]["body"] in text.values()
