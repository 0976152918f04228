"""The sync lock while a run works: its heartbeat, the commit's check, and what `status` and `unlock` say.

A run's lease is renewed every quarter of its length by a thread in whichever process runs a
step of the run (each Airflow task, or the CLI's one process), so a run may take as long as it
needs, while a run that died frees the target one lease after its last renewal. Renewal only
extends a live lease: once a lease has passed, anyone may take the lock over, so the late run
has lost it and its commit refuses.
"""

from __future__ import annotations

import getpass
import logging
import os
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from catalog_sync import clock
from catalog_sync.state.holder_process import ProcessState, this_process
from catalog_sync.state.status_store import LockHolder, StatusStore

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often (real seconds) the heartbeat thread looks at the operational clock
RETRY_S = 15.0  # after a failed renewal (the store unreachable): the lease has three more quarters
_TIME = "%Y-%m-%d %H:%M:%S"


class LockLostError(RuntimeError):
    """The run no longer holds the sync lock: released, taken over, or its lease ended."""


class LockState(str, Enum):
    LIVE = "live"  # a process on this host that still runs
    DEAD = "dead"  # a process on this host that is gone (or whose pid now runs another process)
    EXPIRED = "expired"  # its lease passed: the next sync takes it over
    UNKNOWN = "unknown"  # another host, or an Airflow run: only its renewals tell


@dataclass(frozen=True)
class LockStatus:
    holder: LockHolder
    state: LockState
    detail: str  # what is known of the holder, one line
    hint: str  # what to do about it ('' while it runs)
    checked_at: datetime

    @property
    def releasable(self) -> bool:
        """What `unlock` releases without --force."""
        return self.state in (LockState.DEAD, LockState.EXPIRED)

    @property
    def line(self) -> str:
        return f"{self.detail}; {self.hint}" if self.hint else self.detail

    def to_dict(self) -> dict[str, Any]:
        h = self.holder
        return {"owner": h.owner, "state": self.state.value, "detail": self.detail, "hint": self.hint, "process": h.process,
                "acquired_at": h.acquired_at.isoformat(timespec="seconds"),
                "renewed_at": h.renewed_at.isoformat(timespec="seconds"),
                "expires_at": h.expires_at.isoformat(timespec="seconds"),
                "renewed_s_ago": round((self.checked_at - h.renewed_at).total_seconds())}


RELEASE_HINT = "`python -m catalog_sync unlock` releases it, or the next sync takes it over"
FORCE_HINT = "if that run is gone, `python -m catalog_sync unlock --force` releases it"


def lock_status(holder: LockHolder, now: datetime | None = None) -> LockStatus:
    now = now or clock.now()
    process = holder.process_state()
    renewed = f"last renewed {holder.renewed_at:{_TIME}} UTC ({(now - holder.renewed_at).total_seconds():.0f} s ago)"
    lease = f"{renewed}, lease until {holder.expires_at:{_TIME}} UTC"
    if process.dead:
        why = "its pid now runs another process" if process is ProcessState.REUSED else "its process is gone"
        return LockStatus(holder, LockState.DEAD, f"sync lock held by a dead run: {holder.owner} ({holder.process} on this "
                          f"host: {why}; {renewed})", RELEASE_HINT, now)
    if holder.expired(now):
        return LockStatus(holder, LockState.EXPIRED, f"sync lock expired: {holder.owner} ({renewed}, lease ended "
                          f"{holder.expires_at:{_TIME}} UTC)", RELEASE_HINT, now)
    if process is ProcessState.ALIVE:
        return LockStatus(holder, LockState.LIVE, f"sync in progress: {holder.owner} ({holder.process}, running on this "
                          f"host; {lease})", "", now)
    where = f"process {holder.process} on another host" if holder.process else "an Airflow run, renewed by its tasks"
    return LockStatus(holder, LockState.UNKNOWN, f"sync lock held by {holder.owner} ({where}: whether it still runs cannot "
                      f"be checked from here; {lease})", FORCE_HINT, now)


class Heartbeat:
    """Renews `owner`'s lease every `every_s` (a quarter lease) of operational time, from a thread."""

    def __init__(self, store: StatusStore, owner: str, lease_s: int, every_s: float | None = None):
        self.store, self.owner, self.lease_s = store, owner, lease_s
        self.every_s = every_s if every_s is not None else lease_s / 4
        self.renewals = 0
        self.lost: str | None = None  # why the run no longer holds the lock, once it does not
        self._due = clock.monotonic() + self.every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None  # a pipe: stop() writes to it to end the thread's wait

    def renew(self) -> bool:
        if self.lost is not None:
            return False
        if self.store.renew_lock(self.owner, self.lease_s):
            self.renewals += 1
            return True
        self.lost = lost_reason(self.store, self.owner)
        log.error("sync lock lost: %s", self.lost)
        return False

    def tick(self) -> None:
        """Renew if due (the thread calls this; a test calls it after moving a FakeClock)."""
        started = clock.monotonic()
        if self.lost is not None or started < self._due:
            return
        try:
            self.renew()
            self._due = started + self.every_s  # from when it was done, however long the store took
        except Exception as exc:  # a thread must not die of a passing outage
            self.failed(exc)

    def failed(self, exc: Exception) -> None:
        """A renewal could not reach the store: try again soon, the lease has three more quarters."""
        log.warning("could not renew the sync lock of %s (retrying): %s: %s", self.owner, type(exc).__name__, exc)
        self._due = clock.monotonic() + min(self.every_s, RETRY_S)

    def start(self) -> None:
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(self._wake[0],), daemon=True,
                                        name=f"sync-lock-heartbeat-{self.owner}"[:60])
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is None or self._wake is None:
            return
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=30)
        if not self._thread.is_alive():  # (one stuck in a renewal keeps its pipe)
            for fd in self._wake:
                os.close(fd)
        self._wake = None

    def _run(self, wake_fd: int) -> None:
        while not self._stop.is_set():
            # A relative wait: Event.wait(timeout) waits for an absolute monotonic deadline, which
            # never comes when the process's clock is shifted (libfaketime, in the date test runs).
            select.select([wake_fd], [], [], POLL_S)
            if not self._stop.is_set():
                self.tick()


@contextmanager
def heartbeat(store: StatusStore, owner: str, lease_s: int, *, strict: bool = True) -> Iterator[Heartbeat]:
    """Renew `owner`'s lease while the block runs. It renews once on entry: `strict` refuses to start
    the block (LockLostError) when the run does not hold a live lease; otherwise the block runs anyway
    (report must record the run even then) and the commit refuses."""
    beat = Heartbeat(store, owner, lease_s)
    try:
        beat.renew()
    except Exception as exc:
        if strict:
            raise
        beat.failed(exc)
    if beat.lost is not None and strict:
        raise LockLostError(f"{beat.lost}; the step did not start, nothing was committed")
    if beat.lost is None:
        beat.start()
    try:
        yield beat
    finally:
        beat.stop()


@contextmanager
def taken(store: StatusStore, owner: str, lease_s: int, *, process: str = "") -> Iterator[str | None]:
    """Take the lock (SyncLockedError when another run holds it), renew it while the block runs, and
    release it if the block fails. Yields the owner of a stale lock that was taken over, if any."""
    stale = store.acquire_lock(owner, lease_s, process=process)
    try:
        if stale:
            store.abandon_run(stale, f"abandoned: the run died without reporting; its lock was taken over by {owner}")
        with heartbeat(store, owner, lease_s):
            yield stale
    except BaseException:
        store.release_lock(owner)
        raise


def require_lock(store: StatusStore, owner: str) -> LockHolder:
    """The commit's check: `owner` holds the lock and its lease is live; LockLostError otherwise."""
    holder = store.lock_holder()
    if holder is None or holder.owner != owner or holder.expired(clock.now()):
        raise LockLostError(f"{lost_reason(store, owner, holder)}; nothing was committed, the next run sends it again")
    return holder


def lost_reason(store: StatusStore, owner: str, holder: LockHolder | None = None) -> str:
    holder = holder or store.lock_holder()
    prefix = f"run {owner} no longer holds the sync lock of target {store.target!r}"
    if holder is None:
        return f"{prefix}: it was released (`status` lists who released it)"
    if holder.owner != owner:
        return f"{prefix}: {holder.owner} holds it since {holder.acquired_at:{_TIME}} UTC"
    return (f"{prefix}: its lease ended at {holder.expires_at:{_TIME}} UTC (last renewed {holder.renewed_at:{_TIME}} "
            "UTC): any sync may take it over")


@dataclass(frozen=True)
class UnlockOutcome:
    released: bool
    refused: bool
    message: str


def unlock(store: StatusStore, *, force: bool, by: str | None = None) -> UnlockOutcome:
    """Release the lock of a dead or expired holder; with `force`, of any holder. The holder's run is
    marked abandoned and the release recorded in the store (catalog_sync_lock_events)."""
    by = by or operator()
    holder = store.lock_holder()
    if holder is None:
        return UnlockOutcome(False, False, f"target {store.target!r}: no sync lock is held")
    status = lock_status(holder)
    if not force and not status.releasable:
        advice = (f"{status.hint} (were it still running, its commit would then refuse)" if status.hint
                  else "--force would release it and make that run's commit refuse")
        return UnlockOutcome(False, True, f"not unlocked: target {store.target!r}: {status.detail}. Without --force only "
                             f"a dead or expired holder is released; {advice}")
    event = "force_unlocked" if force else "unlocked"
    reason = (f"its sync lock was released by `unlock{' --force' if force else ''}` ({by}) at "
              f"{status.checked_at:{_TIME}} UTC; holder {status.state.value}: {status.detail}")
    released, abandoned = store.break_lock(holder, event=event, holder_state=status.state.value, by=by, reason=reason,
                                           unless_renewed=not force)
    if not released:
        return UnlockOutcome(False, True, f"not unlocked: target {store.target!r}: the lock changed meanwhile "
                             "(renewed, released or taken over); see `status`")
    log.warning("sync lock of target %r released (%s) by %s: %s was %s", store.target, event, by, holder.owner,
                status.state.value)
    run = "its run is marked abandoned" if abandoned else "no running run of it was recorded"
    return UnlockOutcome(True, False, f"unlocked target {store.target!r}: released the lock of {holder.owner} "
                         f"({status.state.value}); {run}")


def operator() -> str:
    """Who runs this command: user@host:pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown-user"
    return f"{user}@{this_process()}"
