"""A per-worker hostname for the Celery test: both workers run on one machine, and task instances
record the hostname that ran them (AIRFLOW__CORE__HOSTNAME_CALLABLE=worker_hostname.name)."""

from __future__ import annotations

import os
import socket


def name() -> str:
    return os.environ.get("CATALOG_SYNC_TEST_WORKER_NAME") or socket.getfqdn()
