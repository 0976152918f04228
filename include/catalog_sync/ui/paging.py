"""One page of a listing, shared by the page's lists and its JSON endpoints.

Asking past the last page is not an error: it answers an empty page that says how many
pages there are. The offset is only computed, and only sent to a database, when it lies
inside the listing, so a page number of any size cannot overflow a 64-bit OFFSET.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    page: int  # as asked (1-based), even past the end
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def past_end(self) -> bool:
        return self.page > self.pages


def offset_in(total: int, page: int, page_size: int) -> int | None:
    """The first row of `page`, or None when the page starts past the last row (nothing to read)."""
    offset = (max(1, page) - 1) * page_size
    return offset if offset < total else None
