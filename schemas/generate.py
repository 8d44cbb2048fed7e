"""Write the JSON Schemas and the index templates from the field table (:mod:`schemas.fields`).

Run ``python -m schemas.generate`` after changing the table and commit what it writes; ``--check`` only
compares and exits 1 when a committed file differs (the test suite does the same).

Written beside this module:

* ``events.schema.json``, ``detections.schema.json``, ``deadletter.schema.json``: JSON Schema 2020-12,
  every object closed (``additionalProperties: false``) except the maps the table declares open, dates as
  ISO 8601, IPs, allowed values, required fields;
* ``index-template.elasticsearch.json``: a composable index template (``PUT _index_template/secstream``)
  with ECS's mappings for the ECS fields, Auditbeat's for ``auditd.*`` and ours for ``secstream.*``;
* ``index-template.opensearch.json``: the same for OpenSearch, which has no ``wildcard``,
  ``match_only_text`` or ``flattened`` (``keyword``, ``text`` and ``flat_object`` instead).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.fields import CONTRACT_VERSION, ECS_VERSION, FIELDS, ISO_DATE_PATTERN, OUTPUTS, Field, fields_for

__all__ = ["generated_files", "index_template", "json_schema", "main"]

_HERE = Path(__file__).resolve().parent
_TITLES = {
    "events": (
        "secstream enriched event",
        "One coalesced auditd event, one syslog record or one session summary: ECS, with Auditbeat's auditd.* "
        "and secstream.* for the rest.",
    ),
    "detections": (
        "secstream detection",
        "An alert raised by a rule or a stateful detector, with the evidence that triggered it (ECS alert fields "
        "Elastic Security reads).",
    ),
    "deadletter": (
        "secstream dead letter",
        "Input that could not be processed, with its original bytes and the reason.",
    ),
}
_STRING_TYPES = frozenset({"keyword", "wildcard", "match_only_text", "text"})
_JSON_TYPES = {"long": "integer", "float": "number", "boolean": "boolean"}


@dataclass
class _Node:
    fields: list[Field] = field(default_factory=list)
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(fields: Sequence[Field]) -> _Node:
    root = _Node()
    for item in fields:
        node = root
        for part in item.parts:
            node = node.children.setdefault(part, _Node())
        node.fields.append(item)
    return root


# ------------------------------------------------------------------------------------------------ JSON Schema


def _open_values(kind: str) -> Any:
    return {
        "keyword": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "string_array": {"type": "array", "items": {"type": "string"}},
        "any": True,
    }[kind]


def _value_schema(item: Field, output: str) -> dict[str, Any]:
    """The schema of one value of ``item`` (an element, for an array field)."""
    schema: dict[str, Any]
    if item.type in _STRING_TYPES:
        schema = {"type": "string"}
    elif item.type in _JSON_TYPES:
        schema = {"type": _JSON_TYPES[item.type]}
    elif item.type == "date":
        schema = {"type": "string", "format": "date-time", "pattern": ISO_DATE_PATTERN}
    elif item.type == "ip":
        schema = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}], "pattern": "^[0-9A-Fa-f:.]+$"}
    elif item.type == "geo_point":
        schema = {
            "type": "object",
            "required": ["lat", "lon"],
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            "additionalProperties": False,
        }
    elif item.type == "object" and not item.index:
        return {}  # any JSON value, kept in _source only
    else:  # flattened, or an object the table leaves open
        schema = {"type": "object"}
        if item.open_values:
            schema["additionalProperties"] = _open_values(item.open_values)
    allowed = item.allowed(output)
    if len(allowed) == 1 and not item.array:
        schema = {"const": allowed[0]}
    elif allowed:
        schema["enum"] = list(allowed)
    if item.pattern:
        schema["pattern"] = item.pattern
    if item.minimum is not None:
        schema["minimum"] = item.minimum
    if item.maximum is not None:
        schema["maximum"] = item.maximum
    return schema


def _leaf_schema(item: Field, output: str, children: dict[str, Any] | None) -> dict[str, Any]:
    value = _value_schema(item, output)
    if children is not None:  # an object (or a list of objects) with fields of its own in the table
        value = {"type": "object", "properties": children["properties"]}
        if children["required"]:
            value["required"] = children["required"]
        value["additionalProperties"] = _open_values(item.open_values) if item.open_values else False
    schema: dict[str, Any] = {"type": "array", "items": value} if item.array else value
    if item.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    schema["description"] = item.description + (f" LEGACY: becomes {item.legacy}." if item.legacy else "")
    return schema


def _object_schema(node: _Node, output: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, child in node.children.items():
        inner = _object_schema(child, output) if child.children else None
        if child.fields:
            variants = [_leaf_schema(item, output, inner) for item in child.fields]
            properties[name] = variants[0] if len(variants) == 1 else {"anyOf": variants}
            if any(output in item.required for item in child.fields):
                required.append(name)
        elif inner is not None:  # a node without a field of its own has children
            properties[name] = {"type": "object", "properties": inner["properties"], "additionalProperties": False}
            if inner["required"]:
                properties[name]["required"] = inner["required"]
                required.append(name)
    return {"properties": properties, "required": required}


def json_schema(output: str) -> dict[str, Any]:
    """The JSON Schema of one output stream (``events``, ``detections``, ``deadletter``)."""
    body = _object_schema(_tree(fields_for(output)), output)
    title, description = _TITLES[output]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://secstream.dev/schemas/{output}.schema.json",
        "title": title,
        "description": f"{description} Contract {CONTRACT_VERSION}, ECS {ECS_VERSION}. Generated from "
        "schemas/fields.py by python -m schemas.generate: do not edit.",
        "type": "object",
        "required": body["required"],
        "properties": body["properties"],
        "additionalProperties": False,
    }


# ------------------------------------------------------------------------------------------------ index template

_OPENSEARCH_TYPES = {"wildcard": "keyword", "match_only_text": "text", "flattened": "flat_object"}


def _mapping(item: Field, flavour: str) -> dict[str, Any]:
    type_ = _OPENSEARCH_TYPES.get(item.type, item.type) if flavour == "opensearch" else item.type
    mapping: dict[str, Any] = {"type": type_}
    if type_ == "keyword":
        mapping["ignore_above"] = 1024
    if not item.index:
        mapping.update(index=False, doc_values=False)
    if item.text:
        mapping["fields"] = {"text": {"type": "text" if flavour == "opensearch" else "match_only_text"}}
    return mapping


def _properties(node: _Node, flavour: str, dynamic: list[dict[str, Any]], path: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, child in node.children.items():
        dotted = f"{path}{name}"
        item = child.fields[0] if child.fields else None
        if item is not None and item.type not in ("object", "nested"):
            properties[name] = _mapping(item, flavour)
            continue
        if item is not None and not item.index:
            properties[name] = {"type": "object", "enabled": False}
            continue
        mapping: dict[str, Any] = {"type": "nested"} if item is not None and item.type == "nested" else {}
        if item is not None and item.open_values in ("keyword", "string_array"):
            dynamic.append(
                {
                    dotted.replace(".", "_") + "_as_keyword": {
                        "path_match": f"{dotted}.*",
                        "mapping": {"type": "keyword", "ignore_above": 1024},
                    }
                }
            )
        if child.children:
            mapping["properties"] = _properties(child, flavour, dynamic, f"{dotted}.")
        elif not mapping:
            mapping = {"type": "object"}
        properties[name] = mapping
    return properties


def index_template(flavour: str = "elasticsearch") -> dict[str, Any]:
    """The composable index template for secstream's three outputs (``elasticsearch`` or ``opensearch``)."""
    current = [item for item in FIELDS if not item.legacy]
    dynamic: list[dict[str, Any]] = []
    properties = _properties(_tree(current), flavour, dynamic, "")
    dynamic.append(
        {"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}
    )
    meta = {
        "description": "secstream events, detections and dead letters: ECS, Auditbeat's auditd.* and secstream.*. "
        "Generated from schemas/fields.py by python -m schemas.generate.",
        "ecs_version": ECS_VERSION,
        "secstream_schema_version": CONTRACT_VERSION,
    }
    return {
        "index_patterns": ["secstream-*"],
        "priority": 200,
        "_meta": meta,
        "template": {
            "settings": {"index": {"mapping": {"total_fields": {"limit": 2000}}}},
            "mappings": {
                "_meta": {"ecs_version": ECS_VERSION, "secstream_schema_version": CONTRACT_VERSION},
                "date_detection": False,
                "dynamic_templates": dynamic,
                "properties": properties,
            },
        },
    }


# ------------------------------------------------------------------------------------------------ files


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


def generated_files() -> dict[Path, bytes]:
    """Every generated file's path and content."""
    files = {_HERE / f"{output}.schema.json": _dump(json_schema(output)) for output in OUTPUTS}
    for flavour in ("elasticsearch", "opensearch"):
        files[_HERE / f"index-template.{flavour}.json"] = _dump(index_template(flavour))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Write the generated files (or, with ``--check``, report the ones that differ and return 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    stale = []
    for path, content in generated_files().items():
        if path.exists() and path.read_bytes() == content:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_bytes(content)
            sys.stdout.write(f"wrote {path}\n")
    if stale:
        sys.stderr.write(f"out of date (run python -m schemas.generate): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
