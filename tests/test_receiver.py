"""The reference receiver (catalog_sync.receiver) against the Catalog Data Ingestion contract."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from starlette.testclient import TestClient

from catalog_sync.receiver import (
    DEFAULT_SPEC_PATH,
    ConnectionDropped,
    ContractValidator,
    ReceiverOptions,
    build_server,
    create_app,
)

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEC = Path("/work/shared/contracts/catalog-data-ingestion-v1.yaml")
JSON = {"Content-Type": "application/json"}
PRODUCTS = "/acme/v1/catalog/products"


def product(sku: str = "red-pants", locale: str = "en-US", **extra) -> dict:
    return {"sku": sku, "source": {"locale": locale}, "name": f"{sku} name", "slug": f"{sku}.html", "status": "ENABLED", **extra}


def client(**options) -> TestClient:
    return TestClient(create_app(ReceiverOptions(**options)))


def test_shipped_spec_is_the_contract():
    if SHARED_SPEC.exists():
        assert DEFAULT_SPEC_PATH.read_bytes() == SHARED_SPEC.read_bytes()


def test_product_create_replace_delete():
    c = client()
    r = c.post(PRODUCTS, json=[product(), product(locale="fr-FR")], headers=JSON)
    assert r.status_code == 200
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 2}
    assert r.headers["content-type"] == "application/json;charset=UTF-8"
    assert c.get("/_receiver/products").json() == {
        "red-pants|en-US": product(),
        "red-pants|fr-FR": product(locale="fr-FR"),
    }

    replaced = product(name="Red pants v2", description=None)  # nullable field set to null
    r = c.post(PRODUCTS, json=[replaced], headers=JSON)
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}
    assert c.get("/_receiver/products/red-pants", params={"locale": "en-US"}).json() == replaced
    assert c.get("/_receiver/products/red-pants").json() == {"en-US": replaced, "fr-FR": product(locale="fr-FR")}

    delete = [{"sku": "red-pants", "source": {"locale": "en-US"}}]
    for _ in range(2):  # deletes are idempotent
        r = c.post("/acme/v1/catalog/products/delete", json=delete, headers=JSON)
        assert r.status_code == 200
        assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}
    assert list(c.get("/_receiver/products").json()) == ["red-pants|fr-FR"]
    assert c.get("/_receiver/products/red-pants", params={"locale": "en-US"}).status_code == 404


def test_sku_with_slash_is_readable():
    c = client()
    assert c.post(PRODUCTS, json=[product("24-MB/01")], headers=JSON).status_code == 200
    assert c.get("/_receiver/products/24-MB/01", params={"locale": "en-US"}).json() == product("24-MB/01")


def test_invalid_item_rejects_the_whole_request():
    c = client()
    bad = product("bad", status="active")
    r = c.post(PRODUCTS, json=[product("good"), bad, {"sku": "no-source", "name": "n", "slug": "s", "status": "DISABLED"}], headers=JSON)
    assert r.status_code == 400
    assert r.json() == {
        "status": "FAILED",
        "message": "Items validation failed for 2 items",
        "errors": [
            {
                "itemIndex": 1,
                "code": "status",
                "message": 'status: does not have a value in the enumeration ["ENABLED", "DISABLED"]',
                "value": "active",
            },
            {"itemIndex": 2, "code": "source", "message": "required property 'source' not found", "value": ""},
        ],
    }
    assert c.get("/_receiver/products").json() == {}
    stats = c.get("/_receiver/stats").json()
    assert stats["requests"] == {"POST /v1/catalog/products": {"400": 1}}
    assert stats["stored"]["products"] == 0


def test_nested_and_type_errors():
    c = client()
    r = c.post(PRODUCTS, json=[product(images=[{"label": 3}]), "not an object"], headers=JSON)
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"itemIndex": 0, "code": "images[0].url", "message": "required property 'images[0].url' not found", "value": ""},
        {"itemIndex": 0, "code": "images[0].label", "message": "images[0].label: 3 is not of type 'string'", "value": "3"},
        {"itemIndex": 1, "code": "FeedProduct", "message": "FeedProduct: 'not an object' is not of type 'object'", "value": "not an object"},
    ]


def test_body_errors():
    c = client()
    assert c.post(PRODUCTS, content=b"{not json", headers=JSON).status_code == 400
    r = c.post(PRODUCTS, json={"sku": "x"}, headers=JSON)
    assert r.status_code == 400
    assert r.json() == {"status": "FAILED", "message": "Body must be a JSON array of FeedProduct items", "errors": []}
    assert c.post(PRODUCTS, content=json.dumps([product()]), headers={"Content-Type": "text/plain"}).status_code == 415
    r = c.post(PRODUCTS, content=b"garbage", headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert r.json()["message"].startswith("Body is not valid gzip")
    assert c.post(PRODUCTS, json=[], headers=JSON).json() == {"status": "ACCEPTED", "acceptedCount": 0}


def test_gzip_body():
    c = client()
    body = gzip.compress(json.dumps([product("a"), product("b")]).encode())
    r = c.post(PRODUCTS, content=body, headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 2}
    assert sorted(c.get("/_receiver/products").json()) == ["a|en-US", "b|en-US"]


def test_auth():
    c = client(required_token="s3cret")
    r = c.post(PRODUCTS, json=[product()], headers=JSON)
    assert r.status_code == 403
    assert r.json() == {"title": "ErrMissingOauthToken", "status": "403", "error_code": "403010", "message": "Oauth token is missing"}
    r = c.post(PRODUCTS, json=[product()], headers={**JSON, "Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert r.json() == {"title": "ErrInvalidOauthToken", "status": "401", "error_code": "401013", "message": "Oauth token is not valid"}
    assert c.post(PRODUCTS, json=[product()], headers={**JSON, "Authorization": "Basic s3cret"}).status_code == 401
    assert c.get("/_receiver/products").json() == {}
    r = c.post(PRODUCTS, json=[product()], headers={**JSON, "Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    assert c.get("/_receiver/stats").json()["requests"] == {"POST /v1/catalog/products": {"403": 1, "401": 2, "200": 1}}


def test_429_with_retry_after():
    c = client(rate_429=1.0, retry_after_s=7)
    r = c.post(PRODUCTS, json=[product()], headers=JSON)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.headers["content-type"] == "text/html;charset=UTF-8"
    assert c.get("/_receiver/products").json() == {}
    stats = c.get("/_receiver/stats").json()  # /_receiver/ is never faulted
    assert stats["faults"]["429"] == 1
    assert stats["faults_injected"] == 1
    assert stats["requests"] == {"POST /v1/catalog/products": {"429": 1}}


def test_5xx():
    c = client(rate_5xx=1.0, seed=1)
    statuses = {c.post(PRODUCTS, json=[product()], headers=JSON).status_code for _ in range(30)}
    assert statuses == {500, 502, 503}
    assert c.get("/_receiver/products").json() == {}
    assert c.get("/_receiver/stats").json()["faults"]["5xx"] == 30


def test_faults_are_deterministic_with_a_seed():
    def run():
        c = client(rate_429=0.3, rate_5xx=0.3, seed=42)
        return [c.post(PRODUCTS, json=[product()], headers=JSON).status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert {200, 429} <= set(first)
    assert set(first) & {500, 502, 503}


def test_drop_in_test_client_raises():
    c = client(drop_rate=1.0)
    with pytest.raises(ConnectionDropped):
        c.post(PRODUCTS, json=[product()], headers=JSON)
    assert c.get("/_receiver/stats").json()["requests"] == {"POST /v1/catalog/products": {"dropped": 1}}


def test_latency():
    c = client(latency_s=0.2)
    start = time.monotonic()
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 200
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    c.get("/_receiver/stats")
    assert time.monotonic() - start < 0.2


def test_reject_skus():
    c = client(reject_skus={"bad-sku"})
    r = c.post(PRODUCTS, json=[product("ok"), product("bad-sku")], headers=JSON)
    assert r.status_code == 400
    assert r.json() == {
        "status": "FAILED",
        "message": "Items validation failed for 1 items",
        "errors": [
            {
                "itemIndex": 1,
                "code": "sku",
                "message": "Invalid SKU: 'bad-sku' is rejected by this receiver (reject_skus)",
                "value": "bad-sku",
            }
        ],
    }
    assert c.get("/_receiver/products").json() == {}
    r = c.post("/acme/v1/catalog/products/prices", json=[{"sku": "bad-sku", "priceBookId": "us", "regular": 1}], headers=JSON)
    assert r.status_code == 400
    assert c.post(PRODUCTS, json=[product("ok")], headers=JSON).status_code == 200
    assert c.get("/_receiver/stats").json()["faults"]["reject_sku_items"] == 2


def test_validate_false_skips_schema_validation():
    c = client(validate=False)
    r = c.post(PRODUCTS, json=[{"sku": "x", "source": {"locale": "en-US"}, "status": "whatever"}], headers=JSON)
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}
    assert list(c.get("/_receiver/products").json()) == ["x|en-US"]
    assert c.post(PRODUCTS, json=["not an object"], headers=JSON).status_code == 400


def test_tenant_prefix():
    any_tenant = client()
    for path in ("/v1/catalog/products", "/whoever/v1/catalog/products"):
        assert any_tenant.post(path, json=[product()], headers=JSON).status_code == 200
    one_tenant = client(tenant_id="acme")
    assert one_tenant.post("/acme/v1/catalog/products", json=[product()], headers=JSON).status_code == 200
    assert one_tenant.post("/v1/catalog/products", json=[product()], headers=JSON).status_code == 200
    r = one_tenant.post("/other/v1/catalog/products", json=[product()], headers=JSON)
    assert r.status_code == 404
    assert r.json() == {"message": "unknown tenant 'other'"}


def test_metadata_price_books_and_prices_with_spec_examples():
    validator = ContractValidator()
    c = client()
    cases = [
        ("/v1/catalog/products/metadata", "/_receiver/metadata", ["description|en-US", "name|en-US", "price|en-US", "shortDescription|en-US", "sku|en-US"]),
        ("/v1/catalog/price-books", "/_receiver/price-books", ["us", "us-north", "us-north-east", "us-north-west", "us-south"]),
        # The example's "dealer-north" book does not exist: the contract ignores prices of unknown books.
        ("/v1/catalog/products/prices", "/_receiver/prices", ["red-pants|us"]),
    ]
    for path, read, keys in cases:
        example = next(iter(validator.examples("post", path).values()))
        r = c.post("/acme" + path, json=example, headers=JSON)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ACCEPTED", "acceptedCount": len(example)}
        stored = c.get(read).json()
        assert sorted(stored) == keys
        assert sorted(stored.values(), key=json.dumps) == sorted(
            [e for e in example if "|".join(_key_of(read, e)) in keys], key=json.dumps)


def _key_of(read: str, item: dict) -> list[str]:
    if read.endswith("prices"):
        return [item["sku"], item["priceBookId"]]
    if read.endswith("price-books"):
        return [item["priceBookId"]]
    return [item["code"], item["source"]["locale"]]


def test_deleting_a_price_book_deletes_its_child_books_and_all_their_prices():
    """The contract's cascade: a book's children, all the way down, and every price of any of them."""
    c = client()
    books = [{"priceBookId": "us", "name": "US", "currency": "USD"}, {"priceBookId": "us-b2b", "name": "B2B", "parentId": "us"},
             {"priceBookId": "us-b2b-gold", "name": "Gold", "parentId": "us-b2b"}, {"priceBookId": "eu", "name": "EU", "currency": "EUR"}]
    assert c.post("/acme/v1/catalog/price-books", json=books, headers=JSON).status_code == 200
    prices = [{"sku": "A", "priceBookId": book["priceBookId"], "regular": 10.0} for book in books]
    assert c.post("/acme/v1/catalog/products/prices", json=prices, headers=JSON).status_code == 200
    assert sorted(c.get("/_receiver/prices").json()) == ["A|eu", "A|us", "A|us-b2b", "A|us-b2b-gold"]

    assert c.post("/acme/v1/catalog/price-books/delete", json=[{"priceBookId": "us"}], headers=JSON).status_code == 200

    assert sorted(c.get("/_receiver/price-books").json()) == ["eu"]
    assert sorted(c.get("/_receiver/prices").json()) == ["A|eu"]


def test_a_price_of_a_price_book_that_does_not_exist_is_accepted_and_ignored():
    c = client()
    r = c.post("/acme/v1/catalog/products/prices", json=[{"sku": "A", "priceBookId": "nowhere", "regular": 1.0}], headers=JSON)
    assert r.status_code == 200 and r.json()["acceptedCount"] == 1
    assert c.get("/_receiver/prices").json() == {}


def test_metadata_price_books_and_prices_invalid():
    c = client()
    meta = {"code": "color", "source": {"locale": "en-US"}, "label": "Color", "dataType": "COLOR"}
    r = c.post("/v1/catalog/products/metadata", json=[meta], headers=JSON)
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {
            "itemIndex": 0,
            "code": "dataType",
            "message": 'dataType: does not have a value in the enumeration ["TEXT", "DECIMAL", "INTEGER", "BOOLEAN"]',
            "value": "COLOR",
        }
    ]
    books = [
        {"priceBookId": "us", "name": "US", "currency": "USD"},
        {"priceBookId": "x", "name": "neither base nor child"},
        {"priceBookId": "y", "name": "both", "currency": "USD", "parentId": "us"},
    ]
    r = c.post("/v1/catalog/price-books", json=books, headers=JSON)
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert [(e["itemIndex"], e["code"]) for e in errors] == [(1, "FeedPricebook"), (2, "FeedPricebook")]
    assert errors[0]["message"] == (
        "FeedPricebook: does not match any of: PriceBookBase ('currency' is a required property)"
        " | PriceBookChild ('parentId' is a required property)"
    )
    assert errors[1]["message"] == "FeedPricebook: matches more than one of [PriceBookBase, PriceBookChild]; it must match exactly one"
    r = c.post("/v1/catalog/products/prices", json=[{"sku": "a", "priceBookId": "us", "regular": "9.99"}], headers=JSON)
    assert r.status_code == 400
    assert r.json()["errors"] == [{"itemIndex": 0, "code": "regular", "message": "regular: '9.99' is not of type 'number'", "value": "9.99"}]
    assert c.get("/_receiver/stats").json()["stored"] == {
        "products": 0, "metadata": 0, "price_books": 0, "prices": 0, "categories": 0, "product_layers": 0,
    }


def test_deletes_of_metadata_price_books_and_prices():
    c = client()
    c.post("/v1/catalog/products/metadata", json=[{"code": "sku", "source": {"locale": "en-US"}, "label": "SKU", "dataType": "TEXT"}], headers=JSON)
    c.post("/v1/catalog/price-books", json=[{"priceBookId": "us", "name": "US", "currency": "USD"}], headers=JSON)
    c.post("/v1/catalog/products/prices", json=[{"sku": "a", "priceBookId": "us", "regular": 10}], headers=JSON)
    assert c.post("/v1/catalog/products/metadata/delete", json=[{"code": "sku", "source": {"locale": "en-US"}}], headers=JSON).status_code == 200
    assert c.post("/v1/catalog/price-books/delete", json=[{"priceBookId": "us"}], headers=JSON).status_code == 200
    assert c.post("/v1/catalog/products/prices/delete", json=[{"sku": "a", "priceBookId": "us"}], headers=JSON).status_code == 200
    assert c.get("/_receiver/metadata").json() == {}
    assert c.get("/_receiver/price-books").json() == {}
    assert c.get("/_receiver/prices").json() == {}


def test_every_post_example_of_the_spec_is_accepted():
    validator = ContractValidator()
    c = client()
    count = 0
    for (method, path), _schema in validator.item_schemas.items():
        if method != "post":
            continue
        for name, example in validator.examples(method, path).items():
            r = c.post(path, json=example, headers=JSON)
            assert r.status_code == 200, (path, name, r.text)
            count += 1
    assert count >= 12


def test_receiver_endpoints_stats_reset_and_faults():
    c = client(seed=5)
    c.post(PRODUCTS, json=[product()], headers=JSON)
    c.post(PRODUCTS, json=[{"sku": 1}], headers=JSON)
    stats = c.get("/_receiver/stats").json()
    assert stats == {
        "requests": {"POST /v1/catalog/products": {"200": 1, "400": 1}},
        "faults": {"latency": 0, "drop": 0, "429": 0, "5xx": 0, "reject_sku_items": 0, "answered_next": 0, "late": 0, "late_applied": 0},
        "faults_injected": 0,
        "items": {"products": {"upsert": 1}},
        "stored": {"products": 1, "metadata": 0, "price_books": 0, "prices": 0, "categories": 0, "product_layers": 0},
    }
    assert c.get("/_receiver/health").json() == {"status": "ok"}

    r = c.post("/_receiver/faults", json={"rate_429": 1.0, "retry_after_s": 3, "reject_skus": ["z"]})
    assert r.status_code == 200
    assert r.json() == {
        "validate": True, "required_token": None, "rate_429": 1.0, "retry_after_s": 3, "rate_5xx": 0.0,
        "latency_s": 0.0, "latency_rate": 1.0, "drop_rate": 0.0, "reject_skus": ["z"], "answer_next": [], "late_skus": [], "late_apply_s": 2.0, "seed": 5,
    }
    assert c.get("/_receiver/faults").json()["rate_429"] == 1.0
    assert c.post(PRODUCTS, json=[product()], headers=JSON).headers["retry-after"] == "3"
    assert c.post("/_receiver/faults", json={"rate_429": 2}).status_code == 400
    assert c.post("/_receiver/faults", json={"nope": 1}).status_code == 400
    assert c.post("/_receiver/faults", json={"rate_429": 0, "required_token": "t"}).status_code == 200
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 403

    r = c.post("/_receiver/reset")
    assert r.status_code == 200
    assert c.get("/_receiver/products").json() == {}
    assert c.get("/_receiver/stats").json()["requests"] == {}
    assert c.get("/_receiver/faults").json()["required_token"] == "t"  # reset keeps the fault settings


def test_store_file_persists(tmp_path):
    db = str(tmp_path / "receiver.db")
    c = client(db_path=db)
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 200
    again = client(db_path=db)
    assert again.get("/_receiver/products").json() == {"red-pants|en-US": product()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_receiver():
    """A real uvicorn receiver in a thread; yields (base_url_without_tenant, server)."""
    servers = []

    def start(**options):
        port = _free_port()
        server = build_server(port, ":memory:", ReceiverOptions(**options))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_real_server_drops_connections(live_receiver):
    base = live_receiver(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{base}/acme/v1/catalog/products", json=[product()], timeout=5)
    stats = requests.get(f"{base}/_receiver/stats", timeout=5).json()
    assert stats["requests"] == {"POST /v1/catalog/products": {"dropped": 1}}
    requests.post(f"{base}/_receiver/faults", json={"drop_rate": 0.0}, timeout=5)
    r = requests.post(f"{base}/acme/v1/catalog/products", json=[product()], timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}


def test_serve_in_a_subprocess(tmp_path):
    port = _free_port()
    db = tmp_path / "receiver.db"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from catalog_sync.receiver import serve, ReceiverOptions;"
        "serve(int(sys.argv[2]), sys.argv[3], ReceiverOptions(tenant_id='acme', required_token='tok'))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "include"), str(port), str(db)])
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{base}/_receiver/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "receiver exited"
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
        body = gzip.compress(json.dumps([product("a"), product("b")]).encode())
        r = requests.post(
            f"{base}/acme/v1/catalog/products",
            data=body,
            headers={**JSON, "Content-Encoding": "gzip", "Authorization": "Bearer tok"},
            timeout=5,
        )
        assert r.status_code == 200
        assert r.json() == {"status": "ACCEPTED", "acceptedCount": 2}
        assert sorted(requests.get(f"{base}/_receiver/products", timeout=5).json()) == ["a|en-US", "b|en-US"]
    finally:
        proc.terminate()
        proc.wait(10)
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sku, locale FROM products ORDER BY sku").fetchall() == [("a", "en-US"), ("b", "en-US")]


def test_answer_next_answers_the_next_requests_with_the_queued_statuses():
    c = client(answer_next=(408, 400, 409))
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 408
    gateway = c.post(PRODUCTS, json=[product()], headers=JSON)
    assert (gateway.status_code, gateway.json()) == (400, {"status": "FAILED", "message": "Bad Request", "errors": []})
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 409
    assert c.get("/_receiver/products").json() == {}  # nothing of the refused requests was stored
    assert c.post(PRODUCTS, json=[product()], headers=JSON).status_code == 200
    assert c.get("/_receiver/stats").json()["faults"]["answered_next"] == 3
    assert c.post("/_receiver/faults", json={"answer_next": [503]}).json()["answer_next"] == [503]
    assert c.post("/_receiver/faults", json={"answer_next": [200]}).status_code == 400  # only errors can be queued


def test_a_late_sku_request_gets_no_answer_and_is_applied_when_released(live_receiver):
    base = live_receiver(late_skus={"slow"}, late_apply_s=None)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{base}/acme/v1/catalog/products", json=[product("slow", name="old")], timeout=5)
    assert requests.get(f"{base}/_receiver/products", timeout=5).json() == {}  # held, not applied
    # The SKU left the list: the next request is answered, and applied at once.
    r = requests.post(f"{base}/acme/v1/catalog/products", json=[product("slow", name="new")], timeout=5)
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}
    assert requests.get(f"{base}/_receiver/products", timeout=5).json()["slow|en-US"]["name"] == "new"
    # Released: the late one lands after it, and the receiver holds the old body.
    assert requests.post(f"{base}/_receiver/late/apply", timeout=5).json() == {"applied": 1}
    assert requests.get(f"{base}/_receiver/products", timeout=5).json()["slow|en-US"]["name"] == "old"
    assert requests.post(f"{base}/_receiver/late/apply", timeout=5).json() == {"applied": 0}
    assert requests.get(f"{base}/_receiver/stats", timeout=5).json()["faults"]["late_applied"] == 1
    assert requests.get(f"{base}/_receiver/faults", timeout=5).json()["late_skus"] == []


def test_a_late_sku_request_with_a_delay_is_applied_by_itself(live_receiver):
    base = live_receiver(late_skus={"slow"}, late_apply_s=0.2)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{base}/acme/v1/catalog/products", json=[product("slow", name="old")], timeout=5)
    deadline = time.monotonic() + 10
    while requests.get(f"{base}/_receiver/stats", timeout=5).json()["faults"]["late_applied"] < 1:
        assert time.monotonic() < deadline, "the late request was never applied"
        time.sleep(0.05)
    assert requests.get(f"{base}/_receiver/products", timeout=5).json()["slow|en-US"]["name"] == "old"
    assert requests.get(f"{base}/_receiver/faults", timeout=5).json()["late_skus"] == []
