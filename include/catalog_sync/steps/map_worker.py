"""One process of a bucket's mapping (see diff.map_records): reads its job from stdin, prints what it made."""

from __future__ import annotations

import pickle
import sys

import orjson

from catalog_sync.steps.diff import map_job

if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(map_job(pickle.load(sys.stdin.buffer))))
