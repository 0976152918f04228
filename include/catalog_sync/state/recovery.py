"""A damaged state folder, found and repaired at plan, under the sync lock.

Every commit writes `manifests/vN.json` before it swaps `manifest.json`, and keeps the last few
versions' files. So when `manifest.json` is lost or unreadable, or a file it names is missing,
truncated, not Parquet or of the wrong row count, the newest intact version is put back in force
(`SnapshotStore.restore`) under a version newer than any manifest's, so that no run planned on
the damaged state can commit onto it, and without change marks, so that runs reconcile in full
until one commits. When nothing intact is left, or the folder is empty although the status store
records committed runs, the run is refused: only `sync --rebuild` starts again from an empty snapshot.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pyarrow.parquet as pq

from catalog_sync import clock
from catalog_sync.settings import ConfigurationError
from catalog_sync.state import leftovers
from catalog_sync.state.snapshot import MANIFEST, MANIFEST_FORMAT, MANIFESTS, Manifest, SnapshotStore
from catalog_sync.state.status_store import SUCCESS, StatusStore

log = logging.getLogger(__name__)

NUMBERED = re.compile(r"^v(\d{8})\.json$")
REBUILD = "python -m catalog_sync sync --rebuild"


class StateUnrecoverable(ConfigurationError):
    """The state is damaged (or gone) and no intact version is left: the run is refused (CLI exit 2)."""


@dataclass(frozen=True)
class Examined:
    name: str  # relative to the state URL
    manifest: Manifest | None
    problem: str | None  # None: the manifest and every file it names are intact
    other_format: bool = False  # manifest.json of an earlier or newer release: state.upgrades reads (or refuses) it
    missing: bool = False

    def describe(self) -> str:
        where = self.name if self.manifest is None else f"{self.name} (v{self.manifest.version}):"
        return f"{where} {self.problem}"


def prepare(store: SnapshotStore, status: StatusStore, run_id: str, *, rebuild: bool = False,
            dry_run: bool = False) -> str | None:
    """At plan, under the lock: repair the state if it must be (see `repair`), then remove what interrupted
    commits and abandoned runs left. Returns why the run must reconcile in full, if a recovery says so."""
    # Other processes write the state: sizes and listings an earlier step of this process cached may be stale.
    store.location.fs.invalidate_cache()
    reason = repair(store, status, run_id, rebuild=rebuild, dry_run=dry_run)
    leftovers.remove(store, status)
    return reason


def repair(store: SnapshotStore, status: StatusStore, run_id: str, *, rebuild: bool = False,
           dry_run: bool = False) -> str | None:
    """Why this run must reconcile in full because of a recovery (None: it need not). May put an
    earlier version back in force; raises StateUnrecoverable when it cannot."""
    if rebuild:
        return _rebuild(store, run_id, dry_run)
    current = examine(store, MANIFEST)
    if current.other_format:
        return None
    if current.problem is None:
        note = current.manifest.recovered if current.manifest else None
        if note and current.manifest.change_marks is None:  # an earlier recovery no full run has committed since
            return f"{note['reason']} (by run {note['run_id']}; no full reconcile has committed since)"
        return None
    copies = _numbered(store)
    if current.missing and not copies:
        return _never_committed(store, status)
    # When manifest.json is readable, only its own version's copy and older ones: newer copies are interrupted commits.
    newest_allowed = current.manifest.version if current.manifest else None
    damaged = [current.describe()]
    if not copies:
        damaged.append(f"{MANIFESTS}/ holds no numbered manifest to recover from")
    for version, name in copies:
        if newest_allowed is not None and version > newest_allowed:
            continue
        candidate = examine(store, name)
        if candidate.problem is None and candidate.manifest is not None:
            return _restore(store, run_id, candidate, damaged, _newest_version(store, copies))
        damaged.append(candidate.describe())
    raise StateUnrecoverable(
        f"the state at {store.location.url} is damaged and no intact version is left ({'; '.join(damaged)}). "
        f"Nothing was sent. To start again from an empty snapshot, run `{REBUILD}` against the same state and "
        "status store: it re-sends every item, and items deleted from Magento meanwhile are not deleted at the target")


def examine(store: SnapshotStore, name: str) -> Examined:
    """One manifest and the files it names: sizes first (one call each), then each Parquet footer's row count."""
    try:
        data = store.location.read_json(name)
    except FileNotFoundError:
        return Examined(name, None, "is missing", missing=True)
    except Exception as exc:  # garbled JSON, cut bytes, unreadable object
        return Examined(name, None, f"is unreadable ({_short(exc)})")
    found = data.get("format") if isinstance(data, dict) else None
    if isinstance(found, int) and found != MANIFEST_FORMAT:
        return Examined(name, None, f"has format {found}", other_format=name == MANIFEST)
    try:
        manifest = Manifest.from_dict(data)
        if not isinstance(manifest.version, int) or not isinstance(manifest.feeds, dict):
            raise TypeError("version or feeds of the wrong type")
    except Exception as exc:
        return Examined(name, None, f"is not a manifest ({_short(exc)})")
    match = NUMBERED.match(name.rsplit("/", 1)[-1])
    if match and int(match.group(1)) != manifest.version:
        return Examined(name, manifest, f"holds version {manifest.version}")
    problems = [p for feed in sorted(manifest.feeds) for p in _feed_problems(store, manifest, feed)]
    return Examined(name, manifest, "; ".join(problems) or None)


def _feed_problems(store: SnapshotStore, manifest: Manifest, feed: str) -> list[str]:
    files = manifest.files(feed)
    checks = ((files.file, files.base_rows, files.file_bytes), (files.pending, files.pending_items, files.pending_bytes),
              *((d.file, d.rows, d.bytes) for d in files.deltas))
    problems = [(relative, _file_problem(store, relative, rows, size)) for relative, rows, size in checks if relative]
    return [f"{relative} {problem}" for relative, problem in problems if problem]


def _file_problem(store: SnapshotStore, relative: str, rows: int, size: int | None) -> str | None:
    fs, path = store.location.fs, store.location.path(relative)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return "is missing"
    if info.get("type") == "directory":  # object stores: a prefix, no object
        return "is missing"
    actual = int(info.get("size") or 0)
    if actual == 0:
        return "is empty (0 bytes)"
    if size is not None and actual != size:
        return f"has {actual} bytes, {size} recorded (truncated or rewritten)"
    try:
        with fs.open(path, "rb") as fh:
            found = pq.read_metadata(fh).num_rows
    except Exception as exc:
        return f"is not readable Parquet ({_short(exc)})"
    return None if found == rows else f"holds {found} rows, {rows} recorded"


def _restore(store: SnapshotStore, run_id: str, intact: Examined, damaged: list[str], newest: int) -> str:
    assert intact.manifest is not None
    version = newest + 1
    reason = (f"recovered the state: {'; '.join(damaged)}; {intact.name} (v{intact.manifest.version}) is back in force "
              f"as v{version}, reconciling in full")
    store.restore(intact.manifest, version, f"recovery-by-{run_id}", _note(reason, run_id))
    log.warning("state at %s: %s", store.location.url, reason)
    return reason


def _rebuild(store: SnapshotStore, run_id: str, dry_run: bool) -> str:
    if dry_run:
        raise StateUnrecoverable("--rebuild replaces the snapshot with an empty one: it cannot be combined with --dry-run")
    version = _newest_version(store, _numbered(store)) + 1
    reason = f"rebuild requested: an empty snapshot is in force as v{version}, every item is sent again"
    store.restore(Manifest(), version, f"rebuild-by-{run_id}", _note(reason, run_id))
    log.warning("state at %s: %s; deletes of items the old snapshot knew are lost", store.location.url, reason)
    return reason


def _never_committed(store: SnapshotStore, status: StatusStore) -> None:
    """No manifest at all: a first sync (an unfinished first commit may have left v1 files: leftovers), unless the
    status store records committed runs of this target, or snapshot files of later versions exist: the state was lost."""
    files = _snapshot_files(store)
    committed = [r for r in status.recent_runs(100) if r["state"] == SUCCESS and not r["dry_run"]]
    if not committed and all(_file_version(f) in (None, 1) for f in files):
        return None
    found = (f"is empty ({MANIFEST}, {MANIFESTS}/ and snapshot/ are missing)" if not files else
             f"has no manifest to recover from ({MANIFEST} and {MANIFESTS}/ are missing, snapshot/ holds {len(files)} file(s))")
    known = (f"the status store records {len(committed)} committed run(s) of target {status.target!r}, the last "
             f"{committed[0]['run_id']} (ended {committed[0]['ended_at']})" if committed else
             "its snapshot files are not those of an unfinished first commit")
    raise StateUnrecoverable(
        f"the state at {store.location.url} {found}, but {known}: is the state URL right? Nothing was sent. If the state "
        f"is lost, run `{REBUILD}` to start again from an empty snapshot: it re-sends every item, and items deleted from "
        "Magento meanwhile are not deleted at the target")


def _file_version(path: str) -> int | None:
    name = path.rsplit("/", 1)[-1]
    return int(name[1:9]) if name.startswith("v") and name[1:9].isdigit() else None


def _note(reason: str, run_id: str) -> dict:
    return {"reason": reason, "run_id": run_id, "at": clock.now().isoformat(timespec="seconds")}


def _numbered(store: SnapshotStore) -> list[tuple[int, str]]:
    """The numbered manifests, newest first."""
    fs, folder = store.location.fs, store.location.path(MANIFESTS)
    names = [p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)] if fs.exists(folder) else []
    found = [(int(m.group(1)), f"{MANIFESTS}/{n}") for n in names if (m := NUMBERED.match(n))]
    return sorted(found, reverse=True)


def _snapshot_files(store: SnapshotStore) -> list[str]:
    fs, folder = store.location.fs, store.location.path("snapshot")
    return list(fs.find(folder)) if fs.exists(folder) else []


def _newest_version(store: SnapshotStore, copies: list[tuple[int, str]]) -> int:
    """The highest version a manifest names: a restored version goes above it, so no run planned on the damaged
    state can commit onto it (snapshot files of higher versions are interrupted commits: state.leftovers removes them)."""
    versions = [v for v, _ in copies]
    try:
        versions.append(int(store.location.read_json(MANIFEST).get("version", 0)))
    except Exception:
        pass  # lost or garbled: the numbered copies tell
    return max(versions, default=0)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (f": {text[0][:120]}" if text else "")
