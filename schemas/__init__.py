"""Event contracts: ECS-aligned output documents, their JSON Schemas and orjson codecs.

Every output document carries ``schema_version``. One JSON Schema file per output topic lives beside
this module (``events.schema.json``, ``detections.schema.json``, ``deadletter.schema.json``).
"""

from schemas.codecs import dumps, dumps_line, loads
from schemas.documents import (
    SCHEMA_VERSION,
    dead_letter,
    detection,
    iso_timestamp,
    stable_id,
    truncated_dead_letter,
)
from schemas.registry import OUTPUT_STREAMS, schema_for, schema_path

__all__ = [
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
