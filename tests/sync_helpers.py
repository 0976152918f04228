"""Shared helpers for the sync tests: a demo catalog, the CLI, and what the target must hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

import shop_sql
from catalog_sync import cli
from catalog_sync.feed.feed_record import FeedRow, build_feed_rows
from catalog_sync.magento import layout
from catalog_sync.magento.catalog_reader import CatalogContext, MagentoCatalogReader, read_only_engine
from catalog_sync.magento.url_keys import UrlKeyCheck
from catalog_sync.run_clock import parse_instant
from catalog_sync.targets.files.replay import replay
from catalog_sync.targets.files.target import DELTA_FOLDER
from catalog_sync.targets.ingestion_api.config import FeedOptions
from catalog_sync.targets.ingestion_api.mapping import CatalogMapper

# Inside the demo catalog's special-price windows (January to March 2026), so some discounts are active.
PINNED_NOW = "2026-02-10T12:00:00Z"

State = dict[str, dict[str, Any]]  # feed -> canonical key JSON -> body


def steps_until_commit(settings, run) -> None:
    """The steps of a one-bucket run from extract to the last export, as the DAG runs them, one by one."""
    from catalog_sync import steps

    steps.extract(settings, run)
    steps.diff(settings, run)
    steps.export_catalog(settings, run, "upsert")
    steps.export(settings, run)
    steps.export_catalog(settings, run, "delete")


def pinned_env_and_receiver(source_url: str, tmp_path: Path, monkeypatch, token: str) -> tuple[SyncEnv, Any]:
    """A SyncEnv on `source_url` with the run clock pinned (PINNED_NOW), and a validating reference receiver
    (receiver_helpers.ThreadedReceiver, tenant acme) that wants `token`, which the sync is given. Stop the receiver."""
    from catalog_sync.receiver import ReceiverOptions
    from receiver_helpers import ThreadedReceiver

    monkeypatch.setenv("CATALOG_SYNC_NOW", PINNED_NOW)
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", token)
    receiver = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id="acme", required_token=token))
    return SyncEnv(source_url, tmp_path / "unused", tmp_path / "state"), receiver


def key_text(key: dict) -> str:
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()


def product_key(sku: str, locale: str) -> str:
    """The products feed's key of a SKU in a locale written the API's way ('en-US')."""
    return key_text({"sku": sku, "source": {"locale": locale}})


@dataclass
class SyncEnv:
    """One source database, one file target, one state folder."""

    source_url: str
    target_dir: Path
    state_dir: Path
    sent: list[dict] | None = None  # the lines the last `sync` wrote to the file target

    @property
    def target_url(self) -> str:
        return f"file://{self.target_dir}"

    def cli_args(self, *extra: str) -> list[str]:
        return ["sync", "--source-url", self.source_url, "--target-url", self.target_url,
                "--state-url", str(self.state_dir), *extra]

    def sync(self, capsys, *extra: str, expect_exit: int = 0) -> dict[str, Any]:
        """Run `python -m catalog_sync sync` in-process; return its JSON summary (last stdout line)."""
        capsys.readouterr()
        before = set(self.delta_files())
        code = cli.main(self.cli_args(*extra))
        out = capsys.readouterr().out.strip().splitlines()
        assert code == expect_exit, f"exit {code}, stdout: {out}"
        self.sent = self.lines_of(sorted(set(self.delta_files()) - before))
        return json.loads(out[-1])

    def sync_and_accepted(self, capsys, receiver, *extra: str, expect_exit: int = 0) -> tuple[dict[str, Any], dict]:
        """One run to `receiver` (a receiver_helpers.ThreadedReceiver): its summary, and what the receiver
        accepted during it, by feed and operation."""
        from receiver_helpers import accepted, accepted_since

        before = accepted(receiver.root)
        summary = self.sync(capsys, "--target-url", receiver.target, *extra, expect_exit=expect_exit)
        return summary, accepted_since(before, accepted(receiver.root))

    def sent_in(self, feed: str, op: str | None = None) -> list[dict]:
        return [line for line in self.sent or [] if line["feed"] == feed and (op is None or line["op"] == op)]

    def execute(self, *statements: str, params: dict | None = None) -> None:
        """Run statements written for Open Source's tables, on the source's layout (shop_sql)."""
        engine = sa.create_engine(self.source_url)
        with engine.begin() as conn:
            for statement in statements:
                shop_sql.execute(conn, self.layout, statement, params)
        engine.dispose()

    def scalar(self, statement: str, params: dict | None = None) -> Any:
        engine = sa.create_engine(self.source_url)
        with engine.connect() as conn:
            value = shop_sql.execute(conn, self.layout, statement, params).scalar()
        engine.dispose()
        return value

    @property
    def layout(self) -> str:
        """The source's layout: shop_sql.OPEN_SOURCE or COMMERCE."""
        return shop_sql.layout_of(self.source_url) if "://" in self.source_url else shop_sql.OPEN_SOURCE

    def target_state(self) -> State:
        return replay(self.target_url)

    def delta_files(self) -> list[Path]:
        folder = self.target_dir / DELTA_FOLDER
        return sorted(folder.rglob("*.jsonl")) if folder.exists() else []

    @staticmethod
    def lines_of(files: list[Path]) -> list[dict]:
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def expected_rows(source_url: str, instant: datetime | None = None) -> dict[tuple[str, str], FeedRow]:
    """The source's current staging rows (judged at `instant`), built independently of the pipeline's files."""
    return _read(source_url, instant)[1]


def _read(source_url: str, instant: datetime | None) -> tuple[CatalogContext, dict[tuple[str, str], FeedRow]]:
    engine = read_only_engine(source_url)  # the shop's layout, detected (Adobe Commerce: the versions in force)
    if instant is not None:
        layout.read_at(engine, instant)
    reader = MagentoCatalogReader(engine)
    ctx = reader.load_context()
    feed: dict[tuple[str, str], FeedRow] = {}
    for ids in reader.iter_all_id_chunks(10_000):
        for row in build_feed_rows(reader.load_chunk(ids, ctx.stock_layout, UrlKeyCheck.from_context(ctx)), ctx, instant):
            if row.quarantine_reason is None:
                feed[(row.sku, row.store_view_code)] = row
    engine.dispose()
    return ctx, feed


def expected_feed(source_url: str) -> dict[tuple[str, str], dict]:
    """The source's current staging records, by (sku, store view)."""
    return {key: row.payload for key, row in expected_rows(source_url).items()}


def mapped_source(source_url: str, instant: str = PINNED_NOW, options: FeedOptions | None = None) -> State:
    """Every feed item the source maps to at `instant` (the reference builder, then the target's mapping):
    what the target must hold after a clean run."""
    ctx, rows = _read(source_url, parse_instant(instant))
    mapper = CatalogMapper(ctx, options or FeedOptions())
    state: State = {}
    by_product: dict[int, list] = {}
    for row in rows.values():
        by_product.setdefault(row.product_id, []).append(row.staging())
    items = [*mapper.catalog_items(), *(i for product in by_product.values() for i in mapper.product_items(product))]
    for item in items:
        if item.body is not None:
            state.setdefault(item.feed, {})[key_text(item.key)] = item.body
    return state
