"""File sink: one JSONL delta file per run in a folder (local or fsspec URL).

Each line is `{"op": "upsert", "sku", "store_view_code", "record": {...}}` or
`{"op": "delete", "sku", "store_view_code", "product_id"}`. Files are named
after the run, so re-running an export replaces its own file, and sorting the
names replays the deltas in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

import orjson
from fsspec.core import url_to_fs

from catalog_sync.sinks.base import DELETE, OK, UPSERT, DeltaItem, ItemResult

DELTA_FOLDER = "deltas"


class FileSink:
    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = url_to_fs(url)
        self.root = self.root.rstrip("/")
        self.description = f"JSONL files in {url}"

    def send(self, items: Iterable[DeltaItem], run_key: str) -> Iterator[ItemResult]:
        folder = f"{self.root}/{DELTA_FOLDER}"
        self.fs.makedirs(folder, exist_ok=True)
        final = f"{folder}/{run_key}.jsonl"
        tmp = f"{final}.tmp-{uuid.uuid4().hex}"
        results: list[ItemResult] = []
        with self.fs.open(tmp, "wb") as fh:
            for item in items:
                head = {"op": item.op, "sku": item.sku, "store_view_code": item.store_view_code}
                if item.op == UPSERT:
                    # The canonical JSON goes through as is: no decode/encode per item.
                    fh.write(orjson.dumps(head)[:-1] + b',"record":' + item.payload_json.encode() + b"}\n")
                else:
                    fh.write(orjson.dumps({**head, "product_id": item.product_id}) + b"\n")
                results.append(ItemResult(item.sku, item.store_view_code, OK))
        # The file appears whole or not at all; a re-run replaces it. No items, no file.
        if results:
            self.fs.mv(tmp, final)
        else:
            self.fs.rm(tmp)
            if self.fs.exists(final):
                self.fs.rm(final)
        yield from results

    def close(self) -> None:
        pass


def replay_file_target(url: str) -> dict[tuple[str, str], dict]:
    """The state a consumer of the delta files ends up with: every upsert and delete applied in order."""
    fs, root = url_to_fs(url)
    folder = f"{root.rstrip('/')}/{DELTA_FOLDER}"
    state: dict[tuple[str, str], dict] = {}
    if not fs.exists(folder):
        return state
    for path in sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".jsonl")):
        with fs.open(path, "rb") as fh:
            for raw in fh:
                line = orjson.loads(raw)
                key = (line["sku"], line["store_view_code"])
                if line["op"] == UPSERT:
                    state[key] = line["record"]
                elif line["op"] == DELETE:
                    state.pop(key, None)
    return state
