"""Navigate a process tree built by :func:`processors.proc_tree_builder.build_process_tree`.

Every function takes a polars tree or a pandas one (msticpy's: indexed by ``proc_key``) and answers in the
same type: frames for frames; one process as a row dict for a polars tree, as msticpy's ``Series`` (named
by its ``proc_key``) for a pandas tree. ``source`` arguments accept a ``proc_key`` string, a row (dict,
e.g. ``df.row(i, named=True)``, or pandas Series, e.g. ``tree.iloc[i]``) or a one-row DataFrame.

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

from processors import _frames
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

Source = str | Mapping[str, Any] | pl.DataFrame | Any  # Any: a pandas Series (row) or one-row DataFrame


def _tree(procs: Any) -> pl.DataFrame:
    """The tree as polars; a pandas tree's ``proc_key`` index becomes the column again."""
    return _frames.to_polars(procs, index_column=Col.proc_key)


def _frame_out(rows: pl.DataFrame, procs: Any) -> Any:
    """``rows`` in the tree's frame type (pandas: indexed by ``proc_key``, as msticpy's tree)."""
    return _frames.like(rows, procs, index_column=Col.proc_key)


def _row_out(row: pl.DataFrame, procs: Any) -> Any:
    """One row as a dict (polars tree) or as msticpy's ``Series`` named by its ``proc_key`` (pandas tree)."""
    if _frames.is_pandas(procs):
        return _frames.to_pandas(row, index_column=Col.proc_key).iloc[0]
    return row.row(0, named=True)


def _source_key(source: Any) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, pl.DataFrame):
        if source.height != 1:
            raise ValueError("A DataFrame source must have exactly one row.")
        return str(source.get_column(Col.proc_key)[0])
    if _frames.is_pandas(source):
        if type(source).__name__ == "Series":
            return str(source[Col.proc_key] if Col.proc_key in source.index else source.name)
        if len(source) != 1:
            raise ValueError("A DataFrame source must have exactly one row.")
        return str(source[Col.proc_key].iloc[0] if Col.proc_key in source.columns else source.index[0])
    if isinstance(source, Mapping):
        return str(source[Col.proc_key])
    raise ValueError("Unknown type for source parameter.")


def _process(tree: pl.DataFrame, source: Source) -> pl.DataFrame:
    key = _source_key(source)
    rows = tree.filter(pl.col(Col.proc_key) == key)
    if rows.is_empty():
        raise ValueError(f"No process with proc_key {key!r}.")
    return rows.head(1)


def _parent(tree: pl.DataFrame, proc: pl.DataFrame) -> pl.DataFrame | None:
    parent_key = proc.get_column(Col.parent_key)[0] if Col.parent_key in proc.columns else None
    if parent_key is None:
        return None
    rows = tree.filter(pl.col(Col.proc_key) == parent_key)
    return None if rows.is_empty() else rows.head(1)


def _root(tree: pl.DataFrame, proc: pl.DataFrame) -> pl.DataFrame:
    root_index = str(proc.get_column(Col.path)[0]).split("/")[0]
    return tree.filter(pl.col(Col.source_index) == root_index).head(1)


def _children(tree: pl.DataFrame, proc: pl.DataFrame, include_source: bool) -> pl.DataFrame:
    key = proc.get_column(Col.proc_key)[0]
    children = tree.filter(pl.col(Col.parent_key) == key)
    return pl.concat([proc, children]) if include_source else children


def get_process_key(procs: Any, source_index: int | str) -> str:
    """Return the ``proc_key`` of the process with the given ``source_index``.

    Args:
        procs: the process tree (polars or pandas).
        source_index: the source index (an int is zero-padded to the frame's width).

    Returns:
        The process key.

    Raises:
        ValueError: no process has that source index.
    """
    tree = _tree(procs)
    if isinstance(source_index, int):
        width = len(tree.get_column(Col.source_index)[0]) if tree.height else 5
        source_index = str(source_index).zfill(width)
    rows = tree.filter(pl.col(Col.source_index) == source_index)
    if rows.is_empty():
        raise ValueError(f"No process with source_index {source_index!r}.")
    return str(rows.get_column(Col.proc_key)[0])


def get_roots(procs: Any) -> Any:
    """Return the root processes (a frame of the tree's type)."""
    return _frame_out(_tree(procs).filter(pl.col("IsRoot")), procs)


def get_process(procs: Any, source: Source) -> Any:
    """Return the process row for ``source``.

    Args:
        procs: the process tree (polars or pandas).
        source: a proc_key, a row (dict, pandas Series) or a one-row DataFrame.

    Returns:
        The row of that process: a dict for a polars tree, a Series named by its ``proc_key`` for a
        pandas tree (msticpy's type).

    Raises:
        ValueError: ``source`` has an unknown type or names no process of ``procs``.
    """
    return _row_out(_process(_tree(procs), source), procs)


def get_parent(procs: Any, source: Source) -> Any:
    """Return the parent row of ``source`` (as :func:`get_process`) or None when it has none in ``procs``."""
    tree = _tree(procs)
    parent = _parent(tree, _process(tree, source))
    return None if parent is None else _row_out(parent, procs)


def get_root(procs: Any, source: Source) -> Any:
    """Return the root row of the tree ``source`` belongs to (as :func:`get_process`)."""
    tree = _tree(procs)
    return _row_out(_root(tree, _process(tree, source)), procs)


def get_root_tree(procs: Any, source: Source) -> Any:
    """Return all processes of the tree ``source`` belongs to (exact first path component match)."""
    tree = _tree(procs)
    root = _root(tree, _process(tree, source))
    first = pl.col(Col.path).str.split("/").list.first()
    return _frame_out(tree.filter(first == root.get_column(Col.source_index)[0]), procs)


def get_tree_depth(procs: Any) -> int:
    """Return the number of levels of the deepest tree."""
    tree = _tree(procs)
    if tree.is_empty():
        return 0
    return int(tree.select(pl.col(Col.path).str.count_matches("/").max()).item()) + 1


def get_children(procs: Any, source: Source, include_source: bool = True) -> Any:
    """Return the children of ``source`` (the source row first when ``include_source``)."""
    tree = _tree(procs)
    return _frame_out(_children(tree, _process(tree, source), include_source), procs)


def get_descendents(procs: Any, source: Source, include_source: bool = True, max_levels: int = -1) -> Any:
    """Return the descendants of ``source``, sorted by path.

    Args:
        procs: the process tree (polars or pandas).
        source: the process.
        include_source: include the source row.
        max_levels: number of levels to descend (-1: all).

    Returns:
        The descendant rows (possibly empty, with the columns of ``procs``), in the tree's frame type.
    """
    tree = _tree(procs)
    key = _process(tree, source).get_column(Col.proc_key)[0]
    found: set[str] = set()
    level = [key]
    depth = 0
    while level and (max_levels == -1 or depth < max_levels):
        nxt = (
            tree.filter(pl.col(Col.parent_key).is_in(level) & ~pl.col(Col.proc_key).is_in(list(found)))
            .get_column(Col.proc_key)
            .to_list()
        )
        found.update(nxt)
        level = nxt
        depth += 1
    if include_source:
        found.add(key)
    return _frame_out(tree.filter(pl.col(Col.proc_key).is_in(list(found))).sort(Col.path, maintain_order=True), procs)


def get_ancestors(procs: Any, source: Source, include_source: bool = True) -> Any:
    """Return the ancestors of ``source`` (from the root down), optionally with the source."""
    tree = _tree(procs)
    parts = str(_process(tree, source).get_column(Col.path)[0]).split("/")
    if not include_source:
        parts = parts[:-1]
    return _frame_out(tree.filter(pl.col(Col.source_index).is_in(parts)).sort(Col.path, maintain_order=True), procs)


def get_siblings(procs: Any, source: Source, include_source: bool = True) -> Any:
    """Return the processes with the same parent as ``source``."""
    tree = _tree(procs)
    proc = _process(tree, source)
    key = proc.get_column(Col.proc_key)[0]
    parent = _parent(tree, proc)
    siblings = proc if parent is None else _children(tree, parent, include_source=False)
    if not include_source:
        siblings = siblings.filter(pl.col(Col.proc_key) != key)
    return _frame_out(siblings, procs)


def get_summary_info(procs: Any) -> dict[str, int]:
    """Return msticpy's summary: process, root, leaf, branch and isolated counts and the largest depth."""
    tree = _tree(procs)
    counts = tree.select(
        pl.col("IsRoot").sum().alias("RootProcesses"),
        pl.col("IsLeaf").sum().alias("LeafProcesses"),
        pl.col("IsBranch").sum().alias("BranchProcesses"),
        (pl.col("IsRoot") & pl.col("IsLeaf")).sum().alias("IsolatedProcesses"),
    ).row(0, named=True)
    return {
        "Processes": tree.height,
        "RootProcesses": int(counts["RootProcesses"] or 0),
        "LeafProcesses": int(counts["LeafProcesses"] or 0),
        "BranchProcesses": int(counts["BranchProcesses"] or 0),
        "IsolatedProcesses": int(counts["IsolatedProcesses"] or 0),
        "LargestTreeDepth": get_tree_depth(tree),
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
    procs: Any,
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
        procs: the process tree (polars or pandas).
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
    for row in _tree(procs).sort(sort_column, maintain_order=True).iter_rows(named=True):
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
