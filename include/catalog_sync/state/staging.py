"""A run's staging folder, `<state>/staging/<run key>/`: one typed object that names every file.

Steps hand each other data only through these files (the plan travels through XCom, nothing
else). Product feeds are split by sku bucket, one "part" per bucket (`b003`); catalog-wide
feeds (metadata, price books) have one part, `catalog`, built by bucket 0's diff.

    plan.json                         the run's plan
    extract-b003.parquet, .json       staging records of bucket 3, and the extract's counts
    scope-b003.parquet                product ids in an incremental run's scope
    items/<feed>-<part>.parquet       the feed items the target's mapping made
    delta/<feed>-<part>.parquet       what differs from the snapshot: insert/update/delete/held/quarantined
    diff-b003.json                    the diff's counts, per feed
    results/<feed>-<part>.parquet     one result per item sent: ok, retryable or rejected (with the reason)
    export-<part>.json                the export's counts
    commit.json                       the commit's counts (written last: the run is committed)
    error.json                        which step failed and why (for report)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog_sync.state.location import StateLocation

CATALOG_PART = "catalog"
STAGING = "staging"


def bucket_part(bucket: int) -> str:
    return f"b{bucket:03d}"


@dataclass(frozen=True)
class StagingFolder:
    location: StateLocation

    PLAN = "plan.json"
    COMMIT = "commit.json"
    ERROR = "error.json"

    # ---- names -----------------------------------------------------------------------

    @staticmethod
    def extract(bucket: int, ext: str = "parquet") -> str:
        return f"extract-{bucket_part(bucket)}.{ext}"

    @staticmethod
    def scope(bucket: int) -> str:
        return f"scope-{bucket_part(bucket)}.parquet"

    @staticmethod
    def items(feed: str, part: str) -> str:
        return f"items/{feed}-{part}.parquet"

    @staticmethod
    def delta(feed: str, part: str) -> str:
        return f"delta/{feed}-{part}.parquet"

    @staticmethod
    def diff_counts(bucket: int) -> str:
        return f"diff-{bucket_part(bucket)}.json"

    @staticmethod
    def results(feed: str, part: str) -> str:
        return f"results/{feed}-{part}.parquet"

    @staticmethod
    def export_counts(part: str) -> str:
        return f"export-{part}.json"

    # ---- files -------------------------------------------------------------------------

    def url_of(self, name: str) -> str:
        return self.location.url_of(name)

    def path(self, name: str) -> str:
        return self.location.path(name)

    def exists(self, name: str) -> bool:
        return self.location.exists(name)

    def glob(self, pattern: str) -> list[str]:
        """Names (relative to the folder) matching `pattern`, e.g. 'results/prices-*.parquet'."""
        root = self.location.path("")
        return sorted(p[len(root):].lstrip("/") for p in self.location.fs.glob(self.location.path(pattern)))

    def parts_of(self, kind: str, feed: str) -> list[str]:
        """The delta or results files of a feed, over every part."""
        return self.glob(f"{kind}/{feed}-*.parquet")

    def read_json(self, name: str) -> Any:
        return self.location.read_json(name)

    def write_json(self, data: Any, name: str) -> None:
        self.location.write_json_atomic(data, name)

    def makedirs(self, *names: str) -> None:
        for name in names or ("",):
            self.location.makedirs(name)

    def open(self, name: str, mode: str = "rb"):
        return self.location.open(name, mode=mode)

    def remove(self, name: str = "", recursive: bool = False) -> None:
        if name:
            self.location.remove(name, recursive=recursive)
        else:
            self.location.remove(recursive=True)

    @property
    def fs(self):
        return self.location.fs

    # ---- housekeeping (state.leftovers) -------------------------------------------------

    def plan(self) -> dict[str, Any] | None:
        """The run's plan as written by its plan step; None when it is missing or unreadable."""
        try:
            data = self.read_json(self.PLAN)
        except Exception:  # missing, or cut short by a kill
            return None
        return data if isinstance(data, dict) else None

    def size(self) -> int:
        """Bytes held by the folder's files."""
        fs, root = self.fs, self.location.path("")
        return int(sum(info.get("size") or 0 for info in fs.find(root, detail=True).values()))


def staging_folders(state: StateLocation) -> dict[str, StagingFolder]:
    """Every run's staging folder under `<state>/staging/`, by run key."""
    fs, root = state.fs, state.path(STAGING)
    entries = fs.ls(root, detail=True) if fs.exists(root) else []
    keys = sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")
    return {key: StagingFolder(state.child(STAGING, key)) for key in keys}
