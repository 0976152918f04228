"""The "Last sync" box, with the semantics of Adobe's Catalog Sync dashboard, and the history chart.

Adobe shows one of three states for the last sync:
* Success: when it finished and how many products it updated (here also how many items the
  target did not accept: a run that completes with rejected items is a success, but not a clean one);
* Failed: when it was attempted, the error, and (here) a link to the failed task's log;
* In Progress: when the last successful sync finished.
Runs come from the status store (newest first); nothing here talks to Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SUCCESS, FAILED, IN_PROGRESS, NEVER = "Success", "Failed", "In Progress", "Never synced"


def as_datetime(value: datetime | str | None) -> datetime | None:
    """Status-store rows carry ISO 8601 strings."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def format_time(value: datetime | str | None) -> str:
    moment = as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


@dataclass(frozen=True)
class LastSync:
    state: str
    at: str | None  # ISO 8601. Success: ended; Failed: started (attempted); In Progress: the last success's end
    products_updated: int | None = None
    error: str | None = None
    run: dict[str, Any] | None = None  # the run the state is about
    not_accepted: int | None = None  # Success: items of the run the target did not accept (0: every one)


def last_sync(runs: list[dict[str, Any]]) -> LastSync:
    """`runs`: status-store rows, newest first. Dry runs change nothing on the target and are skipped."""
    real = [r for r in runs if not r.get("dry_run")]
    if not real:
        return LastSync(NEVER, None)
    latest = real[0]
    if latest["state"] == "running":
        done = next((r for r in real[1:] if r["state"] == "success"), None)
        return LastSync(IN_PROGRESS, done["ended_at"] if done else None, run=latest)
    if latest["state"] == "failed":
        return LastSync(FAILED, latest["started_at"], error=latest.get("error") or "unknown error", run=latest)
    updated = sum(latest.get(k) or 0 for k in ("inserted", "updated", "deleted"))
    return LastSync(SUCCESS, latest["ended_at"] or latest["started_at"], products_updated=updated, run=latest,
                    not_accepted=not_accepted(latest))


def not_accepted(run: dict[str, Any]) -> int:
    """Items not at the target as Magento has them after the run, in every feed (held from earlier
    runs too), as the run recorded it; runs before that column: the run's own failed items, every feed
    (its `failed` counts the primary feed only, so a rejected price beside an accepted product reads 0)."""
    if run.get("not_accepted") is not None:
        return run["not_accepted"]
    per_feed = sum((counts or {}).get("failed") or 0 for counts in (run.get("feeds") or {}).values())
    return max(run.get("failed") or 0, per_feed)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: list[tuple[str, float, float, int]]  # (operation, y, height, count)
    label: str


@dataclass(frozen=True)
class HistoryChart:
    """Coordinates for a server-drawn SVG: stacked bars of items per operation, a line of durations."""

    width: int
    height: int
    bars: list[Bar]
    duration_points: str  # SVG polyline points
    max_items: int
    max_duration_s: float

    OPERATIONS = ("inserted", "updated", "deleted", "failed")


def history_chart(runs: list[dict[str, Any]], width: int = 720, height: int = 180) -> HistoryChart:
    """`runs`: newest first (up to 48 drawn, oldest on the left)."""
    runs = list(reversed(runs[:48]))
    max_items = max([sum(r.get(op) or 0 for op in HistoryChart.OPERATIONS) for r in runs] + [1])
    max_duration = max([r.get("duration_s") or 0.0 for r in runs] + [1.0])
    slot = width / 48  # a fixed slot per run: bars keep their size while the history fills up
    bars, points = [], []
    for n, run in enumerate(runs):
        x = n * slot
        top = float(height)
        segments = []
        for op in HistoryChart.OPERATIONS:
            count = run.get(op) or 0
            h = height * count / max_items
            top -= h
            if count:
                segments.append((op, round(top, 1), round(h, 1), count))
        label = f"{format_time(run.get('started_at'))} {run.get('state')}"
        bars.append(Bar(round(x + slot * 0.15, 1), round(slot * 0.7, 1), segments, label))
        duration = run.get("duration_s") or 0.0
        points.append(f"{x + slot / 2:.1f},{height - height * duration / max_duration:.1f}")
    return HistoryChart(width, height, bars, " ".join(points), max_items, round(max_duration, 1))
