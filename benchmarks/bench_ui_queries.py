"""The plugin page's queries on a snapshot at Magento's large profile (300,000 products x 5 store views).

    .venv/bin/python benchmarks/bench_ui_queries.py [--items 1500000] [--store-views 5] [--deltas 24]
        [--delta-items 11300] [--tombstones 50] [--queries 100]

Writes a synthetic snapshot of the Ingestion API target's feeds once (cached in benchmarks/.cache, one folder per
items/store views/deltas/delta items/tombstones): the products feed, items / store views SKUs x store views
(~0.5 KB bodies of poorly compressible text), and the prices feed, one price per SKU. Each feed is a base,
`snapshot/<feed>/v00000001.parquet` with exactly the snapshot's columns in no particular order (as a commit writes
it), plus `--deltas` delta files (`SnapshotStore.new_delta`, versions 2.., DELTA_SCHEMA, the commit's COPY options),
as a day of hourly commits leaves them before compaction (MAX_DELTAS): each re-writes `--delta-items` random items
of the catalog with a changed name, price and body (the prices feed: those of them in the default store view) and
deletes `--tombstones` others (tombstones: key, product_id, sku, store_view_code). One manifest committed through
`SnapshotStore` names them all. It is built in a child process, so the figures below are the page's alone. Then
it times, through `catalog_sync.ui.synced_products.SyncedProducts`:

* the first load of the page's table (`manifest()`: the merged view of the products feed, with positions);
* exact-SKU lookup: what /catalog-sync/api/products/{sku} and the product page read from the snapshot
  (find_sku: the listed columns by index probe; sent: every product feed's bodies, read by position from the
  base and delta files), each timed apart and together, for `--queries` SKUs: half of them among the SKUs the
  deltas changed (with --deltas 0: all random);
* the search box with an exact SKU, and name-substring search (count + first page), `--queries` words.

Reports p50/p95/max in ms and the process's peak RSS to
benchmarks/results/bench_ui_queries-<stamp>.json and bench_ui_queries-latest.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import (
    DELTA_SCHEMA,
    MAX_DELTAS,
    PENDING_SCHEMA,
    SNAPSHOT_ROW_GROUP_SIZE,
    SNAPSHOT_SCHEMA,
    DeltaFile,
    FeedFiles,
    Manifest,
    SnapshotStore,
)
from catalog_sync.targets.ingestion_api.feeds import FEEDS, PRICES, PRODUCTS
from catalog_sync.ui.paging import PAGE_SIZE
from catalog_sync.ui.synced_products import SyncedProducts

HERE = Path(__file__).resolve().parent
WORDS = ["Running", "Yoga", "Shoe", "Jacket", "Bottle", "Cotton", "Wool", "Lyon", "Oslo", "Kyoto", "Denim", "Trail",
         "Merino", "Linen", "Bag", "Cap", "Sock", "Short", "Tee", "Hoodie"]
# store view -> the API's locale, the first --store-views of them; one website, priced in `default`
VIEWS = {"default": "en-US", "fr": "fr-FR", "de": "de-DE", "es": "es-ES", "it": "it-IT", "nl": "nl-NL", "pt": "pt-PT",
         "sv": "sv-SE"}
PRICE_BOOK = "base"
RUN_ID = "bench"
BASE_EXPORTED = datetime(2026, 11, 26, tzinfo=timezone.utc)  # delta d is exported d hours after this
# The listed columns of each item: one product in one store view; 20 runs' worth of export instants.
# Item i is product i // views + 1 in store view i % views; `where` picks the items (all, for the base).
BASE_SQL = """
    WITH base AS (
      SELECT i, i // {views} + 1 AS product_id, {codes}[i % {views} + 1] AS store_view_code,
             {locales}[i % {views} + 1] AS locale,
             {words}[(hash(i // {views}) % 20)::INT + 1] || ' ' || {words}[(hash(i // {views} + 7) % 20)::INT + 1] || ' '
               || {words}[(hash(i // {views} + 13) % 20)::INT + 1] || ' ' || (i // {views} + 1)::VARCHAR AS name
      FROM range({items}) t(i) WHERE {where})
    SELECT i, product_id, printf('SKU-%08d', product_id) AS sku, store_view_code, locale, name,
           'simple' AS type, 10.0 + product_id % 500 AS price, 4 AS visibility,
           '2026-11-20T10:00:00' AS source_updated_at, []::BIGINT[] AS linked_product_ids,
           printf('2026-11-25T%02d:00:00+00:00', product_id % 20) AS exported_at
    FROM base"""
# Each feed's key and body as canonical JSON (sorted keys, no whitespace), as the target's mapping makes them.
FEED_SQL = {
    PRODUCTS.name: """
        SELECT *, to_json({{'sku': sku, 'source': {{'locale': locale}}}})::VARCHAR AS key,
               to_json({{'description': md5(name) || md5(name || 'a') || md5(name || 'b') || md5(name || 'c')
                          || md5(name || 'd') || md5(name || 'e') || md5(name || 'f') || md5(name || 'g')
                          || md5(name || 'h') || md5(name || 'i') || md5(name || 'j') || md5(name || 'k'),
                         'name': name, 'sku': sku, 'slug': lower(replace(name, ' ', '-')), 'source': {{'locale': locale}},
                         'status': 'ENABLED', 'visibleIn': ['CATALOG', 'SEARCH']}})::VARCHAR AS body,
               NULL AS judged_on
        FROM {src}""",
    PRICES.name: """
        SELECT *, to_json({{'priceBookId': '{book}', 'sku': sku}})::VARCHAR AS key,
               to_json({{'priceBookId': '{book}', 'regular': price, 'sku': sku}})::VARCHAR AS body,
               '2026-11-25' AS judged_on
        FROM {src} WHERE store_view_code = 'default'""",
}
DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR", pa.float64(): "DOUBLE",
                pa.list_(pa.int64()): "BIGINT[]", pa.bool_(): "BOOLEAN"}
COPY_OPTIONS = f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})"  # the commit's


def state_dir(items: int, views: int, deltas: int, delta_items: int, tombstones: int) -> Path:
    return HERE / ".cache" / f"ui-feeds-state-{items}-sv{views}-d{deltas}x{delta_items}-t{tombstones}"


def columns_of(schema: pa.Schema, computed: dict[str, str]) -> str:
    return ", ".join(f"{computed.get(f.name, f.name)}::{DUCKDB_TYPES[f.type]} AS {f.name}" for f in schema)


def build_state(items: int, views: int, deltas: int, delta_items: int, tombstones: int) -> None:
    """Write each feed's base file with DuckDB (the snapshot's columns, in its order and types), then its delta
    files (DELTA_SCHEMA), check them against the schemas, then commit one version naming them, as a sync's
    commit does."""
    store = SnapshotStore(open_state(str(state_dir(items, views, deltas, delta_items, tombstones))))
    codes = list(VIEWS)[:views]

    def array(values: list[str]) -> str:
        return "[" + ", ".join(f"'{v}'" for v in values) + "]"

    def source(where: str) -> str:
        return BASE_SQL.format(words=array(WORDS), codes=array(codes), locales=array([VIEWS[c] for c in codes]),
                               views=views, items=items, where=where)

    q = duckdb_session.sql_literal
    feeds: dict[str, FeedFiles] = {}
    con = duckdb_session.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("CREATE TEMP VIEW items AS " + source("true"))
        # Which items each delta re-writes (the first delta_items of its draw) and deletes (the next tombstones).
        con.execute("CREATE TEMP TABLE picks (d INTEGER, i BIGINT, tomb BOOLEAN)")
        for d in range(1, deltas + 1):
            con.execute(f"""INSERT INTO picks SELECT {d}, i, row_number() OVER (ORDER BY h) > {delta_items}
                FROM (SELECT i, hash(i, {d}) AS h FROM range({items}) t(i) ORDER BY h LIMIT {delta_items + tombstones})""")
        for feed in FEEDS:
            if feed.name not in FEED_SQL:
                continue
            file_rel, pending_rel = store.new_files(feed.name, 1)
            store.location.makedirs(file_rel.rsplit("/", 1)[0])
            path, pending = store.file_url(file_rel), store.file_url(pending_rel)
            sql = FEED_SQL[feed.name].format(book=PRICE_BOOK, src="items")
            base_columns = columns_of(SNAPSHOT_SCHEMA, {"sha1": "sha1(body)", "recheck_on": "NULL", "run_id": f"'{RUN_ID}'"})
            con.execute(f"COPY (SELECT {base_columns} FROM ({sql}) ORDER BY hash(key)) TO {q(path)} {COPY_OPTIONS}")
            con.execute(f"COPY ({duckdb_session.empty_select(PENDING_SCHEMA)}) TO {q(pending)} (FORMAT parquet)")
            written = pq.read_schema(path)
            assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in SNAPSHOT_SCHEMA], written
            base_rows = pq.read_metadata(path).num_rows
            written_deltas = []
            for d in range(1, deltas + 1):
                # An hourly commit: the changed items with their new name, price and body; the deleted ones' tombstones.
                con.execute(f"CREATE OR REPLACE TEMP VIEW changed AS SELECT * REPLACE (name || ' rev {d}' AS name, "
                            f"price + {d} AS price) FROM ({source(f'i IN (SELECT i FROM picks WHERE d = {d} AND NOT tomb)')})")
                con.execute("CREATE OR REPLACE TEMP VIEW gone AS "
                            + source(f"i IN (SELECT i FROM picks WHERE d = {d} AND tomb)"))
                upserts = FEED_SQL[feed.name].format(book=PRICE_BOOK, src="changed")
                deletes = FEED_SQL[feed.name].format(book=PRICE_BOOK, src="gone")
                exported = (BASE_EXPORTED + timedelta(hours=d)).isoformat(timespec="seconds")
                delta_columns = columns_of(DELTA_SCHEMA, {"sha1": "sha1(body)", "recheck_on": "NULL",
                                                          "run_id": f"'{RUN_ID}-{d}'", "exported_at": f"'{exported}'"})
                delta_rel = store.new_delta(feed.name, 1 + d)
                delta_path = store.file_url(delta_rel)
                con.execute(f"""COPY (SELECT {delta_columns} FROM (
                        SELECT *, false AS deleted FROM ({upserts})
                        UNION ALL BY NAME
                        SELECT key, product_id, sku, store_view_code, true AS deleted FROM ({deletes})
                    ) ORDER BY hash(key)) TO {q(delta_path)} {COPY_OPTIONS}""")
                written = pq.read_schema(delta_path)
                assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in DELTA_SCHEMA], written
                written_deltas.append(DeltaFile(delta_rel, pq.read_metadata(delta_path).num_rows))
            files = FeedFiles(file_rel, pending_rel, base_rows, 0, deltas=tuple(written_deltas), base_items=base_rows)
            merged = con.execute(f"SELECT count(*) FROM {store.feed_relation(files)}").fetchone()[0]
            feeds[feed.name] = FeedFiles(file_rel, pending_rel, merged, 0, deltas=tuple(written_deltas),
                                         base_items=base_rows if written_deltas else None)
    finally:
        con.close()
    store.swap_manifest(Manifest(), feeds, None, RUN_ID)


def prepare(state: str, queries: int, skus_n: int) -> tuple[list[str], dict[str, list[tuple]], int]:
    """(In a child process, so the page's figures stay its own.) The SKUs to look up, half of them among those
    the products feed's deltas changed, and what sent() must return for each: (feed, key, store view, body)
    of the merged views, and how many of the sampled SKUs the deltas changed."""
    store = SnapshotStore(open_state(state))
    manifest = store.read_manifest()
    q = duckdb_session.sql_literal
    con = duckdb_session.connect()
    try:
        products = manifest.files(PRODUCTS.name)
        changed = [] if not products.deltas else [r[0] for r in con.execute(
            f"SELECT DISTINCT sku FROM read_parquet([{', '.join(q(store.file_url(d.file)) for d in products.deltas)}]) "
            "WHERE NOT deleted ORDER BY 1").fetchall()]
        rng = random.Random(7)
        skus = [rng.choice(changed) if changed and n % 2 == 0 else f"SKU-{rng.randint(1, skus_n):08d}" for n in range(queries)]
        expected: dict[str, list[tuple]] = {sku: [] for sku in skus}
        for feed in (f.name for f in FEEDS if f.name in manifest.feeds):
            merged = store.feed_relation(manifest.files(feed))
            for sku, key, view, body in con.execute(
                    f"SELECT sku, key, store_view_code, body FROM {merged} WHERE sku IN (SELECT unnest(?))", [skus]).fetchall():
                expected[sku].append((feed, key, view, body))
        changed_sampled = len(set(skus) & set(changed))
    finally:
        con.close()
    return skus, {sku: sorted(rows) for sku, rows in expected.items()}, changed_sampled


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
            "max_ms": round(ordered[-1], 2), "mean_ms": round(statistics.fmean(ordered), 2), "queries": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_500_000, help="products feed items (SKUs x store views)")
    parser.add_argument("--store-views", type=int, default=5, help=f"store views (1-{len(VIEWS)})")
    parser.add_argument("--deltas", type=int, default=MAX_DELTAS, help="delta files on each feed's base")
    parser.add_argument("--delta-items", type=int, default=11_300, help="items each delta re-writes")
    parser.add_argument("--tombstones", type=int, default=50, help="items each delta deletes")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    views = args.store_views
    if not 1 <= views <= len(VIEWS):
        parser.error(f"--store-views must be 1 to {len(VIEWS)}")
    if args.items < views or args.items % views:
        parser.error(f"--items must be a multiple of --store-views (SKUs x {views} store views)")
    if args.deltas < 0 or args.delta_items < 1 or args.tombstones < 0 or args.delta_items + args.tombstones > args.items:
        parser.error("--deltas >= 0, --delta-items >= 1, --tombstones >= 0, and delta items + tombstones <= items")
    params = (args.items, views, args.deltas, args.delta_items, args.tombstones)
    state = state_dir(*params)
    spawn = multiprocessing.get_context("spawn")
    if not (state / "manifest.json").exists():
        started = time.perf_counter()
        child = spawn.Process(target=build_state, args=params)
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"building the synthetic state failed (exit {child.exitcode})")
        print(f"built {state} in {time.perf_counter() - started:.1f} s", flush=True)
    skus_n = args.items // views
    with spawn.Pool(1) as pool:
        skus, expected, changed_sampled = pool.apply(prepare, (str(state), args.queries, skus_n))

    started = time.perf_counter()
    products = SyncedProducts(str(state), FEEDS)
    manifest = products.manifest()
    load_s = time.perf_counter() - started
    assert products.count() == manifest.files(PRODUCTS.name).items
    assert manifest.files(PRODUCTS.name).base_rows == args.items and len(manifest.files(PRODUCTS.name).deltas) == args.deltas
    assert {f["name"]: f["items"] for f in products.feeds()} == {n: f.items for n, f in manifest.feeds.items()}

    find, sent_ms, lookup = [], [], []
    for sku in skus:
        t = time.perf_counter()
        listed = products.find_sku(sku)
        t1 = time.perf_counter()
        sent = products.sent(sku)
        t2 = time.perf_counter()
        find.append((t1 - t) * 1000)
        sent_ms.append((t2 - t1) * 1000)
        lookup.append((t2 - t) * 1000)
        want = expected[sku]
        assert [r["store_view_code"] for r in listed] == sorted(v for f, _, v, _ in want if f == PRODUCTS.name), sku
        assert sorted((i.feed, i.key, i.store_view_code, i.body) for i in sent) == want, sku
    sku_search = []
    for sku in skus:
        t = time.perf_counter()
        page = products.search(sku)
        sku_search.append((time.perf_counter() - t) * 1000)
        assert page.total == sum(1 for f, *_ in expected[sku] if f == PRODUCTS.name), sku
    search = []
    for n in range(args.queries):
        word = WORDS[n % len(WORDS)].lower()[: 3 + n % 3]
        t = time.perf_counter()
        page = products.search(word)
        search.append((time.perf_counter() - t) * 1000)
        assert page.total > 0 and len(page.rows) == PAGE_SIZE, word
    products.close()

    def mib(relative: str | None) -> float:
        return (state / relative).stat().st_size / 2**20 if relative else 0.0

    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                    "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "items": args.items, "store_views": views, "skus": skus_n, "deltas": args.deltas, "delta_items": args.delta_items,
        "tombstones_per_delta": args.tombstones, "sampled_skus_changed_by_deltas": changed_sampled,
        "feeds": {name: {"items": f.items, "base_items": f.base_rows, "delta_rows": f.delta_rows, "deltas": len(f.deltas)}
                  for name, f in manifest.feeds.items()},
        "first_load_s": round(load_s, 2),
        "find_sku": percentiles(find), "sent": percentiles(sent_ms), "sku_lookup": percentiles(lookup),
        "sku_search": percentiles(sku_search), "name_substring_search": percentiles(search),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "parquet_mib": {name: {"base": round(mib(f.file)), "deltas": round(sum(mib(d.file) for d in f.deltas))}
                        for name, f in manifest.feeds.items()},
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (out / f"bench_ui_queries-{stamp}.json").write_text(json.dumps(result, indent=2))

    def row(label: str, r: dict[str, float], goal: str) -> str:
        return f"| {label} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['max_ms']} ms | {goal} |\n"

    sizes = ", ".join(f"{name} {m['base']} MiB + {m['deltas']} MiB of deltas" for name, m in result["parquet_mib"].items())
    (out / "bench_ui_queries-latest.md").write_text(
        f"# Plugin page queries, {args.items:,} synced items ({skus_n:,} SKUs x {views} store views), {args.deltas} deltas "
        f"of {args.delta_items:,} items + {args.tombstones} tombstones ({result['when']}, {os.cpu_count()} cores)\n\n"
        "| query | p50 | p95 | max | goal (p95) |\n|---|---:|---:|---:|---:|\n"
        + row("exact-SKU lookup (find_sku + sent: listed columns + bodies)", result["sku_lookup"], "50 ms")
        + row("find_sku (listed columns, index probe)", result["find_sku"], "")
        + row(f"sent (bodies of every product feed; {changed_sampled} of {args.queries} SKUs changed by deltas)",
              result["sent"], "")
        + row("search box, exact SKU (count + first page)", result["sku_search"], "500 ms")
        + row("name-substring search (count + first page)", result["name_substring_search"], "500 ms")
        + f"\nFirst load of the page's table: {result['first_load_s']} s; peak RSS {result['peak_rss_mib']} MiB; "
        f"items in the merged views: {', '.join(f'{n} {f.items:,}' for n, f in manifest.feeds.items())}; "
        f"snapshot files: {sizes}; 1-minute load average at the end {result['machine']['loadavg_1m_at_end']}.\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
