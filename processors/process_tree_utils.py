"""Navigate a process tree built by :func:`processors.proc_tree_builder.build_process_tree` (polars).

``source`` arguments accept a ``proc_key`` string, a row dict (e.g. ``df.row(i, named=True)``) or a
one-row DataFrame; functions returning one process return a row dict (msticpy returns a Series).

Differences from msticpy (deliberate):

* ``get_root_tree`` selects rows whose first ``path`` component equals the root's source index
  (msticpy's ``str.startswith`` also returned other trees: root ``1`` matched ``10/...``).
* ``get_children`` puts the source row first (as msticpy HEAD) and never rewrites null values.
* Functions raise ``ValueError`` for unknown proc keys instead of pandas' ``KeyError``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any, NamedTuple

import polars as pl

from processors.proc_tree_schema import ColNames as Col
from processors.proc_tree_schema import ProcSchema

__all__ = [
    "TemplateLine",
    "get_ancestors",
    "get_children",
    "get_descendents",
    "get_parent",
    "get_process",
    "get_process_key",
    "get_root",
    "get_root_tree",
    "get_roots",
    "get_siblings",
    "get_summary_info",
    "get_tree_depth",
    "tree_to_text",
]

Source = str | Mapping[str, Any] | pl.DataFrame


def get_process_key(procs: pl.DataFrame, source_index: int | str) -> str:
    """Return the ``proc_key`` of the process with the given ``source_index``.

    Args:
        procs: the process tree.
        source_index: the source index (an int is zero-padded to the frame's width).

    Returns:
        The process key.

    Raises:
        ValueError: no process has that source index.
    """
    if isinstance(source_index, int):
        width = len(procs.get_column(Col.source_index)[0]) if procs.height else 5
        source_index = str(source_index).zfill(width)
    rows = procs.filter(pl.col(Col.source_index) == source_index)
    if rows.is_empty():
        raise ValueError(f"No process with source_index {source_index!r}.")
    return str(rows.get_column(Col.proc_key)[0])


def get_roots(procs: pl.DataFrame) -> pl.DataFrame:
    """Return the root processes."""
    return procs.filter(pl.col("IsRoot"))


def get_process(procs: pl.DataFrame, source: Source) -> dict[str, Any]:
    """Return the process row for ``source`` as a dict.

    Args:
        procs: the process tree.
        source: a proc_key, a row dict or a one-row DataFrame.

    Returns:
        The row of that process in ``procs``.

    Raises:
        ValueError: ``source`` has an unknown type or names no process of ``procs``.
    """
    if isinstance(source, str):
        key = source
    elif isinstance(source, pl.DataFrame):
        if source.height != 1:
            raise ValueError("A DataFrame source must have exactly one row.")
        key = str(source.get_column(Col.proc_key)[0])
    elif isinstance(source, Mapping):
        key = str(source[Col.proc_key])
    else:
        raise ValueError("Unknown type for source parameter.")
    rows = procs.filter(pl.col(Col.proc_key) == key)
    if rows.is_empty():
        raise ValueError(f"No process with proc_key {key!r}.")
    return rows.row(0, named=True)


def get_parent(procs: pl.DataFrame, source: Source) -> dict[str, Any] | None:
    """Return the parent row of ``source`` or None when it has none in ``procs``."""
    proc = get_process(procs, source)
    parent_key = proc.get(Col.parent_key)
    if parent_key is None:
        return None
    rows = procs.filter(pl.col(Col.proc_key) == parent_key)
    return None if rows.is_empty() else rows.row(0, named=True)


def get_root(procs: pl.DataFrame, source: Source) -> dict[str, Any]:
    """Return the root row of the tree ``source`` belongs to."""
    proc = get_process(procs, source)
    root_index = str(proc[Col.path]).split("/")[0]
    return procs.filter(pl.col(Col.source_index) == root_index).row(0, named=True)


def get_root_tree(procs: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Return all processes of the tree ``source`` belongs to (exact first path component match)."""
    root = get_root(procs, source)
    first = pl.col(Col.path).str.split("/").list.first()
    return procs.filter(first == root[Col.source_index])


def get_tree_depth(procs: pl.DataFrame) -> int:
    """Return the number of levels of the deepest tree."""
    if procs.is_empty():
        return 0
    return int(procs.select(pl.col(Col.path).str.count_matches("/").max()).item()) + 1


def get_children(procs: pl.DataFrame, source: Source, include_source: bool = True) -> pl.DataFrame:
    """Return the children of ``source`` (the source row first when ``include_source``)."""
    proc = get_process(procs, source)
    children = procs.filter(pl.col(Col.parent_key) == proc[Col.proc_key])
    if include_source:
        return pl.concat([procs.filter(pl.col(Col.proc_key) == proc[Col.proc_key]), children])
    return children


def get_descendents(
    procs: pl.DataFrame, source: Source, include_source: bool = True, max_levels: int = -1
) -> pl.DataFrame:
    """Return the descendants of ``source``, sorted by path.

    Args:
        procs: the process tree.
        source: the process.
        include_source: include the source row.
        max_levels: number of levels to descend (-1: all).

    Returns:
        The descendant rows (possibly empty, with the columns of ``procs``).
    """
    proc = get_process(procs, source)
    found: set[str] = set()
    level = [proc[Col.proc_key]]
    depth = 0
    while level and (max_levels == -1 or depth < max_levels):
        nxt = (
            procs.filter(pl.col(Col.parent_key).is_in(level) & ~pl.col(Col.proc_key).is_in(list(found)))
            .get_column(Col.proc_key)
            .to_list()
        )
        found.update(nxt)
        level = nxt
        depth += 1
    if include_source:
        found.add(proc[Col.proc_key])
    return procs.filter(pl.col(Col.proc_key).is_in(list(found))).sort(Col.path, maintain_order=True)


def get_ancestors(procs: pl.DataFrame, source: Source, include_source: bool = True) -> pl.DataFrame:
    """Return the ancestors of ``source`` (from the root down), optionally with the source."""
    proc = get_process(procs, source)
    parts = str(proc[Col.path]).split("/")
    if not include_source:
        parts = parts[:-1]
    return procs.filter(pl.col(Col.source_index).is_in(parts)).sort(Col.path, maintain_order=True)


def get_siblings(procs: pl.DataFrame, source: Source, include_source: bool = True) -> pl.DataFrame:
    """Return the processes with the same parent as ``source``."""
    proc = get_process(procs, source)
    parent = get_parent(procs, proc)
    if parent is None:
        siblings = procs.filter(pl.col(Col.proc_key) == proc[Col.proc_key])
    else:
        siblings = get_children(procs, parent, include_source=False)
    if not include_source:
        siblings = siblings.filter(pl.col(Col.proc_key) != proc[Col.proc_key])
    return siblings


def get_summary_info(procs: pl.DataFrame) -> dict[str, int]:
    """Return msticpy's summary: process, root, leaf, branch and isolated counts and the largest depth."""
    counts = procs.select(
        pl.col("IsRoot").sum().alias("RootProcesses"),
        pl.col("IsLeaf").sum().alias("LeafProcesses"),
        pl.col("IsBranch").sum().alias("BranchProcesses"),
        (pl.col("IsRoot") & pl.col("IsLeaf")).sum().alias("IsolatedProcesses"),
    ).row(0, named=True)
    return {
        "Processes": procs.height,
        "RootProcesses": int(counts["RootProcesses"] or 0),
        "LeafProcesses": int(counts["LeafProcesses"] or 0),
        "BranchProcesses": int(counts["BranchProcesses"] or 0),
        "IsolatedProcesses": int(counts["IsolatedProcesses"] or 0),
        "LargestTreeDepth": get_tree_depth(procs),
    }


class TemplateLine(NamedTuple):
    """One line of the text template: ``(label, column)`` items joined by two spaces, wrapped at ``wrap``."""

    items: list[tuple[str, str]]
    wrap: int = 80


def _template_from_schema(schema: ProcSchema) -> list[TemplateLine]:
    lines = [
        TemplateLine(items=[("Process", schema.process_name), ("PID", schema.process_id)]),
        TemplateLine(items=[("Time", schema.time_stamp)]),
    ]
    if schema.cmd_line:
        lines.append(TemplateLine(items=[("Cmdline", schema.cmd_line)]))
    account = [("Account", col) for col in (schema.user_id, schema.logon_id) if col]
    if account:
        lines.append(TemplateLine(items=account))
    return lines


def _text_value(value: Any) -> str:
    return "nan" if value is None else str(value)


def tree_to_text(
    procs: pl.DataFrame,
    schema: ProcSchema | dict[str, Any] | None = None,
    template: list[TemplateLine] | None = None,
    sort_column: str = "path",
    wrap_column: int = 0,
) -> str:
    """Render the process tree as indented text, one block per process (msticpy's layout).

    Each process starts with ``"+ "`` (roots) or ``"   " * depth + "+-- "``, followed by the template's
    first line (``Process: <name>  PID: <pid>``); the other lines (``Time``, ``Cmdline``, ``Account``) are
    indented under it. Lines are wrapped at ``wrap_column`` (or the template line's width, 80). Like
    msticpy, both account items are labelled ``Account`` and the text ends with a newline. Null values
    print as ``nan``.

    Args:
        procs: the process tree.
        schema: the schema of the data (a dict is allowed), used to build the template.
        template: the lines to print, instead of the schema's.
        sort_column: column to order the processes by.
        wrap_column: wrap width (0: each template line's own width).

    Returns:
        The text.

    Raises:
        ValueError: neither a schema nor a template is given.
    """
    if isinstance(schema, dict):
        schema = ProcSchema(**schema)
    if template is None:
        if schema is None:
            raise ValueError("One of 'schema' and 'template' must be supplied as parameters.")
        template = _template_from_schema(schema)
    output: list[str] = []
    for row in procs.sort(sort_column, maintain_order=True).iter_rows(named=True):
        depth = str(row[Col.path]).count("/")
        header = "+ " if depth == 0 else "   " * depth + "+-- "
        indent = " " * len(header) + " "
        first = template[0]
        text = "  ".join(
            f"{name}: {_text_value(row.get(col))}" if name else _text_value(row.get(col)) for name, col in first.items
        )
        text = "\n".join(textwrap.wrap(text, width=wrap_column or first.wrap, subsequent_indent=indent))
        output.append(f"{header} {text}\n")
        for line in template[1:]:
            text = "  ".join(f"{name}: {_text_value(row.get(col))}" for name, col in line.items)
            text = "\n".join(
                textwrap.wrap(
                    text, width=wrap_column or line.wrap, initial_indent=indent, subsequent_indent=indent + "   "
                )
            )
            output.extend([text, "\n"])
    return "".join(output)
