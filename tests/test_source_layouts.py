"""The same shop in three layouts syncs to the same target: Magento Open Source's, Adobe Commerce's content
staging (row_id versions, derived from the real 2.4.8 fixture by tests/magento_layouts.py), and a table prefix.
And a scheduled update of Adobe Commerce reaches the target on time, though no changelog row tells of it.

Expected names and prices are read from the fixture by SQL; the target states compared are the file target's.
"""

from __future__ import annotations

import logging

import pytest

import shop_sql
from catalog_sync import cli
from magento_layouts import (
    PROMO_NAME,
    PROMO_PRICE,
    SCHEDULED_ENTITY_ID,
    SCHEDULED_SKU,
    UPDATE_END,
    UPDATE_START,
    load_commerce_fixture,
    load_prefixed_fixture,
)
from services import drop_mariadb_database, fresh_mariadb_database, load_magento_fixture
from sync_helpers import PINNED_NOW, SyncEnv, key_text, mapped_source, product_key

pytestmark = pytest.mark.mariadb

PREFIX = "mg_"


@pytest.fixture
def databases():
    created: list[str] = []

    def new(loader, *args) -> str:
        url = fresh_mariadb_database()
        created.append(url)
        loader(url, *args)
        return url

    yield new
    for url in created:
        drop_mariadb_database(url)


def _synced_state(url: str, path, capsys, *flags: str) -> dict:
    env = SyncEnv(url, path / "target", path / "state")
    summary = env.sync(capsys, *flags)
    assert summary["mode"] == "full" and summary["failed"] == 0
    return env.target_state()


def test_open_source_adobe_commerce_and_prefixed_layouts_sync_to_the_same_target_state(databases, tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)  # before the scheduled update: version 1 is in force
    plain = databases(load_magento_fixture)
    commerce = databases(load_commerce_fixture)
    shop_sql.register(commerce, shop_sql.COMMERCE)
    prefixed = databases(load_prefixed_fixture, PREFIX)

    expected = _synced_state(plain, tmp_path / "plain", capsys)
    # The fixture's 23 products in its one view; 22 prices, as the configurable has none of its own.
    assert len(expected["products"]) == 23 and len(expected["prices"]) == 22

    assert _synced_state(commerce, tmp_path / "commerce", capsys) == expected
    assert _synced_state(prefixed, tmp_path / "prefixed", capsys, "--table-prefix", PREFIX) == expected


def test_a_prefixed_shop_without_its_prefix_set_is_refused_naming_it(databases, tmp_path, capsys):
    env = SyncEnv(databases(load_prefixed_fixture, PREFIX), tmp_path / "target", tmp_path / "state")
    capsys.readouterr()

    assert cli.main(env.cli_args()) == cli.EXIT_CONFIG
    assert "carry the prefix 'mg_'" in capsys.readouterr().err


def test_a_set_edition_the_columns_contradict_is_refused(databases, tmp_path, capsys):
    env = SyncEnv(databases(load_magento_fixture), tmp_path / "target", tmp_path / "state")
    capsys.readouterr()

    assert cli.main(env.cli_args("--edition", "commerce")) == cli.EXIT_CONFIG
    assert ("has the catalog layout of Magento Open Source, but the edition is set to Adobe Commerce (content staging, "
            "row_id)") in capsys.readouterr().err


def _at(unix: int, minutes: int) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.fromtimestamp(unix, timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_scheduled_update_reaches_the_target_at_its_start_and_is_undone_at_its_end(databases, tmp_path, capsys,
                                                                                     monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="catalog_sync")
    url = databases(load_commerce_fixture)
    shop_sql.register(url, shop_sql.COMMERCE)
    env = SyncEnv(url, tmp_path / "target", tmp_path / "state")
    # Read by SQL: the product's name and price in each of its three versions (row_id order).
    versions = [tuple(r) for r in _rows(url, (
        "SELECT e.row_id, e.created_in, e.updated_in, n.value, p.value FROM catalog_product_entity e "
        "JOIN catalog_product_entity_varchar n ON n.row_id = e.row_id AND n.attribute_id = 73 AND n.store_id = 0 "
        "JOIN catalog_product_entity_decimal p ON p.row_id = e.row_id AND p.attribute_id = 77 AND p.store_id = 0 "
        f"WHERE e.entity_id = {SCHEDULED_ENTITY_ID} ORDER BY e.created_in"))]
    (_, _, start, original_name, original_price), (promo_row, _, end, promo_name, promo_price), (_, _, _, back_name, _) = versions
    assert (start, end, promo_name, f"{promo_price:.6f}") == (UPDATE_START, UPDATE_END, PROMO_NAME, PROMO_PRICE)
    assert back_name == original_name and promo_row > 23  # a new row_id, not an entity id
    products, prices = product_key(SCHEDULED_SKU, "pt-BR"), key_text({"sku": SCHEDULED_SKU, "priceBookId": "base"})

    def run_at(moment: str) -> dict:
        monkeypatch.setenv("CATALOG_SYNC_NOW", moment)
        env.sync(capsys)
        assert env.target_state() == mapped_source(url, moment)
        return {(line["feed"], key_text(line["key"])): line["body"] for line in env.sent}

    before = _at(UPDATE_START, -30)
    run_at(before)  # the first, full sync
    held = env.target_state()
    assert (held["products"][products]["name"], held["prices"][prices]["regular"]) == (original_name, float(original_price))

    sent = run_at(_at(UPDATE_START, 30))  # the first hourly run after the start: version 2, and nothing else
    assert set(sent) == {("products", products), ("prices", prices)}
    assert (sent[("products", products)]["name"], sent[("prices", prices)]["regular"]) == (PROMO_NAME, float(PROMO_PRICE))
    assert "change detection: 1 product(s) with a scheduled update (content staging) that started or ended" in caplog.text

    assert run_at(_at(UPDATE_START, 90)) == {}  # nothing started or ended since

    sent = run_at(_at(UPDATE_END, 30))  # the first run after the end: version 1 again
    assert set(sent) == {("products", products), ("prices", prices)}
    assert (sent[("products", products)]["name"], sent[("prices", prices)]["regular"]) == (original_name,
                                                                                         float(original_price))


def _rows(url: str, statement: str) -> list:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(statement))
    finally:
        engine.dispose()


def test_plan_checks_the_grants_under_the_prefix_and_names_the_prefixed_table(databases, tmp_path, capsys):
    import uuid

    import sqlalchemy as sa

    url = databases(load_prefixed_fixture, PREFIX)
    database, user = sa.engine.make_url(url).database, f"cs_ro_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw'")
        for table in sorted(set(sa.inspect(conn).get_table_names()) - {f"{PREFIX}catalog_product_entity_tier_price"}):
            conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'%%'")
    try:
        env = SyncEnv(f"mysql+pymysql://{user}:pw@127.0.0.1:3306/{database}?charset=utf8mb4", tmp_path / "t", tmp_path / "s")
        capsys.readouterr()
        assert cli.main(env.cli_args("--table-prefix", PREFIX)) == cli.EXIT_CONFIG
        assert "may not SELECT from mg_catalog_product_entity_tier_price: grant SELECT on each" in capsys.readouterr().err
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()
