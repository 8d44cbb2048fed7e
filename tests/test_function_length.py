"""No product function is longer than about a screen: the ones people most need to read stay readable.

Tables and data are not functions, so a long module of tables is fine; a function over the limit is split
into helpers that each say what they build.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 80


def _functions() -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for root in ("processors", "streams", "schemas"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    rows.append((length, f"{path.relative_to(REPO)}:{node.lineno} {node.name}"))
    return rows


def test_no_product_function_over_the_limit() -> None:
    """Every function in processors/, streams/ and schemas/ has at most MAX_LINES lines, docstring included."""
    too_long = sorted((row for row in _functions() if row[0] > MAX_LINES), reverse=True)
    assert not too_long, "\n".join(f"{length} lines: {where}" for length, where in too_long)
