"""The fast feed builder (DuckDB over Arrow) and the per-product reference builder agree byte for byte."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from catalog_sync.feed.content_hash import content_hash
from catalog_sync.feed.feed_builder import FeedBuilder
from catalog_sync.feed.feed_record import build_feed_rows, rows_to_arrow
from catalog_sync.magento.arrow_reader import ArrowQueries, read_chunk
from catalog_sync.magento.catalog_reader import MagentoCatalogReader
from catalog_sync.run_clock import parse_instant

INSTANT = parse_instant("2026-12-01T02:30:00Z")  # 23:30 the day before in the fixture's America/Sao_Paulo


def _both(url: str, chunk_size: int) -> tuple[dict, dict]:
    engine = sa.create_engine(url)
    reader = MagentoCatalogReader(engine)
    ctx = reader.load_context()
    builder, queries = FeedBuilder(ctx, INSTANT), ArrowQueries(engine)
    price_id = ctx.attributes_by_code["price"].attribute_id
    fast, reference = {}, {}
    for ids in reader.iter_all_id_chunks(chunk_size):
        for table, into in ((builder.build(read_chunk(queries, ids, price_id)), fast),
                            (rows_to_arrow(list(build_feed_rows(reader.load_chunk(ids), ctx, INSTANT))), reference)):
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
