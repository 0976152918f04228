"""The run's instant: the one "now" that every date question of a run is answered from.

`plan` fixes it once (`run_instant`) and keeps it in the plan, so a retried task reuses
it. Price windows are judged on each store view's own local date at that instant
(`local_date`, in the time zone Magento configures for the view), `exported_at` is that
instant, and tests and replays pin it with CATALOG_SYNC_NOW=2026-12-01T03:00:00Z.

Operational time (leases, durations, backoff) is not asked here: see `clock`.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog_sync import clock
from catalog_sync.settings import ConfigurationError

PIN_ENV = "CATALOG_SYNC_NOW"


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset ('2026-12-01T03:00:00Z', '...+09:00'), as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigurationError(
            f"{PIN_ENV} must be an ISO 8601 instant with its offset, e.g. 2026-12-01T03:00:00Z; got {text!r}")
    return moment.astimezone(timezone.utc)


def run_instant(pinned: datetime | None = None) -> datetime:
    """The instant a new run is judged at: the pinned one, else now (operational clock), to the second."""
    moment = pinned if pinned is not None else clock.now()
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def format_instant(moment: datetime) -> str:
    """As `exported_at` has always been written: 2026-12-01T03:00:00+00:00."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=256)
def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {name!r} in Magento's general/locale/timezone: use an IANA name such as "
            "America/Sao_Paulo") from exc


def local_date(instant: datetime, zone: str) -> date:
    """The calendar date in `zone` at `instant`: the day Magento judges a store's date windows on."""
    return instant.astimezone(time_zone(zone)).date()
