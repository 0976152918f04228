"""What a consumer of the file target ends up holding: every line applied in file-name order.

The same rules as the API's: an upsert creates or replaces the item with that key, a delete
removes it (deleting a missing item is fine), deleting a price book deletes its prices, and
a price whose price book does not exist is ignored.
"""

from __future__ import annotations

import orjson
from fsspec.core import url_to_fs

from catalog_sync.targets.files.target import DELTA_FOLDER

State = dict[str, dict[str, dict]]  # feed -> canonical key JSON -> body


def replay(url: str) -> State:
    fs, root = url_to_fs(url)
    folder = f"{root.rstrip('/')}/{DELTA_FOLDER}"
    state: State = {}
    if not fs.exists(folder):
        return state
    for path in sorted(p for p in fs.find(folder) if p.endswith(".jsonl")):
        with fs.open(path, "rb") as fh:
            for raw in fh:
                apply(state, orjson.loads(raw))
    return {feed: items for feed, items in state.items() if items}


def apply(state: State, line: dict) -> None:
    feed, key = line["feed"], line["key"]
    items = state.setdefault(feed, {})
    key_text = orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()
    if line["op"] == "upsert":
        if feed == "prices" and _book_key(key["priceBookId"]) not in state.get("price_books", {}):
            return  # the contract: prices that reference a non-existing price book are ignored
        items[key_text] = line["body"]
    else:
        items.pop(key_text, None)
        if feed == "price_books":
            prices = state.get("prices", {})
            for price_key in [k for k, body in prices.items() if body.get("priceBookId") == key["priceBookId"]]:
                del prices[price_key]


def _book_key(book: str) -> str:
    return orjson.dumps({"priceBookId": book}, option=orjson.OPT_SORT_KEYS).decode()
