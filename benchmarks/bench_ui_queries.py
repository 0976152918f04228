"""The plugin page's queries on a snapshot of 1,000,000 synced items.

    .venv/bin/python benchmarks/bench_ui_queries.py [--items 1000000] [--queries 100]

Writes a synthetic snapshot (the snapshot's columns, ~0.5 KB JSON payloads of poorly compressible text, 500,000
SKUs x 2 store views) into a temporary state folder once (cached in benchmarks/.cache),
then times, through `catalog_sync.ui.synced_products.SyncedProducts`:

* the first load of the page's table (once per snapshot version per API-server worker);
* exact-SKU lookup: what /catalog-sync/api/products/{sku} reads from the snapshot
  (the listed columns by index probe, then the payloads from Parquet), 100 random SKUs;
* name-substring search: the Synced products search box (count + first page), 100 words.

Reports p50/p95/max in ms and the process's peak RSS to
benchmarks/results/bench_ui_queries-<stamp>.json and bench_ui_queries-latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from catalog_sync.state.location import StateLocation
from catalog_sync.state.snapshot import SNAPSHOT_ROW_GROUP_SIZE, Manifest, SnapshotStore
from catalog_sync.ui.synced_products import SyncedProducts

HERE = Path(__file__).resolve().parent
WORDS = ["Running", "Yoga", "Shoe", "Jacket", "Bottle", "Cotton", "Wool", "Lyon", "Oslo", "Kyoto", "Denim", "Trail",
         "Merino", "Linen", "Bag", "Cap", "Sock", "Short", "Tee", "Hoodie"]


def build_state(items: int) -> Path:
    state = HERE / ".cache" / f"ui-state-{items}"
    if (state / "manifest.json").exists():
        return state
    (state / "snapshot").mkdir(parents=True, exist_ok=True)
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    con = duckdb.connect(config={"memory_limit": "1GB"})
    con.execute(f"""
        COPY (
          WITH base AS (
            SELECT i // 2 AS pid, CASE WHEN i % 2 = 0 THEN 'default' ELSE 'fr' END AS view,
                   {words}[(hash(i // 2) % 20)::INT + 1] || ' ' || {words}[(hash(i // 2 + 7) % 20)::INT + 1] || ' '
                     || {words}[(hash(i // 2 + 13) % 20)::INT + 1] || ' ' || (i // 2)::VARCHAR AS name
            FROM range({items}) t(i))
          SELECT pid + 1 AS product_id, printf('SKU-%08d', pid + 1) AS sku, view AS store_view_code,
                 sha1(name || view) AS content_hash,
                 to_json({{'name': name, 'sku': printf('SKU-%08d', pid + 1), 'description': md5(name) || md5(name || 'a') || md5(name || 'b') || md5(name || 'c') || md5(name || 'd') || md5(name || 'e') || md5(name || 'f') || md5(name || 'g') || md5(name || 'h') || md5(name || 'i') || md5(name || 'j') || md5(name || 'k'),
                          'store_view_code': view}})::VARCHAR AS payload,
                 name, 'simple' AS type, 10.0 + pid % 500 AS price, 4 AS visibility,
                 '2026-11-20T10:00:00' AS source_updated_at, []::BIGINT[] AS linked_product_ids,
                 '2026-11-25T10:00:00+00:00' AS exported_at, 'bench' AS run_id
          FROM base ORDER BY hash(pid)  -- a commit writes items in no particular order
        ) TO '{state / "snapshot" / "v00000001.parquet"}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})""")
    SnapshotStore(StateLocation(str(state))).swap_manifest(
        Manifest(), "snapshot/v00000001.parquet", None, None, item_count=items, run_id="bench")
    return state


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
            "max_ms": round(ordered[-1], 2), "mean_ms": round(statistics.fmean(ordered), 2), "queries": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    state = build_state(args.items)
    products = SyncedProducts(str(state))
    started = time.perf_counter()
    products.manifest()
    load_s = time.perf_counter() - started
    assert products.count() == args.items

    rng = random.Random(7)
    skus = [f"SKU-{rng.randint(1, args.items // 2):08d}" for _ in range(args.queries)]
    lookup = []
    for sku in skus:
        t = time.perf_counter()
        listed, payloads = products.find_sku(sku), products.payloads(sku)
        lookup.append((time.perf_counter() - t) * 1000)
        assert len(listed) == 2 and len(payloads) == 2, sku
    search = []
    for n in range(args.queries):
        word = WORDS[n % len(WORDS)].lower()[: 3 + n % 3]
        t = time.perf_counter()
        page = products.search(word)
        search.append((time.perf_counter() - t) * 1000)
        assert page.total > 0 and len(page.rows) == 50
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__},
        "items": args.items, "first_load_s": round(load_s, 2),
        "sku_lookup": percentiles(lookup), "name_substring_search": percentiles(search),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "parquet_mib": round((state / "snapshot" / "v00000001.parquet").stat().st_size / 2**20),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (out / f"bench_ui_queries-{stamp}.json").write_text(json.dumps(result, indent=2))
    s, q = result["sku_lookup"], result["name_substring_search"]
    (out / "bench_ui_queries-latest.md").write_text(
        f"# Plugin page queries, {args.items:,} synced items ({result['when']}, {os.cpu_count()} cores)\n\n"
        "| query | p50 | p95 | max | goal (p95) |\n|---|---:|---:|---:|---:|\n"
        f"| exact-SKU lookup (listed columns + payloads) | {s['p50_ms']} ms | {s['p95_ms']} ms | {s['max_ms']} ms | 50 ms |\n"
        f"| name-substring search (count + first page) | {q['p50_ms']} ms | {q['p95_ms']} ms | {q['max_ms']} ms | 500 ms |\n\n"
        f"First load of the page's table: {result['first_load_s']} s; peak RSS {result['peak_rss_mib']} MiB; "
        f"snapshot file {result['parquet_mib']} MiB.\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
