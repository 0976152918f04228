"""The demo catalog generator: deterministic, Magento-shaped, with Magento's changelog triggers."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from catalog_sync.demo import generator, triggers
from catalog_sync.demo.generator import DemoCatalogSummary, generate_demo_catalog
from catalog_sync.magento import inventory, schema

FULLTEXT, PRICE, STOCK, CATEGORY, ATTRIBUTE, INVENTORY = (
    "catalogsearch_fulltext_cl", "catalog_product_price_cl", "cataloginventory_stock_cl",
    "catalog_product_category_cl", "catalog_product_attribute_cl", "inventory_cl",
)
NAME, PRICE_ATTR, STATUS = 73, 77, 97
# Tables the demo leaves empty: the changelogs (triggers fill them later), the data the ingestion
# contract cannot carry, which Catalog Sync only counts (custom options, link attributes, downloadables),
# and, with one or two store views, customer groups (their tier prices are for every group: no group has
# a price book of its own). From three store views on (the b2b shop) the customer groups are Magento's.
LEFT_EMPTY_B2B = {*schema.CHANGELOG_TABLE_NAMES, "catalog_product_option", "catalog_product_link_attribute",
                  "catalog_product_link_attribute_decimal", "downloadable_link", "downloadable_sample",
                  "catalogrule_product_price"}
LEFT_EMPTY = {*LEFT_EMPTY_B2B, "customer_group"}
varchar = schema.PRODUCT_VALUE_TABLES["varchar"]
decimal = schema.PRODUCT_VALUE_TABLES["decimal"]
int_values = schema.PRODUCT_VALUE_TABLES["int"]


def dump(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in schema.metadata.sorted_tables
        }


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> tuple[sa.Engine, DemoCatalogSummary]:
    """A read-only catalog: 400 products, 3 store views (the b2b shop)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'shop.db'}"
    summary = generate_demo_catalog(url, products=400, store_views=3, seed=7)
    engine = sa.create_engine(url)
    yield engine, summary
    engine.dispose()


def scalar(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_tables_and_other_seed_differs(tmp_path):
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b", "c")]
    generate_demo_catalog(urls[0], products=150, store_views=3, seed=1)
    generate_demo_catalog(urls[1], products=150, store_views=3, seed=1)
    generate_demo_catalog(urls[2], products=150, store_views=3, seed=2)
    a, b, c = (dump(sa.create_engine(u)) for u in urls)

    assert a == b
    assert {t for t in a if not a[t]} == LEFT_EMPTY_B2B, "every other table has rows"
    assert a["catalog_product_entity_varchar"] != c["catalog_product_entity_varchar"]
    assert a["catalog_product_website"] != c["catalog_product_website"]
    # The shop setup does not depend on the seed.
    for table in ("store", "store_website", "store_group", "core_config_data", "eav_attribute", "catalog_eav_attribute",
                  "catalog_category_entity", "catalog_category_entity_varchar", "catalog_category_entity_int",
                  "customer_group"):
        assert a[table] == c[table]


def test_chunk_size_does_not_change_the_data(tmp_path, monkeypatch):
    one, other = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    generate_demo_catalog(one, products=120, seed=3)
    monkeypatch.setattr(generator, "PRODUCTS_PER_CHUNK", 7)  # splits configurable families across chunks
    generate_demo_catalog(other, products=120, seed=3)
    tables = dump(sa.create_engine(one))
    assert tables == dump(sa.create_engine(other))
    assert {t for t in tables if not tables[t]} == LEFT_EMPTY  # two store views: no customer groups


def test_chunk_size_does_not_change_the_b2b_shop(tmp_path, monkeypatch):
    one, other = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    generate_demo_catalog(one, products=120, store_views=4, seed=3)
    monkeypatch.setattr(generator, "PRODUCTS_PER_CHUNK", 7)
    generate_demo_catalog(other, products=120, store_views=4, seed=3)
    assert dump(sa.create_engine(one)) == dump(sa.create_engine(other))


# --------------------------------------------------------------------------- summary and shape


def test_summary_matches_the_database(catalog):
    engine, summary = catalog
    feed_records = scalar(engine, """
        SELECT COUNT(*) FROM catalog_product_website pw
        JOIN store s ON s.website_id = pw.website_id AND s.store_id <> 0""")
    assert summary == DemoCatalogSummary(
        products=scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity"),
        configurables=scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity WHERE type_id = 'configurable'"),
        store_views=scalar(engine, "SELECT COUNT(*) FROM store WHERE store_id <> 0"),
        websites=scalar(engine, "SELECT COUNT(*) FROM store_website WHERE website_id <> 0"),
        feed_records=feed_records,
        bundles=scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity WHERE type_id = 'bundle'"),
        grouped=scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity WHERE type_id = 'grouped'"),
        source_items=scalar(engine, "SELECT COUNT(*) FROM inventory_source_item"),
    )
    # Configurables at 1, 11, ..., 391; bundles at 50, ..., 400; grouped products at 45, 145, 245, 345:
    # the count asked for is the count made.
    assert (summary.products, summary.configurables, summary.store_views, summary.websites) == (400, 40, 3, 2)
    assert (summary.bundles, summary.grouped) == (8, 4)
    assert rows(engine, "SELECT type_id, COUNT(*) FROM catalog_product_entity GROUP BY type_id ORDER BY type_id") == [
        ("bundle", 8), ("configurable", 40), ("grouped", 4), ("simple", 348)]
    # 400 products, most on both websites (2 + 1 views), the rest on one.
    assert 400 < summary.feed_records < 3 * 400


def config_of(engine: sa.Engine) -> dict[tuple[str, int, str], str]:
    return {(s, i, p): v for s, i, p, v in rows(engine, "SELECT scope, scope_id, path, value FROM core_config_data")}


def test_stores_websites_locales_and_currencies(catalog):
    engine, _ = catalog
    # Three store views: view 3 is b2b, on website base in its store group, with default.
    assert rows(engine, "SELECT store_id, code, website_id, group_id FROM store ORDER BY store_id") == [
        (0, "admin", 0, 0), (1, "default", 1, 1), (2, "store_view_2", 2, 2), (3, "b2b", 1, 1),
    ]
    assert rows(engine, "SELECT website_id, code, is_default, default_group_id FROM store_website ORDER BY website_id") == [
        (0, "admin", 0, 0), (1, "base", 1, 1), (2, "second", 0, 2),
    ]
    assert rows(engine, "SELECT group_id, website_id, root_category_id, default_store_id, code FROM store_group"
                        " ORDER BY group_id") == [
        (0, 0, 0, 0, "default"), (1, 1, 2, 1, "main_website_store"), (2, 2, 100, 2, "second_website_store"),
    ]  # website second's store group is on the second category tree
    config = config_of(engine)
    assert config[("default", 0, "general/locale/code")] == "en_US"
    assert config[("stores", 2, "general/locale/code")] == "fr_FR"
    assert ("stores", 1, "general/locale/code") not in config
    assert ("stores", 3, "general/locale/code") not in config  # b2b inherits en_US, like default
    assert config[("default", 0, "currency/options/base")] == "USD"
    assert config[("default", 0, "currency/options/default")] == "USD"
    assert config[("websites", 2, "currency/options/base")] == "EUR"
    assert config[("websites", 2, "currency/options/default")] == "EUR"
    assert config[("default", 0, "catalog/price/scope")] == "1"  # website price scope


def test_two_store_views_have_one_store_group_per_website_and_global_prices(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    generate_demo_catalog(url, products=30, store_views=2)
    engine = sa.create_engine(url)
    assert rows(engine, "SELECT store_id, code, website_id, group_id FROM store ORDER BY store_id") == [
        (0, "admin", 0, 0), (1, "default", 1, 1), (2, "store_view_2", 2, 2)]
    assert rows(engine, "SELECT group_id, website_id, root_category_id FROM store_group ORDER BY group_id") == [
        (0, 0, 0), (1, 1, 2), (2, 2, 2)]
    assert config_of(engine)[("default", 0, "catalog/price/scope")] == "0"
    assert rows(engine, "SELECT attribute_id, is_global FROM catalog_eav_attribute WHERE attribute_id IN (77, 78)"
                        " ORDER BY attribute_id") == [(77, 1), (78, 1)]
    assert scalar(engine, "SELECT MAX(entity_id) FROM catalog_category_entity") == 14
    for table in ("customer_group", "catalog_product_entity_decimal WHERE store_id <> 0",
                  "catalog_product_entity_int WHERE store_id <> 0", "catalog_product_entity_text WHERE store_id <> 0",
                  "catalog_product_entity_tier_price WHERE all_groups = 0"):
        assert scalar(engine, f"SELECT COUNT(*) FROM {table}") == 0, table


@pytest.mark.parametrize("views", [1, 2, 3, 5, generator.MAX_STORE_VIEWS])
def test_store_layout_locales_are_distinct_but_b2bs_and_each_website_has_a_view(views):
    layout = generator.plan_stores(views)
    assert [v.code for v in layout.views][:4] == ["default", "store_view_2", "b2b", "store_view_4"][:views]
    locales = [v.locale for v in layout.views]
    # Only b2b (view 3) shares a locale, default's; the others are distinct.
    assert len(set(locales)) == views - (views >= 3)
    assert locales[2:3] == ["en_US"][:views - 2]
    assert [v.website_id for v in layout.views] == [1 if i % 2 else 2 for i in range(1, views + 1)]
    assert layout.websites == ((1,) if views == 1 else (1, 2))
    assert all(layout.views_of([w]) for w in layout.websites)
    assert layout.has_b2b == (views >= 3)
    # Every view is in its website's store group; website 2's is on the second tree from three views on.
    groups = generator.store_rows(layout)
    assert [(g["group_id"], g["website_id"], g["root_category_id"]) for g in groups[schema.store_group]] == [
        (0, 0, 0), (1, 1, 2), (2, 2, 100 if views >= 3 else 2)][:len(layout.websites) + 1]
    assert [(s["store_id"], s["group_id"]) for s in groups[schema.store]] == [(0, 0)] + [
        (i, 1 if i % 2 else 2) for i in range(1, views + 1)]
    if views == generator.MAX_STORE_VIEWS:
        assert set(locales) == {generator.DEFAULT_LOCALE, *generator.STORE_LOCALES}


def test_too_many_store_views_is_refused():
    with pytest.raises(ValueError, match="store_views"):
        generator.plan_stores(generator.MAX_STORE_VIEWS + 1)


def test_magento_entity_types_and_attribute_ids(catalog):
    engine, _ = catalog
    assert rows(engine, "SELECT entity_type_id, entity_type_code, default_attribute_set_id FROM eav_entity_type"
                        " ORDER BY entity_type_id") == [(3, "catalog_category", 3), (4, "catalog_product", 4)]
    attrs = {r[0]: r[1:] for r in rows(engine, """
        SELECT a.attribute_id, a.entity_type_id, a.attribute_code, a.backend_type, a.frontend_input, c.is_global
        FROM eav_attribute a JOIN catalog_eav_attribute c ON c.attribute_id = a.attribute_id""")}
    assert attrs[45] == (3, "name", "varchar", "text", 0)
    assert attrs[73] == (4, "name", "varchar", "text", 0)
    assert attrs[74] == (4, "sku", "static", "text", 1)
    # Website price scope: Magento makes the price attributes website-scoped (SwitchPriceAttributeScopeOnConfigChange).
    assert attrs[77] == (4, "price", "decimal", "price", 2)
    assert attrs[78] == (4, "special_price", "decimal", "price", 2)
    assert attrs[79][2] == "datetime" and attrs[80][2] == "datetime"
    assert attrs[83] == (4, "manufacturer", "int", "select", 1)
    assert attrs[90] == (4, "media_gallery", "static", "gallery", 1)
    assert attrs[93] == (4, "color", "int", "select", 1)
    assert attrs[97] == (4, "status", "int", "select", 2)
    assert attrs[99] == (4, "visibility", "int", "select", 0)
    assert attrs[121] == (4, "url_key", "varchar", "text", 0)
    assert attrs[137] == (4, "material", "varchar", "text", 0)
    assert attrs[138] == (4, "activity", "varchar", "multiselect", 1)
    # Every stored value uses an attribute of the right backend.
    for backend, table in schema.PRODUCT_VALUE_TABLES.items():
        wrong = scalar(engine, f"""
            SELECT COUNT(*) FROM {table.name} v JOIN eav_attribute a ON a.attribute_id = v.attribute_id
            WHERE a.backend_type <> :backend OR a.entity_type_id <> 4""", backend=backend)
        assert wrong == 0, table.name


def test_products_skus_and_store_scoped_names(catalog):
    engine, _ = catalog
    skus = [r[0] for r in rows(engine, "SELECT sku FROM catalog_product_entity ORDER BY entity_id")]
    assert skus[:3] == ["MS-0000001", "MS-0000002", "MS-0000003"]
    assert len(set(skus)) == 400
    # Every product has a default name; ~30% also a name in one non-default store view other than b2b.
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity_varchar"
                          " WHERE attribute_id = 73 AND store_id = 0") == 400
    overrides = rows(engine, """
        SELECT o.store_id, o.entity_id, o.value, d.value FROM catalog_product_entity_varchar o
        JOIN catalog_product_entity_varchar d ON d.entity_id = o.entity_id AND d.attribute_id = 73 AND d.store_id = 0
        WHERE o.attribute_id = 73 AND o.store_id <> 0""")
    local = [(v, default) for store, _, v, default in overrides if store == 2]
    assert 60 < len(local) < 200
    assert {store for store, *_ in overrides} == {2, 3}
    assert any(v != default for v, default in local)
    # b2b's own names: products 5, 15, 25, ... of its website, the default name with a suffix.
    on_base = {r[0] for r in rows(engine, "SELECT product_id FROM catalog_product_website WHERE website_id = 1")}
    b2b = {entity: (v, default) for store, entity, v, default in overrides if store == 3}
    assert sorted(b2b) == [i for i in range(5, 401, 10) if i in on_base]
    assert all(v == default + " (Wholesale Pack)" for v, default in b2b.values())
    # Names carry accents (utf-8), and no 4-byte characters.
    names = [r[0] for r in rows(engine, "SELECT value FROM catalog_product_entity_varchar WHERE attribute_id = 73")]
    assert any(not n.isascii() for n in names)
    assert all(max(map(ord, n)) < 0x10000 for n in names)


def test_configurables_have_three_invisible_children_on_the_parents_websites(catalog):
    engine, _ = catalog
    links = rows(engine, "SELECT parent_id, product_id FROM catalog_product_super_link ORDER BY parent_id, product_id")
    relations = rows(engine, """SELECT parent_id, child_id FROM catalog_product_relation WHERE parent_id IN
        (SELECT entity_id FROM catalog_product_entity WHERE type_id = 'configurable') ORDER BY parent_id, child_id""")
    assert links == relations
    parents = sorted({p for p, _ in links})
    assert parents == [r[0] for r in rows(engine,
                       "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'configurable' ORDER BY entity_id")]
    for parent in parents:
        assert [c for p, c in links if p == parent] == [parent + 1, parent + 2, parent + 3]
    visibility = dict(rows(engine, "SELECT entity_id, value FROM catalog_product_entity_int WHERE attribute_id = 99"))
    assert {visibility[c] for _, c in links} == {1}
    assert {visibility[p] for p in parents} == {4}
    websites = rows(engine, "SELECT product_id, website_id FROM catalog_product_website")
    by_product: dict[int, set[int]] = {}
    for product, website in websites:
        by_product.setdefault(product, set()).add(website)
    assert all(by_product[c] == by_product[p] for p, c in links)
    # Configurables take price from their children, as in Magento.
    assert scalar(engine, f"""SELECT COUNT(*) FROM catalog_product_entity_decimal
                             WHERE attribute_id = {PRICE_ATTR} AND entity_id IN ({','.join(map(str, parents))})""") == 0


def test_website_assignment_includes_single_website_products(catalog):
    engine, _ = catalog
    counts = dict(rows(engine, """
        SELECT websites, COUNT(*) FROM (
          SELECT product_id, GROUP_CONCAT(website_id) AS websites FROM (
            SELECT product_id, website_id FROM catalog_product_website ORDER BY product_id, website_id)
          GROUP BY product_id)
        GROUP BY websites"""))
    assert set(counts) == {"1,2", "1", "2"}
    assert sum(counts.values()) == 400
    assert counts["1,2"] > counts["1"] > 0 and counts["2"] > 0


def test_prices_stock_images_categories_and_options(catalog):
    engine, _ = catalog
    prices = [Decimal(str(v)) for v, in rows(engine, "SELECT value FROM catalog_product_entity_decimal"
                                                     " WHERE attribute_id = 77")]
    assert prices and all(Decimal("4") < p < Decimal("400") for p in prices)
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity_decimal WHERE attribute_id = 78") > 0
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity_datetime WHERE attribute_id IN (79, 80)") > 0
    assert scalar(engine, "SELECT COUNT(*) FROM cataloginventory_stock_item WHERE stock_id = 1 AND website_id = 0") == 400
    # image/small_image/thumbnail point at the product's first gallery file.
    assert rows(engine, "SELECT attribute_id, value FROM catalog_product_entity_varchar"
                        " WHERE entity_id = 1 AND attribute_id IN (87, 88, 89) ORDER BY attribute_id") == [
        (87, "/m/s/ms-0000001_1.jpg"), (88, "/m/s/ms-0000001_1.jpg"), (89, "/m/s/ms-0000001_1.jpg"),
    ]
    assert scalar(engine, """
        SELECT COUNT(*) FROM catalog_product_entity_media_gallery g
        JOIN catalog_product_entity_media_gallery_value v ON v.value_id = g.value_id AND v.store_id = 0
        JOIN catalog_product_entity_media_gallery_value_to_entity e ON e.value_id = g.value_id
             AND e.entity_id = v.entity_id
        WHERE g.attribute_id = 90 AND v.position = 1""") == 400
    per_product = [r[0] for r in rows(engine, "SELECT COUNT(*) FROM catalog_category_product WHERE category_id < 100"
                                              " GROUP BY product_id")]
    assert len(per_product) == 400 and set(per_product) <= {1, 2, 3}
    assert rows(engine, "SELECT path, level, position FROM catalog_category_entity"
                        " WHERE entity_id IN (2, 3, 4, 7, 8) ORDER BY entity_id") == [
        ("1/2", 1, 1), ("1/2/3", 2, 1), ("1/2/4", 2, 2), ("1/2/3/7", 3, 1), ("1/2/3/8", 3, 2),
    ]
    assert rows(engine, "SELECT children_count FROM catalog_category_entity WHERE entity_id IN (1, 2, 3)"
                        " ORDER BY entity_id") == [(20,), (12,), (2,)]  # 1: both trees, 13 + 7
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_category_entity WHERE level IN (2, 3)") >= 12
    assert rows(engine, "SELECT value FROM catalog_category_entity_varchar WHERE entity_id = 3 AND attribute_id = 45"
                        " ORDER BY store_id") == [("Men",), ("Homme",)]  # b2b (store 3) is English
    # Option labels: admin label at store 0, translations for store views in other languages.
    assert rows(engine, """
        SELECT v.store_id, v.value FROM eav_attribute_option o JOIN eav_attribute_option_value v ON v.option_id = o.option_id
        WHERE o.attribute_id = 93 AND o.sort_order = 2 ORDER BY v.store_id""") == [(0, "Red"), (2, "Rouge")]
    # Multiselect values are comma-separated option ids of the activity attribute.
    activity_options = {r[0] for r in rows(engine, "SELECT option_id FROM eav_attribute_option WHERE attribute_id = 138")}
    values = [r[0] for r in rows(engine, "SELECT value FROM catalog_product_entity_varchar WHERE attribute_id = 138")]
    assert values and all({int(x) for x in v.split(",")} <= activity_options for v in values)
    statuses = dict(rows(engine, "SELECT value, COUNT(*) FROM catalog_product_entity_int"
                                 " WHERE attribute_id = 97 GROUP BY value"))
    assert statuses[1] > 350 and set(statuses) <= {1, 2}


# --------------------------------------------------------------------------- the b2b shop (three store views or more)


def test_b2b_shares_en_us_and_the_store_group_with_default(catalog):
    engine, _ = catalog
    config = config_of(engine)

    def locale(store_id: int) -> str:  # Magento's fallback: store view, website, default
        website = scalar(engine, "SELECT website_id FROM store WHERE store_id = :s", s=store_id)
        return (config.get(("stores", store_id, "general/locale/code"))
                or config.get(("websites", website, "general/locale/code")) or config[("default", 0, "general/locale/code")])

    assert [locale(s) for s in (1, 2, 3)] == ["en_US", "fr_FR", "en_US"]
    groups = rows(engine, """SELECT s.code, s.website_id, g.group_id, g.root_category_id FROM store s
                             JOIN store_group g ON g.group_id = s.group_id ORDER BY s.store_id""")
    # b2b in default's store group, on its tree (root 2); the second tree (100) is website second's.
    assert groups == [("admin", 0, 0, 0), ("default", 1, 1, 2), ("store_view_2", 2, 2, 100), ("b2b", 1, 1, 2)]
    # The website's default store view is still default's (website 1 -> group 1 -> store 1).
    assert rows(engine, """SELECT g.default_store_id FROM store_website w JOIN store_group g ON g.group_id = w.default_group_id
                           WHERE w.website_id = 1""") == [(1,)]


def test_the_second_root_category_tree(catalog):
    engine, _ = catalog
    tree = rows(engine, "SELECT entity_id, parent_id, path, level FROM catalog_category_entity"
                        " WHERE path = '1/100' OR path LIKE '1/100/%' ORDER BY entity_id")
    assert tree[0] == (100, 1, "1/100", 1)  # a root: level 1 under the Root Catalog, like Default Category
    assert rows(engine, "SELECT group_id, website_id FROM store_group WHERE root_category_id = 100") == [(2, 2)]
    below = tree[1:]
    assert {level for *_, level in below} == {2, 3, 4}  # nested three levels deep
    assert all(path == f"{dict((c, p) for c, _, p, _ in tree)[parent]}/{cid}" for cid, parent, path, _ in below)
    ids = [cid for cid, *_ in below]
    names = dict(rows(engine, "SELECT entity_id, value FROM catalog_category_entity_varchar WHERE attribute_id = 45"
                              f" AND store_id = 0 AND entity_id IN ({','.join(map(str, [100, *ids]))})"))
    assert names == {100: "Second Catalog", 101: "Bulk Apparel", 102: "Team Equipment", 103: "Corporate Tops",
                     104: "Workwear", 105: "Gym Fit-Out", 106: "Printed Tees"}
    url_keys = dict(rows(engine, "SELECT entity_id, value FROM catalog_category_entity_varchar WHERE attribute_id = 119"
                                 " AND entity_id >= 100"))
    assert url_keys == {101: "bulk-apparel", 102: "team-equipment", 103: "corporate-tops", 104: "workwear",
                        105: "gym-fit-out", 106: "printed-tees"}
    assert rows(engine, "SELECT DISTINCT store_id, value FROM catalog_category_entity_int WHERE attribute_id = 46"
                        " AND entity_id >= 100") == [(0, 1)]
    # Products in it: every third product that is not a variant, in one category below the root, with a position.
    assigned = rows(engine, "SELECT product_id, category_id, position FROM catalog_category_product"
                            " WHERE category_id >= 100 ORDER BY product_id")
    variants = {r[0] for r in rows(engine, "SELECT product_id FROM catalog_product_super_link")}
    assert [p for p, *_ in assigned] == [i for i in range(3, 401, 3) if i not in variants]
    assert {c for _, c, _ in assigned} == {102, 103, 104, 105, 106}
    assert all(position >= 1 for *_, position in assigned)
    assert len({(c, position) for _, c, position in assigned}) == len(assigned)  # one place per product in a category


def test_customer_groups_and_wholesale_group_prices(catalog):
    engine, _ = catalog
    assert rows(engine, "SELECT customer_group_id, customer_group_code, tax_class_id FROM customer_group ORDER BY 1") == [
        (0, "NOT LOGGED IN", 3), (1, "General", 3), (2, "Wholesale", 3), (3, "Retailer", 3)]
    simple = {r[0] for r in rows(engine, "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple'")}
    price = {e: Decimal(str(v)) for e, v in rows(engine, "SELECT entity_id, value FROM catalog_product_entity_decimal"
                                                         " WHERE attribute_id = 77 AND store_id = 0")}
    group_rows = rows(engine, "SELECT entity_id, customer_group_id, qty, value, website_id, percentage_value"
                              " FROM catalog_product_entity_tier_price WHERE all_groups = 0 ORDER BY entity_id")
    assert [r[0] for r in group_rows] == sorted(i for i in simple if i % 20 == 13)
    for entity_id, group, qty, value, website, percentage in group_rows:
        assert (group, Decimal(str(qty)), website, percentage) == (2, 1, 0, None)
        assert Decimal(str(value)) == (price[entity_id] * Decimal("0.85")).quantize(Decimal("0.01")) < price[entity_id]


def test_website_prices_and_b2bs_own_values(catalog):
    engine, _ = catalog
    websites: dict[int, set[int]] = {}
    for product, website in rows(engine, "SELECT product_id, website_id FROM catalog_product_website"):
        websites.setdefault(product, set()).add(website)
    simple = {r[0] for r in rows(engine, "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple'")}
    price = {e: Decimal(str(v)) for e, v in rows(engine, "SELECT entity_id, value FROM catalog_product_entity_decimal"
                                                         " WHERE attribute_id = 77 AND store_id = 0")}
    # Website 2's prices (price scope website), at its store view, as Magento keeps them.
    website_prices = rows(engine, "SELECT entity_id, attribute_id, store_id, value FROM catalog_product_entity_decimal"
                                  " WHERE store_id <> 0 ORDER BY entity_id")
    assert [e for e, *_ in website_prices] == sorted(i for i in simple if i % 10 == 6 and 2 in websites[i])
    for entity_id, attribute_id, store_id, value in website_prices:
        assert (attribute_id, store_id) == (77, 2)
        assert Decimal(str(value)) == (price[entity_id] * Decimal("0.92")).quantize(Decimal("0.01"))
    # b2b's own values: names (see above), some descriptions and, every 50th product, not visible individually.
    at_b2b = {(table, r[0]) for table in ("varchar", "int", "text", "decimal", "datetime")
              for r in rows(engine, f"SELECT DISTINCT attribute_id FROM catalog_product_entity_{table} WHERE store_id = 3")}
    assert at_b2b == {("varchar", 73), ("text", 75), ("int", 99)}
    on_base = sorted(p for p, w in websites.items() if 1 in w)
    assert rows(engine, "SELECT entity_id, value FROM catalog_product_entity_int WHERE store_id = 3 ORDER BY 1") == [
        (i, 1) for i in on_base if i % 50 == 20]
    descriptions = rows(engine, """SELECT b.entity_id, b.value, d.value FROM catalog_product_entity_text b
        JOIN catalog_product_entity_text d ON d.entity_id = b.entity_id AND d.attribute_id = 75 AND d.store_id = 0
        WHERE b.attribute_id = 75 AND b.store_id = 3 ORDER BY b.entity_id""")
    assert [e for e, *_ in descriptions] == [i for i in on_base if i % 25 == 8]
    assert all(b2b != default and b2b.endswith("Sold to business customers in cases of 10, on invoice.</p>")
               for _, b2b, default in descriptions)


# --------------------------------------------------------------------------- grouped products


def test_grouped_products_group_two_to_four_earlier_simple_products(catalog):
    engine, _ = catalog
    grouped = [r[0] for r in rows(engine, "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'grouped'"
                                          " ORDER BY entity_id")]
    assert grouped == [45, 145, 245, 345]
    links = rows(engine, """
        SELECT l.product_id, l.linked_product_id, m.type_id,
               (SELECT COUNT(*) FROM catalog_product_super_link s WHERE s.product_id = m.entity_id)
        FROM catalog_product_link l JOIN catalog_product_link_type t ON t.link_type_id = l.link_type_id
        JOIN catalog_product_entity m ON m.entity_id = l.linked_product_id
        WHERE t.code = 'super' ORDER BY l.product_id, l.linked_product_id""")
    assert {p for p, *_ in links} == set(grouped), "only grouped products have 'super' links"
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_link WHERE link_type_id = 3") == len(links)
    members = {g: [m for p, m, *_ in links if p == g] for g in grouped}
    for g, ids in members.items():
        # 2 to 4 of the standalone simple products 35..40 (mod 100) before it, never a variant
        assert 2 <= len(ids) <= 4 and set(ids) <= set(range(g - 10, g - 4)), (g, ids)
    assert {(kind, variant_of) for *_, kind, variant_of in links} == {("simple", 0)}
    assert len({len(ids) for ids in members.values()}) > 1, "member counts vary"
    # Magento also records each member in catalog_product_relation.
    assert rows(engine, f"""SELECT parent_id, child_id FROM catalog_product_relation
        WHERE parent_id IN ({','.join(map(str, grouped))}) ORDER BY parent_id, child_id""") == [(p, m) for p, m, *_ in links]
    # Sold on its members' websites.
    websites = rows(engine, "SELECT product_id, website_id FROM catalog_product_website")
    by_product: dict[int, set[int]] = {}
    for product, website in websites:
        by_product.setdefault(product, set()).add(website)
    for g, ids in members.items():
        assert by_product[g] == set().union(*(by_product[m] for m in ids)), g


def test_grouped_products_look_like_products_without_a_price(catalog):
    engine, _ = catalog
    ids = "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'grouped'"
    values = rows(engine, f"""
        SELECT a.attribute_code, COUNT(*) FROM (
            SELECT attribute_id, entity_id FROM catalog_product_entity_varchar WHERE store_id = 0
            UNION ALL SELECT attribute_id, entity_id FROM catalog_product_entity_int WHERE store_id = 0
            UNION ALL SELECT attribute_id, entity_id FROM catalog_product_entity_text WHERE store_id = 0
            UNION ALL SELECT attribute_id, entity_id FROM catalog_product_entity_decimal WHERE store_id = 0
            UNION ALL SELECT attribute_id, entity_id FROM catalog_product_entity_datetime WHERE store_id = 0) v
        JOIN eav_attribute a ON a.attribute_id = v.attribute_id
        WHERE v.entity_id IN ({ids}) GROUP BY a.attribute_code""")
    codes = dict(values)
    for code in ("name", "url_key", "status", "visibility", "description", "short_description", "image"):
        assert codes.get(code) == 4, code
    for code in ("price", "special_price", "special_from_date", "weight", "color"):
        assert code not in codes, code
    assert {r[0] for r in rows(engine, f"SELECT value FROM catalog_product_entity_int WHERE attribute_id = 99"
                                       f" AND entity_id IN ({ids})")} == {4}
    names = [r[0] for r in rows(engine, f"SELECT value FROM catalog_product_entity_varchar WHERE attribute_id = {NAME}"
                                        f" AND store_id = 0 AND entity_id IN ({ids})")]
    assert names and not any(" - " in n for n in names), "a product line is not named for a color"
    url_keys = [r[0] for r in rows(engine, f"SELECT value FROM catalog_product_entity_varchar WHERE attribute_id = 121"
                                           f" AND entity_id IN ({ids}) AND store_id = 0 ORDER BY entity_id")]
    assert [k.rsplit("-", 1)[1] for k in url_keys] == ["45", "145", "245", "345"]
    assert scalar(engine, f"SELECT COUNT(*) FROM catalog_category_product WHERE product_id IN ({ids})") >= 4


# --------------------------------------------------------------------------- MSI stock


def test_msi_sources_stocks_and_sales_channels(catalog):
    engine, _ = catalog
    assert rows(engine, "SELECT source_code, name, enabled, country_id, postcode FROM inventory_source"
                        " ORDER BY source_code") == [
        ("default", "Default Source", 1, "US", "00000"), ("eu_warehouse", "EU Warehouse", 1, "DE", "10115")]
    assert rows(engine, "SELECT stock_id, name FROM inventory_stock ORDER BY stock_id") == [
        (1, "Default Stock"), (2, "EU Stock")]
    assert rows(engine, "SELECT stock_id, source_code, priority FROM inventory_source_stock_link ORDER BY stock_id") == [
        (1, "default", 1), (2, "eu_warehouse", 1)]
    assert rows(engine, "SELECT type, code, stock_id FROM inventory_stock_sales_channel ORDER BY stock_id") == [
        ("website", "base", 1), ("website", "second", 2)]


def test_each_simple_product_has_a_source_item_per_website_and_composites_none(catalog):
    engine, summary = catalog
    expected = rows(engine, """
        SELECT e.sku, CASE pw.website_id WHEN 1 THEN 'default' ELSE 'eu_warehouse' END
        FROM catalog_product_entity e JOIN catalog_product_website pw ON pw.product_id = e.entity_id
        WHERE e.type_id = 'simple' ORDER BY e.entity_id, pw.website_id""")
    items = rows(engine, "SELECT sku, source_code FROM inventory_source_item ORDER BY source_item_id")
    assert items == expected  # ids assigned in product order, 'default' first
    assert summary.source_items == len(items) == scalar(engine, "SELECT MAX(source_item_id) FROM inventory_source_item")
    assert scalar(engine, """SELECT COUNT(*) FROM inventory_source_item i JOIN catalog_product_entity e ON e.sku = i.sku
                             WHERE e.type_id <> 'simple'""") == 0
    both = scalar(engine, "SELECT COUNT(*) FROM (SELECT sku FROM inventory_source_item GROUP BY sku HAVING COUNT(*) = 2)")
    assert 0 < both < len({sku for sku, _ in items})


def test_source_items_are_in_stock_out_of_stock_and_low(catalog):
    engine, _ = catalog
    kinds = dict(rows(engine, """
        SELECT CASE WHEN status = 0 AND quantity = 0 THEN 'out'
                    WHEN status = 0 THEN 'held'
                    WHEN quantity <= 5 THEN 'low'
                    ELSE 'in' END AS kind, COUNT(*)
        FROM inventory_source_item GROUP BY kind"""))
    total = sum(kinds.values())
    assert set(kinds) == {"out", "held", "low", "in"}
    assert 0.05 * total < kinds["out"] < 0.15 * total
    assert 0.08 * total < kinds["low"] < 0.25 * total
    assert kinds["held"] < 0.05 * total
    # Only the default source's items mirror the legacy stock item; none of them is held out of stock by hand,
    # and an in-stock item always has a quantity.
    assert scalar(engine, "SELECT COUNT(*) FROM inventory_source_item WHERE source_code = 'default'"
                          " AND status = 0 AND quantity > 0") == 0
    assert scalar(engine, "SELECT COUNT(*) FROM inventory_source_item WHERE status = 1 AND quantity <= 0") == 0


def test_legacy_stock_item_mirrors_the_default_source_item(catalog):
    engine, _ = catalog
    legacy = rows(engine, """
        SELECT e.entity_id, e.type_id, s.qty, s.is_in_stock, i.quantity, i.status
        FROM catalog_product_entity e JOIN cataloginventory_stock_item s ON s.product_id = e.entity_id AND s.stock_id = 1
        LEFT JOIN inventory_source_item i ON i.sku = e.sku AND i.source_code = 'default'
        ORDER BY e.entity_id""")
    assert len(legacy) == 400
    mirrored = [r for r in legacy if r[4] is not None]
    assert len(mirrored) == scalar(engine, "SELECT COUNT(*) FROM inventory_source_item WHERE source_code = 'default'")
    assert all((Decimal(str(qty)), in_stock) == (Decimal(str(quantity)), status)
               for _, _, qty, in_stock, quantity, status in mirrored)
    # A simple product sold on the second website only has no default source item: MSI zeroes its legacy item.
    without = [r for r in legacy if r[4] is None and r[1] == "simple"]
    assert without and {(Decimal(str(qty)), in_stock) for _, _, qty, in_stock, *_ in without} == {(Decimal(0), 0)}
    assert {r[0] for r in without} == {r[0] for r in rows(engine, """
        SELECT e.entity_id FROM catalog_product_entity e WHERE e.type_id = 'simple'
        AND NOT EXISTS (SELECT 1 FROM catalog_product_website w WHERE w.product_id = e.entity_id AND w.website_id = 1)""")}
    # Composites: in stock with qty 0, as Magento saves them.
    composites = {(kind, Decimal(str(qty)), in_stock) for _, kind, qty, in_stock, quantity, _ in legacy if kind != "simple"}
    assert composites == {("configurable", Decimal(0), 1), ("bundle", Decimal(0), 1), ("grouped", Decimal(0), 1)}


def test_the_reader_sees_each_websites_stock_from_its_source_items(catalog):
    engine, _ = catalog
    with engine.connect() as conn:
        layout = inventory.read_layout(conn, {1: "base", 2: "second"})
        assert (layout.msi, layout.website_stocks, layout.indexed_stocks) == (True, {1: 1, 2: 2}, frozenset())
        read = {(int(p), int(s)): (None if q is None else Decimal(q), int(i)) for p, s, q, i in
                conn.execute(inventory.stock_query(layout, lambda column: column.isnot(None)))}
    # Derived here: one source per stock, counted only while in stock.
    expected = {(p, 1 if source == "default" else 2): (Decimal(str(quantity)) if status else Decimal(0),
                                                       int(status == 1 and quantity > 0))
                for p, source, quantity, status in rows(engine, """
                    SELECT e.entity_id, i.source_code, i.quantity, i.status
                    FROM inventory_source_item i JOIN catalog_product_entity e ON e.sku = i.sku""")}
    simple = {key: value for key, value in read.items() if value[0] is not None}
    assert simple == expected
    in_stock = sum(i for _, i in simple.values())
    assert 0.8 * len(simple) < in_stock < len(simple)
    # Composites have no source items: in a stock when one of their children (catalog_product_relation) is, qty null.
    children: dict[int, set[int]] = {}
    for parent, child in rows(engine, "SELECT parent_id, child_id FROM catalog_product_relation"):
        children.setdefault(parent, set()).add(child)
    composites = {key: value for key, value in read.items() if value[0] is None}
    assert {p for p, _ in composites} == set(children)
    assert composites == {(parent, stock): (None, int(any(expected.get((c, stock), (0, 0))[1] for c in kids)))
                          for parent, kids in children.items() for stock in (1, 2)
                          if any((c, stock) in expected for c in kids)}


def test_changelogs_start_empty_and_mview_state_is_set(catalog):
    engine, _ = catalog
    for name in schema.CHANGELOG_TABLE_NAMES:
        assert scalar(engine, f"SELECT COUNT(*) FROM {name}") == 0
    assert rows(engine, "SELECT view_id, mode, version_id FROM mview_state ORDER BY view_id") == sorted(
        (cl.removesuffix("_cl"), "enabled", 0) for cl in schema.CHANGELOG_TABLE_NAMES
    )
    assert ("inventory",) in rows(engine, "SELECT view_id FROM mview_state")


def test_single_store_view_has_one_website_and_no_overrides(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    summary = generate_demo_catalog(url, products=30, store_views=1)
    engine = sa.create_engine(url)
    # configurables 1, 11, 21 with 9 variants; no bundle (50) nor grouped product (45) yet; 27 simple products
    assert summary == DemoCatalogSummary(products=30, configurables=3, store_views=1, websites=1, feed_records=30,
                                         bundles=0, grouped=0, source_items=27)
    assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity_varchar WHERE store_id <> 0") == 0
    assert rows(engine, "SELECT DISTINCT website_id FROM catalog_product_website") == [(1,)]
    # One website: MSI's default source and stock only, and every simple product's item is in it.
    assert rows(engine, "SELECT source_code FROM inventory_source") == [("default",)]
    assert rows(engine, "SELECT stock_id, source_code FROM inventory_source_stock_link") == [(1, "default")]
    assert rows(engine, "SELECT type, code, stock_id FROM inventory_stock_sales_channel") == [("website", "base", 1)]
    assert rows(engine, "SELECT source_code, COUNT(*) FROM inventory_source_item GROUP BY source_code") == [("default", 27)]


def test_existing_catalog_is_kept_unless_drop_existing(tmp_path):
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    generate_demo_catalog(url, products=20)
    with pytest.raises(ValueError, match="already holds a catalog"):
        generate_demo_catalog(url, products=20, drop_existing=False)
    assert generate_demo_catalog(url, products=25).products == 25
    assert scalar(sa.create_engine(url), "SELECT COUNT(*) FROM catalog_product_entity") == 25


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="products"):
        generate_demo_catalog(f"sqlite:///{tmp_path / 'x.db'}", products=0)
    with pytest.raises(ValueError, match="SQLite file"):
        generate_demo_catalog("sqlite://", products=5)


# --------------------------------------------------------------------------- triggers


def new_changelog_rows(engine: sa.Engine, *statements: str) -> dict[str, list[int]]:
    """Run statements in one transaction; return the entity ids each changelog gained."""
    with engine.begin() as conn:
        before = {n: conn.scalar(sa.select(sa.func.coalesce(sa.func.max(t.c.version_id), 0)))
                  for n, t in schema.CHANGELOG_TABLES.items()}
        for sql in statements:
            conn.execute(sa.text(sql))
        gained = {
            n: list(conn.scalars(
                sa.select(t.c.entity_id).where(t.c.version_id > before[n]).order_by(t.c.version_id)))
            for n, t in schema.CHANGELOG_TABLES.items()
        }
    return {n: ids for n, ids in gained.items() if ids}


def check_magento_triggers(engine: sa.Engine) -> None:
    """The same checks on every dialect: each change lands in the changelogs Magento's triggers write."""
    store_name = rows(engine, f"SELECT entity_id, store_id FROM catalog_product_entity_varchar"
                              f" WHERE attribute_id = {NAME} AND store_id <> 0 ORDER BY entity_id LIMIT 1")
    assert store_name, "the catalog has a store-scoped name"
    (entity, store), = store_name

    assert new_changelog_rows(engine, f"""UPDATE catalog_product_entity_varchar SET value = 'Camiseta Básica Algodão'
        WHERE entity_id = {entity} AND attribute_id = {NAME} AND store_id = {store}""") == {
        FULLTEXT: [entity], ATTRIBUTE: [entity]}
    # Writing the same value again changes nothing, so Magento's trigger writes nothing.
    assert new_changelog_rows(engine, f"""UPDATE catalog_product_entity_varchar SET value = 'Camiseta Básica Algodão'
        WHERE entity_id = {entity} AND attribute_id = {NAME} AND store_id = {store}""") == {}

    priced = scalar(engine, f"SELECT MIN(entity_id) FROM catalog_product_entity_decimal WHERE attribute_id = {PRICE_ATTR}")
    assert new_changelog_rows(engine, f"""UPDATE catalog_product_entity_decimal SET value = value + 1
        WHERE entity_id = {priced} AND attribute_id = {PRICE_ATTR} AND store_id = 0""") == {
        FULLTEXT: [priced], ATTRIBUTE: [priced], PRICE: [priced]}

    assert new_changelog_rows(engine, f"""UPDATE catalog_product_entity_int SET value = 3 - value
        WHERE entity_id = 5 AND attribute_id = {STATUS} AND store_id = 0""") == {
        FULLTEXT: [5], CATEGORY: [5], ATTRIBUTE: [5], STOCK: [5], PRICE: [5]}

    assert new_changelog_rows(engine, "UPDATE cataloginventory_stock_item SET qty = qty + 5 WHERE product_id = 6") == {
        STOCK: [6]}

    category = scalar(engine, "SELECT MIN(entity_id) FROM catalog_category_entity WHERE entity_id NOT IN"
                              " (SELECT category_id FROM catalog_category_product WHERE product_id = 7) AND level >= 2")
    assert new_changelog_rows(engine, f"""INSERT INTO catalog_category_product (category_id, product_id, position)
        VALUES ({category}, 7, 9)""") == {FULLTEXT: [7], CATEGORY: [7]}

    assert new_changelog_rows(engine, "DELETE FROM catalog_product_website WHERE product_id = 8 AND website_id = 1") == {
        FULLTEXT: [8], CATEGORY: [8], PRICE: [8]}

    # Magento bumps updated_at on every save; alone it must not write changelog rows.
    assert new_changelog_rows(engine, """UPDATE catalog_product_entity SET updated_at = '2026-06-01 12:00:00'
        WHERE entity_id = 9""") == {}
    assert new_changelog_rows(engine, "UPDATE catalog_product_entity SET sku = 'MS-RENAMED' WHERE entity_id = 9") == {
        FULLTEXT: [9], PRICE: [9]}

    assert new_changelog_rows(engine, "DELETE FROM catalog_product_entity WHERE entity_id = 10") == {
        FULLTEXT: [10], PRICE: [10]}

    # MSI: a source item's changes land in inventory_cl, by source item id (InventoryIndexer's mview.xml).
    item = scalar(engine, "SELECT MIN(source_item_id) FROM inventory_source_item WHERE status = 1")
    goes_out = f"UPDATE inventory_source_item SET status = 0, quantity = 0 WHERE source_item_id = {item}"
    assert new_changelog_rows(engine, goes_out) == {INVENTORY: [item]}
    assert new_changelog_rows(engine, goes_out) == {}  # nothing changed
    assert new_changelog_rows(engine, """INSERT INTO inventory_source_item (source_item_id, source_code, sku, quantity, status)
        VALUES (999999, 'eu_warehouse', 'MS-NEW', 3, 1)""", "DELETE FROM inventory_source_item WHERE source_item_id = 999999"
    ) == {INVENTORY: [999999, 999999]}


def test_sqlite_changelog_triggers_behave_like_magento(tmp_path):
    url = f"sqlite:///{tmp_path / 'triggers.db'}"
    generate_demo_catalog(url, products=60, store_views=2, seed=11)
    engine = sa.create_engine(url)
    names = {r[0] for r in rows(engine, "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert names == {triggers.trigger_name(s.table.name, e) for s in triggers.SUBSCRIPTIONS for e in triggers.EVENTS}
    check_magento_triggers(engine)


def test_mysql_trigger_text_matches_magento():
    sql = triggers.mysql_trigger_sql(triggers.SUBSCRIPTIONS[0], "update")
    assert "INSERT IGNORE INTO `catalogsearch_fulltext_cl` (`entity_id`) VALUES (NEW.`entity_id`);" in sql
    assert "NOT(NEW.`created_at` <=> OLD.`created_at`)" in sql
    assert "updated_at" not in sql
    assert "catalogrule" not in sql
    msi = next(s for s in triggers.SUBSCRIPTIONS if s.table is schema.inventory_source_item)
    assert triggers.mysql_trigger_sql(msi, "delete") == (
        "CREATE TRIGGER trg_inventory_source_item_after_delete AFTER DELETE ON `inventory_source_item` FOR EACH ROW\n"
        "BEGIN\nINSERT IGNORE INTO `inventory_cl` (`entity_id`) VALUES (OLD.`source_item_id`);\nEND")


def test_a_source_item_going_out_of_stock_is_in_msis_changelog_and_read_out_of_stock(tmp_path):
    url = f"sqlite:///{tmp_path / 'msi.db'}"
    generate_demo_catalog(url, products=60, store_views=2, seed=11)
    engine = sa.create_engine(url)
    (item, product, website), = rows(engine, """
        SELECT i.source_item_id, e.entity_id, CASE i.source_code WHEN 'default' THEN 1 ELSE 2 END
        FROM inventory_source_item i JOIN catalog_product_entity e ON e.sku = i.sku
        WHERE i.status = 1 AND i.source_code = 'eu_warehouse' ORDER BY i.source_item_id LIMIT 1""")
    with engine.connect() as conn:
        layout = inventory.read_layout(conn, {1: "base", 2: "second"})
        stock = layout.stock_of(website)
        before = {int(s): int(i) for _, s, _, i in conn.execute(inventory.stock_query(layout, lambda c: c == product))}
    assert before[stock] == 1

    assert new_changelog_rows(
        engine, f"UPDATE inventory_source_item SET status = 0, quantity = 0 WHERE source_item_id = {item}") == {
        INVENTORY: [item]}
    with engine.connect() as conn:
        assert list(conn.execute(inventory.changed_products_query(0, 10**9)).scalars()) == [product]
        after = {int(s): (Decimal(q), int(i)) for _, s, q, i in
                 conn.execute(inventory.stock_query(layout, lambda c: c == product))}
    assert after[stock] == (Decimal(0), 0)
    assert {s: i for s, (_, i) in after.items() if s != stock} == {s: i for s, i in before.items() if s != stock}


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.mariadb
def test_mariadb_catalog_matches_sqlite_and_triggers_behave_like_magento(mariadb_url, tmp_path):
    sqlite_url = f"sqlite:///{tmp_path / 'twin.db'}"
    summary = generate_demo_catalog(mariadb_url, products=50, store_views=2, seed=5)
    assert summary == generate_demo_catalog(sqlite_url, products=50, store_views=2, seed=5)
    engine = sa.create_engine(mariadb_url)
    try:
        assert scalar(engine, "SELECT COUNT(*) FROM catalog_product_entity") == 50
        # The same text, accents included, comes back from MariaDB (utf8mb4) as from SQLite.
        mariadb, sqlite = dump(engine), dump(sa.create_engine(sqlite_url))
        for table in ("catalog_product_entity_varchar", "catalog_product_entity_text", "eav_attribute_option_value",
                      "catalog_category_entity_varchar", "store", "core_config_data", "catalog_product_website",
                      "catalog_product_entity", "catalog_product_link", "catalog_product_relation",
                      "cataloginventory_stock_item", "inventory_source", "inventory_stock", "inventory_source_stock_link",
                      "inventory_stock_sales_channel", "inventory_source_item"):
            assert mariadb[table] == sqlite[table], table
        assert summary.grouped == 1 and summary.source_items > 0
        assert any(not v.isascii() for *_, v in mariadb["catalog_product_entity_varchar"])
        assert ("Łódź Textiles",) in rows(engine, "SELECT value FROM eav_attribute_option_value WHERE store_id = 0")
        names = {r[0] for r in rows(engine, "SELECT trigger_name FROM information_schema.triggers"
                                            " WHERE trigger_schema = DATABASE()")}
        assert len(names) == 3 * len(triggers.SUBSCRIPTIONS)
        check_magento_triggers(engine)
        assert ("Camiseta Básica Algodão",) in rows(
            engine, f"SELECT value FROM catalog_product_entity_varchar WHERE attribute_id = {NAME} AND store_id <> 0")
    finally:
        engine.dispose()


@pytest.mark.mariadb
def test_mariadb_b2b_shop_matches_sqlite(mariadb_url, tmp_path):
    """Customer group 0 keeps its id on MariaDB too (customer_group_id is AUTO_INCREMENT)."""
    sqlite_url = f"sqlite:///{tmp_path / 'twin.db'}"
    summary = generate_demo_catalog(mariadb_url, products=60, store_views=3, seed=5)
    assert summary == generate_demo_catalog(sqlite_url, products=60, store_views=3, seed=5)
    engine = sa.create_engine(mariadb_url)
    try:
        mariadb, sqlite = dump(engine), dump(sa.create_engine(sqlite_url))
        for table in ("customer_group", "store", "store_group", "core_config_data", "catalog_category_entity",
                      "catalog_product_entity_tier_price", "catalog_product_entity_decimal", "catalog_category_product"):
            assert mariadb[table] == sqlite[table], table
        assert [r[0] for r in mariadb["customer_group"]] == [0, 1, 2, 3]
    finally:
        engine.dispose()


def test_every_twentieth_simple_product_has_tier_prices(catalog):
    engine, _ = catalog
    simple = {r[0] for r in rows(engine, "SELECT entity_id FROM catalog_product_entity WHERE type_id = 'simple'")}
    expected = sorted(i for i in simple if i % 20 == 7)
    assert expected and rows(engine, "SELECT DISTINCT entity_id FROM catalog_product_entity_tier_price"
                                     " WHERE all_groups = 1 ORDER BY 1") == [(i,) for i in expected]
    price = dict(rows(engine, "SELECT entity_id, value FROM catalog_product_entity_decimal WHERE store_id = 0 AND "
                              "attribute_id = (SELECT attribute_id FROM eav_attribute WHERE attribute_code = 'price' "
                              "AND entity_type_id = 4)"))
    for entity_id, all_groups, qty, value, website, percentage in rows(
            engine, "SELECT entity_id, all_groups, qty, value, website_id, percentage_value FROM catalog_product_entity_tier_price"
                    " WHERE all_groups = 1"):
        assert (all_groups, website) == (1, 0)
        if Decimal(str(qty)) == 5:
            assert Decimal(str(value)) == (Decimal(str(price[entity_id])) * Decimal("0.9")).quantize(Decimal("0.01"))
        else:
            assert (Decimal(str(qty)), Decimal(str(percentage))) == (10, 15)


@pytest.fixture(scope="module")
def own_websites_catalog(tmp_path_factory) -> tuple[sa.Engine, DemoCatalogSummary]:
    """Magento's performance-toolkit layout: 5 websites = 5 store groups = 5 store views, 60 products."""
    url = f"sqlite:///{tmp_path_factory.mktemp('own') / 'shop.db'}"
    summary = generate_demo_catalog(url, products=60, store_views=5, seed=3, own_websites=True)
    engine = sa.create_engine(url)
    yield engine, summary
    engine.dispose()


def test_own_websites_put_each_store_view_on_its_own_website_store_group_and_locale(own_websites_catalog):
    engine, summary = own_websites_catalog
    assert rows(engine, "SELECT website_id, code, is_default, default_group_id FROM store_website ORDER BY website_id") == [
        (0, "admin", 0, 0), (1, "base", 1, 1), (2, "second", 0, 2), (3, "website_3", 0, 3), (4, "website_4", 0, 4),
        (5, "website_5", 0, 5)]
    assert rows(engine, "SELECT group_id, website_id, root_category_id, default_store_id FROM store_group ORDER BY group_id") == [
        (0, 0, 0, 0), (1, 1, 2, 1), (2, 2, 2, 2), (3, 3, 2, 3), (4, 4, 2, 4), (5, 5, 2, 5)]
    assert rows(engine, "SELECT store_id, code, website_id, group_id FROM store ORDER BY store_id") == [
        (0, "admin", 0, 0), (1, "default", 1, 1), (2, "store_view_2", 2, 2), (3, "store_view_3", 3, 3),
        (4, "store_view_4", 4, 4), (5, "store_view_5", 5, 5)]  # no b2b view
    config = config_of(engine)
    locales = [config.get(("stores", i, "general/locale/code"), config[("default", 0, "general/locale/code")])
               for i in range(1, 6)]
    assert locales == ["en_US", "fr_FR", "de_DE", "es_ES", "it_IT"]
    assert config[("default", 0, "catalog/price/scope")] == "0"  # global prices, as the one-or-two-view shop
    assert config[("default", 0, "currency/options/base")] == "USD"
    assert [config[("websites", w, "currency/options/base")] for w in (2, 3, 4, 5)] == ["EUR"] * 4
    assert scalar(engine, "SELECT COUNT(*) FROM customer_group") == 0
    assert scalar(engine, "SELECT MAX(entity_id) FROM catalog_category_entity") == 14  # no second tree
    assert (summary.websites, summary.store_views, summary.feed_records) == (5, 5, 300)  # 60 products x 5 views


def test_own_websites_sell_every_product_on_every_website_from_its_own_stock(own_websites_catalog):
    engine, _ = own_websites_catalog
    # Every one of the 60 products on all five websites (the toolkit's assign_entities_to_all_websites).
    assert rows(engine, """
        SELECT websites, COUNT(*) FROM (
          SELECT product_id, GROUP_CONCAT(website_id) AS websites FROM (
            SELECT product_id, website_id FROM catalog_product_website ORDER BY product_id, website_id)
          GROUP BY product_id)
        GROUP BY websites""") == [("1,2,3,4,5", 60)]
    assert rows(engine, "SELECT stock_id, source_code, priority FROM inventory_source_stock_link ORDER BY stock_id") == [
        (1, "default", 1), (2, "eu_warehouse", 1), (3, "warehouse_3", 1), (4, "warehouse_4", 1), (5, "warehouse_5", 1)]
    assert rows(engine, "SELECT type, code, stock_id FROM inventory_stock_sales_channel ORDER BY stock_id") == [
        ("website", "base", 1), ("website", "second", 2), ("website", "website_3", 3), ("website", "website_4", 4),
        ("website", "website_5", 5)]
    # Each simple product: one source item in each of the five sources; composites none.
    assert rows(engine, """
        SELECT e.type_id, COUNT(i.source_item_id), COUNT(DISTINCT i.source_code)
        FROM catalog_product_entity e LEFT JOIN inventory_source_item i ON i.sku = e.sku
        GROUP BY e.entity_id, e.type_id HAVING e.type_id = 'simple' AND COUNT(i.source_item_id) <> 5""") == []
    assert scalar(engine, """SELECT COUNT(*) FROM inventory_source_item i JOIN catalog_product_entity e ON e.sku = i.sku
                             WHERE e.type_id <> 'simple'""") == 0


def test_own_websites_leave_the_default_layout_alone():
    assert generator.plan_stores(5) == generator.plan_stores(5, own_websites=False)
    assert generator.plan_stores(5).websites == (1, 2)
    with pytest.raises(ValueError, match="store_views"):
        generator.plan_stores(generator.MAX_OWN_WEBSITE_VIEWS + 1, own_websites=True)
