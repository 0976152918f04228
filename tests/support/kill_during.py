"""`python kill_during.py export|commit ARGS...`: `python -m catalog_sync ARGS...` that dies by SIGKILL
in the middle of a step, as a worker killed by the OOM killer or a node that goes away would.

- export: after the target answered the second request (others may be in flight);
- commit: after the first feed's new snapshot files are written, before the manifest swap.

The kill is a test double, injected here; the engine has no switch for it.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

from catalog_sync.targets.ingestion_api.client import IngestionApiClient

commit_step = importlib.import_module("catalog_sync.steps.commit")  # the module (steps.commit is also its function)


def _die(where: str) -> None:
    print(f"kill_during: SIGKILL {where}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_in_export() -> None:
    deliver, answered = IngestionApiClient._deliver, []

    def dying_deliver(self, endpoint, bodies, method="POST"):
        results = deliver(self, endpoint, bodies, method)
        answered.append(endpoint)
        if len(answered) == 2:
            _die(f"in export, after the answer to request 2 ({endpoint})")
        return results

    IngestionApiClient._deliver = dying_deliver


def _kill_in_commit() -> None:
    commit_feed = commit_step._commit_feed

    def dying_commit_feed(*args, **kwargs):
        result = commit_feed(*args, **kwargs)
        _die("in commit, after the first feed's files were written")
        return result

    commit_step._commit_feed = dying_commit_feed


if __name__ == "__main__":
    where, argv = sys.argv[1], sys.argv[2:]
    {"export": _kill_in_export, "commit": _kill_in_commit}[where]()
    from catalog_sync.cli import main

    sys.exit(main(argv))
