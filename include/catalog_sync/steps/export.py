"""export: send the delta, feed by feed in the target's order, and write one result per item.

Upserts go in the target's feed order (what others refer to first), deletes in the reverse
order. The catalog-wide feeds (metadata, price books) are sent around the buckets' product
feeds: their upserts before any bucket (`export_catalog(UPSERT)`), their deletes after every
bucket (`export_catalog(DELETE)`). An item whose feed requires an item of another feed (a
price needs its price book) is not sent while that item is not at the target: it stays
retryable, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync import clock
from catalog_sync.settings import SyncSettings
from catalog_sync.state import duckdb_session
from catalog_sync.state.staging import CATALOG_PART, StagingFolder, bucket_part
from catalog_sync.steps.run import RunPlan, Workspace
from catalog_sync.targets.base import (
    DELETE,
    OK,
    REJECTED,
    RETRYABLE,
    UPSERT,
    FeedScope,
    FeedSpec,
    ItemResult,
    SendItem,
    Target,
    canonical,
    feed_by_name,
    send_order,
)

log = logging.getLogger("catalog_sync.steps")

RESULTS_SCHEMA = pa.schema([("key", pa.string()), ("op", pa.string()), ("status", pa.string()), ("reason", pa.string()),
                            ("unconfirmed", pa.bool_())])
UPSERT_OPS = ("insert", "update")
# Never sent, reported with their reason: a held item (the target rejected this very body) as
# rejected; a quarantined one (bad data in Magento) as retryable, so that every run judges it again.
NOT_SENT_OPS = ("quarantined", "held")
BATCH = 10_000
DEADLINE_REASON = "not sent: the run's deadline had passed (the next run sends it)"


@dataclass
class ExportCounts:
    sent: int = 0
    ok: int = 0
    retryable: int = 0
    rejected: int = 0
    feeds: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, feed: str, status: str, sent: bool) -> None:
        per = self.feeds.setdefault(feed, {"sent": 0, OK: 0, RETRYABLE: 0, REJECTED: 0})
        per[status] += 1
        setattr(self, status, getattr(self, status) + 1)
        if sent:
            per["sent"] += 1
            self.sent += 1


def export(settings: SyncSettings, run: RunPlan, bucket: int = 0, side_by_side: int = 1) -> dict:
    """Send this bucket's items of the product feeds. `side_by_side`: how many buckets send at the
    same time (parallel tasks); each takes that share of the target's rate limit."""
    return _export(settings, run, bucket_part(bucket), FeedScope.PRODUCT, (UPSERT, DELETE), run.batch_label(bucket),
                   side_by_side)


def export_catalog(settings: SyncSettings, run: RunPlan, op: str) -> dict:
    """Send the catalog-wide feeds' upserts (before the buckets) or deletes (after them)."""
    return _export(settings, run, CATALOG_PART, FeedScope.CATALOG, (op,), f" [catalog feeds, {op}s]")


def _export(settings: SyncSettings, run: RunPlan, part: str, scope: FeedScope, ops: tuple[str, ...], label: str,
            side_by_side: int = 1) -> dict:
    started = clock.monotonic()
    counts = ExportCounts()
    with Workspace(settings) as ws:
        staging = ws.staging(run)
        name = staging.export_counts(part if len(ops) == 2 else f"{part}-{ops[0]}")
        if run.dry_run:
            log.info("export%s: dry run, nothing sent", label)
            staging.write_json(counts.__dict__, name)
            return counts.__dict__
        target = ws.target
        target.share_limits(side_by_side)
        staging.makedirs("results")
        for op in ops:
            for feed in send_order(target.feeds, op):
                if feed.scope is scope and staging.exists(staging.delta(feed.name, part)):
                    _send(ws, run, staging, target, feed, op, part, counts)
        staging.write_json(counts.__dict__, name)
        description = target.description
    elapsed = clock.monotonic() - started
    log.info(
        "export%s: sent %d item(s) to %s in %.2fs (%.0f items/s): %d ok, %d retryable, %d rejected%s", label, counts.sent,
        description, elapsed, counts.sent / elapsed if elapsed else 0, counts.ok, counts.retryable, counts.rejected,
        "".join(f"; {f}: {c['sent']} sent, {c[OK]} ok" for f, c in counts.feeds.items()),
    )
    return counts.__dict__


def _send(ws: Workspace, run: RunPlan, staging: StagingFolder, target: Target, feed: FeedSpec, op: str, part: str,
          counts: ExportCounts) -> None:
    missing = _missing_requirement(ws, run, staging, target, feed) if op == UPSERT else None
    held_bodies = _held_bodies(ws, run, feed) if op == UPSERT and feed.patched else {}
    deadline = ws.settings.deadline_at
    held: list[ItemResult] = []
    results: list[ItemResult] = []

    def items() -> Iterator[SendItem]:
        wanted = UPSERT_OPS + NOT_SENT_OPS if op == UPSERT else ("delete",)
        with staging.open(staging.delta(feed.name, part)) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=BATCH, columns=["op", "key", "body", "reason"]):
                for item_op, key, body, reason in zip(*(batch.column(c).to_pylist() for c in ("op", "key", "body", "reason"))):
                    if item_op not in wanted:
                        continue
                    if item_op in NOT_SENT_OPS:
                        held.append(ItemResult(key, REJECTED if item_op == "held" else RETRYABLE, reason))
                    elif deadline is not None and clock.now() >= deadline:
                        held.append(ItemResult(key, RETRYABLE, DEADLINE_REASON))
                    elif missing is not None and (why := missing(key)):
                        held.append(ItemResult(key, RETRYABLE, why))
                    else:
                        yield SendItem(key, body if op == UPSERT else None,
                                       held_bodies.get(key) if item_op == "update" else None)

    order = [f.name for f in target.feeds]
    step = order.index(feed.name) + 1 if op == UPSERT else 2 * len(order) - order.index(feed.name)
    for result in target.send(feed, op, items(), f"{run.run_key}/{step:02d}-{feed.name}-{part}"):
        counts.add(feed.name, result.status, sent=True)
        results.append(result)
    for result in held:
        counts.add(feed.name, result.status, sent=False)
    results += held
    table = pa.table({"key": [r.key for r in results], "op": [op] * len(results), "status": [r.status for r in results],
                      "reason": [r.reason for r in results], "unconfirmed": [r.unconfirmed for r in results]},
                     schema=RESULTS_SCHEMA)
    pq.write_table(table, staging.path(staging.results(feed.name, f"{part}-{op}")), filesystem=staging.fs)


def _held_bodies(ws: Workspace, run: RunPlan, feed: FeedSpec) -> dict[str, str]:
    """The bodies the target holds of a patched feed (a catalog-wide one, small): key -> body."""
    base = ws.snapshots.feed_relation(run.base(feed.name))
    if not base:
        return {}
    return dict(duckdb_session.fetch_all(f"SELECT key, body FROM {base} WHERE body IS NOT NULL"))


def _missing_requirement(ws: Workspace, run: RunPlan, staging: StagingFolder, target: Target, feed: FeedSpec):
    """A check of the items of `feed` whose required item (e.g. their price book) is not at the
    target: neither in the snapshot nor accepted by this run."""
    if feed.requires is None:
        return None
    required = feed_by_name(target, feed.requires.feed)
    held = ws.snapshots.feed_relation(run.base(required.name))
    present = {r[0] for r in duckdb_session.fetch_all(f"SELECT key FROM {held}")} if held else set()
    accepted = staging.results(required.name, f"{CATALOG_PART}-{UPSERT}")
    if staging.exists(accepted):
        present |= {r[0] for r in duckdb_session.fetch_all(
            "SELECT key FROM read_parquet(?) WHERE status = ?", [staging.url_of(accepted), OK])}

    def missing(key: str) -> str | None:
        needed = canonical(feed.requires.key_of(orjson.loads(key))).decode()
        return None if needed in present else f"{required.name} {needed} is not at the target yet"

    return missing
