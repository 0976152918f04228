#!/usr/bin/env python3
"""Catalog Sync benchmark: a full sync, a full reconcile, and incremental syncs of a generated demo catalog.

    make bench                                   # 100,000 products x 2 store views, file target
    make bench ARGS="--products 5000"            # a quick run
    make bench ARGS="--profile large"            # Magento's performance-toolkit profile: 300,000 x 5, receiver target
    make bench ARGS="--source mariadb"           # the catalog in MariaDB (root@127.0.0.1:3306), not SQLite
    .venv/bin/python benchmarks/bench_sync.py --help

Steps (see benchmarks/README.md for what each number means):

 1. Generate the demo catalog into SQLite once; it is cached in benchmarks/.cache/, keyed by the
    parameters and a hash of the generator's code. Every run works on a copy of it. With --source mariadb:
    once per key into a MariaDB database bench_<key> (complete once its bench_meta row is written), which
    every run changes in place: its renames carry a tag of the run, so each run renames as many products again.
 2. Full sync (first sync, empty snapshot) in its own process: a driver that runs `pipeline.run_sync`
    (what the CLI runs) with the step functions it calls (plan/extract/diff/export/commit/report)
    wrapped in timers. The process reports its own peak RSS (getrusage RUSAGE_SELF) at exit.
 3. The real CLI (`python -m catalog_sync sync ...`) once, for the same full sync into a separate
    state folder and target, to show the CLI's end-to-end time matches the driver's.
 4. A full reconcile (`sync --full`) with nothing changed, in its own process, like step 2.
 5. Changes through SQL (product names, store 0: a share of the products, or exact counts with --changes),
    so Magento's changelog triggers record them; after each, an incremental sync in its own process.
    (MariaDB: the server's CPU during each run is reported apart from the noise when it runs on this machine.)
 6. Diff vs a bare DuckDB join of the same Parquet inputs, best of N each, in a process of its own
    right after the run whose inputs it diffs: the full reconcile's and each incremental's.
 7. Results: benchmarks/results/bench_sync-<YYYYmmdd-HHMMSS>.json and benchmarks/results/latest.md.

Targets (--target): `file` (JSONL files) or `receiver`, the bundled reference receiver
(`python -m catalog_sync receiver --no-validate`) in its own process on this machine, the client-side
rate limit lifted (CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE=0); its CPU during each run is reported.

This file is also its own worker: `bench_sync.py _worker KIND CONFIG.json OUT.json` runs one
measured step in a fresh process. Only the standard library is imported at the top, so the
orchestrator stays small and imports nothing of the engine.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
DEFAULT_ENGINE_ROOT = REPO / "include"
ENGINE_ROOT = DEFAULT_ENGINE_ROOT  # the folder holding the catalog_sync package to measure (--engine)
# The package whose demo generator makes the catalog: the working tree's by default, so that every
# engine measured (--rev) syncs the same catalog; --catalog-generator engine uses the measured one's.
GENERATOR_ROOT = DEFAULT_ENGINE_ROOT
# Files whose changes make a cached catalog stale.
GENERATOR_SOURCES = ("demo/generator.py", "demo/triggers.py", "demo/commerce_layout.py", "magento/schema.py")

NAME_ATTRIBUTE_ID = 73  # catalog_product name (eav_attribute), a varchar attribute
# Magento's performance-toolkit profiles (setup/performance-toolkit/profiles/ce/<name>.xml): simple_products
# x store_views, with websites = store groups = store views (the demo generator's own_websites layout).
PROFILES = {"medium": (24_000, 3), "large": (300_000, 5), "extra_large": (600_000, 5)}
PROFILE_CHANGES = (3000, 300)  # products renamed before each incremental sync, the same at every profile
RECEIVER_TOKEN = "bench"
# --source mariadb: the server (no database in the URL) holding one bench_<key> database per catalog key.
DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"
MARIADB_META = "bench_meta"  # the generated database's completion mark: one row with its key and generation facts
STAGES = ("plan", "extract", "diff", "export_catalog", "export", "commit", "report")

# The CLI exactly as `python -m catalog_sync` runs it, plus its own peak RSS written at exit.
CLI_WRAPPER = """\
import json, os, resource, sys, time
started = time.perf_counter()
from catalog_sync.cli import main
rc = main(sys.argv[1:])
with open(os.environ["BENCH_RUSAGE_OUT"], "w") as fh:
    json.dump({"rc": rc, "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "in_process_s": time.perf_counter() - started}, fh)
sys.exit(rc)
"""


# ==================================================================================== workers
# Each runs in a fresh `python bench_sync.py _worker ...` process, so its ru_maxrss is its own.


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB


def _current_rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants now (Linux /proc); 0 once it is gone."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _tree_rss_kb(int(child))
    except (OSError, ValueError):
        pass
    return total


class TreeRssSampler:
    """The peak of the process tree's summed RSS, sampled every `interval` seconds: ru_maxrss cannot
    give it (a worker's ru_maxrss includes its parent's pages mapped before it called exec)."""

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval, self.peak_kb = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeRssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _worker_generate(cfg: dict) -> dict:
    started = time.perf_counter()
    from catalog_sync.demo.generator import generate_demo_catalog

    imported = time.perf_counter()
    # Only the options asked for reach the generator, so older generators (--catalog-generator engine) still run.
    options = {"edition": cfg["edition"]} if cfg.get("edition", "open_source") != "open_source" else {}
    if cfg.get("own_websites"):
        options["own_websites"] = True
    summary = generate_demo_catalog(cfg["db_url"], cfg["products"], cfg["store_views"], cfg["seed"], **options)
    return {
        "seconds": time.perf_counter() - imported,
        "import_s": imported - started,
        "summary": summary.__dict__,
        "ru_maxrss_kb": _peak_rss_kb(),
    }


def _engine_chain():
    """(the module whose step functions run_sync calls, SyncRequest, the step names it has): the engine
    as laid out now (catalog_sync.steps.sync), or as earlier revisions were (catalog_sync.pipeline)."""
    try:
        from catalog_sync.steps import SyncRequest
        from catalog_sync.steps import sync as chain
    except ImportError:
        try:
            from catalog_sync.steps import pipeline as chain  # the layout before feeds
        except ImportError:
            from catalog_sync import pipeline as chain  # the original layout
        SyncRequest = chain.SyncRequest
    return chain, SyncRequest, [name for name in STAGES if hasattr(chain, name)]


def _tree_bytes(root: Path, pattern: str = "**/*.parquet") -> int:
    return sum(p.stat().st_size for p in root.glob(pattern) if p.is_file())


def _worker_drive(cfg: dict) -> dict:
    """One sync through `run_sync`, the CLI's code path, with each step function it calls timed.

    The step functions (plan, extract, diff, export_catalog, export, commit, report) are wrapped in
    the module run_sync calls them from; whatever the engine does between the steps is in the total.
    """
    import logging

    started = time.perf_counter()
    chain, SyncRequest, stage_names = _engine_chain()
    from catalog_sync.settings import SyncSettings

    import_s = time.perf_counter() - started
    rss_after_imports = _peak_rss_kb()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    settings = SyncSettings.from_env(source_url=cfg["source_url"], target_url=cfg["target_url"],
                                     state_url=cfg["state_url"], chunk_size=cfg.get("chunk_size"))
    stages: dict[str, float] = {}
    counts: dict[str, object] = {}
    files: dict[str, int] = {}
    peak_after: dict[str, int] = {}  # the process's peak RSS so far, after each stage: where it jumps, that stage set it
    rss_after: dict[str, int | None] = {}  # resident memory right after each stage (what the stage left behind)
    state: dict[str, object] = {}

    def staging_dir() -> Path:
        return Path(cfg["state_dir"]) / state["run"].staging

    def after(name: str, result) -> None:
        """Untimed bookkeeping after a step: its counts, file sizes, and the diff's inputs kept aside."""
        if name == "plan":
            state["run"] = result
        elif name == "extract":
            counts["extract"] = result
            files["extract.parquet"] = _tree_bytes(staging_dir(), "extract*.parquet")
        elif name == "diff":
            counts["diff"] = result.to_dict() if hasattr(result, "to_dict") else result
            files["delta.parquet"] = _tree_bytes(staging_dir(), "delta*") + _tree_bytes(staging_dir(), "delta/*.parquet")
            # report() removes the staging folder; the diff-vs-join step needs its inputs
            shutil.copytree(staging_dir(), cfg["keep_inputs"], dirs_exist_ok=True)
        elif name in ("export", "export_catalog"):
            counts[name] = result
            counts["sent"] = counts.get("sent", 0) + result["sent"]
        elif name == "commit":
            counts["commit"] = result
        elif name == "report":
            state["summary"] = result

    def timed(name: str, fn):
        def step(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                # export_catalog runs twice (before and after the buckets): its times add up
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
                peak_after[name] = _peak_rss_kb()
                rss_after[name] = _current_rss_kb()
            after(name, result)
            return result
        return step

    for name in stage_names:
        setattr(chain, name, timed(name, getattr(chain, name)))
    request = SyncRequest(SyncRequest.new_run_id("bench"), full=cfg.get("full", False))
    total_started = time.perf_counter()
    with TreeRssSampler() as tree:
        summary = chain.run_sync(settings, request)
    total_s = time.perf_counter() - total_started
    run = state["run"]
    files["target"] = _tree_bytes(Path(cfg["target_dir"]), "**/*.jsonl")
    files["snapshot"] = _tree_bytes(Path(cfg["state_dir"]) / "snapshot")
    manifest_path = Path(cfg["state_dir"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if "export_catalog" in stages:  # one "export" stage, as in engines before feeds
        stages["export"] = stages.get("export", 0.0) + stages.pop("export_catalog")
    return {
        "run_id": run.run_id,
        "chunk_size": settings.chunk_size,
        "mode": run.mode,
        "mode_reason": run.mode_reason,
        "plan": run.to_dict(),
        "stages_s": stages,
        "total_s": total_s,
        "import_s": import_s,
        "counts": counts,
        "summary": summary,
        "files_bytes": files,
        "snapshot_version": manifest.get("version"),
        "ru_maxrss_kb": _peak_rss_kb(),
        # The sync's processes together (diff maps a large bucket in worker processes), sampled.
        "tree_peak_rss_kb": tree.peak_kb,
        "rss_after_imports_kb": rss_after_imports,
        "peak_rss_after_stage_kb": peak_after,
        "rss_after_stage_kb": rss_after,
        "error": summary.get("error"),
    }


def _lit(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _engine_diff():
    """(diff one case, its inputs' paths, the join's key): the feed diff (`compare`) of the engine as laid
    out now, or the record diff (`compute_delta`) of earlier revisions."""
    try:
        from catalog_sync.steps.diff import FeedInputs, compare

        def run(case: dict):
            i = case["inputs"]
            scope = (f"product_id IN (SELECT product_id FROM read_parquet({_lit(i['scope'])})) OR key IN (SELECT key FROM e)"
                     if i.get("scope") else "true")
            return compare(FeedInputs(i["items"], i["delta"], i["snapshot"], i["pending"], snapshot_scope=scope,
                                      records=i.get("records")))

        return run, ("key",), "sha1"
    except ImportError:
        try:
            from catalog_sync.steps.diff import DiffInputs, compute_delta
        except ImportError:
            from catalog_sync.diff import DiffInputs, compute_delta

        def run(case: dict):
            i = case["inputs"]
            return compute_delta(DiffInputs(i["items"], i["delta"], i["snapshot"], i["pending"], scope_path=i.get("scope")))

        return run, ("sku", "store_view_code"), "content_hash"


def _worker_ratio(cfg: dict) -> dict:
    """Our diff vs a bare DuckDB full outer join of the same inputs, best of N, interleaved."""
    import duckdb

    run_diff, key, digest = _engine_diff()
    try:  # the baselines run with the DuckDB settings the engine's diff uses (memory cap, threads)
        from catalog_sync.state.duckdb_session import connect
    except ImportError:
        try:
            from catalog_sync.duckdb_session import connect
        except ImportError:  # engines before duckdb_session: DuckDB's defaults, as their diff
            connect = duckdb.connect
    with connect() as con:
        duckdb_settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('memory_limit', 'threads', 'preserve_insertion_order', 'temp_directory')"
        ).fetchall())

    reps = cfg["reps"]
    out: dict[str, dict] = {}
    for case in cfg["cases"]:
        inputs = case["inputs"]
        work = Path(case["work_dir"])
        work.mkdir(parents=True, exist_ok=True)
        snapshot = f"read_parquet({_lit(inputs['snapshot'])})"
        if inputs.get("scope"):  # the incremental diff compares only the snapshot rows of the products in scope
            snapshot = (f"(SELECT * FROM {snapshot} WHERE product_id IN "
                        f"(SELECT product_id FROM read_parquet({_lit(inputs['scope'])})))")
        on = " AND ".join(f"e.{k} = s.{k}" for k in key)
        join = (f"SELECT e.*, s.{digest} AS snapshot_{digest} FROM read_parquet({_lit(inputs['items'])}) e "
                f"FULL OUTER JOIN {snapshot} s ON {on}")
        baselines = {
            # The baseline of record: the bare join, every row materialized.
            "join_all_rows": f"COPY ({join}) TO {_lit(str(work / 'join_all.parquet'))} (FORMAT parquet, COMPRESSION zstd)",
            # For information: the same join keeping only the rows whose hash differs (the delta's size).
            "join_changed_rows": (f"COPY ({join} WHERE e.{digest} IS DISTINCT FROM s.{digest}) "
                                  f"TO {_lit(str(work / 'join_changed.parquet'))} (FORMAT parquet, COMPRESSION zstd)"),
        }
        times: dict[str, list[float]] = {"diff": [], **{name: [] for name in baselines}}
        counts = None
        for _ in range(reps):  # interleaved, so drift (page cache, CPU clock) hits all alike
            t0 = time.perf_counter()
            counts = run_diff(case)
            times["diff"].append(time.perf_counter() - t0)
            for name, sql in baselines.items():
                # Each side opens its DuckDB connection inside the timing, as the diff step does (~15 ms here).
                t0 = time.perf_counter()
                con = connect()
                con.execute(sql)
                times[name].append(time.perf_counter() - t0)
                con.close()
        rows = {}
        with duckdb.connect() as con:
            rows["delta"] = con.execute(f"SELECT count(*) FROM read_parquet({_lit(inputs['delta'])})").fetchone()[0]
            rows["join_all_rows"] = con.execute(f"SELECT count(*) FROM read_parquet({_lit(str(work / 'join_all.parquet'))})").fetchone()[0]
            rows["join_changed_rows"] = con.execute(f"SELECT count(*) FROM read_parquet({_lit(str(work / 'join_changed.parquet'))})").fetchone()[0]
            rows["extract"] = con.execute(f"SELECT count(*) FROM read_parquet({_lit(inputs['items'])})").fetchone()[0]
            rows["snapshot_compared"] = con.execute(f"SELECT count(*) FROM {snapshot}").fetchone()[0]
        best = {name: min(values) for name, values in times.items()}
        out[case["name"]] = {
            "description": case["description"],
            "times_s": times,
            "best_s": best,
            "ratio_diff_vs_join_all_rows": best["diff"] / best["join_all_rows"],
            "ratio_diff_vs_join_changed_rows": best["diff"] / best["join_changed_rows"],
            "rows": rows,
            "diff_counts": counts.__dict__ if hasattr(counts, "__dict__") else counts,
            "baseline_sql": {name: sql for name, sql in baselines.items()},
        }
    return {"reps": reps, "duckdb_settings": duckdb_settings, "cases": out, "ru_maxrss_kb": _peak_rss_kb()}


def _snapshot_items(run: dict) -> int:
    commit = run["counts"]["commit"]
    return sum(c["items"] for c in commit["feeds"].values()) if "feeds" in commit else commit["items"]


def _diff_inputs(kept: Path, state: Path, plan: dict, scoped: bool) -> dict:
    """The inputs of one diff case, from a run's kept staging folder and the plan it ran with."""
    if "base_feeds" in plan:  # feeds: the products feed
        base = plan["base_feeds"].get("products") or {}
        items = kept / "items" / "products-b000-w*.parquet"
        records = next(kept.glob("extract*.parquet"))
        snapshot, pending = base.get("file"), base.get("pending")
    else:
        items = records = next(kept.glob("extract*.parquet"))
        snapshot, pending = plan.get("base_snapshot"), plan.get("base_pending")
    scope = next(kept.glob("scope*.parquet"), None) if scoped else None
    return {"items": str(items), "records": str(records), "snapshot": str(state / snapshot) if snapshot else None,
            "pending": str(state / pending) if pending else None, "scope": str(scope) if scope else None}


WORKERS = {"generate": _worker_generate, "drive": _worker_drive, "ratio": _worker_ratio}


def _worker_main(argv: list[str]) -> int:
    kind, config_path, out_path = argv
    result = WORKERS[kind](json.loads(Path(config_path).read_text()))
    Path(out_path).write_text(json.dumps(result, indent=2, default=str))
    return 1 if result.get("error") else 0


# =============================================================================== orchestrator


# CATALOG_SYNC_* variables that would point a run elsewhere or carry secrets never reach the measured
# processes; tuning knobs (e.g. CATALOG_SYNC_DUCKDB_MEMORY_LIMIT) do, and the results list them.
_ENV_DROPPED = re.compile(r"URL|TOKEN|SECRET|PASSWORD|CREDENTIAL|KEY|CLIENT|ORG|IMS|TEST")


def passed_env() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("CATALOG_SYNC_") and not _ENV_DROPPED.search(k[13:])}


def _child_env(root: Path | None = None) -> dict[str, str]:
    """The environment of the measured processes (see _ENV_DROPPED), importing catalog_sync from `root`
    (default: the measured engine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_SYNC_")}
    env.update(passed_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root or ENGINE_ROOT), env.get("PYTHONPATH")]))
    return env


class BenchFailed(Exception):
    """A measured run failed; the work folder is kept for a look."""


def _system_busy_s() -> float | None:
    """CPU seconds all processes of the machine used so far (/proc/stat; steal counts as busy)."""
    try:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --source mariadb with the server on this machine: its process id, so that its CPU time during each measured
# process is reported on its own (the sync's queries run there) rather than as noise. Set by main.
SOURCE_SERVER_PID: int | None = None


def _source_server_cpu_s() -> float | None:
    try:
        return _proc_cpu_s(SOURCE_SERVER_PID) if SOURCE_SERVER_PID else None
    except (OSError, ValueError, IndexError):
        return None


class Noise:
    """How much CPU other processes used while a measured process ran: the machine's busy time minus the child's
    (and minus the receiver's, a measured process too, when `peer_cpu_s` reads its CPU time, and the local MariaDB
    source server's, SOURCE_SERVER_PID: the queries it answers, the sync's and any other client's)."""

    def __init__(self, peer_cpu_s=None):
        self.peer_cpu_s = peer_cpu_s
        self.peer_delta_s = None
        self.server_delta_s = None

    def __enter__(self) -> "Noise":
        self.busy, self.child = _system_busy_s(), _children_cpu_s()
        self.peer = self.peer_cpu_s() if self.peer_cpu_s else None
        self.server = _source_server_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        busy = _system_busy_s()
        self.child_cpu_s = _children_cpu_s() - self.child
        if self.peer_cpu_s:
            self.peer_delta_s = self.peer_cpu_s() - self.peer
        server = _source_server_cpu_s()
        if server is not None and self.server is not None:
            self.server_delta_s = server - self.server
        measured = self.child_cpu_s + (self.peer_delta_s or 0.0) + (self.server_delta_s or 0.0)
        self.other_cpu_s = None if busy is None or self.busy is None else max(0.0, busy - self.busy - measured)


class Receiver:
    """The bundled reference receiver (the working tree's, whatever engine is measured), schema validation off,
    in its own process on this machine; its CPU time from /proc."""

    def __init__(self, tmp: Path):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.db, self.log = tmp / "receiver.db", tmp / "receiver.log"
        self.url = f"http://127.0.0.1:{self.port}/bench"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "catalog_sync", "receiver", "--port", str(self.port), "--db", str(self.db),
                 "--no-validate", "--token", RECEIVER_TOKEN, "--log-level", "warning"],
                env=_child_env(DEFAULT_ENGINE_ROOT), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        for _ in range(300):
            try:
                self._get("health")
                break
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            self.stop()
            raise BenchFailed(f"the receiver did not answer\nits log: {self.log}")
        if self.proc.poll() is not None:
            raise BenchFailed(f"the receiver exited {self.proc.returncode}\nits log: {self.log}")
        self.startup_cpu_s = self.cpu_s()

    def _get(self, what: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_receiver/{what}", timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def requests(self) -> int:
        """Requests the receiver answered so far, every route."""
        return sum(sum(by_status.values()) for by_status in self._get("stats")["requests"].values())

    def stats(self) -> dict:
        return self._get("stats")

    def cpu_s(self) -> float:
        """user + system CPU time of the receiver process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def env(self, rpm: int) -> dict[str, str]:
        """What the syncing process needs to send to it: the token, and the client-side rate limit (0: none)."""
        return {"CATALOG_SYNC_TARGET_TOKEN": RECEIVER_TOKEN, "CATALOG_SYNC_MAX_REQUESTS_PER_MINUTE": str(rpm)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _run_worker(kind: str, config: dict, tmp: Path, label: str, receiver: Receiver | None = None,
                env: dict[str, str] | None = None) -> dict:
    """One worker in a fresh process. With `receiver`, its CPU time and requests during the run are recorded too."""
    cfg_path, out_path, err_path = tmp / f"{label}.config.json", tmp / f"{label}.out.json", tmp / f"{label}.stderr.log"
    cfg_path.write_text(json.dumps(config, indent=2))
    requests_before = receiver.requests() if receiver else None
    started = time.perf_counter()
    with open(err_path, "wb") as err, Noise(receiver.cpu_s if receiver else None) as noise:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_worker", kind, str(cfg_path), str(out_path)],
                              env={**_child_env(GENERATOR_ROOT if kind == "generate" else None), **(env or {})}, stdout=err,
                              stderr=subprocess.STDOUT, cwd=REPO)
    wall = time.perf_counter() - started
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    if proc.returncode != 0 or not result or result.get("error"):
        sys.stderr.write(_tail(err_path))
        failed_stage = next(iter(reversed([k for k in result.get("stages_s", {}) if k != "report"])), None)
        detail = f" in {failed_stage}: {result['error']}" if result.get("error") else f" (exit {proc.returncode})"
        raise BenchFailed(f"the {label} run failed{detail}\nits log: {err_path}")
    result.update(process_wall_s=wall, process_cpu_s=noise.child_cpu_s, other_processes_cpu_s=noise.other_cpu_s)
    if noise.server_delta_s is not None:
        result["source_server_cpu_s"] = noise.server_delta_s
    if receiver:
        result.update(receiver_cpu_s=noise.peer_delta_s, receiver_requests=receiver.requests() - requests_before)
    return result


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) + "\n"


def _code_hash() -> str:
    digest = hashlib.sha256()
    for rel in GENERATOR_SOURCES:
        digest.update(rel.encode() + b"\0" + (GENERATOR_ROOT / "catalog_sync" / rel).read_bytes())
    return digest.hexdigest()[:12]


def _catalog_key_prefix(products: int, store_views: int, seed: int, edition: str, own_websites: bool) -> str:
    """The cache key without the generator's hash. The own-websites layout is marked before `-v`, so that
    globs for the default layout (`catalog-p<N>-v2-*`, bench_export.py's) never match it."""
    sites = "-ownsites" if own_websites else ""
    layout = "" if edition == "open_source" else f"-{edition}"
    return f"catalog-p{products}{sites}-v{store_views}-seed{seed}{layout}"


def ensure_catalog(products: int, store_views: int, seed: int, tmp: Path, edition: str = "open_source",
                   own_websites: bool = False) -> tuple[Path, dict]:
    """The cached demo catalog for these parameters; generated (and timed) on a cache miss."""
    CACHE.mkdir(parents=True, exist_ok=True)
    prefix = _catalog_key_prefix(products, store_views, seed, edition, own_websites)
    key = f"{prefix}-{_code_hash()}"
    db, meta_path = CACHE / f"{key}.sqlite", CACHE / f"{key}.json"
    if db.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        print(f"[bench] demo catalog: cached {db.relative_to(REPO)} (generated in {meta['seconds']:.1f}s on {meta['generated_at']})")
        return db, {**meta, "cached": True}
    partial = CACHE / f"{key}.partial.sqlite"
    for leftover in CACHE.glob(f"{key}.partial.sqlite*"):
        leftover.unlink()
    print(f"[bench] demo catalog: generating {products:,} products x {store_views} store views (seed {seed}"
          f"{', each view on its own website' if own_websites else ''}) ...", flush=True)
    result = _run_worker("generate", {"db_url": f"sqlite:///{partial}", "products": products,
                                      "store_views": store_views, "seed": seed, "edition": edition,
                                      "own_websites": own_websites}, tmp, "generate")
    for suffix in ("-wal", "-shm"):  # the generator's engine is disposed: the WAL is checkpointed
        side = Path(f"{partial}{suffix}")
        if side.exists() and side.stat().st_size == 0:
            side.unlink()
    if Path(f"{partial}-wal").exists():
        with sqlite3.connect(partial) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(partial, db)
    stale_name = re.compile(re.escape(prefix) + r"-[0-9a-f]{12}\.(sqlite|json)(-wal|-shm)?")
    for stale in CACHE.glob(f"{prefix}-*"):  # older generator code (the same layout only)
        if stale_name.fullmatch(stale.name) and not stale.name.startswith(key):
            stale.unlink()
    meta = {
        "seconds": result["seconds"],
        "process_wall_s": result["process_wall_s"],
        "ru_maxrss_kb": result["ru_maxrss_kb"],
        "summary": result["summary"],
        "db_bytes": db.stat().st_size,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "key": key,
        "own_websites": own_websites,
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    print(f"[bench] demo catalog: generated in {meta['seconds']:.1f}s, {meta['db_bytes'] / 2**20:.0f} MiB")
    return db, {**meta, "cached": False}


def copy_catalog(cached: Path, dest: Path) -> None:
    """A consistent copy through SQLite's backup API (whatever a -wal file beside the cache holds), synced to disk
    so its writeback does not compete with the first run."""
    src = sqlite3.connect(cached)  # read only by the backup; closing it removes any -wal/-shm it left
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())


class MariaDB:
    """The MariaDB server of `--source mariadb` (a `mysql+pymysql://user[:password]@host[:port]` URL, no database),
    reached from the orchestrator with PyMySQL (the engine's driver, imported only here)."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        if not parts.scheme.startswith(("mysql", "mariadb")) or parts.path.strip("/"):
            raise SystemExit(f"bench: --mariadb-url {url!r}: expected mysql+pymysql://user[:password]@host[:port], no database")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "127.0.0.1", parts.port or 3306
        self.user = urllib.parse.unquote(parts.username or "root")
        self.password = urllib.parse.unquote(parts.password or "")
        self.display = f"{self.host}:{self.port}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database, as the tests build it (utf8mb4)."""
        auth = urllib.parse.quote(self.user, safe="") + (":" + urllib.parse.quote(self.password, safe="") if self.password else "")
        return f"{self.scheme}://{auth}@{self.host}:{self.port}/{database}?charset=utf8mb4"

    def connect(self, database: str | None = None):
        import pymysql

        try:
            return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                   database=database, charset="utf8mb4")
        except pymysql.err.OperationalError as exc:
            raise SystemExit(f"bench: MariaDB at {self.display}: {exc}") from None

    def server_pid(self) -> int | None:
        """The server's process id when it runs on this machine and /proc shows it (for its CPU time), else None."""
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            return None
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and (proc / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    _proc_cpu_s(int(proc.name))
                    return int(proc.name)
            except (OSError, ValueError, IndexError):
                continue
        return None


def _proc_cpu_s(pid: int) -> float:
    """user + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mariadb_name(prefix: str) -> str:
    """The database of a catalog key prefix: catalog-p2000-ownsites-v5-seed42 -> bench_p2000_ownsites_v5_seed42
    (the generator's hash is appended: bench_..._<12 hex>)."""
    return "bench_" + re.sub(r"[^0-9A-Za-z_]", "_", prefix.removeprefix("catalog-"))


def ensure_mariadb_catalog(server: MariaDB, products: int, store_views: int, seed: int, tmp: Path,
                           edition: str = "open_source", own_websites: bool = False) -> tuple[str, dict]:
    """The database holding the demo catalog for these parameters (the SQLite cache's key): generated (and
    timed) once, into `bench_<key>`. A database without its completion mark (the bench_meta row of this key,
    written last) is half-generated and is generated anew. It is not copied per run: the runs' renames carry a
    tag of their own (see apply_change), so every run changes the same number of products again."""
    prefix = _catalog_key_prefix(products, store_views, seed, edition, own_websites)
    key = f"{prefix}-{_code_hash()}"
    base = _mariadb_name(prefix)
    name = f"{base}_{key.rsplit('-', 1)[1]}"
    con = server.connect()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (name, MARIADB_META))
            if cur.fetchone()[0]:
                cur.execute(f"SELECT meta FROM `{name}`.`{MARIADB_META}` WHERE `key` = %s", (key,))
                row = cur.fetchone()
                if row:
                    meta = json.loads(row[0])
                    print(f"[bench] demo catalog: MariaDB database {name} on {server.display} (generated in "
                          f"{meta['seconds']:.1f}s on {meta['generated_at']})")
                    return server.url(name), {**meta, "cached": True}
            print(f"[bench] demo catalog: generating {products:,} products x {store_views} store views (seed {seed}"
                  f"{', each view on its own website' if own_websites else ''}) into MariaDB database {name} ...", flush=True)
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")  # half-generated, if there
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    finally:
        con.close()
    result = _run_worker("generate", {"db_url": server.url(name), "products": products, "store_views": store_views,
                                      "seed": seed, "edition": edition, "own_websites": own_websites}, tmp, "generate")
    con = server.connect(name)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = %s", (name,))
            meta = {
                "seconds": result["seconds"],
                "process_wall_s": result["process_wall_s"],
                "ru_maxrss_kb": result["ru_maxrss_kb"],
                "summary": result["summary"],
                "db_bytes": int(cur.fetchone()[0]),
                "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "key": key,
                "database": name,
                "own_websites": own_websites,
            }
            cur.execute(f"CREATE TABLE `{MARIADB_META}` (`key` VARCHAR(255) PRIMARY KEY, meta LONGTEXT NOT NULL)")
            cur.execute(f"INSERT INTO `{MARIADB_META}` (`key`, meta) VALUES (%s, %s)", (key, json.dumps(meta)))
        con.commit()
        with con.cursor() as cur:  # older generator code (the same layout only)
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                        (base.replace("_", "\\_") + "\\_%",))
            stale_name = re.compile(re.escape(base) + r"_[0-9a-f]{12}")
            for (stale,) in cur.fetchall():
                if stale_name.fullmatch(stale) and stale != name:
                    print(f"[bench] dropping MariaDB database {stale} (an older generator's)", flush=True)
                    cur.execute(f"DROP DATABASE `{stale}`")
    finally:
        con.close()
    print(f"[bench] demo catalog: generated in {meta['seconds']:.1f}s, {meta['db_bytes'] / 2**20:.0f} MiB (data + indexes)")
    return server.url(name), {**meta, "cached": False}


def _mariadb_version(server: MariaDB) -> str:
    con = server.connect()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return cur.fetchone()[0]
    finally:
        con.close()


def apply_change(db, share: float | None, edition: str = "open_source", count: int | None = None,
                 offset: int = 0, tag: str | None = None) -> dict:
    """Rename products (store 0) through SQL, so the triggers fill the changelogs: every Nth (`share`), or
    exactly `count` of them, spread over the catalog (every (products // count)th, from `offset`, so that the
    changes of a run differ). On Adobe Commerce's layout the value rows are keyed by row_id, which the generated
    shop has equal to entity_id.

    `db`: a SQLite file (a fresh copy each run: " (bench edit)" is appended), or a MariaDB database ((MariaDB,
    name)), which every run changes in place: there the name becomes the original one plus " (bench <tag>)", an
    earlier run's tag replaced, so each run (a tag of its own) renames exactly as many products again and the
    names do not grow."""
    if isinstance(db, tuple):
        return _apply_change_mariadb(*db, share, edition, count, offset, tag or secrets.token_hex(4))
    key = "row_id" if edition == "commerce" else "entity_id"
    con = sqlite3.connect(db)
    try:
        products = con.execute("SELECT count(*) FROM catalog_product_entity").fetchone()[0]
        step = max(1, round(1 / share)) if count is None else max(1, products // count)
        rest = offset % step
        changelogs = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_cl' ESCAPE '\\'")]
        before = {cl: con.execute(f'SELECT count(*) FROM "{cl}"').fetchone()[0] for cl in changelogs}
        started = time.perf_counter()
        with con:
            if count is None:
                cur = con.execute(
                    "UPDATE catalog_product_entity_varchar SET value = value || ' (bench edit)' "
                    f"WHERE attribute_id = ? AND store_id = 0 AND {key} % ? = 0",
                    (NAME_ATTRIBUTE_ID, step),
                )
            else:
                cur = con.execute(
                    "UPDATE catalog_product_entity_varchar SET value = value || ' (bench edit)' "
                    f"WHERE attribute_id = ? AND store_id = 0 AND {key} IN ("
                    "SELECT entity_id FROM catalog_product_entity WHERE entity_id % ? = ? ORDER BY entity_id LIMIT ?)",
                    (NAME_ATTRIBUTE_ID, step, rest, count),
                )
            changed = cur.rowcount
        seconds = time.perf_counter() - started
        after = {cl: con.execute(f'SELECT count(*) FROM "{cl}"').fetchone()[0] for cl in changelogs}
    finally:
        con.close()
    return _change_facts(products, step, rest, count, changed, before, after, seconds)


def _change_facts(products: int, step: int, rest: int, count: int | None, changed: int, before: dict, after: dict,
                  seconds: float, **extra) -> dict:
    if count is not None and changed != count:
        raise BenchFailed(f"the change renamed {changed:,} products, not {count:,}")
    what = (f"every product with entity_id % {step} = 0" if count is None else
            f"the first {count:,} products with entity_id % {step} = {rest}")
    return {
        "what": f"name (attribute_id {NAME_ATTRIBUTE_ID}, store 0) of {what}",
        "step": step,
        "requested_count": count,
        "products_changed": changed,
        "share_of_products": changed / products if products else 0,
        "changelog_rows_added": {cl: after[cl] - before[cl] for cl in before if after[cl] != before[cl]},
        "seconds": seconds,
        **extra,
    }


def _apply_change_mariadb(server: MariaDB, database: str, share: float | None, edition: str, count: int | None,
                          offset: int, tag: str) -> dict:
    """apply_change on MariaDB, in place (see there). PyMySQL's rowcount is the rows changed (no FOUND_ROWS flag):
    the rows whose value the triggers see change."""
    key = "row_id" if edition == "commerce" else "entity_id"
    suffix = f" (bench {tag})"
    # The name before any bench tag, plus this run's: earlier runs' tags never pile up (varchar(255), strict mode).
    new_value = "CONCAT(SUBSTRING_INDEX(value, ' (bench ', 1), %s)"
    con = server.connect(database)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM catalog_product_entity")
            products = cur.fetchone()[0]
            step = max(1, round(1 / share)) if count is None else max(1, products // count)
            rest = offset % step
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME LIKE '%\\_cl' ORDER BY TABLE_NAME")  # no arguments: no % formatting
            changelogs = [r[0] for r in cur.fetchall()]

            def counts() -> dict[str, int]:
                out = {}
                for cl in changelogs:
                    cur.execute(f"SELECT count(*) FROM `{cl}`")
                    out[cl] = cur.fetchone()[0]
                return out

            before = counts()
            con.commit()  # the counts' snapshot ends: the UPDATE runs in a transaction of its own
            started = time.perf_counter()
            if count is None:
                changed = cur.execute(
                    f"UPDATE catalog_product_entity_varchar SET value = {new_value} "
                    f"WHERE attribute_id = %s AND store_id = 0 AND MOD({key}, %s) = 0",
                    (suffix, NAME_ATTRIBUTE_ID, step))
            else:  # MariaDB has no LIMIT in an IN subquery; it has in a derived table
                changed = cur.execute(
                    f"UPDATE catalog_product_entity_varchar SET value = {new_value} "
                    f"WHERE attribute_id = %s AND store_id = 0 AND {key} IN (SELECT entity_id FROM ("
                    "SELECT entity_id FROM catalog_product_entity WHERE MOD(entity_id, %s) = %s ORDER BY entity_id LIMIT %s"
                    ") AS picked)",
                    (suffix, NAME_ATTRIBUTE_ID, step, rest, count))
            con.commit()
            seconds = time.perf_counter() - started
            after = counts()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.close()
    return _change_facts(products, step, rest, count, changed, before, after, seconds, tag=tag,
                         renamed_to=f"<name before any bench tag>{suffix}")


LOGGED_STAGE = re.compile(r"catalog_sync\.pipeline: (extract|diff|export|report): .* in ([0-9.]+)s")


def run_cli_full(source_url: str, tmp: Path, chunk_size: int | None) -> dict:
    """The real CLI, end to end, on a fresh state folder: the same full sync as the driver's."""
    state, target = tmp / "cli-state", tmp / "cli-target"
    rusage_out, err_path = tmp / "cli.rusage.json", tmp / "cli.stderr.log"
    cmd = [sys.executable, "-c", CLI_WRAPPER, "sync", "--source-url", source_url,
           "--target-url", f"file://{target}", "--state-url", str(state)]
    if chunk_size:
        cmd += ["--chunk-size", str(chunk_size)]
    env = {**_child_env(), "BENCH_RUSAGE_OUT": str(rusage_out)}
    started = time.perf_counter()
    with open(err_path, "wb") as err, Noise() as noise:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(_tail(err_path))
        raise BenchFailed(f"the CLI sync failed (exit {proc.returncode})\nits log: {err_path}")
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    rusage = json.loads(rusage_out.read_text())
    logged = {m.group(1): float(m.group(2)) for m in LOGGED_STAGE.finditer(err_path.read_text(errors="replace"))}
    return {
        "command": "python -m catalog_sync sync --source-url ... --target-url file://... --state-url ...",
        "process_wall_s": wall,
        "process_cpu_s": noise.child_cpu_s,
        "other_processes_cpu_s": noise.other_cpu_s,
        "source_server_cpu_s": noise.server_delta_s,
        "in_process_s": rusage["in_process_s"],
        "summary": summary,
        "logged_stage_s": logged,
        "ru_maxrss_kb": rusage["ru_maxrss_kb"],
    }


# ----------------------------------------------------------------------------------- facts


def machine_facts() -> dict:
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu or platform.processor() or None,
        "mem_total_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": version("duckdb"),
        "pyarrow": version("pyarrow"),
        "sqlalchemy": version("SQLAlchemy"),
        "orjson": version("orjson"),
        "tmp_dir": tempfile.gettempdir(),
    }


def engine_hash() -> str:
    """A hash of the measured engine's Python sources, to tell runs of different code apart."""
    digest = hashlib.sha256()
    package = ENGINE_ROOT / "catalog_sync"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def export_rev(rev: str, dest: Path) -> str:
    """`git archive REV include` into dest; returns the commit's full hash."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"bench: --rev {rev}: {exc.stderr.strip()}") from None
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "include"], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def engine_facts(rev: str | None = None, rev_commit: str | None = None) -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    facts: dict[str, object] = {"path": str(ENGINE_ROOT), "source_hash": engine_hash(), "repo_commit": git("rev-parse", "--short", "HEAD"),
                                "rev": rev, "rev_commit": rev_commit}
    if ENGINE_ROOT.resolve() == DEFAULT_ENGINE_ROOT.resolve():
        status = git("status", "--porcelain", "--", "include")
        facts["uncommitted_changes"] = bool(status) if status is not None else None
    return facts


# ---------------------------------------------------------------------------------- output


def _mib(kb: int | None) -> str:
    return "" if kb is None else f"{kb / 1024:,.0f} MiB"


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value >= 0.1 else f"{value * 1000:,.1f} ms"


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f} µs"


def _int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _feed_counts(run: dict) -> dict[str, dict]:
    """The diff's counts per feed (" (products)" ...), or the one count of engines before feeds ("")."""
    d = run["counts"]["diff"]
    return {f" ({name})": counts for name, counts in d["feeds"].items()} if "feeds" in d else {"": d}


def _describe_engine(e: dict) -> str:
    if e.get("rev_commit"):
        return f"the engine as committed at git {e['rev_commit'][:10]} (`--rev {e['rev']}`)"
    if e["path"] == str(DEFAULT_ENGINE_ROOT.resolve()):
        return f"the repository's engine at git {e['repo_commit']}" + (" with uncommitted changes" if e.get("uncommitted_changes") else "")
    return f"the engine in `{e['path']}` (repository at git {e['repo_commit']})"


def _describe_source(source: dict | None) -> str:
    """The source of a run (results from before --source have none: theirs was SQLite)."""
    if source and source.get("kind") == "mariadb":
        return (f"**MariaDB source** ({source.get('server_version') or 'MariaDB'}, database `{source['database']}` on "
                f"{source['server']}, changed in place by each run)")
    return "**SQLite source**"


def render_markdown(r: dict) -> str:
    p, m, g = r["parameters"], r["machine"], r["generation"]
    runs, cli, e = r["runs"], r.get("cli_full"), r["engine"]
    labels = list(runs)
    receiver = p["target"] == "receiver"
    out = [
        "# Catalog Sync benchmark: latest results",
        "",
        f"Run {r['started_at']} (UTC) of {_describe_engine(e)}, sources hash {e['source_hash']}. "
        f"Raw numbers: `results/{r['result_file']}`. How to run and what is measured: `benchmarks/README.md`.",
        "",
    ]
    if e.get("changed_during_run"):
        out += ["**Warning: the engine's sources changed during this run; its runs may have measured different code.**", ""]
    layout = ("each store view on a website and store group of its own, every product on every website"
              if p.get("own_websites") else "the demo's default store layout")
    target = (f"the reference receiver (own process, validation off, client-side limit "
              f"{'lifted' if not p.get('rpm') else str(p['rpm']) + ' requests/minute'})" if receiver else "file target (JSONL)")
    out += [
        (f"Profile **{p['profile']}**: " if p.get("profile") else "")
        + f"**{p['products']:,} products x {p['store_views']} store views** "
        f"({g['summary']['feed_records']:,} feed records, {g['summary']['configurables']:,} configurables; {layout}), "
        f"{_describe_source(r.get('source'))}, {target}, local state folder, chunk size {runs['full']['chunk_size']:,}"
        f"{'' if p['chunk_size'] else ' (the engine default)'}.",
        "",
        "Settings from the environment: " + (", ".join(f"`{k}={v}`" for k, v in r["environment"].items()) or "none (engine defaults)") + ".",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']} |",
        f"| nproc | {m['nproc']} |",
        f"| memory | {m['mem_total_gib']} GiB |",
        f"| Python | {m['python']} |",
        f"| duckdb / pyarrow / SQLAlchemy | {m['duckdb']} / {m['pyarrow']} / {m['sqlalchemy']} |",
        f"| OS | {m['platform']} |",
        f"| load average (1 min) at start / end | {m['loadavg_1_5_15_at_start'][0]:.2f} / {m['loadavg_1_5_15_at_end'][0]:.2f} |",
        "",
        "## Runs (each in its own process, one after the other, on the same state folder)",
        "",
    ]
    for label, change in r["changes"].items():
        out.append(f"- before `{label}`: {change['what']}: {change['products_changed']:,} products "
                   f"({change['share_of_products']:.1%}), applied in {_s(change['seconds'])}")
    out += ["", "| | " + " | ".join(f"`{label}`" for label in labels) + " |", "|---|" + "---:|" * len(labels)]

    def row(name: str, fn) -> None:
        out.append(f"| {name} | " + " | ".join(fn(runs[label]) for label in labels) + " |")

    row("what", lambda x: x["description"])
    row("mode", lambda x: x["mode"])
    for stage in STAGES:
        if any(stage in x["stages_s"] for x in runs.values()):
            row(stage, lambda x, stage=stage: _s(x["stages_s"].get(stage)))
    row("**total (plan to report)**", lambda x: f"**{_s(x['total_s'])}**")
    row("**process wall time** (with interpreter start and imports)", lambda x: f"**{_s(x['process_wall_s'])}**")
    row("**CPU of the sync process** (user + system, all threads and worker processes)", lambda x: f"**{_s(x['process_cpu_s'])}**")
    row("sync CPU per record extracted", lambda x: _us(x.get("cpu_us_per_record")))
    row("sync CPU per item sent", lambda x: _us(x.get("cpu_us_per_item_sent")))
    if receiver:
        row("receiver CPU during the run", lambda x: _s(x.get("receiver_cpu_s")))
        row("receiver CPU per item sent", lambda x: _us(x.get("receiver_us_per_item_sent")))
        row("requests the receiver answered", lambda x: _int(x.get("receiver_requests")))
    if any(x.get("source_server_cpu_s") is not None for x in runs.values()):
        row("MariaDB server CPU during the run (every client's queries)", lambda x: _s(x.get("source_server_cpu_s")))
    row("CPU used by other processes meanwhile (noise)", lambda x: _s(x["other_processes_cpu_s"]))
    row("**peak RSS of the process**", lambda x: f"**{_mib(x['ru_maxrss_kb'])}**")
    row("peak RSS with its worker processes (sampled every 50 ms)", lambda x: _mib(x.get("tree_peak_rss_kb")))
    row("RSS after imports, before the sync", lambda x: _mib(x["rss_after_imports_kb"]))
    row("products extracted", lambda x: _int(x["counts"]["extract"]["products"]))
    row("records extracted", lambda x: _int(x["counts"]["extract"]["records"]))
    for feed in _feed_counts(runs["full"]):  # the counts that are 0 in every run are left out (the JSON has them)
        for key in ("inserted", "updated", "deleted", "unchanged", "quarantined", "held"):
            if any(_feed_counts(x).get(feed, {}).get(key) for x in runs.values()):
                row(f"diff{feed}: {key}", lambda x, feed=feed, key=key: _int(_feed_counts(x).get(feed, {}).get(key, 0)))
    row("items sent (every feed)", lambda x: _int(x["counts"]["sent"]))
    row("snapshot items after commit (every feed)", lambda x: _int(_snapshot_items(x)))
    row("extract throughput", lambda x: f"{x['counts']['extract']['records'] / x['stages_s']['extract']:,.0f} records/s"
        if x["stages_s"].get("extract") else "")
    out += [
        "",
        "Peak RSS of the process so far, after each stage (the stage where it jumps set the peak):",
        "",
        "| stage | " + " | ".join(f"`{label}`" for label in labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for stage in STAGES:
        if any(stage in x["peak_rss_after_stage_kb"] for x in runs.values()):
            out.append(f"| {stage} | " + " | ".join(_mib(runs[label]["peak_rss_after_stage_kb"].get(stage)) for label in labels) + " |")
    if cli:
        full = runs["full"]
        out += [
            "",
            "Same full sync through the real CLI (`python -m catalog_sync sync`, fresh state folder):",
            "",
            "| | driver | CLI |",
            "|---|---:|---:|",
            f"| process wall time | {_s(full['process_wall_s'])} | {_s(cli['process_wall_s'])} |",
            f"| CPU used by other processes meanwhile (noise) | {_s(full['other_processes_cpu_s'])} | {_s(cli['other_processes_cpu_s'])} |",
            f"| run duration recorded in the status store | {_s(full['summary'].get('duration_s'))} | {_s(cli['summary'].get('duration_s'))} |",
            f"| peak RSS | {_mib(full['ru_maxrss_kb'])} | {_mib(cli['ru_maxrss_kb'])} |",
        ]
        for stage in ("extract", "diff", "export"):
            if stage in cli["logged_stage_s"]:
                out.append(f"| {stage} (CLI: as logged by the engine) | {_s(full['stages_s'][stage])} | {_s(cli['logged_stage_s'][stage])} |")
    ratio = r.get("diff_ratio")
    if ratio and ratio.get("cases"):
        out += [
            "",
            f"## Diff vs a bare DuckDB join (best of {ratio['reps']}, one process per run, right after it)",
            "",
            "Both with the DuckDB settings of the engine's diff: "
            + ", ".join(f"{k} {v}" for k, v in sorted(ratio["duckdb_settings"].items()) if k != "temp_directory") + ".",
            f"Other processes used {_s(ratio['other_processes_cpu_s'])} of CPU during these measurements "
            f"({_s(ratio['process_wall_s'])} wall).",
            "",
            "| case | our diff (products feed; `compute_delta` before feeds) | bare join, all rows | ratio | bare join, changed rows only | ratio |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for case in ratio["cases"].values():
            b = case["best_s"]
            rows = case["rows"]
            out.append(
                f"| {case['description']} ({rows['extract']:,} extracted vs {rows['snapshot_compared']:,} snapshot rows) "
                f"| {_ms(b['diff'])} | {_ms(b['join_all_rows'])} | **{case['ratio_diff_vs_join_all_rows']:.2f}x** "
                f"| {_ms(b['join_changed_rows'])} | {case['ratio_diff_vs_join_changed_rows']:.2f}x |"
            )
        out += [
            "",
            "The bare join is `COPY (SELECT e.*, s.content_hash FROM extract e FULL OUTER JOIN snapshot s "
            "ON (sku, store_view_code)) TO parquet (zstd)`: no classification, every joined row written. "
            "The \"changed rows only\" variant adds `WHERE e.content_hash IS DISTINCT FROM s.content_hash`, "
            "so it writes about as many rows as our delta. Goal: our diff <= 1.5x the bare join.",
        ]
    out += [
        "",
        f"Demo catalog generation (not part of any sync): {_s(g['seconds'])}"
        f"{' (cached from ' + g['generated_at'] + ')' if g.get('cached') else ''}, "
        + (f"MariaDB database `{g['database']}`, {g['db_bytes'] / 2**20:,.0f} MiB of data and indexes"
           if (r.get("source") or {}).get("kind") == "mariadb" else f"SQLite file {g['db_bytes'] / 2**20:,.0f} MiB")
        + f", peak RSS {_mib(g.get('ru_maxrss_kb'))}.",
        "",
    ]
    return "\n".join(out)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ main


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of product counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"product counts must be >= 1: {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Catalog Sync benchmark: full sync, full reconcile, incremental syncs.")
    parser.add_argument("--profile", choices=tuple(PROFILES),
                        help="Magento's performance-toolkit profile: medium 24,000 x 3, large 300,000 x 5, extra_large "
                             "600,000 x 5 (products x store views), each store view on its own website; its defaults: "
                             "--target receiver, --changes 3000,300 (--products/--store-views override its size)")
    parser.add_argument("--products", type=int, default=None, help="products in the demo catalog (default 100000, or the profile's)")
    parser.add_argument("--store-views", type=int, default=None, help="store views (default 2, or the profile's)")
    parser.add_argument("--own-websites", action="store_true",
                        help="each store view on a website and store group of its own, every product on every website "
                             "(the profiles' layout; default off without --profile)")
    parser.add_argument("--source", choices=("sqlite", "mariadb"), default="sqlite",
                        help="where the demo catalog lives: a SQLite file (default; cached in benchmarks/.cache, copied per "
                             "run) or a MariaDB database bench_<key> on --mariadb-url (generated once, changed in place)")
    parser.add_argument("--mariadb-url", default=DEFAULT_MARIADB_URL, metavar="URL",
                        help=f"with --source mariadb: the server, no database (default {DEFAULT_MARIADB_URL})")
    parser.add_argument("--target", choices=("file", "receiver"), default=None,
                        help="where the syncs send: JSONL files (default without --profile) or the bundled reference "
                             "receiver in its own process, validation off (default with --profile)")
    parser.add_argument("--rpm", type=int, default=0,
                        help="client-side requests/minute toward the receiver (default 0: the limit lifted)")
    parser.add_argument("--changes", type=_counts, default=None, metavar="N[,N...]",
                        help="products renamed before each incremental sync, one incremental per count, e.g. 3000,300 "
                             "(the default with --profile); without it, one incremental after --change-share")
    parser.add_argument("--change-share", type=float, default=0.01,
                        help="without --changes: share of products renamed before the incremental sync (default 0.01: every 100th)")
    parser.add_argument("--seed", type=int, default=42, help="demo catalog seed (default 42)")
    parser.add_argument("--edition", choices=("open_source", "commerce"), default="open_source",
                        help="the demo catalog's database layout: Magento Open Source's (default) or Adobe Commerce's "
                             "content staging (row_id versions)")
    parser.add_argument("--chunk-size", type=int, default=None, help="products per extract chunk (default: the engine's)")
    parser.add_argument("--reps", type=int, default=3,
                        help="repetitions of the diff-vs-join measurement; best is kept (default 3; 0 skips it)")
    parser.add_argument("--no-cli", action="store_true",
                        help="skip the second full sync through the real CLI (it runs with --target file only)")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--rev", metavar="REV",
                        help="measure the engine as committed at this git revision (exported with git archive), "
                             "e.g. HEAD to leave uncommitted edits out, or an older commit to compare")
    engine.add_argument("--engine", metavar="DIR",
                        help="folder holding the catalog_sync package to measure (default: the repository's include/)")
    parser.add_argument("--catalog-generator", choices=("tree", "engine"), default="tree",
                        help="whose demo generator makes the catalog: the working tree's (default: one catalog for every "
                             "--rev, so before and after sync the same shop) or the measured engine's")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder (printed at the end)")
    return parser


def _plan_of_run(args: argparse.Namespace) -> dict:
    """The run's parameters: the profile's, overridden by the flags given."""
    size = PROFILES.get(args.profile)
    products = args.products if args.products is not None else size[0] if size else 100_000
    store_views = args.store_views if args.store_views is not None else size[1] if size else 2
    changes = args.changes if args.changes is not None else PROFILE_CHANGES if size else None
    if products < 1 or store_views < 1 or not 0 < args.change_share <= 1 or args.reps < 0 or args.rpm < 0:
        raise SystemExit("bench: --products and --store-views must be >= 1, --change-share in (0, 1], --reps and --rpm >= 0")
    if changes and max(changes) > products:
        raise SystemExit(f"bench: --changes {','.join(map(str, changes))}: more products than the catalog's {products:,}")
    return {"profile": args.profile, "source": args.source, "products": products, "store_views": store_views,
            "own_websites": bool(size) or args.own_websites, "target": args.target or ("receiver" if size else "file"),
            "rpm": args.rpm, "changes": list(changes) if changes else None,
            "change_share": None if changes else args.change_share}


def _per_item(result: dict) -> None:
    """CPU per record extracted and per item sent, of the sync process (and of the receiver)."""
    records, sent = result["counts"]["extract"]["records"], result["counts"]["sent"]
    result["cpu_us_per_record"] = result["process_cpu_s"] / records * 1e6 if records else None
    result["cpu_us_per_item_sent"] = result["process_cpu_s"] / sent * 1e6 if sent else None
    if result.get("receiver_cpu_s") is not None:
        result["receiver_us_per_item_sent"] = result["receiver_cpu_s"] / sent * 1e6 if sent else None


def _merge_ratio(into: dict | None, part: dict) -> dict:
    if into is None:
        return {**part, "process_wall_s": part["process_wall_s"], "other_processes_cpu_s": part["other_processes_cpu_s"] or 0.0}
    into["cases"].update(part["cases"])
    into["process_wall_s"] += part["process_wall_s"]
    into["other_processes_cpu_s"] += part["other_processes_cpu_s"] or 0.0
    into["ru_maxrss_kb"] = max(into["ru_maxrss_kb"], part["ru_maxrss_kb"])
    return into


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan_of_run(args)
    products, store_views = plan["products"], plan["store_views"]
    global ENGINE_ROOT, GENERATOR_ROOT, SOURCE_SERVER_PID
    started_at = datetime.now(timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix="catalog-sync-bench-"))
    receiver: Receiver | None = None
    try:
        rev_commit = None
        if args.rev:
            rev_commit = export_rev(args.rev, tmp / "engine")
            ENGINE_ROOT = tmp / "engine" / "include"
        else:
            ENGINE_ROOT = Path(args.engine).resolve() if args.engine else DEFAULT_ENGINE_ROOT
        if not (ENGINE_ROOT / "catalog_sync" / "cli.py").exists():
            raise SystemExit(f"bench: no catalog_sync package in {ENGINE_ROOT}")
        GENERATOR_ROOT = ENGINE_ROOT if args.catalog_generator == "engine" else DEFAULT_ENGINE_ROOT
        engine = engine_facts(args.rev, rev_commit)
        print(f"[bench] engine: {ENGINE_ROOT}" + (f" (git {rev_commit[:10]})" if rev_commit else ""), flush=True)
        if args.source == "mariadb":
            server = MariaDB(args.mariadb_url)
            source_url, generation = ensure_mariadb_catalog(server, products, store_views, args.seed, tmp, args.edition,
                                                            plan["own_websites"])
            source = (server, generation["database"])  # changed in place: each run's renames carry its own tag
            SOURCE_SERVER_PID = server.server_pid()
            source_facts = {"kind": "mariadb", "server": server.display, "database": generation["database"],
                            "server_version": _mariadb_version(server), "server_pid": SOURCE_SERVER_PID}
            print(f"[bench] source: MariaDB {source_facts['server_version']} database {generation['database']} on "
                  f"{server.display}" + (f" (server pid {SOURCE_SERVER_PID}: its CPU is reported per run)"
                                         if SOURCE_SERVER_PID else " (server CPU not measurable from here)"), flush=True)
        else:
            cached_db, generation = ensure_catalog(products, store_views, args.seed, tmp, args.edition, plan["own_websites"])
            source = tmp / "source.sqlite"
            copy_catalog(cached_db, source)  # the runs change the catalog; the cached copy stays pristine
            source_url = f"sqlite:///{source}"
            source_facts = {"kind": "sqlite", "catalog": str(cached_db.relative_to(REPO))}
        if plan["target"] == "receiver":
            receiver = Receiver(tmp)
            print(f"[bench] receiver: {receiver.url} (pid {receiver.proc.pid}, validation off, "
                  f"client-side limit {'lifted' if not args.rpm else f'{args.rpm} requests/minute'})", flush=True)
        load_at_start = os.getloadavg()
        tag = f"{started_at:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"  # this run's renames (MariaDB: see apply_change)
        state, target, kept = tmp / "state", tmp / "target", tmp / "kept"
        runs: dict[str, dict] = {}
        ratio: dict | None = None

        def drive(label: str, description: str, full: bool = False) -> dict:
            print(f"[bench] {label}: {description} ...", flush=True)
            result = _run_worker("drive", {
                "source_url": source_url, "target_url": receiver.url if receiver else f"file://{target}",
                "target_dir": str(target), "state_url": str(state), "state_dir": str(state), "chunk_size": args.chunk_size,
                "keep_inputs": str(kept / label), "full": full,
            }, tmp, label, receiver=receiver, env=receiver.env(args.rpm) if receiver else None)
            result["description"] = description
            _per_item(result)
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in result["stages_s"].items())
            print(f"[bench] {label}: {result['mode']}, {result['counts']['extract']['records']:,} records, "
                  f"{result['counts']['sent']:,} sent, total {result['total_s']:.2f}s ({stages}), "
                  f"CPU {result['process_cpu_s']:.2f}s" + (f", receiver CPU {result['receiver_cpu_s']:.2f}s" if receiver else "")
                  + (f", MariaDB CPU {result['source_server_cpu_s']:.2f}s" if result.get("source_server_cpu_s") is not None else "")
                  + f", peak RSS {_mib(result['ru_maxrss_kb'])}", flush=True)
            runs[label] = result
            return result

        def measure_ratio(label: str, description: str, scoped: bool) -> None:
            """Diff vs bare join on the inputs the run just diffed, before a later commit prunes its base snapshot."""
            nonlocal ratio
            if not args.reps:
                return
            run = runs[label]
            case = {"name": label, "description": description,
                    "inputs": {**_diff_inputs(kept / label, state, run["plan"], scoped=scoped),
                               "delta": str(tmp / "ratio" / f"{label}_delta.parquet")},
                    "work_dir": str(tmp / "ratio" / label)}
            part = _run_worker("ratio", {"reps": args.reps, "cases": [case]}, tmp, f"ratio-{label}")
            for c in part["cases"].values():
                b = c["best_s"]
                print(f"[bench] {c['description']}: diff {b['diff']:.3f}s, bare join {b['join_all_rows']:.3f}s "
                      f"-> {c['ratio_diff_vs_join_all_rows']:.2f}x (vs changed-rows join: {c['ratio_diff_vs_join_changed_rows']:.2f}x)")
            ratio = _merge_ratio(ratio, part)

        drive("full", "full sync (empty snapshot)")
        cli = None
        if plan["target"] == "file" and not args.no_cli:
            print("[bench] full sync through the CLI (separate state folder) ...", flush=True)
            cli = run_cli_full(source_url, tmp, args.chunk_size)
            print(f"[bench] CLI: {cli['process_wall_s']:.2f}s wall, peak RSS {_mib(cli['ru_maxrss_kb'])}", flush=True)
        drive("reconcile", "full reconcile (`--full`), nothing changed", full=True)
        measure_ratio("reconcile", "full reconcile: full extract vs committed snapshot", scoped=False)

        changes: dict[str, dict] = {}
        steps = [(f"incremental_{n}", n) for n in plan["changes"]] if plan["changes"] else [("incremental", None)]
        seen: dict[str, int] = {}
        for offset, (label, count) in enumerate(steps):
            seen[label] = seen.get(label, 0) + 1
            label += f"_{seen[label]}" if seen[label] > 1 else ""
            change = apply_change(source, plan["change_share"], args.edition, count=count, offset=offset, tag=f"{tag}-{offset}")
            changes[label] = change
            print(f"[bench] changed {change['products_changed']:,} product names "
                  f"(changelog rows: {change['changelog_rows_added']})", flush=True)
            what = f"{count:,} products renamed" if count else f"{change['share_of_products']:.1%} of the products renamed"
            drive(label, f"incremental: {what}")
            measure_ratio(label, f"incremental: {what}", scoped=True)

        bad = {label: run["mode"] for label, run in runs.items()
               if run["mode"] != ("full" if label in ("full", "reconcile") else "incremental")}
        if bad:
            raise SystemExit(f"bench: unexpected modes {bad}")

        receiver_facts = None
        if receiver:
            receiver_facts = {"url": receiver.url, "startup_cpu_s": receiver.startup_cpu_s, "cpu_s_at_end": receiver.cpu_s(),
                              "stats_at_end": receiver.stats(), "db_bytes": receiver.db.stat().st_size if receiver.db.exists() else None}
        engine_changed = engine_hash() != engine["source_hash"]
        if engine_changed:
            print(f"[bench] WARNING: the engine's sources in {ENGINE_ROOT} changed during the run; "
                  "the runs may have measured different code", file=sys.stderr)
        stamp = started_at.strftime("%Y%m%d-%H%M%S")
        result_file = f"bench_sync-{stamp}.json"
        results = {
            "benchmark": "bench_sync",
            "started_at": started_at.isoformat(timespec="seconds"),
            "result_file": result_file,
            "parameters": {**plan, "seed": args.seed, "chunk_size": args.chunk_size, "reps": args.reps,
                           "edition": args.edition},
            "environment": passed_env(),
            "machine": {**machine_facts(), "loadavg_1_5_15_at_start": load_at_start, "loadavg_1_5_15_at_end": os.getloadavg()},
            "engine": {**engine, "source_hash_at_end": engine_hash(), "changed_during_run": engine_changed},
            "source": source_facts,
            "generation": generation,
            "runs": runs,
            "cli_full": cli,
            "changes": changes,
            "change": next(iter(changes.values())),  # the first, as results before --changes had it
            "receiver": receiver_facts,
            "diff_ratio": ratio,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        _write_atomic(RESULTS / result_file, json.dumps(results, indent=2, default=str) + "\n")
        markdown = render_markdown(results)
        _write_atomic(RESULTS / "latest.md", markdown)
        print()
        print(markdown)
        print(f"[bench] wrote {(RESULTS / result_file).relative_to(REPO)} and {(RESULTS / 'latest.md').relative_to(REPO)}")
        return 0
    except BenchFailed as exc:
        args.keep = True
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if receiver:
            receiver.stop()
        if args.keep:
            print(f"[bench] kept the work folder: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(_worker_main(sys.argv[2:]))
    sys.exit(main())
