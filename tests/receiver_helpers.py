"""The reference receiver in a thread of the test process, for sync tests over real HTTP."""

from __future__ import annotations

import socket
import threading
import time

import requests

from catalog_sync.receiver import ReceiverOptions
from catalog_sync.receiver.server import base_url, build_server


class ThreadedReceiver:
    """`root` is where /_receiver/ lives; `target` is the base URL a sync sends to (with the tenant)."""

    def __init__(self, db_path: str, options: ReceiverOptions):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = build_server(port, db_path, options)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.root, self.target = f"http://127.0.0.1:{port}", base_url(port, options.tenant_id or "tenant")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.root}/_receiver/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the receiver did not start within 20 s")

    def get(self, path: str):
        return requests.get(f"{self.root}/_receiver/{path}", timeout=30).json()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# The receiver's read endpoints, by feed, and how each feed's key is read off an accepted body.
FEEDS = {
    "products": ("products", ("sku", "source")),
    "prices": ("prices", ("sku", "priceBookId")),
    "price_books": ("price-books", ("priceBookId",)),
    "metadata": ("metadata", ("code", "source")),
    "categories": ("categories", ("slug", "source")),
    "product_layers": ("product-layers", ("sku", "source")),
}


def receiver_state(root: str) -> dict[str, dict[str, dict]]:
    """What the receiver at `root` holds, as feed -> canonical key JSON -> body (the shape of mapped_source)."""
    from sync_helpers import key_text

    state = {}
    for feed, (endpoint, key_fields) in FEEDS.items():
        items = requests.get(f"{root}/_receiver/{endpoint}", timeout=30).json()
        if items:
            state[feed] = {key_text({f: body[f] for f in key_fields}): body for body in items.values()}
    return state


def accepted(root: str) -> dict[str, dict[str, int]]:
    """Items the receiver at `root` accepted so far, by feed and operation (its own count)."""
    return requests.get(f"{root}/_receiver/stats", timeout=10).json()["items"]


def accepted_since(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """What was accepted between two `accepted` readings, without the feeds and operations that got nothing."""
    grown = {feed: {op: n - before.get(feed, {}).get(op, 0) for op, n in ops.items()} for feed, ops in after.items()}
    return {feed: {op: n for op, n in ops.items() if n} for feed, ops in grown.items() if any(ops.values())}
