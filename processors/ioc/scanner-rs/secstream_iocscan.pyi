"""secstream's compiled IoC candidate scanner (see src/lib.rs)."""

from collections.abc import Sequence

class Scanner:
    """Byte patterns (ASCII, RE2 syntax, Latin-1 semantics) compiled once and searched together per text."""

    def __init__(
        self, patterns: Sequence[bytes], gates: Sequence[bytes] | None = None, case_sensitive: bool = False
    ) -> None:
        """Compile ``patterns`` (at most 64) and the optional ``gates`` (gate i: a necessary condition of pattern i)."""

    def __len__(self) -> int:
        """Return the number of patterns."""

    def gates_found(self, data: bytes) -> list[int]:
        """Return the indices of the gates that match somewhere in ``data``."""

    def scan(self, data: bytes, mask: int, gated: bool = True) -> dict[int, list[tuple[int, int]]]:
        """Return ``{pattern index: spans of its successive matches}`` for the matching patterns in ``mask``."""
