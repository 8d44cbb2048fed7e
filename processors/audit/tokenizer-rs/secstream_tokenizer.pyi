"""secstream's compiled auditd line tokenizer (see src/lib.rs)."""

def split_line(
    line: str,
) -> tuple[str | None, str, str, int, float, dict[str, str], dict[str, str], str, list[str]] | None:
    """Split one raw audit line, or return None when the Python parser must decide."""
