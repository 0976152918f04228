"""The snapshot and staging on S3 (moto in server mode): the same sync, nothing on the local disk."""

from __future__ import annotations

import json

import pytest
import s3fs

from catalog_sync import cli
from services import MotoS3
from sync_helpers import SyncEnv, expected_feed, mapped_source


@pytest.fixture
def s3(tmp_path, monkeypatch):
    server = MotoS3(tmp_path)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def _sync(env: SyncEnv, capsys, state_url: str, status_url: str) -> dict:
    capsys.readouterr()
    code = cli.main(["sync", "--source-url", env.source_url, "--target-url", env.target_url, "--state-url", state_url,
                     "--status-url", status_url])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    return json.loads(out[-1])


def test_a_sync_with_its_state_on_s3_converges_and_keeps_nothing_locally(sync_env, s3, capsys, tmp_path):
    state_url = f"s3://{s3.bucket}/catalog-sync"
    status_url = f"sqlite:///{tmp_path / 'status.db'}"

    first = _sync(sync_env, capsys, state_url, status_url)
    sync_env.execute("UPDATE catalog_product_entity_varchar SET value = 'Renamed on S3' WHERE attribute_id = 73 "
                     "AND store_id = 0 AND entity_id = (SELECT min(entity_id) FROM catalog_product_entity WHERE type_id = 'simple')")
    second = _sync(sync_env, capsys, state_url, status_url)

    assert first["inserted"] == len(expected_feed(sync_env.source_url)) and first["failed"] == 0
    assert second["mode"] == "incremental" and second["updated"] >= 1 and second["inserted"] == 0
    assert sync_env.target_state() == mapped_source(sync_env.source_url)
    fs = s3fs.S3FileSystem(**s3.storage_options())
    manifest = json.loads(fs.cat(f"{s3.bucket}/catalog-sync/manifest.json"))
    assert manifest["version"] == 2 and fs.exists(f"{s3.bucket}/catalog-sync/manifests/v00000002.json")
    for files in manifest["feeds"].values():
        assert fs.exists(f"{s3.bucket}/catalog-sync/{files['file']}") and fs.exists(f"{s3.bucket}/catalog-sync/{files['pending']}")
    assert not sync_env.state_dir.exists()  # the local state folder was never used
