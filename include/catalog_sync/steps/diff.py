"""Classify extracted items against the snapshot, in DuckDB, streaming from Parquet.

Each item keyed by (sku, store_view_code) becomes one of:

    insert       new in the extract
    update       in both, content hash differs (or a forced re-send)
    delete       in the snapshot's scope, gone from the extract
    unchanged    same content hash: not written to the delta
    quarantined  bad input found at extract; reported, never sent
    held         rejected by the target before with this exact content; re-sent only once it changes

Only the product ids in scope are compared: every product in full mode, the
changed ids in incremental mode.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import duckdb

from catalog_sync.state import duckdb_session
from catalog_sync.state.duckdb_session import file_or_empty_view, sql_literal
from catalog_sync.state.snapshot import PENDING_SCHEMA, SNAPSHOT_SCHEMA

log = logging.getLogger(__name__)

SENDABLE_OPS = ("insert", "update", "delete")


@dataclass(frozen=True)
class DiffInputs:
    extract_glob: str
    delta_path: str
    snapshot_path: str | None = None
    pending_path: str | None = None
    scope_path: str | None = None  # Parquet with product_id; None = full scope
    force_resend: bool = False
    snapshot_filter: str | None = None  # SQL on the snapshot's columns: its part in scope (a sku bucket)
    forced_path: str | None = None  # Parquet with product_id: re-sent even when unchanged (price windows)


@dataclass(frozen=True)
class DiffCounts:
    extracted: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    quarantined: int = 0
    held: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def compute_delta(inputs: DiffInputs, con: duckdb.DuckDBPyConnection | None = None) -> DiffCounts:
    if con is None:
        with duckdb_session.connect() as own:  # closed at the end: its buffers go with it
            return compute_delta(inputs, own)
    con.execute(f"CREATE OR REPLACE TEMP VIEW e AS SELECT * FROM read_parquet({sql_literal(inputs.extract_glob)})")
    con.execute(file_or_empty_view("snapshot_all", inputs.snapshot_path, SNAPSHOT_SCHEMA))
    scope_filter = ""
    if inputs.scope_path:
        scope_filter = (
            f" WHERE product_id IN (SELECT product_id FROM read_parquet({sql_literal(inputs.scope_path)}))"
            " OR sku IN (SELECT sku FROM e)"
        )
    elif inputs.snapshot_filter:
        scope_filter = f" WHERE {inputs.snapshot_filter}"
    con.execute(
        "CREATE OR REPLACE TEMP VIEW s AS SELECT product_id, sku, store_view_code, content_hash "
        f"FROM snapshot_all{scope_filter}"
    )
    con.execute(file_or_empty_view("pending_all", inputs.pending_path, PENDING_SCHEMA))
    con.execute(
        "CREATE OR REPLACE TEMP VIEW r AS SELECT sku, store_view_code, content_hash, reason "
        "FROM pending_all WHERE status = 'rejected'"
    )
    force = "true" if inputs.force_resend else "false"
    if inputs.forced_path:
        force = f"{force} OR e.product_id IN (SELECT product_id FROM read_parquet({sql_literal(inputs.forced_path)}))"
    con.execute(
        f"""
        COPY (
            SELECT
                CASE
                    WHEN e.sku IS NULL THEN 'delete'
                    WHEN e.quarantine_reason IS NOT NULL THEN 'quarantined'
                    WHEN r.content_hash IS NOT NULL THEN 'held'
                    WHEN s.sku IS NULL THEN 'insert'
                    WHEN e.content_hash <> s.content_hash OR ({force}) THEN 'update'
                    ELSE 'unchanged'
                END AS op,
                coalesce(e.product_id, s.product_id) AS product_id,
                coalesce(e.sku, s.sku) AS sku,
                coalesce(e.store_view_code, s.store_view_code) AS store_view_code,
                e.content_hash, e.payload, e.name, e.type, e.price, e.visibility, e.source_updated_at,
                e.linked_product_ids, e.judged_on,
                coalesce(e.quarantine_reason, r.reason) AS reason
            FROM e
            FULL OUTER JOIN s ON e.sku = s.sku AND e.store_view_code = s.store_view_code
            LEFT JOIN r ON r.sku = e.sku AND r.store_view_code = e.store_view_code AND r.content_hash = e.content_hash
            WHERE op <> 'unchanged'
        ) TO {sql_literal(inputs.delta_path)} (FORMAT parquet, COMPRESSION zstd)
        """
    )
    by_op = dict(
        con.execute(f"SELECT op, count(*) FROM read_parquet({sql_literal(inputs.delta_path)}) GROUP BY op").fetchall()
    )
    extracted = con.execute("SELECT count(*) FROM e").fetchone()[0]
    changed = sum(by_op.get(op, 0) for op in ("insert", "update", "quarantined", "held"))
    return DiffCounts(
        extracted=extracted,
        inserted=by_op.get("insert", 0),
        updated=by_op.get("update", 0),
        deleted=by_op.get("delete", 0),
        unchanged=extracted - changed,
        quarantined=by_op.get("quarantined", 0),
        held=by_op.get("held", 0),
    )
