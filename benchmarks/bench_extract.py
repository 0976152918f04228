"""Extraction benchmark: full extract of a demo catalog in MariaDB (issue: 300k x 2 and 30k x 2).

    .venv/bin/python benchmarks/bench_extract.py [--products 300000 30000] [--store-views 2]

For each size it generates the catalog once into the MariaDB database
`cs_bench_<thousands>k` (kept between runs: generation of 300k takes
minutes), then runs plan + extract in a fresh subprocess and records the
wall time, feed records/s and the subprocess's peak RSS. Results go to
benchmarks/results/bench_extract-<timestamp>.json and bench_extract-latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MARIADB = os.environ.get("CATALOG_SYNC_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")

# Runs in the subprocess: plan + extract only, then prints its numbers as JSON.
_DRIVER = """
import json, resource, sys, tempfile, time
from catalog_sync import steps
from catalog_sync.steps import SyncRequest
from catalog_sync.settings import SyncSettings
work = tempfile.mkdtemp(prefix="cs-bench-extract-")
settings = SyncSettings(source_url=sys.argv[1], target_url=f"file://{work}/target", state_url=f"{work}/state")
run = steps.plan(settings, SyncRequest("bench-extract"))
started = time.perf_counter()
counts = steps.extract(settings, run)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "products": counts["products"], "records": counts["records"],
                  "chunk_size": settings.chunk_size,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ensure_catalog(products: int, views: int) -> str:
    name = f"cs_bench_{products // 1000}k" + ("" if views == 2 else f"_{views}v")
    admin = sa.create_engine(f"{MARIADB}/?charset=utf8mb4")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    admin.dispose()
    url = f"{MARIADB}/{name}?charset=utf8mb4"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        have = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'catalog_product_entity'"
        ).scalar()
        count = conn.exec_driver_sql("SELECT count(*) FROM catalog_product_entity").scalar() if have else 0
    engine.dispose()
    if count != products:
        print(f"[bench] generating {products:,} x {views} into {name} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "catalog_sync", "demo-catalog", "--db", url, "--products", str(products),
                        "--store-views", str(views)], check=True)
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, nargs="+", default=[300_000, 30_000])
    parser.add_argument("--store-views", type=int, default=2)
    args = parser.parse_args()
    runs = []
    for products in args.products:
        url = ensure_catalog(products, args.store_views)
        out = subprocess.run([sys.executable, "-c", _DRIVER, url], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["records_per_s"] = result["records"] / result["seconds"]
        runs.append(result)
        print(f"[bench] {products:,} x {args.store_views}: {result['records']:,} records in {result['seconds']:.2f} s "
              f"= {result['records_per_s']:,.0f} records/s, peak RSS {result['peak_rss_mib']:,.0f} MiB", file=sys.stderr)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "source": "MariaDB (demo catalog, connectorx reads)",
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"bench_extract-{stamp}.json").write_text(json.dumps(report, indent=2))
    lines = ["# Extraction benchmark (latest)", "", f"Run {report['when']} on {os.cpu_count()} cores; "
             "full extract (plan + extract) in a fresh process, MariaDB on the same machine.", "",
             "| products x views | feed records | seconds | records/s | peak RSS |", "|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['products']:,} x {args.store_views} | {r['records']:,} | {r['seconds']:.2f} | "
                     f"{r['records_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} MiB |")
    (RESULTS / "bench_extract-latest.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
