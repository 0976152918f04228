"""Where the snapshot and the staging files live: a local folder or an fsspec URL.

All state I/O goes through `StateLocation` so the same code works on a local
disk (embedded setup) and on object storage (distributed workers).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem


@dataclass(frozen=True)
class StateLocation:
    """A root URL (or local path) under which Catalog Sync keeps its files."""

    url: str
    storage_options: tuple[tuple[str, Any], ...] = ()

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs, _ = url_to_fs(self.url, **dict(self.storage_options))
        return fs

    @property
    def root(self) -> str:
        _, path = url_to_fs(self.url, **dict(self.storage_options))
        return path.rstrip("/")

    def path(self, *parts: str) -> str:
        """The path inside `fs` (no protocol): for fsspec and pyarrow's `filesystem=`."""
        return "/".join([self.root, *[p.strip("/") for p in parts]])

    @property
    def is_remote(self) -> bool:
        return not isinstance(self.fs, LocalFileSystem)

    def url_of(self, *parts: str) -> str:
        """What DuckDB opens: a local path, or protocol://path through the filesystem that
        `duckdb_session.use_filesystem` registered (DuckDB gets no extension, no credentials)."""
        if not self.is_remote:
            return self.path(*parts)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path(*parts)}"

    def child(self, *parts: str) -> "StateLocation":
        return StateLocation(self._join_url(*parts), self.storage_options)

    def _join_url(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *[p.strip("/") for p in parts]])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def makedirs(self, *parts: str) -> None:
        self.fs.makedirs(self.path(*parts), exist_ok=True)

    def read_json(self, *parts: str) -> Any:
        with self.fs.open(self.path(*parts), "rb") as fh:
            return json.loads(fh.read())

    def write_json_atomic(self, data: Any, *parts: str) -> None:
        """Write JSON so readers see the old or the new file, never half of one."""
        final = self.path(*parts)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True).encode())
        # Local: rename(2) is atomic. Object stores: the final PUT is atomic.
        self.fs.mv(tmp, final)

    def remove(self, *parts: str, recursive: bool = False) -> None:
        target = self.path(*parts)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=recursive)

    def open(self, *parts: str, mode: str = "rb"):
        return self.fs.open(self.path(*parts), mode)


def open_state(url: str, storage_options: dict[str, Any] | None = None) -> StateLocation:
    """The state location of a deployment; on object storage, DuckDB is given its filesystem."""
    location = StateLocation(url, tuple(sorted((storage_options or {}).items())))
    if location.is_remote:
        from catalog_sync.state import duckdb_session

        duckdb_session.use_filesystem(location.fs)
    return location
