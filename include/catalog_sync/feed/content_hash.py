"""The content hash of a feed record: stable across library versions.

sha1 over a canonical JSON serialization (orjson, sorted keys, no
whitespace). Volatile fields are left out so that Magento bumping
`updated_at` without a real change does not re-send the item. Never use
DuckDB's hash() or Polars' row hash here: a snapshot outlives their versions.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

VOLATILE_FIELDS = frozenset({"updated_at"})
HASH_ALGORITHM = "sha1"


def canonical_json(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def content_hash(payload: dict[str, Any]) -> str:
    stable = {k: v for k, v in payload.items() if k not in VOLATILE_FIELDS}
    return hashlib.sha1(canonical_json(stable), usedforsecurity=False).hexdigest()
