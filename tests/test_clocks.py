"""One run instant for date questions, one injectable clock for operational time."""

from __future__ import annotations

import ast
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from catalog_sync import clock
from catalog_sync.clock import FakeClock
from catalog_sync.magento.catalog_reader import MagentoCatalogReader, read_only_engine
from catalog_sync.run_clock import local_date, parse_instant
from catalog_sync.settings import ConfigurationError, SyncSettings
from catalog_sync.state.status_store import StatusStore, SyncLockedError
from sync_helpers import steps_until_commit

pytestmark = pytest.mark.dates

ENGINE = Path(__file__).resolve().parents[1] / "include" / "catalog_sync"
# The two clock modules, and the parts outside the engine proper (a test double, a data generator).
EXEMPT = {"clock.py", "run_clock.py"}
EXEMPT_FOLDERS = {"receiver", "demo"}
CLOCK_CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("time", "perf_counter"), ("time", "perf_counter_ns"), ("time", "sleep"), ("time", "localtime"),
    ("time", "gmtime"),
}


def _clock_reads(path: Path, root: Path = ENGINE) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.attr) in CLOCK_CALLS:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [f"{path.relative_to(root)}:{node.lineno}: from time import {a.name}" for a in node.names
                      if ("time", a.name) in CLOCK_CALLS]
    return found


def test_no_clock_is_read_in_the_engine_outside_the_two_clock_modules():
    files = [p for p in ENGINE.rglob("*.py")
             if p.name not in EXEMPT and not EXEMPT_FOLDERS & set(p.relative_to(ENGINE).parts[:-1])]
    assert len(files) > 30  # the scan looks at the engine, not at an empty folder
    assert [hit for path in files for hit in _clock_reads(path)] == []


def test_the_scan_finds_each_kind_of_clock_read(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nfrom time import monotonic\nimport datetime as dt\n"
                     "a = datetime.now()\nb = dt.datetime.utcnow()\nc = date.today()\nd = time.perf_counter()\n")
    hits = _clock_reads(probe, tmp_path)
    assert [h.split(": ", 1)[1] for h in hits] == [
        "from time import monotonic", "datetime.now", "datetime.utcnow", "date.today", "time.perf_counter"]


def test_an_instant_needs_its_offset_and_is_kept_in_utc():
    assert parse_instant("2026-12-01T03:00:00Z") == datetime(2026, 12, 1, 3, tzinfo=timezone.utc)
    assert parse_instant("2026-12-01T12:00:00+09:00") == datetime(2026, 12, 1, 3, tzinfo=timezone.utc)
    with pytest.raises(ConfigurationError, match="with its offset, e.g. 2026-12-01T03:00:00Z"):
        parse_instant("2026-12-01T03:00:00")
    with pytest.raises(ConfigurationError, match="CATALOG_SYNC_NOW must be"):
        parse_instant("yesterday")


@pytest.mark.parametrize(("instant", "zone", "day"), [
    ("2026-12-02T02:59:59Z", "America/Sao_Paulo", date(2026, 12, 1)),  # UTC-3, no daylight saving since 2019
    ("2026-12-02T03:00:00Z", "America/Sao_Paulo", date(2026, 12, 2)),
    ("2026-12-01T14:59:59Z", "Asia/Tokyo", date(2026, 12, 1)),  # UTC+9
    ("2026-12-01T15:00:00Z", "Asia/Tokyo", date(2026, 12, 2)),
    ("2027-03-14T09:59:59Z", "America/Los_Angeles", date(2027, 3, 14)),  # the day daylight saving starts
    ("2027-12-31T23:59:59Z", "UTC", date(2027, 12, 31)),
])
def test_a_stores_local_date_comes_from_the_instant_and_its_zone(instant, zone, day):
    assert local_date(parse_instant(instant), zone) == day


def test_an_unknown_time_zone_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus' in Magento's general/locale/timezone"):
        local_date(parse_instant("2026-12-01T00:00:00Z"), "Mars/Olympus")


def test_the_old_day_setting_is_refused_with_the_new_one_named(monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_TODAY", "2026-12-01")
    with pytest.raises(ConfigurationError, match="CATALOG_SYNC_TODAY is replaced by CATALOG_SYNC_NOW"):
        SyncSettings.from_env(source_url="sqlite:///x.db", target_url="file:///t", state_url="/s")
    monkeypatch.delenv("CATALOG_SYNC_TODAY")
    monkeypatch.setenv("CATALOG_SYNC_NOW", "2026-12-01T03:00:00Z")
    settings = SyncSettings.from_env(source_url="sqlite:///x.db", target_url="file:///t", state_url="/s")
    assert settings.now == datetime(2026, 12, 1, 3, tzinfo=timezone.utc)


def test_time_zones_follow_magentos_scope_fallback(sync_env):
    """Store view, then website, then default scope; nothing set anywhere: Magento's own default
    (America/Los_Angeles, app/code/Magento/Directory/etc/config.xml)."""
    def zones() -> dict[str, str]:
        engine = read_only_engine(sync_env.source_url)
        try:
            return {v.code: v.timezone for v in MagentoCatalogReader(engine).load_context().store_views}
        finally:
            engine.dispose()

    assert zones() == {"default": "UTC", "store_view_2": "UTC"}  # the demo sets UTC at default scope
    sync_env.execute("DELETE FROM core_config_data WHERE path = 'general/locale/timezone'")
    assert zones() == {"default": "America/Los_Angeles", "store_view_2": "America/Los_Angeles"}
    website = sync_env.scalar("SELECT website_id FROM store WHERE code = 'store_view_2'")
    sync_env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) VALUES "
                     "('websites', :w, 'general/locale/timezone', 'Europe/Paris')", params={"w": website})
    sync_env.execute("INSERT INTO core_config_data (scope, scope_id, path, value) VALUES "
                     "('stores', 1, 'general/locale/timezone', 'Asia/Tokyo')")
    assert zones() == {"default": "Asia/Tokyo", "store_view_2": "Europe/Paris"}


def test_status_times_and_leases_follow_the_operational_clock_not_the_pinned_instant(sync_env, capsys, monkeypatch):
    """A replay pinned in 2020 still takes a lease that ends a lease-length after the real now,
    records its run at the real now, and writes exported_at at the pinned instant."""
    import pyarrow.parquet as pq

    from catalog_sync import steps
    from catalog_sync.steps import SyncRequest

    real_now = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    monkeypatch.setenv("CATALOG_SYNC_NOW", "2020-01-01T00:00:00Z")
    settings = SyncSettings.from_env(source_url=sync_env.source_url, target_url=sync_env.target_url,
                                     state_url=str(sync_env.state_dir))
    with clock.use(FakeClock(real_now)):
        run = steps.plan(settings, SyncRequest("pinned-replay"))
        holder = StatusStore(settings.status_url).lock_holder()
        assert (holder.acquired_at, holder.expires_at) == (real_now, real_now + timedelta(seconds=settings.lock_ttl_s))
        assert (run.instant, run.started_at) == ("2020-01-01T00:00:00+00:00", "2026-12-01T08:00:00+00:00")
        steps_until_commit(settings, run)
        steps.commit(settings, run)
        steps.report(settings, run)
    status = StatusStore(settings.status_url).get_run("pinned-replay")
    assert status["started_at"] == "2026-12-01T08:00:00+00:00"
    manifest = json.loads((sync_env.state_dir / "manifest.json").read_text())
    for feed, files in manifest["feeds"].items():
        exported = pq.read_table(sync_env.state_dir / files["file"], columns=["exported_at", "judged_on"])
        if feed == "product_layers":  # two store views on two locales: no view is a layer
            assert exported.num_rows == 0
            continue
        assert set(exported.column("exported_at").to_pylist()) == {"2020-01-01T00:00:00+00:00"}, feed
    prices = pq.read_table(sync_env.state_dir / manifest["feeds"]["prices"]["file"], columns=["judged_on"])
    assert set(prices.column("judged_on").to_pylist()) == {"2020-01-01"}


def test_a_lease_expires_by_the_operational_clock(tmp_path):
    fake = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc))
    with clock.use(fake):
        store = StatusStore(f"sqlite:///{tmp_path / 'status.db'}")
        store.acquire_lock("crashed-run", 3600)
        fake.advance(3599)
        with pytest.raises(SyncLockedError, match="being synced by crashed-run"):
            store.acquire_lock("next-run", 3600)
        fake.advance(2)
        assert store.acquire_lock("next-run", 3600) == "crashed-run"


def test_run_keys_sort_in_run_order_whatever_instant_is_pinned(sync_env, capsys, monkeypatch):
    """Delta files are named after the operational start, so a replay pinned earlier still sorts last."""
    fake = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc))
    with clock.use(fake):
        monkeypatch.setenv("CATALOG_SYNC_NOW", "2026-12-01T07:00:00Z")
        sync_env.sync(capsys, "--full", "--cleanup")
        first = sync_env.delta_files()
        fake.advance(1)
        monkeypatch.setenv("CATALOG_SYNC_NOW", "2020-01-01T00:00:00Z")
        sync_env.sync(capsys, "--full", "--cleanup")
    runs = [p.name for p in sorted((sync_env.target_dir / "deltas").iterdir())]
    assert len(runs) == 2 and sorted(runs) == runs  # the replay pinned in 2020 sorts after the first run
    assert [p.parent.name for p in sync_env.delta_files()][:len(first)] == [runs[0]] * len(first)
