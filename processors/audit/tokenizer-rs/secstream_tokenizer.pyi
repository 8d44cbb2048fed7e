"""secstream's compiled auditd line tokenizer (see src/lib.rs)."""

from typing import Generic, TypeVar

_R = TypeVar("_R")

class RecordTokenizer(Generic[_R]):
    """Makes record objects of a slotted class straight from raw audit lines."""

    def __init__(self, cls: type[_R], no_quoted: frozenset[str]) -> None:
        """Bind the record class (slots node, rtype, time, serial, epoch, fields, enriched, raw, quoted)."""

    def __call__(self, line: str) -> _R | None:
        """Return the record of one raw audit line, or None when the Python parser must decide."""
