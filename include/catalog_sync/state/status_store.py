"""The run-status store (SQLAlchemy; SQLite by default, PostgreSQL in production).

One row per run in `catalog_sync_runs`, the items that did not sync in
`catalog_sync_item_failures`, the per-target sync lock in `catalog_sync_lock`
that keeps the hourly sync and the full resync apart, and in
`catalog_sync_lock_events` who released or took over whose lock. The tables and
their migration are in `status_schema`. No secret is ever written here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog_sync import clock
from catalog_sync.state.holder_process import (
    ProcessState,
    process_start,
    process_state,
    this_process,  # noqa: F401  (callers take it from here)
)
from catalog_sync.state.status_schema import (  # noqa: F401  (the tables, for the store's other readers)
    MIGRATIONS,
    SCHEMA_VERSION,
    item_failures,
    lock_events,
    metadata,
    migrate,
    runs,
    schema_version,
    sync_lock,
)

log = logging.getLogger(__name__)

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
COUNT_FIELDS = ("extracted", "inserted", "updated", "deleted", "unchanged", "failed", "not_accepted")
# Counts a run may not have made (a failed run never knows what its snapshot leaves pending): NULL, not 0.
OPTIONAL_COUNTS = ("not_accepted",)


class SyncLockedError(RuntimeError):
    """Another sync holds the lock for this target."""


@dataclass(frozen=True)
class LockHolder:
    owner: str
    process: str  # host:pid of a single-process holder (CLI); '' for an Airflow run
    acquired_at: datetime
    expires_at: datetime
    renewed_at: datetime  # the last renewal (acquired_at when never renewed)
    process_start: str = ""

    def process_state(self) -> ProcessState:
        return process_state(self.process, self.process_start) if self.process else ProcessState.ELSEWHERE

    def expired(self, now: datetime) -> bool:
        return self.expires_at < now


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
                    **{k: None if k in OPTIONAL_COUNTS and counts.get(k) is None else int(counts.get(k) or 0)
                       for k in COUNT_FIELDS},
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

    def acquire_lock(self, owner: str, ttl_s: int, *, process: str = "") -> str | None:
        """Take the lock for this target, or raise SyncLockedError naming the holder.

        The same owner may take it again (task retries are idempotent). An expired
        lease, or one held by a dead process on this host, is taken over: a crashed
        run must not block syncs forever. Only single-process holders (the CLI) pass
        `process`; Airflow runs span many task processes and rely on the lease, which
        each step renews while it runs (`sync_lock.heartbeat`).
        Returns the owner whose stale lock was taken over, if any.
        """
        for attempt in range(1, _LOCK_ATTEMPTS + 1):
            try:
                taken, stale = self._try_acquire(owner, ttl_s, process)
            except sa.exc.DBAPIError as exc:
                # Two first runs at once: InnoDB may pick one as a deadlock victim. It lost: look again.
                if not _lost_to_another_writer(exc) or attempt == _LOCK_ATTEMPTS:
                    raise
                continue
            if taken:
                return stale
            holder = self.lock_holder()
            if holder is not None:
                raise SyncLockedError(
                    f"target {self.target!r} is being synced by {holder.owner} (since "
                    f"{holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease until {holder.expires_at:%Y-%m-%d %H:%M:%S} UTC)")
            # released in between: try again
        raise SyncLockedError(f"target {self.target!r}: the sync lock is contended; try again")

    def _try_acquire(self, owner: str, ttl_s: int, process: str) -> tuple[bool, str | None]:
        """(taken, the stale holder taken over). The update and the insert are separate transactions:
        on MySQL/MariaDB an update that found no row holds a gap lock, on which two inserts deadlock."""
        now = utcnow()
        values = dict(owner=owner, process=process, acquired_at=now, renewed_at=now,
                      expires_at=now + timedelta(seconds=ttl_s), process_start=process_start(process))
        holder = self.lock_holder()
        dead = holder is not None and holder.owner != owner and holder.process_state().dead
        stale_owner = holder.owner if dead else None
        with self.engine.begin() as conn:
            updated = conn.execute(
                sync_lock.update()
                .where(sync_lock.c.target == self.target)
                .where(sa.or_(sync_lock.c.owner == owner, sync_lock.c.expires_at < now, sync_lock.c.owner == stale_owner))
                .values(**values)
            ).rowcount
            if updated:
                if holder and holder.owner != owner:
                    state = "dead" if dead else "expired"
                    self._record_lock_event(conn, "taken_over", holder.owner, state, by=owner,
                                            reason=f"its process is gone ({holder.process})" if dead
                                            else f"its lease ended at {holder.expires_at:%Y-%m-%d %H:%M:%S} UTC")
                    log.warning("took over the sync lock from %s (%s)", holder.owner,
                                "its process is gone" if dead else "its lease expired")
                    return True, holder.owner
                return True, None
        try:
            with self.engine.begin() as conn:
                conn.execute(sync_lock.insert().values(target=self.target, **values))
            return True, None
        except sa.exc.IntegrityError:
            return False, None

    def renew_lock(self, owner: str, ttl_s: int) -> bool:
        """Extend the lease of a holder whose lease is still live; False when `owner` does not hold
        it any more (released, taken over) or its lease already ended (anyone may take it over)."""
        now = utcnow()
        with self.engine.begin() as conn:
            return bool(conn.execute(
                sync_lock.update()
                .where(sync_lock.c.target == self.target, sync_lock.c.owner == owner, sync_lock.c.expires_at >= now)
                .values(renewed_at=now, expires_at=now + timedelta(seconds=ttl_s))
            ).rowcount)

    def release_lock(self, owner: str) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(sync_lock.delete().where(sync_lock.c.target == self.target, sync_lock.c.owner == owner)).rowcount
            )

    def break_lock(self, holder: LockHolder, *, event: str, holder_state: str, by: str, reason: str,
                   unless_renewed: bool) -> tuple[bool, bool]:
        """Release another run's lock (`unlock`): delete the row, mark its run abandoned and record
        the event, in one transaction. With `unless_renewed`, only if the lease did not move since
        `holder` was read (the holder was judged dead or expired on that row).
        Returns (released, whether a running run was marked abandoned)."""
        now = utcnow()
        where = [sync_lock.c.target == self.target, sync_lock.c.owner == holder.owner]
        if unless_renewed:
            where.append(sync_lock.c.expires_at == holder.expires_at)
        with self.engine.begin() as conn:
            if not conn.execute(sync_lock.delete().where(*where)).rowcount:
                return False, False
            abandoned = conn.execute(
                runs.update().where(runs.c.run_id == holder.owner, runs.c.state == RUNNING)
                .values(state=FAILED, ended_at=now, error=f"abandoned: {reason}")
            ).rowcount
            self._record_lock_event(conn, event, holder.owner, holder_state, by=by, reason=reason)
        return True, bool(abandoned)

    def lock_holder(self) -> LockHolder | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sync_lock).where(sync_lock.c.target == self.target)).one_or_none()
        if row is None:
            return None
        return LockHolder(row.owner, row.process, _aware(row.acquired_at), _aware(row.expires_at),
                          _aware(row.renewed_at or row.acquired_at), row.process_start or "")

    def lock_events(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last releases and take-overs of this target's lock, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(lock_events).where(lock_events.c.target == self.target)
                .order_by(lock_events.c.happened_at.desc(), lock_events.c.id.desc()).limit(limit)
            ).all()
        return [{**dict(r._mapping), "happened_at": _aware(r.happened_at).isoformat(timespec="seconds")} for r in rows]

    def _record_lock_event(self, conn: sa.Connection, event: str, owner: str, holder_state: str, *, by: str,
                           reason: str) -> None:
        conn.execute(lock_events.insert().values(target=self.target, happened_at=utcnow(), event=event, owner=owner,
                                                 holder_state=holder_state, done_by=by[:250], reason=reason))


_LOCK_ATTEMPTS = 3
# A transaction the database chose to fail for another's sake: deadlock, lock wait timeout, serialization.
_CONFLICT_CODES = {"40P01", "40001", 1213, 1205}


def _lost_to_another_writer(exc: sa.exc.DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or (orig.args[0] if getattr(orig, "args", None) else None)
    return code in _CONFLICT_CODES or "database is locked" in str(orig)


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
