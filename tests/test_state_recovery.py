"""A damaged or lost state is recovered from its own history, or refused until `sync --rebuild`; leftovers go.

Every commit writes manifests/vN.json before manifest.json and keeps the last versions' files: plan
checks the version in force (each file's size and Parquet footer) and, when something is wrong, puts
the newest intact version back in force and reconciles in full, so the target ends equal to the source.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from catalog_sync import cli, clock, steps
from catalog_sync.clock import FakeClock
from catalog_sync.settings import SyncSettings
from catalog_sync.state.status_store import StatusStore
from catalog_sync.steps import SyncRequest
from sync_helpers import SyncEnv, mapped_source, product_key

START = datetime(2026, 2, 10, 12, tzinfo=timezone.utc)


@pytest.fixture
def fake_clock():
    """Operational time (run keys, leases, status timestamps) that moves only when told."""
    with clock.use(FakeClock(START)) as fake:
        yield fake


def _standalone_sku(env: SyncEnv, offset: int = 0) -> str:
    """A simple product on both websites, in no configurable, named at default scope only: 2 products items and 2 prices."""
    return env.scalar(
        "SELECT e.sku FROM catalog_product_entity e WHERE e.type_id = 'simple' "
        "AND (SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
        "AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id "
        "  AND v.attribute_id = 73 AND v.store_id <> 0) "
        "ORDER BY e.entity_id LIMIT 1 OFFSET :o", params={"o": offset})


def _rename(env: SyncEnv, sku: str, name: str) -> None:
    env.execute("UPDATE catalog_product_entity_varchar SET value = :n WHERE attribute_id = 73 AND store_id = 0 "
                "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :s)", params={"n": name, "s": sku})


def _delete(env: SyncEnv, sku: str) -> None:
    env.execute("DELETE FROM catalog_product_entity WHERE sku = :s", params={"s": sku})


def _reason(env: SyncEnv) -> str:
    """The last run's mode_reason, as plan chose it (the status store keeps it; `status --json` shows it)."""
    return _status(env).recent_runs(1)[0]["mode_reason"]


def _manifest(env: SyncEnv) -> dict:
    return json.loads((env.state_dir / "manifest.json").read_text())


def _status(env: SyncEnv) -> StatusStore:
    return StatusStore(f"sqlite:///{env.state_dir / 'status.db'}")


def _assert_converged(env: SyncEnv, gone: str | None = None) -> None:
    target = env.target_state()
    assert target == mapped_source(env.source_url)
    if gone:
        assert product_key(gone, "en-US") not in target["products"] and product_key(gone, "fr-FR") not in target["products"]


def _refused(env: SyncEnv, capsys, *extra: str) -> str:
    """Run a sync that must be refused: exit 2, one line of error, no summary, the lock released."""
    capsys.readouterr()
    before = env.delta_files()
    assert cli.main(env.cli_args(*extra)) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("configuration error:")]
    assert len(lines) == 1, err
    assert env.delta_files() == before  # nothing was sent
    assert _status(env).lock_holder() is None
    return lines[0]


def test_a_lost_manifest_is_recovered_and_what_magento_deleted_meanwhile_is_deleted(sync_env, capsys, caplog):
    sync_env.sync(capsys)
    _rename(sync_env, _standalone_sku(sync_env, 3), "Renamed before the loss")
    sync_env.sync(capsys)
    gone = _standalone_sku(sync_env)
    _delete(sync_env, gone)
    (sync_env.state_dir / "manifest.json").unlink()
    caplog.set_level(logging.INFO)

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "full"
    assert _reason(sync_env) == ("recovered the state: manifest.json is missing; manifests/v00000002.json (v2) is back "
                                      "in force as v3, reconciling in full")
    assert (summary["deleted"], summary["feeds"]["prices"]["deleted"], summary["inserted"], summary["updated"]) == (2, 2, 0, 0)
    _assert_converged(sync_env, gone)
    assert any(r.levelno == logging.WARNING and "manifest.json is missing" in r.getMessage() for r in caplog.records)
    manifest = _manifest(sync_env)
    assert manifest["version"] == 4 and manifest["recovered"] is None and manifest["change_marks"]

    again = sync_env.sync(capsys)
    assert again["mode"] == "incremental" and sync_env.sent == []


def test_a_garbled_manifest_is_recovered_from_its_numbered_copy(sync_env, capsys):
    sync_env.sync(capsys)
    (sync_env.state_dir / "manifest.json").write_text('{"version": 1, "feeds": {"products": {"file": "snap')
    renamed = _standalone_sku(sync_env, 2)
    _rename(sync_env, renamed, "Renamed while the manifest was garbled")

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "full" and summary["updated"] == 2
    assert _reason(sync_env).startswith("recovered the state: manifest.json is unreadable (JSONDecodeError")
    assert _reason(sync_env).endswith("manifests/v00000001.json (v1) is back in force as v2, reconciling in full")
    _assert_converged(sync_env)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_parquet(path: Path) -> None:
    data = path.read_bytes()  # same size, the footer's magic overwritten
    path.write_bytes(data[:-4] + b"XXXX")


@pytest.mark.parametrize(("damage", "problem"), [
    (_truncate, "snapshot/products/v00000002.delta.parquet has {half} bytes, {size} recorded (truncated or rewritten)"),
    (_not_parquet, "snapshot/products/v00000002.delta.parquet is not readable Parquet"),
], ids=["truncated", "not-parquet"])
def test_a_damaged_snapshot_file_is_recovered_from_the_previous_version(sync_env, capsys, damage, problem):
    sync_env.sync(capsys)
    _rename(sync_env, _standalone_sku(sync_env, 1), "Renamed in v2")
    sync_env.sync(capsys)
    products = sync_env.state_dir / "snapshot" / "products" / "v00000002.delta.parquet"  # what v2 changed
    size = products.stat().st_size
    damage(products)
    gone = _standalone_sku(sync_env, 5)
    _delete(sync_env, gone)

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "full" and summary["deleted"] == 2
    reason = _reason(sync_env)
    assert reason.startswith(f"recovered the state: manifest.json (v2): {problem.format(half=size // 2, size=size)}")
    assert "manifests/v00000002.json (v2): snapshot/products/v00000002.delta.parquet" in reason  # its copy names the same file
    assert reason.endswith("manifests/v00000001.json (v1) is back in force as v3, reconciling in full")
    _assert_converged(sync_env, gone)


def test_a_wrong_row_count_in_manifest_json_is_recovered_from_its_own_copy(sync_env, capsys):
    sync_env.sync(capsys)
    manifest = _manifest(sync_env)
    manifest["feeds"]["prices"]["items"] += 1
    (sync_env.state_dir / "manifest.json").write_text(json.dumps(manifest))

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "full" and (summary["inserted"], summary["updated"], summary["deleted"]) == (0, 0, 0)
    assert f"prices/v00000001.parquet holds {manifest['feeds']['prices']['items'] - 1} rows, " in _reason(sync_env)
    assert _reason(sync_env).endswith("manifests/v00000001.json (v1) is back in force as v2, reconciling in full")
    _assert_converged(sync_env)


def test_nothing_recoverable_is_refused_until_an_explicit_rebuild(sync_env, capsys, demo_catalog_template):
    _, generated = demo_catalog_template
    sync_env.sync(capsys)
    _truncate(sync_env.state_dir / "snapshot" / "products" / "v00000001.parquet")
    _rename(sync_env, _standalone_sku(sync_env), "Renamed while the state was broken")

    message = _refused(sync_env, capsys)

    assert "is damaged and no intact version is left" in message
    assert "manifest.json (v1): snapshot/products/v00000001.parquet has" in message
    assert "manifests/v00000001.json (v1): snapshot/products/v00000001.parquet has" in message
    assert "run `python -m catalog_sync sync --rebuild`" in message
    assert "--rebuild replaces" in _refused(sync_env, capsys, "--rebuild", "--dry-run")

    rebuilt = sync_env.sync(capsys, "--rebuild")

    assert rebuilt["mode"] == "full" and rebuilt["inserted"] == generated.feed_records and rebuilt["failed"] == 0
    assert _reason(sync_env) == "rebuild requested: an empty snapshot is in force as v2, every item is sent again"
    _assert_converged(sync_env)
    assert sync_env.sync(capsys)["mode"] == "incremental" and sync_env.sent == []


@pytest.mark.parametrize("lost", ["everything", "manifests"])
def test_a_state_without_manifests_is_refused_when_the_status_store_records_committed_runs(sync_env, capsys, lost):
    import shutil

    sync_env.sync(capsys)
    state = sync_env.state_dir
    (state / "manifest.json").unlink()
    shutil.rmtree(state / "manifests")
    if lost == "everything":
        shutil.rmtree(state / "snapshot")

    message = _refused(sync_env, capsys)

    # snapshot/ keeps six feeds' files, a snapshot and a pending file each.
    found = ("is empty (manifest.json, manifests/ and snapshot/ are missing)" if lost == "everything" else
             "has no manifest to recover from (manifest.json and manifests/ are missing, snapshot/ holds 12 file(s))")
    assert f"the state at {state} {found}, but the status store records 1 committed run(s) of target 'default'" in message
    assert "run `python -m catalog_sync sync --rebuild`" in message

    rebuilt = sync_env.sync(capsys, "--rebuild")

    assert rebuilt["mode"] == "full" and _reason(sync_env).startswith("rebuild requested: an empty snapshot is in force as v1")
    _assert_converged(sync_env)


def test_a_first_sync_killed_in_its_commit_is_not_mistaken_for_a_lost_state(sync_env, capsys):
    """No commit ever finished (no manifest, no committed run): the v1 files it left are leftovers, not a snapshot."""
    products = sync_env.state_dir / "snapshot" / "products"
    products.mkdir(parents=True)
    (products / "v00000001.parquet").write_bytes(b"")
    (products / "v00000001.pending.parquet").write_bytes(b"PAR1 cut short")

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "full" and _reason(sync_env) == "no snapshot yet: first sync"
    assert (products / "v00000001.parquet").stat().st_size > 0  # written by this run's own commit
    _assert_converged(sync_env)


def test_a_recovery_holds_until_a_full_reconcile_commits(sync_env, capsys):
    """A dry run (or a failed run) after a recovery commits nothing: the next run still reconciles in full."""
    sync_env.sync(capsys)
    gone = _standalone_sku(sync_env)
    _delete(sync_env, gone)
    (sync_env.state_dir / "manifest.json").unlink()

    dry = sync_env.sync(capsys, "--dry-run")
    assert dry["mode"] == "full" and dry["deleted"] == 2 and sync_env.sent == []
    assert product_key(gone, "en-US") in sync_env.target_state()["products"]

    real = sync_env.sync(capsys)

    assert real["mode"] == "full" and real["deleted"] == 2
    assert _reason(sync_env).startswith("recovered the state: manifest.json is missing; manifests/v00000001.json (v1)")
    assert _reason(sync_env).endswith("(by run " + _dry_run_id(sync_env) + "; no full reconcile has committed since)")
    _assert_converged(sync_env, gone)


def _dry_run_id(env: SyncEnv) -> str:
    runs = _status(env).recent_runs(10)
    return next(r["run_id"] for r in runs if r["dry_run"])


def test_leftovers_of_a_killed_run_and_an_interrupted_commit_are_removed(sync_env, capsys, caplog):
    sync_env.sync(capsys)
    # A run killed between export and commit keeps its staging folder and its (dead) lock.
    driver = Path(__file__).parent / "support" / "crash_before_commit.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    crashed = subprocess.run([sys.executable, str(driver), *sync_env.cli_args()], env=env, capture_output=True, text=True,
                             timeout=300)
    assert crashed.returncode == 70, crashed.stderr
    staging = sync_env.state_dir / "staging"
    [killed] = list(staging.iterdir())
    # A commit killed while it wrote: a 0-byte snapshot file, half-written manifests.
    state = sync_env.state_dir
    (state / "snapshot" / "products" / "v00000002.parquet").write_bytes(b"")
    (state / "snapshot" / "prices" / "v00000009.pending.parquet").write_bytes(b"PAR1")
    (state / "manifests" / "v00000002.json.tmp-0123").write_text('{"version": 2')
    (state / "manifest.json.tmp-4567").write_text("")
    caplog.set_level(logging.INFO)

    summary = sync_env.sync(capsys)

    assert summary["mode"] == "incremental"  # leftovers are not damage: the version in force is intact
    assert list(staging.iterdir()) == [] and not killed.exists()
    assert not (state / "snapshot" / "products" / "v00000002.parquet").exists()  # nothing changed: v2 keeps v1's file
    assert not (state / "snapshot" / "prices" / "v00000009.pending.parquet").exists()
    assert not (state / "manifests" / "v00000002.json.tmp-0123").exists() and not (state / "manifest.json.tmp-4567").exists()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("state cleanup: removed")]
    assert any("4 file(s) of interrupted commits, 17 bytes" in m for m in logged), logged
    assert any("1 staging folder(s)" in m and f"staging/{killed.name} (" in m and "its run was abandoned" in m for m in logged)
    _assert_converged(sync_env)


def test_a_failed_run_on_the_version_in_force_keeps_its_staging_until_the_retention(sync_env, capsys, caplog, fake_clock):
    sync_env.sync(capsys)
    settings = SyncSettings.from_env(source_url=sync_env.source_url, target_url=sync_env.target_url,
                                     state_url=str(sync_env.state_dir))
    fake_clock.advance(60)
    failed = steps.plan(settings, SyncRequest("failed-run"))
    steps.report(settings, failed, error="RuntimeError: the worker was lost")  # Airflow may still retry its tasks
    folder = sync_env.state_dir / failed.staging
    assert folder.exists() and _status(sync_env).lock_holder() is None

    fake_clock.advance(3600)
    sync_env.sync(capsys, "--dry-run")  # plans on the same version: the failed run may still commit
    assert folder.exists()

    fake_clock.advance(timedelta(days=7).total_seconds())
    caplog.set_level(logging.INFO)
    sync_env.sync(capsys, "--dry-run")
    assert not folder.exists()
    assert any(f"staging/{failed.run_key} (" in r.getMessage() and "its run started over 7 days ago" in r.getMessage()
               for r in caplog.records)


def test_a_failed_run_staging_goes_once_another_run_has_committed(sync_env, capsys, fake_clock):
    sync_env.sync(capsys)
    settings = SyncSettings.from_env(source_url=sync_env.source_url, target_url=sync_env.target_url,
                                     state_url=str(sync_env.state_dir))
    fake_clock.advance(60)
    failed = steps.plan(settings, SyncRequest("failed-run"))
    steps.report(settings, failed, error="RuntimeError: the worker was lost")
    folder = sync_env.state_dir / failed.staging

    fake_clock.advance(60)
    sync_env.sync(capsys)  # commits v2: the failed run, planned on v1, can no longer commit
    assert folder.exists()
    fake_clock.advance(60)
    sync_env.sync(capsys)
    assert not folder.exists()


@pytest.fixture
def s3(tmp_path, monkeypatch):
    import s3fs

    from services import MotoS3

    server = MotoS3(tmp_path)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps instances: one made for another server must not be reused
    yield server
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_on_object_storage_a_truncated_file_is_recovered_and_leftovers_go(sync_env, s3, capsys, tmp_path):
    import s3fs

    state = f"{s3.bucket}/catalog-sync"
    urls = ("--state-url", f"s3://{state}", "--status-url", f"sqlite:///{tmp_path / 'status.db'}")
    sync_env.sync(capsys, *urls)
    _rename(sync_env, _standalone_sku(sync_env, 1), "Renamed on S3")
    sync_env.sync(capsys, *urls)
    fs = s3fs.S3FileSystem(**s3.storage_options())
    products = f"{state}/snapshot/products/v00000002.delta.parquet"  # what v2 changed, on v1's base
    data = fs.cat(products)
    fs.pipe(products, data[: len(data) // 2])
    fs.pipe(f"{state}/snapshot/prices/v00000007.parquet", b"")
    gone = _standalone_sku(sync_env, 4)
    _delete(sync_env, gone)

    summary = sync_env.sync(capsys, *urls)

    assert summary["mode"] == "full" and summary["deleted"] == 2
    reason = StatusStore(urls[3]).recent_runs(1)[0]["mode_reason"]
    assert reason.startswith(f"recovered the state: manifest.json (v2): snapshot/products/v00000002.delta.parquet has {len(data) // 2} "
                             f"bytes, {len(data)} recorded")
    assert reason.endswith("manifests/v00000001.json (v1) is back in force as v3, reconciling in full")
    fs.invalidate_cache()
    assert not fs.exists(f"{state}/snapshot/prices/v00000007.parquet")  # a 0-byte leftover, removed by plan
    assert not fs.exists(f"{state}/staging") or fs.ls(f"{state}/staging") == []
    _assert_converged(sync_env, gone)
    assert not sync_env.state_dir.exists()
