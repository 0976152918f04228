"""What one run is: the caller's request, the plan every step follows, and the services a step uses."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from catalog_sync import clock, run_clock
from catalog_sync.magento import layout
from catalog_sync.magento.catalog_reader import MagentoCatalogReader, read_only_engine
from catalog_sync.settings import SyncSettings
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import FeedFiles, SnapshotStore
from catalog_sync.state.staging import StagingFolder
from catalog_sync.state.status_store import StatusStore
from catalog_sync.targets.base import Target
from catalog_sync.targets.registry import open_target


@dataclass(frozen=True)
class SyncRequest:
    """What the caller asks for. The plan step decides the actual mode."""

    run_id: str
    full: bool = False
    cleanup: bool = False
    skus: tuple[str, ...] = ()
    dry_run: bool = False
    # Start again from an empty snapshot (every item re-sent): the way out of a state nothing can be recovered from.
    rebuild: bool = False
    dag_id: str | None = None
    airflow_run_id: str | None = None
    holder_process: str = ""  # host:pid when one process runs the whole sync (CLI)

    @staticmethod
    def new_run_id(prefix: str = "cli") -> str:
        return f"{prefix}-{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunPlan:
    """The small plan every step of a run follows (it travels through XCom: no data, no secrets)."""

    run_id: str
    run_key: str
    mode: str
    mode_reason: str
    dry_run: bool
    force_resend: bool
    skus: list[str]
    staging: str
    base_version: int
    base_feeds: dict[str, dict]  # feed -> FeedFiles as a dict: the snapshot this run compares with
    since_marks: dict | None
    until_marks: dict
    started_at: str  # when the run started (operational clock): status and run keys
    # The run's instant (ISO, UTC): every date question of every step is answered at it (run_clock).
    instant: str = ""
    buckets: int = 1  # hash buckets of sku: extract, diff and export run once per bucket
    fingerprints: dict = field(default_factory=dict)  # what bodies depend on (plan.current_fingerprints)
    label_changes: dict = field(default_factory=dict)  # label buckets changed since the last run (plan.changed_labels)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunPlan":
        known = {f.name for f in fields(cls)}
        plan = cls(**{k: v for k, v in data.items() if k in known})
        # A plan made before the run instant existed (a run in flight across an upgrade): its start.
        return plan if plan.instant else replace(plan, instant=plan.started_at)

    @property
    def at(self) -> datetime:
        """The run's instant."""
        return run_clock.parse_instant(self.instant)

    def base(self, feed: str) -> FeedFiles:
        return FeedFiles.from_dict(self.base_feeds[feed]) if feed in self.base_feeds else FeedFiles()

    def batch_label(self, bucket: int) -> str:
        return f" [bucket {bucket + 1}/{self.buckets}]" if self.buckets > 1 else ""


def run_key(run_id: str, started: datetime) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:80]
    # Microseconds keep keys (and the file target's delta folders) in run order.
    return f"{started:%Y%m%dT%H%M%S%f}Z-{slug}"


class Workspace:
    """The services one step needs, built from settings and opened on first use; a context
    manager, so that no step leaks a connection when it fails."""

    def __init__(self, settings: SyncSettings, at: datetime | None = None):
        self.settings = settings
        self.at = at  # the run's instant: Adobe Commerce's versions in force then are read
        self.state = open_state(settings.state_url, settings.state_storage_options)
        self.snapshots = SnapshotStore(self.state, settings.keep_snapshot_versions)
        self._status: StatusStore | None = None
        self._source: sa.Engine | None = None
        self._target: Target | None = None

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def status(self) -> StatusStore:
        if self._status is None:
            self._status = StatusStore(self.settings.status_url, self.settings.target_name)
        return self._status

    @property
    def source(self) -> sa.Engine:
        if self._source is None:
            self._source = read_only_engine(self.settings.source_url, self.settings.table_prefix,
                                            self.settings.source_edition)
            if self.at is not None:
                layout.read_at(self._source, self.at)
        return self._source

    def reader(self) -> MagentoCatalogReader:
        """The Magento catalog, as exported: the store views the settings choose."""
        return MagentoCatalogReader(self.source, self.settings.view_selection)

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = open_target(self.settings.target)
        return self._target

    def staging(self, plan: RunPlan) -> StagingFolder:
        return StagingFolder(self.state.child(plan.staging))

    def snapshot_url(self, relative: str | None) -> str | None:
        return self.snapshots.file_url(relative)

    def close(self) -> None:
        if self._status is not None:
            self._status.dispose()
        if self._source is not None:
            self._source.dispose()
        if self._target is not None:
            self._target.close()
        self._status = self._source = self._target = None

