"""Process tree builder for Windows 4688 / Sysmon / Linux auditd style events (polars; msticpy's names).

Differences from msticpy (deliberate):

* Parents are matched on the same host too when the schema names a host column (msticpy matches across
  hosts); the rule is otherwise the same: the latest process with the parent's id (and, when the schema
  has ``parent_name``, the same lower-cased name) whose time stamp is at or before the child's.
* The parent-id column of inferred parents is ``<process_id>_par`` for every schema; msticpy writes a
  literal ``NewProcessId_par`` column even for Linux data.
* A process is never matched as its own parent (msticpy links a row whose pid equals its ppid to itself,
  which leaves it unreachable from any root); such a process gets an inferred parent instead.
* Sorting is stable, so rows with equal time stamps keep their input order (pandas' default sort is not).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from processors._frames import like, to_polars
from processors.proc_tree_schema import ColNames as Col
from processors.proc_tree_schema import ProcSchema

__all__ = ["TS_FMT_STRING", "extract_process_tree", "format_key_time", "to_polars"]

TS_FMT_STRING = "%Y-%m-%d %H:%M:%S%.6f"
_R = "__par_"


def format_key_time(expr: pl.Expr) -> pl.Expr:
    """Format a datetime expression as msticpy's key time (rounded to 10 µs, ``%Y-%m-%d %H:%M:%S.%f``)."""
    return expr.dt.round("10us").dt.strftime(TS_FMT_STRING)


def ensure_datetime(data: pl.DataFrame, column: str) -> pl.DataFrame:
    """Parse ``column`` to a datetime column when it is text."""
    if column in data.columns and data.schema[column] == pl.Utf8:
        return data.with_columns(pl.col(column).str.strip_chars().str.to_datetime(strict=False))
    return data


def _num_cols_to_str(data: pl.DataFrame, schema: ProcSchema) -> pl.DataFrame:
    cols = {col for col in schema.columns if col is not None and col in data.columns}
    exprs = []
    for col in cols:
        dtype = data.schema[col]
        if dtype.is_float():
            exprs.append(pl.col(col).cast(pl.Int64).cast(pl.Utf8))
        elif dtype.is_integer():
            exprs.append(pl.col(col).cast(pl.Utf8))
    return data.with_columns(exprs) if exprs else data


def _unique_rows(data: pl.DataFrame, schema: ProcSchema) -> pl.DataFrame:
    """``data.unique(maintain_order=True)``, skipped when the time stamp and process id show no duplicates."""
    subset = [col for col in (schema.time_stamp, schema.process_id) if col in data.columns]
    if subset and data.width and not data.select(subset).is_duplicated().any():
        return data  # rows differing in a subset of the columns are all distinct
    return data.unique(maintain_order=True)


def _sorted_by_time(data: pl.DataFrame, column: str) -> pl.DataFrame:
    """``data.sort(column, maintain_order=True)``, skipped when the column is already sorted."""
    stamps = data.get_column(column)
    if not stamps.null_count() and stamps.is_sorted():
        return data
    return data.sort(column, maintain_order=True)


def _clean(procs: pl.DataFrame, schema: ProcSchema) -> tuple[pl.DataFrame, ProcSchema]:
    data = _sorted_by_time(_unique_rows(ensure_datetime(procs, schema.time_stamp), schema), schema.time_stamp)
    if schema.event_id_column and schema.event_id_identifier and schema.event_id_column in data.columns:
        keep = data.select(pl.col(schema.event_id_column).cast(pl.Utf8) == str(schema.event_id_identifier))
        if keep.to_series().sum() != data.height:  # filtering copies every column: only when needed
            data = data.filter(keep.to_series())
    data = _num_cols_to_str(data, schema)
    if schema.logon_id and schema.logon_id not in data.columns:
        schema = replace(schema, logon_id=None)
    if schema.logon_id:
        eff = pl.col(schema.logon_id).cast(pl.Utf8)
        if schema.target_logon_id and schema.target_logon_id in data.columns:
            tgt = pl.col(schema.target_logon_id).cast(pl.Utf8)
            eff = pl.when(tgt.is_not_null() & (tgt != "0x0")).then(tgt).otherwise(eff)
    else:
        eff = pl.lit("0")
    added = [
        eff.alias(Col.EffectiveLogonId),
        pl.col(schema.process_name).cast(pl.Utf8).str.to_lowercase().alias(Col.new_process_lc),
    ]
    if schema.parent_name:
        parent = pl.when(pl.col(schema.parent_name) == "").then(pl.lit("unknown")).otherwise(pl.col(schema.parent_name))
        added += [parent.alias(schema.parent_name), parent.str.to_lowercase().alias(Col.parent_proc_lc)]
    data = data.with_columns(added)  # one pass: polars computes the columns in parallel
    return data.with_row_index(Col.source_index), schema


def _merge_parents(data: pl.DataFrame, schema: ProcSchema) -> pl.DataFrame:
    host = schema.host_name_column if schema.host_name_column in data.columns else None
    right_cols: dict[str, pl.Expr] = {
        f"{_R}pid": pl.col(schema.process_id).cast(pl.Utf8),
        f"{_R}ts": pl.col(schema.time_stamp),
        f"{schema.process_id}_par": pl.col(schema.process_id).cast(pl.Utf8),
        Col.source_index_par: pl.col(Col.source_index),
        Col.EffectiveLogonId_par: pl.col(Col.EffectiveLogonId),
        f"{schema.parent_id}_par": pl.col(schema.parent_id).cast(pl.Utf8),
        f"{schema.process_name}_par": pl.col(schema.process_name),
        Col.new_process_lc_par: pl.col(Col.new_process_lc),
        Col.timestamp_orig_par: pl.col(schema.time_stamp),
    }
    by_left = [f"{_R}ppid_l"]
    by_right = [f"{_R}pid"]
    left = data.with_columns(pl.col(schema.parent_id).cast(pl.Utf8).alias(f"{_R}ppid_l"))
    if schema.parent_name:
        right_cols[f"{_R}name"] = pl.col(Col.new_process_lc)
        by_left.append(Col.parent_proc_lc)
        by_right.append(f"{_R}name")
    if host:
        right_cols[f"{_R}host"] = pl.col(host).cast(pl.Utf8)
        left = left.with_columns(pl.col(host).cast(pl.Utf8).alias(f"{_R}host_l"))
        by_left.append(f"{_R}host_l")
        by_right.append(f"{_R}host")
    right = data.select([expr.alias(name) for name, expr in right_cols.items()])
    merged = left.join_asof(
        right,
        left_on=schema.time_stamp,
        right_on=f"{_R}ts",
        by_left=by_left,
        by_right=by_right,
        strategy="backward",
        check_sortedness=False,
    )
    # a process is never its own parent (msticpy's merge_asof matches a row with pid == ppid to itself)
    payload = [name for name in right_cols if not name.startswith(_R)]
    self_match = pl.col(Col.source_index_par) == pl.col(Col.source_index)
    merged = merged.with_columns(
        [pl.when(self_match).then(None).otherwise(pl.col(name)).alias(name) for name in payload]
    )
    return merged.drop([col for col in merged.columns if col.startswith(_R)])


def _add_inferred_parents(merged: pl.DataFrame, schema: ProcSchema) -> pl.DataFrame:
    ts_type = merged.schema[schema.time_stamp]
    epoch = pl.lit(0).cast(pl.Int64).cast(ts_type) if isinstance(ts_type, pl.Datetime) else pl.lit(None)
    is_root = pl.col(Col.source_index_par).is_null()
    pid_par = f"{schema.process_id}_par"
    logon = pl.col(schema.logon_id).cast(pl.Utf8) if schema.logon_id else pl.lit("0")
    parent_col = schema.parent_name or "ParentName"
    if schema.parent_name:
        new_lc_par = pl.when(is_root).then(pl.col(Col.parent_proc_lc)).otherwise(pl.col(Col.new_process_lc_par))
        merged = merged.with_columns(new_lc_par.alias(Col.new_process_lc_par))
    else:
        name_par = f"{schema.process_name}_par"
        merged = merged.with_columns(
            pl.when(is_root)
            .then(pl.lit("unknown"))
            .otherwise(pl.col(Col.new_process_lc_par))
            .alias(Col.new_process_lc_par),
            pl.when(is_root).then(pl.lit("unknown")).otherwise(pl.col(name_par)).alias(name_par),
        ).with_columns(
            pl.col(name_par).alias(parent_col),
            pl.col(Col.new_process_lc_par).alias(Col.parent_proc_lc),
        )
    merged = merged.with_columns(
        pl.when(is_root).then(pl.col(schema.parent_id).cast(pl.Utf8)).otherwise(pl.col(pid_par)).alias(pid_par),
        pl.when(is_root).then(logon).otherwise(pl.col(Col.EffectiveLogonId_par)).alias(Col.EffectiveLogonId_par),
        pl.when(is_root).then(epoch).otherwise(pl.col(Col.timestamp_orig_par)).alias(Col.timestamp_orig_par),
    )
    host = schema.host_name_column if schema.host_name_column in merged.columns else None
    sel: list[pl.Expr] = []
    if host:
        sel.append(pl.col(host))
    sel += [
        pl.col(schema.parent_id).alias(schema.process_id),
        pl.col(parent_col).alias(schema.process_name),
        pl.col(Col.parent_proc_lc).alias(Col.new_process_lc),
    ]
    if schema.event_id_column and schema.event_id_column in merged.columns:
        sel.append(pl.col(schema.event_id_column))
    if schema.logon_id and schema.logon_id in merged.columns:
        sel.append(pl.col(Col.EffectiveLogonId_par).alias(schema.logon_id))
    sel.append(logon.alias(Col.EffectiveLogonId))
    key_cols = [host] if host else []
    key_cols += [schema.process_id, Col.new_process_lc]
    inferred = (
        merged.filter(is_root)
        .select(sel)
        .unique(subset=key_cols, keep="first", maintain_order=True)
        .with_columns(epoch.alias(schema.time_stamp))
    )
    return pl.concat([merged, inferred], how="diagonal_relaxed")


def extract_process_tree(procs: Any, schema: ProcSchema, debug: bool = False) -> Any:
    """Build process trees from process events (see :func:`extract_process_tree_polars`).

    Args:
        procs: process events (Windows 4688, Sysmon, Linux auditd, ...), polars or pandas.
        schema: the column schema of ``procs``.
        debug: accepted for msticpy compatibility (logs row counts at debug level).

    Returns:
        The events plus inferred parents, in a frame of the input's type.
    """
    return like(extract_process_tree_polars(procs, schema, debug), procs)


def extract_process_tree_polars(procs: Any, schema: ProcSchema, debug: bool = False) -> pl.DataFrame:
    """Build process trees from process events.

    Args:
        procs: process events (Windows 4688, Sysmon, Linux auditd, ...), polars or pandas.
        schema: the column schema of ``procs``.
        debug: accepted for msticpy compatibility (logs row counts at debug level).

    Returns:
        The events plus inferred parents, with ``proc_key``, ``parent_key`` and the ``*_par`` columns.
    """
    data, schema = _clean(to_polars(procs), schema)
    merged = _merge_parents(data, schema)
    with_parents = _add_inferred_parents(merged, schema)
    if debug:
        import structlog

        structlog.get_logger(module=__name__).debug(
            "proc_tree_merge", events=data.height, with_inferred_parents=with_parents.height
        )
    return with_parents.drop(Col.source_index).with_columns(
        pl.concat_str(
            [
                pl.col(Col.new_process_lc),
                pl.col(schema.process_id).cast(pl.Utf8),
                format_key_time(pl.col(schema.time_stamp)),
            ],
            separator="|",
        ).alias(Col.proc_key),
        pl.concat_str(
            [
                pl.col(Col.parent_proc_lc),
                pl.col(schema.parent_id).cast(pl.Utf8),
                format_key_time(pl.col(Col.timestamp_orig_par)),
            ],
            separator="|",
        ).alias(Col.parent_key),
    )
