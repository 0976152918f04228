"""The plugin page's queries on a snapshot of 1,000,000 synced items.

    .venv/bin/python benchmarks/bench_ui_queries.py [--items 1000000] [--queries 100]

Writes a synthetic snapshot of the Ingestion API target's feeds once (cached in benchmarks/.cache): the products
feed, 500,000 SKUs x 2 store views (~0.5 KB bodies of poorly compressible text), and the prices feed, one price
per SKU, each in `snapshot/<feed>/v00000001.parquet` with exactly the snapshot's columns, in no particular order
(as a commit writes them), named by a manifest committed through `SnapshotStore`. It is built in a child process,
so the figures below are the page's alone. Then it times, through `catalog_sync.ui.synced_products.SyncedProducts`:

* the first load of the page's table (once per snapshot version per API-server worker);
* exact-SKU lookup: what /catalog-sync/api/products/{sku} and the product page read from the snapshot
  (find_sku: the listed columns by index probe; sent: every product feed's bodies from Parquet), 100 random SKUs;
* name-substring search: the Synced products search box (count + first page), 100 words.

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
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import (
    PENDING_SCHEMA,
    SNAPSHOT_ROW_GROUP_SIZE,
    SNAPSHOT_SCHEMA,
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
VIEWS = {"default": "en-US", "fr": "fr-FR"}  # store view -> the API's locale; one website, priced in `default`
PRICE_BOOK = "base"
RUN_ID = "bench"
# The listed columns of each item: one product in one store view; 20 runs' worth of export instants.
BASE_SQL = """
    WITH base AS (
      SELECT i // 2 + 1 AS product_id, CASE WHEN i % 2 = 0 THEN 'default' ELSE 'fr' END AS store_view_code,
             {words}[(hash(i // 2) % 20)::INT + 1] || ' ' || {words}[(hash(i // 2 + 7) % 20)::INT + 1] || ' '
               || {words}[(hash(i // 2 + 13) % 20)::INT + 1] || ' ' || (i // 2 + 1)::VARCHAR AS name
      FROM range({items}) t(i))
    SELECT product_id, printf('SKU-%08d', product_id) AS sku, store_view_code,
           CASE store_view_code WHEN 'default' THEN 'en-US' ELSE 'fr-FR' END AS locale, name,
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
        FROM items""",
    PRICES.name: """
        SELECT *, to_json({{'priceBookId': '{book}', 'sku': sku}})::VARCHAR AS key,
               to_json({{'priceBookId': '{book}', 'regular': price, 'sku': sku}})::VARCHAR AS body,
               '2026-11-25' AS judged_on
        FROM items WHERE store_view_code = 'default'""",
}
DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR", pa.float64(): "DOUBLE",
                pa.list_(pa.int64()): "BIGINT[]"}


def state_dir(items: int) -> Path:
    return HERE / ".cache" / f"ui-feeds-state-{items}"


def build_state(items: int) -> None:
    """Write each feed's snapshot file with DuckDB (the snapshot's columns, in its order and types),
    check it against SNAPSHOT_SCHEMA, then commit version 1 naming them, as a sync's commit does."""
    store = SnapshotStore(open_state(str(state_dir(items))))
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    computed = {"sha1": "sha1(body)", "recheck_on": "NULL", "run_id": f"'{RUN_ID}'"}
    columns = ", ".join(f"{computed.get(f.name, f.name)}::{DUCKDB_TYPES[f.type]} AS {f.name}" for f in SNAPSHOT_SCHEMA)
    feeds: dict[str, FeedFiles] = {}
    con = duckdb_session.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("CREATE TEMP VIEW items AS " + BASE_SQL.format(words=words, items=items))
        for feed in FEEDS:
            if feed.name not in FEED_SQL:
                continue
            file_rel, pending_rel = store.new_files(feed.name, 1)
            store.location.makedirs(file_rel.rsplit("/", 1)[0])
            path, pending = store.file_url(file_rel), store.file_url(pending_rel)
            sql = FEED_SQL[feed.name].format(book=PRICE_BOOK)
            con.execute(f"COPY (SELECT {columns} FROM ({sql}) ORDER BY hash(key)) TO {duckdb_session.sql_literal(path)} "
                        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})")
            con.execute(f"COPY ({duckdb_session.empty_select(PENDING_SCHEMA)}) TO {duckdb_session.sql_literal(pending)} "
                        "(FORMAT parquet)")
            written = pq.read_schema(path)
            assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in SNAPSHOT_SCHEMA], written
            feeds[feed.name] = FeedFiles(file_rel, pending_rel, pq.read_metadata(path).num_rows, 0)
    finally:
        con.close()
    store.swap_manifest(Manifest(), feeds, None, RUN_ID)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
            "max_ms": round(ordered[-1], 2), "mean_ms": round(statistics.fmean(ordered), 2), "queries": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="products feed items (SKUs x 2 store views)")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    if args.items < 2 or args.items % 2:
        parser.error("--items must be an even number (SKUs x 2 store views)")
    state = state_dir(args.items)
    if not (state / "manifest.json").exists():
        child = multiprocessing.get_context("spawn").Process(target=build_state, args=(args.items,))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"building the synthetic state failed (exit {child.exitcode})")

    started = time.perf_counter()
    products = SyncedProducts(str(state), FEEDS)
    manifest = products.manifest()
    load_s = time.perf_counter() - started
    skus_n = args.items // 2
    assert products.count() == args.items
    assert {f["name"]: f["items"] for f in products.feeds()} == {PRODUCTS.name: args.items, PRICES.name: skus_n}

    rng = random.Random(7)
    skus = [f"SKU-{rng.randint(1, skus_n):08d}" for _ in range(args.queries)]
    lookup = []
    for sku in skus:
        t = time.perf_counter()
        listed, sent = products.find_sku(sku), products.sent(sku)
        lookup.append((time.perf_counter() - t) * 1000)
        assert [r["store_view_code"] for r in listed] == list(VIEWS), sku
        assert sorted((i.feed, i.store_view_code) for i in sent) == [
            (PRICES.name, "default"), (PRODUCTS.name, "default"), (PRODUCTS.name, "fr")], sku
        assert all(json.loads(i.body or "null")["sku"] == sku for i in sent), sku
    search = []
    for n in range(args.queries):
        word = WORDS[n % len(WORDS)].lower()[: 3 + n % 3]
        t = time.perf_counter()
        page = products.search(word)
        search.append((time.perf_counter() - t) * 1000)
        assert page.total > 0 and len(page.rows) == PAGE_SIZE, word
    products.close()
    files = {name: state / f.file for name, f in manifest.feeds.items() if f.file}
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__},
        "items": args.items, "feeds": {name: f.items for name, f in manifest.feeds.items()},
        "first_load_s": round(load_s, 2),
        "sku_lookup": percentiles(lookup), "name_substring_search": percentiles(search),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "parquet_mib": {name: round(path.stat().st_size / 2**20) for name, path in files.items()},
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (out / f"bench_ui_queries-{stamp}.json").write_text(json.dumps(result, indent=2))
    s, q = result["sku_lookup"], result["name_substring_search"]
    sizes = ", ".join(f"{name} {mib} MiB" for name, mib in result["parquet_mib"].items())
    (out / "bench_ui_queries-latest.md").write_text(
        f"# Plugin page queries, {args.items:,} synced items ({result['when']}, {os.cpu_count()} cores)\n\n"
        "| query | p50 | p95 | max | goal (p95) |\n|---|---:|---:|---:|---:|\n"
        f"| exact-SKU lookup (find_sku + sent: listed columns + bodies) | {s['p50_ms']} ms | {s['p95_ms']} ms "
        f"| {s['max_ms']} ms | 50 ms |\n"
        f"| name-substring search (count + first page) | {q['p50_ms']} ms | {q['p95_ms']} ms | {q['max_ms']} ms "
        "| 500 ms |\n\n"
        f"First load of the page's table: {result['first_load_s']} s; peak RSS {result['peak_rss_mib']} MiB; "
        f"snapshot files: {sizes} ({skus_n:,} prices).\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
