"""Long lists of ids, cut into slices for `IN (...)` lists a database takes comfortably."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# Ids per statement: a few kB of SQL, well under every database's limits, and few round trips.
IDS_PER_QUERY = 5000


def slices(items: Sequence[T], size: int = IDS_PER_QUERY) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
