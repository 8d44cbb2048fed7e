"""orjson codecs for output documents: one serialisation per document, sorted keys for stable bytes."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "dumps_line", "loads"]

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps(doc: Any) -> bytes:
    """Serialise a document to compact JSON bytes with sorted keys."""
    return orjson.dumps(doc, option=_OPTIONS)


def dumps_line(doc: Any) -> bytes:
    """Serialise a document as one JSON line (newline-terminated)."""
    return orjson.dumps(doc, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text."""
    return orjson.loads(data)
