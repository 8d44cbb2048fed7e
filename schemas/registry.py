"""Where the JSON Schema of each output stream lives, and loading it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

__all__ = ["OUTPUT_STREAMS", "schema_for", "schema_path"]

OUTPUT_STREAMS = ("events", "detections", "deadletter")

_HERE = Path(__file__).resolve().parent


def schema_path(stream: str) -> Path:
    """Return the path of the JSON Schema file for an output stream (``events``, ``detections``, ``deadletter``)."""
    if stream not in OUTPUT_STREAMS:
        raise KeyError(f"unknown output stream {stream!r}; expected one of {OUTPUT_STREAMS}")
    return _HERE / f"{stream}.schema.json"


@cache
def schema_for(stream: str) -> dict[str, Any]:
    """Load the JSON Schema of an output stream."""
    loaded: dict[str, Any] = orjson.loads(schema_path(stream).read_bytes())
    return loaded
