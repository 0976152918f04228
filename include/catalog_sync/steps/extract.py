"""extract: read the products in scope from Magento, chunk by chunk, straight into staging records (Parquet).

A reader thread fetches the next chunk (connectorx and the database work outside the GIL)
while DuckDB builds the current one, so memory holds two chunks at most. Only SELECTs.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from catalog_sync import clock
from catalog_sync.feed.feed_builder import FeedBuilder
from catalog_sync.feed.feed_record import EXTRACT_SCHEMA
from catalog_sync.magento.arrow_reader import ArrowQueries, read_chunk, with_shared_url_keys
from catalog_sync.magento.not_carried import NotCarried
from catalog_sync.magento.url_keys import UrlKeyCheck
from catalog_sync.settings import SyncSettings
from catalog_sync.steps import scope as run_scope
from catalog_sync.steps.run import RunPlan, Workspace

log = logging.getLogger("catalog_sync.steps")

# Queries of one chunk run side by side: the database scans tables while others decode.
READ_CONCURRENCY = 3
# Payloads and hashes are unique per record: dictionary-encoding them only costs time. The extract
# is a staging file read once: zstd level 1 gives the same size here as the default for 2/3 of the CPU.
_DICTIONARY_COLUMNS = [f.name for f in EXTRACT_SCHEMA if f.name not in ("payload", "content_hash")]


def extract(settings: SyncSettings, run: RunPlan, bucket: int = 0) -> dict[str, Any]:
    """Read the products in scope (of this sku bucket) from Magento into staging records."""
    started = clock.monotonic()
    with Workspace(settings, at=run.at) as ws:
        staging = ws.staging(run)
        reader = ws.reader()
        ctx = reader.load_context()
        if not ctx.store_views:
            raise RuntimeError("the Magento database has no active store view (table `store`, store_id > 0, is_active = 1)")
        builder = FeedBuilder(ctx, run.at)
        try:
            queries = ArrowQueries(ws.source)
            url_keys = with_shared_url_keys(queries, UrlKeyCheck.from_context(ctx))
            id_chunks, scope_ids = run_scope.id_chunks(ws, run, reader, ctx, settings.chunk_size, bucket, url_keys)
            if scope_ids is not None:
                pq.write_table(pa.table({"product_id": pa.array(sorted(scope_ids), pa.int64())}),
                               staging.path(staging.scope(bucket)), filesystem=staging.fs)
            price = ctx.attributes_by_code.get("price")
            records = products = 0
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-read") as pool, \
                    ThreadPoolExecutor(max_workers=READ_CONCURRENCY, thread_name_prefix="catalog-query") as query_pool, \
                    pq.ParquetWriter(staging.path(staging.extract(bucket)), EXTRACT_SCHEMA, compression="zstd",
                                     compression_level=1, use_dictionary=_DICTIONARY_COLUMNS, filesystem=staging.fs) as writer:
                reads = (
                    pool.submit(read_chunk, queries, ids, price.attribute_id if price else None, ctx.stock_layout,
                                builder.attribute_ids, query_pool, url_keys)
                    for ids in id_chunks
                )
                pending = next(reads, None)
                while pending is not None:
                    upcoming = next(reads, None)  # starts the next read before building this chunk
                    raw = pending.result()
                    table = builder.build(raw)
                    # One row group per chunk: a product's store views never straddle two (diff maps them together).
                    writer.write_table(table, row_group_size=max(1, table.num_rows))
                    records += table.num_rows
                    products += raw.entities.num_rows
                    pending = upcoming
        finally:
            builder.close()
        # What the contract cannot carry, among the products in scope (full: the whole catalog, counted once, by
        # bucket 0): {kind: products}, only kinds some product holds; `not_carried_products` counts each product once.
        held, holders = NotCarried(ws.source).count(scope_ids) if scope_ids is not None or bucket == 0 else ({}, 0)
        counts = {"products": products, "records": records, "scope": -1 if scope_ids is None else len(scope_ids),
                  "not_carried": held, "not_carried_products": holders}
        staging.write_json(counts, staging.extract(bucket, "json"))
        elapsed = clock.monotonic() - started
        log.info(
            "extract%s: %d products -> %d staging records across %d store view(s) in %.2fs (%.0f records/s, %s)",
            run.batch_label(bucket), products, records, len(ctx.store_views), elapsed,
            records / elapsed if elapsed else 0, "connectorx" if queries.cx_url else "SQLAlchemy",
        )
        return counts
