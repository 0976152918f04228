"""Command line: `python -m catalog_sync COMMAND`.

Runs the same engine functions as the Airflow DAGs. Settings come from flags,
or from CATALOG_SYNC_* environment variables (the place for secrets).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from datetime import timedelta
from typing import Any

from catalog_sync.settings import ConfigurationError, SyncSettings, codes

# 0: in sync. 1: the run failed. 2: wrong settings, or a state it refuses to use. 3: another sync
# holds the lock. 4: the run succeeded, but the target did not accept some items (rejected, or
# still to retry, e.g. after --deadline): `status` lists them, the next run retries what it can.
EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED, EXIT_NOT_ACCEPTED = 1, 2, 3, 4


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["receiver"]:  # the reference receiver has its own flags
        from catalog_sync.receiver.server import main as receiver_main

        return receiver_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m catalog_sync", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="run one whole sync; prints a JSON summary as the last line")
    sync.add_argument("--source-url", help="SQLAlchemy URL of the Magento database (env CATALOG_SYNC_SOURCE_URL)")
    sync.add_argument("--target-url", help="the ingestion API's https://HOST/TENANT, or file://FOLDER (or s3://...) "
                                           "for JSONL feed files (env CATALOG_SYNC_TARGET_URL)")
    sync.add_argument("--state-url", help="folder or URL for the snapshot and staging (env CATALOG_SYNC_STATE_URL)")
    sync.add_argument("--status-url", help="SQLAlchemy URL of the status store (default: SQLite in the state folder)")
    sync.add_argument("--full", action="store_true", help="reconcile the whole catalog instead of the changes")
    sync.add_argument("--cleanup", action="store_true", help="re-send every item, as if the snapshot were empty")
    sync.add_argument("--rebuild", action="store_true", help="start again from an empty snapshot when the state is lost "
                                                             "or damaged beyond recovery: every item is re-sent")
    sync.add_argument("--dry-run", action="store_true", help="compute and report the delta, send nothing")
    sync.add_argument("--skus", help="comma-separated SKUs: resync only these")
    sync.add_argument("--chunk-size", type=int, help="products read per chunk (default 10000)")
    sync.add_argument("--batch-size", type=int, help="items per request to the ingestion API (default 100; "
                                                     "env CATALOG_SYNC_BATCH_SIZE)")
    sync.add_argument("--buckets", type=int, help="split the catalog into N hash buckets of sku, synced one after "
                                                  "the other (the DAGs run them as parallel mapped tasks; default 1)")
    sync.add_argument("--price-books", help="price book id per website, e.g. base=main_usd,eu=main_eur "
                                            "(env CATALOG_SYNC_PRICE_BOOKS; default: the website's code)")
    sync.add_argument("--websites", help="comma-separated website codes: export only their store views "
                                         "(env CATALOG_SYNC_WEBSITES; default: every website)")
    sync.add_argument("--store-views", help="comma-separated store view codes: export only these "
                                            "(env CATALOG_SYNC_STORE_VIEWS; default: every active one)")
    sync.add_argument("--base-views", help="comma-separated store view codes: the base view of each locale that several "
                                           "exported views share; the others become product layers over it (env "
                                           "CATALOG_SYNC_BASE_VIEWS; default: the locale's website-default view with the "
                                           "lowest store id)")
    sync.add_argument("--table-prefix", help="the shop's db.table_prefix (app/etc/env.php), if it was installed with one "
                                             "(env CATALOG_SYNC_TABLE_PREFIX)")
    sync.add_argument("--edition", choices=("auto", "open_source", "commerce"),
                      help="the catalog layout: Magento Open Source, or Adobe Commerce's content staging (row_id); "
                           "default auto: told from the columns (env CATALOG_SYNC_EDITION)")
    sync.add_argument("--deadline", type=_duration, metavar="DURATION",
                      help="stop sending once the run has taken this long (e.g. 900, 90s, 15m, 2h): what was sent is "
                           "committed, the rest is retried by the next run (exit 4)")
    sync.set_defaults(handler=_cmd_sync)

    status = commands.add_parser("status", help="show the last runs and their failed items")
    _state_args(status)
    status.add_argument("--limit", type=int, default=10)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=_cmd_status)

    unlock = commands.add_parser("unlock", help="release the sync lock of a run that is dead or whose lease expired "
                                                "(exit 3 when the holder may still run)")
    _state_args(unlock)
    unlock.add_argument("--force", action="store_true", help="release it whoever holds it (that run's commit then refuses)")
    unlock.set_defaults(handler=_cmd_unlock)

    show = commands.add_parser("show", help="print every item last sent for a SKU (each feed: key, exact body)")
    show.add_argument("sku")
    show.add_argument("--store-view", help="store view code (default: every store view)")
    _state_args(show)
    show.set_defaults(handler=_cmd_show)

    commands.add_parser("receiver", help="serve the reference Catalog Data Ingestion API receiver (see: receiver --help)")

    demo = commands.add_parser("demo-catalog", help="write a deterministic demo catalog with Magento's schema")
    demo.add_argument("--db", required=True, help="SQLAlchemy URL, e.g. sqlite:///demo.db or mysql+pymysql://...")
    demo.add_argument("--products", type=int, required=True)
    demo.add_argument("--store-views", type=int, default=2,
                      help="store views (default 2); from 3 on a multi-store shop: view 3 'b2b' on the first view's "
                           "locale (a product layer), the second website's store on a second category tree, website "
                           "price scope with the second website's base currency EUR, and customer group prices")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--edition", choices=("open_source", "commerce"), default="open_source",
                      help="the database layout: Magento Open Source's (default), or Adobe Commerce's content staging "
                           "(row_id versions, sequence tables, staging_update), with the same shop in it")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-url", help="snapshot folder or URL (env CATALOG_SYNC_STATE_URL)")
    parser.add_argument("--status-url", help="status store URL (default: SQLite in the state folder)")


def _cmd_sync(args: argparse.Namespace) -> int:
    from catalog_sync import clock
    from catalog_sync.state.status_store import SyncLockedError
    from catalog_sync.steps import SyncRequest, run_sync

    settings = SyncSettings.from_env(
        target_flags={"price_books": args.price_books, "batch_size": args.batch_size},
        source_url=args.source_url, target_url=args.target_url, state_url=args.state_url,
        status_url=args.status_url, chunk_size=args.chunk_size, buckets=args.buckets,
        deadline_at=None if args.deadline is None else clock.now() + args.deadline,
        websites=codes(args.websites) or None, store_views=codes(args.store_views) or None,
        base_views=codes(args.base_views) or None, table_prefix=args.table_prefix, edition=args.edition,
    )
    skus = tuple(s.strip() for s in (args.skus or "").split(",") if s.strip())
    request = SyncRequest(SyncRequest.new_run_id(), full=args.full, cleanup=args.cleanup, skus=skus, dry_run=args.dry_run,
                          rebuild=args.rebuild)
    try:
        summary = run_sync(settings, request)
    except SyncLockedError as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    print(json.dumps(summary, sort_keys=False))
    if "error" in summary:
        return EXIT_FAILED
    return EXIT_NOT_ACCEPTED if summary.get("not_accepted") else 0


def _duration(text: str) -> timedelta:
    """'900', '90s', '15m', '2h' -> a timedelta (argparse type)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds, or a number with s, m or h")
    return timedelta(seconds=float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]])


def _readonly_settings(args: argparse.Namespace) -> tuple[str, str]:
    import os

    from catalog_sync.settings import default_status_url

    state = args.state_url or os.environ.get("CATALOG_SYNC_STATE_URL", "")
    status = args.status_url or os.environ.get("CATALOG_SYNC_STATUS_URL", "")
    if not state and not status:
        raise ConfigurationError("set --state-url (or --status-url), or CATALOG_SYNC_STATE_URL")
    return state, status or default_status_url(state)


def _cmd_status(args: argparse.Namespace) -> int:
    from catalog_sync.state.status_store import StatusStore
    from catalog_sync.state.sync_lock import lock_status

    _, status_url = _readonly_settings(args)
    store = StatusStore(status_url)
    runs = store.recent_runs(args.limit)
    for run in runs:
        run["failures"] = store.failures(run["run_id"])[:50]
    holder = store.lock_holder()
    lock = lock_status(holder) if holder else None
    events = store.lock_events(5)
    if args.json:
        print(json.dumps({"lock": lock and lock.to_dict(), "lock_events": events, "runs": runs}, default=str, indent=2))
        return 0
    if lock:
        print(lock.line)
    if events:
        last = events[0]
        print(f"last lock release: {last['happened_at']} {last['event']} {last['owner']} ({last['holder_state']}) "
              f"by {last['done_by']}")
    if not runs:
        print("no runs recorded yet")
    cols = ("started_at", "state", "mode", "extracted", "inserted", "updated", "deleted", "unchanged", "failed", "duration_s")
    print("  ".join(f"{c:>10}" if c != "started_at" else f"{c:<25}" for c in cols) + "  run_id")
    for run in runs:
        print("  ".join(_cell(c, run.get(c)) for c in cols) + f"  {run['run_id']}")
        if run.get("error"):
            print(f"{'':<27}error: {run['error']}")
        for failure in run["failures"]:
            print(f"{'':<27}{failure['status']}: {failure['sku']} [{failure['store_view_code']}] {failure['op']}: "
                  f"{failure['reason']}")
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    from catalog_sync.state.status_store import StatusStore
    from catalog_sync.state.sync_lock import unlock

    _, status_url = _readonly_settings(args)
    store = StatusStore(status_url)
    try:
        outcome = unlock(store, force=args.force)
    finally:
        store.dispose()
    print(outcome.message, file=sys.stderr if outcome.refused else sys.stdout)
    return EXIT_LOCKED if outcome.refused else 0


def _cell(column: str, value: Any) -> str:
    if column == "started_at":
        return f"{str(value or ''):<25}"
    return f"{'' if value is None else value:>10}"


def _cmd_show(args: argparse.Namespace) -> int:
    from catalog_sync.state.snapshot_reader import find_exported

    state, _ = _readonly_settings(args)
    if not state:
        raise ConfigurationError("show needs --state-url (or CATALOG_SYNC_STATE_URL)")
    found = find_exported(state, args.sku, args.store_view)
    if not found:
        where = f" in store view {args.store_view!r}" if args.store_view else ""
        print(f"sku {args.sku!r} has not been exported{where}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(found, indent=2, ensure_ascii=False))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from catalog_sync.demo.generator import generate_demo_catalog

    summary = generate_demo_catalog(args.db, args.products, args.store_views, args.seed, edition=args.edition)
    print(json.dumps(summary.__dict__))
    return 0
