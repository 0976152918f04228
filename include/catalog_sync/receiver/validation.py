"""Validate Catalog Data Ingestion request items against the OpenAPI contract.

The contract is OpenAPI 3.0.3. Its component schemas are converted to JSON
Schema draft 2020-12 (`nullable: true` becomes `type: [<type>, "null"]`,
annotation-only keywords such as `example` are dropped) and every item of a
request body is validated on its own, so that errors carry the item's index, as
the contract's `400ProcessFeedResponse` does:

    {"status": "FAILED", "message": "Items validation failed for 1 items",
     "errors": [{"itemIndex": 0, "code": "status",
                 "message": "status: does not have a value in the enumeration [\"ENABLED\", \"DISABLED\"]",
                 "value": "active"}]}

`code` is the (dotted) name of the invalid field, as the contract says
("Code name of invalid field").
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "catalog-data-ingestion-v1.yaml"

# Keywords that exist in OpenAPI 3.0 schema objects but not (or with another
# meaning) in JSON Schema 2020-12; they are annotations, so dropping them does
# not change what validates.
_OPENAPI_ONLY = {"nullable", "example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly", "deprecated"}
_SCHEMA_MAPS = {"properties", "patternProperties"}
_SCHEMA_VALUES = {"items", "additionalProperties", "not"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}


def load_spec(spec_path: str | Path | None = None) -> dict[str, Any]:
    """The parsed contract (default: the copy shipped in this package). Do not mutate it: it is cached."""
    path = (Path(spec_path) if spec_path else DEFAULT_SPEC_PATH).resolve()
    return _load_spec_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_spec_cached(path: str, _mtime_ns: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def openapi_to_json_schema(node: Any) -> Any:
    """One OpenAPI 3.0 schema object, converted to JSON Schema 2020-12."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            out[key] = openapi_to_json_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [openapi_to_json_schema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    # OpenAPI 3.0 boolean exclusiveMinimum/Maximum -> 2020-12 numeric form.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), bool):
            if out.pop(exclusive) and bound in out:
                out[exclusive] = out.pop(bound)
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def server_base_path(spec: dict[str, Any]) -> str:
    """The path of the contract's first server URL, e.g. "/{tenantId}" ("" if none)."""
    servers = spec.get("servers") or []
    if not servers:
        return ""
    return urlsplit(servers[0].get("url", "")).path.rstrip("/")


@dataclass(frozen=True)
class ItemError:
    item_index: int
    code: str
    message: str
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"itemIndex": self.item_index, "code": self.code, "message": self.message, "value": self.value}


def _field_path(parts) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _schema_title(schema: Any) -> str:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return schema["$ref"].rsplit("/", 1)[-1]
        return schema.get("title") or "schema"
    return "schema"


class ContractValidator:
    """Validates request items for every POST/PATCH operation of the contract."""

    def __init__(self, spec_path: str | Path | None = None, spec: dict[str, Any] | None = None):
        self.spec = spec if spec is not None else load_spec(spec_path)
        schemas = self.spec.get("components", {}).get("schemas", {})
        self._root = {"components": {"schemas": {name: openapi_to_json_schema(s) for name, s in schemas.items()}}}
        # (method, path) -> component schema name of one item, e.g. ("post", "/v1/catalog/products") -> "FeedProduct"
        self.item_schemas: dict[tuple[str, str], str] = {}
        for path, operations in (self.spec.get("paths") or {}).items():
            for method, operation in (operations or {}).items():
                if not isinstance(operation, dict):
                    continue
                body = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
                ref = ((body.get("schema") or {}).get("items") or {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    self.item_schemas[(method.lower(), path)] = ref.rsplit("/", 1)[-1]
        self._validators: dict[str, Draft202012Validator] = {}

    def validator_for(self, schema_name: str) -> Draft202012Validator:
        validator = self._validators.get(schema_name)
        if validator is None:
            if schema_name not in self._root["components"]["schemas"]:
                raise KeyError(f"no component schema {schema_name!r} in the contract")
            schema = {"$ref": f"#/components/schemas/{schema_name}", **self._root}
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(schema)
            self._validators[schema_name] = validator
        return validator

    def item_schema(self, method: str, path: str) -> str:
        return self.item_schemas[(method.lower(), path)]

    def examples(self, method: str, path: str) -> dict[str, Any]:
        """The request body examples the contract gives for one operation."""
        operation = self.spec["paths"][path][method.lower()]
        examples = operation["requestBody"]["content"]["application/json"].get("examples") or {}
        return {name: example.get("value") for name, example in examples.items()}

    def validate_items(self, schema_name: str, items: list[Any]) -> list[ItemError]:
        """Errors of all items (empty when every item is valid)."""
        validator = self.validator_for(schema_name)
        errors: list[ItemError] = []
        for index, item in enumerate(items):
            found = sorted(validator.iter_errors(item), key=lambda e: (list(map(str, e.absolute_path)), e.message))
            seen: set[tuple[str, str]] = set()
            for error in found:
                # jsonschema reports one `required` error per missing property, each
                # naming the whole list: keep every (field, message) once.
                for described in self._describe(index, item, error, schema_name):
                    if (described.code, described.message) not in seen:
                        seen.add((described.code, described.message))
                        errors.append(described)
        return errors

    def _describe(self, index: int, item: Any, error: ValidationError, schema_name: str) -> list[ItemError]:
        path = list(error.absolute_path)
        field = _field_path(path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [name for name in error.validator_value if name not in error.instance]
            return [
                ItemError(index, _field_path([*path, name]), f"required property '{_field_path([*path, name])}' not found", "")
                for name in missing
            ]
        code = field or schema_name
        if error.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in error.validator_value)
            message = f"{code}: does not have a value in the enumeration [{allowed}]"
        elif error.validator in ("oneOf", "anyOf"):
            options = error.validator_value or []
            if not error.context:  # oneOf: more than one matched
                names = ", ".join(_schema_title(s) for s in options)
                message = f"{code}: matches more than one of [{names}]; it must match exactly one"
            else:
                reasons: dict[int, list[str]] = {}
                for sub in error.context:
                    idx = sub.schema_path[0] if sub.schema_path else 0
                    sub_field = _field_path([*path, *sub.relative_path]) if sub.relative_path else ""
                    reasons.setdefault(idx, []).append(f"{sub_field + ': ' if sub_field else ''}{sub.message}")
                parts = [f"{_schema_title(opt)} ({'; '.join(reasons.get(i, ['?']))})" for i, opt in enumerate(options)]
                message = f"{code}: does not match any of: " + " | ".join(parts)
        else:
            message = f"{code}: {error.message}"
        return [ItemError(index, code, message, _value_text(error.instance))]


def failed_response(errors: list[ItemError], item_count: int | None = None) -> dict[str, Any]:
    """The 400 body (`400ProcessFeedResponse`) for item errors."""
    invalid = len({e.item_index for e in errors})
    return {
        "status": "FAILED",
        "message": f"Items validation failed for {invalid} items",
        "errors": [e.as_dict() for e in errors],
    }
