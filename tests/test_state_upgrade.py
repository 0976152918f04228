"""A state folder written by an earlier release is upgraded by the first run, without a full resend."""

from __future__ import annotations

import json

import pytest

from previous_release import STATE_FORMAT_1, PreviousRelease
from sync_helpers import expected_feed

pytestmark = pytest.mark.dates


def test_a_format_1_state_is_upgraded_and_only_prices_with_a_window_are_judged_again(sync_env, tmp_path, capsys,
                                                                                     monkeypatch):
    """Format 1 kept no day for each item, so the sent discount of an item with a special-price window is
    unknown: the first run re-sends exactly those items once, and nothing else."""
    old = PreviousRelease(STATE_FORMAT_1, tmp_path)
    first = old.sync("--source-url", sync_env.source_url, "--target-url", sync_env.target_url,
                     "--state-url", str(sync_env.state_dir), env={"CATALOG_SYNC_TODAY": "2026-02-10"})
    manifest = json.loads((sync_env.state_dir / "manifest.json").read_text())
    assert (first["mode"], manifest["format"]) == ("full", 1)
    sent_by_old = sync_env.target_state()
    windowed = {key for key, record in sent_by_old.items()
                if record["special_price"] is not None and (record["special_price_from"] or record["special_price_to"])}
    assert 0 < len(windowed) < len(sent_by_old) / 4

    monkeypatch.setenv("CATALOG_SYNC_NOW", "2026-02-10T12:00:00Z")
    upgraded = sync_env.sync(capsys)

    manifest = json.loads((sync_env.state_dir / "manifest.json").read_text())
    assert manifest["format"] == 2 and upgraded["mode"] == "incremental"
    assert {(line["sku"], line["store_view_code"]) for line in sync_env.sent} == windowed
    assert (upgraded["updated"], upgraded["inserted"], upgraded["deleted"]) == (len(windowed), 0, 0)

    again = sync_env.sync(capsys)
    assert (again["updated"], again["inserted"], again["deleted"], sync_env.sent) == (0, 0, 0, [])
    assert sync_env.target_state() == expected_feed(sync_env.source_url)
