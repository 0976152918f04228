"""The sync's behaviour end to end through the CLI, on a demo catalog in SQLite."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import SnapshotStore
from catalog_sync.state.snapshot_reader import feed_items
from catalog_sync.state.status_store import StatusStore
from sync_helpers import key_text, mapped_source, product_key, steps_until_commit

NAME_ATTRIBUTE_ID = 73


def _product_in_both_views(env) -> tuple[int, str]:
    """A standalone simple product on both websites, with its name only at default scope."""
    row = env.scalar(
        "SELECT e.entity_id || '|' || e.sku FROM catalog_product_entity e "
        "WHERE e.type_id = 'simple' AND (SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
        f"AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id "
        f"  AND v.attribute_id = {NAME_ATTRIBUTE_ID} AND v.store_id <> 0) "
        "ORDER BY e.entity_id LIMIT 1"
    )
    entity_id, sku = row.split("|", 1)
    return int(entity_id), sku


def test_first_run_exports_every_item_then_a_second_run_exports_nothing(sync_env, capsys, demo_catalog_template):
    _, generated = demo_catalog_template

    first = sync_env.sync(capsys)

    assert first["mode"] == "full"
    assert first["inserted"] == generated.feed_records
    assert (first["extracted"], first["updated"], first["deleted"], first["failed"]) == (generated.feed_records, 0, 0, 0)
    expected = mapped_source(sync_env.source_url)
    assert len(expected["products"]) == generated.feed_records
    assert {f: first["feeds"][f]["inserted"] for f in expected} == {f: len(items) for f, items in expected.items()}
    assert sync_env.target_state() == expected
    assert feed_items(str(sync_env.state_dir)) == expected

    second = sync_env.sync(capsys)

    assert second["mode"] == "incremental"
    assert (second["inserted"], second["updated"], second["deleted"], second["failed"]) == (0, 0, 0, 0)
    assert sync_env.sent == []
    assert set(second) >= {"mode", "extracted", "inserted", "updated", "deleted", "unchanged", "failed", "duration_s"}


def test_store_scoped_name_change_exports_exactly_that_item(sync_env, capsys):
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    sync_env.execute(
        "INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
        "VALUES (:attr, 2, :id, 'Nom en magasin 2') "
        "ON CONFLICT (entity_id, attribute_id, store_id) DO UPDATE SET value = excluded.value",
        params={"attr": NAME_ATTRIBUTE_ID, "id": entity_id},
    )

    summary = sync_env.sync(capsys)

    assert (summary["inserted"], summary["updated"], summary["deleted"]) == (0, 1, 0)
    # Both store views of the product were re-read (one changed id), only one differs.
    assert summary["extracted"] == 2 and summary["unchanged"] == 1
    lines = sync_env.sent
    assert len(lines) == 1  # the product in that store view; its prices did not change
    assert (lines[0]["op"], lines[0]["feed"], key_text(lines[0]["key"])) == ("upsert", "products", product_key(sku, "fr-FR"))
    assert lines[0]["body"]["name"] == "Nom en magasin 2"
    assert sync_env.target_state() == mapped_source(sync_env.source_url)


def test_deleted_product_deletes_its_items_and_its_prices(sync_env, capsys):
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    sync_env.execute(
        *[f"DELETE FROM {t} WHERE entity_id = :id" for t in (
            "catalog_product_entity_varchar", "catalog_product_entity_int", "catalog_product_entity_decimal",
            "catalog_product_entity_text", "catalog_product_entity_datetime")],
        "DELETE FROM catalog_product_website WHERE product_id = :id",
        "DELETE FROM catalog_product_entity WHERE entity_id = :id",
        params={"id": entity_id},
    )

    summary = sync_env.sync(capsys)

    assert (summary["inserted"], summary["updated"], summary["deleted"]) == (0, 0, 2)
    assert summary["feeds"]["prices"]["deleted"] == 2
    # Prices first (they belong to the product), then the products: the reverse of the upsert order.
    assert [(line["op"], line["feed"], key_text(line["key"])) for line in sync_env.sent] == [
        ("delete", "prices", key_text({"sku": sku, "priceBookId": "base"})),
        ("delete", "prices", key_text({"sku": sku, "priceBookId": "second"})),
        ("delete", "products", product_key(sku, "en-US")),
        ("delete", "products", product_key(sku, "fr-FR"))]
    state = sync_env.target_state()
    assert not any(body.get("sku") == sku for items in state.values() for body in items.values())
    assert state == mapped_source(sync_env.source_url)


def test_touching_only_updated_at_exports_nothing(sync_env, capsys):
    sync_env.sync(capsys)
    sync_env.execute("UPDATE catalog_product_entity SET updated_at = '2031-01-01 00:00:00' WHERE entity_id <= 50")

    summary = sync_env.sync(capsys)

    assert (summary["inserted"], summary["updated"], summary["deleted"], summary["failed"]) == (0, 0, 0, 0)
    assert sync_env.sent == []


def test_a_logged_change_that_alters_no_exported_field_resends_nothing(sync_env, capsys):
    """Magento's triggers log an entity on any EAV write; a re-read item whose content hash is the same is not re-sent."""
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    # A qty change that leaves it in (or out of) stock: the stock changelog fires, no sent value changes
    # (bodies carry stock status, not the quantity).
    sync_env.execute("UPDATE cataloginventory_stock_item SET qty = qty + 1 WHERE product_id = :id", params={"id": entity_id})
    sync_env.execute("UPDATE catalog_product_entity SET updated_at = '2031-01-01 00:00:00' WHERE entity_id = :id",
                     params={"id": entity_id})

    summary = sync_env.sync(capsys)

    assert summary["extracted"] == 2 and summary["unchanged"] == 2 and summary["updated"] == 0
    assert sync_env.sent == []


def test_variant_unassigned_loses_its_link_to_the_parent(sync_env, capsys):
    """Magento logs only the child when a configurable link goes: the variant's VARIANT_OF link must go."""
    sync_env.sync(capsys)
    child_id, parent_id = map(int, sync_env.scalar(
        "SELECT product_id || '|' || parent_id FROM catalog_product_super_link ORDER BY link_id LIMIT 1").split("|"))
    child_sku = sync_env.scalar("SELECT sku FROM catalog_product_entity WHERE entity_id = :id", {"id": child_id})
    sync_env.execute("DELETE FROM catalog_product_super_link WHERE product_id = :c", params={"c": child_id})
    sync_env.execute("DELETE FROM catalog_product_relation WHERE child_id = :c", params={"c": child_id})

    parent_sku = sync_env.scalar("SELECT sku FROM catalog_product_entity WHERE entity_id = :id", {"id": parent_id})
    color = sync_env.scalar("SELECT value FROM catalog_product_entity_int WHERE entity_id = :id AND attribute_id = 93 "
                            "AND store_id = 0", {"id": child_id})

    summary = sync_env.sync(capsys)

    assert summary["deleted"] == 0 and summary["inserted"] == 0
    sent = sync_env.sent_in("products")
    # The former variant, and the configurable, whose options no longer offer its color; nothing else.
    assert {line["key"]["sku"] for line in sent} == {child_sku, parent_sku}
    for line in sent:
        body = line["body"]
        if body["sku"] == child_sku:
            assert "links" not in body and "variantReferenceId" not in json.dumps(body)
        else:
            offered = [v["variantReferenceId"] for v in body["configurations"][0]["values"]]
            assert f"color-{color}" not in offered and len(offered) == 2  # the demo's configurables have 3 colors
    assert sync_env.target_state() == mapped_source(sync_env.source_url)


def test_full_resync_with_cleanup_reexports_everything(sync_env, capsys, demo_catalog_template):
    _, generated = demo_catalog_template
    sync_env.sync(capsys)

    summary = sync_env.sync(capsys, "--full", "--cleanup")

    assert summary["mode"] == "full"
    assert summary["updated"] == generated.feed_records
    assert (summary["inserted"], summary["deleted"], summary["unchanged"]) == (0, 0, 0)
    expected = mapped_source(sync_env.source_url)
    assert {f: len(sync_env.sent_in(f)) for f in expected} == {f: len(items) for f, items in expected.items()}


def test_full_resync_deletes_what_the_source_no_longer_has(sync_env, capsys):
    """A full reconcile finds deletes even when no changelog row points at them."""
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    # Remove the product behind the triggers' back: drop them first, as a bulk import tool might.
    for (name,) in _triggers(sync_env):
        sync_env.execute(f'DROP TRIGGER "{name}"')
    sync_env.execute("DELETE FROM catalog_product_website WHERE product_id = :id", params={"id": entity_id})

    incremental = sync_env.sync(capsys)
    full = sync_env.sync(capsys, "--full")

    assert incremental["deleted"] == 0
    assert full["deleted"] == 2 and full["updated"] == 0 and full["inserted"] == 0
    assert full["feeds"]["prices"]["deleted"] == 2
    assert sync_env.target_state() == mapped_source(sync_env.source_url)


def _triggers(env):
    import sqlalchemy as sa

    engine = sa.create_engine(env.source_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
    engine.dispose()
    return rows


def test_crash_between_export_and_commit_resends_and_converges(sync_env, capsys):
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    sync_env.execute(
        "UPDATE catalog_product_entity_varchar SET value = 'Renamed before the crash' "
        "WHERE entity_id = :id AND attribute_id = :attr AND store_id = 0",
        params={"id": entity_id, "attr": NAME_ATTRIBUTE_ID},
    )
    driver = Path(__file__).parent / "support" / "crash_before_commit.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    before = set(sync_env.delta_files())
    crashed = subprocess.run([sys.executable, str(driver), *sync_env.cli_args()], env=env,
                             capture_output=True, text=True, timeout=300)
    assert crashed.returncode == 70, crashed.stderr
    # The crashed run did send, but its snapshot did not move.
    sent_by_crashed = sync_env.lines_of(sorted(set(sync_env.delta_files()) - before))
    renamed = [product_key(sku, "en-US"), product_key(sku, "fr-FR")]
    assert sorted(key_text(line["key"]) for line in sent_by_crashed) == renamed

    summary = sync_env.sync(capsys)

    assert sorted(key_text(line["key"]) for line in sync_env.sent) == renamed  # sent again: nothing lost
    assert summary["updated"] == 2
    assert sync_env.target_state() == mapped_source(sync_env.source_url)
    assert feed_items(str(sync_env.state_dir)) == mapped_source(sync_env.source_url)
    runs = StatusStore(f"sqlite:///{sync_env.state_dir / 'status.db'}").recent_runs(5)
    assert [r["state"] for r in runs[:2]] == ["success", "failed"]
    assert runs[1]["error"].startswith("abandoned")


def test_dry_run_sends_nothing_and_keeps_the_snapshot(sync_env, capsys):
    sync_env.sync(capsys)
    entity_id, sku = _product_in_both_views(sync_env)
    sync_env.execute(
        "UPDATE catalog_product_entity_varchar SET value = 'Dry run rename' "
        "WHERE entity_id = :id AND attribute_id = :attr AND store_id = 0",
        params={"id": entity_id, "attr": NAME_ATTRIBUTE_ID},
    )
    manifest_before = (sync_env.state_dir / "manifest.json").read_bytes()
    files_before = sync_env.delta_files()

    dry = sync_env.sync(capsys, "--dry-run")

    assert dry["dry_run"] is True and dry["updated"] == 2
    assert sync_env.delta_files() == files_before
    assert (sync_env.state_dir / "manifest.json").read_bytes() == manifest_before

    real = sync_env.sync(capsys)

    assert real["updated"] == 2
    assert {line["body"]["name"] for line in sync_env.sent} == {"Dry run rename"}


def test_skus_resync_resends_only_those_skus(sync_env, capsys):
    sync_env.sync(capsys)
    _, sku = _product_in_both_views(sync_env)

    summary = sync_env.sync(capsys, "--full", "--skus", sku)

    assert summary["mode"] == "skus"
    assert summary["updated"] == 2 and summary["inserted"] == 0 and summary["deleted"] == 0
    # Both store views' products and both websites' prices, re-sent although unchanged: nothing else.
    assert sorted((line["feed"], line["op"], key_text(line["key"])) for line in sync_env.sent) == sorted(
        [("products", "upsert", product_key(sku, "en-US")), ("products", "upsert", product_key(sku, "fr-FR")),
         ("prices", "upsert", key_text({"sku": sku, "priceBookId": "base"})),
         ("prices", "upsert", key_text({"sku": sku, "priceBookId": "second"}))])


def test_status_and_show_commands(sync_env, capsys):
    from catalog_sync import cli

    sync_env.sync(capsys)
    _, sku = _product_in_both_views(sync_env)

    assert cli.main(["show", sku, "--store-view", "store_view_2", "--state-url", str(sync_env.state_dir)]) == 0
    shown = json.loads(capsys.readouterr().out)
    expected = mapped_source(sync_env.source_url)
    assert [(s["feed"], s["body"]) for s in shown] == [
        ("prices", expected["prices"][key_text({"sku": sku, "priceBookId": "second"})]),
        ("products", expected["products"][product_key(sku, "fr-FR")])]

    assert cli.main(["status", "--state-url", str(sync_env.state_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["lock"] is None
    assert status["runs"][0]["state"] == "success" and status["runs"][0]["mode"] == "full"

    assert cli.main(["show", "NO-SUCH-SKU", "--state-url", str(sync_env.state_dir)]) == 1


def test_bad_configuration_fails_fast_with_a_message(sync_env, tmp_path, capsys):
    from catalog_sync import cli

    def run(source: str, target: str) -> str:
        code = cli.main(["sync", "--source-url", source, "--target-url", target, "--state-url", str(tmp_path / "state")])
        assert code == 2
        return capsys.readouterr().err

    assert "unsupported target URL scheme 'ftp'" in run(sync_env.source_url, "ftp://nowhere")
    missing = tmp_path / "no-such.db"
    assert f"the source SQLite database {missing} does not exist" in run(f"sqlite:///{missing}", sync_env.target_url)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert "is not a Magento 2 catalog: missing table(s) catalog_category_entity" in run(f"sqlite:///{empty}", sync_env.target_url)
    assert not (tmp_path / "state" / "manifest.json").exists()


def test_a_sync_does_not_start_while_another_holds_the_lock(sync_env, capsys):
    from catalog_sync import cli

    sync_env.sync(capsys)
    store = StatusStore(f"sqlite:///{sync_env.state_dir / 'status.db'}")
    store.acquire_lock("catalog_full_resync__manual__2026-11-25", 3600)
    manifest_before = (sync_env.state_dir / "manifest.json").read_bytes()

    code = cli.main(sync_env.cli_args())

    assert code == 3
    assert "being synced by catalog_full_resync__manual__2026-11-25" in capsys.readouterr().err
    assert (sync_env.state_dir / "manifest.json").read_bytes() == manifest_before
    assert store.lock_holder().owner == "catalog_full_resync__manual__2026-11-25"


def test_report_is_idempotent(sync_env, capsys):
    """Re-running the report of a finished run (an Airflow retry) returns the same summary."""
    from catalog_sync import steps
    from catalog_sync.settings import SyncSettings
    from catalog_sync.steps import SyncRequest

    settings = SyncSettings(source_url=sync_env.source_url, target_url=sync_env.target_url, state_url=str(sync_env.state_dir))
    run = steps.plan(settings, SyncRequest("idempotent-report"))
    steps_until_commit(settings, run)
    steps.commit(settings, run)
    first = steps.report(settings, run)
    again = steps.report(settings, run)

    assert again == {k: first[k] for k in again} and first["inserted"] == again["inserted"] > 0
    assert StatusStore(settings.status_url).get_run("idempotent-report")["state"] == "success"


def test_mapping_split_over_processes_makes_the_same_items(sync_env, capsys, caplog, monkeypatch):
    # A large bucket's mapping runs in several processes; a small one never does, so lower the bar.
    diff_module = importlib.import_module("catalog_sync.steps.diff")
    monkeypatch.setattr(diff_module, "MIN_ROWS_PER_WORKER", 1)
    monkeypatch.setattr(diff_module.os, "cpu_count", lambda: 3)
    caplog.set_level("INFO", logger="catalog_sync.steps")

    first = sync_env.sync(capsys, "--chunk-size", "40")

    assert any("in 3 processes" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    expected = mapped_source(sync_env.source_url)
    assert first["inserted"] == len(expected["products"])
    assert sync_env.target_state() == expected
    assert feed_items(str(sync_env.state_dir)) == expected
    # Each item kept the columns of its own staging record (workers count rows from their first one).
    store = SnapshotStore(open_state(str(sync_env.state_dir)))
    rows = duckdb_session.fetch_all(
        "SELECT key, product_id, sku FROM read_parquet(?)", [store.file_url(store.read_manifest().feeds["products"].file)])
    ids = dict(sqlite3.connect(sync_env.source_url.removeprefix("sqlite:///")).execute(
        "SELECT sku, entity_id FROM catalog_product_entity").fetchall())
    assert len(rows) == len(expected["products"])
    assert all(json.loads(key)["sku"] == sku and product_id == ids[sku] for key, product_id, sku in rows)
    assert sync_env.sync(capsys, "--chunk-size", "40")["updated"] == 0


def test_a_shop_without_magento_bundle_syncs_and_has_no_bundles(sync_env, capsys):
    """Shops may remove Magento_Bundle (its tables go with it): nothing is a bundle there, nothing fails."""
    sync_env.execute(*[f"DROP TABLE {t}" for t in (
        "catalog_product_bundle_selection", "catalog_product_bundle_option_value", "catalog_product_bundle_option")])

    summary = sync_env.sync(capsys)

    assert summary["failed"] == 0 and summary["inserted"] > 0
    target = sync_env.target_state()
    assert not any("bundles" in body for body in target["products"].values())
    assert not any(link["type"] == "IN_BUNDLE" for body in target["products"].values() for link in body.get("links", []))
    assert target == mapped_source(sync_env.source_url)
