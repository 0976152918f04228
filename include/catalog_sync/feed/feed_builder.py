"""Build feed records for a chunk of products in DuckDB, from the raw Arrow tables.

This is the fast path of extract. It applies the same rules as the
per-product reference builder in `feed_record.py` (tests hold the two to
byte-identical payloads):

* a store-view EAV row wins over the default (store 0) row; with a global
  price scope (`catalog/price/scope` = 0) price attributes come from store 0 only;
* a product is in the store views of the websites it is assigned to;
* select/multiselect values become option labels in the store's language;
* the payload is canonical JSON: keys in alphabetical order, no whitespace,
  arrays without meaning sorted. Its sha1 without `updated_at` is the content hash.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from catalog_sync.feed.feed_record import (
    BUNDLE_DUPLICATE_SKU,
    CORE_ATTRIBUTES,
    EXTRACT_SCHEMA,
    IMAGE_ROLES,
    NEGATIVE_PRICE,
    NEGATIVE_SPECIAL_PRICE,
    PRICE_ATTRIBUTES,
    SKU_MAX_LENGTH,
    record_attributes,
)
from catalog_sync.magento.arrow_reader import RawChunk
from catalog_sync.magento.catalog_reader import CatalogContext
from catalog_sync.run_clock import local_date
from catalog_sync.state import duckdb_session

# Payload fields, alphabetical: the JSON key order of the canonical serialization.
_PAYLOAD_FIELDS = (
    "attribute_set_id", "attributes", "bundle_options", "bundle_skus", "category_ids", "category_paths",
    "category_positions",
    "configurable_options", "created_at", "currency", "description", "images", "in_stock", "locale",
    "meta_description", "meta_keywords", "meta_title", "name", "parent_skus", "price", "product_id", "product_links",
    "qty", "short_description", "sku", "special_price", "special_price_from", "special_price_to", "status",
    "store_code", "store_view_code", "tier_prices", "type", "updated_at", "url_key", "variant_options", "variant_skus",
    "visibility", "website_code", "weight",
)
_VOLATILE = {"updated_at"}
# A configurable's option label row that does not give a label of its own (uses the default, or is empty).
_NO_OWN_LABEL = "(coalesce(l.use_default, 0) <> 0 OR coalesce(l.value, '') = '')"
_RAW_TABLES = ("entities", "values", "websites", "stock", "categories", "links", "child_prices", "gallery", "url_key_clashes",
               "variant_values", "option_labels", "product_links", "bundle_options", "bundle_titles", "bundle_selections",
               "tier_prices")


class FeedBuilder:
    """Holds the run's catalog context in DuckDB and turns raw chunks into extract rows.
    `instant` is the run's: each row records its store view's local date then (`judged_on`)."""

    def __init__(self, ctx: CatalogContext, instant: datetime):
        self.ctx = ctx
        self.instant = instant
        self.con = duckdb_session.connect()
        self._register_context()
        self._attr = {a.code: a.attribute_id for a in ctx.attributes_by_id.values()}

    def close(self) -> None:
        self.con.close()

    @property
    def attribute_ids(self) -> list[int]:
        """The EAV attributes the feed reads; the extract fetches no others."""
        wanted = set(CORE_ATTRIBUTES) | set(IMAGE_ROLES)
        named = {a.attribute_id for a in self.ctx.attributes_by_id.values() if a.code in wanted}
        return sorted(named | {a.attribute_id for a in record_attributes(self.ctx)})

    def _register_context(self) -> None:
        ctx = self.ctx
        views = ctx.store_views
        self.con.register("views", pa.table({
            "store_id": pa.array([v.store_id for v in views], pa.int64()),
            "code": [v.code for v in views],
            "website_id": pa.array([v.website_id for v in views], pa.int64()),
            "website_code": [v.website_code for v in views],
            "group_code": [v.group_code for v in views],
            "locale": [v.locale for v in views],
            "currency": [v.currency for v in views],
            "media_url": [v.media_url for v in views],
            "stock_id": pa.array([v.stock_id for v in views], pa.int64()),
            "judged_on": [local_date(self.instant, v.timezone).isoformat() for v in views],
        }))
        custom = record_attributes(ctx)
        self.con.register("custom_attrs_src", pa.table({
            "attribute_id": pa.array([a.attribute_id for a in custom], pa.int64()),
            "code": pa.array([a.code for a in custom], pa.string()),
            "label": pa.array([a.label for a in custom], pa.string()),
            "frontend_input": pa.array([a.frontend_input for a in custom], pa.string()),
            "backend_type": pa.array([a.backend_type for a in custom], pa.string()),
        }))
        # Each attribute's JSON text up to its values (the payload's key order: code, label, values).
        self.con.execute("""CREATE TEMP TABLE custom_attrs AS
            SELECT *, '{"code":' || to_json(code) || ',"label":' || to_json(label) || ',"values":' AS json_prefix
            FROM custom_attrs_src""")
        options = list(ctx.option_labels.items())
        self.con.register("opts", pa.table({
            "option_id": pa.array([k[0] for k, _ in options], pa.int64()),
            "store_id": pa.array([k[1] for k, _ in options], pa.int64()),
            "label": pa.array([v for _, v in options], pa.string()),
        }))
        # An option's label in each store view: the view's own, else the admin one.
        self.con.execute("""CREATE TEMP TABLE opts_resolved AS
            SELECT d.option_id, v.store_id, coalesce(nullif(s.label, ''), nullif(d.label, '')) AS label
            FROM (SELECT * FROM opts WHERE store_id = 0) d CROSS JOIN views v
            LEFT JOIN opts s ON s.option_id = d.option_id AND s.store_id = v.store_id
            UNION ALL  -- options with a store label but no admin row
            SELECT s.option_id, s.store_id, nullif(s.label, '') FROM opts s
            WHERE s.store_id <> 0 AND NOT EXISTS (SELECT 1 FROM opts d WHERE d.option_id = s.option_id AND d.store_id = 0)""")
        paths = [(cid, v.store_id, ctx.category_path(cid, v.store_id)) for cid in ctx.categories for v in views]
        paths = [p for p in paths if p[2]]
        self.con.register("catpaths", pa.table({
            "category_id": pa.array([p[0] for p in paths], pa.int64()),
            "store_id": pa.array([p[1] for p in paths], pa.int64()),
            "path": pa.array([p[2] for p in paths], pa.string()),
        }))

    def build(self, raw: RawChunk) -> pa.Table:
        con = self.con
        for name in _RAW_TABLES:
            con.register(f"raw_{name}", getattr(raw, name))
        try:
            return con.sql(self._sql()).to_arrow_table().cast(EXTRACT_SCHEMA)
        finally:
            for name in _RAW_TABLES:
                con.unregister(f"raw_{name}")

    def _id(self, code: str) -> int:
        return self._attr.get(code, -1)

    def _sql(self) -> str:
        a = self._id
        price_ids = ", ".join(str(a(c)) for c in PRICE_ATTRIBUTES)
        store_scoped_prices = "true" if self.ctx.price_scope else "false"
        codes = ("name", "status", "visibility", "url_key", "description", "short_description", "meta_title",
                 "meta_description", "meta_keyword", "price", "special_price", "special_from_date",
                 "special_to_date", "weight", *IMAGE_ROLES)
        pivot = ",\n".join(f"max(value) FILTER (WHERE attribute_id = {a(code)}) AS \"{code}\"" for code in codes)
        has = ",\n".join(f"bool_or(attribute_id = {a(code)}) AS \"has_{code}\"" for code in codes)
        resolved = ",\n".join(
            f"CASE WHEN sp.\"has_{code}\" THEN sp.\"{code}\" ELSE dp.\"{code}\" END AS \"{code}\"" for code in codes)
        # A gallery image's roles: the image roles whose resolved value is its file, sorted by name.
        image_roles = "list_filter([" + ", ".join(
            f"CASE WHEN c.\"{role}\" = gal.file THEN '{role}' END" for role in sorted(IMAGE_ROLES)
        ) + "], lambda x: x IS NOT NULL)"
        payload = {
            "attribute_set_id": "i.attribute_set_id::BIGINT",
            "attributes": "coalesce(ca.attributes, '[]')::JSON",
            "bundle_options": "coalesce(bopt.opts, '[]')::JSON",
            "bundle_skus": "coalesce(bpar.skus, [])",
            "category_ids": "coalesce(cat.ids, [])",
            "category_paths": "coalesce(cat.paths, [])",
            "category_positions": "coalesce(cat.positions, [])",
            "configurable_options": "coalesce(copts.opts, '[]')::JSON",
            "created_at": "i.created_at",
            "currency": "i.currency",
            "description": "c.description",
            "images": "coalesce(img.images, '[]')::JSON",
            "in_stock": "coalesce(st.is_in_stock, 0) <> 0",
            "locale": "i.locale",
            "meta_description": "c.meta_description",
            "meta_keywords": "c.meta_keyword",
            "meta_title": "c.meta_title",
            "name": "c.name",
            "parent_skus": "coalesce(par.skus, [])",
            "price": "coalesce(TRY_CAST(c.price AS DOUBLE), CASE WHEN i.type_id = 'configurable' THEN cp.min_price END)",
            "product_id": "i.entity_id::BIGINT",
            "product_links": "coalesce(plk.links, '[]')::JSON",
            "qty": "TRY_CAST(st.qty AS DOUBLE)",
            "short_description": "c.short_description",
            "sku": "i.sku",
            "special_price": "TRY_CAST(c.special_price AS DOUBLE)",
            "special_price_from": "CASE WHEN c.special_from_date LIKE '0000-00-00%' THEN NULL "
                                  "ELSE substr(c.special_from_date, 1, 10) END",
            "special_price_to": "CASE WHEN c.special_to_date LIKE '0000-00-00%' THEN NULL "
                                "ELSE substr(c.special_to_date, 1, 10) END",
            "status": "TRY_CAST(c.status AS BIGINT)",
            "store_code": "i.group_code",
            "store_view_code": "i.store_view_code",
            "tier_prices": "coalesce(tp.tiers, '[]')::JSON",
            "type": "i.type_id",
            "updated_at": "i.updated_at",
            "url_key": "c.url_key",
            "variant_options": "coalesce(vopts.opts, '[]')::JSON",
            "variant_skus": "coalesce(chi.skus, [])",
            "visibility": "TRY_CAST(c.visibility AS BIGINT)",
            "website_code": "i.website_code",
            "weight": "TRY_CAST(c.weight AS DOUBLE)",
        }
        assert tuple(payload) == _PAYLOAD_FIELDS
        stable = ", ".join(f"{k} := {v}" for k, v in payload.items() if k not in _VOLATILE)
        return f"""
        WITH
        items AS (
            SELECT e.entity_id, e.sku, e.type_id, e.attribute_set_id,
                   strftime(TRY_CAST(e.created_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S') AS created_at,
                   strftime(TRY_CAST(e.updated_at AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S') AS updated_at,
                   v.store_id, v.code AS store_view_code, v.group_code, v.website_code, v.locale, v.currency, v.media_url,
                   v.judged_on, v.stock_id, v.website_id
            FROM raw_entities e
            JOIN (SELECT DISTINCT product_id, website_id FROM raw_websites) w ON w.product_id = e.entity_id
            JOIN views v ON v.website_id = w.website_id
        ),
        sv AS NOT MATERIALIZED (
            SELECT entity_id, store_id, attribute_id, value FROM raw_values
            WHERE store_id <> 0 AND ({store_scoped_prices} OR attribute_id NOT IN ({price_ids}))
        ),
        -- The core attributes, pivoted once per product (store 0) and once per (product, store view)
        -- for the few store-view rows: a store view's row, even empty, wins over store 0.
        dp AS (SELECT entity_id, {pivot} FROM raw_values WHERE store_id = 0 GROUP BY entity_id),
        sp AS (SELECT entity_id, store_id, {pivot}, {has} FROM sv GROUP BY entity_id, store_id),
        c AS (
            SELECT i.entity_id, i.store_id, {resolved}
            FROM items i LEFT JOIN dp ON dp.entity_id = i.entity_id
            LEFT JOIN sp ON sp.entity_id = i.entity_id AND sp.store_id = i.store_id
        ),
        -- The custom attributes' resolved values (the same rule, row by row: there are few of them).
        cdv AS (SELECT r.entity_id, r.attribute_id, r.value FROM raw_values r
                SEMI JOIN custom_attrs a ON a.attribute_id = r.attribute_id WHERE r.store_id = 0),
        csv AS (SELECT sv.* FROM sv SEMI JOIN custom_attrs a ON a.attribute_id = sv.attribute_id),
        crv AS (
            SELECT i.entity_id, i.store_id, cdv.attribute_id, cdv.value
            FROM items i JOIN cdv ON cdv.entity_id = i.entity_id
            ANTI JOIN csv ON csv.entity_id = i.entity_id AND csv.store_id = i.store_id AND csv.attribute_id = cdv.attribute_id
            UNION ALL
            SELECT csv.entity_id, csv.store_id, csv.attribute_id, csv.value
            FROM csv SEMI JOIN items i ON i.entity_id = csv.entity_id AND i.store_id = csv.store_id
        ),
        cv AS (
            SELECT crv.entity_id, crv.store_id, crv.attribute_id, a.json_prefix, a.frontend_input, a.backend_type, crv.value
            FROM crv JOIN custom_attrs a ON a.attribute_id = crv.attribute_id
            WHERE crv.value IS NOT NULL AND crv.value <> ''
        ),
        -- select/multiselect: each distinct raw value of the chunk becomes its JSON text once per store view.
        sel_vals AS (
            SELECT DISTINCT attribute_id, store_id, json_prefix, frontend_input, value FROM cv
            WHERE frontend_input IN ('select', 'multiselect')
        ),
        opt_ids AS (
            SELECT attribute_id, store_id, json_prefix, frontend_input, value, trim(opt) AS opt, ord FROM (
                SELECT *, unnest(string_split(value, ',')) AS opt, generate_subscripts(string_split(value, ','), 1) AS ord
                FROM sel_vals)
        ),
        opt_vals AS (
            SELECT o.attribute_id, o.store_id, o.value, o.json_prefix, o.frontend_input, o.ord,
                   coalesce(r.label, o.opt::BIGINT::VARCHAR) AS val
            FROM opt_ids o LEFT JOIN opts_resolved r ON r.option_id = o.opt::BIGINT AND r.store_id = o.store_id
            WHERE regexp_full_match(o.opt, '[0-9]+')
        ),
        sel_frags AS (
            SELECT attribute_id, store_id, value, any_value(json_prefix) || CASE WHEN any_value(frontend_input) = 'multiselect'
                       THEN to_json(list_sort(list(val))) ELSE to_json(list(val ORDER BY ord)) END::VARCHAR || '}}' AS frag
            FROM opt_vals GROUP BY attribute_id, store_id, value
        ),
        -- Each attribute becomes its JSON text: '{{"code":…,"label":…,"values":[…]}}'. Codes are
        -- [a-z0-9_], all above '"', so sorting the texts sorts by code.
        custom_json AS (
            SELECT cv.entity_id, cv.store_id, f.frag
            FROM cv JOIN sel_frags f ON f.attribute_id = cv.attribute_id AND f.store_id = cv.store_id AND f.value = cv.value
            UNION ALL
            SELECT entity_id, store_id, json_prefix || '[' || to_json(CASE backend_type
                        WHEN 'decimal' THEN CAST(CAST(value AS DOUBLE) AS VARCHAR)
                        WHEN 'int' THEN CAST(CAST(value AS BIGINT) AS VARCHAR)
                        WHEN 'datetime' THEN substr(value, 1, 19)
                        ELSE value END)::VARCHAR || ']}}'
            FROM cv WHERE frontend_input IS NULL OR cv.frontend_input NOT IN ('select', 'multiselect')
        ),
        ca AS (
            SELECT entity_id, store_id, '[' || array_to_string(list_sort(list(frag)), ',') || ']' AS attributes
            FROM custom_json GROUP BY ALL
        ),
        st AS (SELECT product_id, stock_id, any_value(qty) AS qty, any_value(is_in_stock) AS is_in_stock
               FROM raw_stock GROUP BY ALL),
        cat AS (
            SELECT i.entity_id, i.store_id, list_sort(list(cc.category_id::BIGINT)) AS ids,
                   list(coalesce(cc.position, 0)::BIGINT ORDER BY cc.category_id) AS positions,
                   list_sort(list(p.path) FILTER (WHERE p.path IS NOT NULL)) AS paths
            FROM items i JOIN raw_categories cc ON cc.product_id = i.entity_id
            LEFT JOIN catpaths p ON p.category_id = cc.category_id AND p.store_id = i.store_id
            GROUP BY ALL
        ),
        par AS (SELECT child_id AS entity_id, list_sort(list(DISTINCT parent_sku)) AS skus FROM raw_links GROUP BY ALL),
        chi AS (SELECT parent_id AS entity_id, list_sort(list(DISTINCT child_sku)) AS skus FROM raw_links GROUP BY ALL),
        lnk AS (
            SELECT entity_id, list_sort(list(DISTINCT other)) AS ids FROM (
                SELECT child_id AS entity_id, parent_id AS other FROM raw_links
                UNION ALL SELECT parent_id, child_id FROM raw_links
                UNION ALL SELECT parent_id, product_id FROM raw_bundle_selections
                UNION ALL SELECT product_id, parent_id FROM raw_bundle_selections) GROUP BY ALL
        ),
        cp AS (  -- a configurable without its own price shows its cheapest variant's price
            SELECT parent_id AS entity_id, store_id, min(price) AS min_price FROM (
                SELECT p.parent_id, p.child_id, v.store_id,
                       TRY_CAST(arg_max_null(p.value, p.store_id) AS DOUBLE) AS price
                FROM raw_child_prices p JOIN views v
                  ON p.store_id = 0 OR (p.store_id = v.store_id AND {store_scoped_prices})
                GROUP BY ALL)
            GROUP BY ALL
        ),
        -- Configurable options (see magento/configurable_options.py): each variant's value per store view
        -- (the view's row, even empty, wins over store 0), as an option id (0, empty, malformed: none).
        vres AS (
            SELECT parent_id, attribute_id, position, child_id, store_id,
                   CASE WHEN regexp_full_match(trim(value), '[0-9]+') THEN trim(value)::BIGINT END AS oid
            FROM (SELECT r.parent_id, r.attribute_id, any_value(r.position) AS position, r.child_id, v.store_id,
                         CASE WHEN bool_or(r.store_id = v.store_id) THEN max(r.value) FILTER (WHERE r.store_id = v.store_id)
                              ELSE max(r.value) FILTER (WHERE r.store_id = 0) END AS value
                  FROM raw_variant_values r JOIN views v ON r.store_id = 0 OR r.store_id = v.store_id
                  GROUP BY r.parent_id, r.attribute_id, r.child_id, v.store_id)
        ),
        -- The configurable's label for an option: the view's own unless it uses the default, else the admin one.
        lres AS (
            SELECT l.parent_id, l.attribute_id, v.store_id,
                   coalesce(max(l.value) FILTER (WHERE l.store_id = v.store_id AND NOT {_NO_OWN_LABEL}),
                            max(l.value) FILTER (WHERE l.store_id = 0 AND NOT {_NO_OWN_LABEL})) AS label
            FROM raw_option_labels l JOIN views v ON l.store_id = 0 OR l.store_id = v.store_id
            GROUP BY ALL
        ),
        copts AS (
            SELECT o.parent_id AS entity_id, o.store_id,
                   to_json(list({{'attribute_id': o.attribute_id, 'label': lres.label, 'option_ids': o.option_ids,
                                  'position': o.position}} ORDER BY o.position, o.attribute_id))::VARCHAR AS opts
            FROM (SELECT parent_id, attribute_id, store_id, any_value(position)::BIGINT AS position,
                         list_sort(list(DISTINCT oid)) AS option_ids
                  FROM vres WHERE oid > 0 GROUP BY parent_id, attribute_id, store_id) o
            LEFT JOIN lres ON lres.parent_id = o.parent_id AND lres.attribute_id = o.attribute_id AND lres.store_id = o.store_id
            GROUP BY o.parent_id, o.store_id
        ),
        vopts AS (
            SELECT child_id AS entity_id, store_id,
                   to_json(list({{'attribute_id': attribute_id, 'option_id': oid}} ORDER BY attribute_id))::VARCHAR AS opts
            FROM (SELECT DISTINCT child_id, store_id, attribute_id, oid FROM vres WHERE oid > 0)
            GROUP BY child_id, store_id
        ),
        -- Bundles (see magento/bundle_options.py): each option's products by position then sku; its title in
        -- the store view, else the admin one; the bundles a product is in; a SKU two options offer.
        bsel AS (
            SELECT option_id, to_json(list({{'can_change_qty': can_change_qty <> 0, 'is_default': is_default <> 0,
                                             'position': position, 'qty': TRY_CAST(qty AS DOUBLE), 'sku': sku}}
                                            ORDER BY position, sku))::VARCHAR AS sel
            FROM raw_bundle_selections GROUP BY option_id
        ),
        bopt AS (
            SELECT o.parent_id AS entity_id, v.store_id,
                   to_json(list({{'option_id': o.option_id, 'position': o.position, 'required': o.required <> 0,
                                  'selections': coalesce(bsel.sel, '[]')::JSON,
                                  'title': coalesce(nullif(ts.title, ''), t0.title), 'type': o.type}}
                                 ORDER BY o.position, o.option_id))::VARCHAR AS opts
            FROM raw_bundle_options o CROSS JOIN views v
            LEFT JOIN bsel ON bsel.option_id = o.option_id
            LEFT JOIN raw_bundle_titles ts ON ts.option_id = o.option_id AND ts.store_id = v.store_id
            LEFT JOIN raw_bundle_titles t0 ON t0.option_id = o.option_id AND t0.store_id = 0
            GROUP BY o.parent_id, v.store_id
        ),
        bpar AS (SELECT product_id AS entity_id, list_sort(list(DISTINCT parent_sku)) AS skus
                 FROM raw_bundle_selections GROUP BY product_id),
        bdup AS (
            SELECT parent_id AS entity_id, min(sku) AS sku FROM (
                SELECT s.parent_id, s.sku FROM raw_bundle_selections s
                SEMI JOIN raw_bundle_options o ON o.option_id = s.option_id AND o.parent_id = s.parent_id
                GROUP BY s.parent_id, s.sku HAVING count(DISTINCT s.option_id) > 1)
            GROUP BY parent_id
        ),
        tp AS (  -- tier prices, of every website (0) and the view's; see magento/tier_prices.py
            SELECT i.entity_id, i.store_id,
                   to_json(list({{'customer_group_id': t.customer_group_id,
                                 'percentage': TRY_CAST(t.percentage AS DOUBLE), 'qty': TRY_CAST(t.qty AS DOUBLE),
                                 'value': CASE WHEN t.percentage IS NULL THEN TRY_CAST(t.value AS DOUBLE) END,
                                 'website_id': t.website_id}}
                                ORDER BY t.customer_group_id IS NOT NULL, coalesce(t.customer_group_id, 0),
                                         TRY_CAST(t.qty AS DOUBLE), t.website_id))::VARCHAR AS tiers
            FROM items i JOIN raw_tier_prices t ON t.entity_id = i.entity_id AND t.website_id IN (0, i.website_id)
            GROUP BY ALL
        ),
        plk AS (  -- links to other products, by type (Magento's code) then sku
            SELECT product_id AS entity_id,
                   to_json(list({{'sku': sku, 'type': type}} ORDER BY type, sku))::VARCHAR AS links
            FROM (SELECT DISTINCT product_id, type, sku FROM raw_product_links) GROUP BY product_id
        ),
        gal AS (
            SELECT i.entity_id, i.store_id, i.media_url, g.value_id, any_value(g.file) AS file,
                   coalesce(max(g.store_disabled) FILTER (WHERE g.store_id = i.store_id),
                            max(g.store_disabled) FILTER (WHERE g.store_id = 0), any_value(g.disabled)) AS disabled,
                   coalesce(nullif(max(g.label) FILTER (WHERE g.store_id = i.store_id), ''),
                            max(g.label) FILTER (WHERE g.store_id = 0)) AS label,
                   coalesce(max(g.position) FILTER (WHERE g.store_id = i.store_id),
                            max(g.position) FILTER (WHERE g.store_id = 0), 0) AS position
            FROM items i JOIN raw_gallery g ON g.entity_id = i.entity_id
            WHERE g.file IS NOT NULL
            GROUP BY i.entity_id, i.store_id, i.media_url, g.value_id
        ),
        img AS (
            SELECT gal.entity_id, gal.store_id,
                   '[' || array_to_string(list_transform(list_sort(list({{
                       'p': gal.position::BIGINT, 'u': gal.media_url || 'catalog/product' || gal.file,
                       'j': to_json({{'label': gal.label, 'position': gal.position::BIGINT, 'roles': {image_roles},
                                     'url': gal.media_url || 'catalog/product' || gal.file}})::VARCHAR}})),
                                     lambda x: x.j), ',') || ']' AS images
            FROM gal LEFT JOIN c ON c.entity_id = gal.entity_id AND c.store_id = gal.store_id
            WHERE gal.disabled = 0 GROUP BY gal.entity_id, gal.store_id
        )
        , records AS NOT MATERIALIZED (
        SELECT
            i.entity_id::BIGINT AS product_id, i.sku, i.store_view_code, i.updated_at,
            to_json(struct_pack({stable}))::VARCHAR AS stable_json,
            c.name, i.type_id AS type,
            {payload["price"]} AS price,
            TRY_CAST(c.visibility AS INTEGER) AS visibility,
            i.updated_at AS source_updated_at,
            coalesce(lnk.ids, []) AS linked_product_ids,
            i.judged_on,
            CASE
                WHEN trim(coalesce(i.sku, '')) = '' THEN 'empty sku'
                WHEN length(i.sku) > {SKU_MAX_LENGTH} THEN 'sku longer than {SKU_MAX_LENGTH} characters'
                WHEN c.name IS NULL OR c.name = '' THEN 'no name in this store view (nor at default scope)'
                WHEN {payload["price"]} < 0 THEN '{NEGATIVE_PRICE}'
                WHEN TRY_CAST(c.special_price AS DOUBLE) < 0 THEN '{NEGATIVE_SPECIAL_PRICE}'
                WHEN bdup.sku IS NOT NULL THEN '{BUNDLE_DUPLICATE_SKU}' || bdup.sku
                ELSE uk.reason
            END AS quarantine_reason
        FROM items i
        LEFT JOIN c ON c.entity_id = i.entity_id AND c.store_id = i.store_id
        LEFT JOIN ca ON ca.entity_id = i.entity_id AND ca.store_id = i.store_id
        LEFT JOIN st ON st.product_id = i.entity_id AND st.stock_id = i.stock_id
        LEFT JOIN cat ON cat.entity_id = i.entity_id AND cat.store_id = i.store_id
        LEFT JOIN par ON par.entity_id = i.entity_id
        LEFT JOIN chi ON chi.entity_id = i.entity_id
        LEFT JOIN lnk ON lnk.entity_id = i.entity_id
        LEFT JOIN tp ON tp.entity_id = i.entity_id AND tp.store_id = i.store_id
        LEFT JOIN cp ON cp.entity_id = i.entity_id AND cp.store_id = i.store_id
        LEFT JOIN img ON img.entity_id = i.entity_id AND img.store_id = i.store_id
        LEFT JOIN copts ON copts.entity_id = i.entity_id AND copts.store_id = i.store_id
        LEFT JOIN plk ON plk.entity_id = i.entity_id
        LEFT JOIN bopt ON bopt.entity_id = i.entity_id AND bopt.store_id = i.store_id
        LEFT JOIN bpar ON bpar.entity_id = i.entity_id
        LEFT JOIN bdup ON bdup.entity_id = i.entity_id
        LEFT JOIN vopts ON vopts.entity_id = i.entity_id AND vopts.store_id = i.store_id
        LEFT JOIN raw_url_key_clashes uk ON uk.entity_id = i.entity_id AND uk.store_id = i.store_id
        )
        -- Serialize once: the hash covers the record without updated_at; the payload gets it
        -- inserted at its sorted place, before "url_key" (a quote inside a JSON string is
        -- escaped, so this pattern only matches the top-level key).
        SELECT product_id, sku, store_view_code, sha1(stable_json) AS content_hash,
               replace(stable_json, ',"url_key":',
                       ',"updated_at":' || coalesce(to_json(updated_at)::VARCHAR, 'null') || ',"url_key":') AS payload,
               name, type, price, visibility, source_updated_at, linked_product_ids, judged_on, quarantine_reason
        FROM records
        ORDER BY product_id  -- a product's store views side by side: the mapping takes them together (layers)
        """
