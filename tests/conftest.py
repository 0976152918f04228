from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import airflow_env  # noqa: E402

airflow_env.configure()

from services import drop_mariadb_database, fresh_mariadb_database  # noqa: E402


@pytest.fixture
def mariadb_url():
    """A fresh, empty MariaDB database, dropped afterwards."""
    url = fresh_mariadb_database()
    yield url
    drop_mariadb_database(url)
