"""Export benchmark: a full sync of the cached 100k x 2 demo catalog to the reference receiver.

    .venv/bin/python benchmarks/bench_export.py [--products 100000] [--rpm 0] [--rev REV]

Starts the receiver with schema validation off (so the sink is what is measured)
in its own process, runs `python -m catalog_sync sync` against it with the
client-side rate limit set by --rpm (0 lifts it; the default limit of 300
requests/minute makes 100k x 2 take about 12 minutes), and reports the export
stage's items/s and requests/s (from the receiver's counters) and the sync
process's peak RSS. Writes benchmarks/results/bench_export-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _catalog(products: int) -> Path:
    cached = sorted(p for p in (HERE / ".cache").glob(f"catalog-p{products}-v2-*.sqlite") if ".partial." not in p.name)
    if cached:
        return cached[-1]
    path = Path(tempfile.mkdtemp(prefix="cs-bench-export-")) / "catalog.sqlite"
    subprocess.run([sys.executable, "-m", "catalog_sync", "demo-catalog", "--db", f"sqlite:///{path}",
                    "--products", str(products), "--store-views", "2"], check=True)
    return path


def _engine(rev: str | None, work: Path) -> tuple[Path | None, str]:
    """The engine to sync with: `include/` of `rev` exported under `work` (None: the working tree), and its commit."""
    repo = HERE.parent
    if not rev:
        return None, "working tree at " + subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True,
                                                           capture_output=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=repo, text=True, capture_output=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "include"], cwd=repo, capture_output=True, check=True).stdout
    (work / "engine").mkdir()
    subprocess.run(["tar", "-x", "-C", str(work / "engine")], input=archive, check=True)
    print(f"[bench-export] engine: {rev} ({commit[:10]}), exported to {work / 'engine'}", file=sys.stderr)
    return work / "engine" / "include", commit[:10]


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--rpm", type=int, default=0, help="client-side requests/minute (0: no limit)")
    parser.add_argument("--rev", metavar="REV", help="sync with the engine as committed at this git revision (git archive); "
                                                     "the catalog and the receiver stay the working tree's, so before and "
                                                     "after send the same shop to the same receiver")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cs-bench-export-"))
    engine_path, engine_rev = _engine(args.rev, work)
    port = _free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "catalog_sync", "receiver", "--port", str(port), "--db",
                                 str(work / "receiver.db"), "--no-validate", "--token", "bench"])
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/_receiver/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        env = {**os.environ, "CATALOG_SYNC_TARGET_TOKEN": "bench", "CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE": str(args.rpm)}
        if engine_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(engine_path), os.environ.get("PYTHONPATH")]))
        # The export stage's own CPU (all threads of the sync process while `export` runs): the
        # sync process's whole-run CPU also holds extract, diff and commit.
        # (catalog_sync.steps.sync is the CLI's chain; it calls the `export` it imported.)
        driver = ("import resource, sys, time; from catalog_sync.steps import sync as chain; from catalog_sync.cli import main; "
                  "_export = chain.export; cpu = []\n"
                  "def export(*a, **k):\n"
                  "    t = time.process_time(); r = _export(*a, **k); cpu.append(time.process_time() - t); return r\n"
                  "chain.export = export; code = main(sys.argv[1:]); "
                  "print('EXPORT_CPU_S', sum(cpu), file=sys.stderr); "
                  "print('PEAK_RSS_MIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr); "
                  "u = resource.getrusage(resource.RUSAGE_SELF); print('CPU_S', u.ru_utime + u.ru_stime, file=sys.stderr); "
                  "sys.exit(code)")
        receiver_idle_cpu_s = _cpu_seconds(receiver.pid)  # start-up and imports, before any request
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", driver, "sync", "--source-url", f"sqlite:///{_catalog(args.products)}",
                              "--target-url", f"http://127.0.0.1:{port}/bench", "--state-url", str(work / "state")],
                             env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if out.returncode != 0:
            raise SystemExit(f"the sync exited {out.returncode}:\n{out.stderr[-3000:]}")
        export = re.search(r"export: sent (\d+) item\(s\) .* in ([0-9.]+)s \(([0-9]+) items/s\)", out.stderr)
        stats = requests.get(f"http://127.0.0.1:{port}/_receiver/stats", timeout=30).json()
        receiver_cpu_s = _cpu_seconds(receiver.pid)
    finally:
        receiver.terminate()
        receiver.wait(timeout=20)
    contract_requests = sum(sum(v.values()) for v in stats["requests"].values())
    items, seconds = int(export.group(1)), float(export.group(2))
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "products": args.products, "engine_rev": engine_rev,
        "rpm_limit": args.rpm, "items": items, "export_seconds": seconds, "items_per_s": items / seconds,
        "requests": contract_requests, "requests_per_s": contract_requests / seconds, "sync_wall_s": wall,
        "peak_rss_mib": float(re.search(r"PEAK_RSS_MIB ([0-9.]+)", out.stderr).group(1)),
        # Whole processes (the sync's extract, diff and commit included): where the CPU went.
        "sync_process_cpu_s": float(re.search(r"^CPU_S ([0-9.]+)", out.stderr, re.M).group(1)),
        "receiver_process_cpu_s": receiver_cpu_s,
        "receiver_cpu_during_sync_s": receiver_cpu_s - receiver_idle_cpu_s,
        "export_stage_cpu_s": float(re.search(r"EXPORT_CPU_S ([0-9.]+)", out.stderr).group(1)),
        "summary": json.loads(out.stdout.strip().splitlines()[-1]),
    }
    (HERE / "results").mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (HERE / "results" / f"bench_export-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
