import pytest

from catalog_sync.airflow.hooks import sqlalchemy_url
from catalog_sync.settings import ConfigurationError, SyncSettings, redact_url
from catalog_sync.targets import registry
from catalog_sync.targets.ingestion_api.config import IngestionApiConfig, parse_price_books


class FakeConnection:
    def __init__(self, conn_type, host=None, login=None, password=None, schema=None, port=None, extra=None):
        self.conn_id, self.conn_type, self.host, self.login = "x", conn_type, host, login
        self.password, self.schema, self.port, self.extra_dejson = password, schema, port, extra or {}


def test_secrets_never_appear_in_the_settings_repr():
    target = IngestionApiConfig("https://api.example/tenant", token="t0ken", ims={"client_secret": "ims-secret"})
    settings = SyncSettings(source_url="mysql+pymysql://reader:s3cr3t@db/magento", target_url=target.url,
                            state_url="/tmp/state", status_url="postgresql://u:pw@pg/status", target=target)
    for text in (repr(settings), repr(target)):
        for secret in ("s3cr3t", "pw@", "t0ken", "ims-secret"):
            assert secret not in text


def test_redact_url_masks_the_password():
    assert redact_url("mysql+pymysql://reader:s3cr3t@db:3306/magento?charset=utf8mb4") == \
        "mysql+pymysql://reader:***@db:3306/magento?charset=utf8mb4"


def test_connections_become_sqlalchemy_urls():
    assert sqlalchemy_url(FakeConnection("mysql", "db", "reader", "p@ss/word", "magento", 3306)) == \
        "mysql+pymysql://reader:p%40ss%2Fword@db:3306/magento?charset=utf8mb4"
    assert sqlalchemy_url(FakeConnection("sqlite", "/data/shop.db")) == "sqlite:////data/shop.db"
    assert sqlalchemy_url(FakeConnection("postgres", "pg", "u", None, "status", 5432)) == "postgresql+psycopg2://u@pg:5432/status"
    assert sqlalchemy_url(FakeConnection("generic", extra={"sqlalchemy_url": "sqlite:///x.db"})) == "sqlite:///x.db"


def test_the_target_connection_names_its_kind_by_type_or_by_url():
    api = registry.config_from_connection(FakeConnection(
        "catalog_sync_ingestion_api", host="https://na1.api.commerce.adobe.com/t1", password="tok",
        extra={"price_books": "base=main-usd", "max_requests_per_minute": "120"}), {"batch_size": "50"})
    assert (api.url, api.token, dict(api.feed.price_books), api.max_requests_per_minute, api.batch_size) == (
        "https://na1.api.commerce.adobe.com/t1", "tok", {"base": "main-usd"}, 120, 50)
    files = registry.config_from_connection(FakeConnection("generic", extra={"url": "file:///out"}))
    assert (type(files).__name__, files.url) == ("FilesConfig", "file:///out")
    with pytest.raises(ConfigurationError, match="use a connection type of catalog_sync_files, catalog_sync_ingestion_api"):
        registry.config_from_connection(FakeConnection("generic"))


def test_price_books_are_website_to_id_pairs():
    assert parse_price_books("base=main-usd, eu = main-eur") == {"base": "main-usd", "eu": "main-eur"}
    assert parse_price_books({"base": "main-usd"}) == {"base": "main-usd"}
    assert parse_price_books("") == {}
    with pytest.raises(ConfigurationError, match="website=price_book_id"):
        parse_price_books("base")
