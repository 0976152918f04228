"""The Airflow connection forms of the target kinds: each kind declares its own (`<kind>/connection.py`).

Light on purpose: Airflow reads these when it discovers providers, in every component, so
nothing here imports the engine. `catalog_sync.airflow` turns each form into a hook class
and a registered connection type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConnectionForm:
    conn_type: str
    hook_class: str  # the hook's class name (catalog_sync.airflow.hooks makes it)
    hook_name: str  # shown in the Connection form's type list
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra fields, stored under these names
    behaviour: dict[str, Any] = field(default_factory=dict)  # hidden fields, relabelings, placeholders


def target_forms() -> list[ConnectionForm]:
    from catalog_sync.targets.files.connection import FORM as FILES
    from catalog_sync.targets.ingestion_api.connection import FORM as INGESTION_API

    return [INGESTION_API, FILES]
