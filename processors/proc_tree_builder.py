"""Build process trees from process events (msticpy's ``build_process_tree`` / ``infer_schema``, on polars).

The output has one row per process (events plus inferred parents) with msticpy's columns: ``proc_key``
(a column: polars has no index), ``parent_key``, ``source_index``, ``parent_index``, ``path``, ``IsRoot``,
``IsLeaf``, ``IsBranch`` and the schema's columns, sorted by ``path`` then time stamp.

Differences from msticpy (deliberate):

* ``source_index`` is zero-padded to a fixed width for the whole frame (at least 5 digits, more when there
  are 100 000 rows or more), so ``path`` sorts correctly and path components never collide by prefix.
* ``ProcSchema`` equality is symmetric (see :mod:`processors.proc_tree_schema`); a dict schema equal to
  ``MDE_INT_EVENT_SCH`` goes straight to the MDE builder instead of being re-inferred.
* ``show_summary`` logs the summary through structlog instead of printing it.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import structlog

from processors import proc_tree_build_mde as mde
from processors import proc_tree_build_winlx as winlx
from processors.proc_tree_schema import (
    MDE_EVENT_SCH,
    MDE_INT_EVENT_SCH,
    SUPPORTED_SCHEMAS,
    ProcSchema,
)
from processors.proc_tree_schema import ColNames as Col
from processors.process_tree_utils import get_summary_info

__all__ = ["build_proc_tree", "build_process_tree", "infer_schema"]

_log = structlog.get_logger(module=__name__)


def infer_schema(data: Any) -> ProcSchema | None:
    """Infer the schema that best matches the columns of ``data``.

    Args:
        data: a DataFrame (polars or pandas), a pandas Series or a mapping (its keys are the columns).

    Returns:
        The supported schema sharing the most columns with ``data`` (the later one on ties, as msticpy),
        or None when fewer than 4 columns match.
    """
    if hasattr(data, "columns"):
        cols = set(data.columns)
    elif hasattr(data, "index"):
        cols = set(data.index)
    else:
        cols = set(data)
    matches = {len(cols & {c for c in schema.columns if c}): schema for schema in SUPPORTED_SCHEMAS}
    best = max(matches)
    return matches[best] if best >= 4 else None


def _add_tree_properties(tree: pl.DataFrame) -> pl.DataFrame:
    parent_keys = tree.get_column(Col.parent_key).drop_nulls().unique()
    width = max(5, len(str(max(tree.height - 1, 0))))
    tree = tree.with_columns(
        pl.col(Col.parent_key).is_null().alias("IsRoot"),
        (~pl.col(Col.proc_key).is_in(parent_keys.implode())).alias("IsLeaf"),
        pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.Utf8).str.zfill(width).alias(Col.source_index),
    ).with_columns((~pl.col("IsRoot") & ~pl.col("IsLeaf")).alias("IsBranch"))
    return tree.unique(subset=[Col.proc_key], keep="first", maintain_order=True)


def build_proc_tree(input_tree: pl.DataFrame, max_depth: int = -1) -> pl.DataFrame:
    """Add ``path`` and ``parent_index`` by walking down from the roots.

    A process reachable from a root gets ``root/.../own source_index`` and its parent's source index;
    others keep their own source index as path and a null ``parent_index``.

    Args:
        input_tree: rows with ``proc_key``, ``parent_key``, ``source_index`` and ``IsRoot``.
        max_depth: maximum number of levels below the roots (-1: unlimited).

    Returns:
        ``input_tree`` with ``path`` and ``parent_index``.
    """
    height = input_tree.height
    sources = input_tree.get_column(Col.source_index).cast(pl.Utf8)
    # Row of each row's parent (keys are unique), then the child rows sorted by parent row.
    rows = input_tree.select(
        pl.col(Col.proc_key).alias("_key"),
        pl.col(Col.parent_key).alias("_parent"),
        pl.col("IsRoot").fill_null(False).alias("_root"),
    ).with_row_index("_row")
    linked = rows.join(
        # keys are unique after _add_tree_properties; for other input the first row of a key is the parent
        rows.select(pl.col("_key"), pl.col("_row").alias("_parent_row")).unique("_key", keep="first"),
        left_on="_parent",
        right_on="_key",
        how="left",
        maintain_order="left",
    )
    edges = linked.filter(pl.col("_parent_row").is_not_null() & ~pl.col("_root")).sort(
        "_parent_row", maintain_order=True
    )
    child_rows = edges.get_column("_row")
    child_parents = edges.get_column("_parent_row")
    paths = sources.clone()
    parent_index = pl.Series(Col.parent_index, [None] * height, dtype=pl.Utf8)
    # Walk down one level at a time from the roots. Each row has one parent row, so every row is reached
    # at most once and rows on a parent cycle are never reached.
    level = linked.filter(pl.col("_root")).get_column("_row")
    depth = 0
    while level.len() and child_rows.len() and (max_depth == -1 or depth < max_depth) and depth <= height:
        found = (
            pl.DataFrame(
                {
                    "_parent": level,
                    "_start": child_parents.search_sorted(level, side="left"),
                    "_end": child_parents.search_sorted(level, side="right"),
                }
            )
            .filter(pl.col("_end") > pl.col("_start"))
            .select("_parent", pl.int_ranges("_start", "_end").alias("_pos"))
            .explode("_pos")
        )
        if not found.height:
            break
        nxt = child_rows.gather(found.get_column("_pos"))
        parents = found.get_column("_parent")
        parent_sources = sources.gather(parents)
        paths.scatter(nxt, paths.gather(parents) + "/" + sources.gather(nxt))
        parent_index.scatter(nxt, parent_sources)
        level = nxt
        depth += 1
    return input_tree.with_columns(paths.alias(Col.path), parent_index)


def build_process_tree(
    procs: Any,
    schema: ProcSchema | dict[str, Any] | None = None,
    show_summary: bool = False,
    debug: bool = False,
) -> pl.DataFrame:
    """Build process trees from process events.

    Args:
        procs: process events (Windows 4688, Linux auditd, MDE, Sysmon, ...), polars or pandas.
        schema: the column schema; a dict must name the required ``ProcSchema`` fields; None infers it.
        show_summary: log :func:`get_summary_info` of the result.
        debug: log extra row counts.

    Returns:
        The process tree, one row per process, sorted by ``path`` then time stamp.

    Raises:
        TypeError: no schema was given and none matches the data.
    """
    if isinstance(schema, dict):
        schema = ProcSchema(**schema)
    data = winlx.to_polars(procs)
    if schema is None:
        schema = infer_schema(data)
    if schema is None:
        raise TypeError(
            "No matching schema for input data found. Please create a schema definition for the process "
            "data and pass it as the 'schema' parameter to this function."
        )
    if schema == MDE_EVENT_SCH:
        data = mde.convert_mde_schema_to_internal(data, schema)
        schema = MDE_INT_EVENT_SCH
    if schema == MDE_INT_EVENT_SCH:
        extracted = mde.extract_process_tree(data, debug=debug)
    else:
        extracted = winlx.extract_process_tree(data, schema=schema, debug=debug)
    tree = build_proc_tree(_add_tree_properties(extracted))
    if show_summary:
        _log.info("process_tree_summary", **get_summary_info(tree))
    sort_cols = [Col.path] + ([schema.time_stamp] if schema.time_stamp in tree.columns else [])
    return tree.sort(sort_cols, maintain_order=True, nulls_last=True)
