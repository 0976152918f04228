"""The fault matrix: every way of failing we know of, each followed by one clean run.

Each case starts from a synced demo catalog (300 products x 2 store views, the reference receiver
over HTTP), changes Magento (renames, a price, a deleted product), runs the sync under the fault,
lifts the fault and runs once more. After that clean run the receiver must hold exactly the mapped
source (products, prices, price books, metadata), and the runs must have told the truth: the clean
run exits 0 with nothing left not accepted.

Per case the test records the items sent (accepted by the receiver, over both runs), the items
needed (keys whose body differs between the state before and the source after), the items lost
(differing at the receiver after the clean run: always 0), the duplicates (sent beyond what was
needed) and the time taken. CATALOG_SYNC_FAULT_MATRIX_OUT=path writes that table as Markdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from catalog_sync import cli, clock
from catalog_sync.receiver import ReceiverOptions
from catalog_sync.state.status_store import StatusStore
from receiver_helpers import ThreadedReceiver, receiver_state
from sync_helpers import SyncEnv, mapped_source

TENANT, TOKEN = "acme-tenant", "test-token-123"
NAME_ATTRIBUTE_ID = 73
SUPPORT = Path(__file__).parent / "support"
RESULTS: list[dict] = []


@dataclass
class Run:
    """One faulty run's arguments, the exit codes it may give, and how it ends."""

    args: tuple[str, ...] = ()
    exit: tuple[int, ...] = (0,)
    kill: str | None = None  # "export" / "commit": the run dies by SIGKILL there (tests/support/kill_during.py)


@dataclass
class Case:
    name: str
    faults: dict = field(default_factory=dict)  # receiver faults during the faulty run ("<sku>": a renamed sku)
    run: Run = field(default_factory=Run)
    clean_args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)  # environment of the faulty run
    # Unchanged items are sent again on purpose (a forced re-send, the late-write guard): the
    # products counted over both runs may exceed the products that changed.
    resends: bool = False
    late_write: bool = False  # wait for the receiver's late write, then let the window pass before the clean run
    state: Callable[[Matrix], None] | None = None  # damage done to the state (or the lock) before the faulty run
    operator: tuple[str, ...] = ()  # a CLI command the operator runs after the faulty run (e.g. unlock --force)


class Matrix:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sync(self, *extra: str, expect: tuple[int, ...] = (0,)) -> dict:
        self.capsys.readouterr()
        code = cli.main(["sync", "--source-url", self.env.source_url, "--state-url", str(self.env.state_dir),
                         "--target-url", self.receiver.target, *extra])
        out = self.capsys.readouterr().out.strip().splitlines()
        assert code in expect, (code, out[-1:])
        return None if code == cli.EXIT_LOCKED else json.loads(out[-1])

    def command(self, *args: str) -> int:
        return cli.main([*args, "--state-url", str(self.env.state_dir)])

    def killed_sync(self, where: str, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, str(SUPPORT / "kill_during.py"), where, "sync", "--source-url",
                               self.env.source_url, "--state-url", str(self.env.state_dir), "--target-url",
                               self.receiver.target, *extra], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == -9, done.stderr[-2000:]  # died by SIGKILL where it should

    def faults(self, **changes) -> None:
        assert requests.post(f"{self.receiver.root}/_receiver/faults", json=changes, timeout=10).ok

    def stats(self) -> dict:
        return requests.get(f"{self.receiver.root}/_receiver/stats", timeout=10).json()

    def accepted(self, kind: str | None = None) -> int:
        """Items the receiver accepted so far (upserts and deletes), of one kind or of all."""
        items = self.stats()["items"]
        return sum(sum(ops.values()) for k, ops in items.items() if kind in (None, k))

    def wait_for_late_write(self) -> None:
        deadline = time.monotonic() + 30
        while self.stats()["faults"]["late_applied"] < 1:
            assert time.monotonic() < deadline, "the receiver never applied the late request"
            time.sleep(0.05)

    def change_magento(self) -> list[str]:
        """Rename 60 products, reprice one, delete one; returns the renamed skus."""
        env = self.env
        rows = env.scalar(
            "SELECT group_concat(entity_id || '|' || sku, ',') FROM (SELECT entity_id, sku FROM catalog_product_entity "
            "WHERE type_id = 'simple' ORDER BY entity_id LIMIT 62)").split(",")
        ids, skus = [int(r.split("|", 1)[0]) for r in rows], [r.split("|", 1)[1] for r in rows]
        for n, entity_id in enumerate(ids[:60]):
            env.execute("UPDATE catalog_product_entity_varchar SET value = :v WHERE entity_id = :id AND attribute_id = :a "
                        "AND store_id = 0", params={"v": f"Renamed {n}", "id": entity_id, "a": NAME_ATTRIBUTE_ID})
        env.execute("UPDATE catalog_product_entity_decimal SET value = value + 1 WHERE entity_id = :id AND store_id = 0 "
                    "AND attribute_id = (SELECT attribute_id FROM eav_attribute WHERE entity_type_id = 4 "
                    "AND attribute_code = 'price')", params={"id": ids[60]})
        env.execute("DELETE FROM catalog_product_website WHERE product_id = :id", *[f"DELETE FROM {t} WHERE entity_id = :id" for t in (
            "catalog_product_entity_varchar", "catalog_product_entity_int", "catalog_product_entity_decimal",
            "catalog_product_entity_text", "catalog_product_entity_datetime", "catalog_product_entity")],
            params={"id": ids[61]})
        return skus[:60]


def _lose_manifest(m: Matrix) -> None:
    (m.env.state_dir / "manifest.json").unlink()


def _garble_manifest(m: Matrix) -> None:
    path = m.env.state_dir / "manifest.json"
    path.write_bytes(path.read_bytes()[:-40] + b"\x00garbled")


def _truncate_snapshot(m: Matrix) -> None:
    """A second version (one product renamed), whose products delta file is then cut in half."""
    m.env.execute("UPDATE catalog_product_entity_varchar SET value = 'Renamed in v2' WHERE attribute_id = :a "
                  "AND store_id = 0 AND entity_id = (SELECT max(entity_id) FROM catalog_product_entity "
                  "WHERE type_id = 'simple')", params={"a": NAME_ATTRIBUTE_ID})
    m.sync()
    path = m.env.state_dir / "snapshot" / "products" / "v00000002.delta.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _dead_holder_elsewhere(m: Matrix) -> None:
    """The lock of a run that died in another container: its liveness cannot be checked from here."""
    StatusStore(f"sqlite:///{m.env.state_dir / 'status.db'}").acquire_lock("cli-in-a-dead-container", 1800,
                                                                           process="worker-7:4242")


def _differing(before: dict, after: dict, feeds: tuple[str, ...] | None = None) -> int:
    """Items whose body differs between two states (new, changed or gone)."""
    keys = {(f, k) for state in (before, after) for f, items in state.items() if feeds is None or f in feeds for k in items}
    return sum(1 for f, k in keys if before.get(f, {}).get(k) != after.get(f, {}).get(k))


def _changes(summary: dict) -> int:
    return summary["inserted"] + summary["updated"] + summary["deleted"]


MAYBE_RETRYABLE = (0, cli.EXIT_NOT_ACCEPTED)  # random faults may leave items to retry
CASES = [
    Case("5xx on 30% of requests", faults={"rate_5xx": 0.3, "seed": 5}, run=Run(exit=MAYBE_RETRYABLE)),
    Case("429 on 30% of requests", faults={"rate_429": 0.3, "retry_after_s": 0, "seed": 5}, run=Run(exit=MAYBE_RETRYABLE)),
    Case("answers slower than the client's timeout (20%)", faults={"latency_s": 0.6, "latency_rate": 0.2, "seed": 5},
         run=Run(exit=MAYBE_RETRYABLE), env={"CATALOG_SYNC_HTTP_TIMEOUT_S": "0.3"}),
    Case("dropped connections (20%)", faults={"drop_rate": 0.2, "seed": 5}, run=Run(exit=MAYBE_RETRYABLE)),
    Case("bare 408, 409, 400 naming no item, 418", faults={"answer_next": [408, 409, 400, 418]}),
    Case("an item rejected, then a forced re-send of it", faults={"reject_skus": ["<sku>"]},
         run=Run(exit=(cli.EXIT_NOT_ACCEPTED,)), clean_args=("--skus", "<sku>"), resends=True),
    Case("a late write (no answer, applied 3 s later)", faults={"late_skus": ["<sku>"], "late_apply_s": 3.0},
         resends=True, late_write=True),
    Case("kill -9 during export", run=Run(kill="export")),
    Case("kill -9 during commit", run=Run(kill="commit")),
    Case("--deadline passed before anything was sent", run=Run(args=("--deadline", "0"), exit=(cli.EXIT_NOT_ACCEPTED,))),
    Case("manifest.json lost", state=_lose_manifest),
    Case("manifest.json garbled", state=_garble_manifest),
    # The previous version is put back: the full reconcile re-sends what the damaged version had sent.
    Case("snapshot file truncated", state=_truncate_snapshot, resends=True),
    Case("lock held by a dead run on another host, then unlock --force", state=_dead_holder_elsewhere,
         run=Run(exit=(cli.EXIT_LOCKED,)), operator=("unlock", "--force")),
]


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_SYNC_TARGET_TOKEN", TOKEN)
    monkeypatch.setenv("CATALOG_SYNC_BATCH_SIZE", "10")  # more requests, more faults
    running = ThreadedReceiver(str(tmp_path / "receiver.db"), ReceiverOptions(tenant_id=TENANT, required_token=TOKEN))
    yield running
    running.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_then_a_clean_run_leaves_the_target_exactly_the_source(case, sync_env, receiver, capsys, monkeypatch):
    m = Matrix(sync_env, receiver, capsys)
    fake = clock.FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc))  # leases, windows: pinned
    with clock.use(fake):
        m.sync()
        if case.state:
            case.state(m)
        before = receiver_state(receiver.root)
        baseline, baseline_products = m.accepted(), m.accepted("products")
        renamed = m.change_magento()
        expected = mapped_source(sync_env.source_url)
        needed, needed_products = _differing(before, expected), _differing(before, expected, ("products",))

        def fill(values):
            return tuple(renamed[0] if v == "<sku>" else v for v in values)

        for name, value in case.env.items():
            monkeypatch.setenv(name, value)
        m.faults(**{k: list(fill(v)) if k in ("reject_skus", "late_skus") else v for k, v in case.faults.items()})
        started = time.monotonic()
        if case.run.kill:
            m.killed_sync(case.run.kill, *fill(case.run.args))
            faulty = None
        else:
            faulty = m.sync(*fill(case.run.args), expect=case.run.exit)
        faulty_products = m.accepted("products") - baseline_products
        injected = sum(m.stats()["faults"].values())
        m.faults(rate_5xx=0.0, rate_429=0.0, latency_s=0.0, drop_rate=0.0, answer_next=[], reject_skus=[], late_skus=[])
        for name in case.env:
            monkeypatch.delenv(name)
        if case.operator:
            assert m.command(*case.operator) == 0
        if case.late_write:
            m.wait_for_late_write()
            fake.advance(1800)  # the late-write window
        clean = m.sync(*fill(case.clean_args))
        elapsed = time.monotonic() - started

    received = receiver_state(receiver.root)
    sent = m.accepted() - baseline
    lost = _differing(received, expected)
    RESULTS.append({"fault": case.name, "needed": needed, "sent": sent, "lost": lost, "duplicated": max(0, sent - needed),
                    "faulty_run": None if faulty is None else {k: faulty[k] for k in (
                        "inserted", "updated", "deleted", "failed", "not_accepted", "unconfirmed")},
                    "clean_run": {k: clean[k] for k in ("inserted", "updated", "deleted", "not_accepted")},
                    "faults_injected": injected, "seconds": round(elapsed, 1)})
    assert injected > 0 if case.faults else True, "the fault never fired"
    # Exactly the source: nothing lost, nothing stale, in every feed.
    assert lost == 0 and received == expected
    assert clean["not_accepted"] == 0 and clean["failed"] == 0 and "error" not in clean
    if case.state and faulty is not None:  # a damaged state is repaired, and that run reconciles in full
        assert faulty["mode"] == "full" and faulty["mode_reason"].startswith("recovered the state: "), faulty
    # Honest counts: a run counts as changed only what the receiver accepted...
    if faulty is not None:
        assert _changes(faulty) <= faulty_products
    # ...and the two runs together counted each product item that changed once (unless re-sent on purpose).
    counted = _changes(clean) + (0 if faulty is None else _changes(faulty))
    assert counted >= needed_products if case.resends else counted == needed_products


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    yield
    out = os.environ.get("CATALOG_SYNC_FAULT_MATRIX_OUT")
    if out and RESULTS:
        lines = ["| fault | items needed | items sent | lost | duplicated | time |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['fault']} | {r['needed']} | {r['sent']} | {r['lost']} | {r['duplicated']} | {r['seconds']} s |"
                  for r in RESULTS]
        Path(out).write_text("\n".join(lines) + "\n\n" + json.dumps(RESULTS, indent=1) + "\n")

