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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from catalog_sync.feed.feed_record import EXTRACT_SCHEMA
from catalog_sync.magento.change_detection import ChangeMarks
from catalog_sync.storage import StateLocation

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1

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
        if data.get("format") != MANIFEST_FORMAT:
            raise RuntimeError(f"unsupported snapshot manifest format {data.get('format')!r} at {self.location.url}")
        return Manifest(**data)

    def file_url(self, relative: str | None) -> str | None:
        """Where DuckDB reads a snapshot file (see StateLocation.url_of)."""
        return None if relative is None else self.location.url_of(relative)

    def new_version_files(self, manifest: Manifest) -> tuple[str, str]:
        version = manifest.version + 1
        return f"snapshot/v{version:08d}.parquet", f"snapshot/v{version:08d}.pending.parquet"

    def swap_manifest(
        self, previous: Manifest, snapshot_file: str, pending_file: str, marks: ChangeMarks | None,
        item_count: int, run_id: str,
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
            committed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            history=history[:20],
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
