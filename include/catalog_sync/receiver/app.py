"""The reference receiver: a local implementation of the Catalog Data Ingestion API.

`create_app(ReceiverOptions(...))` returns a FastAPI app that answers the
contract's POST operations, and the PATCH of categories (contracts/catalog-data-ingestion-v1.yaml):

    /v1/catalog/products                 FeedProduct        create or replace, key (sku, source.locale)
    /v1/catalog/products/delete          FeedProductDelete  delete (idempotent)
    /v1/catalog/products/metadata        FeedMetadata       key (code, source.locale)
    /v1/catalog/products/metadata/delete FeedMetadataDelete
    /v1/catalog/price-books              FeedPricebook      key priceBookId
    /v1/catalog/price-books/delete       FeedPriceBookDelete
    /v1/catalog/products/prices          FeedPrices         key (sku, priceBookId)
    /v1/catalog/products/prices/delete   FeedPricesDelete
    /v1/catalog/categories[/delete]      FeedCategory[Delete]      key (slug, source.locale)
    PATCH /v1/catalog/categories         FeedCategoryUpdate        merged into the held category (none: no effect)
    /v1/catalog/products/layers[/delete] FeedProductLayer[Delete]  key (sku, source.locale, source.layer)

Base URL: the contract's server URL is `https://<host>/{tenantId}`, so clients
use `http://127.0.0.1:<port>/<tenantId>` and append `/v1/catalog/...`. The bare
`http://127.0.0.1:<port>/v1/...` is served too. With `tenant_id` set, any other
tenant segment answers 404.

Answers, as the contract says: 200 `{"status": "ACCEPTED", "acceptedCount": N}`;
400 `{"status": "FAILED", "message": ..., "errors": [{"itemIndex", "code",
"message", "value"}]}` and then NOTHING of that request is stored; 401 (wrong
token) / 403 (missing token); 429 with a `retry-after` header (seconds).
Outside the contract: 415 for a Content-Type other than application/json or an
unknown Content-Encoding, 500/502/503 for injected faults.

Faults (ReceiverOptions, changeable at runtime with POST /_receiver/faults) only
apply to the contract endpoints, never to /_receiver/. Per request, in order:
answer_next (queued statuses), latency, drop, 429, 5xx, then auth, parsing,
late_skus (no answer, applied later or when POST /_receiver/late/apply says), validation, reject_skus. The random
draws come from one `random.Random(seed)`: three draws per contract request, so
the same seed and request sequence give the same faults.

A dropped request gets no answer at all: under uvicorn the handler closes the
connection's transport (found through the ASGI `send` callable uvicorn passes,
a bound method of its request cycle), so the client sees the connection closed
without a response (requests: ConnectionError "Remote end closed connection
without response"). Where no transport can be found (starlette's TestClient,
other servers) the handler raises `ConnectionDropped` instead; TestClient
re-raises it to the caller, uvicorn would answer a plain 500.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import threading
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .ims import ImsSettings, TokenIssuer
from .store import ReceiverStore
from .validation import ContractValidator, ItemError, failed_response, server_base_path

RAW_SEND_KEY = "catalog_sync.receiver.send"
JSON_UTF8 = "application/json;charset=UTF-8"

# contract path -> (store kind, operation)
CONTRACT_ENDPOINTS: dict[str, tuple[str, str]] = {
    "/v1/catalog/products": ("products", "upsert"),
    "/v1/catalog/products/delete": ("products", "delete"),
    "/v1/catalog/products/metadata": ("metadata", "upsert"),
    "/v1/catalog/products/metadata/delete": ("metadata", "delete"),
    "/v1/catalog/price-books": ("price_books", "upsert"),
    "/v1/catalog/price-books/delete": ("price_books", "delete"),
    "/v1/catalog/products/prices": ("prices", "upsert"),
    "/v1/catalog/products/prices/delete": ("prices", "delete"),
    "/v1/catalog/categories": ("categories", "upsert"),
    "/v1/catalog/categories/delete": ("categories", "delete"),
    "/v1/catalog/products/layers": ("product_layers", "upsert"),
    "/v1/catalog/products/layers/delete": ("product_layers", "delete"),
}

# contract path -> store kind, for the PATCH (update) operations the receiver serves
UPDATE_ENDPOINTS: dict[str, str] = {
    "/v1/catalog/categories": "categories",
}

# /_receiver/<name> -> store kind
READ_ENDPOINTS = {
    "products": "products",
    "metadata": "metadata",
    "price-books": "price_books",
    "prices": "prices",
    "categories": "categories",
    "product-layers": "product_layers",
}

FIVE_XX = (500, 502, 503)


class ConnectionDropped(Exception):
    """Raised for a dropped request when the server's transport cannot be reached (e.g. TestClient)."""


@dataclass
class ReceiverOptions:
    """Settings of one receiver. Fault fields can be changed later with POST /_receiver/faults."""

    db_path: str = ":memory:"  # SQLite file of the accepted state; ":memory:" keeps it in memory
    spec_path: str | None = None  # the contract YAML; None: the copy shipped in this package
    tenant_id: str | None = None  # None: any /{tenantId}/v1/... prefix is accepted
    validate: bool = True  # False skips schema validation (throughput benchmark)
    required_token: str | None = None  # set: "Authorization: Bearer <token>" required (403 missing, 401 wrong)
    rate_429: float = 0.0  # share 0..1 of contract requests answered 429
    retry_after_s: int = 1  # the retry-after header (seconds) of a 429
    rate_5xx: float = 0.0  # share 0..1 of contract requests answered 500, 502 or 503
    latency_s: float = 0.0  # sleep before answering a contract request
    latency_rate: float = 1.0  # share 0..1 of contract requests that get the latency
    drop_rate: float = 0.0  # share 0..1 of contract requests whose connection is closed without an answer
    reject_skus: frozenset[str] = field(default_factory=frozenset)  # items with these SKUs are always invalid
    # The next contract requests get these HTTP statuses, one each, in order (a 400 without itemIndex).
    answer_next: tuple[int, ...] = ()
    # The first request holding one of these SKUs gets no answer (the connection closes), and is
    # applied `late_apply_s` later: a gateway that timed out while the backend still works.
    # None holds it until POST /_receiver/late/apply, so a test orders the late write itself.
    late_skus: frozenset[str] = field(default_factory=frozenset)
    late_apply_s: float | None = 2.0
    seed: int | None = None  # seed of the fault draws (None: random)
    ims: ImsSettings | None = None  # set: serve POST /ims/token/v3 and accept the tokens it issues

    def __post_init__(self) -> None:
        self.reject_skus = frozenset(self.reject_skus or ())
        self.late_skus = frozenset(self.late_skus or ())
        self.answer_next = tuple(self.answer_next or ())
        check_fault_values(asdict(self))


FAULT_FIELDS = (
    "validate",
    "required_token",
    "rate_429",
    "retry_after_s",
    "rate_5xx",
    "latency_s",
    "latency_rate",
    "drop_rate",
    "reject_skus",
    "answer_next",
    "late_skus",
    "late_apply_s",
    "seed",
)
_SKU_SETS = ("reject_skus", "late_skus")


def check_fault_values(values: dict[str, Any]) -> None:
    """Raise ValueError when a fault setting is out of range or of the wrong type."""
    for name in ("rate_429", "rate_5xx", "drop_rate", "latency_rate"):
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    for name in ("latency_s", "late_apply_s"):
        value = values.get(name, 0)
        if name == "late_apply_s" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    statuses = values.get("answer_next", ())
    if isinstance(statuses, str) or not isinstance(statuses, Iterable) or \
            not all(isinstance(c, int) and not isinstance(c, bool) and 400 <= c <= 599 for c in statuses):
        raise ValueError(f"answer_next must be a list of HTTP statuses 400-599, got {statuses!r}")
    if "retry_after_s" in values:
        value = values["retry_after_s"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"retry_after_s must be an integer >= 0, got {value!r}")
    if "validate" in values and not isinstance(values["validate"], bool):
        raise ValueError(f"validate must be true or false, got {values['validate']!r}")
    if "required_token" in values and values["required_token"] is not None:
        if not isinstance(values["required_token"], str):
            raise ValueError("required_token must be a string or null")
    if "seed" in values and values["seed"] is not None:
        if isinstance(values["seed"], bool) or not isinstance(values["seed"], int):
            raise ValueError("seed must be an integer or null")
    for name in _SKU_SETS:
        skus = values.get(name, ())
        if isinstance(skus, str) or not isinstance(skus, Iterable) or not all(isinstance(s, str) for s in skus):
            raise ValueError(f"{name} must be a list of strings")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, ensure_ascii=False), status_code=status, media_type=JSON_UTF8, headers=headers
    )


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self.faults: dict[str, int] = {"latency": 0, "drop": 0, "429": 0, "5xx": 0, "reject_sku_items": 0,
                                           "answered_next": 0, "late": 0, "late_applied": 0}
            self.items: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def request(self, endpoint: str, status: int | str) -> None:
        with self._lock:
            self.requests[endpoint][str(status)] += 1

    def fault(self, name: str, count: int = 1) -> None:
        with self._lock:
            self.faults[name] += count

    def accepted(self, kind: str, operation: str, count: int) -> None:
        with self._lock:
            self.items[kind][operation] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {endpoint: dict(by_status) for endpoint, by_status in self.requests.items()},
                "faults": dict(self.faults),
                "faults_injected": sum(self.faults[k] for k in ("drop", "429", "5xx", "answered_next", "late")),
                "items": {kind: dict(ops) for kind, ops in self.items.items()},
            }


class ReceiverState:
    """Everything one app instance shares between requests."""

    def __init__(self, options: ReceiverOptions):
        self.options = options
        self.validator = ContractValidator(options.spec_path)
        self.store = ReceiverStore(options.db_path)
        self.stats = _Stats()
        self._lock = threading.Lock()
        self.faults = {name: getattr(options, name) for name in FAULT_FIELDS}
        self.ims = TokenIssuer(options.ims) if options.ims else None
        self._rng = random.Random(options.seed)
        self.held_late: list[Callable[[], None]] = []  # late requests waiting for POST /_receiver/late/apply

    def fault_settings(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self.faults)
        for name in _SKU_SETS:
            out[name] = sorted(out[name])
        out["answer_next"] = list(out["answer_next"])
        return out

    def update_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(changes) - set(FAULT_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}; known: {list(FAULT_FIELDS)}")
        check_fault_values(changes)
        with self._lock:
            for name, value in changes.items():
                self.faults[name] = frozenset(value) if name in _SKU_SETS else tuple(value) if name == "answer_next" else value
            if "seed" in changes:
                self._rng = random.Random(changes["seed"])
        return self.fault_settings()

    def draw(self) -> tuple[dict[str, Any], float, float, float, float, int]:
        """The fault settings and this request's four draws (latency, drop, 429, 5xx) plus a 5xx status."""
        with self._lock:
            settings = dict(self.faults)
            slow, drop, r429, r5xx = self._rng.random(), self._rng.random(), self._rng.random(), self._rng.random()
            status = self._rng.choice(FIVE_XX)
        return settings, slow, drop, r429, r5xx, status

    def next_answer(self) -> int | None:
        """The status queued for this request by `answer_next`, if any (consumed)."""
        with self._lock:
            queued = self.faults["answer_next"]
            if not queued:
                return None
            self.faults["answer_next"] = queued[1:]
            return queued[0]

    def take_late(self, items: list[Any]) -> bool:
        """Whether this request is the first to hold one of the `late_skus` (which then leave the list)."""
        with self._lock:
            hit = {i["sku"] for i in items if isinstance(i, dict) and i.get("sku") in self.faults["late_skus"]}
            self.faults["late_skus"] = self.faults["late_skus"] - hit
        return bool(hit)


def _queued_answer(status: int) -> Response:
    if status == 400:  # a gateway's 400: no errors[].itemIndex, so no item is to blame
        return _json({"status": "FAILED", "message": "Bad Request", "errors": []}, 400)
    return Response(f"Injected answer {status}", status_code=status, media_type="text/plain")


async def _drop_connection(request: Request) -> Response:
    """Close the client connection without an answer (see the module doc)."""
    raw_send = request.scope.get(RAW_SEND_KEY)
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not callable(getattr(transport, "close", None)):
        raise ConnectionDropped("receiver fault: connection dropped without an answer")
    transport.close()
    # Let uvicorn notice (connection_lost marks the cycle disconnected, after
    # which everything sent is discarded and nothing is logged as an error).
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    return Response(status_code=499)  # never reaches the client


def _auth_error(settings: dict[str, Any], authorization: str | None, issuer: TokenIssuer | None) -> Response | None:
    token = settings["required_token"]
    if not token and issuer is None:
        return None
    if not authorization or not authorization.strip():
        return _json(
            {"title": "ErrMissingOauthToken", "status": "403", "error_code": "403010", "message": "Oauth token is missing"},
            403,
        )
    scheme, _, given = authorization.strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not ((token and given == token) or (issuer and issuer.is_valid(given))):
        return _json(
            {"title": "ErrInvalidOauthToken", "status": "401", "error_code": "401013", "message": "Oauth token is not valid"},
            401,
        )
    return None


def _request_error(message: str, status: int = 400) -> Response:
    return _json({"status": "FAILED", "message": message, "errors": []}, status)


def _decode_body(request: Request, raw: bytes) -> tuple[Any, Response | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None, _request_error(f"Content-Type must be application/json, got {content_type!r}", 415)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            return None, _request_error(f"Body is not valid gzip: {exc}")
    elif encoding not in ("", "identity"):
        return None, _request_error(f"Content-Encoding {encoding!r} is not supported (use gzip or none)", 415)
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:  # also bad UTF-8
        return None, _request_error(f"Body is not valid JSON: {exc}")


def _reject_errors(items: list[Any], reject_skus: frozenset[str]) -> list[ItemError]:
    if not reject_skus:
        return []
    return [
        ItemError(index, "sku", f"Invalid SKU: '{item['sku']}' is rejected by this receiver (reject_skus)", item["sku"])
        for index, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get("sku"), str) and item["sku"] in reject_skus
    ]


class ReceiverApp(FastAPI):
    """FastAPI that keeps the server's own ASGI `send` in the scope (used to drop connections)."""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        if scope.get("type") == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def create_app(options: ReceiverOptions | None = None) -> FastAPI:
    options = options or ReceiverOptions()
    state = ReceiverState(options)
    app = ReceiverApp(
        title="Catalog Sync reference receiver",
        description="Local implementation of the Catalog Data Ingestion API contract, for tests and the demo.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.receiver = state

    base = server_base_path(state.validator.spec)  # "/{tenantId}" for the ACO contract
    tenant_param = base[2:-1] if base.startswith("/{") and base.endswith("}") and base.count("/") == 1 else None

    def process(path: str, kind: str, operation: str, items: list[Any], settings: dict[str, Any]) -> Response:
        schema_name = state.validator.item_schema("patch" if operation == "update" else "post", path)
        errors: list[ItemError] = []
        if settings["validate"]:
            errors = state.validator.validate_items(schema_name, items)
        else:
            errors = [
                ItemError(i, schema_name, f"{schema_name}: item must be a JSON object", json.dumps(item))
                for i, item in enumerate(items)
                if not isinstance(item, dict)
            ]
        rejected = _reject_errors(items, settings["reject_skus"])
        if rejected:
            state.stats.fault("reject_sku_items", len(rejected))
            errors = sorted([*errors, *rejected], key=lambda e: e.item_index)
        if errors:
            return _json(failed_response(errors), 400)
        if operation == "upsert":
            state.store.upsert(kind, items)
        elif operation == "update":
            state.store.update(kind, items)
        else:
            state.store.delete(kind, items)
        state.stats.accepted(kind, operation, len(items))
        return _json({"status": "ACCEPTED", "acceptedCount": len(items)})

    async def handle(request: Request, path: str, kind: str, operation: str) -> Response:
        method = "PATCH" if operation == "update" else "POST"
        endpoint = f"{method} {path}"
        if tenant_param and options.tenant_id is not None:
            tenant = request.path_params.get(tenant_param)
            if tenant is not None and tenant != options.tenant_id:
                state.stats.request(endpoint, 404)
                return _json({"message": f"unknown tenant {tenant!r}"}, 404)
        raw = await request.body()
        settings, slow, drop, r429, r5xx, status_5xx = state.draw()
        queued = state.next_answer()
        if queued is not None:
            state.stats.fault("answered_next")
            state.stats.request(endpoint, queued)
            return _queued_answer(queued)
        if settings["latency_s"] > 0 and slow < settings["latency_rate"]:
            state.stats.fault("latency")
            await asyncio.sleep(settings["latency_s"])
        if drop < settings["drop_rate"]:
            state.stats.fault("drop")
            state.stats.request(endpoint, "dropped")
            return await _drop_connection(request)
        if r429 < settings["rate_429"]:
            state.stats.fault("429")
            state.stats.request(endpoint, 429)
            return Response(
                "Too Many Requests",
                status_code=429,
                media_type="text/html;charset=UTF-8",
                headers={"retry-after": str(settings["retry_after_s"])},
            )
        if r5xx < settings["rate_5xx"]:
            state.stats.fault("5xx")
            state.stats.request(endpoint, status_5xx)
            return Response(f"Injected fault {status_5xx}", status_code=status_5xx, media_type="text/plain")
        response = _auth_error(settings, request.headers.get("authorization"), state.ims)
        if response is None:
            body, response = _decode_body(request, raw)
        if response is None:
            if not isinstance(body, list):
                response = _request_error(
                    f"Body must be a JSON array of {state.validator.item_schema(method.lower(), path)} items"
                )
            elif settings["late_skus"] and state.take_late(body):
                state.stats.fault("late")
                state.stats.request(endpoint, "late")
                def apply_late(body: list[Any] = body) -> None:
                    process(path, kind, operation, body, settings)
                    state.stats.fault("late_applied")

                if settings["late_apply_s"] is None:
                    state.held_late.append(apply_late)
                else:
                    asyncio.get_running_loop().call_later(settings["late_apply_s"], apply_late)
                return await _drop_connection(request)
            else:
                # In the event loop's own thread: handing each batch to a worker thread cost more CPU
                # than the work itself (receiver CPU per 184,874 items: 7.8 s with, 5.0 s without).
                response = process(path, kind, operation, body, settings)
        state.stats.request(endpoint, response.status_code)
        return response

    def add_contract_route(path: str, kind: str, operation: str) -> None:
        method = "PATCH" if operation == "update" else "POST"

        async def endpoint(request: Request) -> Response:
            return await handle(request, path, kind, operation)

        endpoint.__name__ = f"contract_{method.lower()}_" + path.strip("/").replace("/", "_").replace("-", "_")
        # Plain Starlette routes: the handler takes the Request and builds its Response itself, so
        # FastAPI's per-request parameter and response machinery would only add CPU.
        app.router.add_route(path, endpoint, methods=[method], include_in_schema=False)
        if tenant_param:
            app.router.add_route(base + path, endpoint, methods=[method], include_in_schema=False)

    for path, (kind, operation) in CONTRACT_ENDPOINTS.items():
        if ("post", path) in state.validator.item_schemas:
            add_contract_route(path, kind, operation)
    for path, kind in UPDATE_ENDPOINTS.items():
        if ("patch", path) in state.validator.item_schemas:
            add_contract_route(path, kind, "update")

    # ---- /_receiver/: outside the contract, never faulted ----

    @app.get("/_receiver/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_receiver/stats")
    async def stats() -> dict[str, Any]:
        tokens = {"ims_tokens_issued": state.ims.issued} if state.ims else {}
        return {**state.stats.snapshot(), "stored": state.store.counts(), **tokens}

    if state.ims is not None:
        @app.post("/ims/token/v3")
        async def ims_token(request: Request) -> Response:
            status, body = state.ims.answer(await request.body())
            return _json(body, status)

    @app.post("/_receiver/reset")
    async def reset() -> dict[str, Any]:
        state.store.reset()
        state.stats.reset()
        return {"status": "reset", "stored": state.store.counts()}

    @app.post("/_receiver/late/apply")
    async def apply_held_late() -> dict[str, int]:
        held, state.held_late = state.held_late, []
        for apply_late in held:
            apply_late()
        return {"applied": len(held)}

    @app.get("/_receiver/faults")
    async def get_faults() -> dict[str, Any]:
        return state.fault_settings()

    @app.post("/_receiver/faults")
    async def set_faults(request: Request) -> Response:
        try:
            changes = await request.json()
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return JSONResponse({"message": f"Body is not valid JSON: {exc}"}, 400)
        if not isinstance(changes, dict):
            return JSONResponse({"message": "Body must be a JSON object of fault settings"}, 400)
        try:
            return JSONResponse(state.update_faults(changes))
        except ValueError as exc:
            return JSONResponse({"message": str(exc)}, 400)

    @app.get("/_receiver/products/{sku:path}")
    async def product(sku: str, locale: str | None = None) -> Response:
        if locale is not None:
            found = state.store.get("products", sku, locale)
        else:
            found = state.store.product_locales(sku) or None
        if found is None:
            return JSONResponse({"message": f"no accepted product {sku!r}" + (f" in {locale!r}" if locale else "")}, 404)
        return JSONResponse(found)

    def add_read_route(name: str, kind: str) -> None:
        async def read_all() -> dict[str, Any]:
            return state.store.all(kind)

        async def read_raw() -> dict[str, str]:
            return state.store.bodies(kind)

        read_all.__name__, read_raw.__name__ = "read_" + kind, "read_raw_" + kind
        app.add_api_route(f"/_receiver/{name}", read_all, methods=["GET"])
        # The exact JSON text each item is stored as (the bytes a client sent, as orjson writes them back).
        app.add_api_route(f"/_receiver/raw/{name}", read_raw, methods=["GET"])

    for name, kind in READ_ENDPOINTS.items():
        add_read_route(name, kind)

    return app


__all__ = [
    "CONTRACT_ENDPOINTS",
    "ConnectionDropped",
    "ReceiverApp",
    "ReceiverOptions",
    "create_app",
]
