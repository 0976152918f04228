"""The versioned Parquet snapshot: per feed, exactly what the target accepted.

Layout under the state URL:

    manifest.json                           the version in force: each feed's files, the change watermarks
    manifests/v00000042.json                every committed manifest, kept for history and recovery
    snapshot/<feed>/v00000040.parquet       the base: one row per item the target held at v40: key, exact body, sha1
    snapshot/<feed>/v00000042.delta.parquet what v42 changed on top of it: the new rows, and a tombstone per delete
    snapshot/<feed>/v00000042.pending.parquet   items not in sync yet (retryable or rejected, with reasons)

A feed is its base plus its deltas, oldest first; readers see one merged view (`feed_relation`):
the newest row of each key, tombstones dropped. A commit writes a delta of what the target
accepted, so its cost follows the change; once the deltas hold more than a share of the base
(`compact_share`) or there are MAX_DELTAS of them, it writes a new base instead (compaction).
Feeds the run did not change keep their files. The commit writes `manifests/vN.json`, then
swaps `manifest.json` atomically: the single commit point, so the snapshot and the
watermarks always move together. Readers only follow the manifest, so a crash mid-commit
leaves the previous version in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow as pa

from catalog_sync import clock
from catalog_sync.magento.change_detection import ChangeMarks
from catalog_sync.settings import ConfigurationError
from catalog_sync.state.duckdb_session import sql_literal
from catalog_sync.state.location import StateLocation

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFESTS = "manifests"
# The state's format. Each change of it adds an upgrade from the format before (state.upgrades),
# which the plan step runs under the sync lock; readers accept only the current format.
#   1  one record per (sku, store view), the Magento-shaped record as payload
#   2  the same, with `judged_on`, the store-local day the price window was judged on
#   3  one snapshot per feed of the target: key, exact body, sha1 (this module)
#   4  the same, as a base file plus delta files (a format-3 feed is a base with no deltas)
MANIFEST_FORMAT = 4
# A day of hourly runs: past it, the next commit that changes the feed compacts it.
MAX_DELTAS = 24

# A feed item as the run builds it (staging) and as the snapshot keeps it (plus exported_at, run_id).
# `key` and `body` are canonical JSON; product_id, sku and the listing columns say which Magento
# product an item comes from (NULL for catalog-wide items such as price books).
ITEM_FIELDS = [
    pa.field("key", pa.string()),
    pa.field("body", pa.string()),
    pa.field("sha1", pa.string()),
    pa.field("product_id", pa.int64()),
    pa.field("sku", pa.string()),
    pa.field("store_view_code", pa.string()),
    pa.field("judged_on", pa.string()),
    pa.field("recheck_on", pa.string()),
    pa.field("name", pa.string()),
    pa.field("type", pa.string()),
    pa.field("price", pa.float64()),
    pa.field("visibility", pa.int32()),
    pa.field("source_updated_at", pa.string()),
    # Configurable parents and variants: a change to one re-reads the others (as linked when sent).
    pa.field("linked_product_ids", pa.list_(pa.int64())),
]
# What the mapping writes: the item and, for a product's item, the row of its staging record, whose
# columns (product_id, sku, listing columns) the diff joins in (fewer columns to build in Python).
MAPPED_SCHEMA = pa.schema([
    pa.field("key", pa.string()),
    pa.field("body", pa.string()),
    pa.field("sha1", pa.string()),
    pa.field("judged_on", pa.string()),
    pa.field("recheck_on", pa.string()),
    pa.field("reason", pa.string()),  # why it is not sendable (quarantined)
    pa.field("record_row", pa.int64()),  # the staging record's row number; NULL for catalog-wide items
])
ITEM_SCHEMA = pa.schema([*ITEM_FIELDS, pa.field("reason", pa.string())])  # an item with its product's columns
SNAPSHOT_SCHEMA = pa.schema([*ITEM_FIELDS, pa.field("exported_at", pa.string()), pa.field("run_id", pa.string())])
# A delta file: upserted rows as the snapshot keeps them, and `deleted` rows (key and product only).
DELTA_SCHEMA = pa.schema([*SNAPSHOT_SCHEMA, pa.field("deleted", pa.bool_())])

# Small row groups: the plugin page fetches one product's bodies by row number, and DuckDB
# decodes a whole row group of the body column to do so (16k rows: ~10 ms; the default 122,880: ~50-100 ms).
SNAPSHOT_ROW_GROUP_SIZE = 16384

# Items not yet in sync. Retryable ones are re-extracted next run; rejected ones (held) are
# re-sent when their body changes, or when a re-send is forced.
PENDING_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("product_id", pa.int64()),
    ("sku", pa.string()),
    ("store_view_code", pa.string()),
    ("op", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("sha1", pa.string()),
    ("run_id", pa.string()),
    # status `unconfirmed`: a request holding the item got no answer, so the target may still apply
    # it; the first run planned at or after this instant re-sends the item's newest body (or delete).
    ("resend_after", pa.string()),
])


@dataclass(frozen=True)
class DeltaFile:
    file: str  # relative to the state URL
    rows: int  # upserted rows and tombstones
    bytes: int | None = None


@dataclass(frozen=True)
class FeedFiles:
    file: str | None = None  # the base, relative to the state URL
    pending: str | None = None
    items: int = 0  # in the merged view: what the target holds
    pending_items: int = 0
    # Byte sizes, recorded at commit: plan checks the files in force by size (cheap, also on object storage).
    file_bytes: int | None = None
    pending_bytes: int | None = None
    deltas: tuple[DeltaFile, ...] = ()  # on top of the base, oldest first
    base_items: int | None = None  # rows of the base file; None: `items` (no deltas)

    @property
    def base_rows(self) -> int:
        return self.items if self.base_items is None else self.base_items

    @property
    def delta_rows(self) -> int:
        return sum(d.rows for d in self.deltas)

    @property
    def named(self) -> list[str]:
        """Every file this version of the feed names, relative to the state URL."""
        return [f for f in (self.file, self.pending, *(d.file for d in self.deltas)) if f]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeedFiles":
        return cls(**{**data, "deltas": tuple(DeltaFile(**d) for d in data.get("deltas") or ())})


@dataclass(frozen=True)
class Manifest:
    version: int = 0
    feeds: dict[str, FeedFiles] = field(default_factory=dict)
    change_marks: dict | None = None
    run_id: str | None = None
    committed_at: str | None = None
    format: int = MANIFEST_FORMAT
    history: list = field(default_factory=list)
    # What every item's body depends on besides its product (the target's mapping, the catalog's
    # attributes), as of the last full reconcile: when one changes, the next run reconciles in full.
    fingerprints: dict = field(default_factory=dict)
    # Set when this version was put back in force by a recovery (state.recovery): why, by which run.
    # It stays, with no change marks, until a run with change marks commits: until then runs reconcile in full.
    recovered: dict | None = None

    @property
    def marks(self) -> ChangeMarks | None:
        return ChangeMarks.from_dict(self.change_marks)

    def files(self, feed: str) -> FeedFiles:
        return self.feeds.get(feed) or FeedFiles()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        feeds = {name: FeedFiles.from_dict(files) for name, files in (data.get("feeds") or {}).items()}
        return cls(**{**data, "feeds": feeds})


class UnsupportedState(ConfigurationError):
    """The state was written in a format this release cannot read (newer, or not upgraded yet):
    a refusal with its reason (the CLI exits 2), never a traceback."""


class SnapshotStore:
    def __init__(self, location: StateLocation, keep_versions: int = 3):
        self.location = location
        self.keep_versions = keep_versions

    def read_raw(self) -> dict[str, Any] | None:
        return self.location.read_json(MANIFEST) if self.location.exists(MANIFEST) else None

    def read_manifest(self) -> Manifest:
        data = self.read_raw()
        if data is None:
            return Manifest()
        found = data.get("format")
        if found != MANIFEST_FORMAT:
            newer = isinstance(found, int) and found > MANIFEST_FORMAT
            raise UnsupportedState(
                f"the state at {self.location.url} has manifest format {found!r}, this Catalog Sync reads format "
                f"{MANIFEST_FORMAT}: " + ("it was written by a newer release" if newer
                                          else "the next sync upgrades it (its plan step does, under the lock)"))
        return Manifest.from_dict(data)

    def file_url(self, relative: str | None) -> str | None:
        """Where DuckDB reads a snapshot file (see StateLocation.url_of)."""
        return None if relative is None else self.location.url_of(relative)

    @staticmethod
    def new_files(feed: str, version: int) -> tuple[str, str]:
        return f"snapshot/{feed}/v{version:08d}.parquet", f"snapshot/{feed}/v{version:08d}.pending.parquet"

    @staticmethod
    def new_delta(feed: str, version: int) -> str:
        return f"snapshot/{feed}/v{version:08d}.delta.parquet"

    def feed_relation(self, files: FeedFiles, positions: bool = False) -> str | None:
        """SQL for the merged view of a feed (None: the feed has no file yet). Its columns are the base
        file's; `positions` adds `part` (0: the base, i: the i-th delta) and `part_row`, the row in that file."""
        return feed_relation(self.file_url(files.file), [self.file_url(d.file) for d in files.deltas], positions)

    def swap_manifest(self, previous: Manifest, feeds: dict[str, FeedFiles], marks: ChangeMarks | None,
                      run_id: str, format: int = MANIFEST_FORMAT, fingerprints: dict | None = None) -> Manifest:
        """Make the new version current. Only call after every file it names is fully written."""
        current = self.read_raw()
        current_version = int(current.get("version", 0)) if current else 0
        if current_version != previous.version:
            raise RuntimeError(
                f"snapshot moved under us: expected version {previous.version}, found {current_version} "
                f"(committed by run {(current or {}).get('run_id')}); is another sync running against this state URL?"
            )
        change_marks = marks.to_dict() if marks else previous.change_marks
        new = Manifest(
            version=previous.version + 1,
            feeds={name: self._with_sizes(files, previous.files(name)) for name, files in feeds.items()},
            change_marks=change_marks,
            run_id=run_id,
            committed_at=clock.now().isoformat(timespec="seconds"),
            format=format,
            history=_history(previous),
            fingerprints=dict(previous.fingerprints if fingerprints is None else fingerprints),
            recovered=previous.recovered if change_marks is None else None,
        )
        self._put_in_force(new)
        return new

    def restore(self, base: Manifest, version: int, run_id: str, recovered: dict) -> Manifest:
        """Put `base` (an intact earlier version, or an empty one) back in force as `version`, with no change
        marks: the next runs reconcile in full until one commits. Only call under the sync lock."""
        new = replace(base, version=version, feeds={n: self._with_sizes(f, FeedFiles()) for n, f in base.feeds.items()},
                      change_marks=None, run_id=run_id, committed_at=clock.now().isoformat(timespec="seconds"),
                      format=MANIFEST_FORMAT, history=_history(base), recovered=recovered)
        self._put_in_force(new)
        return new

    def _put_in_force(self, new: Manifest) -> None:
        # The numbered copy first: once manifest.json names a version, its copy exists.
        self.location.write_json_atomic(new.to_dict(), f"{MANIFESTS}/v{new.version:08d}.json")
        self.location.write_json_atomic(new.to_dict(), MANIFEST)
        self._prune(new)

    def _with_sizes(self, files: FeedFiles, before: FeedFiles) -> FeedFiles:
        """`files` with each file's byte size: known already, the same file as before, or asked of the filesystem."""
        def size(relative: str | None, known: int | None, before_relative: str | None, before_known: int | None) -> int | None:
            if relative is None or known is not None:
                return known
            if relative == before_relative and before_known is not None:
                return before_known  # a version's file is never rewritten under its name
            path = self.location.path(relative)
            self.location.fs.invalidate_cache(path)  # a listing cached before the file was written must not answer
            return int(self.location.fs.size(path))

        known = {d.file: d.bytes for d in before.deltas}
        deltas = tuple(replace(d, bytes=size(d.file, d.bytes, d.file, known.get(d.file))) for d in files.deltas)
        return replace(files, file_bytes=size(files.file, files.file_bytes, before.file, before.file_bytes),
                       pending_bytes=size(files.pending, files.pending_bytes, before.pending, before.pending_bytes),
                       deltas=deltas)

    def _prune(self, current: Manifest) -> None:
        """Keep the last few versions (their manifests and every file they name); older files go."""
        oldest_kept = current.version - self.keep_versions + 1
        fs = self.location.fs
        kept: set[str] = set()
        folder = self.location.path(MANIFESTS)
        for path in fs.ls(folder, detail=False) if fs.exists(folder) else []:
            version = _version_of(path)
            if version is None:
                continue
            if version < oldest_kept:
                fs.rm(path)
                continue
            try:
                data = self.location.read_json(f"{MANIFESTS}/{path.rsplit('/', 1)[-1]}")
                named = [f for files in (data.get("feeds") or {}).values() for f in FeedFiles.from_dict(files).named]
            except Exception:  # a damaged copy names nothing (recovery reports it)
                continue
            kept.update(self.location.path(f) for f in named)
        snapshot = self.location.path("snapshot")
        if not fs.exists(snapshot):
            return
        for path in fs.find(snapshot):
            version = _version_of(path)
            if version is not None and version < oldest_kept and path not in kept:
                fs.rm(path)


def feed_relation(base: str | None, deltas: list[str], positions: bool = False) -> str | None:
    """The merged view of a base file and its delta files (URLs, oldest delta first) as SQL: each key's
    newest row, tombstones dropped. The base's rows whose keys no delta names are read as they are, so
    a filter on the base's columns still prunes its row groups."""
    if base is None:
        return None
    q = sql_literal

    def scan(url: str, part: int) -> str:
        if not positions:
            return f"SELECT *, {part} AS part FROM read_parquet({q(url)})"
        return (f"SELECT * EXCLUDE (file_row_number), {part} AS part, file_row_number AS part_row "
                f"FROM read_parquet({q(url)}, file_row_number = true)")

    if not deltas:
        return f"({scan(base, 0)})" if positions else f"(SELECT * FROM read_parquet({q(base)}))"
    keep = "" if positions else " EXCLUDE (part)"
    changed = f"SELECT key FROM read_parquet([{', '.join(q(d) for d in deltas)}])"
    newest = " UNION ALL BY NAME ".join(scan(url, part) for part, url in enumerate(deltas, start=1))
    return (f"(SELECT *{keep} FROM ({scan(base, 0)}) ANTI JOIN ({changed}) USING (key) "
            f"UNION ALL BY NAME "
            f"SELECT * EXCLUDE (deleted{'' if positions else ', part'}) FROM ("
            f"SELECT * FROM ({newest}) QUALIFY row_number() OVER (PARTITION BY key ORDER BY part DESC) = 1"
            f") WHERE NOT deleted)")


def _history(previous: Manifest) -> list:
    """The versions before the next one, newest first (the last 20)."""
    entry = [{"version": previous.version, "run_id": previous.run_id, "committed_at": previous.committed_at}]
    return ((entry if previous.version else []) + list(previous.history))[:20]


def _version_of(path: str) -> int | None:
    name = path.rsplit("/", 1)[-1]
    return int(name[1:9]) if name.startswith("v") and name[1:9].isdigit() else None


def with_format(manifest: Manifest, format: int) -> Manifest:
    return replace(manifest, format=format)


Upgrade = Callable[[SnapshotStore, dict[str, Any], Any], Manifest]
