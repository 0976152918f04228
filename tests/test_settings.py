import pytest

from catalog_sync.airflow.connections import sqlalchemy_url, target_url
from catalog_sync.settings import SyncSettings, redact_url


class FakeConnection:
    def __init__(self, conn_type, host=None, login=None, password=None, schema=None, port=None, extra=None):
        self.conn_id, self.conn_type, self.host, self.login = "x", conn_type, host, login
        self.password, self.schema, self.port, self.extra_dejson = password, schema, port, extra or {}


def test_secrets_never_appear_in_the_settings_repr():
    settings = SyncSettings(source_url="mysql+pymysql://reader:s3cr3t@db/magento", target_url="file:///out",
                            state_url="/tmp/state", status_url="postgresql://u:pw@pg/status", target_token="t0ken",
                            target_ims={"client_secret": "ims-secret"})
    text = repr(settings)
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
    assert target_url(FakeConnection("generic", extra={"url": "file:///out"})) == "file:///out"


def test_price_books_are_website_to_id_pairs():
    from catalog_sync.settings import ConfigurationError, parse_price_books

    assert parse_price_books("base=main-usd, eu = main-eur") == {"base": "main-usd", "eu": "main-eur"}
    assert parse_price_books({"base": "main-usd"}) == {"base": "main-usd"}
    assert parse_price_books("") == {}
    with pytest.raises(ConfigurationError, match="website=price_book_id"):
        parse_price_books("base")
