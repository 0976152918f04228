"""`python -m catalog_sync` for the test of two first runs started at once on a new status store.

Test doubles, injected here rather than switched on inside the engine: each process waits at a
file barrier right before it first opens the status store, so both create its tables at the
same moment; and the process that took the lock waits in extract until the test lets it go, so
the other one surely finds the lock taken (rather than a finished run).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from catalog_sync.state import status_store
from catalog_sync.steps import sync

BARRIER = Path(os.environ["FIRST_RUNS_BARRIER"])
PARTIES = int(os.environ.get("FIRST_RUNS_PARTIES", "2"))
GO = BARRIER / "go"


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if time.monotonic() > deadline:
            print(f"first_runs_at_once: gave up waiting for {what}", file=sys.stderr, flush=True)
            os._exit(71)
        time.sleep(0.002)


_real_migrate = status_store.migrate
_waited = False


def _migrate_together(engine):
    global _waited
    if not _waited:
        _waited = True
        (BARRIER / f"ready-{os.getpid()}").touch()
        _wait_for(lambda: len(list(BARRIER.glob("ready-*"))) >= PARTIES, "the other runs")
    return _real_migrate(engine)


_real_extract = sync.extract


def _extract_when_let_go(*args, **kwargs):
    (BARRIER / f"holding-{os.getpid()}").touch()
    _wait_for(GO.exists, "the test to let the lock holder go")
    return _real_extract(*args, **kwargs)


status_store.migrate = _migrate_together
sync.extract = _extract_when_let_go

if __name__ == "__main__":
    from catalog_sync.cli import main

    sys.exit(main(sys.argv[1:]))
