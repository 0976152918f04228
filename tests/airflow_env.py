"""A throwaway Airflow home for DAG tests: SQLite metadata, our dags/ folder, no examples.

Imported by conftest before anything imports airflow, because Airflow reads
its configuration once, at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(os.environ.get("CATALOG_SYNC_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="cs-airflow-"))


def configure() -> None:
    os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    # Tasks import the engine from include/, as the Astro image does via PYTHONPATH.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "include"), os.environ.get("PYTHONPATH")]))


_migrated = False


def migrate_once() -> None:
    """`airflow db migrate` (dag.test() needs the metadata tables)."""
    global _migrated
    if _migrated:
        return
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    _migrated = True
