"""Sink to Adobe Commerce Optimizer's Catalog Data Ingestion API.

Each upsert becomes a FeedProduct (POST /v1/catalog/products) and, when it has a price of
its own, a FeedPrices (POST /v1/catalog/products/prices) in the price book of its website
(created once per run, before its first price). Each delete becomes a FeedProductDelete.
Items go in gzip-compressed batches, up to `max_in_flight` at a time, spaced by a client-side
rate limiter. An item is OK when every request it is part of was accepted.

Per response: 200 all OK; 400 the listed items REJECTED, the rest re-sent; 413 the batch is
split in halves; 429 wait `retry-after`; 5xx / timeout / connection error backoff with full
jitter, then RETRYABLE; 401 fresh credentials once; a second 401 or a 403 fails the run.
Nothing of a payload or a token is ever logged.

Cost per item: each item is mapped and serialized once, as it is read (orjson); a request body is
the items' JSON texts joined, compressed (gzip level 1) and sent in a worker thread.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import urllib.request
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import certifi
import orjson
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from catalog_sync import clock
from catalog_sync.ingestion import mapping
from catalog_sync.ingestion.auth import IngestionAuthError
from catalog_sync.sinks.base import DELETE, OK, REJECTED, RETRYABLE, DeltaItem, ItemResult

log = logging.getLogger(__name__)

PRODUCTS = "/v1/catalog/products"
PRODUCTS_DELETE = "/v1/catalog/products/delete"
PRICES = "/v1/catalog/products/prices"
PRICE_BOOKS = "/v1/catalog/price-books"
METADATA = "/v1/catalog/products/metadata"

DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 300.0
GZIP_LEVEL = 1  # bodies are JSON with much repetition: level 1 already takes ~88% off, at a third of level 6's CPU
CREDENTIALS_HINT = "check the catalog_sync_target Connection"


class Auth(Protocol):
    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class IngestionApiError(RuntimeError):
    """The API cannot be used as configured (e.g. a wrong base URL): the run must fail."""


@dataclass(slots=True)
class BodyResult:
    """The outcome of one item of a request body (index into what was given to `deliver`)."""

    index: int
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "ok", "invalid_items", "too_large", "retryable", "rejected"
    reason: str | None = None
    errors: dict[int, str] = field(default_factory=dict)  # itemIndex -> message, for "invalid_items"


class RateLimiter:
    """At most `per_minute` request starts a minute, evenly spaced; thread-safe. 0/None: unlimited."""

    def __init__(self, per_minute: int | None, monotonic: Callable[[], float] = clock.monotonic,
                 sleep: Callable[[float], None] = clock.sleep):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock, self._sleep = monotonic, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass(slots=True)
class _ItemState:
    sku: str
    store_view_code: str
    pending: int
    status: str = OK
    reasons: list[str] = field(default_factory=list)


class _Tracker:
    """Joins the results of an item's parts (product, price) into its one ItemResult."""

    _RANK = {OK: 0, RETRYABLE: 1, REJECTED: 2}

    def __init__(self) -> None:
        self.items: dict[int, _ItemState] = {}
        self.finished: list[ItemResult] = []

    def add(self, key: int, item: DeltaItem, parts: int) -> None:
        self.items[key] = _ItemState(item.sku, item.store_view_code, parts)

    def part_done(self, key: int, status: str, reason: str | None) -> None:
        state = self.items[key]
        if self._RANK[status] > self._RANK[state.status]:
            state.status = status
        if reason and status != OK:
            state.reasons.append(reason)
        state.pending -= 1
        if state.pending == 0:
            del self.items[key]
            reason_text = "; ".join(state.reasons) if state.status != OK else None
            self.finished.append(ItemResult(state.sku, state.store_view_code, state.status, reason_text))

    def take(self) -> list[ItemResult]:
        done, self.finished = self.finished, []
        return done


@dataclass(slots=True)
class _Part:
    key: int  # the item's number in this run
    body: bytes  # the item's JSON text
    label: str  # what failed, in a reason: "product", "price"


def website_price_book(ids: Mapping[str, str] | None = None) -> Callable[[dict[str, Any]], str | None]:
    """One price book per website (Magento's price scope), in its base currency: the id
    configured for the website's code in `ids`, else the code itself."""
    ids = dict(ids or {})

    def price_book(record: dict[str, Any]) -> str | None:
        website = record.get("website_code")
        return ids.get(website, website) if website else None

    return price_book


class IngestionApiSink:
    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        batch_size: int = 100,
        max_requests_per_minute: int | None = 300,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_in_flight: int = 4,
        max_throttled_retries: int = 20,
        store_view_locales: Mapping[str, str] | None = None,
        price_book_id: Callable[[dict[str, Any]], str | None] | None = website_price_book(),
        sleep: Callable[[float], None] = clock.sleep,
    ):
        """`base_url` includes the tenant (https://na1-sandbox.api.commerce.adobe.com/<tenantId>).
        `store_view_locales` maps store view codes to Magento locales: deletes carry no record.
        `price_book_id` picks a record's price book (None: no prices sent). A special price is
        judged on each item's `judged_on`, its store view's local date at the run's instant."""
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.batch_size = max(1, batch_size)
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.max_in_flight = max(1, max_in_flight)
        self.max_throttled_retries = max_throttled_retries
        self.store_view_locales = dict(store_view_locales or {})
        self.price_book_id = price_book_id
        self.description = f"the Catalog Data Ingestion API at {self.base_url}"
        self._sleep = sleep
        self._limiter = RateLimiter(max_requests_per_minute, sleep=sleep)
        self._http = _pool_manager(self.base_url, self.max_in_flight + 1)
        self._price_books: dict[str, str | None] = {}  # id -> None if accepted, else why not

    # ---- the Sink protocol -----------------------------------------------------------

    def send(self, items: Iterable[DeltaItem], run_key: str) -> Iterator[ItemResult]:
        tracker = _Tracker()
        buffers: dict[str, list[_Part]] = defaultdict(list)
        in_flight: set[Future[tuple[str, list[_Part], list[BodyResult]]]] = set()
        executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="ingestion")

        def collect(block_until_below: int) -> None:
            nonlocal in_flight
            while len(in_flight) > block_until_below:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    _endpoint, parts, results = future.result()  # a credentials error is raised here
                    for r in results:
                        tracker.part_done(parts[r.index].key, r.status, _prefixed(parts[r.index].label, r.reason))

        def submit(endpoint: str) -> None:
            parts, buffers[endpoint] = buffers[endpoint], []
            in_flight.add(executor.submit(self._deliver_parts, endpoint, parts))
            collect(self.max_in_flight - 1)

        try:
            for key, item in enumerate(items):
                parts, failed = self._parts(key, item)
                tracker.add(key, item, len(parts) + len(failed))
                for label, status, reason in failed:
                    tracker.part_done(key, status, _prefixed(label, reason))
                for endpoint, part in parts:
                    buffers[endpoint].append(part)
                    if len(buffers[endpoint]) >= self.batch_size:
                        submit(endpoint)
                yield from tracker.take()
            for endpoint in [e for e, b in buffers.items() if b]:
                submit(endpoint)
            collect(0)
            yield from tracker.take()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._http.clear()

    # ---- setup items (metadata, price books) ----------------------------------------------

    def deliver(self, endpoint: str, bodies: Sequence[dict[str, Any]]) -> list[BodyResult]:
        """Send any items to one endpoint (e.g. METADATA with `mapping.metadata_items(...)`),
        in batches, with the same rules as `send`; one result per body, by index."""
        results: list[BodyResult] = []
        for start in range(0, len(bodies), self.batch_size):
            chunk = [orjson.dumps(body) for body in bodies[start:start + self.batch_size]]
            results += [BodyResult(r.index + start, r.status, r.reason) for r in self._deliver(endpoint, chunk)]
        return results

    # ---- items -> request parts --------------------------------------------------------------

    def _parts(self, key: int, item: DeltaItem) -> tuple[list[tuple[str, _Part]], list[tuple[str, str, str]]]:
        """The (endpoint, part) pairs of an item, and the parts that failed before sending."""
        try:
            if item.op == DELETE:
                locale = self.store_view_locales.get(item.store_view_code)
                if locale is None:
                    return [], [("delete", REJECTED, f"no locale known for store view {item.store_view_code!r}")]
                return [(PRODUCTS_DELETE, _Part(key, orjson.dumps(mapping.product_delete(item.sku, locale)), "delete"))], []
            record = item.payload
            parts = [(PRODUCTS, _Part(key, orjson.dumps(mapping.feed_product(record)), "product"))]
            day = date.fromisoformat(item.judged_on)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return [], [("mapping", REJECTED, f"cannot map the feed record: {type(exc).__name__}: {exc}")]
        return self._with_price(key, record, day, parts)

    def _with_price(self, key: int, record: dict[str, Any], day: date, parts: list[tuple[str, _Part]]):
        book = self.price_book_id(record) if self.price_book_id else None
        price = mapping.prices(record, book, day) if book else None
        if price is None:
            return parts, []
        problem = self._ensure_price_book(book, record.get("currency"))
        if problem:
            return parts, [("price", RETRYABLE, problem)]
        return [*parts, (PRICES, _Part(key, orjson.dumps(price), "price"))], []

    def _ensure_price_book(self, book: str, currency: str | None) -> str | None:
        """Create the price book once per sink (the API ignores prices of unknown books)."""
        if book not in self._price_books:
            if not currency:
                self._price_books[book] = f"price book {book!r}: no currency"
            else:
                [result] = self._deliver(PRICE_BOOKS, [orjson.dumps(mapping.price_book(book, currency))])
                self._price_books[book] = None if result.status == OK else f"price book {book!r} not accepted: {result.reason}"
        return self._price_books[book]

    # ---- delivery of one batch (worker threads) -------------------------------------------

    def _deliver_parts(self, endpoint: str, parts: list[_Part]) -> tuple[str, list[_Part], list[BodyResult]]:
        return endpoint, parts, self._deliver(endpoint, [p.body for p in parts])

    def _deliver(self, endpoint: str, bodies: list[bytes]) -> list[BodyResult]:
        """400: listed items rejected, the rest re-sent; 413: halves. Returns one result per body."""
        results: list[BodyResult] = []
        queue: deque[list[int]] = deque([list(range(len(bodies)))])
        while queue:
            batch = queue.popleft()
            outcome = self._post(endpoint, [bodies[i] for i in batch])
            if outcome.kind == "ok":
                results += [BodyResult(i, OK) for i in batch]
            elif outcome.kind == "invalid_items" and outcome.errors:
                results += [BodyResult(batch[n], REJECTED, msg) for n, msg in outcome.errors.items()]
                rest = [i for n, i in enumerate(batch) if n not in outcome.errors]
                if rest:
                    log.warning("ingestion: %s: %d of %d item(s) rejected, re-sending %d",
                                endpoint, len(outcome.errors), len(batch), len(rest))
                    queue.appendleft(rest)
            elif outcome.kind == "too_large" and len(batch) > 1:
                half = len(batch) // 2
                log.warning("ingestion: %s: HTTP 413 for %d item(s), splitting in two", endpoint, len(batch))
                queue.extendleft([batch[half:], batch[:half]])
            else:
                status = RETRYABLE if outcome.kind == "retryable" else REJECTED
                results += [BodyResult(i, status, outcome.reason) for i in batch]
        return results

    def _post(self, endpoint: str, bodies: list[bytes]) -> _Outcome:
        """One batch (the items' JSON texts) until it gets an answer that settles it (or retries run out)."""
        url = self.base_url + endpoint
        # The JSON array orjson.dumps(list) would write, from the items' texts; gzip (wbits 31), no mtime.
        data = zlib.compress(b"[" + b",".join(bodies) + b"]", GZIP_LEVEL, wbits=31)
        failures, throttled, refreshed = 0, 0, False
        while True:
            self._limiter.acquire()
            headers = {**self.auth.headers(), "Content-Type": "application/json",
                       "Content-Encoding": "gzip", "Accept": "application/json"}
            try:
                response = self._http.request("POST", url, body=data, headers=headers, retries=False,
                                              timeout=urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s))
            except HTTPError as exc:
                error = _network_error(exc, self.timeout_s)
            else:
                code = response.status
                if code == 200:
                    return _Outcome("ok")
                if code == 400:
                    return _invalid_items(response, len(bodies))
                if code == 413:
                    return _Outcome("too_large", "HTTP 413: the item alone is too large")
                if code == 429:
                    throttled += 1
                    if throttled > self.max_throttled_retries:
                        return _Outcome("retryable", f"HTTP 429: still throttled after {self.max_throttled_retries} waits")
                    delay = _retry_after(response)
                    log.warning("ingestion: %s: HTTP 429 for %d item(s), waiting %.1fs (%d/%d)",
                                endpoint, len(bodies), delay, throttled, self.max_throttled_retries)
                    self._sleep(delay)
                    continue
                if code == 401 and not refreshed:
                    log.warning("ingestion: %s: HTTP 401, retrying once with fresh credentials", endpoint)
                    self.auth.invalidate()
                    refreshed = True
                    continue
                if code in (401, 403):
                    raise IngestionAuthError(
                        f"the ingestion API refused the credentials (HTTP {code}): {CREDENTIALS_HINT}")
                if code == 404:
                    raise IngestionApiError(
                        f"the ingestion API answered HTTP 404 for {url}: check the base URL (it includes the tenant id) "
                        f"in the catalog_sync_target Connection")
                if code < 500:
                    return _Outcome("rejected", f"HTTP {code}: {_short(_text(response))}")
                error = f"HTTP {code}"
            failures += 1
            if failures >= self.max_attempts:
                log.warning("ingestion: %s: %s for %d item(s), giving up after %d attempt(s)",
                            endpoint, error, len(bodies), failures)
                return _Outcome("retryable", f"{error} ({failures} attempts)")
            delay = random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1)))
            log.warning("ingestion: %s: %s for %d item(s), retry %d/%d in %.2fs",
                        endpoint, error, len(bodies), failures, self.max_attempts - 1, delay)
            self._sleep(delay)


def _pool_manager(base_url: str, connections: int) -> urllib3.PoolManager:
    """The run's connection pool (thread-safe; keep-alive). urllib3 directly, not requests: requests
    costs ~2.4x the CPU per request here (637 vs 265 µs), at ~3,700 requests per 100k x 2 catalog.
    Proxy and CA bundle come from the environment as requests would take them."""
    kwargs: dict[str, Any] = {"maxsize": connections, "block": True, "retries": False,
                              "ca_certs": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()}
    url = urllib3.util.parse_url(base_url)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(url.host or ""):
        return urllib3.ProxyManager(proxy, **kwargs)
    return urllib3.PoolManager(**kwargs)


def _network_error(exc: HTTPError, timeout_s: float) -> str:
    """No answer: a timeout, or a refused/reset/dropped connection (worded as requests words them)."""
    if isinstance(exc, NewConnectionError):
        return "ConnectionError: connection failed"
    if isinstance(exc, ConnectTimeoutError):
        return f"ConnectTimeout after {timeout_s:g}s timeout"
    if isinstance(exc, ReadTimeoutError):
        return f"ReadTimeout after {timeout_s:g}s timeout"
    return "ConnectionError: connection failed"


def _text(response: urllib3.BaseHTTPResponse) -> str:
    return response.data.decode("utf-8", "replace")


def _invalid_items(response: urllib3.BaseHTTPResponse, count: int) -> _Outcome:
    """400: per-item errors by itemIndex; without usable ones the whole batch is rejected."""
    try:
        body = orjson.loads(response.data)
    except ValueError:  # orjson.JSONDecodeError, bad UTF-8 included
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors: dict[int, list[str]] = {}
    for error in body.get("errors") or []:
        index = error.get("itemIndex") if isinstance(error, dict) else None
        if isinstance(index, int) and 0 <= index < count:
            text = str(error.get("message") or "invalid")
            errors.setdefault(index, []).append(f"{error['code']}: {text}" if error.get("code") else text)
    message = body.get("message")
    if not errors:
        return _Outcome("rejected", f"HTTP 400: {_short(message or _text(response))}")
    return _Outcome("invalid_items", errors={i: "HTTP 400: " + "; ".join(m) for i, m in errors.items()})


def _retry_after(response: urllib3.BaseHTTPResponse) -> float:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers.get("retry-after", DEFAULT_RETRY_AFTER_S))))
    except ValueError:  # an HTTP date: not worth parsing
        return DEFAULT_RETRY_AFTER_S


def _short(text: str | None, limit: int = 200) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _prefixed(label: str, reason: str | None) -> str | None:
    return f"{label}: {reason}" if reason else None
