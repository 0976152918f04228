"""Settings of one Catalog Sync deployment.

`SyncSettings` is filled either from CLI flags and environment variables (`from_env`) or
from Airflow Connections and Variables (`catalog_sync.airflow.connections.load_settings`).
The engine only ever sees this dataclass, never Airflow. It knows nothing of any target:
the target's own settings are an opaque `target` config that its kind built (see
`catalog_sync.targets`). URLs may hold secrets: never log them raw, use `redact_url`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from catalog_sync.magento.catalog_reader import ViewSelection
    from catalog_sync.magento.layout import Edition

DEFAULT_CHUNK_SIZE = 10000
# The sync lock's lease. Each step renews it every quarter lease while it works, so it only has to
# outlast the pause between two tasks of a run (a retry waits up to 10 minutes); a run that died
# frees the target this long after its last renewal.
DEFAULT_LOCK_TTL_S = 30 * 60
MIN_LOCK_TTL_S = 60
DEFAULT_KEEP_SNAPSHOT_VERSIONS = 3
# How long the target may take to apply a request it did not answer (the contract gives no
# maximum): items of such a request are sent once more by the first run planned after it.
DEFAULT_LATE_WRITE_WINDOW_S = 1800
DEFAULT_COMPACT_SHARE = 0.1  # see SyncSettings.compact_share


class ConfigurationError(ValueError):
    """Settings are wrong; the message says what to fix."""


@dataclass(frozen=True)
class SyncSettings:
    # URLs and credentials may hold secrets: kept out of repr() so they never reach a log.
    source_url: str = field(repr=False)
    target_url: str
    state_url: str
    status_url: str = field(default="", repr=False)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    buckets: int = 1  # hash buckets of sku; each runs its own extract/diff/export (mapped tasks)
    # The target's own settings (a TargetConfig of its kind); None: built from target_url alone.
    target: Any = field(default=None, repr=False)
    # fsspec options of an object-storage state URL (s3fs: key, secret, client_kwargs...).
    state_storage_options: dict = field(default_factory=dict, repr=False)
    # The run's instant, pinned (CATALOG_SYNC_NOW): every date question of a run is answered at it.
    # None: the moment the run is planned. Set for tests and replays only (see run_clock).
    now: datetime | None = None
    lock_ttl_s: int = DEFAULT_LOCK_TTL_S  # the sync lock's lease, seconds (CATALOG_SYNC_LOCK_LEASE_S)
    keep_snapshot_versions: int = DEFAULT_KEEP_SNAPSHOT_VERSIONS
    late_write_window_s: int = DEFAULT_LATE_WRITE_WINDOW_S
    # A commit writes a new snapshot base, not a delta, once the deltas would hold more rows than this share
    # of the base (CATALOG_SYNC_COMPACT_SHARE; 0 compacts at every commit).
    compact_share: float = DEFAULT_COMPACT_SHARE
    # The CLI's --deadline: once passed (operational clock), nothing more is sent; what was sent is
    # committed and the rest is retried by the next run. None: no deadline.
    deadline_at: datetime | None = None
    target_name: str = "default"
    # Which active store views are exported (empty: every one): websites by code, store views by code.
    websites: tuple[str, ...] = ()
    store_views: tuple[str, ...] = ()
    # The base view of a locale several exported views share (the others become layers over it); by code.
    base_views: tuple[str, ...] = ()
    # The shop's db.table_prefix (env.php), and its edition: "open_source", "commerce" (Adobe Commerce's
    # content staging layout), or "" to detect it from the columns (magento/layout.py).
    table_prefix: str = ""
    edition: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.source_url:
            raise ConfigurationError("source URL is missing: set --source-url or the catalog_sync_source Connection")
        if not self.target_url:
            raise ConfigurationError("target URL is missing: set --target-url or the catalog_sync_target Connection")
        if not self.state_url:
            raise ConfigurationError("state URL is missing: set --state-url or the catalog_sync_state_url Variable")
        if self.chunk_size <= 0:
            raise ConfigurationError("chunk_size must be a positive integer")
        if not isinstance(self.lock_ttl_s, int) or self.lock_ttl_s < MIN_LOCK_TTL_S:
            raise ConfigurationError(f"the sync lock's lease (CATALOG_SYNC_LOCK_LEASE_S, Variable catalog_sync_lock_lease_s) "
                                     f"must be a whole number of seconds, at least {MIN_LOCK_TTL_S}; got {self.lock_ttl_s!r}")
        if self.late_write_window_s < 0:
            raise ConfigurationError("the late-write window must be 0 seconds or more")
        if not 0 <= self.compact_share <= 1:
            raise ConfigurationError(f"the compaction share (CATALOG_SYNC_COMPACT_SHARE) must be between 0 and 1; "
                                     f"got {self.compact_share!r}")
        if not re.fullmatch(r"[A-Za-z0-9_]*", self.table_prefix):
            raise ConfigurationError(f"the table prefix may hold only letters, digits and underscores; got {self.table_prefix!r}")
        self.source_edition  # an unknown edition fails here
        if not self.status_url:
            object.__setattr__(self, "status_url", default_status_url(self.state_url))
        if self.target is None:
            from catalog_sync.targets.registry import config_from_env

            object.__setattr__(self, "target", config_from_env(self.target_url, {}))

    @property
    def source_edition(self) -> Edition | None:
        """The edition as set; None: detected."""
        from catalog_sync.magento.layout import Edition

        return Edition.from_setting(self.edition)

    @property
    def view_selection(self) -> ViewSelection:
        """The store views exported, and each locale's base view."""
        from catalog_sync.magento.catalog_reader import ViewSelection

        return ViewSelection(self.websites, self.store_views, self.base_views)

    @classmethod
    def from_env(cls, target_flags: Mapping[str, Any] | None = None, **overrides: object) -> "SyncSettings":
        """CLI flags win; CATALOG_SYNC_* environment variables fill the rest. `target_flags` are the
        target's own flags (price books, batch size), given to the target's kind with the environment."""
        from catalog_sync.targets.registry import config_from_env

        env = os.environ
        values: dict[str, object] = {
            "source_url": env.get("CATALOG_SYNC_SOURCE_URL", ""),
            "target_url": env.get("CATALOG_SYNC_TARGET_URL", ""),
            "state_url": env.get("CATALOG_SYNC_STATE_URL", ""),
            "status_url": env.get("CATALOG_SYNC_STATUS_URL", ""),
            "chunk_size": int(env.get("CATALOG_SYNC_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)),
            "buckets": int(env.get("CATALOG_SYNC_BUCKETS", 1)),
            "now": pinned_instant(env),
            "lock_ttl_s": lock_lease_s(env.get("CATALOG_SYNC_LOCK_LEASE_S")),
            "late_write_window_s": int(env.get("CATALOG_SYNC_LATE_WRITE_WINDOW_S", DEFAULT_LATE_WRITE_WINDOW_S)),
            "compact_share": float(env.get("CATALOG_SYNC_COMPACT_SHARE", DEFAULT_COMPACT_SHARE)),
            "websites": codes(env.get("CATALOG_SYNC_WEBSITES")),
            "store_views": codes(env.get("CATALOG_SYNC_STORE_VIEWS")),
            "base_views": codes(env.get("CATALOG_SYNC_BASE_VIEWS")),
            "table_prefix": env.get("CATALOG_SYNC_TABLE_PREFIX", ""),
            "edition": env.get("CATALOG_SYNC_EDITION", ""),
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        if values["target_url"]:
            values["target"] = config_from_env(str(values["target_url"]), env, target_flags or {})
        return cls(**values)  # type: ignore[arg-type]


def codes(value: object) -> tuple[str, ...]:
    """A comma-separated list of codes (websites, store views), as given in an env var, a flag or a Variable."""
    if value in (None, ""):
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def lock_lease_s(value: object) -> int:
    """The lease setting as given (env var or Variable): whole seconds; unset is the default."""
    if value in (None, ""):
        return DEFAULT_LOCK_TTL_S
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"the sync lock's lease must be a whole number of seconds; got {value!r}") from None


def pinned_instant(env: Mapping[str, str]) -> datetime | None:
    """The run instant pinned by CATALOG_SYNC_NOW, if any (CATALOG_SYNC_TODAY is gone: say so)."""
    from catalog_sync.run_clock import PIN_ENV, parse_instant

    if env.get("CATALOG_SYNC_TODAY"):
        raise ConfigurationError(
            f"CATALOG_SYNC_TODAY is replaced by {PIN_ENV}, an instant: e.g. {PIN_ENV}={env['CATALOG_SYNC_TODAY']}T12:00:00Z")
    return parse_instant(env[PIN_ENV]) if env.get(PIN_ENV) else None


def default_status_url(state_url: str) -> str:
    """The embedded default: a SQLite status store beside a local snapshot."""
    if "://" in state_url and not state_url.startswith("file://"):
        raise ConfigurationError(
            "the state lives on object storage, so the status store cannot default to a local SQLite file: "
            "set --status-url or the catalog_sync_status Connection"
        )
    local = Path(state_url.removeprefix("file://")).resolve()
    return f"sqlite:///{local / 'status.db'}"


def redact_url(url: str) -> str:
    """A URL that is safe to log: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (file://, http://)
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url
