"""Turn a Magento Open Source catalog database, in place, into Adobe Commerce's content-staging layout.

Adobe Commerce (Magento_Staging / Magento_CatalogStaging) keys products and categories by ``row_id``, one row
per scheduled version (``created_in`` / ``updated_in``), keeps the entity ids in ``sequence_product`` /
``sequence_catalog_category``, and keys the EAV value tables (and a few more) by that ``row_id``. The sources of
every fact are in tests/layouts/README.md.

The shop is taken as one that never staged anything: every row becomes version 1 with ``row_id = entity_id``, so
columns that now hold a parent's row_id keep their values. Works on MariaDB/MySQL (ALTER TABLE) and SQLite
(tables with a new primary key are rebuilt). Changelog triggers on converted tables are recreated in Adobe
Commerce's shape, and only where the table had them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import sqlalchemy as sa

from catalog_sync.demo import triggers

MAX_VERSION = 2147483647  # Magento\Staging\Model\VersionManager::MAX_VERSION
MIN_VERSION = 1
STAGING_UPDATE = "staging_update"

_BACKENDS = ("datetime", "decimal", "int", "text", "varchar")


@dataclass(frozen=True)
class StagedEntity:
    table: str
    sequence: str
    row_tables: tuple[str, ...]  # their entity_id becomes row_id
    row_columns: tuple[tuple[str, str], ...]  # (table, column): keeps its name, holds the parent's row_id


PRODUCT = StagedEntity(
    "catalog_product_entity",
    "sequence_product",
    (
        *(f"catalog_product_entity_{b}" for b in _BACKENDS),
        "catalog_product_entity_gallery",
        "catalog_product_entity_media_gallery_value",
        "catalog_product_entity_media_gallery_value_to_entity",
        "catalog_product_entity_tier_price",
        "magento_giftcard_amount",
    ),
    (
        ("catalog_product_link", "product_id"),
        ("catalog_product_super_attribute", "product_id"),
        ("catalog_product_super_link", "parent_id"),
        ("catalog_product_relation", "parent_id"),
        ("catalog_product_bundle_option", "parent_id"),
        ("catalog_product_bundle_option_value", "parent_product_id"),
        ("catalog_product_bundle_selection", "parent_product_id"),
        ("catalog_product_option", "product_id"),
        ("downloadable_link", "product_id"),
        ("downloadable_sample", "product_id"),
    ),
)
CATEGORY = StagedEntity(
    "catalog_category_entity", "sequence_catalog_category", tuple(f"catalog_category_entity_{b}" for b in _BACKENDS), ()
)
STAGED: tuple[StagedEntity, ...] = (PRODUCT, CATEGORY)


def _is_mysql(conn: sa.Connection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _columns(conn: sa.Connection, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def _fk_name(name: str) -> str:
    # MySQL identifiers stop at 64 characters; Magento hashes longer names the same way.
    return name if len(name) <= 64 else "FK_" + hashlib.md5(name.encode()).hexdigest().upper()


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class _Trigger:
    name: str
    event: str  # insert, update, delete
    body: str


def _table_triggers(conn: sa.Connection, table: str) -> list[_Trigger]:
    if _is_mysql(conn):
        rows = conn.execute(sa.text(
            "SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :t ORDER BY ACTION_ORDER"), {"t": table})
        return [_Trigger(n, e.lower(), b) for n, e, b in rows]
    rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                        {"t": table})
    found = []
    for name, sql in rows:
        event = re.search(r"\bAFTER\s+(INSERT|UPDATE|DELETE)\b", sql, re.I)
        found.append(_Trigger(name, event.group(1).lower() if event else "", sql))
    return found


def _subscription(conn: sa.Connection, table: str, found: list[_Trigger], renamed: dict[str, str],
                  row_of: str | None, old_columns: list[str]) -> triggers.CommerceSubscription | None:
    """Read back what Magento subscribed (changelogs, id column, ignored columns) from the table's triggers."""
    source = next((t for t in found if t.event == "insert"), found[0] if found else None)
    if source is None:
        return None
    changelogs = tuple(dict.fromkeys(re.findall(r"INSERT\s+(?:IGNORE\s+)?INTO\s+[`\"]?(\w+)[`\"]?", source.body, re.I)))
    id_match = re.search(r"VALUES\s*\(\s*(?:NEW|OLD)\.[`\"]?(\w+)[`\"]?\s*\)", source.body, re.I)
    if not changelogs or id_match is None:
        return None
    update = next((t for t in found if t.event == "update"), None)
    watched = set(re.findall(r"NEW\.[`\"]?(\w+)[`\"]?\s*(?:<=>|IS\s+NOT)", update.body, re.I)) if update else set()
    ignored = frozenset(c for c in old_columns if c not in watched) if watched else frozenset()
    id_column = renamed.get(id_match.group(1), id_match.group(1))
    return triggers.CommerceSubscription(
        table=table, id_column=id_column, changelogs=changelogs, columns=tuple(_columns(conn, table)),
        ignored_update_columns=frozenset(renamed.get(c, c) for c in ignored), row_of=row_of,
        events=tuple(e for e in triggers.EVENTS if any(t.event == e for t in found)))


# --------------------------------------------------------------------------- MariaDB / MySQL


def _mysql_fks_to(conn: sa.Connection, table: str) -> list[tuple[str, str, str, str]]:
    """(constraint, child table, child column, ON DELETE) of the foreign keys on table.entity_id."""
    rows = conn.execute(sa.text(
        "SELECT k.CONSTRAINT_NAME, k.TABLE_NAME, k.COLUMN_NAME, r.DELETE_RULE "
        "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
        "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME "
        "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME = :t AND k.REFERENCED_COLUMN_NAME = 'entity_id'"),
        {"t": table})
    return [tuple(r) for r in rows]


def _mysql_convert_entity(conn: sa.Connection, entity: StagedEntity, present: set[str]) -> None:
    t, s = entity.table, entity.sequence
    fks = _mysql_fks_to(conn, t)
    for name, child, _column, _rule in fks:
        conn.exec_driver_sql(f"ALTER TABLE `{child}` DROP FOREIGN KEY `{name}`")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{s}`")
    conn.exec_driver_sql(
        f"CREATE TABLE `{s}` (`sequence_value` int(10) unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (`sequence_value`)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci")
    conn.exec_driver_sql(f"INSERT INTO `{s}` (`sequence_value`) SELECT `entity_id` FROM `{t}` ORDER BY `entity_id`")
    conn.exec_driver_sql(
        f"ALTER TABLE `{t}` MODIFY `entity_id` int(10) unsigned NOT NULL COMMENT 'Entity ID', DROP PRIMARY KEY, "
        "ADD COLUMN `row_id` int(10) unsigned NOT NULL DEFAULT 0 COMMENT 'Version ID', "
        f"ADD COLUMN `created_in` bigint(20) unsigned NOT NULL DEFAULT {MIN_VERSION} COMMENT 'Update ID', "
        f"ADD COLUMN `updated_in` bigint(20) unsigned NOT NULL DEFAULT {MAX_VERSION} COMMENT 'Next Update ID'")
    # updated_at is ON UPDATE CURRENT_TIMESTAMP: keep it as it was.
    update_at = ", `updated_at` = `updated_at`" if "updated_at" in _columns(conn, t) else ""
    conn.exec_driver_sql(f"UPDATE `{t}` SET `row_id` = `entity_id`{update_at}")
    upper = t.upper()
    conn.exec_driver_sql(
        f"ALTER TABLE `{t}` MODIFY `row_id` int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT 'Version ID', "
        f"ADD PRIMARY KEY (`row_id`), ADD KEY `{upper}_CREATED_IN` (`created_in`), ADD KEY `{upper}_UPDATED_IN` (`updated_in`), "
        f"ADD KEY `{upper}_ENTITY_ID_CREATED_IN_UPDATED_IN` (`entity_id`, `created_in`, `updated_in`), "
        f"ADD CONSTRAINT `{_fk_name(f'{upper}_ENTITY_ID_{s.upper()}_SEQUENCE_VALUE')}` FOREIGN KEY (`entity_id`) "
        f"REFERENCES `{s}` (`sequence_value`) ON DELETE CASCADE")
    row_valued = set(entity.row_columns)
    for child in entity.row_tables:
        if child in present and "entity_id" in _columns(conn, child):
            _mysql_rename_column(conn, child, "entity_id", "row_id")
    # Staged children now point at the version row, the rest at the sequence (Magento_Staging's BasicSetup).
    for name, child, column, rule in fks:
        if child in entity.row_tables:
            column, target, target_column = "row_id", t, "row_id"
        elif (child, column) in row_valued:
            target, target_column = t, "row_id"
        else:
            target, target_column = s, "sequence_value"
        conn.exec_driver_sql(
            f"ALTER TABLE `{child}` ADD CONSTRAINT `{name}` FOREIGN KEY (`{column}`) REFERENCES `{target}` (`{target_column}`) "
            f"ON DELETE {rule}")


def _mysql_rename_column(conn: sa.Connection, table: str, old: str, new: str) -> None:
    conn.exec_driver_sql(f"ALTER TABLE `{table}` RENAME COLUMN `{old}` TO `{new}`")
    for index in sa.inspect(conn).get_indexes(table):
        if new in index["column_names"] and old.upper() in index["name"]:
            renamed = index["name"].replace(old.upper(), new.upper())
            conn.exec_driver_sql(f"ALTER TABLE `{table}` RENAME INDEX `{index['name']}` TO `{renamed}`")


# --------------------------------------------------------------------------- SQLite


def _sqlite_rebuild(conn: sa.Connection, table: str, rename: dict[str, str], staged_entity: bool) -> None:
    """SQLite cannot change a primary key or rename a constraint: create the new table, copy, drop, rename."""
    q = _q(conn, table)
    sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}).scalar()
    info = conn.exec_driver_sql(f"PRAGMA table_info({q})").all()
    inspector = sa.inspect(conn)
    uniques = inspector.get_unique_constraints(table)
    indexes = [i for i in inspector.get_indexes(table) if not i["name"].startswith("sqlite_autoindex")]

    def new_name(name: str) -> str:
        return rename.get(name, name)

    def new_constraint(name: str, columns: list[str]) -> str:
        for old, new in rename.items():
            if old in columns:
                name = name.replace(old.upper(), new.upper())
        return name

    definitions, copy_from, copy_to = [], [], []
    for _cid, name, type_, notnull, default, _pk in info:
        if staged_entity and name == "entity_id":
            definitions.append('"entity_id" INTEGER NOT NULL')
        else:
            definitions.append(f'"{new_name(name)}" {type_}' + (" NOT NULL" if notnull else "")
                               + (f" DEFAULT {default}" if default is not None else ""))
        copy_from.append(f'"{name}"')
        copy_to.append(f'"{new_name(name)}"')
    pk = [new_name(row[1]) for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    if staged_entity:
        definitions += ['"row_id" INTEGER NOT NULL', f'"created_in" BIGINT NOT NULL DEFAULT {MIN_VERSION}',
                        f'"updated_in" BIGINT NOT NULL DEFAULT {MAX_VERSION}']
        copy_from.append('"entity_id"')
        copy_to.append('"row_id"')
        pk = ["row_id"]
    auto = " AUTOINCREMENT" if sql and "AUTOINCREMENT" in sql.upper() and len(pk) == 1 else ""
    if auto:
        definitions = [d + " PRIMARY KEY AUTOINCREMENT" if d.startswith(f'"{pk[0]}" ') else d for d in definitions]
    else:
        definitions.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in pk) + ")")
    for u in uniques:
        cols = [new_name(c) for c in u["column_names"]]
        label = f'CONSTRAINT "{new_constraint(u["name"], u["column_names"])}" ' if u.get("name") else ""
        definitions.append(label + "UNIQUE (" + ", ".join(f'"{c}"' for c in cols) + ")")
    temp = f"{table}__commerce"
    conn.exec_driver_sql(f'CREATE TABLE "{temp}" (\n  ' + ",\n  ".join(definitions) + "\n)")
    conn.exec_driver_sql(f'INSERT INTO "{temp}" ({", ".join(copy_to)}) SELECT {", ".join(copy_from)} FROM {q}')
    conn.exec_driver_sql(f"DROP TABLE {q}")
    conn.exec_driver_sql(f'ALTER TABLE "{temp}" RENAME TO {q}')
    for index in indexes:
        cols = ", ".join(f'"{new_name(c)}"' for c in index["column_names"])
        unique = "UNIQUE " if index.get("unique") else ""
        conn.exec_driver_sql(f'CREATE {unique}INDEX "{new_constraint(index["name"], index["column_names"])}" ON {q} ({cols})')
    if staged_entity:
        upper = table.upper()
        conn.exec_driver_sql(f'CREATE INDEX "{upper}_CREATED_IN" ON {q} ("created_in")')
        conn.exec_driver_sql(f'CREATE INDEX "{upper}_UPDATED_IN" ON {q} ("updated_in")')
        conn.exec_driver_sql(
            f'CREATE INDEX "{upper}_ENTITY_ID_CREATED_IN_UPDATED_IN" ON {q} ("entity_id", "created_in", "updated_in")')


def _sqlite_convert_entity(conn: sa.Connection, entity: StagedEntity, present: set[str]) -> None:
    s = entity.sequence
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{s}"')
    conn.exec_driver_sql(f'CREATE TABLE "{s}" ("sequence_value" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT)')
    conn.exec_driver_sql(f'INSERT INTO "{s}" ("sequence_value") SELECT "entity_id" FROM "{entity.table}" ORDER BY "entity_id"')
    _sqlite_rebuild(conn, entity.table, {}, staged_entity=True)
    for child in entity.row_tables:
        if child in present and "entity_id" in _columns(conn, child):
            _sqlite_rebuild(conn, child, {"entity_id": "row_id"}, staged_entity=False)


# --------------------------------------------------------------------------- staging_update


def _create_staging_update(conn: sa.Connection) -> None:
    if STAGING_UPDATE in sa.inspect(conn).get_table_names():
        return
    if _is_mysql(conn):
        conn.exec_driver_sql(
            "CREATE TABLE `staging_update` (\n"
            "  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT COMMENT 'Update ID',\n"
            "  `start_time` datetime DEFAULT NULL COMMENT 'Update start time',\n"
            "  `name` varchar(255) DEFAULT NULL COMMENT 'Update name',\n"
            "  `description` varchar(255) DEFAULT NULL COMMENT 'Update description',\n"
            "  `rollback_id` bigint(20) unsigned DEFAULT NULL COMMENT 'Rollback ID',\n"
            "  `is_campaign` smallint(6) DEFAULT NULL COMMENT 'Is update a campaign',\n"
            "  `is_rollback` smallint(6) DEFAULT NULL COMMENT 'Is update a rollback',\n"
            "  `moved_to` bigint(20) unsigned DEFAULT NULL COMMENT 'Update Id it was moved to',\n"
            "  PRIMARY KEY (`id`),\n"
            "  KEY `STAGING_UPDATE_IS_CAMPAIGN` (`is_campaign`),\n"
            "  FULLTEXT KEY `STAGING_UPDATE_GRID_NAME_DESCRIPTION` (`name`, `description`)\n"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Staging Updates table'")
    else:
        conn.exec_driver_sql(
            'CREATE TABLE "staging_update" ("id" INTEGER NOT NULL PRIMARY KEY, "start_time" DATETIME, "name" VARCHAR(255), '
            '"description" VARCHAR(255), "rollback_id" BIGINT, "is_campaign" SMALLINT, "is_rollback" SMALLINT, '
            '"moved_to" BIGINT)')
        conn.exec_driver_sql('CREATE INDEX "STAGING_UPDATE_IS_CAMPAIGN" ON "staging_update" ("is_campaign")')


# --------------------------------------------------------------------------- entry point


def derive_commerce_layout(engine: sa.Engine) -> None:
    """Convert the Open Source catalog at `engine` to Adobe Commerce's staging layout, in place.

    Raises ValueError when catalog_product_entity is already keyed by row_id."""
    with engine.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        if "row_id" in _columns(conn, PRODUCT.table):
            raise ValueError("the catalog already has Adobe Commerce's layout (catalog_product_entity.row_id)")
        if _is_mysql(conn):
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        try:
            for entity in STAGED:
                if entity.table not in present:
                    continue
                _convert(conn, entity, present)
            _create_staging_update(conn)
        finally:
            if _is_mysql(conn):
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")


def _convert(conn: sa.Connection, entity: StagedEntity, present: set[str]) -> None:
    # Triggers first: the copy must not write changelog rows, and old bodies name columns that go away.
    scope: dict[str, tuple[dict[str, str], str | None]] = {entity.table: ({}, None)}
    scope |= {t: ({"entity_id": "row_id"}, entity.table) for t in entity.row_tables}
    scope |= {t: ({}, entity.table) for t, _ in entity.row_columns}
    saved = []
    for table, (renamed, row_of) in scope.items():
        if table not in present:
            continue
        found = _table_triggers(conn, table)
        if found:
            saved.append((table, found, renamed, row_of, _columns(conn, table)))
        for trigger in found:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_q(conn, trigger.name)}")
    if _is_mysql(conn):
        _mysql_convert_entity(conn, entity, present)
    else:
        _sqlite_convert_entity(conn, entity, present)
    for table, found, renamed, row_of, old_columns in saved:
        # Only a trigger reading a row_id column looks the entity up (row_of); the others keep Open Source's shape.
        id_column = re.search(r"VALUES\s*\(\s*(?:NEW|OLD)\.[`\"]?(\w+)[`\"]?\s*\)", found[0].body, re.I)
        holds_row = id_column is not None and (
            renamed.get(id_column.group(1)) == "row_id" or (table, id_column.group(1)) in entity.row_columns)
        sub = _subscription(conn, table, found, renamed, row_of if holds_row else None, old_columns)
        if sub is None:
            raise ValueError(f"cannot read the changelog subscription of {table} from its triggers")
        triggers.create_commerce_triggers(conn, [sub], names={t.event: t.name for t in found})
