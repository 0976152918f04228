"""Ways a sync can fail at the target, each reproduced against the reference receiver over HTTP:
held items and forced re-sends, gateway answers that blame no item, late writes, the deadline.

After each, the receiver must hold exactly the mapped source, and the run must say what it did."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from catalog_sync import cli, clock
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.state import duckdb_session
from catalog_sync.state.location import open_state
from catalog_sync.state.snapshot import SnapshotStore
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import SyncEnv, mapped_source

TENANT, TOKEN = "acme-tenant", "test-token-123"
NAME_ATTRIBUTE_ID = 73


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN, seed=1))
    yield running
    running.stop()


def _sync(env: SyncEnv, receiver: ThreadedReceiver, capsys, *extra: str, expect_exit: int = 0) -> dict:
    capsys.readouterr()
    code = cli.main(["sync", "--source-url", env.source_url, "--state-url", str(env.state_dir),
                     "--target-url", receiver.target, *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == expect_exit, out
    return json.loads(out[-1])


def _faults(receiver: ThreadedReceiver, **changes) -> None:
    assert requests.post(f"{receiver.root}/_receiver/faults", json=changes, timeout=10).ok


def _items_of(state: dict, sku: str) -> dict[str, dict]:
    """feed -> key -> body of one sku's items."""
    return {feed: {k: b for k, b in items.items() if json.loads(k)["sku"] == sku}
            for feed, items in state.items() if feed in ("products", "prices")}


def _simple_sku(env: SyncEnv) -> str:
    """A simple product on both websites, with its name only at default scope (a rename changes both views)."""
    return env.scalar("SELECT e.sku FROM catalog_product_entity e WHERE e.type_id = 'simple' "
                      "AND (SELECT count(*) FROM catalog_product_website w WHERE w.product_id = e.entity_id) = 2 "
                      "AND NOT EXISTS (SELECT 1 FROM catalog_product_super_link l WHERE l.product_id = e.entity_id) "
                      "AND NOT EXISTS (SELECT 1 FROM catalog_product_entity_varchar v WHERE v.entity_id = e.entity_id "
                      f"AND v.attribute_id = {NAME_ATTRIBUTE_ID} AND v.store_id <> 0) ORDER BY e.entity_id LIMIT 1")


def _rename(env: SyncEnv, sku: str, name: str) -> None:
    env.execute("UPDATE catalog_product_entity_varchar SET value = :name WHERE attribute_id = :attr AND store_id = 0 "
                "AND entity_id = (SELECT entity_id FROM catalog_product_entity WHERE sku = :sku)",
                params={"name": name, "attr": NAME_ATTRIBUTE_ID, "sku": sku})


# ---- 1. an item rejected once is re-sent when a re-send is forced --------------------------------


@pytest.mark.parametrize("force", [["--cleanup"], ["--skus", "SKU"]], ids=["cleanup", "skus"])
def test_a_held_item_is_sent_again_by_a_forced_resend(sync_env, receiver, capsys, force):
    sku = _simple_sku(sync_env)
    expected = mapped_source(sync_env.source_url)
    held = _items_of(expected, sku)
    held_count = sum(len(items) for items in held.values())
    assert held_count == 4  # the product in both store views, and its price in both websites' price books
    _faults(receiver, reject_skus=[sku])

    first = _sync(sync_env, receiver, capsys, expect_exit=cli.EXIT_NOT_ACCEPTED)
    assert first["not_accepted"] == held_count and first["failed"] == 2  # failed: the products feed's

    _faults(receiver, reject_skus=[])
    again = _sync(sync_env, receiver, capsys, expect_exit=cli.EXIT_NOT_ACCEPTED)  # nothing changed: still held
    assert again["not_accepted"] == held_count
    assert _items_of(receiver_state(receiver.root), sku) == {"products": {}, "prices": {}}

    forced = _sync(sync_env, receiver, capsys, *[sku if a == "SKU" else a for a in force])
    assert forced["not_accepted"] == 0 and forced["failed"] == 0
    assert receiver_state(receiver.root) == expected
    assert _sync(sync_env, receiver, capsys)["not_accepted"] == 0


# ---- 2. a gateway's answer that names no item loses no batch -------------------------------------


def test_a_bare_408_409_or_400_on_a_batch_loses_none_of_its_items(sync_env, receiver, capsys):
    _faults(receiver, answer_next=[408, 409, 400, 400, 418])

    summary = _sync(sync_env, receiver, capsys, "--batch-size", "100")

    assert (summary["failed"], summary["not_accepted"]) == (0, 0)
    assert receiver_state(receiver.root) == mapped_source(sync_env.source_url)
    assert requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["faults"]["answered_next"] == 5


# ---- 8. no late write wins -------------------------------------------------------------------------


def _pending(env: SyncEnv, feed: str) -> list[tuple]:
    store = SnapshotStore(open_state(str(env.state_dir)))
    files = store.read_manifest().feeds[feed]
    return duckdb_session.fetch_all("SELECT key, status, resend_after FROM read_parquet(?) ORDER BY key",
                                    [store.file_url(files.pending)])


def test_a_request_the_target_applies_late_never_wins_over_a_newer_body(sync_env, receiver, capsys):
    sku = _simple_sku(sync_env)
    # Operational time is pinned (leases, the late-write window); the test says when the late write lands.
    fake = clock.FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc))
    _faults(receiver, late_skus=[sku], late_apply_s=None)  # held until the test applies it
    with clock.use(fake):
        first = _sync(sync_env, receiver, capsys)  # X's request gets no answer; its retry is accepted
        assert first["unconfirmed"] >= 1 and first["not_accepted"] == 0
        unconfirmed = [r for r in _pending(sync_env, "products") if r[1] == "unconfirmed"]
        assert {json.loads(k)["sku"] for k, *_ in unconfirmed} >= {sku}
        # the window from the commit on (the fake clock moved only by the rate limiter's spacing)
        window_ends = (fake.now() + timedelta(seconds=1800)).isoformat(timespec="seconds")
        assert {after for *_, after in unconfirmed} == {window_ends}

        _rename(sync_env, sku, "Newer name")
        second = _sync(sync_env, receiver, capsys)  # sends the newer body; the window has not passed
        assert second["updated"] == 2
        _apply_late_write(receiver)
        # The late request landed after the newer body: the receiver is wrong for now...
        assert {b["name"] for b in _items_of(receiver_state(receiver.root), sku)["products"].values()} != {"Newer name"}
        assert _sync(sync_env, receiver, capsys)["updated"] == 0  # ...and stays so within the window

        fake.advance(1800)
        third = _sync(sync_env, receiver, capsys)  # the window has passed: the newest bodies go once more

        assert third["updated"] >= 2 and third["unconfirmed"] == 0
        assert receiver_state(receiver.root) == mapped_source(sync_env.source_url)
        assert [r for r in _pending(sync_env, "products") if r[1] == "unconfirmed"] == []
        fourth = _sync(sync_env, receiver, capsys)
        assert (fourth["inserted"], fourth["updated"], fourth["deleted"]) == (0, 0, 0)


def _apply_late_write(receiver: ThreadedReceiver) -> None:
    # Applied on the test's word, not after a delay: a loaded machine cannot reorder it.
    assert requests.post(f"{receiver.root}/_receiver/late/apply", timeout=10).json() == {"applied": 1}
    assert requests.get(f"{receiver.root}/_receiver/stats", timeout=10).json()["faults"]["late_applied"] == 1


# ---- 9. honest outcomes --------------------------------------------------------------------------


def test_a_deadline_that_has_passed_sends_nothing_more_and_the_next_run_sends_it(sync_env, receiver, capsys):
    expected = mapped_source(sync_env.source_url)

    stopped = _sync(sync_env, receiver, capsys, "--deadline", "0", expect_exit=cli.EXIT_NOT_ACCEPTED)

    assert stopped["deadline_reached"] is True
    assert stopped["inserted"] == 0 and stopped["not_accepted"] == sum(len(items) for items in expected.values())
    assert receiver_state(receiver.root) == {}
    resumed = _sync(sync_env, receiver, capsys, "--deadline", "15m")
    assert resumed["not_accepted"] == 0 and "deadline_reached" not in resumed
    assert receiver_state(receiver.root) == expected


@pytest.mark.parametrize("text, seconds", [("900", 900), ("90s", 90), ("15m", 900), ("2h", 7200), ("0.5", 0.5)])
def test_deadline_durations(text, seconds):
    assert cli._duration(text).total_seconds() == seconds


def test_a_deadline_that_is_not_a_duration_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sync", "--deadline", "soon"])
    assert exc.value.code == 2
    assert "'soon' is not a duration" in capsys.readouterr().err

