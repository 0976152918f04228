"""The versioned Parquet snapshot: what the target has accepted.

Layout under the state URL:

    manifest.json                     the current version, its files and the change watermarks
    snapshot/v00000007.parquet        one row per accepted (sku, store view), with the payload sent
    snapshot/v00000007.pending.parquet items that are not in sync yet (retryable or rejected)

A commit writes new version files, then swaps `manifest.json` atomically, so
the snapshot and the watermarks always move together. Readers only follow the
manifest, so a crash mid-commit leaves the previous version in force.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
import pyarrow as pa

from catalog_sync import clock

from catalog_sync.state import duckdb_session
from catalog_sync.state.duckdb_session import sql_literal
from catalog_sync.feed.feed_record import EXTRACT_SCHEMA
from catalog_sync.magento.change_detection import ChangeMarks
from catalog_sync.state.location import StateLocation

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# The state's format. Each change of it adds an upgrade from the format before (UPGRADES), which
# the plan step runs under the sync lock; readers accept the formats they can read.
#   1  the first layout
#   2  snapshot rows carry `judged_on`, the store-local day their price window was judged on
MANIFEST_FORMAT = 2

# The extract's columns (less the quarantine reason: only accepted items get here), plus when and by which run.
SNAPSHOT_SCHEMA = pa.schema(
    [f for f in EXTRACT_SCHEMA if f.name != "quarantine_reason"]
    + [pa.field("exported_at", pa.string()), pa.field("run_id", pa.string())]
)

# Small row groups: the plugin page fetches one item's payload by row number, and DuckDB
# decodes a whole row group of the payload column to do so (16k rows: ~10 ms; the
# default 122,880: ~50-100 ms).
SNAPSHOT_ROW_GROUP_SIZE = 16384

# Items not yet in sync. Retryable ones are re-extracted next run; rejected
# ones are re-sent only when their content hash changes.
PENDING_SCHEMA = pa.schema(
    [
        ("product_id", pa.int64()),
        ("sku", pa.string()),
        ("store_view_code", pa.string()),
        ("op", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("content_hash", pa.string()),
        ("run_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class Manifest:
    version: int = 0
    snapshot_file: str | None = None
    pending_file: str | None = None
    change_marks: dict | None = None
    item_count: int = 0
    run_id: str | None = None
    committed_at: str | None = None
    format: int = MANIFEST_FORMAT
    history: list = field(default_factory=list)

    @property
    def marks(self) -> ChangeMarks | None:
        return ChangeMarks.from_dict(self.change_marks)


class SnapshotStore:
    def __init__(self, location: StateLocation, keep_versions: int = 3):
        self.location = location
        self.keep_versions = keep_versions

    def read_manifest(self) -> Manifest:
        if not self.location.exists(MANIFEST):
            return Manifest()
        data = self.location.read_json(MANIFEST)
        found = data.get("format")
        if not isinstance(found, int) or not 1 <= found <= MANIFEST_FORMAT:
            raise RuntimeError(
                f"the state at {self.location.url} has manifest format {found!r}; this Catalog Sync reads formats "
                f"1 to {MANIFEST_FORMAT}: was it written by a newer release?")
        return Manifest(**data)

    def upgrade(self) -> Manifest:
        """Bring the state to MANIFEST_FORMAT, one format at a time; call with the sync lock held."""
        manifest = self.read_manifest()
        while manifest.format < MANIFEST_FORMAT:
            before = manifest.format
            manifest = UPGRADES[before](self, manifest)
            log.info("state at %s upgraded from format %d to %d (snapshot v%d)", self.location.url, before,
                     manifest.format, manifest.version)
        return manifest

    def file_url(self, relative: str | None) -> str | None:
        """Where DuckDB reads a snapshot file (see StateLocation.url_of)."""
        return None if relative is None else self.location.url_of(relative)

    def new_version_files(self, manifest: Manifest) -> tuple[str, str]:
        version = manifest.version + 1
        return f"snapshot/v{version:08d}.parquet", f"snapshot/v{version:08d}.pending.parquet"

    def swap_manifest(
        self, previous: Manifest, snapshot_file: str, pending_file: str, marks: ChangeMarks | None,
        item_count: int, run_id: str, format: int = MANIFEST_FORMAT,
    ) -> Manifest:
        """Make the new version current. Only call after both files are fully written."""
        current = self.read_manifest()
        if current.version != previous.version:
            raise RuntimeError(
                f"snapshot moved under us: expected version {previous.version}, found {current.version} "
                f"(committed by run {current.run_id}); is another sync running against this state URL?"
            )
        history = ([{"version": previous.version, "run_id": previous.run_id, "committed_at": previous.committed_at}]
                   if previous.version else []) + list(previous.history)
        new = Manifest(
            version=previous.version + 1,
            snapshot_file=snapshot_file,
            pending_file=pending_file,
            change_marks=marks.to_dict() if marks else previous.change_marks,
            item_count=item_count,
            run_id=run_id,
            committed_at=clock.now().isoformat(timespec="seconds"),
            history=history[:20],
            format=format,
        )
        self.location.write_json_atomic(asdict(new), MANIFEST)
        self._prune(new)
        return new

    def _prune(self, current: Manifest) -> None:
        """Keep the last few versions for debugging; older files go."""
        oldest_kept = current.version - self.keep_versions + 1
        fs = self.location.fs
        folder = self.location.path("snapshot")
        if not fs.exists(folder):
            return
        for path in fs.ls(folder, detail=False):
            name = path.rsplit("/", 1)[-1]
            if name.startswith("v") and name[1:9].isdigit() and int(name[1:9]) < oldest_kept:
                fs.rm(path)


def _format_1_to_2(store: SnapshotStore, manifest: Manifest) -> Manifest:
    """Format 2 records the day each item's price window was judged on. Items sent before have
    none: NULL, which the price-window scope treats as "unknown, re-send the price if it has a window"."""
    if manifest.snapshot_file is None:
        return replace(manifest, format=2)
    snapshot_rel, pending_rel = store.new_version_files(manifest)
    columns = ", ".join("NULL::VARCHAR AS judged_on" if f.name == "judged_on" else f.name for f in SNAPSHOT_SCHEMA)
    con = duckdb_session.connect()
    try:
        con.execute(
            f"COPY (SELECT {columns} FROM read_parquet({sql_literal(store.file_url(manifest.snapshot_file))})) "
            f"TO {sql_literal(store.file_url(snapshot_rel))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})")
        pending = (f"SELECT * FROM read_parquet({sql_literal(store.file_url(manifest.pending_file))})"
                   if manifest.pending_file else duckdb_session.empty_select(PENDING_SCHEMA))
        con.execute(f"COPY ({pending}) TO {sql_literal(store.file_url(pending_rel))} (FORMAT parquet)")
    finally:
        con.close()
    return store.swap_manifest(manifest, snapshot_rel, pending_rel, None, manifest.item_count,
                               f"upgrade-format-1-to-2 (after {manifest.run_id})", format=2)


UPGRADES = {1: _format_1_to_2}
