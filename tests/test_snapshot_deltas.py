"""The snapshot as a base file plus delta files: the merged view, and a sequence of runs that
compacts mid-way and still ends exactly where the shop is."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync.state import duckdb_session
from catalog_sync.state.snapshot import DELTA_SCHEMA, SNAPSHOT_SCHEMA, DeltaFile, FeedFiles, feed_relation
from catalog_sync.state.snapshot_reader import feed_items, find_exported
from catalog_sync.targets.files.replay import replay
from catalog_sync.targets.registry import config_from_env, open_target
from catalog_sync.ui.synced_products import SyncedProducts
from sync_helpers import SyncEnv, mapped_source

# ---- the merged view, on hand-written files ---------------------------------------------------------


def _row(key: str, body: str | None, deleted: bool | None = None) -> dict:
    row = {f.name: None for f in SNAPSHOT_SCHEMA}
    row.update(key=key, body=body, sku=key.upper(), product_id=ord(key))
    return row if deleted is None else {**row, "deleted": deleted}


def _write(path, rows: list[dict], schema: pa.Schema) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return str(path)


def test_the_merged_view_is_each_key_s_newest_row_without_tombstones(tmp_path):
    base = _write(tmp_path / "base.parquet", [_row("a", "a1"), _row("b", "b1"), _row("c", "c1")], SNAPSHOT_SCHEMA)
    first = _write(tmp_path / "d1.parquet", [_row("b", "b2", False), _row("c", None, True)], DELTA_SCHEMA)
    second = _write(tmp_path / "d2.parquet", [_row("c", "c3", False), _row("a", None, True), _row("d", "d3", False)],
                    DELTA_SCHEMA)

    def merged(*deltas: str) -> list[tuple]:
        return duckdb_session.fetch_all(f"SELECT key, body FROM {feed_relation(base, list(deltas))} ORDER BY key")

    assert merged() == [("a", "a1"), ("b", "b1"), ("c", "c1")]
    assert merged(first) == [("a", "a1"), ("b", "b2")]  # c deleted
    assert merged(first, second) == [("b", "b2"), ("c", "c3"), ("d", "d3")]  # c back, a deleted, d new
    located = duckdb_session.fetch_all(
        f"SELECT key, part, part_row FROM {feed_relation(base, [first, second], positions=True)} ORDER BY key")
    assert located == [("b", 1, 0), ("c", 2, 0), ("d", 2, 2)]
    assert feed_relation(None, []) is None


def test_a_feed_s_files_survive_the_json_a_run_plan_travels_in_between_tasks():
    files = FeedFiles("snapshot/products/v00000001.parquet", "snapshot/products/v00000003.pending.parquet", 10, 1,
                      123, 45, (DeltaFile("snapshot/products/v00000002.delta.parquet", 4, 67),
                                DeltaFile("snapshot/products/v00000003.delta.parquet", 2, 89)), base_items=9)
    assert FeedFiles.from_dict(json.loads(json.dumps(dataclasses.asdict(files)))) == files


# ---- a sequence of runs ---------------------------------------------------------------------------


def _manifest(env: SyncEnv) -> dict:
    return json.loads((env.state_dir / "manifest.json").read_text())


def _skus(env: SyncEnv, count: int) -> list[str]:
    """Simple products on both websites, named at default scope only (each: one item per store view)."""
    rows = env.scalar(
        "SELECT group_concat(sku) FROM (SELECT e.sku FROM catalog_product_entity e WHERE e.type_id = 'simple' "
        "AND (SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id "
        "  AND v.attribute_id = 73 AND v.store_id <> 0) ORDER BY e.entity_id LIMIT :n)", params={"n": count})
    return rows.split(",")


def _rename(env: SyncEnv, sku: str, name: str) -> None:
    env.execute("UPDATE catalog_product_entity_varchar SET value = :n WHERE attribute_id = 73 AND store_id = 0 "
                "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :s)", params={"n": name, "s": sku})


def _off_website(env: SyncEnv, sku: str, website_id: int) -> None:
    env.execute("DELETE FROM catalog_product_website WHERE website_id = :w AND product_id = "
                "(SELECT entity_id FROM catalog_product_entity WHERE sku = :s)", params={"w": website_id, "s": sku})


def _on_website(env: SyncEnv, sku: str, website_id: int) -> None:
    env.execute("INSERT INTO catalog_product_website (product_id, website_id) "
                "SELECT entity_id, :w FROM catalog_product_entity WHERE sku = :s", params={"w": website_id, "s": sku})


def _assert_exact(env: SyncEnv) -> None:
    """The snapshot's merged view, the file target's replay and the page all hold the mapped shop."""
    expected = mapped_source(env.source_url)
    assert feed_items(str(env.state_dir)) == expected
    assert env.target_state() == expected
    products = _manifest(env)["feeds"]["products"]
    assert products["items"] == len(expected["products"])


def test_runs_write_deltas_compact_mid_sequence_and_stay_exact(sync_env, capsys, monkeypatch):
    env = sync_env
    a, b, c, d = _skus(env, 4)
    first = env.sync(capsys)
    assert first["mode"] == "full"
    base = _manifest(env)["feeds"]["products"]
    assert base["file"] == "snapshot/products/v00000001.parquet" and base["deltas"] == []

    _rename(env, a, "A, once renamed")
    env.sync(capsys)
    _off_website(env, b, 2)  # its second website's store view loses the item: a tombstone
    _rename(env, a, "A, twice renamed")  # the same key again, in a newer delta
    env.sync(capsys)
    products = _manifest(env)["feeds"]["products"]
    assert products["file"] == base["file"]  # the base is not rewritten
    assert [x["file"] for x in products["deltas"]] == ["snapshot/products/v00000002.delta.parquet",
                                                       "snapshot/products/v00000003.delta.parquet"]
    assert [x["rows"] for x in products["deltas"]] == [2, 3]  # a in both views; then a again and b's tombstone
    _assert_exact(env)

    # Compaction on: the next commit that changes the feed writes a new base, with no deltas.
    monkeypatch.setenv("CATALOG_SYNC_COMPACT_SHARE", "0")
    _rename(env, c, "C, renamed at compaction")
    env.sync(capsys)
    products = _manifest(env)["feeds"]["products"]
    assert products["file"] == "snapshot/products/v00000004.parquet" and products["deltas"] == []
    assert products["base_items"] is None
    _assert_exact(env)

    # Back to the default share: deltas on the new base, a key deleted and then put back.
    monkeypatch.delenv("CATALOG_SYNC_COMPACT_SHARE")
    _on_website(env, b, 2)
    _rename(env, d, "D, after compaction")
    env.sync(capsys)
    products = _manifest(env)["feeds"]["products"]
    assert products["file"] == "snapshot/products/v00000004.parquet"
    assert [x["file"] for x in products["deltas"]] == ["snapshot/products/v00000005.delta.parquet"]
    _assert_exact(env)

    # The page and `show` read the merged view: the newest bodies, from the delta files.
    expected = mapped_source(env.source_url)["products"]
    page = SyncedProducts(str(env.state_dir), open_target(config_from_env(env.target_url, {})).feeds)
    try:
        for sku in (a, b, c, d):
            sent = {item.key: json.loads(item.body) for item in page.sent(sku) if item.feed == "products"}
            assert sent == {k: v for k, v in expected.items() if json.loads(k)["sku"] == sku}
            assert len(page.find_sku(sku)) == len(sent) == 2
        assert page.count() == len(expected)
    finally:
        page.close()
    shown = {json.dumps(x["key"], sort_keys=True, separators=(",", ":")): x["body"]
             for x in find_exported(str(env.state_dir), a) if x["feed"] == "products"}
    assert {json.loads(k)["sku"] for k in shown} == {a} and all(b["name"] == "A, twice renamed" for b in shown.values())
    assert replay(env.target_url) == mapped_source(env.source_url)

    # Nothing changed: nothing is sent, and no file is written.
    again = env.sync(capsys)
    assert (again["inserted"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert _manifest(env)["feeds"]["products"]["deltas"] == products["deltas"]
