"""Our snapshot layout (a base Parquet file plus delta files, state.snapshot) against Delta Lake
(the `deltalake` package) on the work an hourly run does to the snapshot:

- commit: apply a change of C items (upserts with new bodies, and deletes) to a feed of N items;
- scope read: the rows of a few thousand products (what diff reads), from the merged view;
- listing: the page's columns of every item (what the plugin page loads once per version);
- compaction: fold the deltas back into one base.

The items are shaped like the products feed: key, body (canonical JSON, ~`--body-bytes`),
sha1, product_id, sku, store_view_code and the listing columns. Both formats get the same Arrow
tables; each step is timed alone, best of `--reps`. Results: benchmarks/results/bench_table_format-*.json.

    make bench-table-format                    # 1,500,000 items (large: 300,000 products x 5 views), 11,300 changed
    .venv/bin/python benchmarks/bench_table_format.py --items 200000 --changed 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("RUST_LOG", "error")  # delta-rs's DataFusion warns about its own deprecations

from catalog_sync.state.snapshot import DELTA_SCHEMA, SNAPSHOT_ROW_GROUP_SIZE, SNAPSHOT_SCHEMA, feed_relation  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VIEWS = 5


def items(con: duckdb.DuckDBPyConnection, count: int, body_bytes: int, start: int = 0, tag: str = "v1") -> pa.Table:
    """`count` items of products start/VIEWS.. in VIEWS store views, bodies of about body_bytes."""
    pad = max(body_bytes - 120, 0)
    table = con.execute(f"""
        SELECT '{{"sku":"SKU-' || (i // {VIEWS}) || '","source":{{"locale":"l' || (i % {VIEWS}) || '"}}}}' AS key,
               '{{"name":"Product ' || (i // {VIEWS}) || ' {tag}","sku":"SKU-' || (i // {VIEWS}) || '","description":"'
                   || left(repeat(md5('{tag}' || i), {pad // 32 + 1}), {pad}) || '"}}' AS body,
               md5('{tag}' || i) AS sha1, (i // {VIEWS})::BIGINT AS product_id, 'SKU-' || (i // {VIEWS}) AS sku,
               'view_' || (i % {VIEWS}) AS store_view_code, NULL::VARCHAR AS judged_on, NULL::VARCHAR AS recheck_on,
               'Product ' || (i // {VIEWS}) || ' {tag}' AS name, 'simple' AS type, 10.0 + (i % 97) AS price,
               4::INTEGER AS visibility, '2026-12-01 00:00:00' AS source_updated_at, NULL::BIGINT[] AS linked_product_ids,
               '2026-12-01T00:00:00+00:00' AS exported_at, 'run-{tag}' AS run_id
        FROM range({start}, {start + count}) t(i)""").to_arrow_table()
    return table.cast(SNAPSHOT_SCHEMA)


def best(reps: int, step) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Ours:
    name = "catalog_sync base + deltas"

    def __init__(self, root: Path):
        self.root = root
        self.base = root / "base.parquet"
        self.deltas: list[Path] = []

    def write_base(self, table: pa.Table) -> None:
        pq.write_table(table, self.base, compression="zstd", row_group_size=SNAPSHOT_ROW_GROUP_SIZE)
        self.deltas = []

    def commit(self, upserts: pa.Table, deleted_keys: pa.Table) -> int:
        path = self.root / f"d{len(self.deltas) + 1:04d}.parquet"
        tombstones = pa.table({f.name: (deleted_keys["key"] if f.name == "key" else pa.nulls(deleted_keys.num_rows, f.type))
                               for f in SNAPSHOT_SCHEMA}, schema=SNAPSHOT_SCHEMA)
        rows = pa.concat_tables([upserts.append_column("deleted", pa.array([False] * upserts.num_rows)),
                                 tombstones.append_column("deleted", pa.array([True] * tombstones.num_rows))])
        pq.write_table(rows.cast(DELTA_SCHEMA), path, compression="zstd", row_group_size=SNAPSHOT_ROW_GROUP_SIZE)
        self.deltas.append(path)
        (self.root / "manifest.json.tmp").write_text(json.dumps({"deltas": [str(d) for d in self.deltas]}))
        os.replace(self.root / "manifest.json.tmp", self.root / "manifest.json")  # the commit point
        return path.stat().st_size

    def relation(self) -> str:
        return feed_relation(str(self.base), [str(d) for d in self.deltas])

    def scope_read(self, con, ids: list[int]) -> int:
        return con.execute(f"SELECT count(*), sum(length(body)) FROM {self.relation()} "
                           "WHERE product_id IN (SELECT unnest(?))", [ids]).fetchone()[0]

    def listing(self, con) -> int:
        return con.execute(f"SELECT count(*) FROM (SELECT product_id, sku, store_view_code, name, type, price, visibility, "
                           f"exported_at, run_id FROM {self.relation()})").fetchone()[0]

    def compact(self, con) -> None:
        out = self.root / "base2.parquet"
        con.execute(f"COPY (SELECT * FROM {self.relation()}) TO '{out}' "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {SNAPSHOT_ROW_GROUP_SIZE})")
        os.replace(out, self.base)
        self.deltas = []


class DeltaLake:
    name = "Delta Lake (deltalake)"

    def __init__(self, root: Path):
        import deltalake

        self.dl = deltalake
        self.root = root / "delta"

    def write_base(self, table: pa.Table) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.dl.write_deltalake(str(self.root), table, mode="overwrite")

    def commit(self, upserts: pa.Table, deleted_keys: pa.Table) -> int:
        before = folder_bytes(self.root)
        table = self.dl.DeltaTable(str(self.root))
        (table.merge(upserts, predicate="t.key = s.key", source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
        table = self.dl.DeltaTable(str(self.root))
        table.merge(deleted_keys, predicate="t.key = s.key", source_alias="s", target_alias="t") \
            .when_matched_delete().execute()
        return folder_bytes(self.root) - before

    def dataset(self):
        return self.dl.DeltaTable(str(self.root)).to_pyarrow_dataset()

    def scope_read(self, con, ids: list[int]) -> int:
        dataset = self.dataset()  # noqa: F841 - DuckDB reads it by name
        return con.execute("SELECT count(*), sum(length(body)) FROM dataset WHERE product_id IN (SELECT unnest(?))",
                           [ids]).fetchone()[0]

    def listing(self, con) -> int:
        dataset = self.dataset()  # noqa: F841
        return con.execute("SELECT count(*) FROM (SELECT product_id, sku, store_view_code, name, type, price, visibility, "
                           "exported_at, run_id FROM dataset)").fetchone()[0]

    def compact(self, con) -> None:
        table = self.dl.DeltaTable(str(self.root))
        table.optimize.compact()
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def measure(fmt, con, base: pa.Table, runs: list[tuple[pa.Table, pa.Table]], scope: list[int], reps: int) -> dict:
    result: dict = {"format": fmt.name}
    started = time.perf_counter()
    fmt.write_base(base)
    result["write_base_s"] = round(time.perf_counter() - started, 3)
    commits, written = [], []
    for upserts, deletes in runs:
        started = time.perf_counter()
        written.append(fmt.commit(upserts, deletes))
        commits.append(round(time.perf_counter() - started, 3))
    result["commit_s"] = commits
    result["commit_bytes"] = written
    result["scope_read_s"] = round(best(reps, lambda: fmt.scope_read(con, scope)), 3)
    result["listing_s"] = round(best(reps, lambda: fmt.listing(con)), 3)
    result["rows_in_scope"] = fmt.scope_read(con, scope)
    result["rows"] = fmt.listing(con)
    started = time.perf_counter()
    fmt.compact(con)
    result["compact_s"] = round(time.perf_counter() - started, 3)
    result["rows_after_compaction"] = fmt.listing(con)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_500_000, help="items in the feed (default 1500000: large)")
    parser.add_argument("--changed", type=int, default=11_300, help="items each commit changes (default 11300: large's 1%%)")
    parser.add_argument("--deleted", type=int, default=50, help="items each commit deletes (default 50)")
    parser.add_argument("--commits", type=int, default=3, help="commits in a row before the reads (default 3)")
    parser.add_argument("--body-bytes", type=int, default=700, help="bytes per body (default 700)")
    parser.add_argument("--scope", type=int, default=3000, help="products the scope read asks for (default 3000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each read; the best is kept (default 3)")
    args = parser.parse_args(argv)

    con = duckdb.connect()
    base = items(con, args.items, args.body_bytes)
    runs = []
    for n in range(args.commits):
        start = (n * 7919 * VIEWS) % max(args.items - args.changed, 1)
        upserts = items(con, args.changed, args.body_bytes, start=start, tag=f"v{n + 2}")
        gone = items(con, args.deleted, args.body_bytes, start=(start + args.changed * 3) % max(args.items - args.deleted, 1))
        runs.append((upserts, gone.select(["key"])))
    scope = list(range(0, args.items // VIEWS, max(args.items // VIEWS // args.scope, 1)))[: args.scope]

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-table-format-") as tmp:
        for fmt in (Ours(Path(tmp)), DeltaLake(Path(tmp))):
            results.append(measure(fmt, con, base, runs, scope, args.reps))
            print(json.dumps(results[-1]), flush=True)
    out = {"bench": "table_format", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "args": vars(args), "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_table_format-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
