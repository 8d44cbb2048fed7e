"""docs/auditd-mapping.md holds the ECS categorisation tables the decoder uses, and only ECS 8.x values."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.audit.decode import _SYSCALL_CATEGORY, _TYPE_CATEGORY

DOC = Path(__file__).parents[3] / "docs" / "auditd-mapping.md"
#: ECS 8.x: event.category → the event.type values ECS expects with it.
ECS_EXPECTED_TYPES = {
    "authentication": {"start", "end", "info"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
    "driver": {"change", "end", "info", "start"},
    "file": {"access", "change", "creation", "deletion", "info"},
    "host": {"access", "change", "end", "info", "start"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "intrusion_detection": {"allowed", "denied", "info"},
    "network": {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
    "process": {"access", "change", "end", "info", "start"},
    "session": {"start", "end", "info"},
}


def render(table: dict[str, tuple[list[str], list[str]]], what: str) -> str:
    """The markdown table of a categorisation: one row per (category, type), names sorted."""
    rows: dict[tuple[str, str], list[str]] = {}
    for name, (category, etype) in table.items():
        rows.setdefault((", ".join(category), ", ".join(etype)), []).append(name)
    lines = [f"| event.category | event.type | {what} |", "|---|---|---|"]
    for (category, etype), names in sorted(rows.items()):
        lines.append(f"| {category} | {etype} | {' '.join(f'`{n}`' for n in sorted(names))} |")
    return "\n".join(lines)


@pytest.mark.parametrize(("table", "what"), [(_TYPE_CATEGORY, "record types"), (_SYSCALL_CATEGORY, "system calls")])
def test_doc_holds_the_table(table: dict[str, tuple[list[str], list[str]]], what: str) -> None:
    """The document shows exactly the decoder's table."""
    assert render(table, what) in DOC.read_text()


@pytest.mark.parametrize("table", [_TYPE_CATEGORY, _SYSCALL_CATEGORY])
def test_only_ecs_values(table: dict[str, tuple[list[str], list[str]]]) -> None:
    """Every category is an ECS category and every type one ECS expects with one of the event's categories."""
    for name, (categories, types) in table.items():
        for category in categories:
            assert category in ECS_EXPECTED_TYPES, name
        expected = set().union(*(ECS_EXPECTED_TYPES[c] for c in categories))
        assert set(types) <= expected, name
