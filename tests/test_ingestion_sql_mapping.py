"""The DuckDB FeedProduct mapping (sql_mapping) is byte-identical to the Python reference (mapping.py).

For every record the SQL maps, its JSON text must equal orjson.dumps(mapping.feed_product(record)),
and its price fields must give mapping.prices the same input. Records it leaves to Python (None)
are fine for correctness, but the ordinary shapes must not be left: that is what makes it fast.
"""

from __future__ import annotations

import copy
from datetime import date

import orjson
import pytest
from sync_helpers import expected_feed
from test_ingestion_mapping import configurable_child

from catalog_sync.duckdb_session import fetch_all
from catalog_sync.ingestion import mapping
from catalog_sync.ingestion.sql_mapping import PRICE_FIELDS, ChunkMapper

TODAY = date(2026, 11, 25)


def _check(records: list[dict], *, must_map: bool = True) -> list[str | None]:
    payloads = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records]
    mapper = ChunkMapper()
    try:
        products, prices = mapper.map(payloads)
    finally:
        mapper.close()
    for record, product, price in zip(records, products, prices):
        if product is None:
            assert not must_map, f"left to Python: {record}"
            continue
        assert product == orjson.dumps(mapping.feed_product(record)).decode(), record
        fields = orjson.loads(price)
        assert list(fields) == list(PRICE_FIELDS)
        for name in PRICE_FIELDS:
            assert fields[name] == record.get(name) and type(fields[name]) is type(record.get(name)), name
        assert mapping.prices(fields, "book", TODAY) == mapping.prices(record, "book", TODAY)
    return products


def _variant(**changes) -> dict:
    record = configurable_child()
    record.update(changes)
    return record


def test_the_demo_catalog_maps_byte_identically(demo_catalog_template) -> None:
    template, _ = demo_catalog_template
    records = list(expected_feed(f"sqlite:///{template}").values())
    assert len(records) > 100
    _check(records)


def test_the_extracts_own_json_text_maps_byte_identically(tmp_path, sync_env) -> None:
    """The payload as the extract writes it (DuckDB's JSON, not orjson's) maps the same."""
    from catalog_sync.cli import main

    assert main(["sync", "--source-url", sync_env.source_url, "--target-url", sync_env.target_url,
                 "--state-url", str(sync_env.state_dir)]) == 0
    snapshot = sorted(sync_env.state_dir.glob("snapshot/v*.parquet"))
    snapshot = [p for p in snapshot if not p.name.endswith(".pending.parquet")][-1]
    payloads = [row[0] for row in fetch_all("SELECT payload FROM read_parquet(?)", [str(snapshot)])]
    assert len(payloads) > 100
    mapper = ChunkMapper()
    try:
        products, _ = mapper.map(payloads)
    finally:
        mapper.close()
    for payload, product in zip(payloads, products):
        assert product == orjson.dumps(mapping.feed_product(orjson.loads(payload))).decode()


HARD = [
    configurable_child(),
    _variant(name="Ção — naïve café ☕ 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", description="Emoji 👍🏽 and \"quotes\" \\ back\\slash / slash\t\n\r\b\f",
             meta_title="ÆØÅ ß ﬁ", url_key="cao-naive"),
    _variant(url_key="", name="Fallback Ünïcode Slug"),  # no url_key: the slug comes from the name
    _variant(url_key=None, name="***", sku="SKU/With Spaces"),  # nor from the name: from the sku
    _variant(description="", short_description="", meta_title="", meta_description="", meta_keywords=""),
    _variant(description=None, short_description=None, meta_title=None, meta_description=None, meta_keywords=None,
             attributes=[], images=[], parent_skus=[], category_paths=[], visibility=None, status=None),
    {k: v for k, v in configurable_child().items()
     if k not in ("description", "short_description", "meta_title", "meta_description", "meta_keywords",
                  "attributes", "images", "parent_skus", "category_paths", "visibility", "status", "url_key")},
    _variant(meta_keywords=" \u00a0a\u2003, b ,\n\n,c\u3000\u205f,\u00a0, multi word  "),
    _variant(attributes=[{"code": "activity", "label": "Activity", "values": ["Gym", "Hiking", "Yoga"]},
                         {"code": "empty", "label": "E", "values": []},
                         {"code": "nolabel", "values": ["x"]},
                         {"code": "missing_values", "label": "M"},
                         {"code": "null_values", "label": "N", "values": None},
                         {"code": "emoji", "label": "E", "values": ["😀", ""]}]),
    _variant(images=[
        {"url": "https://x/b.jpg", "label": "", "roles": ["image", "swatch_image", "thumbnail", "small_image"], "position": 1},
        {"url": "https://x/a.jpg", "label": "Ä", "roles": ["hover", "image", "zoom"], "position": 1},
        {"url": "https://x/c.jpg", "roles": [], "position": None},
        {"url": "https://x/d.jpg", "label": None, "position": 0},
        {"url": "https://x/e.jpg", "label": "neg", "roles": None, "position": -3},
        {"url": "https://x/a.jpg", "label": "duplicate url", "roles": ["thumbnail"], "position": 1},
        {"url": "https://x/é.jpg", "label": "after z in code points", "roles": ["custom"], "position": 1},
        {"url": "https://x/z.jpg", "label": "big position", "roles": ["image"], "position": 12345678901},
    ]),
    _variant(parent_skus=["P1", "P2 ☃"], type="simple"),
    _variant(type="configurable", parent_skus=[], variant_skus=["V1", "V2"]),
    _variant(category_paths=["Gear/Water Bottles", "gear/water bottles", "Promoções/Été", "", "Ω", "a//b", "Gear/Water Bottles"]),
    *[_variant(visibility=v, status=s) for v in (0, 1, 2, 3, 4, 5) for s in (0, 1, 2)],
    _variant(locale="en_US_POSIX", sku="x" * 64),
    # special prices: active, inactive (dates), equal to the price, above it, zero, open-ended, no price
    _variant(special_price=39.9, special_price_from="2026-11-01", special_price_to="2026-11-30"),
    _variant(special_price=39.9, special_price_from="2026-11-26", special_price_to=None),
    _variant(special_price=39.9, special_price_from=None, special_price_to="2026-11-24"),
    _variant(special_price=52.0), _variant(special_price=60.0), _variant(special_price=0.0),
    _variant(price=None, special_price=None), _variant(price=10, special_price=7),
    _variant(price=1e16, special_price=1e-7), _variant(price=0.1 + 0.2, special_price=0.1),
]


def test_hard_values_map_byte_identically() -> None:
    _check(copy.deepcopy(HARD))


# Shapes the SQL leaves to Python (which gives the same result, or the same error).
ODD = [
    _variant(description="control \x0b and \x1f characters: DuckDB escapes them in upper case"),
    _variant(status=True), _variant(status=1.0), _variant(visibility="4"), _variant(visibility=4.0),
    _variant(name=None), _variant(sku=123), _variant(url_key=7), _variant(description=5),
    _variant(meta_keywords=["a", "b"]), _variant(attributes="abc"), _variant(attributes=[{"code": "c", "values": [1, 2.5, True]}]),
    _variant(attributes=[{"values": ["x"]}]), _variant(attributes=["not an object"]),
    _variant(images=[{"url": None}]), _variant(images=[{"label": "no url"}]), _variant(images=[{"url": "u", "position": 1.5}]),
    _variant(images=[{"url": "u", "roles": "image"}]), _variant(images=[{"url": "u", "label": 3}]),
    _variant(parent_skus=[1]), _variant(parent_skus="P1"), _variant(category_paths=[None]),
]


@pytest.mark.parametrize("record", ODD, ids=range(len(ODD)))
def test_odd_shapes_are_left_to_the_python_mapping(record: dict) -> None:
    assert _check([record], must_map=False) == [None]


def test_missing_required_fields_are_left_to_python() -> None:
    records = [{k: v for k, v in configurable_child().items() if k != key} for key in ("sku", "locale", "name")]
    assert _check(records, must_map=False) == [None, None, None]
