"""`python -m catalog_sync` that dies like a killed worker between export and commit.

The crash is a test double, injected here rather than switched on inside the engine:
the commit step is replaced by an immediate `os._exit(70)`.
"""

from __future__ import annotations

import os
import sys

from catalog_sync.steps import sync


def _crash(*_args, **_kwargs):
    print("crash_before_commit: dying between export and commit", file=sys.stderr, flush=True)
    os._exit(70)


sync.commit = _crash

if __name__ == "__main__":
    from catalog_sync.cli import main

    sys.exit(main(sys.argv[1:]))
