"""Hash buckets of sku: how a large catalog is split into mapped tasks.

An item's bucket is the first 32 bits of sha1(sku), modulo the number of buckets:
pinned, and the same in Python (the extract's id split) and in DuckDB (the diff's
snapshot side), so every (sku, store view) lands in exactly one bucket. With one
bucket everything is bucket 0 and nothing is filtered.
"""

from __future__ import annotations

import hashlib

MAX_BUCKETS = 256


def bucket_of(sku: str, buckets: int) -> int:
    if buckets <= 1:
        return 0
    return int(hashlib.sha1(sku.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16) % buckets


def duckdb_bucket(column: str, buckets: int) -> str:
    """The same function as a DuckDB expression over a VARCHAR column."""
    return f"(('0x' || substr(sha1({column}), 1, 8))::UBIGINT % {buckets})"


def part(name: str, bucket: int, ext: str = "parquet") -> str:
    """A bucket's file in the staging folder, e.g. delta-b003.parquet."""
    return f"{name}-b{bucket:03d}.{ext}"


def all_parts(name: str, ext: str = "parquet") -> str:
    """A glob over every bucket's file."""
    return f"{name}-b*.{ext}"


def check_buckets(buckets: int) -> int:
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be between 1 and {MAX_BUCKETS}, got {buckets}")
    return buckets
