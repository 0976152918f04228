"""The `catalog_sync_ingestion_api` connection type: what its Airflow form asks for (read by config.py)."""

from catalog_sync.targets.forms import ConnectionForm

TEXT = {"type": ["string", "null"]}
INTEGER = {"type": ["integer", "null"]}
PRICE_BOOKS = {"label": "Price books", "schema": TEXT,
               "description": "website=price_book_id pairs, comma-separated, e.g. base=main-usd. A website not listed "
                              "gets a price book named after its code."}

FORM = ConnectionForm(
    conn_type="catalog_sync_ingestion_api",
    hook_class="IngestionApiTargetHook",
    hook_name="Catalog Sync: Catalog Data Ingestion API",
    fields={
        "ims_token_url": {"label": "IMS token URL", "schema": TEXT,
                          "description": "For OAuth client credentials (the client secret goes in Password). "
                                         "Leave empty to use Password as a static bearer token."},
        "ims_client_id": {"label": "IMS client id", "schema": TEXT},
        "ims_scope": {"label": "IMS scope", "schema": TEXT},
        "price_books": PRICE_BOOKS,
        "max_requests_per_minute": {"label": "Requests per minute", "schema": {**INTEGER, "default": 300},
                                    "description": "The API's limit is 300; 0 lifts the client-side limit."},
        "batch_size": {"label": "Items per request", "schema": {**INTEGER, "default": 100}},
    },
    behaviour={
        "hidden-fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "Base URL (with the tenant id)", "password": "Bearer token or IMS client secret"},
        "placeholders": {"host": "https://na1.api.commerce.adobe.com/<tenantId>"},
    },
)
