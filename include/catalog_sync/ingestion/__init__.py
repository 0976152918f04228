"""Adobe Commerce Optimizer's Catalog Data Ingestion API: payload mapping and credentials."""

from catalog_sync.ingestion.auth import ImsClientCredentials, IngestionAuthError, StaticToken

__all__ = ["ImsClientCredentials", "IngestionAuthError", "StaticToken"]
