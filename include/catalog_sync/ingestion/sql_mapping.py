"""The FeedProduct mapping of `mapping.feed_product`, vectorised in DuckDB, for whole chunks of feed records.

`mapping.py` stays the reference: this module must give, for every record it maps, exactly the
bytes `orjson.dumps(mapping.feed_product(record))` gives (tests/test_ingestion_mapping.py holds
the two byte-identical). It only maps records of the shape the extract writes: strings where the
mapping expects strings, integer status/visibility/positions, arrays of strings, and no `\\u`
escape anywhere in the record's JSON (DuckDB writes control characters' escapes in upper case,
orjson in lower case). Any other record gets None, and the caller maps it in Python, errors and
all: the result is the same, only slower.

Besides the product JSON, each record gives the few fields the price mapping reads, as a small
JSON object (`mapping.prices` and the price book choice run on it in Python: they are cheap).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from catalog_sync.ingestion import mapping

# Python's str.strip() removes exactly these (str.isspace()); DuckDB's trim(s, chars) takes them as a set.
_PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())

# The fields the price mapping and the price book choice read (see mapping.prices, website_price_book).
PRICE_FIELDS = ("sku", "price", "special_price", "special_price_from", "special_price_to", "type",
                "website_code", "currency")
_TOP_FIELDS = ("sku", "locale", "name", "status", "visibility", "url_key", "description", "short_description",
               "meta_title", "meta_description", "meta_keywords", "attributes", "images", "parent_skus",
               "category_paths", *[f for f in PRICE_FIELDS if f != "sku"])
_TOP_SHAPE = "{" + ",".join(f'"{f}":"JSON"' for f in _TOP_FIELDS) + "}"
_PRICE_CONCAT = " || ".join(f"""',"{f}":' || coalesce(r.{f}, 'null')""" for f in PRICE_FIELDS if f != "sku")
_IMAGE_ROLE_CASES = " ".join(f"""WHEN '"{k}"' THEN '"{v}"'""" for k, v in mapping.IMAGE_ROLES.items())
_KNOWN_ROLES = ", ".join(f"""'"{k}"'""" for k in mapping.IMAGE_ROLES)
_VISIBLE_IN_CASES = " ".join(
    f"WHEN '{k}' THEN ',\"visibleIn\":[{','.join(chr(34) + v + chr(34) for v in vs)}]'" for k, vs in mapping.VISIBLE_IN.items()
)


def _is_str(x: str) -> str:
    return f"(left({x}, 1) = '\"')"


def _is_absent(x: str) -> str:
    """Missing key or JSON null: `record.get(...)` gives None for both."""
    return f"({x} IS NULL OR {x} = 'null')"


def _str_or_absent(x: str) -> str:
    return f"({_is_absent(x)} OR {_is_str(x)})"


def _int_or_absent(x: str) -> str:
    return f"({_is_absent(x)} OR regexp_full_match({x}, '-?[0-9]{{1,15}}'))"


def _array_or_absent(x: str) -> str:
    return f"({_is_absent(x)} OR left({x}, 1) = '[')"


def _all(types: str, allowed: str) -> str:
    """Every JSON type in the list `types` is one of `allowed` (an empty list passes)."""
    return f"coalesce(list_bool_and(list_transform({types}, lambda t: t IN ({allowed}))), true)"


def _str_text(x: str) -> str:
    """The decoded value of a JSON string text."""
    return f"json_extract_string({x}, '$')"


def _shape_ok() -> str:
    """True when the record has the shape this SQL maps exactly like mapping.feed_product does."""
    checks = [
        "NOT contains(payload, '\\u')",
        _is_str("r.sku"), _is_str("r.locale"), _is_str("r.name"),
        _int_or_absent("r.status"), _int_or_absent("r.visibility"),
        *[_str_or_absent(f"r.{f}") for f in ("url_key", "description", "short_description", "meta_title",
                                               "meta_description", "meta_keywords")],
        *[_array_or_absent(f"r.{f}") for f in ("attributes", "images", "parent_skus", "category_paths")],
        # attributes: objects whose code is a string and whose values are arrays of strings
        f"({_is_absent('r.attributes')} OR ("
        f"{_all(json_type_list('r.attributes', '$[*]'), repr('OBJECT'))}"
        f" AND len(json_type(r.attributes, '$[*].code')) = json_array_length(r.attributes)"
        f" AND {_all(json_type_list('r.attributes', '$[*].code'), repr('VARCHAR'))}"
        f" AND {_all(json_type_list('r.attributes', '$[*].values'), repr('ARRAY') + ', ' + repr('NULL'))}"
        f" AND {_all(json_type_list('r.attributes', '$[*].values[*]'), repr('VARCHAR'))}))",
        # images: objects with a string url, a string label or none, an integer position or none, string roles
        f"({_is_absent('r.images')} OR ("
        f"{_all(json_type_list('r.images', '$[*]'), repr('OBJECT'))}"
        f" AND len(json_type(r.images, '$[*].url')) = json_array_length(r.images)"
        f" AND {_all(json_type_list('r.images', '$[*].url'), repr('VARCHAR'))}"
        f" AND {_all(json_type_list('r.images', '$[*].label'), repr('VARCHAR') + ', ' + repr('NULL'))}"
        f" AND {_all(json_type_list('r.images', '$[*].position'), repr('UBIGINT') + ', ' + repr('BIGINT') + ', ' + repr('NULL'))}"
        f" AND {_all(json_type_list('r.images', '$[*].roles'), repr('ARRAY') + ', ' + repr('NULL'))}"
        f" AND {_all(json_type_list('r.images', '$[*].roles[*]'), repr('VARCHAR'))}))",
        f"({_is_absent('r.parent_skus')} OR {_all(json_type_list('r.parent_skus', '$[*]'), repr('VARCHAR'))})",
        f"({_is_absent('r.category_paths')} OR {_all(json_type_list('r.category_paths', '$[*]'), repr('VARCHAR'))})",
    ]
    return "\n AND ".join(checks)


def json_type_list(x: str, path: str) -> str:
    return f"coalesce(json_type({x}, '{path}'), [])"


def _present_truthy_str(x: str) -> str:
    """A JSON string other than "" (Python: a truthy str)."""
    return f"({_is_str(x)} AND {x} <> '\"\"')"


_PRODUCT_SQL = f"""
WITH parsed AS (
    SELECT n, payload, json_transform(payload, '{_TOP_SHAPE}') AS r FROM chunk WHERE payload IS NOT NULL
), shaped AS (
    SELECT n, payload, r, ({_shape_ok()}) AS ok FROM parsed
), typed AS (
    SELECT n, r,
        CASE WHEN {_is_absent('r.attributes')} THEN [] ELSE
            json_transform(r.attributes, '[{{"code":"JSON","values":["JSON"]}}]') END AS attrs,
        CASE WHEN {_is_absent('r.images')} THEN [] ELSE
            json_transform(r.images, '[{{"url":"JSON","label":"JSON","roles":["JSON"],"position":"JSON"}}]') END AS imgs,
        CASE WHEN {_is_absent('r.parent_skus')} THEN [] ELSE json_transform(r.parent_skus, '["JSON"]') END AS parents,
        CASE WHEN {_is_absent('r.category_paths')} THEN [] ELSE json_transform(r.category_paths, '["VARCHAR"]') END AS paths,
        CASE WHEN {_is_str('r.meta_keywords')} THEN list_filter(
            list_transform(string_split(replace({_str_text('r.meta_keywords')}, chr(10), ','), ','), lambda w: trim(w, $ws)),
            lambda w: w <> '') ELSE [] END AS keywords
    FROM shaped WHERE ok
), pieces AS (
    SELECT n, r, attrs, keywords, parents,
        list_filter(attrs, lambda a: len(coalesce(a.values, [])) > 0) AS attrs_kept,
        list_sort(list_transform(imgs, lambda i, k: {{'pos': CASE WHEN {_is_absent('i.position')} THEN 0::HUGEINT
                                                             ELSE CAST(i.position AS HUGEINT) END, 'url': {_str_text('i.url')},
                                                   'k': k, 'img': i}})) AS imgs_sorted,
        list_sort(list_distinct(list_filter(list_transform(paths, lambda p: route_path(p)), lambda p: p <> ''))) AS routes,
        concat_ws(',',
            CASE WHEN {_present_truthy_str('r.meta_title')} THEN '"title":' || r.meta_title END,
            CASE WHEN {_present_truthy_str('r.meta_description')} THEN '"description":' || r.meta_description END,
            CASE WHEN len(keywords) > 0 THEN '"keywords":' || to_json(keywords) END) AS meta
    FROM typed
)
SELECT n,
    '{{"sku":' || r.sku
    || ',"source":{{"locale":' || replace(r.locale, '_', '-')
    || '}},"name":' || r.name
    || ',"slug":' || CASE WHEN {_present_truthy_str('r.url_key')} THEN r.url_key
                          ELSE to_json(fallback_slug({_str_text('r.name')}, {_str_text('r.sku')})) END
    || ',"status":' || CASE WHEN r.status = '1' THEN '"{mapping.ENABLED}"' ELSE '"{mapping.DISABLED}"' END
    || CASE r.visibility {_VISIBLE_IN_CASES} ELSE '' END
    || CASE WHEN {_is_absent('r.description')} THEN '' ELSE ',"description":' || r.description END
    || CASE WHEN {_is_absent('r.short_description')} THEN '' ELSE ',"shortDescription":' || r.short_description END
    || CASE WHEN meta <> '' THEN ',"metaTags":{{' || meta || '}}' ELSE '' END
    || CASE WHEN len(attrs_kept) = 0 THEN '' ELSE ',"attributes":[' || array_to_string(list_transform(attrs_kept,
           lambda a: '{{"code":' || a.code || ',"values":[' || array_to_string(a.values, ',') || ']}}'), ',') || ']' END
    || CASE WHEN len(imgs_sorted) = 0 THEN '' ELSE ',"images":[' || array_to_string(list_transform(imgs_sorted,
           lambda s: '{{"url":' || s.img.url
               || CASE WHEN {_present_truthy_str('s.img.label')} THEN ',"label":' || s.img.label ELSE '' END
               || ',"roles":[' || array_to_string(list_transform(
                      list_filter(coalesce(s.img.roles, []), lambda x: x IN ({_KNOWN_ROLES})),
                      lambda x: CASE x {_IMAGE_ROLE_CASES} END), ',') || ']'
               || CASE WHEN len(list_filter(coalesce(s.img.roles, []), lambda x: x NOT IN ({_KNOWN_ROLES}))) = 0 THEN ''
                  ELSE ',"customRoles":[' || array_to_string(
                      list_filter(coalesce(s.img.roles, []), lambda x: x NOT IN ({_KNOWN_ROLES})), ',') || ']' END
               || '}}'), ',') || ']' END
    || CASE WHEN len(parents) = 0 THEN '' ELSE ',"links":[' || array_to_string(list_transform(parents,
           lambda p: '{{"type":"{mapping.VARIANT_OF}","sku":' || p || '}}'), ',') || ']' END
    || CASE WHEN len(routes) = 0 THEN '' ELSE ',"routes":[' || array_to_string(list_transform(routes,
           lambda p: '{{"path":' || to_json(p) || '}}'), ',') || ']' END
    || '}}' AS product_json,
    '{{"sku":' || r.sku || {_PRICE_CONCAT}
    || '}}' AS price_fields
FROM pieces
"""


def _route_path(values: pa.Array) -> pa.Array:
    return pa.array([mapping.route_path(v) for v in values.to_pylist()], pa.string())


def _fallback_slug(names: pa.Array, skus: pa.Array) -> pa.Array:
    return pa.array([mapping.product_slug({"name": n, "sku": s}) for n, s in zip(names.to_pylist(), skus.to_pylist())],
                    pa.string())


class ChunkMapper:
    """Maps chunks of feed records (canonical JSON texts) to FeedProduct JSON texts in one DuckDB query."""

    def __init__(self) -> None:
        self._con = duckdb.connect(config={"threads": 1})
        varchar = duckdb.sqltype("VARCHAR")
        self._con.create_function("route_path", _route_path, [varchar], varchar, type="arrow")
        self._con.create_function("fallback_slug", _fallback_slug, [varchar, varchar], varchar, type="arrow")

    def map(self, payloads: Sequence[str | None]) -> tuple[list[str | None], list[str | None]]:
        """(product JSON, price fields JSON) per record; (None, None) where it must be mapped in Python."""
        chunk = pa.table({"n": pa.array(range(len(payloads)), pa.int64()), "payload": pa.array(payloads, pa.string())})
        self._con.register("chunk", chunk)
        try:
            out = self._con.sql(_PRODUCT_SQL, params={"ws": _PY_WHITESPACE}).to_arrow_table()
        except duckdb.Error:
            # Whatever this SQL cannot handle, the Python mapping can (and reports its own errors).
            return [None] * len(payloads), [None] * len(payloads)
        finally:
            self._con.unregister("chunk")
        products: list[str | None] = [None] * len(payloads)
        prices: list[str | None] = [None] * len(payloads)
        for n, product, price in zip(out.column("n").to_pylist(), out.column("product_json").to_pylist(),
                                     out.column("price_fields").to_pylist()):
            products[n], prices[n] = product, price
        return products, prices

    def close(self) -> None:
        self._con.close()
