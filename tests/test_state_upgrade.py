"""A state folder written by an earlier release is upgraded by the first run, without a full resend.

The earlier releases run from this repository's history (previous_release). Format 1 kept one
Magento record per item; format 2 added the day each price was judged on; format 3 keeps the
target's feeds; format 4 keeps them as a base file plus delta files. The upgrade keeps every
product body an earlier release sent (no unchanged product is sent again), and every key it sent,
so nothing that is gone is left at the target.
"""

from __future__ import annotations

import json

import pytest

from catalog_sync.receiver import ReceiverOptions
from catalog_sync.state.snapshot_reader import feed_items
from previous_release import STATE_FORMAT_1, STATE_FORMAT_2, STATE_FORMAT_3, PreviousRelease
from receiver_helpers import ThreadedReceiver, accepted, accepted_since, receiver_state
from sync_helpers import PINNED_NOW, key_text, mapped_source, product_key

pytestmark = pytest.mark.dates

TOKEN = "upgrade-token"
# How each release pins the run's day (format 1 predates CATALOG_SYNC_NOW).
PINS = {STATE_FORMAT_1: {"CATALOG_SYNC_TODAY": PINNED_NOW[:10]}, STATE_FORMAT_2: {"CATALOG_SYNC_NOW": PINNED_NOW},
        STATE_FORMAT_3: {"CATALOG_SYNC_NOW": PINNED_NOW}}


def _rename_one_and_delete_another(env) -> tuple[str, str]:
    """Between the releases, the shop moves on: two simple products, one renamed, one deleted."""
    renamed, gone = env.scalar("SELECT group_concat(sku) FROM (SELECT sku FROM catalog_product_entity "
                               "WHERE type_id = 'simple' ORDER BY entity_id LIMIT 2 OFFSET 10)").split(",")
    env.execute("UPDATE catalog_product_entity_varchar SET value = 'Renamed between releases' WHERE attribute_id = 73 "
                "AND store_id = 0 AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :s)",
                params={"s": renamed})
    env.execute("DELETE FROM catalog_product_entity WHERE sku = :s", params={"s": gone})
    return renamed, gone


@pytest.mark.parametrize(("commit", "old_format"), [(STATE_FORMAT_1, 1), (STATE_FORMAT_2, 2)], ids=["format-1", "format-2"])
def test_the_first_run_upgrades_the_state_and_sends_only_what_it_must(commit, old_format, sync_env, tmp_path, capsys,
                                                                      monkeypatch):
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="t", required_token=TOKEN))
    try:
        old = PreviousRelease(commit, tmp_path)
        args = ("--source-url", sync_env.source_url, "--target-url", receiver.target, "--state-url", str(sync_env.state_dir))
        first = old.sync(*args, env={"CATALOG_SYNC_TARGET_TOKEN": TOKEN, **PINS[commit]})
        assert first["mode"] == "full" and first["failed"] == 0
        assert json.loads((sync_env.state_dir / "manifest.json").read_text())["format"] == old_format
        renamed, gone = _rename_one_and_delete_another(sync_env)
        before = accepted(receiver.root)
        held = receiver_state(receiver.root)["products"]
        monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)

        upgraded = sync_env.sync(capsys, "--target-url", receiver.target)

        manifest = json.loads((sync_env.state_dir / "manifest.json").read_text())
        assert manifest["format"] == 4 and upgraded["mode"] == "full" and upgraded["failed"] == 0
        sent = accepted_since(before, accepted(receiver.root))
        expected = mapped_source(sync_env.source_url)
        # Products: those whose body the target holds differs from this release's (the renamed one, and every
        # one whose body gained fields since that release: stock, external ids, configurable options), and
        # the deleted one's deletes. Nothing that is the same is sent again.
        differing = sum(1 for key, body in expected["products"].items() if held.get(key) != body)
        assert differing >= 2 and product_key(renamed, "en-US") in expected["products"]
        assert sent["products"] == {"upsert": differing, "delete": 2}
        # Prices were never kept: each is sent once, and the deleted product's prices are deleted.
        assert sent["prices"] == {"upsert": len(expected["prices"]), "delete": 2}
        assert receiver_state(receiver.root) == expected
        assert product_key(gone, "en-US") not in expected["products"]

        again = sync_env.sync(capsys, "--target-url", receiver.target)
        assert again["mode"] == "incremental" and accepted_since(before, accepted(receiver.root)) == sent  # nothing more
    finally:
        receiver.stop()


def test_a_format_3_state_is_kept_as_the_base_and_the_next_run_stays_incremental(sync_env, tmp_path, capsys):
    old = PreviousRelease(STATE_FORMAT_3, tmp_path)
    old.sync(*sync_env.cli_args()[1:], env=PINS[STATE_FORMAT_3])
    before = json.loads((sync_env.state_dir / "manifest.json").read_text())
    assert before["format"] == 3
    renamed, gone = _rename_one_and_delete_another(sync_env)

    summary = sync_env.sync(capsys)

    manifest = json.loads((sync_env.state_dir / "manifest.json").read_text())
    assert manifest["format"] == 4 and summary["mode"] == "incremental"
    # The upgrade is a version of its own that names the same files; the run's commit adds one delta on them.
    assert manifest["history"][0]["run_id"] == f"upgrade-to-format-4 (after {before['run_id']})"
    products = manifest["feeds"]["products"]
    assert products["file"] == before["feeds"]["products"]["file"]
    assert [d["file"] for d in products["deltas"]] == [f"snapshot/products/v{before['version'] + 2:08d}.delta.parquet"]
    # The rename's items (store 0: every view) and the deleted product's two.
    views = int(sync_env.scalar("SELECT count(*) FROM store WHERE store_id > 0 AND is_active = 1"))
    assert (summary["updated"], summary["deleted"], summary["inserted"]) == (views, views, 0)
    assert feed_items(str(sync_env.state_dir)) == mapped_source(sync_env.source_url)


def test_a_file_target_is_written_again_in_the_new_format_deletes_included(sync_env, tmp_path, capsys):
    """Format 2's files held Magento records; the first run after the upgrade writes every item as
    the API's feeds, and a delete for what is gone since, so a consumer can start from its files."""
    old = PreviousRelease(STATE_FORMAT_2, tmp_path)
    old.sync(*sync_env.cli_args()[1:], env=PINS[STATE_FORMAT_2])
    old_files = set(sync_env.delta_files())
    gone = sync_env.scalar("SELECT sku FROM catalog_product_entity WHERE type_id = 'simple' ORDER BY entity_id LIMIT 1")
    sync_env.execute("DELETE FROM catalog_product_entity WHERE sku = :s", params={"s": gone})

    summary = sync_env.sync(capsys)

    new_lines = sync_env.lines_of(sorted(set(sync_env.delta_files()) - old_files))
    deletes = {(line["feed"], key_text(line["key"])) for line in new_lines if line["op"] == "delete"}
    assert ("products", product_key(gone, "en-US")) in deletes and ("products", product_key(gone, "fr-FR")) in deletes
    assert summary["mode"] == "full" and summary["updated"] + summary["inserted"] == len(mapped_source(sync_env.source_url)["products"])
