"""Reference receiver: a local HTTP server implementing the Catalog Data Ingestion API contract.

For tests and the demo. See `app` for the behaviour, `server` to run it:

    from catalog_sync.receiver import ReceiverOptions, create_app, serve
    serve(8765, "/tmp/receiver.db", ReceiverOptions(tenant_id="demo"))
    # clients: base URL http://127.0.0.1:8765/demo, POST <base>/v1/catalog/products
"""

from .app import CONTRACT_ENDPOINTS, ConnectionDropped, ReceiverOptions, create_app
from .store import ReceiverStore
from .validation import DEFAULT_SPEC_PATH, ContractValidator

__all__ = [
    "CONTRACT_ENDPOINTS",
    "DEFAULT_SPEC_PATH",
    "ConnectionDropped",
    "ContractValidator",
    "ReceiverOptions",
    "ReceiverStore",
    "base_url",
    "build_server",
    "create_app",
    "serve",
]


def __getattr__(name: str):
    # `server` is imported lazily so `python -m catalog_sync.receiver.server` runs without a runpy warning.
    if name in ("base_url", "build_server", "serve"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
