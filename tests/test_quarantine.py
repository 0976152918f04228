"""Data Magento accepted but the target must not get as it is: quarantined with the reason, never sent,
and what the target already holds of the product stays (on the demo catalog, file target)."""

from __future__ import annotations

from catalog_sync import cli
from catalog_sync.state.status_store import StatusStore
from sync_helpers import SyncEnv


def _attribute(env: SyncEnv, code: str) -> int:
    return env.scalar("SELECT attribute_id FROM eav_attribute WHERE entity_type_id = 4 AND attribute_code = :code",
                      params={"code": code})


def _two_simple_products(env: SyncEnv) -> list[tuple[int, str]]:
    """Standalone simple products on both websites with no store-view url_key or price of their own."""
    rows = env.scalar(
        "SELECT group_concat(entity_id || '|' || sku, ',') FROM (SELECT e.entity_id, e.sku FROM catalog_product_entity e "
        "WHERE e.type_id = 'simple' AND (SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id "
        "  AND v.attribute_id = :url_key AND v.store_id <> 0) "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_decimal d WHERE d.entity_id = e.entity_id "
        "  AND d.store_id <> 0) "
        "ORDER BY e.entity_id LIMIT 2)", params={"url_key": _attribute(env, "url_key")})
    return [(int(i), sku) for i, sku in (r.split("|", 1) for r in rows.split(","))]


def _last_failures(env: SyncEnv) -> set[tuple[str, str, str, str]]:
    store = StatusStore(f"sqlite:///{env.state_dir / 'status.db'}")
    run = store.recent_runs(1)[0]
    return {(f["sku"], f["store_view_code"], f["status"], f["reason"]) for f in store.failures(run["run_id"])}


def _target_items_of(env: SyncEnv, sku: str) -> dict[str, dict]:
    return {feed: {k: b for k, b in items.items() if f'"sku":"{sku}"' in k} for feed, items in env.target_state().items()
            if feed in ("products", "prices")}


def test_a_negative_price_is_quarantined_and_the_target_keeps_what_it_had(sync_env, capsys):
    sync_env.sync(capsys)
    (entity_id, sku), _ = _two_simple_products(sync_env)
    before = _target_items_of(sync_env, sku)
    assert len(before["products"]) == 2 and len(before["prices"]) == 2
    sync_env.execute("UPDATE catalog_product_entity_decimal SET value = -1 WHERE entity_id = :id AND attribute_id = :price "
                     "AND store_id = 0", params={"id": entity_id, "price": _attribute(sync_env, "price")})

    summary = sync_env.sync(capsys, expect_exit=cli.EXIT_NOT_ACCEPTED)

    assert _last_failures(sync_env) == {(sku, "default", "retryable", "negative price"),
                                        (sku, "store_view_2", "retryable", "negative price")}
    assert summary["not_accepted"] == 2 and sync_env.sent == []
    assert _target_items_of(sync_env, sku) == before  # not deleted, not changed


def test_a_url_key_two_products_share_in_a_store_view_quarantines_both(sync_env, capsys):
    sync_env.sync(capsys)
    (first_id, first), (second_id, second) = _two_simple_products(sync_env)
    url_key = _attribute(sync_env, "url_key")
    shared = sync_env.scalar("SELECT value FROM catalog_product_entity_varchar WHERE entity_id = :id "
                             "AND attribute_id = :attr AND store_id = 0", params={"id": first_id, "attr": url_key})
    sync_env.execute("UPDATE catalog_product_entity_varchar SET value = :v WHERE entity_id = :id AND attribute_id = :attr "
                     "AND store_id = 0", params={"v": shared, "id": second_id, "attr": url_key})

    summary = sync_env.sync(capsys, expect_exit=cli.EXIT_NOT_ACCEPTED)

    assert _last_failures(sync_env) == {
        (sku, view, "retryable", f"url_key {shared!r} is also the url_key of sku {other!r} in store view {view!r}")
        for sku, other in ((first, second), (second, first)) for view in ("default", "store_view_2")
    }
    assert summary["not_accepted"] == 4

    # Giving the second product its own url_key in one store view ends the clash there only.
    sync_env.execute("INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
                     "VALUES (:attr, 2, :id, 'its-own-key')", params={"attr": url_key, "id": second_id})
    sync_env.sync(capsys, expect_exit=cli.EXIT_NOT_ACCEPTED)
    assert {(sku, view) for sku, view, *_ in _last_failures(sync_env)} == {(first, "default"), (second, "default")}
