"""The ingestion API's client and target against a scripted HTTP server on 127.0.0.1 (and the IMS token client)."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from catalog_sync.magento.catalog_reader import Attribute
from catalog_sync.targets.base import DELETE, OK, REJECTED, RETRYABLE, UPSERT, ItemResult, SendItem, canonical
from catalog_sync.targets.ingestion_api import mapping
from catalog_sync.targets.ingestion_api.auth import ImsClientCredentials, IngestionAuthError, StaticToken
from catalog_sync.targets.ingestion_api.client import IngestionApiClient, IngestionApiError
from catalog_sync.targets.ingestion_api.config import IngestionApiConfig
from catalog_sync.targets.ingestion_api.feeds import METADATA, PRODUCTS
from catalog_sync.targets.ingestion_api.target import IngestionApiTarget
from test_ingestion_mapping import assert_valid, configurable_child, request_schema_name

TOKEN = "s3cr3t-token-value"
TENANT = "tenant123"


# ---- the scripted server ------------------------------------------------------------------


@dataclass
class Request:
    at: float
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


# An action: ("status", code, json_body | None, headers), ("slow", seconds), ("close",)
Action = tuple


@dataclass
class Server:
    url: str
    requests: list[Request] = field(default_factory=list)
    script: dict[str, deque[Action | Callable[[Request], Action]]] = field(default_factory=lambda: defaultdict(deque))
    in_flight: int = 0
    max_in_flight: int = 0
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, path: str, *actions: Action | Callable[[Request], Action]) -> None:
        self.script[path].extend(actions)

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    def skus(self, path: str) -> list[list[str]]:
        return [[item["sku"] for item in body] for body in self.bodies(path)]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            if self.headers.get("Content-Type") == "application/json":
                body = json.loads(raw)
            else:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            path = self.path.removeprefix(f"/{TENANT}")
            request = Request(time.monotonic(), path, dict(self.headers), body, raw)
            with server.lock:
                server.requests.append(request)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                script = server.script[path]
                action = script.popleft() if script else ("status", 200, None, {})
            try:
                time.sleep(server.delay_s)
                self._act(action(request) if callable(action) else action, request)
            finally:
                with server.lock:
                    server.in_flight -= 1

        def _act(self, action: Action, request: Request) -> None:
            if action[0] == "close":
                self.close_connection = True
                return
            if action[0] == "slow":
                time.sleep(action[1])
                action = ("status", 200, None, {})
            _, code, body, headers = action
            if body is None and code == 200:
                body = {"status": "ACCEPTED", "acceptedCount": len(request.body)}
            data = json.dumps(body).encode() if body is not None else b""
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def server():
    state = Server(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


class CountingAuth:
    """Hands out token-1, then token-2 after each invalidate()."""

    def __init__(self) -> None:
        self.generation = 1
        self.invalidations = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}-{self.generation}"}

    def invalidate(self) -> None:
        self.invalidations += 1
        self.generation += 1


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)
    real: bool = True

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.real:
            time.sleep(seconds)


def make_client(server: Server, **kwargs: Any) -> IngestionApiClient:
    options: dict[str, Any] = dict(batch_size=100, max_requests_per_minute=None, timeout_s=2.0, max_attempts=4,
                                   backoff_base_s=0.001, backoff_cap_s=0.01, max_in_flight=1)
    options.update(kwargs)
    return IngestionApiClient(f"{server.url}/{TENANT}", options.pop("auth", StaticToken(TOKEN)), **options)


def record(sku: str, **overrides: Any) -> dict[str, Any]:
    base = {**configurable_child(), "sku": sku, "store_view_code": "default", "locale": "en_US", "parent_skus": []}
    return {**base, **overrides}


def upsert(sku: str, **overrides: Any) -> SendItem:
    rec = record(sku, **overrides)
    return SendItem(canonical(mapping.product_key(sku, rec["locale"])).decode(), canonical(mapping.feed_product(rec)).decode())


def delete(sku: str, locale: str = "en_US") -> SendItem:
    return SendItem(canonical(mapping.product_key(sku, locale)).decode(), None)


def run(client: IngestionApiClient, items: list[SendItem], endpoint: str = "/v1/catalog/products") -> dict[str, ItemResult]:
    """Send through the client; one result per item, by the item's sku."""
    if any(i.body is None for i in items) and endpoint == "/v1/catalog/products":
        endpoint = "/v1/catalog/products/delete"
    results = list(client.send(endpoint, items))
    client.close()
    by_sku = {orjson.loads(r.key)["sku"]: r for r in results}
    assert len(results) == len(items) == len(by_sku), results  # exactly one result per item
    return by_sku


def statuses(results: dict[str, ItemResult]) -> dict[str, str]:
    return {sku: r.status for sku, r in sorted(results.items())}


def assert_bodies_valid(server: Server) -> None:
    for request in server.requests:
        schema = request_schema_name(request.path)
        for item in request.body:
            assert_valid(schema, item)


def status(code: int, body: Any = None, **headers: str) -> Action:
    return ("status", code, body, headers)


def invalid(*indexes: int) -> Action:
    errors = [{"itemIndex": i, "code": "slug", "message": f"bad slug {i}", "value": "x"} for i in indexes]
    return status(400, {"status": "FAILED", "message": f"Items validation failed for {len(indexes)} items", "errors": errors})


# ---- delivery ---------------------------------------------------------------------------------


def test_batches_per_endpoint_gzip_headers_and_valid_bodies(server: Server) -> None:
    results = run(make_client(server, batch_size=2), [upsert(f"P{i}") for i in range(5)])
    results.update(run(make_client(server, batch_size=2), [delete("D1"), delete("D2", "pt_BR")]))
    assert set(statuses(results).values()) == {OK}
    assert all(r.reason is None for r in results.values())
    assert server.skus("/v1/catalog/products") == [["P0", "P1"], ["P2", "P3"], ["P4"]]
    assert server.bodies("/v1/catalog/products/delete") == [
        [{"sku": "D1", "source": {"locale": "en-US"}}, {"sku": "D2", "source": {"locale": "pt-BR"}}]
    ]
    assert server.bodies("/v1/catalog/products")[0][0] == mapping.feed_product(record("P0"))
    for request in server.requests:
        assert request.headers["Content-Encoding"] == "gzip"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert_bodies_valid(server)


def test_400_rejects_the_listed_items_and_resends_the_rest(server: Server, caplog) -> None:
    server.queue("/v1/catalog/products", invalid(1, 3))
    caplog.set_level(logging.DEBUG)
    results = run(make_client(server), [upsert(f"P{i}") for i in range(5)])
    assert statuses(results) == {"P0": OK, "P1": REJECTED, "P2": OK, "P3": REJECTED, "P4": OK}
    assert results["P1"].reason == "HTTP 400: slug: bad slug 1"
    assert results["P3"].reason == "HTTP 400: slug: bad slug 3"
    assert server.skus("/v1/catalog/products") == [["P0", "P1", "P2", "P3", "P4"], ["P0", "P2", "P4"]]
    assert server.bodies("/v1/catalog/products")[1] == [mapping.feed_product(record(s)) for s in ("P0", "P2", "P4")]
    assert "2 of 5 item(s) rejected, re-sending 3" in caplog.text
    assert TOKEN not in caplog.text and "Moletom" not in caplog.text


def test_400_on_the_resent_rest_rejects_by_its_new_index(server: Server) -> None:
    server.queue("/v1/catalog/products", invalid(0), invalid(1))
    results = run(make_client(server), [upsert(f"P{i}") for i in range(4)])
    assert statuses(results) == {"P0": REJECTED, "P1": OK, "P2": REJECTED, "P3": OK}
    assert server.skus("/v1/catalog/products") == [["P0", "P1", "P2", "P3"], ["P1", "P2", "P3"], ["P1", "P3"]]


def test_400_naming_no_item_is_retried_not_rejected(server: Server) -> None:
    # A gateway's 400 blames no item: nothing says the items are bad, so they are retried.
    server.queue("/v1/catalog/products", status(400, {"status": "FAILED", "message": "Malformed JSON"}))
    results = run(make_client(server), [upsert("P0"), upsert("P1")])
    assert statuses(results) == {"P0": OK, "P1": OK}
    assert server.skus("/v1/catalog/products") == [["P0", "P1"], ["P0", "P1"]]

    server.requests.clear()
    server.queue("/v1/catalog/products", *[status(400, {"status": "FAILED", "message": "Malformed JSON", "errors": []})] * 2)
    results = run(make_client(server, max_attempts=2), [upsert("P2")])
    assert (results["P2"].status, results["P2"].reason) == (RETRYABLE, "HTTP 400 naming no item: Malformed JSON (2 attempts)")


@pytest.mark.parametrize("code", [408, 409, 400, 422, 451])
def test_a_bare_4xx_on_a_batch_is_retried_and_the_batch_arrives(server: Server, code: int) -> None:
    server.queue("/v1/catalog/products", status(code))
    results = run(make_client(server), [upsert(f"P{i}") for i in range(100)])
    assert set(statuses(results).values()) == {OK}
    assert len(server.requests) == 2 and server.skus("/v1/catalog/products")[0] == server.skus("/v1/catalog/products")[1]


def test_a_bare_4xx_that_persists_leaves_the_items_retryable_with_the_answer(server: Server) -> None:
    server.queue("/v1/catalog/products", *[status(409, {"message": "Conflict: catalog is being rebuilt"})] * 3)
    results = run(make_client(server, max_attempts=3), [upsert("P0")])
    assert (results["P0"].status, results["P0"].reason) == (RETRYABLE, "HTTP 409: Conflict: catalog is being rebuilt (3 attempts)")


def test_413_splits_in_halves(server: Server) -> None:
    server.queue("/v1/catalog/products", status(413), status(200), status(413), status(200), status(200))
    results = run(make_client(server), [upsert(f"P{i}") for i in range(5)])
    assert set(statuses(results).values()) == {OK}
    assert server.skus("/v1/catalog/products") == [
        ["P0", "P1", "P2", "P3", "P4"], ["P0", "P1"], ["P2", "P3", "P4"], ["P2"], ["P3", "P4"]
    ]


def test_413_for_a_single_item_rejects_it(server: Server) -> None:
    server.queue("/v1/catalog/products", status(413), status(200), status(413))
    results = run(make_client(server), [upsert("P0"), upsert("P1")])
    assert statuses(results) == {"P0": OK, "P1": REJECTED}
    assert results["P1"].reason == "HTTP 413: the item alone is too large"


def test_429_waits_retry_after_then_retries(server: Server) -> None:
    sleeps = Sleeps(real=False)
    server.queue("/v1/catalog/products", status(429, None, **{"retry-after": "0"}), status(429), status(200))
    results = run(make_client(server, sleep=sleeps), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    # retry-after 0 needs no wait; the second 429 has none, so the default second holds every sender
    assert len(sleeps.calls) == 1 and 0.9 < sleeps.calls[0] <= 1.0, sleeps.calls
    assert len(server.requests) == 3


def test_429_is_bounded(server: Server) -> None:
    server.queue("/v1/catalog/products", *[status(429, None, **{"retry-after": "0"})] * 3)
    results = run(make_client(server, max_throttled_retries=2), [upsert("P0")])
    assert (results["P0"].status, results["P0"].reason) == (RETRYABLE, "HTTP 429: still throttled after 2 waits")
    assert len(server.requests) == 3


def test_5xx_retries_with_full_jitter_then_retryable(server: Server, caplog) -> None:
    sleeps = Sleeps()
    server.queue("/v1/catalog/products", *[status(503)] * 4)
    caplog.set_level(logging.WARNING)
    sink = make_client(server, max_attempts=4, backoff_base_s=0.004, backoff_cap_s=0.01, sleep=sleeps)
    results = run(sink, [upsert("P0"), upsert("P1")])
    assert statuses(results) == {"P0": RETRYABLE, "P1": RETRYABLE}
    assert results["P0"].reason == "HTTP 503 (4 attempts)"
    assert len(server.requests) == 4
    # sleep n is uniform(0, min(cap, base * 2**n)): 0.004, 0.008, then capped at 0.01
    assert len(sleeps.calls) == 3
    assert all(0 <= s <= bound for s, bound in zip(sleeps.calls, [0.004, 0.008, 0.01]))
    assert caplog.text.count("HTTP 503 for 2 item(s), retry") == 3
    assert "giving up after 4 attempt(s)" in caplog.text
    assert TOKEN not in caplog.text


def test_5xx_then_success(server: Server) -> None:
    server.queue("/v1/catalog/products", status(500), status(502))
    results = run(make_client(server), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    assert server.skus("/v1/catalog/products") == [["P0"]] * 3


def test_timeout_then_success_and_timeouts_exhausted(server: Server) -> None:
    server.queue("/v1/catalog/products", ("slow", 0.6))
    results = run(make_client(server, timeout_s=0.2), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    assert len(server.requests) == 2

    server.requests.clear()
    server.queue("/v1/catalog/products", ("slow", 0.6), ("slow", 0.6))
    results = run(make_client(server, timeout_s=0.2, max_attempts=2), [upsert("P1")])
    assert (results["P1"].status, results["P1"].reason) == (RETRYABLE, "ReadTimeout after 0.2s timeout (2 attempts)")


def test_connection_closed_without_answer_is_retried(server: Server) -> None:
    server.queue("/v1/catalog/products", ("close",), ("close",))
    results = run(make_client(server), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    assert len(server.requests) == 3

    server.requests.clear()
    server.queue("/v1/catalog/products", *[("close",)] * 2)
    results = run(make_client(server, max_attempts=2), [upsert("P1")])
    assert results["P1"].status == RETRYABLE
    assert results["P1"].reason == "ConnectionError: connection failed (2 attempts)"


def test_401_refreshes_the_credentials_once(server: Server) -> None:
    auth = CountingAuth()
    server.queue("/v1/catalog/products", status(401, {"title": "ErrInvalidOauthToken"}))
    results = run(make_client(server, auth=auth), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    assert auth.invalidations == 1
    assert [r.headers["Authorization"] for r in server.requests] == [f"Bearer {TOKEN}-1", f"Bearer {TOKEN}-2"]


def test_a_second_401_fails_the_run(server: Server) -> None:
    auth = CountingAuth()
    server.queue("/v1/catalog/products", status(401), status(401))
    with pytest.raises(IngestionAuthError) as error:
        run(make_client(server, auth=auth), [upsert("P0")])
    assert str(error.value) == "the ingestion API refused the credentials (HTTP 401): check the catalog_sync_target Connection"
    assert auth.invalidations == 1
    assert len(server.requests) == 2


def test_403_fails_the_run_without_leaking_the_token(server: Server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.queue("/v1/catalog/products", status(403, {"title": "ErrMissingOauthToken"}))
    with pytest.raises(IngestionAuthError) as error:
        run(make_client(server, batch_size=2, max_in_flight=2), [upsert(f"P{i}") for i in range(6)])
    assert str(error.value) == "the ingestion API refused the credentials (HTTP 403): check the catalog_sync_target Connection"
    assert TOKEN not in caplog.text and TOKEN not in repr(StaticToken(TOKEN))


def test_404_points_at_the_base_url(server: Server) -> None:
    server.queue("/v1/catalog/products", status(404))
    with pytest.raises(IngestionApiError, match="check the base URL"):
        run(make_client(server), [upsert("P0")])


def test_rate_limiter_spaces_requests(server: Server) -> None:
    sink = make_client(server, batch_size=1, max_in_flight=4, max_requests_per_minute=600)
    results = run(sink, [upsert(f"P{i}") for i in range(5)])
    assert set(statuses(results).values()) == {OK}
    times = sorted(r.at for r in server.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The client spaces sends by 0.1 s; the server's clock sees them give or take transit jitter.
    assert len(gaps) == 4 and min(gaps) >= 0.07 and times[-1] - times[0] >= 0.38, gaps


def test_batches_go_in_parallel_up_to_max_in_flight(server: Server) -> None:
    server.delay_s = 0.3
    started = time.monotonic()
    results = run(make_client(server, batch_size=1, max_in_flight=3), [upsert(f"P{i}") for i in range(6)])
    elapsed = time.monotonic() - started
    assert set(statuses(results).values()) == {OK}
    assert server.max_in_flight == 3
    assert elapsed < 6 * 0.3 * 0.75, elapsed


def test_the_bytes_sent_are_the_items_exact_text(server: Server) -> None:
    """What the snapshot keeps is what the server got: the request body is the items' texts joined."""
    items = [upsert("P0"), upsert("Zürich 1")]
    run(make_client(server), items)
    [request] = server.requests
    assert request.raw == ("[" + ",".join(i.body for i in items) + "]").encode()


def test_every_item_gets_one_result_under_mixed_failures(server: Server) -> None:
    def chaos(request: Request) -> Action:
        n = len(server.requests)
        return [status(200), invalid(0), status(413), status(500), ("close",), status(429, None, **{"retry-after": "0"})][n % 6]

    server.queue("/v1/catalog/products", *[chaos] * 200)
    server.queue("/v1/catalog/products/delete", *[chaos] * 200)
    client = make_client(server, batch_size=7, max_in_flight=3, max_attempts=3)
    results = run(client, [upsert(f"P{i}") for i in range(60) if i % 5])
    results.update(run(make_client(server, batch_size=7, max_in_flight=3, max_attempts=3),
                       [delete(f"P{i}") for i in range(60) if not i % 5]))
    assert set(results) == {f"P{i}" for i in range(60)}
    assert {OK, REJECTED} <= set(statuses(results).values()) <= {OK, REJECTED, RETRYABLE}
    assert_bodies_valid(server)


def test_the_target_sends_each_feed_to_its_endpoints(server: Server) -> None:
    bodies = mapping.metadata_items([Attribute(0, "color", "int", "select", "Color", True)], ["en_US"])
    items = [SendItem(canonical(mapping.metadata_key(b)).decode(), canonical(b).decode()) for b in bodies]
    target = IngestionApiTarget(IngestionApiConfig(f"{server.url}/{TENANT}", token=TOKEN, batch_size=4,
                                                   max_requests_per_minute=0))
    results = list(target.send(METADATA, UPSERT, items, "run-1/01-metadata-catalog"))
    results += list(target.send(PRODUCTS, DELETE, [delete("D1")], "run-1/06-products-b000"))
    target.close()
    assert [r.status for r in results] == [OK] * 7
    assert sorted(len(b) for b in server.bodies("/v1/catalog/products/metadata")) == [2, 4]
    assert server.bodies("/v1/catalog/products/delete") == [[{"sku": "D1", "source": {"locale": "en-US"}}]]
    assert_bodies_valid(server)


# ---- IMS client credentials ------------------------------------------------------------------


def test_ims_token_is_fetched_once_cached_and_refreshed(server: Server) -> None:
    def token(n: int, expires_in: int = 3600) -> Action:
        return status(200, {"access_token": f"ims-{n}", "token_type": "bearer", "expires_in": expires_in})

    server.queue("/ims/token", token(1, 120), token(2), token(3))
    now = [1000.0]
    auth = ImsClientCredentials(f"{server.url}/ims/token", "client-id", "client-secret", "openid,commerce.aco",
                                monotonic=lambda: now[0])
    threads = [threading.Thread(target=auth.headers) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert auth.headers() == {"Authorization": "Bearer ims-1"}
    assert server.bodies("/ims/token") == [{"grant_type": "client_credentials", "client_id": "client-id",
                                            "client_secret": "client-secret", "scope": "openid,commerce.aco"}]
    now[0] += 59  # 120 s token, refreshed 60 s before expiry
    assert auth.headers() == {"Authorization": "Bearer ims-1"}
    now[0] += 2
    assert auth.headers() == {"Authorization": "Bearer ims-2"}
    auth.invalidate()
    assert auth.headers() == {"Authorization": "Bearer ims-3"}
    assert len(server.bodies("/ims/token")) == 3
    assert "client-secret" not in repr(auth)


def test_ims_refusal_is_a_clear_error(server: Server) -> None:
    server.queue("/ims/token", status(401, {"error": "invalid_client"}))
    auth = ImsClientCredentials(f"{server.url}/ims/token", "client-id", "client-secret", "openid")
    with pytest.raises(IngestionAuthError) as error:
        auth.headers()
    assert "HTTP 401" in str(error.value) and "client-secret" not in str(error.value)


def test_sink_uses_ims_tokens_and_refreshes_on_401(server: Server) -> None:
    server.queue("/ims/token", status(200, {"access_token": "ims-1", "expires_in": 3600}),
                 status(200, {"access_token": "ims-2", "expires_in": 3600}))
    server.queue("/v1/catalog/products", status(401))
    auth = ImsClientCredentials(f"{server.url}/ims/token", "client-id", "client-secret", "openid")
    results = run(make_client(server, auth=auth), [upsert("P0")])
    assert statuses(results) == {"P0": OK}
    assert [r.headers["Authorization"] for r in server.requests if r.path == "/v1/catalog/products"] == [
        "Bearer ims-1", "Bearer ims-2"]


def test_proxy_and_no_proxy_come_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """As requests would: HTTP(S)_PROXY sends the requests through the proxy, NO_PROXY bypasses it.
    The scripted server plays the proxy; a proxied request names the whole URL in its request line."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", server.url)
    behind_proxy = "http://127.0.0.2:9"  # never connected to: the proxy is
    client = IngestionApiClient(f"{behind_proxy}/{TENANT}", StaticToken(TOKEN), max_requests_per_minute=None,
                                timeout_s=2.0)
    assert run(client, [upsert("VIA-PROXY")])["VIA-PROXY"].status == OK
    assert [r.path for r in server.requests] == [f"{behind_proxy}/{TENANT}/v1/catalog/products"]

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert run(make_client(server), [upsert("DIRECT")])["DIRECT"].status == OK
    assert [r.path for r in server.requests][1:] == ["/v1/catalog/products"]


def test_a_429_pauses_every_sender_not_only_the_throttled_one(server: Server) -> None:
    answered: list[float] = []

    def throttle(request: Request) -> Action:
        answered.append(time.monotonic())
        return status(429, None, **{"retry-after": "1"})

    server.queue("/v1/catalog/products", throttle)
    results = run(make_client(server, batch_size=1, max_in_flight=3), [upsert(f"P{i}") for i in range(6)])
    assert set(statuses(results).values()) == {OK}
    # Requests already on their way when the 429 came may land; none starts during the second.
    started_after = [r.at for r in server.requests if r.at > answered[0] + 0.05]
    assert started_after and min(started_after) >= answered[0] + 0.95, (answered, [r.at for r in server.requests])


def test_rate_limiter_pause_holds_every_caller() -> None:
    from catalog_sync import clock
    from catalog_sync.targets.ingestion_api.client import RateLimiter

    fake = clock.FakeClock(clock.SystemClock().now())
    limiter = RateLimiter(120, monotonic=fake.monotonic, sleep=fake.sleep)  # one start every 0.5 s
    limiter.acquire()
    limiter.pause(5.0)
    limiter.acquire()
    limiter.acquire()
    assert fake.slept == [5.0, 0.5]


@pytest.mark.parametrize("fault, unconfirmed", [(("slow", 0.6), True), (("close",), True), (status(503), False),
                                                (status(429, None, **{"retry-after": "0"}), False)])
def test_an_item_whose_request_got_no_answer_is_unconfirmed_even_when_a_retry_succeeds(
        server: Server, fault: Action, unconfirmed: bool) -> None:
    server.queue("/v1/catalog/products", fault)
    results = run(make_client(server, timeout_s=0.2), [upsert("P0"), upsert("P1")])
    assert statuses(results) == {"P0": OK, "P1": OK}
    assert {r.unconfirmed for r in results.values()} == {unconfirmed}


def test_a_refused_connection_never_left_so_its_items_are_not_unconfirmed() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = IngestionApiClient(f"http://127.0.0.1:{port}/{TENANT}", StaticToken(TOKEN), max_requests_per_minute=None,
                                max_attempts=2, backoff_base_s=0.001, backoff_cap_s=0.001)
    [result] = client.send("/v1/catalog/products", [upsert("P0")])
    assert (result.status, result.unconfirmed) == (RETRYABLE, False)


def test_parallel_senders_share_the_rate_limit() -> None:
    target = IngestionApiTarget(IngestionApiConfig(url="http://127.0.0.1:9/t", token=TOKEN, max_requests_per_minute=300))
    target.share_limits(3)
    assert target.client._limiter.interval == pytest.approx(60 / 100)  # 3 buckets x 100 a minute = the API's 300
    with pytest.raises(RuntimeError):
        target.share_limits(2)  # too late: the limiter is made
