"""The feed model end to end: deletes, exact bodies, mapping changes, replays, and the targets' boundary.

Runs go through the CLI to the reference receiver (and to the file target for the replay),
on the demo catalog in SQLite. Expected target states come from the reference builder and
the mapping (sync_helpers.mapped_source); the deletes are checked by key as well.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from catalog_sync.receiver import ReceiverOptions
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import PINNED_NOW, SyncEnv, key_text, mapped_source, product_key

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "include" / "catalog_sync"
TOKEN = "feeds-token"


@pytest.fixture
def receiver(tmp_path):
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="feeds", required_token=TOKEN))
    yield running
    running.stop()


@pytest.fixture
def api_env(sync_env, receiver, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    return sync_env, receiver


def _sync(env: SyncEnv, capsys, receiver: ThreadedReceiver, *extra: str) -> dict:
    return env.sync(capsys, "--target-url", receiver.target, *extra)


def _keys(state: dict, feed: str) -> set[str]:
    return set(state.get(feed, {}))


def _simple_on_both_websites(env: SyncEnv) -> str:
    return env.scalar("SELECT e.sku FROM catalog_product_entity e WHERE e.type_id = 'simple' AND "
                      "(SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
                      "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
                      "ORDER BY e.entity_id LIMIT 1")


# ---- deletes ------------------------------------------------------------------------------------


def test_deleting_a_product_removes_its_items_and_its_prices(api_env, capsys):
    env, receiver = api_env
    _sync(env, capsys, receiver)
    sku = _simple_on_both_websites(env)
    before = receiver_state(receiver.root)
    mine = {("products", product_key(sku, "en-US")), ("products", product_key(sku, "fr-FR")),
            ("prices", key_text({"sku": sku, "priceBookId": "base"})), ("prices", key_text({"sku": sku, "priceBookId": "second"}))}
    assert all(key in before[feed] for feed, key in mine)

    env.execute("DELETE FROM catalog_product_entity WHERE sku = :s", params={"s": sku})
    summary = _sync(env, capsys, receiver)

    after = receiver_state(receiver.root)
    assert {(f, k) for f in ("products", "prices") for k in _keys(before, f) - _keys(after, f)} == mine
    assert (summary["deleted"], summary["feeds"]["prices"]["deleted"]) == (2, 2)
    assert after == mapped_source(env.source_url)


def test_removing_a_product_from_a_website_removes_that_websites_items_and_prices(api_env, capsys):
    env, receiver = api_env
    _sync(env, capsys, receiver)
    sku = _simple_on_both_websites(env)
    before = receiver_state(receiver.root)

    env.execute("DELETE FROM catalog_product_website WHERE website_id = 2 AND product_id = "
                "(SELECT entity_id FROM catalog_product_entity WHERE sku = :s)", params={"s": sku})
    _sync(env, capsys, receiver)

    after = receiver_state(receiver.root)
    gone = {(f, k) for f in ("products", "prices") for k in _keys(before, f) - _keys(after, f)}
    assert gone == {("products", product_key(sku, "fr-FR")), ("prices", key_text({"sku": sku, "priceBookId": "second"}))}
    assert after == mapped_source(env.source_url)


def test_switching_a_store_view_off_removes_its_items_its_prices_and_its_price_book(api_env, capsys):
    """The view is the second website's only one: its products, prices and price book all go,
    taken from the snapshot (live Magento no longer knows the view)."""
    env, receiver = api_env
    _sync(env, capsys, receiver)
    before = receiver_state(receiver.root)

    env.execute("UPDATE store SET is_active = 0 WHERE code = 'store_view_2'")
    summary = _sync(env, capsys, receiver)

    after = receiver_state(receiver.root)
    assert summary["mode"] == "incremental"
    assert not any(b["source"]["locale"] == "fr-FR" for b in after["products"].values())
    assert not any(b["priceBookId"] == "second" for b in after["prices"].values())
    assert _keys(after, "price_books") == {key_text({"priceBookId": "base"})}
    assert not any(key.endswith('"fr-FR"}}') for key in _keys(after, "metadata"))
    french = sum(1 for b in before["products"].values() if b["source"]["locale"] == "fr-FR")
    assert summary["deleted"] == french and french > 100
    assert after == mapped_source(env.source_url)


def test_removing_a_custom_attribute_removes_its_metadata(api_env, capsys):
    env, receiver = api_env
    _sync(env, capsys, receiver)
    assert {key_text({"code": "material", "source": {"locale": loc}}) for loc in ("en-US", "fr-FR")} <= _keys(
        receiver_state(receiver.root), "metadata")

    env.execute("DELETE FROM eav_attribute WHERE attribute_code = 'material'")
    summary = _sync(env, capsys, receiver)

    metadata = _keys(receiver_state(receiver.root), "metadata")
    assert not any('"material"' in key for key in metadata)
    assert summary["feeds"]["metadata"]["deleted"] == 2
    assert metadata == set(mapped_source(env.source_url)["metadata"])


# ---- bodies change only when they change ---------------------------------------------------------


def test_a_qty_change_that_changes_no_body_sends_nothing(api_env, capsys):
    env, receiver = api_env
    _sync(env, capsys, receiver)
    sku = _simple_on_both_websites(env)
    before = requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["requests"]

    env.execute("UPDATE cataloginventory_stock_item SET qty = qty + 7 WHERE product_id = "
                "(SELECT entity_id FROM catalog_product_entity WHERE sku = :s)", params={"s": sku})
    summary = _sync(env, capsys, receiver)

    assert summary["extracted"] == 2  # the changelog saw it: both store views were read again
    assert all(c["inserted"] + c["updated"] + c["deleted"] == 0 for c in summary["feeds"].values())
    assert requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["requests"] == before  # not one request


class NewRelease:
    """This checkout's engine with one more field in the product mapping, as a next release might ship it."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "new-release"
        shutil.copytree(ENGINE, self.root / "catalog_sync", ignore=shutil.ignore_patterns("__pycache__"))
        mapping = self.root / "catalog_sync" / "targets" / "ingestion_api" / "mapping.py"
        text = mapping.read_text()
        anchor = '[{"id": str(record["product_id"]), "origin": EXTERNAL_ID_ORIGIN}]'
        assert anchor in text
        mapping.write_text(text.replace(anchor, anchor[:-1] + ', {"id": record["sku"], "origin": "NextRelease"}]'))

    def sync(self, env: SyncEnv, receiver: ThreadedReceiver) -> dict:
        import json
        import os

        done = subprocess.run([sys.executable, "-m", "catalog_sync", *env.cli_args("--target-url", receiver.target)],
                              env={**os.environ, "PYTHONPATH": str(self.root), "CATALOG_SYNC_TARGET_TOKEN": TOKEN,
                                   "CATALOG_SYNC_NOW": PINNED_NOW},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        self.log = done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_mapping_change_resends_every_affected_item_once(api_env, capsys, tmp_path):
    env, receiver = api_env
    first = _sync(env, capsys, receiver)
    release = NewRelease(tmp_path)
    before = requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["items"]

    upgraded = release.sync(env, receiver)

    assert upgraded["mode"] == "full" and "the target's mapping changed" in release.log
    assert upgraded["updated"] == first["inserted"]  # every product body has the new field...
    assert all(c["inserted"] + c["updated"] + c["deleted"] == 0 for f, c in upgraded["feeds"].items() if f != "products")
    after = requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["items"]
    assert after["products"]["upsert"] - before["products"]["upsert"] == first["inserted"]  # ...sent exactly once
    assert all([e["origin"] for e in b["externalIds"]] == ["AdobeCommerce", "NextRelease"]
               for b in receiver_state(receiver.root)["products"].values())

    again = release.sync(env, receiver)
    assert again["mode"] == "incremental" and all(
        c["inserted"] + c["updated"] + c["deleted"] == 0 for c in again["feeds"].values())
    assert requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["items"] == after


# ---- the file target holds what the API would -------------------------------------------------------


def test_the_file_targets_feed_files_replay_to_the_receivers_state(sync_env, receiver, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    files = SyncEnv(sync_env.source_url, tmp_path / "files-target", tmp_path / "files-state")
    api = SyncEnv(sync_env.source_url, tmp_path / "unused", tmp_path / "api-state")
    sku = _simple_on_both_websites(sync_env)
    changes = [
        [],
        ["UPDATE catalog_product_entity_varchar SET value = value || ' (v2)' WHERE attribute_id = 73 AND entity_id % 9 = 0",
         "UPDATE catalog_product_entity_decimal SET value = value + 1 WHERE attribute_id = 77 AND entity_id % 11 = 0"],
        ["DELETE FROM catalog_product_entity WHERE sku = :s"],
        ["DELETE FROM catalog_product_website WHERE website_id = 2 AND product_id IN (SELECT entity_id FROM "
         "catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 3)",
         "DELETE FROM eav_attribute WHERE attribute_code = 'material'"],
    ]
    for statements in changes:
        if statements:
            sync_env.execute(*statements, params={"s": sku})
        files.sync(capsys)
        api.sync(capsys, "--target-url", receiver.target)
        assert files.target_state() == receiver_state(receiver.root)
    assert files.target_state() == mapped_source(sync_env.source_url) | {
        "metadata": files.target_state()["metadata"]}  # metadata: a deleted attribute leaves product bodies for a full run


# ---- the boundary: only targets/ knows the kinds of target ---------------------------------------------


KIND_MARKERS = ("ingestion_api", "IngestionApi", "catalog_sync.targets.files", "FilesTarget", "FilesKind",
                "catalog_sync_files", "FeedFilesTarget")
# The reference receiver is the API's stand-in, and the demo generator is no part of the pipeline.
OUTSIDE_THE_BOUNDARY = ("targets", "receiver", "demo")


def _kind_references(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        found += [f"{path.relative_to(ENGINE)}:{node.lineno}: {n!r}" for n in names if any(m in n for m in KIND_MARKERS)]
    return found


def test_no_module_outside_targets_names_a_target_kind():
    files = [p for p in ENGINE.rglob("*.py") if p.relative_to(ENGINE).parts[0] not in OUTSIDE_THE_BOUNDARY]
    assert len(files) > 30
    assert [hit for path in files for hit in _kind_references(path)] == []


def test_the_boundary_scan_sees_each_way_of_naming_a_kind(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from catalog_sync.targets.ingestion_api.mapping import feed_product\n"
                     "import catalog_sync.targets.files.target\nx = IngestionApiTarget\ny = 'catalog_sync_files'\n")
    global ENGINE
    saved, ENGINE = ENGINE, tmp_path
    try:
        assert len(_kind_references(probe)) == 4
    finally:
        ENGINE = saved
