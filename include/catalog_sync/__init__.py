"""Catalog Sync: keep commerce services in sync with a Magento 2 catalog.

The engine is plain Python: the Airflow DAGs in dags/ and the CLI
(`python -m catalog_sync`) call the same functions in `pipeline`.
"""

__version__ = "0.1.0"
