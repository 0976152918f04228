"""What interrupted commits and dead runs leave in the state folder, removed by the next plan under the lock.

- Files of an interrupted commit: a numbered manifest or snapshot file newer than the version in
  force, a half-written temporary file, or a 0-byte file that the manifest in force does not name.
- Staging folders of runs that can no longer commit (planned on another version than the one in
  force, or without a plan), whose run succeeded, was abandoned or was never recorded, or that are
  older than STAGING_RETENTION. A failed run planned on the version in force may still commit (its
  Airflow tasks can be retried): its folder stays until the retention has passed.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import NoResultFound

from catalog_sync import clock
from catalog_sync.state.snapshot import MANIFEST, MANIFEST_FORMAT, MANIFESTS, Manifest, SnapshotStore
from catalog_sync.state.staging import StagingFolder, staging_folders
from catalog_sync.state.status_store import FAILED, SUCCESS, StatusStore

log = logging.getLogger(__name__)

# Long enough for Airflow's retries and a manual clear of a failed run's tasks.
STAGING_RETENTION = timedelta(days=7)
VERSIONED = re.compile(r"^v(\d{8})(\.pending|\.delta)?\.(parquet|json)$")

Found = tuple[str, int, str]  # path, bytes, why


def remove(store: SnapshotStore, status: StatusStore) -> None:
    """Run after recovery (state.recovery.prepare): the manifest in force is intact, or there is none yet."""
    try:
        raw = store.read_raw()
    except Exception:
        return  # unreadable: nothing is removed on a guess
    if raw is not None and (not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT):
        return  # an earlier release's state (state.upgrades rewrites it) or a newer one's: not ours to judge
    manifest = Manifest.from_dict(raw) if raw else Manifest()
    _remove(store, _commit_leftovers(store, manifest), "file(s) of interrupted commits", recursive=False)
    folders = [(f.location.path(""), f, why) for f in staging_folders(store.location).values()
               if (why := _why_abandoned(f, manifest.version, status, clock.now()))]
    _remove(store, [(path, folder.size(), why) for path, folder, why in folders], "staging folder(s)", recursive=True)


def _commit_leftovers(store: SnapshotStore, manifest: Manifest) -> list[Found]:
    location, fs = store.location, store.location.fs
    named = {location.path(f) for files in manifest.feeds.values() for f in files.named}
    found: list[Found] = []
    for folder in (MANIFESTS, "snapshot"):
        if fs.exists(location.path(folder)):
            for path, info in fs.find(location.path(folder), detail=True).items():
                why = None if path in named else _why_leftover(path.rsplit("/", 1)[-1], int(info.get("size") or 0),
                                                                  manifest.version)
                if why:
                    found.append((path, int(info.get("size") or 0), why))
    for info in fs.ls(location.root, detail=True) if fs.exists(location.root) else []:
        name = info["name"].rsplit("/", 1)[-1]
        if name.startswith(f"{MANIFEST}.tmp"):
            found.append((info["name"], int(info.get("size") or 0), "a half-written manifest"))
    return found


def _why_leftover(name: str, size: int, version: int) -> str | None:
    if ".tmp" in name:
        return "a half-written file"
    match = VERSIONED.match(name)
    if match and int(match.group(1)) > version:
        return f"newer than v{version} in force: an interrupted commit"
    return "empty" if size == 0 else None


def _why_abandoned(folder: StagingFolder, version: int, status: StatusStore, now: datetime) -> str | None:
    """Why a staging folder can go; None while its run may still commit."""
    plan = folder.plan()
    if plan is None:
        return "no plan: its plan step died"
    if plan.get("base_version") != version:
        return f"planned on v{plan.get('base_version')}, v{version} is in force: it can no longer commit"
    try:
        run = status.get_run(str(plan.get("run_id")))
    except NoResultFound:
        return "its run was never recorded: its plan step died"
    if run["state"] == SUCCESS:
        return "its run succeeded"
    if run["state"] == FAILED and str(run.get("error") or "").startswith("abandoned"):
        return "its run was abandoned"
    try:
        started = datetime.fromisoformat(str(plan.get("started_at")))
    except ValueError:
        return "its plan has no start time"
    started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
    if now - started > STAGING_RETENTION:
        return f"its run started over {STAGING_RETENTION.days} days ago"
    return None


def _remove(store: SnapshotStore, found: list[Found], what: str, *, recursive: bool) -> None:
    if not found:
        return
    fs, root = store.location.fs, store.location.root
    for path, _, _ in found:
        fs.rm(path, recursive=recursive)
    log.info("state cleanup: removed %d %s, %d bytes: %s", len(found), what, sum(size for _, size, _ in found),
             "; ".join(f"{path.removeprefix(root).strip('/')} ({size} bytes, {why})" for path, size, why in found))
