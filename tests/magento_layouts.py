"""The real Magento 2.4.8 fixture in other layouts, for tests: Adobe Commerce's (content staging, with one
product's temporary scheduled update) and with a table prefix.

Sources of the layout facts: tests/layouts/README.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timezone

import sqlalchemy as sa

from catalog_sync.demo.commerce_layout import MAX_VERSION, PRODUCT, derive_commerce_layout
from services import FIXTURE_SQL, MARIADB_HOST, MARIADB_PORT, load_magento_fixture, unavailable

# The scheduled product: a simple product of the fixture with a gallery image and no links or tier prices.
# No test writes it by id: shop_sql's writes edit row_id = entity_id, the version in force only before the update.
SCHEDULED_ENTITY_ID = 15
SCHEDULED_SKU = "Chapéu Fedora Feminino"
ORIGINAL_NAME = "Chapéu Fedora Feminino"
ORIGINAL_PRICE = "778.000000"
PROMO_NAME = ORIGINAL_NAME + " (Promo)"
PROMO_PRICE = "699.000000"
# A temporary update: staging_update ids are the start times (UNIX seconds); its end is a rollback update.
UPDATE_START = 1770897600  # 2026-02-12T12:00:00Z
UPDATE_END = 1771502400  # 2026-02-19T12:00:00Z
PROMO_UPDATE_NAME = "Promo week"
NAME_ATTRIBUTE_ID, PRICE_ATTRIBUTE_ID = 73, 77  # catalog_product name (varchar), price (decimal) in the fixture


def load_commerce_fixture(url: str) -> None:
    """The fixture, converted to Adobe Commerce's layout, with SCHEDULED_ENTITY_ID in three versions."""
    load_magento_fixture(url)
    engine = sa.create_engine(url)
    try:
        derive_commerce_layout(engine)
        with engine.begin() as conn:
            _schedule_promo(conn)
    finally:
        engine.dispose()


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _schedule_promo(conn: sa.Connection) -> None:
    """Two scheduled versions of one product, written as Magento staging writes them, without changelog rows:
    the triggers on the tables written are dropped around the insert and recreated as they were."""
    conn.execute(sa.text(
        "INSERT INTO staging_update (id, start_time, name, description, rollback_id, is_campaign, is_rollback, moved_to) "
        "VALUES (:start, :start_time, :name, 'Promotional price and name', :end, 0, NULL, NULL), "
        "(:end, :end_time, :rollback_name, NULL, NULL, 0, 1, NULL)"),
        {"start": UPDATE_START, "end": UPDATE_END, "start_time": _utc(UPDATE_START), "end_time": _utc(UPDATE_END),
         "name": PROMO_UPDATE_NAME, "rollback_name": f"Rollback for \"{PROMO_UPDATE_NAME}\""})
    present = set(sa.inspect(conn).get_table_names())
    row_tables = [t for t in PRODUCT.row_tables if t in present]
    row_columns = [(t, c) for t, c in PRODUCT.row_columns if t in present]
    touched = [PRODUCT.table, *row_tables, *(t for t, _ in row_columns)]
    saved = _drop_triggers(conn, touched)
    try:
        base = SCHEDULED_ENTITY_ID  # version 1's row_id (row_id = entity_id after the conversion)
        conn.execute(sa.text("UPDATE catalog_product_entity SET updated_in = :start, updated_at = updated_at "
                             "WHERE row_id = :row"), {"start": UPDATE_START, "row": base})
        promo = _copy_version(conn, base, UPDATE_START, UPDATE_END, row_tables, row_columns)
        conn.execute(sa.text("UPDATE catalog_product_entity_varchar SET value = :v WHERE row_id = :r AND attribute_id = :a "
                             "AND store_id = 0"), {"v": PROMO_NAME, "r": promo, "a": NAME_ATTRIBUTE_ID})
        conn.execute(sa.text("UPDATE catalog_product_entity_decimal SET value = :v WHERE row_id = :r AND attribute_id = :a "
                             "AND store_id = 0"), {"v": PROMO_PRICE, "r": promo, "a": PRICE_ATTRIBUTE_ID})
        # The rollback restores version 1: a copy of it from the end on (TemporaryUpdateProcessor).
        _copy_version(conn, base, UPDATE_END, MAX_VERSION, row_tables, row_columns)
    finally:
        for statement in saved:
            conn.exec_driver_sql(statement)


def _copy_version(conn: sa.Connection, source_row: int, created_in: int, updated_in: int,
                  row_tables: list[str], row_columns: list[tuple[str, str]]) -> int:
    """A new catalog_product_entity row (the next row_id) for the same entity, with copies of the source row's rows."""
    row_id = conn.execute(sa.text("SELECT MAX(row_id) + 1 FROM catalog_product_entity")).scalar_one()
    entity_columns = [c["name"] for c in sa.inspect(conn).get_columns(PRODUCT.table)]
    fixed = {"row_id": ":row", "created_in": ":created", "updated_in": ":updated"}
    select = ", ".join(fixed.get(c, f"`{c}`") for c in entity_columns)
    conn.execute(sa.text(f"INSERT INTO catalog_product_entity ({', '.join(f'`{c}`' for c in entity_columns)}) "
                         f"SELECT {select} FROM catalog_product_entity WHERE row_id = :source"),
                 {"row": row_id, "created": created_in, "updated": updated_in, "source": source_row})
    for table, column in [*((t, "row_id") for t in row_tables), *row_columns]:
        _copy_rows(conn, table, column, source_row, row_id)
    return row_id


def _copy_rows(conn: sa.Connection, table: str, column: str, source_row: int, row_id: int) -> None:
    """Copy the rows of `table` whose `column` is source_row with the new row_id; auto-increment keys get new values."""
    inspector = sa.inspect(conn)
    columns = inspector.get_columns(table)
    pk = inspector.get_pk_constraint(table)["constrained_columns"]
    keep = [c["name"] for c in columns if not (c.get("autoincrement") is True and c["name"] in pk and len(pk) == 1)]
    select = ", ".join(":row" if c == column else f"`{c}`" for c in keep)
    conn.execute(sa.text(f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in keep)}) SELECT {select} FROM `{table}` "
                         f"WHERE `{column}` = :source"), {"row": row_id, "source": source_row})


def _drop_triggers(conn: sa.Connection, tables: list[str]) -> list[str]:
    """Drop the triggers on `tables`; return the statements that recreate them."""
    rows = conn.execute(sa.text(
        "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER")).all()
    statements = []
    for name, event, table, body in rows:
        if table in tables:
            conn.exec_driver_sql(f"DROP TRIGGER `{name}`")
            statements.append(f"CREATE TRIGGER `{name}` AFTER {event} ON `{table}` FOR EACH ROW {body}")
    return statements


# --------------------------------------------------------------------------- prefixed fixture


def prefixed_dump(prefix: str, sql: str | None = None) -> str:
    """The fixture's dump with every table name prefixed: CREATE/DROP TABLE, INSERT INTO, LOCK TABLES, ALTER TABLE,
    REFERENCES (also of tables the dump leaves out: a prefixed shop has them prefixed too), a trigger's ON <table>
    and the tables its body writes. Index, constraint and trigger names stay."""
    text = FIXTURE_SQL.read_text(encoding="utf-8") if sql is None else sql
    tables = set(re.findall(r"^CREATE TABLE `(\w+)`", text, re.M))
    names = "|".join(sorted(map(re.escape, tables), key=len, reverse=True))
    quoted = rf"`({names})`"
    patterns = (
        rf"(CREATE TABLE ){quoted}", rf"(DROP TABLE IF EXISTS ){quoted}", rf"(INSERT INTO ){quoted}",
        rf"(INSERT IGNORE INTO ){quoted}", rf"(LOCK TABLES ){quoted}", rf"(ALTER TABLE ){quoted}",
        r"(REFERENCES )`(\w+)`", rf"(structure for table ){quoted}", rf"(data for table ){quoted}",
    )
    for pattern in patterns:
        text = re.sub(pattern, lambda m: f"{m.group(1)}`{prefix}{m.group(2)}`", text)
    # Triggers: "AFTER INSERT ON catalog_product_entity FOR EACH ROW" (the dump leaves it unquoted).
    text = re.sub(rf"(AFTER (?:INSERT|UPDATE|DELETE) ON )`?({names})`?( FOR EACH ROW)",
                  lambda m: f"{m.group(1)}`{prefix}{m.group(2)}`{m.group(3)}", text)
    # ... and their bodies: FROM / JOIN of a table, for bodies that read one.
    text = re.sub(rf"((?:FROM|JOIN) ){quoted}", lambda m: f"{m.group(1)}`{prefix}{m.group(2)}`", text)
    return text


def load_prefixed_fixture(url: str, prefix: str) -> None:
    """Load the fixture with every table name prefixed, with the mysql client as load_magento_fixture does."""
    if not FIXTURE_SQL.exists():
        unavailable(f"the Magento fixture is missing: {FIXTURE_SQL}")
    if shutil.which("mysql") is None:
        unavailable("the mysql client is not installed (it loads the fixture's triggers)")
    name = sa.engine.make_url(url).database
    subprocess.run(
        ["mysql", "-uroot", f"-h{MARIADB_HOST}", f"-P{MARIADB_PORT}", "--default-character-set=utf8mb4", name],
        input=prefixed_dump(prefix).encode("utf-8"), check=True, capture_output=True,
    )
