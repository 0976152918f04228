"""How the shop's tables lie: its table prefix, and Adobe Commerce's versioned (row_id) catalog.

Every query is written once, against Magento Open Source's tables as `schema` declares them. The source
engine carries a `SourceLayout` (`attach`), and SQLAlchemy's compiler renders each table of a FROM clause
as this shop has it:

- with a table prefix (`db.table_prefix` in env.php): `mg_store AS store`, so the query's column
  references stay as written;
- on Adobe Commerce (content staging), the version in force at the run's instant. `catalog_product_entity`
  and `catalog_category_entity` hold one row per version (`row_id`), in force from `created_in` to
  `updated_in` (UNIX times; Magento's VersionManager reads `created_in <= t < updated_in`). A table keyed
  by a version's `row_id` is read joined to the version in force, its key given back as the entity id. So
  entity ids stay the identity everywhere: in the snapshot, in the changelogs and at the target.

Only the read-only source engine carries a layout; nothing else is rewritten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import TableClause

from catalog_sync.magento import schema

_ATTRIBUTE = "catalog_sync_layout"  # where an engine's dialect keeps its SourceLayout


class Edition(str, enum.Enum):
    """Which catalog layout the shop's database has."""

    OPEN_SOURCE = "Magento Open Source"  # catalog_product_entity keyed by entity_id
    # Content staging: catalog_product_entity keyed by row_id, one row per version (created_in / updated_in).
    COMMERCE = "Adobe Commerce (content staging, row_id)"

    @classmethod
    def from_setting(cls, value: str) -> "Edition | None":
        """The edition a setting names ('open_source', 'commerce'); None for '' or 'auto' (detected)."""
        text = (value or "").strip().lower().replace("-", "_").replace(" ", "_")
        if text in ("", "auto"):
            return None
        for edition, names in ((cls.OPEN_SOURCE, ("open_source", "opensource", "magento")),
                               (cls.COMMERCE, ("commerce", "adobe_commerce", "enterprise"))):
            if text in names:
                return edition
        from catalog_sync.settings import ConfigurationError

        raise ConfigurationError(f"unknown Magento edition {value!r}: use open_source, commerce, or auto (detected)")


# Adobe Commerce's versioned entities: one row per version, row_id the key, entity_id the identity.
VERSIONED = frozenset({"catalog_product_entity", "catalog_category_entity"})


@dataclass(frozen=True)
class RowKey:
    """A table that names a version (row_id) where Open Source names the entity."""

    column: str  # the column as the queries read it (Open Source's)
    physical: str  # the column Adobe Commerce has in its place, holding a row_id
    entity: str = "catalog_product_entity"


def _eav(entity: str) -> dict[str, RowKey]:
    return {f"{entity}_{backend}": RowKey("entity_id", "row_id", entity) for backend in schema.BACKEND_VALUE_TYPES}


ROW_KEYED: dict[str, RowKey] = {
    **_eav("catalog_product_entity"),
    **_eav("catalog_category_entity"),
    "catalog_product_entity_media_gallery_value": RowKey("entity_id", "row_id"),
    "catalog_product_entity_media_gallery_value_to_entity": RowKey("entity_id", "row_id"),
    "catalog_product_entity_tier_price": RowKey("entity_id", "row_id"),
    "magento_giftcard_amount": RowKey("entity_id", "row_id"),
    # Same column names, holding the parent's row_id; the child side (product_id, child_id) stays an entity id.
    "catalog_product_link": RowKey("product_id", "product_id"),
    "catalog_product_super_attribute": RowKey("product_id", "product_id"),
    "catalog_product_super_link": RowKey("parent_id", "parent_id"),
    "catalog_product_relation": RowKey("parent_id", "parent_id"),
    "catalog_product_bundle_option": RowKey("parent_id", "parent_id"),
    "catalog_product_bundle_option_value": RowKey("parent_product_id", "parent_product_id"),
    "catalog_product_bundle_selection": RowKey("parent_product_id", "parent_product_id"),
    "catalog_product_option": RowKey("product_id", "product_id"),
    "downloadable_link": RowKey("product_id", "product_id"),
    "downloadable_sample": RowKey("product_id", "product_id"),
}


@dataclass(frozen=True)
class SourceLayout:
    """The shop's table prefix and edition, and the instant whose versions are read (Adobe Commerce)."""

    edition: Edition = Edition.OPEN_SOURCE
    prefix: str = ""
    at: int | None = None  # UNIX seconds; None: the moment a query is compiled

    @property
    def plain(self) -> bool:
        return self.edition is Edition.OPEN_SOURCE and not self.prefix

    def name(self, table: str) -> str:
        """The table's name in the shop's database."""
        return self.prefix + table

    def unprefixed(self, names: set[str]) -> set[str]:
        """The shop's table names carrying the prefix, without it (tables of other applications left out)."""
        return {n[len(self.prefix):] for n in names if n.startswith(self.prefix)} if self.prefix else set(names)

    def instant(self) -> int:
        if self.at is not None:
            return self.at
        from catalog_sync import clock

        return int(clock.now().timestamp())

    def describe(self) -> str:
        parts = [self.edition.value]
        if self.prefix:
            parts.append(f"table prefix {self.prefix!r}")
        return ", ".join(parts)


def of(bind: sa.Engine | sa.Connection) -> SourceLayout:
    """The layout an engine (or connection) reads with; a bare engine reads Open Source's, unprefixed."""
    return getattr(bind.dialect, _ATTRIBUTE, None) or SourceLayout()


def detect(bind: sa.Engine | sa.Connection, prefix: str = "") -> Edition:
    """Adobe Commerce when catalog_product_entity has a row_id (content staging), else Open Source."""
    try:
        columns = {c["name"] for c in sa.inspect(bind).get_columns(prefix + schema.catalog_product_entity.name)}
    except sa.exc.NoSuchTableError:
        return Edition.OPEN_SOURCE  # verify_schema names the missing table
    return Edition.COMMERCE if "row_id" in columns else Edition.OPEN_SOURCE


def commerce_gaps(bind: sa.Engine | sa.Connection, present: set[str]) -> list[str]:
    """The columns Adobe Commerce's layout needs that the shop's tables (`present`, unprefixed) lack, as
    table.column: a half-migrated database would otherwise fail mid-run, or read the wrong rows."""
    shop, inspector = of(bind), sa.inspect(bind)
    needed = {**{t: ("row_id", "entity_id", "created_in", "updated_in") for t in VERSIONED},
              **{t: (k.physical,) for t, k in ROW_KEYED.items()}}
    gaps = []
    for table, columns in sorted(needed.items()):
        if table in present:
            have = {c["name"] for c in inspector.get_columns(shop.name(table))}
            gaps.extend(f"{table}.{c}" for c in columns if c not in have)
    return gaps


def attach(engine: sa.Engine, prefix: str = "", edition: Edition | None = None) -> SourceLayout:
    """Give the source engine its layout: the edition as set, else detected (Open Source when the database
    cannot be read yet: plan's verify_schema then says why)."""
    if edition is None:
        try:
            edition = detect(engine, prefix)
        except sa.exc.SQLAlchemyError:
            edition = Edition.OPEN_SOURCE
    found = SourceLayout(edition, prefix)
    _set(engine, found)
    return found


def read_at(engine: sa.Engine, moment: datetime) -> None:
    """Read the versions in force at `moment` (the run's instant) from now on."""
    _set(engine, replace(of(engine), at=int(moment.timestamp())))


def _set(engine: sa.Engine, found: SourceLayout) -> None:
    setattr(engine.dialect, _ATTRIBUTE, None if found.plain else found)
    if not found.plain:
        # Compiled SQL carries the prefix and the instant, which SQLAlchemy's statement cache does not key on.
        engine.update_execution_options(compiled_cache=None)


def physical(bind: sa.Engine | sa.Connection, name: str, *columns: str) -> TableClause:
    """The shop's table as it is (prefixed, every version of every row), not as the queries read it."""
    table = sa.table(of(bind).name(name), *(sa.column(c) for c in columns))
    table.catalog_sync_physical = True  # rendered as named
    return table


def all_versions(bind: sa.Engine | sa.Connection, entity: str) -> TableClause:
    """Every version of a versioned entity (Adobe Commerce): its row_id, entity_id, created_in and updated_in."""
    return physical(bind, entity, "row_id", "entity_id", "created_in", "updated_in")


@compiles(sa.Table)
@compiles(TableClause)
def _render(table: TableClause, compiler, asfrom: bool = False, enclosing_alias=None, **kw) -> str:
    layout: SourceLayout | None = getattr(compiler.dialect, _ATTRIBUTE, None)
    if layout is None or not asfrom or getattr(table, "schema", None) or getattr(table, "catalog_sync_physical", False):
        return compiler.visit_table(table, asfrom=asfrom, enclosing_alias=enclosing_alias, **kw)
    quote = compiler.preparer.quote
    name = table.name
    if layout.edition is Edition.COMMERCE and name in VERSIONED:
        at = layout.instant()
        rendered = f"(SELECT * FROM {quote(layout.name(name))} WHERE created_in <= {at} AND updated_in > {at})"
    elif layout.edition is Edition.COMMERCE and name in ROW_KEYED:
        rendered = _row_keyed(table, ROW_KEYED[name], layout, quote)
    else:
        rendered = quote(layout.name(name))
        if rendered == quote(name):
            return compiler.visit_table(table, asfrom=asfrom, enclosing_alias=enclosing_alias, **kw)
    if kw.get("from_linter"):
        kw["from_linter"].froms[table] = name
    if enclosing_alias is not None and enclosing_alias.element is table:
        return rendered  # the alias names it
    return f"{rendered} AS {quote(name)}"


def _row_keyed(table: TableClause, key: RowKey, layout: SourceLayout, quote) -> str:
    """The rows of the versions in force, each with its entity id where Open Source has it."""
    at = layout.instant()
    columns = ", ".join(f"e.entity_id AS {quote(c.name)}" if c.name == key.column else f"v.{quote(c.name)}"
                        for c in table.columns)
    return (f"(SELECT {columns} FROM {quote(layout.name(table.name))} AS v JOIN {quote(layout.name(key.entity))} AS e "
            f"ON e.row_id = v.{quote(key.physical)} WHERE e.created_in <= {at} AND e.updated_in > {at})")
