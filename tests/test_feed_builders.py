"""The fast feed builder (DuckDB over Arrow) and the per-product reference builder agree byte for byte."""

from __future__ import annotations

import orjson
import pytest

import shop_sql
from catalog_sync.feed.content_hash import content_hash
from catalog_sync.feed.feed_builder import FeedBuilder
from catalog_sync.feed.feed_record import build_feed_rows, rows_to_arrow
from catalog_sync.magento import layout
from catalog_sync.magento.arrow_reader import ArrowQueries, read_chunk
from catalog_sync.magento.catalog_reader import MagentoCatalogReader, read_only_engine
from catalog_sync.run_clock import parse_instant

INSTANT = parse_instant("2026-12-01T02:30:00Z")  # 23:30 the day before in the fixture's America/Sao_Paulo


def _both(url: str, chunk_size: int) -> tuple[dict, dict]:
    engine = read_only_engine(url)  # the shop's layout: Open Source, or Adobe Commerce's versions in force
    layout.read_at(engine, INSTANT)
    reader = MagentoCatalogReader(engine)
    ctx = reader.load_context()
    builder, queries = FeedBuilder(ctx, INSTANT), ArrowQueries(engine)
    price_id = ctx.attributes_by_code["price"].attribute_id
    fast, reference = {}, {}
    for ids in reader.iter_all_id_chunks(chunk_size):
        for table, into in ((builder.build(read_chunk(queries, ids, price_id, ctx.stock_layout)), fast),
                            (rows_to_arrow(list(build_feed_rows(reader.load_chunk(ids, ctx.stock_layout), ctx, INSTANT))), reference)):
            for row in table.to_pylist():
                into[(row["sku"], row["store_view_code"])] = (row["payload"], row["content_hash"], row["quarantine_reason"],
                                                              row["judged_on"])
    builder.close()
    engine.dispose()
    return fast, reference


def _assert_same(fast: dict, reference: dict) -> None:
    assert fast.keys() == reference.keys()
    for key in fast:
        assert fast[key] == reference[key], key
        payload, digest, _, _ = fast[key]
        assert digest == content_hash(orjson.loads(payload)), key  # the hash is sha1 of the canonical JSON


@pytest.mark.dates
def test_builders_agree_on_the_demo_catalog(sync_env, demo_catalog_template):
    _, generated = demo_catalog_template
    fast, reference = _both(sync_env.source_url, chunk_size=70)  # odd chunking: configurables straddle chunks

    assert len(fast) == generated.feed_records
    _assert_same(fast, reference)
    assert {judged_on for *_, judged_on in fast.values()} == {"2026-12-01"}  # the demo's shop runs on UTC


@pytest.mark.dates
@pytest.mark.mariadb
def test_builders_agree_on_the_real_magento_fixture(magento_fixture_url):
    fast, reference = _both(magento_fixture_url, chunk_size=10)

    assert len(fast) == 23
    _assert_same(fast, reference)
    assert {judged_on for *_, judged_on in fast.values()} == {"2026-11-30"}  # the store's local date, not UTC's


# Two bundles: 13 with two options and store titles, 14 offering one SKU (16) in two of its options; links;
# a store label for the configurable's color option: every composite part the two builders must read alike.
COMPOSITES = [
    "UPDATE catalog_product_entity SET type_id = 'bundle' WHERE entity_id IN (13, 14)",
    "INSERT INTO catalog_product_bundle_option (option_id, parent_id, required, position, type) VALUES "
    "(1, 13, 1, 2, 'radio'), (2, 13, 0, 1, 'checkbox'), (3, 14, 1, 0, 'select'), (4, 14, 0, 1, 'select')",
    "INSERT INTO catalog_product_bundle_option_value (option_id, store_id, title, parent_product_id) VALUES "
    "(1, 0, 'Sapatos', 13), (1, 1, 'Calçados', 13), (2, 0, 'Extras', 13), (2, 1, '', 13)",
    "INSERT INTO catalog_product_bundle_selection (option_id, parent_product_id, product_id, position, is_default, "
    "selection_qty, selection_can_change_qty) VALUES (1, 13, 16, 1, 1, 1, 0), (1, 13, 17, 0, 0, 2.5, 1), "
    "(2, 13, 18, 0, 0, NULL, 0), (3, 14, 16, 0, 1, 1, 0), (3, 14, 19, 1, 0, 1, 0), (4, 14, 16, 0, 0, 1, 0)",
    "INSERT INTO catalog_product_link (product_id, linked_product_id, link_type_id) VALUES (2, 11, 1), (2, 3, 4), (2, 5, 5)",
    "INSERT INTO catalog_product_super_attribute_label (product_super_attribute_id, store_id, use_default, value) "
    "VALUES (1, 1, 0, 'Cor')",
]


@pytest.mark.mariadb
def test_builders_agree_on_bundles_links_and_store_labels(magento_fixture_url):
    shop_sql.run(magento_fixture_url, *COMPOSITES)

    fast, reference = _both(magento_fixture_url, chunk_size=7)  # bundles and their products in other chunks

    _assert_same(fast, reference)
    bundle = orjson.loads(fast[("Cinto de Couro Masculino", "default")][0])
    assert [(o["option_id"], o["title"], [c["sku"] for c in o["selections"]]) for o in bundle["bundle_options"]] == [
        (2, "Extras", ["Sandália Rasteira Feminina"]),  # position 1; its store title is empty: the admin one
        (1, "Calçados", ["Bota Cano Curto Feminina", "Tênis Casual Branco"])]  # position 2, selections by position
    assert fast[("Cinto de Couro Masculino", "default")][2] is None
    assert fast[("Pulseira de Couro Trançado", "default")][2] == (
        "a SKU in two options of this bundle, which the ingestion API refuses: Tênis Casual Branco")
    assert orjson.loads(fast[("Tênis Casual Branco", "default")][0])["bundle_skus"] == [
        "Cinto de Couro Masculino", "Pulseira de Couro Trançado"]
