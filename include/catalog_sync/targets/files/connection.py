"""The `catalog_sync_files` connection type: what its Airflow form asks for."""

from catalog_sync.targets.forms import ConnectionForm
from catalog_sync.targets.ingestion_api.connection import PRICE_BOOKS

FORM = ConnectionForm(
    conn_type="catalog_sync_files",
    hook_class="FeedFilesTargetHook",
    hook_name="Catalog Sync: feed files (a folder or object storage)",
    fields={"price_books": PRICE_BOOKS},
    behaviour={
        "hidden-fields": ["schema", "port", "login", "password", "extra"],
        "relabeling": {"host": "Folder URL"},
        "placeholders": {"host": "file:///data/catalog-feeds or s3://bucket/catalog-feeds"},
    },
)
