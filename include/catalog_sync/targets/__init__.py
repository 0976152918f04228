"""Targets: where the catalog goes. `base` says what a target is; `registry` picks one by URL scheme."""
