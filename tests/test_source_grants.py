"""The source database user's grants: the README lists every table the sync reads, and plan refuses to run,
naming them, when the user may not read some (MySQL hides such a table, so it would pass for an absent one)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog_sync import cli
from catalog_sync.magento import schema
from services import load_magento_fixture
from sync_helpers import SyncEnv

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_grants_every_table_the_sync_reads():
    text = README.read_text()
    section = text[text.index("**2. Database grants.**"):text.index("Sessions are also set `READ ONLY`.")]
    listed = set(re.findall(r"`([a-z_0-9<>]+)`", section)) - {"inventory_stock_<id>", "updated_at"}
    assert listed == set(schema.read_tables())


@pytest.fixture
def reader_user(magento_fixture_url):
    """A MariaDB user of the fixture database with SELECT on every table it has but two."""
    database = sa.engine.make_url(magento_fixture_url).database
    user = f"cs_ro_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(magento_fixture_url)
    with admin.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw'")
        for table in sorted(present - {"catalog_product_entity_tier_price", "catalogsearch_fulltext_cl"}):
            conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'%%'")
    yield user, f"mysql+pymysql://{user}:pw@127.0.0.1:3306/{database}?charset=utf8mb4", admin, database
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
    admin.dispose()


@pytest.mark.mariadb
def test_a_core_table_the_user_may_not_read_stops_the_run_and_is_named(reader_user, tmp_path, capsys, caplog):
    user, url, admin, database = reader_user
    env = SyncEnv(url, tmp_path / "target", tmp_path / "state")
    capsys.readouterr()

    assert cli.main(env.cli_args()) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    # The tier prices are Magento_Catalog's: every shop has them, so "denied" means no grant.
    assert (f"the database user of mysql+pymysql://{user}:***@127.0.0.1:3306/{database}?charset=utf8mb4 may not SELECT "
            "from catalog_product_entity_tier_price: grant SELECT on each") in err

    with admin.begin() as conn:
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.`catalog_product_entity_tier_price` TO '{user}'@'%%'")
    caplog.clear()
    assert env.sync(capsys)["mode"] == "full"
    # A changelog (optional: a shop may have none) without the grant cannot be told from an absent one, nor can
    # the tables the fixture does not have (the user cannot be granted those): the run goes on, and says so.
    warned = [r.getMessage() for r in caplog.records if "the database user may not read" in r.getMessage()]
    assert warned == ["source: the database user may not read catalogrule_product_price, catalogsearch_fulltext_cl, "
                      "customer_group, downloadable_link, downloadable_sample, inventory_cl, inventory_source, "
                      "inventory_source_item, inventory_source_stock_link, inventory_stock_sales_channel, "
                      "magento_giftcard_amount: MySQL answers so for a table the shop does not have too, so the sync "
                      "reads the shop as if it had none of them; grant SELECT on those it has (README, 'Database grants')"]


@pytest.mark.mariadb
def test_a_half_migrated_adobe_commerce_layout_is_refused_naming_what_it_lacks(mariadb_url, tmp_path, capsys):
    # Adobe Commerce's content staging keys catalog_product_entity by row_id (one row per version of a
    # product, created_in/updated_in); Open Source by entity_id. The row_id alone makes it Adobe Commerce's
    # layout: without the rest of that layout the run stops before it reads anything.
    load_magento_fixture(mariadb_url)  # Open Source's layout, then only its row_id of Adobe Commerce's
    env = SyncEnv(mariadb_url, tmp_path / "target", tmp_path / "state")
    env.execute("ALTER TABLE catalog_product_entity ADD COLUMN row_id INT UNSIGNED NULL")
    capsys.readouterr()

    assert cli.main(env.cli_args()) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "has Adobe Commerce's catalog layout (catalog_product_entity.row_id) without the column(s) " in err
    assert "catalog_product_entity.created_in, catalog_product_entity.updated_in" in err
    assert "catalog_product_entity_varchar.row_id" in err
    assert not (tmp_path / "target").exists()  # nothing was sent


def test_a_prefixed_install_is_named_as_such(tmp_path, capsys):
    # A shop installed with db.table_prefix 'mg_': every Magento table carries it.
    url = f"sqlite:///{tmp_path / 'prefixed.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            conn.exec_driver_sql(f"CREATE TABLE mg_{table.name} (id INTEGER)")
    engine.dispose()
    env = SyncEnv(url, tmp_path / "target", tmp_path / "state")
    capsys.readouterr()

    assert cli.main(env.cli_args()) == cli.EXIT_CONFIG
    assert ("carry the prefix 'mg_' (db.table_prefix in app/etc/env.php, e.g. mg_catalog_product_entity): set it as "
            "the catalog_sync_source Connection's extra table_prefix, CATALOG_SYNC_TABLE_PREFIX or --table-prefix"
            ) in capsys.readouterr().err
