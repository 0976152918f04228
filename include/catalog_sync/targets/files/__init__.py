"""The file target: the ingestion API's feed items as JSONL files (a lake, or another service)."""
