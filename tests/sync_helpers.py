"""Shared helpers for the sync tests: a demo catalog, the CLI, and the source's expected feed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from catalog_sync import cli
from catalog_sync.feed.feed_record import FeedRow, build_feed_rows
from catalog_sync.magento.catalog_reader import MagentoCatalogReader
from catalog_sync.sinks.file_sink import DELTA_FOLDER, replay_file_target


@dataclass
class SyncEnv:
    """One source database, one file target, one state folder."""

    source_url: str
    target_dir: Path
    state_dir: Path
    sent: list[dict] | None = None  # the delta lines the last `sync` wrote


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

    def execute(self, *statements: str, params: dict | None = None) -> None:
        engine = sa.create_engine(self.source_url)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params or {})
        engine.dispose()

    def scalar(self, statement: str, params: dict | None = None) -> Any:
        engine = sa.create_engine(self.source_url)
        with engine.connect() as conn:
            value = conn.execute(sa.text(statement), params or {}).scalar()
        engine.dispose()
        return value

    def target_state(self) -> dict[tuple[str, str], dict]:
        return replay_file_target(self.target_url)

    def delta_files(self) -> list[Path]:
        folder = self.target_dir / DELTA_FOLDER
        return sorted(folder.glob("*.jsonl")) if folder.exists() else []

    @staticmethod
    def lines_of(files: list[Path]) -> list[dict]:
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def expected_rows(source_url: str, instant: datetime | None = None) -> dict[tuple[str, str], FeedRow]:
    """The source's current feed rows (judged at `instant`), built independently of the pipeline's files."""
    engine = sa.create_engine(source_url)
    reader = MagentoCatalogReader(engine)
    ctx = reader.load_context()
    feed: dict[tuple[str, str], FeedRow] = {}
    for ids in reader.iter_all_id_chunks(10_000):
        for row in build_feed_rows(reader.load_chunk(ids), ctx, instant):
            if row.quarantine_reason is None:
                feed[(row.sku, row.store_view_code)] = row
    engine.dispose()
    return feed


def expected_feed(source_url: str) -> dict[tuple[str, str], dict]:
    """The source's current feed records, built independently of the pipeline's files."""
    return {key: row.payload for key, row in expected_rows(source_url).items()}
