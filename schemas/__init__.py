"""Event contracts: ECS-aligned output documents, their JSON Schemas and orjson codecs.

Every output document carries ``ecs.version`` and ``secstream.schema_version``. The field table
(:mod:`schemas.fields`) is the contract; ``python -m schemas.generate`` writes from it the JSON Schema of each
output topic (``events.schema.json``, ``detections.schema.json``, ``deadletter.schema.json``) and the
Elasticsearch and OpenSearch index templates (``index-template.*.json``) beside this module.
"""

from schemas.codecs import dumps, dumps_line, loads
from schemas.documents import (
    ECS_VERSION,
    SCHEMA_VERSION,
    dead_letter,
    detection,
    iso_timestamp,
    stable_id,
    truncated_dead_letter,
)
from schemas.registry import OUTPUT_STREAMS, schema_for, schema_path

__all__ = [
    "ECS_VERSION",
    "OUTPUT_STREAMS",
    "SCHEMA_VERSION",
    "dead_letter",
    "detection",
    "dumps",
    "dumps_line",
    "iso_timestamp",
    "loads",
    "schema_for",
    "schema_path",
    "stable_id",
    "truncated_dead_letter",
]
