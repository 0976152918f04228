"""Which products changed since our last sync.

Primary method: Magento's own mview changelog tables (`*_cl`), filled by
database triggers on every catalog write. We keep one watermark (the last
`version_id` we consumed) per changelog in our snapshot manifest, and never
touch Magento's `mview_state`.

Fallback ("Update on Save" shops without changelogs): an `updated_at`
watermark with a safety overlap, plus a key-only scan so deletes are seen.

On Adobe Commerce, a scheduled update (content staging) changes which version of a
product is in force at its start and at its end, and no trigger fires then. The
marks also keep the run's instant (`versions_at`): the products with a version
starting or ending between two runs' instants changed too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog_sync.magento import inventory, layout
from catalog_sync.magento import schema as m

log = logging.getLogger(__name__)

CHANGELOG = "changelog"
UPDATED_AT = "updated_at"
UPDATED_AT_OVERLAP = timedelta(minutes=10)
_TS_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class ChangeMarks:
    """A position in the shop's change history: watermarks per changelog, or an updated_at instant."""

    method: str
    changelog_versions: dict[str, int] = field(default_factory=dict)
    updated_at: str | None = None
    versions_at: int | None = None  # Adobe Commerce: the instant (UNIX seconds) whose versions were read

    def to_dict(self) -> dict:
        return {"method": self.method, "changelog_versions": dict(self.changelog_versions), "updated_at": self.updated_at,
                "versions_at": self.versions_at}

    @classmethod
    def from_dict(cls, data: dict | None) -> "ChangeMarks | None":
        if not data:
            return None
        return cls(data["method"], {k: int(v) for k, v in data.get("changelog_versions", {}).items()}, data.get("updated_at"),
                   data.get("versions_at"))


class ChangeDetector:
    def __init__(self, engine: Engine):
        self.engine = engine

    def available_changelogs(self) -> list[str]:
        present = m.present_tables(self.engine)
        return [name for name in m.CHANGELOG_TABLE_NAMES if name in present]

    def current_marks(self) -> ChangeMarks:
        """Where the shop's history stands now; the next sync reads up to here."""
        marks = self._history_marks()
        shop = layout.of(self.engine)
        return replace(marks, versions_at=shop.instant()) if shop.edition is layout.Edition.COMMERCE else marks

    def _history_marks(self) -> ChangeMarks:
        changelogs = self.available_changelogs()
        with self.engine.connect() as conn:
            if changelogs:
                versions = {}
                caps = _index_caps(conn, changelogs)
                for name in changelogs:
                    t = m.CHANGELOG_TABLES[name]
                    newest = int(conn.execute(sa.select(sa.func.max(t.c.version_id))).scalar() or 0)
                    if name in caps and caps[name] < newest:
                        log.info("change detection: %s read up to version %d of %d, where Magento's indexer stands: "
                                 "the stock index holds the rest only after it runs", name, caps[name], newest)
                    versions[name] = min(newest, caps.get(name, newest))
                return ChangeMarks(CHANGELOG, versions)
            e = m.catalog_product_entity.c
            latest = conn.execute(sa.select(sa.func.max(e.updated_at))).scalar()
        return ChangeMarks(UPDATED_AT, updated_at=_format_ts(latest))

    def gap_reason(self, since: ChangeMarks) -> str | None:
        """Why the changes since `since` cannot be read completely, or None when they can."""
        now_available = self.available_changelogs()
        if since.method != (CHANGELOG if now_available else UPDATED_AT):
            return f"change tracking switched from {since.method} to {'changelog' if now_available else 'updated_at'}"
        if since.method == UPDATED_AT:
            return None
        with self.engine.connect() as conn:
            for name in now_available:
                if name not in since.changelog_versions:
                    return f"changelog {name} appeared since the last sync; its history before now is unknown"
                t = m.CHANGELOG_TABLES[name]
                oldest, newest = conn.execute(sa.select(sa.func.min(t.c.version_id), sa.func.max(t.c.version_id))).one()
                mark = since.changelog_versions[name]
                # Magento's cleanup may empty a changelog: the auto-increment counter still tells
                # how far its versions went.
                last_assigned = _last_assigned_version(conn, name)
                if last_assigned is None:
                    last_assigned = None if newest is None else int(newest)
                if last_assigned is not None and last_assigned > mark and (oldest is None or int(oldest) > mark + 1):
                    kept = "none" if oldest is None else f"from version {oldest}"
                    return (
                        f"changelog {name} was trimmed past our watermark: we consumed up to version {mark}, "
                        f"versions up to {last_assigned} were written, {kept} kept"
                    )
                if newest is not None and int(newest) < mark:
                    return f"changelog {name} went backwards (max version {newest} < our watermark {mark}); was it truncated?"
        return None

    def changed_ids(self, since: ChangeMarks, until: ChangeMarks) -> set[int]:
        """Entity ids that changed in (since, until]."""
        return self._logged_ids(since, until) | self.scheduled_ids(since, until)

    def scheduled_ids(self, since: ChangeMarks, until: ChangeMarks) -> set[int]:
        """Adobe Commerce: the products a version of which started or ended in (since, until] (scheduled updates,
        which no changelog row tells of). Marks without an instant (Open Source, or an older release's): none."""
        lower, upper = since.versions_at, until.versions_at
        if lower is None or upper is None or upper <= lower:
            return set()
        v = layout.all_versions(self.engine, m.catalog_product_entity.name)
        started = v.c.created_in.between(lower + 1, upper)
        ended = v.c.updated_in.between(lower + 1, upper)
        with self.engine.connect() as conn:
            ids = {int(i) for i in conn.execute(sa.select(v.c.entity_id).distinct().where(started | ended)).scalars()}
        if ids:
            log.info("change detection: %d product(s) with a scheduled update (content staging) that started or ended "
                     "between %s and %s", len(ids), _utc(lower), _utc(upper))
        return ids

    def _logged_ids(self, since: ChangeMarks, until: ChangeMarks) -> set[int]:
        with self.engine.connect() as conn:
            if since.method == CHANGELOG:
                ids: set[int] = set()
                for name, upper in until.changelog_versions.items():
                    lower = since.changelog_versions.get(name, 0)
                    if upper <= lower:
                        continue
                    t = m.CHANGELOG_TABLES[name].c
                    query = (inventory.changed_products_query(lower, upper) if name == inventory.CHANGELOG else
                             sa.select(t.entity_id).distinct().where(t.version_id > lower, t.version_id <= upper))
                    ids.update(int(i) for i in conn.execute(query).scalars())
                return ids
            e = m.catalog_product_entity.c
            start = datetime.strptime(since.updated_at, _TS_FORMAT) - UPDATED_AT_OVERLAP if since.updated_at else None
            query = sa.select(e.entity_id)
            if start is not None:
                query = query.where(e.updated_at >= start)
            return {int(i) for i in conn.execute(query).scalars()}

    def all_ids(self) -> set[int]:
        """Key-only scan of the products, so deletes are seen without changelogs."""
        e = m.catalog_product_entity.c
        with self.engine.connect() as conn:
            return {int(i) for i in conn.execute(sa.select(e.entity_id)).scalars()}


def _index_caps(conn: sa.Connection, changelogs: list[str]) -> dict[str, int]:
    """On MSI shops the stock we send is read from Magento's stock index, not the rows the changelogs name:
    read those changelogs no further than the version their indexer has applied (`mview_state`), or we
    would read the index before it holds the change and never look again. A view not in mview_state
    (Update on Save) is indexed as it is written, and stocks without an index are read from their
    source items: no cap for those."""
    if not inventory.msi_available(conn):
        return {}
    indexes = inventory.stock_index_names(conn)
    watched = {cl: view for cl, view in inventory.INDEXED_CHANGELOGS.items()
               if cl in changelogs and inventory.feeds_an_index(cl, indexes)}
    if not watched:
        return {}
    s = m.mview_state.c
    rows = conn.execute(sa.select(s.view_id, s.version_id).where(s.view_id.in_(list(watched.values())), s.mode == "enabled"))
    applied = {r.view_id: int(r.version_id or 0) for r in rows}
    return {cl: applied[view] for cl, view in watched.items() if view in applied}


def _last_assigned_version(conn: sa.Connection, table: str) -> int | None:
    """The highest version_id ever assigned in a changelog, even if its rows were deleted."""
    dialect = conn.dialect.name
    table = layout.of(conn).name(table)
    if dialect in ("mysql", "mariadb"):
        next_id = conn.execute(
            sa.text("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"),
            {"t": table},
        ).scalar()
        return None if next_id is None else int(next_id) - 1
    if dialect == "sqlite":
        has_sequence = conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).scalar()
        if has_sequence:
            seq = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}).scalar()
            return None if seq is None else int(seq)
    return None


def _utc(unix: int) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_ts(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime(_TS_FORMAT)
    return str(value)[:19]
