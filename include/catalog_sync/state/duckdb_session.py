"""DuckDB connections with bounded memory, for every engine step.

DuckDB defaults to 80% of the machine's RAM and to keeping insertion order;
a sync shares its worker with other tasks and never needs row order, so the
database gets a memory cap (spilling to disk past it) and no order guarantee.

One in-memory database per process, and a connection of its own (temp tables and
views are per connection) for each caller: opening a database costs ~25 ms, a
connection to an open one well under a millisecond, and an hourly run opens ~20.
"""

from __future__ import annotations

import os
import tempfile
import threading

import duckdb
import fsspec
import pyarrow as pa

# 1 GB: the commit of a 100k x 2 full sync once hit 430 of 488 MiB and failed with 512MB
# (its Parquet writing holds payloads it cannot spill); most steps stay far below.
MEMORY_LIMIT = os.environ.get("CATALOG_SYNC_DUCKDB_MEMORY_LIMIT", "1GB")
THREADS = int(os.environ.get("CATALOG_SYNC_DUCKDB_THREADS", "2"))


_filesystems: dict[str, fsspec.AbstractFileSystem] = {}
_lock = threading.Lock()
_database: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (the process that opened it, the database)


def use_filesystem(fs: fsspec.AbstractFileSystem) -> None:
    """Let every later connection open `protocol://...` paths through this fsspec filesystem
    (the state on object storage). DuckDB's own S3 support is an extension it would download."""
    global _database
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    with _lock:
        if any(_filesystems.get(p) is not fs for p in protocols):
            _database = None  # the next connection opens a database that knows it; open connections keep theirs
        for protocol in protocols:
            _filesystems[protocol] = fs


def _open_database() -> duckdb.DuckDBPyConnection:
    global _database
    with _lock:
        # A database opened before a fork is not the child's: its threads stayed in the parent.
        if _database is None or _database[0] != os.getpid():
            con = duckdb.connect(config={
                "memory_limit": MEMORY_LIMIT,
                "threads": THREADS,
                "preserve_insertion_order": False,
                "temp_directory": os.path.join(tempfile.gettempdir(), "catalog_sync_duckdb"),
            })
            for fs in {id(f): f for f in _filesystems.values()}.values():
                con.register_filesystem(fs)
            _database = (os.getpid(), con)
        return _database[1]


def connect() -> duckdb.DuckDBPyConnection:
    """A connection of its own to the process's database; close it when done."""
    con = _open_database().cursor()
    con.execute("SET enable_progress_bar = false")  # a connection setting; it would print into logs and the API server
    return con


def fetch_all(sql: str, params: list | None = None) -> list[tuple]:
    """Run one query on a connection of its own and return its rows."""
    con = connect()
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def sql_literal(value: str) -> str:
    """A quoted SQL string literal (file paths go into read_parquet/COPY, which take no parameters)."""
    return "'" + value.replace("'", "''") + "'"


_DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR", pa.float64(): "DOUBLE",
                 pa.list_(pa.int64()): "BIGINT[]", pa.bool_(): "BOOLEAN"}


def empty_select(schema: pa.Schema) -> str:
    """A SELECT of no rows with the columns of `schema`."""
    cols = ", ".join(f"NULL::{_DUCKDB_TYPES[f.type]} AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


def relation_or_empty_view(name: str, relation: str | None, schema: pa.Schema) -> str:
    """As file_or_empty_view, over a relation's SQL (a snapshot feed's merged view)."""
    if relation:
        return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {relation} UNION ALL BY NAME {empty_select(schema)}"
    return f"CREATE OR REPLACE TEMP VIEW {name} AS {empty_select(schema)}"


def file_or_empty_view(name: str, path: str | None, schema: pa.Schema) -> str:
    """A view over a Parquet file with at least the columns of `schema` (a file written before a
    column existed reads it as NULL), or an empty view with those columns when there is no file yet."""
    return relation_or_empty_view(name, f"read_parquet({sql_literal(path)})" if path else None, schema)
