"""Special-price windows judged as Magento judges them: on the store's own local date.

Magento (Timezone::isScopeDateInInterval) compares the store's local wall clock with
special_from_date at 00:00 and with special_to_date + 24 h, so a window is in force from
local midnight of its first day to the end of its last day. The runs below are pinned
around those edges (CATALOG_SYNC_NOW); the UTC instants are worked out by hand.
"""

from __future__ import annotations

import pytest
import requests

from catalog_sync.receiver import ReceiverOptions
from receiver_helpers import ThreadedReceiver
from sync_helpers import SyncEnv

pytestmark = [pytest.mark.dates, pytest.mark.mariadb]

TENANT, TOKEN = "windows-tenant", "windows-token"
# Fixture product 3, "Vestido Midi Estampado": price 800.00 at store 0, no special price of its own.
DRESS = "Vestido Midi Estampado"

# (zone, how it is set, local 2026-12-01 23:59:59, local 12-02 00:00:00, local 12-05 23:59:59, local 12-06 00:00:01)
ZONES = {
    # The fixture's own setting (default scope). UTC-3 all year: Brazil has had no daylight saving since 2019.
    "America/Sao_Paulo": (None, "2026-12-02T02:59:59Z", "2026-12-02T03:00:00Z", "2026-12-06T02:59:59Z",
                          "2026-12-06T03:00:01Z"),
    # Set for the store view (store_id 1), over the default scope's America/Sao_Paulo. UTC+9.
    "Asia/Tokyo": ("INSERT INTO core_config_data (scope, scope_id, path, value) "
                   "VALUES ('stores', 1, 'general/locale/timezone', 'Asia/Tokyo')",
                   "2026-12-01T14:59:59Z", "2026-12-01T15:00:00Z", "2026-12-05T14:59:59Z", "2026-12-05T15:00:01Z"),
}


@pytest.fixture
def receiver(tmp_path):
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN))
    yield running
    running.stop()


@pytest.mark.parametrize("zone", sorted(ZONES))
def test_a_discount_starts_and_ends_at_the_stores_local_midnight(zone, magento_fixture_url, receiver, tmp_path,
                                                                 capsys, monkeypatch):
    setting, before_start, at_start, before_end, after_end = ZONES[zone]
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    env = SyncEnv(magento_fixture_url, tmp_path / "unused", tmp_path / "state")
    env.execute(
        # 640.00 from 2026-12-02 to 2026-12-05 (both inclusive), as the admin's date pickers save them.
        "INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, entity_id, value) VALUES (78, 0, 3, 640.00)",
        "INSERT INTO catalog_product_entity_datetime (attribute_id, store_id, entity_id, value) "
        "VALUES (79, 0, 3, '2026-12-02 00:00:00')",
        "UPDATE catalog_product_entity_datetime SET value = '2026-12-05 00:00:00' WHERE attribute_id = 80 AND entity_id = 3",
        *([setting] if setting else []),
    )

    def run_at(instant: str) -> tuple[dict, dict]:
        monkeypatch.setenv("CATALOG_SYNC_NOW", instant)
        summary = env.sync(capsys, "--target-url", receiver.target)
        return summary, receiver.get("prices")[f"{DRESS}|base"]

    first, price = run_at(before_start)
    assert (first["mode"], first["failed"]) == ("full", 0)
    assert price == {"sku": DRESS, "priceBookId": "base", "regular": 800.0}

    opened, price = run_at(at_start)
    assert opened["mode"] == "incremental" and _sent(opened) == {"prices": {"inserted": 0, "updated": 1, "deleted": 0}}
    assert price == {"sku": DRESS, "priceBookId": "base", "regular": 800.0,
                     "discounts": [{"code": "special_price", "price": 160.0}]}

    last_day, price = run_at(before_end)
    assert _sent(last_day) == {}  # still in force: nothing sent
    assert price["discounts"] == [{"code": "special_price", "price": 160.0}]

    closed, price = run_at(after_end)
    assert _sent(closed) == {"prices": {"inserted": 0, "updated": 1, "deleted": 0}}
    assert price == {"sku": DRESS, "priceBookId": "base", "regular": 800.0}

    # The other products' prices were sent once, by the first run, and never again.
    stats = requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()
    assert stats["items"]["prices"]["upsert"] == len(receiver.get("prices")) + 2


def _sent(summary: dict) -> dict[str, dict[str, int]]:
    """Per feed, what a run sent (feeds it sent nothing of left out)."""
    return {feed: {k: c[k] for k in ("inserted", "updated", "deleted")} for feed, c in summary["feeds"].items()
            if c["inserted"] or c["updated"] or c["deleted"]}
