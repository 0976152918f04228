"""The run-status store (SQLAlchemy; SQLite by default, PostgreSQL in production).

One row per run in `catalog_sync_runs`, the items that did not sync in
`catalog_sync_item_failures`, and the per-target sync lock in
`catalog_sync_lock` that keeps the hourly sync and the full resync apart.
No secret is ever written here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog_sync import clock

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
    sa.Column("process", sa.String(250), nullable=False, default=""),  # host:pid of the holder
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# The store's schema version, one row. Each change of the tables adds a step to MIGRATIONS, which
# brings an existing store up to date in place (a store from before versioning is version 1).
schema_version = sa.Table(
    "catalog_sync_schema", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)
SCHEMA_VERSION = 2
MIGRATIONS: dict[int, tuple[tuple[str, sa.Column], ...]] = {
    # 1 -> 2: per-feed counts of a run; the feed and key of a failed item.
    2: (("catalog_sync_runs", sa.Column("feeds", sa.Text)),
        ("catalog_sync_item_failures", sa.Column("feed", sa.String(64))),
        ("catalog_sync_item_failures", sa.Column("item_key", sa.Text))),
}

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
COUNT_FIELDS = ("extracted", "inserted", "updated", "deleted", "unchanged", "failed")


class SyncLockedError(RuntimeError):
    """Another sync holds the lock for this target."""


@dataclass(frozen=True)
class LockHolder:
    owner: str
    process: str
    acquired_at: datetime
    expires_at: datetime


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_is_dead(process: str) -> bool:
    """True only when the holder ran on this host and its pid is gone (a crashed CLI run)."""
    host, _, pid = process.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def utcnow() -> datetime:
    """Status timestamps and lock leases: operational time, never the run's (pinnable) instant."""
    return clock.now()


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class StatusStore:
    def __init__(self, url: str, target: str = "default"):
        self.url = url
        self.target = target
        _ensure_sqlite_folder(url)
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- runs --------------------------------------------------------------------

    def start_run(self, run_id: str, mode: str, *, dry_run: bool, mode_reason: str | None = None,
                  dag_id: str | None = None, airflow_run_id: str | None = None) -> None:
        """Record a run as running; re-starting the same run (a task retry) resets it."""
        with self.engine.begin() as conn:
            conn.execute(runs.delete().where(runs.c.run_id == run_id))
            conn.execute(item_failures.delete().where(item_failures.c.run_id == run_id))
            conn.execute(
                runs.insert().values(
                    run_id=run_id, target=self.target, dag_id=dag_id, airflow_run_id=airflow_run_id, mode=mode,
                    dry_run=dry_run, state=RUNNING, started_at=utcnow(), mode_reason=mode_reason,
                )
            )

    def finish_run(self, run_id: str, state: str, counts: dict[str, int], error: str | None = None,
                   feeds: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(runs.c.started_at).where(runs.c.run_id == run_id)).one_or_none()
            if row is None:
                raise KeyError(f"run {run_id} was never started in the status store")
            ended = utcnow()
            duration = (ended - _aware(row.started_at)).total_seconds()
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(
                    state=state, ended_at=ended, duration_s=round(duration, 3), error=error,
                    feeds=json.dumps(feeds, sort_keys=True) if feeds is not None else None,
                    **{k: int(counts.get(k, 0)) for k in COUNT_FIELDS},
                )
            )
        return self.get_run(run_id)

    def abandon_run(self, run_id: str, reason: str) -> None:
        """Mark a run that died without reporting as failed."""
        with self.engine.begin() as conn:
            conn.execute(
                runs.update().where(runs.c.run_id == run_id, runs.c.state == RUNNING)
                .values(state=FAILED, ended_at=utcnow(), error=reason)
            )

    def record_failures(self, run_id: str, failures: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(item_failures.delete().where(item_failures.c.run_id == run_id))
            if failures:
                conn.execute(item_failures.insert(), [{**f, "run_id": run_id} for f in failures])

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
        return _row(row)

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs).where(runs.c.target == self.target).order_by(runs.c.started_at.desc()).limit(limit)
            ).all()
        return [_row(r) for r in rows]

    def failures(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(item_failures).where(item_failures.c.run_id == run_id).order_by(item_failures.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def item_history(self, sku: str, limit: int = 50) -> list[dict[str, Any]]:
        """The runs in which this SKU did not sync, newest first, with the run's time and state."""
        stmt = (
            sa.select(item_failures.c.run_id, item_failures.c.store_view_code, item_failures.c.op, item_failures.c.status,
                      item_failures.c.reason, runs.c.started_at, runs.c.mode, runs.c.state.label("run_state"))
            .join(runs, runs.c.run_id == item_failures.c.run_id)
            .where(item_failures.c.sku == sku, runs.c.target == self.target)
            .order_by(runs.c.started_at.desc(), item_failures.c.store_view_code)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt).all()]

    # ---- the sync lock -------------------------------------------------------------

    def acquire_lock(self, owner: str, ttl_s: int, *, process: str = "", _retry: bool = True) -> str | None:
        """Take the lock for this target, or raise SyncLockedError naming the holder.

        The same owner may take it again (task retries are idempotent). An expired
        lease, or one held by a dead process on this host, is taken over: a crashed
        run must not block syncs forever. Only single-process holders (the CLI) pass
        `process`; Airflow runs span many task processes and rely on the lease.
        Returns the owner whose stale lock was taken over, if any.
        """
        now = utcnow()
        values = dict(owner=owner, process=process, acquired_at=now, expires_at=now + timedelta(seconds=ttl_s))
        holder = self.lock_holder()
        stale_owner = holder.owner if holder and holder.process and _process_is_dead(holder.process) else None
        with self.engine.begin() as conn:
            updated = conn.execute(
                sync_lock.update()
                .where(sync_lock.c.target == self.target)
                .where(sa.or_(sync_lock.c.owner == owner, sync_lock.c.expires_at < now, sync_lock.c.owner == stale_owner))
                .values(**values)
            ).rowcount
            if updated:
                if holder and holder.owner != owner:
                    log.warning("took over the sync lock from %s (lease expired or its process is gone)", holder.owner)
                    return holder.owner
                return None
            try:
                with conn.begin_nested():
                    conn.execute(sync_lock.insert().values(target=self.target, **values))
                return None
            except sa.exc.IntegrityError:
                pass
        holder = self.lock_holder()
        if holder is None:  # released in between: try once more
            if _retry:
                return self.acquire_lock(owner, ttl_s, process=process, _retry=False)
            raise SyncLockedError(f"target {self.target!r}: the sync lock is contended; try again")
        raise SyncLockedError(
            f"target {self.target!r} is being synced by {holder.owner} (since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"lease until {holder.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        )

    def release_lock(self, owner: str) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(sync_lock.delete().where(sync_lock.c.target == self.target, sync_lock.c.owner == owner)).rowcount
            )

    def lock_holder(self) -> LockHolder | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sync_lock).where(sync_lock.c.target == self.target)).one_or_none()
        if row is None:
            return None
        return LockHolder(row.owner, row.process, _aware(row.acquired_at), _aware(row.expires_at))


def migrate(engine: Engine) -> int:
    """Create the tables, or bring an existing store to SCHEMA_VERSION in place; never drops anything.
    Safe when several first runs start at once: whoever loses a creation race re-reads."""
    existed = sa.inspect(engine).has_table(runs.name)
    for attempt in range(2):
        try:
            metadata.create_all(engine)
            break
        except sa.exc.DBAPIError:
            if attempt:
                raise  # not a race: a real error
    with engine.begin() as conn:
        row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).one_or_none()
        version = row.version if row else (1 if existed else SCHEMA_VERSION)
        for step in range(version + 1, SCHEMA_VERSION + 1):
            present = {(t, c["name"]) for t in {t for t, _ in MIGRATIONS[step]}
                       for c in sa.inspect(conn).get_columns(t)}
            for table, column in MIGRATIONS[step]:
                if (table, column.name) not in present:
                    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column.name} "
                                         f"{column.type.compile(dialect=conn.dialect)}"))
            log.info("status store: schema migrated to version %d", step)
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(schema_version.insert().values(id=1, version=SCHEMA_VERSION))
            except sa.exc.IntegrityError:
                pass  # another first run recorded it
        elif version < SCHEMA_VERSION:
            conn.execute(schema_version.update().where(schema_version.c.id == 1).values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION


def _ensure_sqlite_folder(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _row(row: sa.Row) -> dict[str, Any]:
    data = dict(row._mapping)
    if "feeds" in data:
        data["feeds"] = json.loads(data["feeds"]) if data["feeds"] else {}
    for key in ("started_at", "ended_at"):
        if data.get(key) is not None:
            data[key] = _aware(data[key]).isoformat(timespec="seconds")
    return data
