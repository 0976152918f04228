"""Access to the real services on this machine, for tests.

A test that needs a service asks for it here. When the service is missing the
test is skipped with the reason locally, and fails under CI (CI=true), so CI
can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

MARIADB_HOST = os.environ.get("CATALOG_SYNC_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("CATALOG_SYNC_TEST_MARIADB_PORT", "3306"))
POSTGRES_HOST = os.environ.get("CATALOG_SYNC_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("CATALOG_SYNC_TEST_POSTGRES_PORT", "5432"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if in_ci():
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fresh_mariadb_database(prefix: str = "cs_test") -> str:
    """Create an empty utf8mb4 database; return its SQLAlchemy URL."""
    if not port_open(MARIADB_HOST, MARIADB_PORT):
        unavailable(f"MariaDB is not listening on {MARIADB_HOST}:{MARIADB_PORT}")
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/?charset=utf8mb4")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    admin.dispose()
    return f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"


def drop_mariadb_database(url: str) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database
    admin = sa.create_engine(f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/?charset=utf8mb4")
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


def fresh_postgres_database(prefix: str = "cs_test") -> str:
    """Create an empty PostgreSQL database; return its SQLAlchemy URL."""
    if not port_open(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"PostgreSQL is not listening on {POSTGRES_HOST}:{POSTGRES_PORT}")
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        f"postgresql+psycopg2://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return f"postgresql+psycopg2://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


FIXTURE_SQL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "magento-2.4.8-catalog.sql"


def load_magento_fixture(url: str) -> None:
    """Load the real Magento 2.4.8 catalog dump (with its triggers) into the database at `url`."""
    import sqlalchemy as sa

    if not FIXTURE_SQL.exists():
        unavailable(f"the Magento fixture is missing: {FIXTURE_SQL}")
    if shutil.which("mysql") is None:
        unavailable("the mysql client is not installed (it loads the fixture's triggers)")
    name = sa.engine.make_url(url).database
    with FIXTURE_SQL.open("rb") as dump:
        subprocess.run(
            ["mysql", "-uroot", f"-h{MARIADB_HOST}", f"-P{MARIADB_PORT}", "--default-character-set=utf8mb4", name],
            stdin=dump, check=True, capture_output=True,
        )


class MotoS3:
    """A local S3-compatible server (moto in server mode) with one bucket, for object-storage state."""

    def __init__(self, workdir: Path, bucket: str = "catalog-sync-state"):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.log = workdir / "moto.log"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"moto server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        import boto3

        boto3.client("s3", **self.client_kwargs(), aws_access_key_id="test", aws_secret_access_key="test").create_bucket(
            Bucket=bucket)

    def client_kwargs(self) -> dict:
        return {"endpoint_url": self.endpoint, "region_name": "us-east-1"}

    def storage_options(self) -> dict:
        """s3fs options, as the catalog_sync_state Connection gives them."""
        return {"key": "test", "secret": "test", "client_kwargs": self.client_kwargs()}

    def env(self) -> dict[str, str]:
        """The standard AWS variables, which s3fs reads (the CLI's way to reach it)."""
        return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
