"""Read-only access to a Magento 2 catalog database over SQLAlchemy Core.

Everything here is a SELECT. Catalog Sync never writes to the shop database
(not even `mview_state`); tests checksum the tables to prove it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog_sync.magento import bundle_options, configurable_options, inventory, layout, product_links, tier_prices
from catalog_sync.magento import schema as m
from catalog_sync.magento.id_lists import slices
from catalog_sync.magento.url_keys import UrlKeyCheck, UrlKeyRow, clash_rows_query, clashes, shared_values_query

log = logging.getLogger(__name__)

# Magento's own defaults (app/code/Magento/Directory/etc/config.xml, <general><locale>), used
# when core_config_data sets nothing at any scope.
DEFAULT_LOCALE = "en_US"
DEFAULT_TIMEZONE = "America/Los_Angeles"
DEFAULT_WEIGHT_UNIT = "lbs"  # Magento_Directory's etc/config.xml default
# The configuration paths the context reads (core_config_data): each one changes every item of its scope.
CONFIG_PATHS = ("general/locale/code", "general/locale/timezone", "currency/options/base", "currency/options/default",
                "catalog/price/scope", "general/locale/weight_unit", "cataloginventory/options/stock_threshold_qty",
                "web/secure/base_url", "web/secure/base_media_url")
# shop_settings: the key that says a scope (`stores/2`, `websites/1`) is exported, so that its settings
# going away with it tell apart from a setting deleted.
SCOPE_MARK = "scope "
# Label digests (label_digests): the kinds of label, and how many buckets of ids each is hashed in.
OPTION_LABELS, ATTRIBUTE_LABELS, SUPER_LABELS = "option", "attribute", "super"
LABEL_BUCKETS = 64


@dataclass(frozen=True)
class StoreView:
    store_id: int
    code: str
    name: str
    website_id: int
    website_code: str
    group_code: str
    locale: str
    currency: str
    media_url: str = ""  # base URL of product images: <media_url>catalog/product<file>
    timezone: str = DEFAULT_TIMEZONE  # general/locale/timezone: the zone its date windows are judged in
    is_website_default: bool = False  # its website's default store view (default group's default store)
    weight_unit: str = DEFAULT_WEIGHT_UNIT  # general/locale/weight_unit
    stock_id: int = inventory.LEGACY_STOCK  # the stock its website sells from (see magento/inventory)
    # currency/options/base: what its website's prices are in (website scope when catalog/price/scope is
    # website, else the default scope's); `currency` is the display currency, the base when none is set.
    base_currency: str = "USD"
    # Its place among the exported views of its locale (ViewSelection.ranked): 0 is the locale's base view,
    # whose values a product of the locale has; a view of rank n > 0 is a layer over the lower ranks.
    locale_rank: int = 0


@dataclass(frozen=True)
class Attribute:
    attribute_id: int
    code: str
    backend_type: str
    frontend_input: str | None
    label: str | None  # eav_attribute.frontend_label: the admin (store 0) label
    is_user_defined: bool
    # Storefront properties (catalog_eav_attribute), as Magento stores them.
    is_searchable: bool = False
    is_filterable: int = 0  # 0 no, 1 filterable with results, 2 filterable without results too
    is_filterable_in_search: bool = False
    used_for_sort_by: bool = False
    search_weight: float = 1.0
    is_visible_on_front: bool = False
    used_in_product_listing: bool = False
    is_comparable: bool = False
    # (store_id, label) from eav_attribute_label, by store_id; a tuple keeps the dataclass hashable.
    store_labels: tuple[tuple[int, str], ...] = ()

    def label_in(self, store_id: int | None) -> str:
        """Magento's storefront label: the store view's own, else the admin label, else the code."""
        return dict(self.store_labels).get(store_id) or self.label or self.code


@dataclass(frozen=True)
class Category:
    category_id: int
    path_ids: tuple[int, ...]
    level: int
    parent_id: int = 0
    position: int = 0  # its place among its siblings (catalog_category_entity.position)
    # (attribute code, store_id, value) of the EAV values the categories feed carries (magento/categories); store 0 = default
    values: tuple[tuple[str, int, Any], ...] = ()
    # The store views whose store group has this category as its root (store_group.root_category_id)
    root_of: tuple[int, ...] = ()

    def value(self, code: str, store_id: int) -> Any:
        """Magento's fallback: the store view's value, else the default (store 0) one."""
        found = {s: v for c, s, v in self.values if c == code and v is not None}
        return found.get(store_id, found.get(m.ADMIN_STORE_ID))


@dataclass(frozen=True)
class ViewSelection:
    """Which active store views are exported: those of these websites and with these codes (empty: every one)."""

    websites: tuple[str, ...] = ()
    store_views: tuple[str, ...] = ()
    # The base view of each locale that several exported views share, by code (at most one per locale).
    # A locale not named here: its website-default view with the lowest store id, else its lowest store id.
    base_views: tuple[str, ...] = ()

    def allows(self, view: StoreView) -> bool:
        return ((not self.websites or view.website_code in self.websites)
                and (not self.store_views or view.code in self.store_views))

    def check(self, active: Sequence[StoreView]) -> None:
        """Fail, naming them, when the selection names a website or store view the shop has no active one of."""
        from catalog_sync.settings import ConfigurationError

        unknown = [f"website {w!r}" for w in self.websites if w not in {v.website_code for v in active}]
        unknown += [f"store view {c!r}" for c in self.store_views if c not in {v.code for v in active}]
        if unknown:
            raise ConfigurationError(
                f"the exported store views name {', '.join(unknown)}, which the shop has no active one of; active store "
                f"views (website): {', '.join(f'{v.code} ({v.website_code})' for v in active) or 'none'}")
        if not any(self.allows(v) for v in active):
            raise ConfigurationError(f"no active store view is both in websites {list(self.websites)} and in store views "
                                     f"{list(self.store_views)}: nothing would be exported")

    def ranked(self, exported: Sequence[StoreView]) -> list[StoreView]:
        """The exported views, each with its `locale_rank`: the named base view first, then website-default
        views before others, then by store id."""
        from catalog_sync.settings import ConfigurationError

        by_code = {v.code: v for v in exported}
        unknown = [c for c in self.base_views if c not in by_code]
        if unknown:
            raise ConfigurationError(f"the base views name {', '.join(map(repr, unknown))}, which are not exported; "
                                     f"exported store views: {', '.join(sorted(by_code)) or 'none'}")
        named: dict[str, list[str]] = defaultdict(list)
        for code in self.base_views:
            named[by_code[code].locale].append(code)
        twice = {locale: codes for locale, codes in named.items() if len(codes) > 1}
        if twice:
            raise ConfigurationError("the base views name more than one view of a locale: " + "; ".join(
                f"{locale}: {', '.join(codes)}" for locale, codes in sorted(twice.items())))
        ranks: dict[str, int] = {}
        by_locale: dict[str, list[StoreView]] = defaultdict(list)
        for view in exported:
            by_locale[view.locale].append(view)
        for views in by_locale.values():
            order = sorted(views, key=lambda v: (v.code not in self.base_views, not v.is_website_default, v.store_id))
            ranks.update({v.code: rank for rank, v in enumerate(order)})
        return [dataclasses.replace(v, locale_rank=ranks[v.code]) for v in exported]


@dataclass
class CatalogContext:
    """Catalog-wide facts, read once per run and shared by every chunk."""

    store_views: list[StoreView]
    attributes_by_id: dict[int, Attribute]
    option_labels: dict[tuple[int, int], str]  # (option_id, store_id) -> label
    categories: dict[int, Category]
    category_names: dict[tuple[int, int], str]  # (category_id, store_id) -> name
    price_scope: int  # 0 global, 1 website (catalog/price/scope)
    # cataloginventory/options/stock_threshold_qty ("Only X left" threshold; 0: never shown)
    stock_threshold_qty: float = 0.0
    # Attributes shown as swatches (catalog_eav_attribute.additional_data swatch_input_type visual or text)
    swatch_attribute_ids: frozenset[int] = frozenset()
    stock_layout: inventory.StockLayout = field(default_factory=inventory.StockLayout)
    customer_groups: dict[int, str] = field(default_factory=dict)  # customer_group_id -> code (tier_prices)

    @property
    def attributes_by_code(self) -> dict[str, Attribute]:
        return {a.code: a for a in self.attributes_by_id.values()}

    def option_label(self, option_id: int, store_id: int) -> str | None:
        return self.option_labels.get((option_id, store_id)) or self.option_labels.get((option_id, m.ADMIN_STORE_ID))

    def category_path(self, category_id: int, store_id: int) -> str | None:
        """Names from below the store's root category down to this one, e.g. 'Gear/Bottles'."""
        category = self.categories.get(category_id)
        if category is None:
            return None
        # Skip the tree root (level 0) and the root catalog (level 1).
        names = [self.category_name(pid, store_id) or str(pid) for pid in category.path_ids[2:]]
        return "/".join(names) or None

    def category_name(self, category_id: int, store_id: int) -> str | None:
        return self.category_names.get((category_id, store_id)) or self.category_names.get(
            (category_id, m.ADMIN_STORE_ID)
        )


@dataclass
class ProductChunk:
    """Raw rows for a set of product ids, grouped by product."""

    entities: list[dict[str, Any]]
    # entity_id -> attribute_id -> store_id -> raw value
    values: dict[int, dict[int, dict[int, Any]]] = field(default_factory=dict)
    websites: dict[int, set[int]] = field(default_factory=dict)
    stock: dict[tuple[int, int], tuple[Any, int]] = field(default_factory=dict)  # (entity_id, stock_id) -> qty, is_in_stock
    category_ids: dict[int, list[int]] = field(default_factory=dict)
    category_positions: dict[tuple[int, int], int] = field(default_factory=dict)  # (product, category) -> its position there
    parent_ids: dict[int, list[int]] = field(default_factory=dict)
    child_ids: dict[int, list[int]] = field(default_factory=dict)
    linked_skus: dict[int, str] = field(default_factory=dict)
    # configurable id -> child id -> store_id -> price (for configurables without a price of their own)
    child_prices: dict[int, dict[int, dict[int, Any]]] = field(default_factory=dict)
    # entity_id -> list of (file, label per store {store_id: label}, position, disabled per store)
    gallery: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # (entity_id, store_id) -> why its url_key clashes with another product's (see url_keys)
    url_key_clashes: dict[tuple[int, int], str] = field(default_factory=dict)
    # configurable_options.variant_values_query rows: (parent_id, attribute_id, position, child_id, store_id, value)
    variant_values: list[tuple[int, int, int, int, int, Any]] = field(default_factory=list)
    # configurable_options.option_labels_query rows: (parent_id, attribute_id, store_id, use_default, value)
    option_labels: list[tuple[int, int, int, int, str | None]] = field(default_factory=list)
    # product_links.product_links_query rows: (product_id, link type code, linked sku)
    product_links: list[tuple[int, str, str]] = field(default_factory=list)
    # tier_prices.tier_prices_query rows: (entity_id, website_id, customer_group_id or None, qty, value, percentage)
    tier_prices: list[tuple[int, int, int | None, Any, Any, Any]] = field(default_factory=list)
    # bundle_options query rows: options (parent_id, option_id, required, position, type), titles
    # (option_id, store_id, title), selections (parent_id, parent_sku, option_id, product_id, sku, position,
    # is_default, qty, can_change_qty)
    bundle_options: list[tuple] = field(default_factory=list)
    bundle_titles: list[tuple] = field(default_factory=list)
    bundle_selections: list[tuple] = field(default_factory=list)


def read_only_engine(url: str, table_prefix: str = "", edition: layout.Edition | None = None) -> Engine:
    """An engine whose sessions cannot write: the shop's database is only ever read. It reads the shop's
    layout (`layout`): its table prefix, and its edition as set, else detected.

    MySQL/MariaDB sessions are READ ONLY and utf8mb4 (so 4-byte characters such as
    emoji survive); SQLite connections are query_only.
    """
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(parsed, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        if backend in ("mysql", "mariadb"):
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        elif backend == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        elif backend == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        dbapi_connection.commit()  # PostgreSQL would roll a SET back with the implicit transaction

    if backend != "sqlite" or not parsed.database or Path(parsed.database).exists():  # (not creating a missing file)
        layout.attach(engine, table_prefix, edition)
    return engine


# MySQL/MariaDB: SELECT command denied (to the table, to a column); PostgreSQL: insufficient_privilege.
_DENIED_MYSQL_CODES = frozenset({1142, 1143})
_DENIED_SQLSTATE = "42501"


def _permission_denied(exc: sa.exc.DBAPIError) -> bool:
    orig = exc.orig
    code = orig.args[0] if getattr(orig, "args", None) else None
    return code in _DENIED_MYSQL_CODES or getattr(orig, "pgcode", None) == _DENIED_SQLSTATE


def _table_prefix(present: set[str], missing: list[str]) -> str | None:
    """The prefix every missing required table is found under, if any (a shop installed with db.table_prefix)."""
    if not missing:
        return None
    found = {name[: -len(table)] for table in missing for name in present if name.endswith(table) and name != table}
    prefixes = [p for p in found if all(p + table in present for table in missing)]
    return min(prefixes, key=len) if prefixes else None


REQUIRED_TABLES = frozenset(
    t.name for t in (
        m.store, m.store_website, m.store_group, m.core_config_data, m.eav_entity_type, m.eav_attribute,
        m.catalog_product_entity, *m.PRODUCT_VALUE_TABLES.values(), m.catalog_product_website,
        m.cataloginventory_stock_item, m.catalog_category_entity, m.catalog_category_entity_varchar,
        m.catalog_category_product, m.catalog_product_super_link, m.catalog_product_super_attribute,
        m.catalog_product_super_attribute_label, m.catalog_eav_attribute, m.eav_attribute_label, m.catalog_product_link,
        m.catalog_product_link_type,
    )
)


class MagentoCatalogReader:
    def __init__(self, engine: Engine, views: ViewSelection = ViewSelection()):
        self.engine = engine
        self.views = views  # the store views exported (settings: websites, store views); every active one by default

    @cached_property
    def has_bundles(self) -> bool:
        """Whether the shop has Magento_Bundle's tables (a shop may remove the module)."""
        return bundle_options.available(self.engine)

    def verify_schema(self) -> None:
        """Fail fast, with what to fix, when the source is not a Magento 2 catalog."""
        from catalog_sync.settings import ConfigurationError, redact_url

        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            # Connecting would silently create an empty database file.
            raise ConfigurationError(f"the source SQLite database {url.database} does not exist")
        shop = layout.of(self.engine)
        try:
            present = m.present_tables(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigurationError(
                f"cannot read the Magento database at {redact_url(str(self.engine.url))}: {exc.__class__.__name__}: "
                f"{getattr(exc, 'orig', exc)}"
            ) from exc
        missing = sorted(REQUIRED_TABLES - present)
        prefix = _table_prefix(set(sa.inspect(self.engine).get_table_names()), [shop.name(t) for t in missing])
        if prefix:
            raise ConfigurationError(
                f"the Magento tables of {redact_url(str(self.engine.url))} carry the prefix "
                f"{shop.prefix + prefix!r} (db.table_prefix in app/etc/env.php, e.g. {shop.prefix + prefix}"
                f"catalog_product_entity): set it as the catalog_sync_source Connection's extra table_prefix, "
                "CATALOG_SYNC_TABLE_PREFIX or --table-prefix")
        if missing:
            given = f" under the table prefix {shop.prefix!r}" if shop.prefix else ""
            raise ConfigurationError(
                f"the source database {redact_url(str(self.engine.url))} is not a Magento 2 catalog{given}: "
                f"missing table(s) {', '.join(missing)}; check the catalog_sync_source Connection / --source-url, "
                "the database user's grants (MySQL lists no table a user may not read), and the table prefix "
                "(the Connection's extra table_prefix)"
            )
        found = layout.detect(self.engine, shop.prefix)
        if found is not shop.edition:
            raise ConfigurationError(
                f"the source database {redact_url(str(self.engine.url))} has the catalog layout of {found.value}, "
                f"but the edition is set to {shop.edition.value}: set the catalog_sync_source Connection's extra "
                "edition (or --edition) to match, or leave it unset to detect it")
        gaps = layout.commerce_gaps(self.engine, present) if found is layout.Edition.COMMERCE else []
        if gaps:
            raise ConfigurationError(
                f"the source database {redact_url(str(self.engine.url))} has Adobe Commerce's catalog layout "
                f"(catalog_product_entity.row_id) without the column(s) {', '.join(gaps)} that layout has: is its "
                "schema upgrade (setup:upgrade) complete?")
        log.info("source: %s", shop.describe())
        denied = self.unreadable_tables()
        core = [t for t in denied if t not in m.OPTIONAL_TABLES]
        if core:
            raise ConfigurationError(
                f"the database user of {redact_url(str(self.engine.url))} may not SELECT from "
                f"{', '.join(shop.name(t) for t in core)}: "
                "grant SELECT on each (README, 'Database grants'); without them the sync would read the shop as if "
                "those tables were empty")
        if denied:
            log.warning(
                "source: the database user may not read %s: MySQL answers so for a table the shop does not have too, "
                "so the sync reads the shop as if it had none of them; grant SELECT on those it has (README, "
                "'Database grants')", ", ".join(shop.name(t) for t in denied))

    def unreadable_tables(self) -> list[str]:
        """The tables the sync reads (schema.read_tables, and MSI's stock indexes) that the database user may not
        SELECT from: each is asked for nothing, and only "permission denied" counts. MySQL hides a table a user may
        not read from its table list, and answers "denied" for one that does not exist, to such a user: a table of
        Magento's core is then known to be there, an optional one (schema.OPTIONAL_TABLES) may not be."""
        with self.engine.connect() as conn:
            names = [*m.read_tables(), *sorted(inventory.stock_index_names(conn))]
            denied = []
            for name in names:
                try:
                    with conn.begin_nested() if conn.dialect.name == "postgresql" else contextlib.nullcontext():
                        conn.execute(sa.select(sa.literal(1)).select_from(layout.physical(conn, name)).where(sa.false()))
                except sa.exc.DBAPIError as exc:
                    if _permission_denied(exc):
                        denied.append(name)
            return denied

    # ---- catalog-wide context -------------------------------------------------

    def attribute_fingerprint(self) -> str:
        """sha1 of the product attributes' definitions (code, types, user-defined, shown on the storefront,
        swatch data): every item's body depends on them, and Magento logs no product change when one is
        added, removed, retyped, shown or hidden."""
        a, t, c = m.eav_attribute.c, m.eav_entity_type.c, m.catalog_eav_attribute.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(a.attribute_code, a.backend_type, a.frontend_input, a.is_user_defined, c.is_visible_on_front,
                          c.additional_data)
                .join_from(m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id)
                .outerjoin(m.catalog_eav_attribute, c.attribute_id == a.attribute_id)
                .where(t.entity_type_code == m.PRODUCT_ENTITY_TYPE_CODE).order_by(a.attribute_code)
            ).all()
        text = "\n".join("|".join("" if v is None else str(v) for v in r) for r in rows)
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def label_digests(self) -> dict[str, str]:
        """sha1s of the labels product bodies carry but no product row holds, in buckets by id: option labels
        (`option:<n>`), attributes' store-view labels (`attribute:<n>`) and configurables' option labels
        (`super:<n>`), n = id mod LABEL_BUCKETS. Magento's triggers log no product when one changes: the
        buckets that differ from the last run's say which products to read again (`label_products`)."""
        o, al, sl = m.eav_attribute_option_value.c, m.eav_attribute_label.c, m.catalog_product_super_attribute_label.c
        digests: dict[str, Any] = defaultdict(lambda: hashlib.sha1(usedforsecurity=False))
        with self.engine.connect() as conn:
            for kind, stmt in (
                (OPTION_LABELS, sa.select(o.option_id, o.store_id, o.value).order_by(o.option_id, o.store_id)),
                (ATTRIBUTE_LABELS, sa.select(al.attribute_id, al.store_id, al.value).order_by(al.attribute_id, al.store_id)),
                (SUPER_LABELS, sa.select(sl.product_super_attribute_id, sl.store_id, sl.use_default, sl.value)
                 .order_by(sl.product_super_attribute_id, sl.store_id)),
            ):
                for row in conn.execute(stmt):
                    digests[f"{kind}:{int(row[0]) % LABEL_BUCKETS}"].update(
                        ("|".join("" if v is None else str(v) for v in row) + "\n").encode())
        return {key: digest.hexdigest() for key, digest in sorted(digests.items())}

    def label_products(self, buckets: dict[str, list[int]]) -> set[int]:
        """The products whose bodies carry a label in these buckets (kind -> bucket numbers, from
        label_digests): products with a select or multiselect value among the options, and configurables
        whose options are the attributes or their own option labels. (A configurable shows its variants'
        option labels: the caller adds the configurables of these products, as for any changed product.)"""
        found: set[int] = set()
        a, t = m.eav_attribute.c, m.eav_entity_type.c
        sa_ = m.catalog_product_super_attribute.c
        with self.engine.connect() as conn:
            if buckets.get(OPTION_LABELS):
                wanted = set(buckets[OPTION_LABELS])
                inputs = dict(conn.execute(
                    sa.select(a.attribute_id, a.frontend_input)
                    .join_from(m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id)
                    .where(t.entity_type_code == m.PRODUCT_ENTITY_TYPE_CODE, a.frontend_input.in_(["select", "multiselect"]))
                ).all())
                v = m.PRODUCT_VALUE_TABLES["int"].c  # a select's value: one option id
                found.update(int(i) for i in conn.execute(sa.select(v.entity_id).distinct().where(
                    v.attribute_id.in_(sorted(i for i, kind in inputs.items() if kind == "select")),
                    (v.value % LABEL_BUCKETS).in_(sorted(wanted)))).scalars())
                multiselect = sorted(i for i, kind in inputs.items() if kind == "multiselect")
                for backend in ("varchar", "text"):  # a multiselect's value: option ids, comma-separated
                    v = m.PRODUCT_VALUE_TABLES[backend].c
                    for entity_id, value in conn.execute(
                            sa.select(v.entity_id, v.value).where(v.attribute_id.in_(multiselect), v.value.is_not(None))):
                        if any(p.strip().isdigit() and int(p) % LABEL_BUCKETS in wanted for p in str(value).split(",")):
                            found.add(int(entity_id))
            for kind, column in ((ATTRIBUTE_LABELS, sa_.attribute_id), (SUPER_LABELS, sa_.product_super_attribute_id)):
                if buckets.get(kind):
                    found.update(int(i) for i in conn.execute(
                        sa.select(sa_.product_id).distinct().where((column % LABEL_BUCKETS).in_(sorted(buckets[kind])))
                    ).scalars())
        return found

    def stock_fingerprint(self) -> str:
        """See inventory.layout_fingerprint: which stock each website shows."""
        with self.engine.connect() as conn:
            return inventory.layout_fingerprint(conn)

    def load_context(self) -> CatalogContext:
        with self.engine.connect() as conn:
            config = self._config(conn)
            views = self._exported(self._store_views(conn, config))
            attributes = self._product_attributes(conn)
            options = {
                (r.option_id, r.store_id): r.value
                for r in conn.execute(
                    sa.select(
                        m.eav_attribute_option_value.c.option_id,
                        m.eav_attribute_option_value.c.store_id,
                        m.eav_attribute_option_value.c.value,
                    )
                )
            }
            categories, names = self._categories(conn)
            swatches = self._swatch_attributes(conn)
            stock = inventory.read_layout(conn, {v.website_id: v.website_code for v in views})
            groups = tier_prices.customer_groups(conn)
        views = [dataclasses.replace(v, stock_id=stock.stock_of(v.website_id)) for v in views]
        price_scope = int(config.get(("default", 0, "catalog/price/scope")) or 0)
        threshold = float(config.get(("default", 0, "cataloginventory/options/stock_threshold_qty")) or 0)
        return CatalogContext(views, attributes, options, categories, names, price_scope, threshold, swatches, stock, groups)

    @staticmethod
    def _swatch_attributes(conn: sa.Connection) -> frozenset[int]:
        c = m.catalog_eav_attribute.c
        rows = conn.execute(sa.select(c.attribute_id, c.additional_data).where(c.additional_data.is_not(None)))
        found = set()
        for attribute_id, data in rows:
            try:
                kind = json.loads(data).get("swatch_input_type") if data else None
            except (ValueError, AttributeError):
                kind = None
            if kind in ("visual", "text"):
                found.add(int(attribute_id))
        return frozenset(found)

    def shop_settings(self) -> dict[str, str]:
        """The shop-wide settings every item depends on, as `scope/scope_id/path` -> value (the configuration
        paths the context reads) and `store view <code>` -> its website, group and id (the exported views):
        Magento logs no product change when one changes, so plan compares them with the last full sync's."""
        with self.engine.connect() as conn:
            config = self._config(conn)
            views = self._exported(self._store_views(conn, config))
        # Only the scopes of the exported views count: another website's setting changes none of our items.
        scopes = {("default", 0)} | {("websites", v.website_id) for v in views} | {("stores", v.store_id) for v in views}
        settings = {f"{scope}/{scope_id}/{path}": "" if value is None else str(value)
                    for (scope, scope_id, path), value in sorted(config.items()) if (scope, scope_id) in scopes}
        for view in sorted(views, key=lambda v: v.code):
            settings[f"store view {view.code}"] = (f"id {view.store_id}, website {view.website_code}, store {view.group_code}"
                                                   + (f", layer {view.locale_rank} of its locale" if view.locale_rank else ""))
        settings.update({f"{SCOPE_MARK}{scope}/{scope_id}": "exported" for scope, scope_id in sorted(scopes)})
        return settings

    @staticmethod
    def _config(conn: sa.Connection) -> dict[tuple[str, int, str], str | None]:
        c = m.core_config_data.c
        rows = conn.execute(sa.select(c.scope, c.scope_id, c.path, c.value).where(c.path.in_(CONFIG_PATHS)))
        return {(r.scope, int(r.scope_id), r.path): r.value for r in rows}

    def _exported(self, active: list[StoreView]) -> list[StoreView]:
        if self.views.websites or self.views.store_views:
            self.views.check(active)
            active = [v for v in active if self.views.allows(v)]
        return self.views.ranked(active)

    @staticmethod
    def _store_views(conn: sa.Connection, config: dict) -> list[StoreView]:
        s, w, g = m.store.c, m.store_website.c, m.store_group.c
        default_group = m.store_group.alias("website_default_group")
        rows = conn.execute(
            sa.select(s.store_id, s.code, s.name, s.website_id, w.code.label("website_code"), g.code.label("group_code"),
                      (default_group.c.default_store_id == s.store_id).label("is_website_default"))
            .join_from(m.store, m.store_website, s.website_id == w.website_id)
            .join(m.store_group, s.group_id == g.group_id)
            .outerjoin(default_group, default_group.c.group_id == w.default_group_id)
            .where(s.store_id != m.ADMIN_STORE_ID, s.is_active == 1)
            .order_by(s.store_id)
        )

        def scoped(path: str, store_id: int, website_id: int) -> str | None:
            # Magento's fallback: store view, then website, then default scope.
            for key in (("stores", store_id, path), ("websites", website_id, path), ("default", 0, path)):
                if config.get(key):
                    return config[key]
            return None

        website_prices = int(config.get(("default", 0, "catalog/price/scope")) or 0) == 1
        views = []
        for r in rows:
            currency = scoped("currency/options/default", r.store_id, r.website_id) or scoped(
                "currency/options/base", r.store_id, r.website_id
            )
            base = ((config.get(("websites", int(r.website_id), "currency/options/base")) if website_prices else None)
                    or config.get(("default", 0, "currency/options/base")))
            views.append(
                StoreView(
                    store_id=int(r.store_id),
                    code=r.code,
                    name=r.name,
                    website_id=int(r.website_id),
                    website_code=r.website_code,
                    group_code=r.group_code or "",
                    locale=scoped("general/locale/code", r.store_id, r.website_id) or DEFAULT_LOCALE,
                    timezone=scoped("general/locale/timezone", r.store_id, r.website_id) or DEFAULT_TIMEZONE,
                    currency=currency or "USD",
                    base_currency=base or "USD",
                    is_website_default=bool(r.is_website_default),
                    weight_unit=scoped("general/locale/weight_unit", r.store_id, r.website_id) or DEFAULT_WEIGHT_UNIT,
                    media_url=_media_url(
                        scoped("web/secure/base_media_url", r.store_id, r.website_id),
                        scoped("web/secure/base_url", r.store_id, r.website_id),
                    ),
                )
            )
        return views

    @staticmethod
    def _product_attributes(conn: sa.Connection) -> dict[int, Attribute]:
        a, t, c, lbl = m.eav_attribute.c, m.eav_entity_type.c, m.catalog_eav_attribute.c, m.eav_attribute_label.c
        product_attribute = sa.select(a.attribute_id).join_from(
            m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id
        ).where(t.entity_type_code == m.PRODUCT_ENTITY_TYPE_CODE)
        labels: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for r in conn.execute(
            sa.select(lbl.attribute_id, lbl.store_id, lbl.value)
            .where(lbl.attribute_id.in_(product_attribute), lbl.store_id != m.ADMIN_STORE_ID)
            .order_by(lbl.attribute_id, lbl.store_id, lbl.attribute_label_id)
        ):
            if r.value:  # an empty label means "use the default" in the admin's Manage Labels
                labels[int(r.attribute_id)].append((int(r.store_id), r.value))
        rows = conn.execute(
            sa.select(a.attribute_id, a.attribute_code, a.backend_type, a.frontend_input, a.frontend_label, a.is_user_defined,
                      c.is_searchable, c.is_filterable, c.is_filterable_in_search, c.used_for_sort_by, c.search_weight,
                      c.is_visible_on_front, c.used_in_product_listing, c.is_comparable)
            .join_from(m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id)
            # Every product attribute has a catalog_eav_attribute row in Magento; outer join so one without stays.
            .outerjoin(m.catalog_eav_attribute, c.attribute_id == a.attribute_id)
            .where(t.entity_type_code == m.PRODUCT_ENTITY_TYPE_CODE)
        )
        return {
            int(r.attribute_id): Attribute(
                int(r.attribute_id), r.attribute_code, r.backend_type, r.frontend_input, r.frontend_label,
                bool(r.is_user_defined), is_searchable=bool(r.is_searchable), is_filterable=int(r.is_filterable or 0),
                is_filterable_in_search=bool(r.is_filterable_in_search), used_for_sort_by=bool(r.used_for_sort_by),
                search_weight=1.0 if r.search_weight is None else float(r.search_weight),
                is_visible_on_front=bool(r.is_visible_on_front), used_in_product_listing=bool(r.used_in_product_listing),
                is_comparable=bool(r.is_comparable), store_labels=tuple(dict(labels[int(r.attribute_id)]).items()),
            )
            for r in rows
        }

    @staticmethod
    def _categories(conn: sa.Connection) -> tuple[dict[int, Category], dict[tuple[int, int], str]]:
        from catalog_sync.magento import categories as category_rows  # it imports this module

        return category_rows.read_categories(conn)

    # ---- product ids -----------------------------------------------------------

    def iter_all_id_chunks(self, chunk_size: int, keep_sku: Callable[[str], bool] | None = None) -> Iterator[list[int]]:
        """Every product id (or those whose sku `keep_sku` accepts), in ascending chunks
        (keyset pagination, no OFFSET)."""
        e = m.catalog_product_entity.c
        last = -1
        pending: list[int] = []
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(
                    sa.select(e.entity_id, e.sku).where(e.entity_id > last).order_by(e.entity_id).limit(chunk_size)
                ).all()
                if not rows:
                    break
                pending += [int(r.entity_id) for r in rows if keep_sku is None or keep_sku(r.sku or "")]
                last = rows[-1].entity_id
                while len(pending) >= chunk_size:
                    yield pending[:chunk_size]
                    pending = pending[chunk_size:]
        if pending:
            yield pending

    def skus_for_ids(self, ids: Sequence[int]) -> dict[int, str]:
        e = m.catalog_product_entity.c
        found: dict[int, str] = {}
        with self.engine.connect() as conn:
            for part in slices(sorted(ids)):
                found.update((int(r.entity_id), r.sku or "") for r in conn.execute(
                    sa.select(e.entity_id, e.sku).where(e.entity_id.in_(part))))
        return found

    def existing_ids(self, ids: Sequence[int]) -> set[int]:
        e = m.catalog_product_entity.c
        found: set[int] = set()
        with self.engine.connect() as conn:
            for part in slices(list(ids)):
                found.update(int(i) for i in conn.execute(sa.select(e.entity_id).where(e.entity_id.in_(part))).scalars())
        return found

    def linked_ids(self, ids: set[int]) -> set[int]:
        """Configurable parents and variants, bundles and the products they offer, linked to any of `ids`,
        both directions; and the products that link to any of them (related, up-sell, cross-sell, grouped),
        whose bodies name their skus."""
        sl = m.catalog_product_super_link.c
        found: set[int] = set()
        with self.engine.connect() as conn:
            for part in slices(sorted(ids)):
                for r in conn.execute(
                    sa.select(sl.product_id, sl.parent_id).where(sa.or_(sl.product_id.in_(part), sl.parent_id.in_(part)))
                ):
                    found.update((int(r.product_id), int(r.parent_id)))
                found.update(int(i) for i in conn.execute(product_links.linking_ids_query(part)).scalars())
                for parent_id, product_id in conn.execute(bundle_options.related_ids_query(part)) if self.has_bundles else ():
                    found.update((int(parent_id), int(product_id)))
        return found

    def url_key_peers(self, ids: set[int], url_keys: UrlKeyCheck) -> set[int]:
        """Products sharing a url_key value with any of `ids` (a clash quarantines both sides)."""
        return self.with_shared_url_keys(url_keys).peers_of(ids) - ids

    def with_shared_url_keys(self, url_keys: UrlKeyCheck) -> UrlKeyCheck:
        """`url_keys` with the catalog's shared url_key values read (one scan), unless they were."""
        if url_keys.shared is not None:
            return url_keys
        with self.engine.connect() as conn:
            rows = conn.execute(shared_values_query(url_keys.attribute_id)).fetchall()
        return url_keys.with_shared(pa.table({"entity_id": pa.array([int(r[0]) for r in rows], pa.int64()),
                                              "value": pa.array([r[1] for r in rows], pa.string())}))

    def ids_for_skus(self, skus: Sequence[str]) -> list[int]:
        e = m.catalog_product_entity.c
        with self.engine.connect() as conn:
            return sorted(int(i) for i in conn.execute(sa.select(e.entity_id).where(e.sku.in_(list(skus)))).scalars())

    # ---- one chunk of products ---------------------------------------------------

    def load_chunk(self, ids: Sequence[int], stock: inventory.StockLayout, url_keys: UrlKeyCheck | None = None) -> ProductChunk:
        """The raw rows of these products; `stock` is the context's stock layout (CatalogContext.stock_layout)."""
        ids = sorted(set(ids))
        if not ids:
            return ProductChunk(entities=[])
        # A contiguous id range lets the database use a range scan instead of a long IN list.
        contiguous = ids[-1] - ids[0] + 1 == len(ids)

        def id_filter(col: sa.ColumnElement) -> sa.ColumnElement[bool]:
            return col.between(ids[0], ids[-1]) if contiguous else col.in_(ids)

        e = m.catalog_product_entity.c
        with self.engine.connect() as conn:
            entities = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(e.entity_id, e.sku, e.type_id, e.attribute_set_id, e.created_at, e.updated_at)
                    .where(id_filter(e.entity_id))
                    .order_by(e.entity_id)
                )
            ]
            chunk = ProductChunk(entities=entities)
            values: dict[int, dict[int, dict[int, Any]]] = defaultdict(lambda: defaultdict(dict))
            for table in m.PRODUCT_VALUE_TABLES.values():
                t = table.c
                for r in conn.execute(sa.select(t.entity_id, t.attribute_id, t.store_id, t.value).where(id_filter(t.entity_id))):
                    values[r.entity_id][r.attribute_id][r.store_id] = r.value
            chunk.values = values

            w = m.catalog_product_website.c
            websites: dict[int, set[int]] = defaultdict(set)
            for r in conn.execute(sa.select(w.product_id, w.website_id).where(id_filter(w.product_id))):
                websites[r.product_id].add(int(r.website_id))
            chunk.websites = websites

            for r in conn.execute(inventory.stock_query(stock, id_filter)):
                chunk.stock[(int(r.product_id), int(r.stock_id))] = (r.qty, int(r.is_in_stock))

            cp = m.catalog_category_product.c
            cats: dict[int, list[int]] = defaultdict(list)
            for r in conn.execute(sa.select(cp.product_id, cp.category_id, cp.position).where(id_filter(cp.product_id))):
                cats[r.product_id].append(int(r.category_id))
                chunk.category_positions[(int(r.product_id), int(r.category_id))] = int(r.position or 0)
            chunk.category_ids = cats

            sl = m.catalog_product_super_link.c
            parents: dict[int, list[int]] = defaultdict(list)
            children: dict[int, list[int]] = defaultdict(list)
            for r in conn.execute(
                sa.select(sl.product_id, sl.parent_id).where(sa.or_(id_filter(sl.product_id), id_filter(sl.parent_id)))
            ):
                parents[r.product_id].append(int(r.parent_id))
                children[r.parent_id].append(int(r.product_id))
            chunk.parent_ids, chunk.child_ids = parents, children
            linked = {i for lst in parents.values() for i in lst} | {i for lst in children.values() for i in lst}
            for part in slices(sorted(linked)):
                for r in conn.execute(sa.select(e.entity_id, e.sku).where(e.entity_id.in_(part))):
                    chunk.linked_skus[int(r.entity_id)] = r.sku

            price_id = _attribute_id(conn, m.PRODUCT_ENTITY_TYPE_CODE, "price")
            if price_id is not None:
                d = m.PRODUCT_VALUE_TABLES["decimal"].c
                prices: dict[int, dict[int, dict[int, Any]]] = defaultdict(lambda: defaultdict(dict))
                for r in conn.execute(
                    sa.select(sl.parent_id, sl.product_id, d.store_id, d.value)
                    .join_from(m.catalog_product_super_link, m.PRODUCT_VALUE_TABLES["decimal"], d.entity_id == sl.product_id)
                    .where(id_filter(sl.parent_id), d.attribute_id == price_id)
                ):
                    prices[r.parent_id][r.product_id][r.store_id] = r.value
                chunk.child_prices = prices

            chunk.gallery = self._gallery(conn, id_filter)
            chunk.variant_values = [tuple(r) for r in conn.execute(configurable_options.variant_values_query(id_filter))]
            chunk.option_labels = [tuple(r) for r in conn.execute(configurable_options.option_labels_query(id_filter))]
            chunk.product_links = [tuple(r) for r in conn.execute(product_links.product_links_query(id_filter))]
            chunk.tier_prices = [tuple(r) for r in conn.execute(tier_prices.tier_prices_query(id_filter))]
            if self.has_bundles:
                chunk.bundle_options = [tuple(r) for r in conn.execute(bundle_options.options_query(id_filter))]
                chunk.bundle_titles = [tuple(r) for r in conn.execute(bundle_options.titles_query(id_filter))]
                chunk.bundle_selections = [tuple(r) for r in conn.execute(bundle_options.selections_query(id_filter))]
            if url_keys is not None:
                peers = sorted(self.with_shared_url_keys(url_keys).peers_of(ids))
                rows_stmt, websites_stmt = clash_rows_query(url_keys.attribute_id, peers)
                rows = [UrlKeyRow(int(r.entity_id), int(r.store_id), r.value, r.sku) for r in conn.execute(rows_stmt)]
                websites = [(int(r.product_id), int(r.website_id)) for r in conn.execute(websites_stmt)]
                chunk.url_key_clashes = clashes(rows, websites, url_keys.views, set(ids))
        return chunk

    @staticmethod
    def _gallery(conn: sa.Connection, id_filter) -> dict[int, list[dict[str, Any]]]:
        g = m.catalog_product_entity_media_gallery.c
        gv = m.catalog_product_entity_media_gallery_value.c
        ge = m.catalog_product_entity_media_gallery_value_to_entity.c
        images: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        rows = conn.execute(
            sa.select(ge.entity_id, g.value_id, g.value, g.media_type, g.disabled)
            .join_from(m.catalog_product_entity_media_gallery_value_to_entity, m.catalog_product_entity_media_gallery,
                       ge.value_id == g.value_id)
            .where(id_filter(ge.entity_id))
        )
        for r in rows:
            images[r.entity_id][r.value_id] = {
                "file": r.value, "media_type": r.media_type, "disabled": bool(r.disabled), "labels": {}, "positions": {},
                "disabled_by_store": {},
            }
        for r in conn.execute(
            sa.select(gv.entity_id, gv.value_id, gv.store_id, gv.label, gv.position, gv.disabled).where(id_filter(gv.entity_id))
        ):
            image = images.get(r.entity_id, {}).get(r.value_id)
            if image is not None:
                image["labels"][r.store_id] = r.label
                image["positions"][r.store_id] = r.position
                image["disabled_by_store"][r.store_id] = bool(r.disabled)
        return {entity: list(by_value.values()) for entity, by_value in images.items()}


def _attribute_id(conn: sa.Connection, entity_type_code: str, code: str) -> int | None:
    a, t = m.eav_attribute.c, m.eav_entity_type.c
    return conn.execute(
        sa.select(a.attribute_id)
        .join_from(m.eav_attribute, m.eav_entity_type, a.entity_type_id == t.entity_type_id)
        .where(t.entity_type_code == entity_type_code, a.attribute_code == code)
    ).scalar()


def _media_url(base_media_url: str | None, base_url: str | None) -> str:
    # Magento's defaults: {{secure_base_url}}media/ when no media URL is configured.
    if base_media_url and "{{" not in base_media_url:
        return base_media_url.rstrip("/") + "/"
    if base_url and "{{" not in base_url:
        return base_url.rstrip("/") + "/media/"
    return ""
