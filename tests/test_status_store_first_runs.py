"""Two first runs started at once on a new status store: one syncs, the other is told the lock is
taken (exit 3), never a traceback from both creating the store's tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog_sync.cli import EXIT_LOCKED
from catalog_sync.state.status_schema import stored_version
from catalog_sync.state.status_store import StatusStore
from status_store_helpers import BACKENDS, empty_store_url

DRIVER = Path(__file__).parent / "support" / "first_runs_at_once.py"
TRIALS = {"postgresql": 5, "mariadb": 5, "sqlite": 3}
LOCKED = re.compile(r"not started: target 'default' is being synced by (cli-\d{8}T\d{6}Z-[0-9a-f]{6}) "
                    r"\(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, lease until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)")


def _first_to_exit(procs: list[subprocess.Popen], timeout_s: float = 180) -> subprocess.Popen:
    deadline = time.monotonic() + timeout_s
    while True:
        done = [p for p in procs if p.poll() is not None]
        if done:
            return done[0]
        assert time.monotonic() < deadline, "neither run ended"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_first_runs_at_once_one_syncs_and_the_other_exits_locked(backend, sync_env, tmp_path):
    for trial in range(TRIALS[backend]):
        state = tmp_path / f"state-{trial}"
        # SQLite: the default status store, in the state folder; the others: a new database.
        with empty_store_url(backend, state) as url:
            barrier = tmp_path / f"barrier-{trial}"
            barrier.mkdir()
            args = ["sync", "--source-url", sync_env.source_url, "--target-url", f"file://{tmp_path / f'target-{trial}'}",
                    "--state-url", str(state), *([] if backend == "sqlite" else ["--status-url", url])]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FIRST_RUNS_BARRIER": str(barrier)}
            logs = [(tmp_path / f"out-{trial}-{i}.txt", tmp_path / f"err-{trial}-{i}.txt") for i in range(2)]
            procs = [subprocess.Popen([sys.executable, str(DRIVER), *args], env=env, stdout=out.open("w"),
                                      stderr=err.open("w")) for out, err in logs]
            try:
                loser = _first_to_exit(procs)
                winner = procs[1 - procs.index(loser)]
                loser_err = logs[procs.index(loser)][1].read_text()
                assert loser.returncode == EXIT_LOCKED, f"trial {trial}: exit {loser.returncode}\n{loser_err[-3000:]}"
                assert "Traceback" not in loser_err
                holder = LOCKED.fullmatch(loser_err.strip().splitlines()[-1])
                assert holder, loser_err[-2000:]
                assert len(list(barrier.glob("holding-*"))) == 1  # the winner waits in extract, holding the lock
            finally:
                (barrier / "go").touch()
                for proc in procs:
                    proc.wait(timeout=300)
            out, err = logs[procs.index(winner)]
            assert winner.returncode == 0, f"trial {trial}: exit {winner.returncode}\n{err.read_text()[-3000:]}"
            summary = json.loads(out.read_text().strip().splitlines()[-1])
            assert summary["mode"] == "full" and "error" not in summary

            store = StatusStore(url)
            assert [(r["run_id"], r["state"], r["mode"]) for r in store.recent_runs(5)] == [
                (holder[1], "success", "full")]
            assert store.lock_holder() is None and store.lock_events() == []
            assert stored_version(store.engine) == 3
            store.dispose()
