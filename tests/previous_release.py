"""An earlier release of the engine, taken from this repository's history, to make the state it wrote.

Upgrade tests need a state folder written by the code before a format change, not a
hand-made imitation of one: `PreviousRelease(commit).sync(...)` runs that commit's CLI
(its `include/` from `git archive`, on this virtualenv) in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from services import unavailable

ROOT = Path(__file__).resolve().parents[1]

# The last commit whose state has manifest format 1 (before the run clock recorded `judged_on`).
STATE_FORMAT_1 = "90bd2c4199efd77aecc1e7a23d217abe92a113c2"
# The last commit whose state has manifest format 2 (one Magento record per item, before feeds).
STATE_FORMAT_2 = "49231439ce466919efa0799703955592d8fc7ec9"
# The last commit whose state has manifest format 3 (each feed one file, before delta files).
STATE_FORMAT_3 = "7c434130191765a260a4be137fdeef33b7079df9"


class PreviousRelease:
    def __init__(self, commit: str, workdir: Path):
        self.commit = commit
        self.root = workdir / f"release-{commit[:8]}"
        if not (self.root / "include" / "catalog_sync").exists():
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "include"],
                                     capture_output=True)
            if archive.returncode != 0:
                unavailable(f"commit {commit[:8]} is not in this clone's history (a shallow clone?): "
                            f"{archive.stderr.decode(errors='replace').strip()}")
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(self.root, filter="data")

    def sync(self, *args: str, env: dict[str, str] | None = None) -> dict:
        """`python -m catalog_sync sync ARGS` of that release; returns its JSON summary."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_SYNC_")}
        clean["PYTHONPATH"] = str(self.root / "include")  # ahead of this checkout's editable install
        done = subprocess.run([sys.executable, "-m", "catalog_sync", "sync", *args], env={**clean, **(env or {})},
                              capture_output=True, text=True, timeout=300, cwd=self.root)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
