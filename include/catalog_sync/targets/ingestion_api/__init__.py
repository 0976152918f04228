"""Adobe Commerce Optimizer's Catalog Data Ingestion API: connection, config, feeds, mapping, auth, client, target."""
