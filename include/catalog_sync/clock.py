"""Operational time: lock leases, status timestamps, durations, timeouts, backoff, token expiry.

Every such read in the engine goes through this module, so tests can drive time with
`use(FakeClock(...))`. Date questions about the catalog (price windows, `exported_at`,
scheduled updates) are answered from the run's instant instead (`run_clock`): pinning
that instant for a replay never moves a lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, deadlines)."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (`advance`, or `sleep`, which returns at once)."""

    def __init__(self, start: datetime, monotonic_start: float = 1000.0):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(timezone.utc)
        self._monotonic = monotonic_start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self.advance(seconds)


_current: Clock = SystemClock()


def now() -> datetime:
    return _current.now()


def monotonic() -> float:
    return _current.monotonic()


def sleep(seconds: float) -> None:
    _current.sleep(seconds)


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Make `clock` the engine's operational clock inside the block (tests)."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous
