"""orjson codecs for output documents: one serialisation per document, sorted keys for stable bytes."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "dumps_line", "loads"]

_SORTED = orjson.OPT_SORT_KEYS
# Non-string keys (rare: documents are built with text keys) are written as text. orjson's option for them
# takes a slower path for every document, so it is used only for a document that needs it.
_ANY_KEYS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps(doc: Any) -> bytes:
    """Serialise a document to compact JSON bytes with sorted keys."""
    return _serialise(doc, 0)


def dumps_line(doc: Any) -> bytes:
    """Serialise a document as one JSON line (newline-terminated)."""
    return _serialise(doc, orjson.OPT_APPEND_NEWLINE)


def _serialise(doc: Any, extra: int) -> bytes:
    try:
        return orjson.dumps(doc, option=_SORTED | extra)
    except TypeError:
        return orjson.dumps(doc, option=_ANY_KEYS | extra)


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text."""
    return orjson.loads(data)
