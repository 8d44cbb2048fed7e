"""Build process trees from process events (msticpy's ``build_process_tree`` / ``infer_schema``, on polars).

The output is a frame of the input's type with one row per process (events plus inferred parents) and
msticpy's columns: ``proc_key`` (the index of a pandas tree, as msticpy's; a column of a polars tree: polars
has no index), ``parent_key``, ``source_index``, ``parent_index``, ``path``, ``IsRoot``,
``IsLeaf``, ``IsBranch`` and the schema's columns, sorted by ``path`` then time stamp.

Differences from msticpy (deliberate):

* ``source_index`` is zero-padded to a fixed width for the whole frame (at least 5 digits, more when there
  are 100 000 rows or more), so ``path`` sorts correctly and path components never collide by prefix.
* ``ProcSchema`` equality is symmetric (see :mod:`processors.proc_tree_schema`); a dict schema equal to
  ``MDE_INT_EVENT_SCH`` goes straight to the MDE builder instead of being re-inferred.
* ``show_summary`` logs the summary through structlog instead of printing it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
import structlog

from processors import proc_tree_build_mde as mde
from processors import proc_tree_build_winlx as winlx
from processors._frames import like, to_polars
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
    tree = _with_tree_flags(tree, ~pl.col(Col.proc_key).is_in(parent_keys.implode()))
    return tree.unique(subset=[Col.proc_key], keep="first", maintain_order=True)


def _with_tree_flags(tree: pl.DataFrame, is_leaf: pl.Expr | pl.Series) -> pl.DataFrame:
    """Add IsRoot, IsLeaf (given), IsBranch and the zero-padded ``source_index``."""
    return tree.with_columns(
        pl.col(Col.parent_key).is_null().alias("IsRoot"),
        is_leaf.alias("IsLeaf"),
        _source_index_expr(tree.height),
    ).with_columns((~pl.col("IsRoot") & ~pl.col("IsLeaf")).alias("IsBranch"))


def _source_index_expr(height: int) -> pl.Expr:
    """Zero-padded row numbers (at least 5 digits) as the ``source_index`` column."""
    width = max(5, len(str(max(height - 1, 0))))
    return pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.Utf8).str.zfill(width).alias(Col.source_index)


def _key_hashes(keys: pl.Series) -> pl.Series:
    """64-bit hashes of ``keys`` (null where the key is null)."""
    return pl.select(pl.when(keys.is_not_null()).then(keys.hash())).to_series()


def _parent_rows_by_hash(keys: pl.Series, parents: pl.Series) -> npt.NDArray[np.int64] | None:
    """Row of the key equal to each parent key (-1: none), or None when the fast path does not apply.

    Joins on 64-bit hashes and is exact: it needs non-null keys with distinct hashes (so keys are
    unique and a parent key can only equal the one key with its hash), and checks every match.
    """
    if keys.null_count() or not keys.len():
        return None
    key_hash = _key_hashes(keys)
    if key_hash.n_unique() != key_hash.len():
        return None
    right = pl.DataFrame({"_h": key_hash}).with_row_index("_row")
    found = (
        pl.DataFrame({"_h": _key_hashes(parents)})
        .join(right, on="_h", how="left", maintain_order="left")
        .get_column("_row")
    )
    matched = found.is_not_null()
    rows = found.filter(matched)
    if not (keys.gather(rows) == parents.filter(matched)).all():
        return None  # a hash collision between different strings: use the string join
    return found.fill_null(-1).cast(pl.Int64).to_numpy()


def _parent_rows_by_join(keys: pl.Series, parents: pl.Series) -> npt.NDArray[np.int64]:
    """Row of the first row whose key equals each parent key (-1: none)."""
    right = pl.DataFrame({"_key": keys}).with_row_index("_row").unique("_key", keep="first")
    return (
        pl.DataFrame({"_parent": parents})
        .join(right, left_on="_parent", right_on="_key", how="left", maintain_order="left")
        .get_column("_row")
        .fill_null(-1)
        .cast(pl.Int64)
        .to_numpy()
    )


class _Walk(NamedTuple):
    paths: pl.Series
    parent_index: pl.Series
    preorder: npt.NDArray[np.int64]


def _walk(
    sources: pl.Series, parent_rows: npt.NDArray[np.int64], roots: npt.NDArray[np.bool_], max_depth: int
) -> _Walk:
    """Walk down from the roots one level at a time, building paths and parent indexes.

    Each row has one parent row, so every row is reached at most once and rows on a parent cycle are
    never reached. ``preorder`` is each row's position when sorting by path, valid when ``sources`` are
    distinct, fixed-width and increasing with the row number.

    Args:
        sources: the source index of each row.
        parent_rows: the parent row of each row (-1: none).
        roots: the root rows.
        max_depth: maximum number of levels below the roots (-1: unlimited).

    Returns:
        The paths, parent indexes and sort positions by path.
    """
    height = len(parent_rows)
    edge_rows = np.flatnonzero((parent_rows >= 0) & ~roots)
    edge_parents = parent_rows[edge_rows]
    child_rows = edge_rows[np.argsort(edge_parents, kind="stable")]  # grouped by parent, in row order
    n_children = np.bincount(edge_parents, minlength=height)
    first_child = np.cumsum(n_children) - n_children
    level = np.flatnonzero(roots)
    depth = 0
    levels: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []  # (rows, parent's position)
    while len(level) and (max_depth == -1 or depth < max_depth) and depth <= height:
        counts = n_children[level]
        total = int(counts.sum())
        if not total:
            break
        parent_pos = np.repeat(np.arange(len(level), dtype=np.int64), counts)
        offsets = np.cumsum(counts) - counts
        level = child_rows[np.arange(total, dtype=np.int64) + np.repeat(first_child[level] - offsets, counts)]
        levels.append((level, parent_pos))
        depth += 1
    reached = np.zeros(height, dtype=np.bool_)
    reached[roots] = True
    for rows, _ in levels:
        reached[rows] = True
    top = np.flatnonzero(~reached | roots)  # roots and unreached rows: their path is their source index
    # Paths level by level (a parent's path, "/", the row's source index), then back in row order.
    row_chunks = [top]
    path_chunks = [sources.gather(top)]
    level_rows, level_paths = np.flatnonzero(roots), sources.gather(np.flatnonzero(roots))
    for rows, parent_pos in levels:
        level_paths = pl.select(pl.lit(level_paths).gather(parent_pos) + "/" + pl.lit(sources).gather(rows)).to_series()
        level_rows = rows
        row_chunks.append(level_rows)
        path_chunks.append(level_paths)
    position = np.empty(height, dtype=np.int64)
    position[np.concatenate(row_chunks)] = np.arange(height, dtype=np.int64)
    paths = pl.concat(path_chunks).gather(position).alias(Col.path)
    linked = reached & ~roots
    parent_index = (
        pl.select(pl.when(pl.lit(pl.Series(linked))).then(pl.lit(sources).gather(np.where(linked, parent_rows, 0))))
        .to_series()
        .alias(Col.parent_index)
    )
    # Sorting by path is a depth-first walk: a row, then its children's subtrees in row order; the
    # roots and unreached rows are the top-level entries, in row order.
    sizes = np.ones(height, dtype=np.int64)
    for rows, parent_pos in reversed(levels):  # a level's rows are grouped by parent
        starts = np.flatnonzero(np.diff(parent_pos, prepend=-1))
        sizes[parent_rows[rows[starts]]] += np.add.reduceat(sizes[rows], starts)
    preorder = np.empty(height, dtype=np.int64)
    top_sizes = sizes[top]
    preorder[top] = np.cumsum(top_sizes) - top_sizes
    for rows, parent_pos in levels:
        child_sizes = sizes[rows]
        before = np.cumsum(child_sizes) - child_sizes  # rows in the subtrees of earlier rows of this level
        first = np.ones(len(rows), dtype=np.bool_)
        first[1:] = parent_pos[1:] != parent_pos[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
        preorder[rows] = preorder[parent_rows[rows]] + 1 + before - before[group_start]
    return _Walk(paths, parent_index, preorder)


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
    keys = input_tree.get_column(Col.proc_key)
    parents = input_tree.get_column(Col.parent_key)
    parent_rows = _parent_rows_by_hash(keys, parents)
    if parent_rows is None:
        # keys are unique after _add_tree_properties; for other input the first row of a key is the parent
        parent_rows = _parent_rows_by_join(keys, parents)
    roots = input_tree.get_column("IsRoot").fill_null(False).to_numpy().astype(np.bool_)
    walk = _walk(input_tree.get_column(Col.source_index).cast(pl.Utf8), parent_rows, roots, max_depth)
    return input_tree.with_columns(walk.paths, walk.parent_index)


def _build_tree(extracted: pl.DataFrame) -> tuple[pl.DataFrame, npt.NDArray[np.int64] | None]:
    """``build_proc_tree(_add_tree_properties(extracted))`` and, when known, each row's position by path."""
    keys = extracted.get_column(Col.proc_key)
    parents = extracted.get_column(Col.parent_key)
    parent_rows = _parent_rows_by_hash(keys, parents)
    if parent_rows is None:
        return build_proc_tree(_add_tree_properties(extracted)), None
    # Keys are unique: no row is dropped, a key is a parent key exactly when some row links to its row.
    is_parent = np.zeros(extracted.height, dtype=np.bool_)
    is_parent[parent_rows[parent_rows >= 0]] = True
    tree = _with_tree_flags(extracted, pl.Series(~is_parent))
    roots = parents.is_null().to_numpy()
    walk = _walk(tree.get_column(Col.source_index), parent_rows, roots, -1)
    return tree.with_columns(walk.paths, walk.parent_index), walk.preorder


def build_process_tree(
    procs: Any,
    schema: ProcSchema | dict[str, Any] | None = None,
    show_summary: bool = False,
    debug: bool = False,
) -> Any:
    """Build process trees from process events.

    Args:
        procs: process events (Windows 4688, Linux auditd, MDE, Sysmon, ...), polars or pandas.
        schema: the column schema; a dict must name the required ``ProcSchema`` fields; None infers it.
        show_summary: log :func:`get_summary_info` of the result.
        debug: log extra row counts.

    Returns:
        The process tree, one row per process, sorted by ``path`` then time stamp, in a frame of the
        input's type (pandas: indexed by ``proc_key``, as msticpy's; polars: ``proc_key`` is a column).

    Raises:
        TypeError: no schema was given and none matches the data.
    """
    if isinstance(schema, dict):
        schema = ProcSchema(**schema)
    return like(_build_process_tree(to_polars(procs), schema, show_summary, debug), procs, index_column=Col.proc_key)


def _build_process_tree(data: pl.DataFrame, schema: ProcSchema | None, show_summary: bool, debug: bool) -> pl.DataFrame:
    if schema is None:
        schema = infer_schema(data)
    if schema is None:
        raise TypeError(
            "No matching schema for input data found. Please create a schema definition for the process "
            "data and pass it as the 'schema' parameter to this function."
        )
    if schema == MDE_EVENT_SCH:
        data = mde.convert_mde_schema_to_internal_polars(data, schema)
        schema = MDE_INT_EVENT_SCH
    if schema == MDE_INT_EVENT_SCH:
        extracted = mde.extract_process_tree_polars(data, debug=debug)
    else:
        extracted = winlx.extract_process_tree_polars(data, schema=schema, debug=debug)
    tree, preorder = _build_tree(extracted)
    if show_summary:
        _log.info("process_tree_summary", **get_summary_info(tree))
    if preorder is not None:
        # paths are unique, so this is the order of the sort below
        by_path = np.empty(tree.height, dtype=np.int64)
        by_path[preorder] = np.arange(tree.height, dtype=np.int64)
        return tree[by_path]
    sort_cols = [Col.path] + ([schema.time_stamp] if schema.time_stamp in tree.columns else [])
    return tree.sort(sort_cols, maintain_order=True, nulls_last=True)
