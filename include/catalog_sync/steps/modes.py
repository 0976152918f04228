"""The modes a run can take (the plan step chooses one)."""

INCREMENTAL = "incremental"  # what changed since the last sync
FULL = "full"  # the whole catalog, compared with the snapshot (deletes included)
SKUS = "skus"  # the requested SKUs only, re-sent even when unchanged
