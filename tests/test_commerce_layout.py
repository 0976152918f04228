"""The Adobe Commerce layout converter (catalog_sync.demo.commerce_layout) and the fixture loaders of
tests/magento_layouts.py: on the real Magento 2.4.8 fixture in MariaDB, and on the demo catalog in SQLite."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from catalog_sync.demo.commerce_layout import MAX_VERSION, derive_commerce_layout
from catalog_sync.demo.generator import generate_demo_catalog
from magento_layouts import (
    ORIGINAL_NAME,
    ORIGINAL_PRICE,
    PROMO_NAME,
    PROMO_PRICE,
    SCHEDULED_ENTITY_ID,
    SCHEDULED_SKU,
    UPDATE_END,
    UPDATE_START,
    load_commerce_fixture,
    load_prefixed_fixture,
)
from services import FIXTURE_SQL, drop_mariadb_database, fresh_mariadb_database, load_magento_fixture

VALUE_TABLES = [f"catalog_product_entity_{b}" for b in ("datetime", "decimal", "int", "text", "varchar")]
CATEGORY_VALUE_TABLES = [f"catalog_category_entity_{b}" for b in ("datetime", "decimal", "int", "text", "varchar")]
ROW_TABLES = [*VALUE_TABLES, "catalog_product_entity_media_gallery_value",
              "catalog_product_entity_media_gallery_value_to_entity", "catalog_product_entity_tier_price"]
CHANGELOGS = ["catalogsearch_fulltext_cl", "catalog_product_price_cl", "catalog_product_attribute_cl",
              "cataloginventory_stock_cl", "catalog_product_category_cl"]


def _columns(conn, table):
    return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def _count(conn, table):
    return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def _fixture_tables() -> set[str]:
    return set(re.findall(r"^CREATE TABLE `(\w+)`", FIXTURE_SQL.read_text(encoding="utf-8"), re.M))


def _fk_targets(conn, table):
    return {(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in sa.inspect(conn).get_foreign_keys(table)}


@pytest.fixture
def second_mariadb_url():
    url = fresh_mariadb_database()
    yield url
    drop_mariadb_database(url)


# --------------------------------------------------------------------------- MariaDB: the real fixture


@pytest.mark.mariadb
def test_converted_fixture_has_the_adobe_commerce_layout_and_keeps_every_row(mariadb_url):
    load_magento_fixture(mariadb_url)
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        before = {t: _count(conn, t) for t in tables}
        names_before = conn.execute(sa.text("SELECT row_id_or_entity, value FROM (SELECT entity_id AS row_id_or_entity, "
                                            "value FROM catalog_product_entity_varchar) v ORDER BY 1, 2")).all()
    derive_commerce_layout(engine)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert {t: _count(conn, t) for t in tables} == before  # no row lost, no changelog row written
        assert set(inspector.get_table_names()) == set(tables) | {"sequence_product", "sequence_catalog_category",
                                                                  "staging_update"}

        for entity, sequence in (("catalog_product_entity", "sequence_product"),
                                 ("catalog_category_entity", "sequence_catalog_category")):
            columns = {c["name"]: c for c in inspector.get_columns(entity)}
            assert inspector.get_pk_constraint(entity)["constrained_columns"] == ["row_id"]
            assert columns["row_id"]["autoincrement"] is True
            for column in ("created_in", "updated_in"):
                assert isinstance(columns[column]["type"], sa.BigInteger) and columns[column]["type"].unsigned
            assert columns["created_in"]["default"] == "1" and columns["updated_in"]["default"] == str(MAX_VERSION)
            assert {tuple(i["column_names"]) for i in inspector.get_indexes(entity)} >= {
                ("entity_id", "created_in", "updated_in"), ("created_in",), ("updated_in",)}
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {entity} WHERE row_id <> entity_id OR created_in <> 1 "
                                        f"OR updated_in <> {MAX_VERSION}")).scalar_one() == 0
            assert conn.execute(sa.text(f"SELECT sequence_value FROM {sequence} ORDER BY 1")).scalars().all() == \
                conn.execute(sa.text(f"SELECT entity_id FROM {entity} ORDER BY 1")).scalars().all()
            assert ((("entity_id",), sequence, ("sequence_value",))) in _fk_targets(conn, entity)
        sku_index = next(i for i in inspector.get_indexes("catalog_product_entity") if i["column_names"] == ["sku"])
        assert not sku_index["unique"]

        for table in [*ROW_TABLES, *CATEGORY_VALUE_TABLES]:
            columns = _columns(conn, table)
            assert "row_id" in columns and "entity_id" not in columns, table
        for table in VALUE_TABLES + CATEGORY_VALUE_TABLES:
            uniques = [i["column_names"] for i in inspector.get_indexes(table) if i["unique"]]
            assert ["row_id", "attribute_id", "store_id"] in uniques, table
            assert any(t == (("row_id",), table.rsplit("_", 1)[0], ("row_id",)) for t in _fk_targets(conn, table)), table
        assert inspector.get_pk_constraint("catalog_product_entity_media_gallery_value_to_entity")[
            "constrained_columns"] == ["value_id", "row_id"]
        # Columns that keep their name: a parent's row_id, or an entity id (foreign keys to the sequence).
        assert (("product_id",), "catalog_product_entity", ("row_id",)) in _fk_targets(conn, "catalog_product_link")
        assert (("linked_product_id",), "sequence_product", ("sequence_value",)) in _fk_targets(conn, "catalog_product_link")
        assert (("parent_id",), "catalog_product_entity", ("row_id",)) in _fk_targets(conn, "catalog_product_super_link")
        assert (("product_id",), "sequence_product", ("sequence_value",)) in _fk_targets(conn, "catalog_product_super_link")
        assert (("product_id",), "sequence_product", ("sequence_value",)) in _fk_targets(conn, "catalog_category_product")
        assert (("category_id",), "sequence_catalog_category", ("sequence_value",)) in _fk_targets(
            conn, "catalog_category_product")
        assert (("child_id",), "sequence_product", ("sequence_value",)) in _fk_targets(conn, "catalog_product_relation")
        assert (("parent_id",), "catalog_product_entity", ("row_id",)) in _fk_targets(conn, "catalog_product_relation")

        names_after = conn.execute(sa.text("SELECT row_id, value FROM catalog_product_entity_varchar ORDER BY 1, 2")).all()
        assert names_after == names_before
        assert _columns(conn, "staging_update") == ["id", "start_time", "name", "description", "rollback_id",
                                                    "is_campaign", "is_rollback", "moved_to"]
        charsets = conn.execute(sa.text(
            "SELECT DISTINCT CCSA.CHARACTER_SET_NAME FROM information_schema.TABLES T JOIN "
            "information_schema.COLLATION_CHARACTER_SET_APPLICABILITY CCSA ON CCSA.COLLATION_NAME = T.TABLE_COLLATION "
            "WHERE T.TABLE_SCHEMA = DATABASE()")).scalars().all()
        assert charsets == ["utf8mb4"]
        assert conn.execute(sa.text("SELECT value FROM catalog_product_entity_varchar WHERE row_id = 1 AND attribute_id = 73 "
                                    "AND store_id = 0")).scalar_one() == "Camiseta Básica Algodão"
    with pytest.raises(ValueError, match="already"):
        derive_commerce_layout(engine)
    engine.dispose()


def _changelog_counts(conn):
    return {cl: _count(conn, cl) for cl in CHANGELOGS}


def _new_changelog_ids(conn, before):
    return {cl: conn.execute(sa.text(f"SELECT entity_id FROM {cl} ORDER BY version_id")).scalars().all()[before[cl]:]
            for cl in CHANGELOGS}


@pytest.mark.mariadb
def test_commerce_fixture_triggers_write_entity_ids_found_through_the_row(mariadb_url):
    load_commerce_fixture(mariadb_url)
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        promo_row = conn.execute(sa.text("SELECT row_id FROM catalog_product_entity WHERE entity_id = :e AND created_in = :s"),
                                 {"e": SCHEDULED_ENTITY_ID, "s": UPDATE_START}).scalar_one()
        assert promo_row != SCHEDULED_ENTITY_ID
        statement = conn.execute(sa.text(
            "SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
            "AND TRIGGER_NAME = 'trg_catalog_product_entity_decimal_after_update'")).scalar_one()
        assert statement.startswith("BEGIN\nSET @entity_id = (SELECT `entity_id` FROM `catalog_product_entity` "
                                    "WHERE `row_id` = NEW.`row_id`);\nIF (")
        before = _changelog_counts(conn)
        conn.execute(sa.text("UPDATE catalog_product_entity_decimal SET value = value + 1 WHERE row_id = :r AND attribute_id = 77"),
                     {"r": promo_row})
        new = _new_changelog_ids(conn, before)
        assert new["catalog_product_price_cl"] == [SCHEDULED_ENTITY_ID]
        assert new["catalog_product_attribute_cl"] == [SCHEDULED_ENTITY_ID]
        assert new["catalogsearch_fulltext_cl"] == [SCHEDULED_ENTITY_ID]

        before = _changelog_counts(conn)
        conn.execute(sa.text("UPDATE catalog_product_entity_varchar SET value = 'x' WHERE row_id = 1 AND attribute_id = 73 "
                             "AND store_id = 0"))
        conn.execute(sa.text("UPDATE catalog_product_entity_int SET value = value WHERE row_id = 2"))  # no change: no row
        conn.execute(sa.text("UPDATE catalog_product_entity SET sku = CONCAT(sku, '-2'), updated_at = updated_at "
                             "WHERE row_id = 3"))
        conn.execute(sa.text("UPDATE cataloginventory_stock_item SET qty = qty + 1 WHERE product_id = 4"))  # entity id trigger
        new = _new_changelog_ids(conn, before)
        assert new["catalogsearch_fulltext_cl"] == [1, 3]
        assert new["catalog_product_attribute_cl"] == [1]
        assert new["cataloginventory_stock_cl"] == [4]
        # Categories: their value tables look the category up the same way.
        before = _count(conn, "catalog_category_product_cl")
        conn.execute(sa.text("UPDATE catalog_category_entity_int SET value = 1 - value WHERE row_id = 3 AND attribute_id = "
                             "(SELECT attribute_id FROM eav_attribute WHERE attribute_code = 'is_active' AND entity_type_id = 3)"))
        assert conn.execute(sa.text("SELECT entity_id FROM catalog_category_product_cl ORDER BY version_id")
                            ).scalars().all()[before:] == [3]
    engine.dispose()


def _version_rows(conn, row_id):
    rows = {}
    for table in VALUE_TABLES:
        rows[table] = set(conn.execute(sa.text(f"SELECT attribute_id, store_id, value FROM {table} WHERE row_id = :r"),
                                       {"r": row_id}).all())
    rows["gallery"] = set(conn.execute(sa.text(
        "SELECT value_id, store_id, label, position, disabled FROM catalog_product_entity_media_gallery_value "
        "WHERE row_id = :r"), {"r": row_id}).all())
    rows["to_entity"] = set(conn.execute(sa.text(
        "SELECT value_id FROM catalog_product_entity_media_gallery_value_to_entity WHERE row_id = :r"), {"r": row_id}).all())
    return rows


@pytest.mark.mariadb
def test_commerce_fixture_holds_a_temporary_scheduled_update_of_one_product(mariadb_url, second_mariadb_url):
    load_magento_fixture(mariadb_url)
    plain = sa.create_engine(mariadb_url)
    with plain.connect() as conn:
        sku, = conn.execute(sa.text("SELECT sku FROM catalog_product_entity WHERE entity_id = :e"),
                            {"e": SCHEDULED_ENTITY_ID}).one()
        name = conn.execute(sa.text("SELECT value FROM catalog_product_entity_varchar WHERE entity_id = :e AND store_id = 0 "
                                    "AND attribute_id = (SELECT attribute_id FROM eav_attribute WHERE attribute_code = 'name' "
                                    "AND entity_type_id = 4)"), {"e": SCHEDULED_ENTITY_ID}).scalar_one()
        price = conn.execute(sa.text("SELECT value FROM catalog_product_entity_decimal WHERE entity_id = :e AND store_id = 0 "
                                     "AND attribute_id = (SELECT attribute_id FROM eav_attribute WHERE attribute_code = 'price' "
                                     "AND entity_type_id = 4)"), {"e": SCHEDULED_ENTITY_ID}).scalar_one()
        type_id = conn.execute(sa.text("SELECT type_id FROM catalog_product_entity WHERE entity_id = :e"),
                               {"e": SCHEDULED_ENTITY_ID}).scalar_one()
        plain_changelogs = _changelog_counts(conn)
        max_entity = conn.execute(sa.text("SELECT MAX(entity_id) FROM catalog_product_entity")).scalar_one()
    plain.dispose()
    assert (sku, name, str(price), type_id) == (SCHEDULED_SKU, ORIGINAL_NAME, ORIGINAL_PRICE, "simple")
    assert PROMO_NAME != ORIGINAL_NAME and PROMO_PRICE != ORIGINAL_PRICE

    load_commerce_fixture(second_mariadb_url)
    engine = sa.create_engine(second_mariadb_url)
    with engine.connect() as conn:
        assert _changelog_counts(conn) == plain_changelogs  # the scheduled update wrote no changelog row
        versions = conn.execute(sa.text("SELECT row_id, created_in, updated_in, sku FROM catalog_product_entity "
                                        "WHERE entity_id = :e ORDER BY created_in"), {"e": SCHEDULED_ENTITY_ID}).all()
        assert [(v.created_in, v.updated_in) for v in versions] == [
            (1, UPDATE_START), (UPDATE_START, UPDATE_END), (UPDATE_END, MAX_VERSION)]
        assert [v.row_id for v in versions] == [SCHEDULED_ENTITY_ID, max_entity + 1, max_entity + 2]
        assert {v.sku for v in versions} == {SCHEDULED_SKU}
        assert _count(conn, "sequence_product") == max_entity
        updates = conn.execute(sa.text("SELECT id, start_time, rollback_id, is_rollback FROM staging_update ORDER BY id")).all()
        assert [(u.id, u.start_time.isoformat(), u.rollback_id, u.is_rollback) for u in updates] == [
            (UPDATE_START, "2026-02-12T12:00:00", UPDATE_END, None), (UPDATE_END, "2026-02-19T12:00:00", None, 1)]

        original, promo, restored = (_version_rows(conn, v.row_id) for v in versions)
        assert original == restored
        assert (73, 0, PROMO_NAME) in promo["catalog_product_entity_varchar"]
        assert (77, 0, Decimal(PROMO_PRICE)) in promo["catalog_product_entity_decimal"]
        changed = {(73, 0), (77, 0)}
        for table in VALUE_TABLES:
            assert {r for r in promo[table] if r[:2] not in changed} == {r for r in original[table] if r[:2] not in changed}
        assert promo["gallery"] == original["gallery"] and promo["to_entity"] == original["to_entity"] != set()
        # Every other product is untouched: one version, row_id = entity_id.
        assert conn.execute(sa.text("SELECT COUNT(*) FROM catalog_product_entity WHERE entity_id <> :e AND "
                                    "(row_id <> entity_id OR created_in <> 1 OR updated_in <> :m)"),
                            {"e": SCHEDULED_ENTITY_ID, "m": MAX_VERSION}).scalar_one() == 0
    engine.dispose()


@pytest.mark.mariadb
def test_prefixed_fixture_has_every_table_under_the_prefix(mariadb_url):
    prefix = "mg_"
    load_prefixed_fixture(mariadb_url, prefix)
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert tables == {prefix + t for t in _fixture_tables()}
        assert _count(conn, f"{prefix}catalog_product_entity") == 23
        triggers = conn.execute(sa.text("SELECT EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                                        "WHERE TRIGGER_SCHEMA = DATABASE()")).all()
        assert len(triggers) == 45
        for table, body in triggers:
            assert table.startswith(prefix)
            written = re.findall(r"INTO `(\w+)`", body)
            assert written and all(t.startswith(prefix) and t in tables for t in written)
        referred = {fk["referred_table"] for t in tables for fk in sa.inspect(conn).get_foreign_keys(t)}
        assert referred and all(t.startswith(prefix) for t in referred)  # also tables the dump leaves out
        before = _count(conn, f"{prefix}catalog_product_price_cl")
        conn.execute(sa.text(f"UPDATE {prefix}catalog_product_entity_decimal SET value = value + 1 WHERE entity_id = 11"))
        assert _count(conn, f"{prefix}catalog_product_price_cl") > before
        conn.rollback()
    engine.dispose()


# --------------------------------------------------------------------------- SQLite: the demo catalog


def _table_rows(conn, table, rename=None):
    columns = _columns(conn, table)
    rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
    names = [(rename or {}).get(c, c) for c in columns]
    return sorted((tuple(sorted(zip(names, row, strict=True))) for row in rows), key=repr)


def test_commerce_demo_catalog_on_sqlite_keeps_every_row_and_gets_commerce_triggers(tmp_path):
    os_url, commerce_url = f"sqlite:///{tmp_path / 'os.db'}", f"sqlite:///{tmp_path / 'commerce.db'}"
    os_summary = generate_demo_catalog(os_url, products=50, store_views=3, seed=5)
    summary = generate_demo_catalog(commerce_url, products=50, store_views=3, seed=5, edition="commerce")
    assert summary == os_summary
    os_engine, engine = sa.create_engine(os_url), sa.create_engine(commerce_url)
    with os_engine.connect() as os_conn, engine.connect() as conn:
        os_tables = set(sa.inspect(os_conn).get_table_names())
        assert set(sa.inspect(conn).get_table_names()) == os_tables | {"sequence_product", "sequence_catalog_category",
                                                                        "staging_update"}
        for table in sorted(os_tables):
            columns = _columns(conn, table)
            if "row_id" in columns and "entity_id" not in columns:
                assert _table_rows(conn, table) == _table_rows(os_conn, table, {"entity_id": "row_id"}), table
            elif "row_id" in columns:
                entity = [tuple(r) for r in conn.execute(sa.text(
                    f"SELECT row_id, entity_id, created_in, updated_in FROM {table}"))]
                assert entity and all(r[0] == r[1] and r[2:] == (1, MAX_VERSION) for r in entity)
                sequence = "sequence_product" if table == "catalog_product_entity" else "sequence_catalog_category"
                assert _count(conn, sequence) == len(entity)
                stripped = [tuple(x for x in row if x[0] not in ("row_id", "created_in", "updated_in"))
                            for row in _table_rows(conn, table)]
                assert sorted(stripped, key=repr) == _table_rows(os_conn, table), table
            else:
                assert _table_rows(conn, table) == _table_rows(os_conn, table), table
        assert _count(conn, "catalogsearch_fulltext_cl") == 0
        inspector = sa.inspect(conn)
        assert inspector.get_pk_constraint("catalog_product_entity")["constrained_columns"] == ["row_id"]
        assert [u["column_names"] for u in inspector.get_unique_constraints("catalog_product_entity_varchar")] == [
            ["row_id", "attribute_id", "store_id"]]
        assert {tuple(i["column_names"]) for i in inspector.get_indexes("catalog_product_entity")} >= {
            ("entity_id", "created_in", "updated_in"), ("created_in",), ("updated_in",), ("sku",)}
    os_engine.dispose()

    with engine.begin() as conn:
        # A second version of product 12 (row 51): its value rows' changes go to the changelogs as entity 12.
        conn.execute(sa.text("UPDATE catalog_product_entity SET updated_in = 100 WHERE row_id = 12"))
        conn.execute(sa.text("INSERT INTO catalog_product_entity (row_id, entity_id, attribute_set_id, type_id, sku, has_options, "
                             "required_options, created_at, updated_at, created_in, updated_in) SELECT 51, entity_id, "
                             "attribute_set_id, type_id, sku, has_options, required_options, created_at, updated_at, 100, "
                             f"{MAX_VERSION} FROM catalog_product_entity WHERE row_id = 12"))
        conn.execute(sa.text("DELETE FROM catalogsearch_fulltext_cl"))
        conn.execute(sa.text("DELETE FROM catalog_product_price_cl"))
        conn.execute(sa.text("INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, row_id, value) "
                             "VALUES (77, 0, 51, 9.5)"))
        conn.execute(sa.text("UPDATE catalog_product_entity_decimal SET value = 10.5 WHERE row_id = 51"))
        assert conn.execute(sa.text("SELECT entity_id FROM catalog_product_price_cl")).scalars().all() == [12, 12]
        conn.execute(sa.text("UPDATE catalog_product_entity_varchar SET value = value WHERE row_id = 12"))  # unchanged
        conn.execute(sa.text("UPDATE catalog_product_entity_tier_price SET value = value + 1 WHERE row_id = 7"))
        ids = conn.execute(sa.text("SELECT entity_id FROM catalog_product_price_cl ORDER BY version_id")).scalars().all()
        assert ids[:2] == [12, 12] and len(ids) > 2 and set(ids[2:]) == {7}
    with pytest.raises(ValueError, match="already"):
        derive_commerce_layout(engine)
    engine.dispose()


def test_generate_demo_catalog_rejects_an_unknown_edition(tmp_path):
    with pytest.raises(ValueError, match="edition"):
        generate_demo_catalog(f"sqlite:///{tmp_path / 'x.db'}", products=5, edition="enterprise")
