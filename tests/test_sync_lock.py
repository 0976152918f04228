"""The per-target sync lock that keeps the hourly sync and the full resync apart: its lease, renewed
while a run works, what `status` says of its holder, `unlock`, and the commit's check."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from catalog_sync import cli, clock, steps
from catalog_sync.clock import FakeClock
from catalog_sync.settings import ConfigurationError, SyncSettings
from catalog_sync.state import sync_lock as lock_module
from catalog_sync.state.status_store import StatusStore, SyncLockedError, sync_lock, this_process, utcnow
from catalog_sync.state.sync_lock import Heartbeat, LockLostError, LockState, heartbeat, lock_status, operator, require_lock
from catalog_sync.steps import SyncRequest
from status_store_helpers import BACKENDS, empty_store_url
from sync_helpers import steps_until_commit

pytestmark = pytest.mark.dates  # leases live on the operational clock

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
LEASE = 1800
HOST = this_process().rsplit(":", 1)[0]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return f"{at(seconds):%Y-%m-%d %H:%M:%S}"


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """An empty status store: SQLite, PostgreSQL, MariaDB (the lock is one row in any of them)."""
    with empty_store_url(request.param, tmp_path / "store") as url:
        yield url


@pytest.fixture
def store(store_url):
    status = StatusStore(store_url)
    yield status
    status.dispose()


@pytest.fixture
def fake():
    with clock.use(FakeClock(T0)) as fake_clock:
        yield fake_clock


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setattr(lock_module, "POLL_S", 0.01)


def dead_pid() -> str:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return done.stdout.strip()


def wait_until(condition, what: str, timeout_s: float = 20.0) -> None:
    """For the heartbeat thread to act on a moved FakeClock (real seconds, only as a safety net)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_one_holder_at_a_time(store):
    store.acquire_lock("catalog_sync__run1", 3600)

    with pytest.raises(SyncLockedError, match="being synced by catalog_sync__run1"):
        store.acquire_lock("catalog_full_resync__run7", 3600)

    store.acquire_lock("catalog_sync__run1", 3600)  # a retry of the holder's task
    assert store.release_lock("catalog_full_resync__run7") is False  # not the holder: no effect
    assert store.lock_holder().owner == "catalog_sync__run1"
    assert store.release_lock("catalog_sync__run1") is True
    store.acquire_lock("catalog_full_resync__run7", 3600)
    assert store.lock_holder().owner == "catalog_full_resync__run7"


def test_expired_lease_is_taken_over(store):
    store.acquire_lock("catalog_sync__crashed", 3600)
    with store.engine.begin() as conn:
        conn.execute(sa.update(sync_lock).values(expires_at=utcnow() - timedelta(seconds=1)))

    assert store.acquire_lock("catalog_sync__next", 3600) == "catalog_sync__crashed"
    assert store.lock_holder().owner == "catalog_sync__next"


def test_lock_of_a_dead_cli_process_is_taken_over_but_not_a_live_one(store):
    store.acquire_lock("cli-dead", 3600, process=f"{HOST}:{dead_pid()}")

    assert store.acquire_lock("cli-next", 3600, process=this_process()) == "cli-dead"

    with pytest.raises(SyncLockedError):
        store.acquire_lock("cli-third", 3600, process=f"{HOST}:99999999")


def test_airflow_locks_are_never_taken_over_by_process_liveness(store):
    # Airflow runs span many short task processes: the lock records no process and lives by its lease.
    store.acquire_lock("catalog_sync__manual__1", 3600)
    with pytest.raises(SyncLockedError):
        store.acquire_lock("catalog_full_resync__manual__2", 3600, process=this_process())


# ---- the lease and its renewal ---------------------------------------------------------------


def test_a_live_lease_is_renewed_and_one_that_ended_is_not(store, fake):
    store.acquire_lock("catalog_sync__a", LEASE)
    fake.advance(1000)

    assert store.renew_lock("catalog_sync__a", LEASE) is True
    holder = store.lock_holder()
    assert (holder.acquired_at, holder.renewed_at, holder.expires_at) == (T0, at(1000), at(2800))
    assert store.renew_lock("catalog_sync__other", LEASE) is False  # only the holder renews

    fake.advance(1801)  # past the lease: anyone may take it over now, so the late run has lost it
    assert store.renew_lock("catalog_sync__a", LEASE) is False
    assert store.lock_holder().expires_at == at(2800)


def test_the_heartbeat_renews_every_quarter_lease_so_a_run_outlasts_any_lease(store, fake):
    store.acquire_lock("catalog_sync__long", LEASE)
    beat = Heartbeat(store, "catalog_sync__long", LEASE)

    fake.advance(449)
    beat.tick()
    assert (beat.renewals, store.lock_holder().renewed_at) == (0, T0)
    fake.advance(1)
    beat.tick()
    assert (beat.renewals, store.lock_holder().renewed_at, store.lock_holder().expires_at) == (1, at(450), at(2250))

    for _ in range(39):  # five hours of export at the API's request limit
        fake.advance(450)
        beat.tick()
    assert beat.renewals == 40 and beat.lost is None
    holder = store.lock_holder()
    assert (holder.acquired_at, holder.renewed_at, holder.expires_at) == (T0, at(18_000), at(19_800))
    with pytest.raises(SyncLockedError, match="being synced by catalog_sync__long"):
        store.acquire_lock("catalog_full_resync__waiting", LEASE)


def test_the_heartbeat_thread_renews_while_its_block_runs_and_stops_after(store, fake, fast_heartbeat):
    store.acquire_lock("catalog_sync__a", LEASE)

    with heartbeat(store, "catalog_sync__a", LEASE) as beat:
        assert beat.renewals == 1  # on entry
        fake.advance(450)
        wait_until(lambda: beat.renewals == 2, "the second renewal")
        assert store.lock_holder().renewed_at == at(450)
        fake.advance(450)
        wait_until(lambda: beat.renewals == 3, "the third renewal")
    assert not beat._thread.is_alive()
    assert store.lock_holder().expires_at == at(900 + LEASE)


def test_a_renewal_that_cannot_reach_the_store_is_retried_soon(store, fake, monkeypatch):
    store.acquire_lock("catalog_sync__a", LEASE)
    beat = Heartbeat(store, "catalog_sync__a", LEASE)
    real_renew = store.renew_lock
    outage = [sa.exc.OperationalError("UPDATE catalog_sync_lock", {}, Exception("server closed the connection"))]

    def flaky_renew(owner, ttl_s):
        if outage:
            raise outage.pop()
        return real_renew(owner, ttl_s)

    monkeypatch.setattr(store, "renew_lock", flaky_renew)
    fake.advance(450)
    beat.tick()
    assert (beat.renewals, beat.lost) == (0, None)
    fake.advance(14)
    beat.tick()
    assert beat.renewals == 0
    fake.advance(1)  # 15 s later, not a quarter lease
    beat.tick()
    assert (beat.renewals, store.lock_holder().renewed_at) == (1, at(465))


def test_a_step_of_a_run_that_lost_its_lock_does_not_start(store, fake):
    store.acquire_lock("catalog_sync__late", LEASE)
    fake.advance(LEASE + 1)

    with pytest.raises(LockLostError) as lapsed:
        with heartbeat(store, "catalog_sync__late", LEASE):
            pytest.fail("the step ran")
    assert str(lapsed.value) == (
        "run catalog_sync__late no longer holds the sync lock of target 'default': its lease ended at "
        f"{stamp(LEASE)} UTC (last renewed {stamp(0)} UTC): any sync may take it over; the step did not start, nothing "
        "was committed")

    assert store.acquire_lock("catalog_full_resync__next", LEASE) == "catalog_sync__late"
    with pytest.raises(LockLostError) as taken:
        with heartbeat(store, "catalog_sync__late", LEASE):
            pytest.fail("the step ran")
    lost = f"run catalog_sync__late no longer holds the sync lock of target 'default': catalog_full_resync__next holds it " \
           f"since {stamp(LEASE + 1)} UTC"
    assert str(taken.value) == f"{lost}; the step did not start, nothing was committed"

    ran = []
    with heartbeat(store, "catalog_sync__late", LEASE, strict=False) as beat:  # report: records the run anyway
        ran.append(beat.lost)
    assert ran == [lost]


def test_the_heartbeat_notices_a_lock_released_under_it(store, fake, caplog):
    store.acquire_lock("catalog_sync__a", LEASE)
    beat = Heartbeat(store, "catalog_sync__a", LEASE)
    store.release_lock("catalog_sync__a")

    fake.advance(450)
    with caplog.at_level(logging.ERROR, logger="catalog_sync.state.sync_lock"):
        beat.tick()
    lost = ("run catalog_sync__a no longer holds the sync lock of target 'default': it was released "
            "(`status` lists who released it)")
    assert (beat.renewals, beat.lost) == (0, lost)
    assert caplog.messages == [f"sync lock lost: {lost}"]
    fake.advance(450)
    beat.tick()  # no more attempts
    assert store.lock_holder() is None


# ---- what is known of a holder ------------------------------------------------------------------


def test_lock_status_tells_live_dead_reused_expired_and_unknown(store, fake):
    me, gone = this_process(), f"{HOST}:{dead_pid()}"
    renewed = f"last renewed {stamp(0)} UTC (300 s ago)"

    def status_of(owner: str, process: str = "", start: str | None = None):
        store.acquire_lock(owner, LEASE, process=process)
        if start is not None:
            with store.engine.begin() as conn:
                conn.execute(sa.update(sync_lock).values(process_start=start))
        fake.advance(300)
        status = lock_status(store.lock_holder())
        store.release_lock(owner)
        fake.advance(-300)
        return status.state, status.line

    assert status_of("cli-live", me) == (
        LockState.LIVE, f"sync in progress: cli-live ({me}, running on this host; {renewed}, lease until {stamp(LEASE)} UTC)")
    assert status_of("cli-dead", gone) == (
        LockState.DEAD, f"sync lock held by a dead run: cli-dead ({gone} on this host: its process is gone; {renewed}); "
                        "`python -m catalog_sync unlock` releases it, or the next sync takes it over")
    assert status_of("cli-reused", me, start="another-boot:1") == (
        LockState.DEAD, f"sync lock held by a dead run: cli-reused ({me} on this host: its pid now runs another process; "
                        f"{renewed}); `python -m catalog_sync unlock` releases it, or the next sync takes it over")
    assert status_of("cli-elsewhere", "worker-7:4242") == (
        LockState.UNKNOWN, "sync lock held by cli-elsewhere (process worker-7:4242 on another host: whether it still runs "
                           f"cannot be checked from here; {renewed}, lease until {stamp(LEASE)} UTC); if that run is "
                           "gone, `python -m catalog_sync unlock --force` releases it")
    assert status_of("catalog_sync__manual__1") == (
        LockState.UNKNOWN, "sync lock held by catalog_sync__manual__1 (an Airflow run, renewed by its tasks: whether it "
                           f"still runs cannot be checked from here; {renewed}, lease until {stamp(LEASE)} UTC); if that "
                           "run is gone, `python -m catalog_sync unlock --force` releases it")

    store.acquire_lock("catalog_sync__manual__2", LEASE)
    fake.advance(LEASE + 60)
    expired = lock_status(store.lock_holder())
    assert (expired.state, expired.line) == (
        LockState.EXPIRED, f"sync lock expired: catalog_sync__manual__2 (last renewed {stamp(0)} UTC (1860 s ago), lease "
                           f"ended {stamp(LEASE)} UTC); `python -m catalog_sync unlock` releases it, or the next sync "
                           "takes it over")


def test_a_reused_pid_is_a_dead_holder_whose_lock_is_taken_over_and_recorded(store, fake):
    store.acquire_lock("cli-before-the-restart", LEASE, process=this_process())
    with store.engine.begin() as conn:  # as if the container restarted and a new process got the same pid
        conn.execute(sa.update(sync_lock).values(process_start="another-boot:1"))
    fake.advance(60)

    assert store.acquire_lock("cli-after-the-restart", LEASE, process=this_process()) == "cli-before-the-restart"
    assert store.lock_events() == [{
        "id": 1, "target": "default", "happened_at": at(60).isoformat(), "event": "taken_over",
        "owner": "cli-before-the-restart", "holder_state": "dead", "done_by": "cli-after-the-restart",
        "reason": f"its process is gone ({this_process()})"}]


def test_status_says_what_is_known_of_the_holder(store, store_url, fake, capsys):
    url = store_url
    store.acquire_lock("catalog_sync__scheduled__1", LEASE)
    store.start_run("catalog_sync__scheduled__1", "incremental", dry_run=False)
    fake.advance(120)

    assert cli.main(["status", "--status-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("sync lock held by catalog_sync__scheduled__1 (an Airflow run, renewed by its tasks: whether it "
                        f"still runs cannot be checked from here; last renewed {stamp(0)} UTC (120 s ago), lease until "
                        f"{stamp(LEASE)} UTC); if that run is gone, `python -m catalog_sync unlock --force` releases it")
    assert lines[2].split() == [T0.isoformat(), "running", "incremental", "catalog_sync__scheduled__1"]

    fake.advance(LEASE)
    assert cli.main(["status", "--status-url", url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lock"] == {
        "owner": "catalog_sync__scheduled__1", "state": "expired", "process": "",
        "detail": f"sync lock expired: catalog_sync__scheduled__1 (last renewed {stamp(0)} UTC (1920 s ago), lease ended "
                  f"{stamp(LEASE)} UTC)",
        "hint": "`python -m catalog_sync unlock` releases it, or the next sync takes it over",
        "acquired_at": T0.isoformat(), "renewed_at": T0.isoformat(), "expires_at": at(LEASE).isoformat(),
        "renewed_s_ago": 1920}
    assert shown["lock_events"] == [] and [r["run_id"] for r in shown["runs"]] == ["catalog_sync__scheduled__1"]


# ---- unlock -------------------------------------------------------------------------------------------


def test_unlock_releases_only_a_dead_or_expired_holder(store, store_url, fake, capsys, caplog):
    url = store_url
    unlock = ["unlock", "--status-url", url]

    assert cli.main(unlock) == 0
    assert capsys.readouterr().out == "target 'default': no sync lock is held\n"

    store.acquire_lock("cli-live", LEASE, process=this_process())
    assert cli.main(unlock) == 3
    err = capsys.readouterr().err
    assert err == (f"not unlocked: target 'default': sync in progress: cli-live ({this_process()}, running on this host; "
                   f"last renewed {stamp(0)} UTC (0 s ago), lease until {stamp(LEASE)} UTC). Without --force only a dead "
                   "or expired holder is released; --force would release it and make that run's commit refuse\n")
    store.release_lock("cli-live")

    store.acquire_lock("catalog_sync__manual__1", LEASE)
    store.start_run("catalog_sync__manual__1", "full", dry_run=False)
    fake.advance(LEASE - 1)
    assert cli.main(unlock) == 3
    assert capsys.readouterr().err.startswith("not unlocked: target 'default': sync lock held by catalog_sync__manual__1 "
                                              "(an Airflow run, renewed by its tasks")
    assert store.lock_holder().owner == "catalog_sync__manual__1"

    fake.advance(2)
    with caplog.at_level(logging.WARNING, logger="catalog_sync.state.sync_lock"):
        assert cli.main(unlock) == 0
    assert capsys.readouterr().out == ("unlocked target 'default': released the lock of catalog_sync__manual__1 (expired); "
                                       "its run is marked abandoned\n")
    by = operator()
    assert caplog.messages == [f"sync lock of target 'default' released (unlocked) by {by}: catalog_sync__manual__1 was "
                               "expired"]
    assert store.lock_holder() is None
    reason = (f"its sync lock was released by `unlock` ({by}) at {stamp(LEASE + 1)} UTC; holder expired: sync lock "
              f"expired: catalog_sync__manual__1 (last renewed {stamp(0)} UTC ({LEASE + 1} s ago), lease ended "
              f"{stamp(LEASE)} UTC)")
    run = store.get_run("catalog_sync__manual__1")
    assert (run["state"], run["ended_at"], run["error"]) == ("failed", at(LEASE + 1).isoformat(), f"abandoned: {reason}")
    assert store.lock_events() == [{"id": 1, "target": "default", "happened_at": at(LEASE + 1).isoformat(),
                                    "event": "unlocked", "owner": "catalog_sync__manual__1", "holder_state": "expired",
                                    "done_by": by, "reason": reason}]

    store.acquire_lock("cli-crashed", LEASE, process=f"{HOST}:{dead_pid()}")
    assert cli.main(unlock) == 0
    assert capsys.readouterr().out == ("unlocked target 'default': released the lock of cli-crashed (dead); no running run "
                                       "of it was recorded\n")
    assert [(e["event"], e["owner"], e["holder_state"]) for e in store.lock_events()] == [
        ("unlocked", "cli-crashed", "dead"), ("unlocked", "catalog_sync__manual__1", "expired")]


def test_unlock_force_releases_a_running_holder_whose_commit_then_refuses(sync_env, fake, capsys):
    settings = SyncSettings(source_url=sync_env.source_url, target_url=sync_env.target_url, state_url=str(sync_env.state_dir))
    run = steps.plan(settings, SyncRequest("catalog_sync__manual__forced"))
    steps_until_commit(settings, run)
    fake.advance(60)

    assert cli.main(["unlock", "--state-url", str(sync_env.state_dir)]) == 3  # an Airflow run: it may still work
    assert cli.main(["unlock", "--force", "--state-url", str(sync_env.state_dir)]) == 0
    assert capsys.readouterr().out == ("unlocked target 'default': released the lock of catalog_sync__manual__forced "
                                       "(unknown); its run is marked abandoned\n")

    with pytest.raises(LockLostError) as refused:
        steps.commit(settings, run)
    error = ("run catalog_sync__manual__forced no longer holds the sync lock of target 'default': it was released "
             "(`status` lists who released it); nothing was committed, the next run sends it again")
    assert str(refused.value) == error
    assert not (sync_env.state_dir / "manifest.json").exists()
    summary = steps.report(settings, run, f"commit failed: LockLostError: {refused.value}")
    assert summary["error"] == f"commit failed: LockLostError: {error}" and summary["inserted"] == 0
    store = StatusStore(settings.status_url)
    assert store.get_run("catalog_sync__manual__forced")["state"] == "failed"
    assert [(e["event"], e["holder_state"]) for e in store.lock_events()] == [("force_unlocked", "unknown")]


def test_commit_refuses_a_run_whose_lease_ended(sync_env, fake):
    settings = SyncSettings(source_url=sync_env.source_url, target_url=sync_env.target_url, state_url=str(sync_env.state_dir))
    run = steps.plan(settings, SyncRequest("catalog_sync__manual__slow"))
    steps_until_commit(settings, run)
    fake.advance(settings.lock_ttl_s + 1)  # called one by one here, nothing renewed the lease

    with pytest.raises(LockLostError) as refused:
        steps.commit(settings, run)
    assert str(refused.value) == (
        f"run catalog_sync__manual__slow no longer holds the sync lock of target 'default': its lease ended at "
        f"{stamp(settings.lock_ttl_s)} UTC (last renewed {stamp(0)} UTC): any sync may take it over; nothing was "
        "committed, the next run sends it again")
    assert not (sync_env.state_dir / "manifest.json").exists()
    with pytest.raises(LockLostError):
        require_lock(StatusStore(settings.status_url), "catalog_sync__manual__slow")


def test_a_cli_run_longer_than_its_lease_keeps_the_lock_and_commits(sync_env, fake, fast_heartbeat, capsys, monkeypatch):
    """A full export at the API's request limit outlasts any fixed lease: the run renews it meanwhile."""
    from catalog_sync.steps import sync

    store = StatusStore(f"sqlite:///{sync_env.state_dir / 'status.db'}")
    real_export = sync.export
    seen: list[tuple[str, datetime]] = []

    def slow_export(settings, run, bucket):
        for _ in range(3 * 4):  # three leases, a quarter at a time
            fake.advance(settings.lock_ttl_s / 4)
            wait_until(lambda: store.lock_holder().renewed_at == clock.now(), "the heartbeat's renewal")
        with pytest.raises(SyncLockedError):
            store.acquire_lock("catalog_full_resync__waiting", settings.lock_ttl_s)
        holder = store.lock_holder()
        seen.append((lock_status(holder).state.value, holder.expires_at))
        return real_export(settings, run, bucket)

    monkeypatch.setattr(sync, "export", slow_export)
    monkeypatch.setenv("CATALOG_SYNC_LOCK_LEASE_S", "600")
    summary = sync_env.sync(capsys)

    assert "error" not in summary and summary["mode"] == "full"
    assert seen == [("live", at(3 * 600 + 600))]
    assert store.lock_holder() is None
    assert store.recent_runs(1)[0]["state"] == "success"


def test_the_lease_is_a_setting(monkeypatch):
    base = {"source_url": "sqlite:///x.db", "target_url": "file:///t", "state_url": "/s"}
    assert SyncSettings.from_env(**base).lock_ttl_s == 1800
    monkeypatch.setenv("CATALOG_SYNC_LOCK_LEASE_S", "900")
    assert SyncSettings.from_env(**base).lock_ttl_s == 900
    monkeypatch.setenv("CATALOG_SYNC_LOCK_LEASE_S", "15m")
    with pytest.raises(ConfigurationError, match="the sync lock's lease must be a whole number of seconds; got '15m'"):
        SyncSettings.from_env(**base)
    monkeypatch.setenv("CATALOG_SYNC_LOCK_LEASE_S", "30")
    with pytest.raises(ConfigurationError, match=r"must be a whole number of seconds, at least 60; got 30"):
        SyncSettings.from_env(**base)
