"""The status store's tables, their versions, and the in-place migration of an existing store.

Several processes may open a new or old store at the same moment (two first runs, the hourly
sync and a resync after a deploy), so `migrate` serializes them: a transaction-scoped advisory
lock on PostgreSQL, GET_LOCK on MySQL/MariaDB, the database's write lock (BEGIN IMMEDIATE) on
SQLite. Whoever waited finds the work done. Should a race be lost anyway (another database, a
lock that timed out), the error is caught and the store looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

metadata = sa.MetaData()

runs = sa.Table(
    "catalog_sync_runs", metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("airflow_run_id", sa.String(250)),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("duration_s", sa.Float),
    sa.Column("extracted", sa.Integer),
    sa.Column("inserted", sa.Integer),
    sa.Column("updated", sa.Integer),
    sa.Column("deleted", sa.Integer),
    sa.Column("unchanged", sa.Integer),
    sa.Column("failed", sa.Integer),
    sa.Column("mode_reason", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("feeds", sa.Text),  # JSON: per feed, {inserted, updated, deleted, unchanged, failed}
    # Items of every feed not at the target as Magento has them after the run (rejected, quarantined,
    # still to retry; earlier runs' too). NULL: a run before v3.
    sa.Column("not_accepted", sa.Integer),
    sa.Index("ix_catalog_sync_runs_started_at", "started_at"),
)

item_failures = sa.Table(
    "catalog_sync_item_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("product_id", sa.BigInteger),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("store_view_code", sa.String(64), nullable=False),
    sa.Column("op", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("feed", sa.String(64)),
    sa.Column("item_key", sa.Text),  # the item's key at the target (canonical JSON)
)

sync_lock = sa.Table(
    "catalog_sync_lock", metadata,
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(250), nullable=False),
    sa.Column("process", sa.String(250), nullable=False, default=""),  # host:pid of a single-process holder (CLI)
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("renewed_at", sa.DateTime(timezone=True)),  # NULL: never renewed since acquired_at (or before v3)
    sa.Column("process_start", sa.String(100)),  # boot id and start tick of `process`: tells a reused pid
)

# Who released or took over whose lock, when and why (the lock row itself is gone by then).
lock_events = sa.Table(
    "catalog_sync_lock_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("happened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(20), nullable=False),  # taken_over, unlocked, force_unlocked
    sa.Column("owner", sa.String(250), nullable=False),  # the holder whose lock it was
    sa.Column("holder_state", sa.String(20), nullable=False),  # dead, expired, live, unknown
    sa.Column("done_by", sa.String(250), nullable=False),  # the run that took it over, or user@host:pid
    sa.Column("reason", sa.Text),
    sa.Index("ix_catalog_sync_lock_events_target_at", "target", "happened_at"),
)

# The store's schema version, one row. Each change of the tables adds a step to MIGRATIONS, which
# brings an existing store up to date in place (a store from before versioning is version 1).
schema_version = sa.Table(
    "catalog_sync_schema", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)
SCHEMA_VERSION = 3
# Per version, the columns it added to tables that existed before it. Tables a version added are
# created by `create_all` like on a new store; nothing is ever dropped or rewritten.
MIGRATIONS: dict[int, tuple[tuple[str, sa.Column], ...]] = {
    # 1 -> 2: per-feed counts of a run; the feed and key of a failed item.
    2: (("catalog_sync_runs", sa.Column("feeds", sa.Text)),
        ("catalog_sync_item_failures", sa.Column("feed", sa.String(64))),
        ("catalog_sync_item_failures", sa.Column("item_key", sa.Text))),
    # 2 -> 3: the lock's renewals and its holder's process start; catalog_sync_lock_events (new table).
    3: (("catalog_sync_lock", sa.Column("renewed_at", sa.DateTime(timezone=True))),
        ("catalog_sync_lock", sa.Column("process_start", sa.String(100))),
        ("catalog_sync_runs", sa.Column("not_accepted", sa.Integer))),
}

_PG_LOCK_KEY = 0x63735F736368656D  # "cs_schem": the advisory lock of this migration, per database
_MYSQL_LOCK_WAIT_S = 120
_ATTEMPTS = 3


def migrate(engine: Engine) -> int:
    """Create the tables, or bring an existing store to SCHEMA_VERSION in place; never drops anything.
    Returns the store's version (a newer release's store is left as it is)."""
    found = stored_version(engine)
    if found is not None and found >= SCHEMA_VERSION:
        return found
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with _schema_lock(engine) as conn:
                return _upgrade(conn)
        except sa.exc.DBAPIError:
            # Without a lock (SQLite) another process may have made the same change first: look again.
            found = stored_version(engine)
            if found is not None and found >= SCHEMA_VERSION:
                return found
            if attempt == _ATTEMPTS:
                raise
            log.info("status store: another process changed the schema meanwhile; looking again")
    raise AssertionError("unreachable")


def stored_version(engine: Engine | Connection) -> int | None:
    """The version the store records; None for an empty store or one from before versioning."""
    if not sa.inspect(engine).has_table(schema_version.name):
        return None
    with _connection(engine) as conn:
        row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).one_or_none()
    return row.version if row else None


def _upgrade(conn: Connection) -> int:
    existed = sa.inspect(conn).has_table(runs.name)
    version = stored_version(conn)
    if version is not None and version >= SCHEMA_VERSION:
        return version  # the process we waited for did it
    metadata.create_all(conn)  # checkfirst: only the missing tables, at today's definition
    start = version if version is not None else (1 if existed else SCHEMA_VERSION)
    for step in range(start + 1, SCHEMA_VERSION + 1):
        tables = {table for table, _ in MIGRATIONS[step]}
        present = {(t, c["name"]) for t in tables for c in sa.inspect(conn).get_columns(t)}
        for table, column in MIGRATIONS[step]:
            if (table, column.name) not in present:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column.name} "
                                     f"{column.type.compile(dialect=conn.dialect)}"))
        log.info("status store: schema migrated to version %d", step)
    if version is None:
        conn.execute(schema_version.insert().values(id=1, version=SCHEMA_VERSION))
    else:
        conn.execute(schema_version.update().where(schema_version.c.id == 1).values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction on a connection that no other migration of this store runs beside."""
    backend = engine.dialect.name
    if backend == "postgresql":
        with engine.begin() as conn:  # DDL is transactional here: the whole upgrade or nothing
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            yield conn
    elif backend in ("mysql", "mariadb"):
        with engine.connect() as conn:
            # A named lock of the session, server-wide: named after the database. DDL commits at once here.
            name = f"catalog_sync_schema:{conn.execute(sa.text('SELECT DATABASE()')).scalar()}"[:64]
            got = conn.execute(sa.select(sa.func.get_lock(name, _MYSQL_LOCK_WAIT_S))).scalar()
            conn.commit()
            if got != 1:
                raise RuntimeError(f"status store: waited {_MYSQL_LOCK_WAIT_S} s for another process's schema migration")
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.execute(sa.select(sa.func.release_lock(name)))
                conn.commit()
    elif backend == "sqlite":
        with engine.connect() as conn:
            # The driver's own transaction handling would not cover DDL: take the write lock by hand.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.connection.dbapi_connection.in_transaction:  # some errors end it already
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
    else:
        with engine.begin() as conn:
            yield conn


@contextmanager
def _connection(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn
