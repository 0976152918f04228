"""The Astro project files and the repository's entry points are well formed.

Checks astro.yaml (Astro Deployment file), airflow_settings.yaml (Astro CLI
local settings), the Dockerfile, requirements.txt pinning and the CI entry
point, without needing the Astro CLI or Docker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

SECRET_WORDS = re.compile(r"pass(word)?|secret|token|api[_-]?key|credential|private[_-]?key", re.I)


def load_yaml(name: str):
    with open(ROOT / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def dockerfile_runtime_tag() -> str:
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.strip().upper().startswith("FROM "):
            image = line.split()[1]
            assert ":" in image.rsplit("/", 1)[-1], f"FROM image has no tag: {image}"
            return image.rsplit(":", 1)[1]
    raise AssertionError("Dockerfile has no FROM line")


# --- astro.yaml ------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment():
    doc = load_yaml("astro.yaml")
    assert isinstance(doc, dict) and set(doc) == {"deployment"}, "astro.yaml must have one top-level key: deployment"
    return doc["deployment"]


def test_deployment_configuration(deployment):
    config = deployment["configuration"]
    for key in (
        "name",
        "description",
        "runtime_version",
        "dag_deploy_enabled",
        "executor",
        "scheduler_size",
        "is_high_availability",
        "deployment_type",
        "workspace_name",
    ):
        assert key in config, f"deployment.configuration.{key} is missing"
    assert config["name"]
    assert config["executor"] == "CELERY"
    assert config["deployment_type"] in ("STANDARD", "DEDICATED", "HYBRID")
    assert str(config["scheduler_size"]).upper() in ("SMALL", "MEDIUM", "LARGE", "EXTRA_LARGE")
    assert isinstance(config["dag_deploy_enabled"], bool)
    assert isinstance(config["is_high_availability"], bool)
    if config["deployment_type"] == "STANDARD":
        assert config.get("cloud_provider") and config.get("region"), "a STANDARD deployment needs cloud_provider and region"
    else:
        assert config.get("cluster_name"), "a DEDICATED/HYBRID deployment needs cluster_name"


def test_runtime_version_is_airflow_3_3_and_matches_dockerfile(deployment):
    runtime = str(deployment["configuration"]["runtime_version"])
    # Astro Runtime for Airflow 3.x: "3.<airflow minor>-<patch>".
    assert re.fullmatch(r"3\.3-\d+", runtime), f"runtime_version {runtime!r} is not an Astro Runtime for Airflow 3.3"
    assert dockerfile_runtime_tag() == runtime, "Dockerfile FROM tag and astro.yaml runtime_version differ"


def test_worker_queues(deployment):
    queues = deployment["worker_queues"]
    assert isinstance(queues, list) and queues
    names = [q["name"] for q in queues]
    assert "default" in names, "Celery deployments need a 'default' worker queue"
    assert len(names) == len(set(names)), "worker queue names must be unique"
    for q in queues:
        assert q.get("worker_type"), f"queue {q['name']}: worker_type (Astro machine) is missing"
        for key in ("min_worker_count", "max_worker_count", "worker_concurrency"):
            assert isinstance(q.get(key), int) and not isinstance(q.get(key), bool), f"queue {q['name']}: {key} must be an int"
        assert 0 <= q["min_worker_count"] <= q["max_worker_count"]
        assert q["max_worker_count"] >= 1
        assert q["worker_concurrency"] >= 1


def test_environment_variables_hold_no_secrets(deployment):
    env = deployment["environment_variables"]
    assert isinstance(env, list) and env
    keys = [e["key"] for e in env]
    assert len(keys) == len(set(keys))
    for e in env:
        assert set(e) >= {"key", "value"}, e
        assert e["key"] and re.fullmatch(r"[A-Z_][A-Z0-9_]*", e["key"]), e["key"]
        # The Astro CLI rejects empty values on create.
        assert str(e["value"]) != "", f"{e['key']} has an empty value"
        assert e.get("is_secret", False) is False, f"{e['key']}: secrets do not belong in astro.yaml"
        assert not SECRET_WORDS.search(e["key"]), f"{e['key']} looks like a secret"
        assert not e["key"].startswith("AIRFLOW_CONN_"), f"{e['key']}: connections carry credentials; keep them out"
        value = str(e["value"])
        assert not SECRET_WORDS.search(value), f"{e['key']} value looks like a secret"
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), f"{e['key']} value embeds credentials"
    assert {"key": "AIRFLOW__CORE__LOAD_EXAMPLES", "value": "False", "is_secret": False} in env


def test_alert_emails(deployment):
    emails = deployment.get("alert_emails")
    assert isinstance(emails, list) and emails
    for email in emails:
        assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email), email


# --- airflow_settings.yaml --------------------------------------------------------------


@pytest.fixture(scope="module")
def settings():
    doc = load_yaml("airflow_settings.yaml")
    return doc["airflow"]


def test_settings_connections(settings):
    conns = {c["conn_id"]: c for c in settings["connections"]}
    assert set(conns) >= {"catalog_sync_source", "catalog_sync_target", "catalog_sync_status", "catalog_sync_state"}
    assert conns["catalog_sync_state"]["conn_type"] == "aws"  # object storage of the snapshot and staging
    assert conns["catalog_sync_source"]["conn_type"] == "mysql"
    assert conns["catalog_sync_target"]["conn_type"] == "generic"
    assert conns["catalog_sync_target"]["conn_extra"]["url"]
    assert conns["catalog_sync_status"]["conn_type"] == "postgres"
    for conn in conns.values():
        assert not conn.get("conn_password"), f"{conn['conn_id']}: no passwords in airflow_settings.yaml"
        extra = conn.get("conn_extra") or {}
        for key, value in extra.items():
            assert not SECRET_WORDS.search(key), f"{conn['conn_id']}: extra {key} looks like a secret"
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", str(value)), f"{conn['conn_id']}: extra {key} embeds credentials"


def test_settings_variables(settings):
    variables = {v["variable_name"]: v["variable_value"] for v in settings["variables"]}
    assert set(variables) >= {"catalog_sync_state_url", "catalog_sync_chunk_size", "catalog_sync_batch_size",
                              "catalog_sync_buckets"}
    assert str(variables["catalog_sync_state_url"]).startswith("s3://")  # workers share no disk
    assert int(variables["catalog_sync_buckets"]) >= 1
    assert int(variables["catalog_sync_chunk_size"]) == 10000
    assert int(variables["catalog_sync_batch_size"]) == 100


def test_settings_pool_matches_the_tasks_pool(settings, deployment):
    pools = {p["pool_name"]: p for p in settings["pools"]}
    env = {v["key"]: v["value"] for v in deployment["environment_variables"]}
    assert env["CATALOG_SYNC_POOL"] in pools
    assert int(pools[env["CATALOG_SYNC_POOL"]]["pool_slot"]) >= 1 and pools[env["CATALOG_SYNC_POOL"]]["pool_description"]


# --- Dockerfile, .astro, requirements, CI ---------------------------------------------------


def test_dockerfile_uses_astro_runtime_and_include_on_pythonpath():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    from_lines = [line for line in text.splitlines() if line.strip().upper().startswith("FROM ")]
    assert len(from_lines) == 1
    image = from_lines[0].split()[1]
    assert image.rsplit(":", 1)[0].endswith("/runtime"), f"not the Astro Runtime image: {image}"
    assert re.search(r"^ENV\s+PYTHONPATH=/usr/local/airflow/include(:|\s|$)", text, re.M)


def test_astro_project_config():
    doc = load_yaml(".astro/config.yaml")
    assert doc["project"]["name"] == "catalog-sync"


def test_requirements_are_pinned():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    reqs = [line.split("#", 1)[0].strip() for line in lines]
    reqs = [r for r in reqs if r]
    assert reqs
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],]*==[A-Za-z0-9.+!\-]+", req), f"not pinned with ==: {req}"
    assert any(r.lower().startswith("apache-airflow==3.3.") for r in reqs)


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    commands = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert any(re.fullmatch(r"(exec\s+)?(scripts/test\.sh|make test)(\s.*)?", c) for c in commands), commands
    assert (ROOT / "scripts" / "test.sh").exists()
    assert os.access(ROOT / "scripts" / "test.sh", os.X_OK)
