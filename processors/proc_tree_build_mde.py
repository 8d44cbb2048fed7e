"""Process tree builder for Microsoft Defender for Endpoint process events (polars; msticpy's names).

MDE events carry the created process (``CreatedProcess*``) and its initiating process
(``InitiatingProcess*``, the parent) plus the initiating process' parent (``InitiatingProcessParent*``).
Parents that are not themselves events are rebuilt from their children's ``Initiating*`` columns, and
grandparents from the ``*Parent*`` columns, as msticpy does.

Differences from msticpy (deliberate):

* ``convert_mde_schema_to_internal`` (alias ``convert_sentinel_to_mde``) takes the created process'
  parent id from ``schema.parent_id`` (``InitiatingProcessId`` in ``MDE_EVENT_SCH``): msticpy 1.5 used
  ``InitiatingProcessParentId``, one generation too far up.
* The input is never modified (msticpy's conversion writes into the caller's frame).
* A parent is "missing" when its key is not among the created processes' keys (msticpy also treats a
  present parent whose own ``CreatedProcessParentId`` is empty as missing, adding a duplicate row).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from processors._frames import like, to_polars
from processors.proc_tree_build_winlx import ensure_datetime, format_key_time
from processors.proc_tree_schema import ColNames as Col
from processors.proc_tree_schema import ProcSchema

__all__ = ["convert_mde_schema_to_internal", "convert_sentinel_to_mde", "extract_process_tree"]

_MDE_NON_STD_COL_MAP = {
    "InitiatingProcessImageCreationTimeUtc": "CreatedProcessFileCreationTime",
    "InitiatingProcessImageMd5": "CreatedProcessFileMd5",
    "InitiatingProcessImageFilePath": "CreatedProcessFilePath",
    "InitiatingProcessImageSha1": "CreatedProcessFileSha1",
    "InitiatingProcessImageSha256": "CreatedProcessFileSha256",
    "InitiatingProcessImageFileSizeInBytes": "CreatedProcessFileSize",
    "InitiatingProcessParentProcessId": "CreatedProcessParentId",
    "InitiatingProcessParentProcessName": "CreatedProcessParentName",
    "InitiatingProcessParentCreationTime": "CreatedProcessParentCreationTimeUtc",
}
_MDE_TIMESTAMP_COLS = (
    "CreatedProcessCreationTime",
    "InitiatingProcessCreationTime",
    "CreatedProcessParentCreationTimeUtc",
    "InitiatingProcessParentCreationTime",
)
_SENTINEL_MDE_MAP = {
    "AccountDomain": "CreatedProcessAccountDomainName",
    "AccountName": "CreatedProcessAccountName",
    "AccountSid": "CreatedProcessAccountSid",
    "DeviceId": "MachineId",
    "DeviceName": "ComputerDnsName",
    "FileName": "CreatedProcessName",
    "FolderPath": "CreatedProcessFilePath",
    "InitiatingProcessAccountDomain": "InitiatingProcessAccountDomainName",
    "InitiatingProcessCommandLine": "Process_CommandLine",
    "InitiatingProcessFileName": "InitiatingProcessName",
    "InitiatingProcessFolderPath": "InitiatingProcessImageFilePath",
    "InitiatingProcessMD5": "InitiatingProcessImageMd5",
    "InitiatingProcessParentFileName": "InitiatingProcessParentProcessName",
    "InitiatingProcessParentId": "InitiatingProcessParentProcessId",
    "InitiatingProcessSHA1": "InitiatingProcessImageSha1",
    "InitiatingProcessSHA256": "InitiatingProcessImageSha256",
    "InitiatingProcessTokenElevation": "InitiatingProcessTokenElevationType",
    "MD5": "CreatedProcessFileMd5",
    "ProcessCommandLine": "CreatedProcessCommandLine",
    "ProcessCreationTime": "CreatedProcessCreationTime",
    "ProcessId": "CreatedProcessId",
    "ProcessIntegrityLevel": "CreatedProcessIntegrityLevel",
    "ProcessTokenElevation": "CreatedProcessTokenElevationType",
    "SHA1": "CreatedProcessFileSha1",
    "SHA256": "CreatedProcessFileSha256",
}


def _key(name: str, pid: str, stamp: str) -> pl.Expr:
    return pl.concat_str(
        [
            pl.col(name).cast(pl.Utf8).str.to_lowercase(),
            pl.col(pid).cast(pl.Utf8).str.to_lowercase(),
            format_key_time(pl.col(stamp)),
        ],
        separator="|",
    )


def _par_child_col_mapping(columns: list[str]) -> dict[str, str]:
    created = {col.removeprefix("Created"): col for col in columns if col.startswith("Created")}
    mapping = {
        col: created[col.removeprefix("Initiating")]
        for col in columns
        if col.startswith("Initiating") and col.removeprefix("Initiating") in created
    }
    return {**mapping, **_MDE_NON_STD_COL_MAP}


def _last_component(col: str, sep: str = "\\") -> pl.Expr:
    return pl.col(col).cast(pl.Utf8).str.split(sep).list.last()


def _missing_parents(data: pl.DataFrame, mapping: dict[str, str]) -> pl.DataFrame:
    known = data.get_column(Col.proc_key).drop_nulls().unique().implode()
    init_cols = [col for col in data.columns if col.startswith("Initiating") and col != "InitiatingProcessFileName"]
    orphans = data.filter(pl.col(Col.parent_key).is_not_null() & ~pl.col(Col.parent_key).is_in(known))
    rename = {col: mapping[col] for col in init_cols if col in mapping}
    parents = (
        orphans.select([*init_cols, Col.parent_key])
        .rename({**rename, Col.parent_key: Col.proc_key})
        .sort("CreatedProcessCreationTime", maintain_order=True)
    )
    if "CreatedProcessFilePath" in parents.columns:
        parents = parents.with_columns(
            pl.concat_str([pl.col("CreatedProcessFilePath"), pl.col("CreatedProcessName")], separator="\\").alias(
                "CreatedProcessFilePath"
            )
        )
    parents = parents.unique(maintain_order=True).with_columns(
        _last_component("CreatedProcessParentName").alias("InitiatingProcessName")
    )
    return parents.with_columns(
        _key("InitiatingProcessName", "CreatedProcessParentId", "CreatedProcessParentCreationTimeUtc").alias(
            Col.parent_key
        )
    )


def _missing_grandparents(data: pl.DataFrame) -> pl.DataFrame:
    known = data.get_column(Col.proc_key).drop_nulls().unique().implode()
    par_cols = [col for col in data.columns if "Parent" in col]
    gps = data.filter(pl.col(Col.parent_key).is_not_null() & ~pl.col(Col.parent_key).is_in(known)).select(par_cols)
    gps = gps.unique(maintain_order=True)
    gps = gps.with_columns(
        _last_component("CreatedProcessParentName").alias("CreatedProcessName"),
        pl.col("CreatedProcessParentName").alias("CreatedProcessFilePath"),
        pl.col("CreatedProcessParentCreationTimeUtc").alias("CreatedProcessCreationTime"),
        pl.col("CreatedProcessParentId").alias("CreatedProcessId"),
    ).drop(
        [
            col
            for col in (
                "InitiatingProcessParentCreationTime",
                "InitiatingProcessParentProcessId",
                "InitiatingProcessParentProcessName",
                "CreatedProcessParentName",
                "CreatedProcessParentCreationTimeUtc",
                "CreatedProcessParentId",
            )
            if col in gps.columns
        ]
    )
    return gps.with_columns(
        _key("CreatedProcessName", "CreatedProcessId", "CreatedProcessCreationTime").alias(Col.proc_key)
    )


def extract_process_tree(data: Any, debug: bool = False) -> Any:
    """Build a process tree from MDE process events (see :func:`extract_process_tree_polars`).

    Args:
        data: MDE process events (internal MDE schema), polars or pandas.
        debug: accepted for msticpy compatibility (logs row counts at debug level).

    Returns:
        The events plus rebuilt parents and grandparents, in a frame of the input's type.
    """
    return like(extract_process_tree_polars(data, debug), data)


def extract_process_tree_polars(data: Any, debug: bool = False) -> pl.DataFrame:
    """Build a process tree from MDE process events (internal MDE schema).

    Args:
        data: MDE process events, polars or pandas.
        debug: accepted for msticpy compatibility (logs row counts at debug level).

    Returns:
        The events plus rebuilt parents and grandparents, with ``proc_key`` and ``parent_key``.
    """
    frame = to_polars(data)
    for col in _MDE_TIMESTAMP_COLS:
        frame = ensure_datetime(frame, col)
    frame = frame.with_columns(
        _key("CreatedProcessName", "CreatedProcessId", "CreatedProcessCreationTime").alias(Col.proc_key),
        pl.concat_str(
            [pl.col("InitiatingProcessImageFilePath"), pl.col("InitiatingProcessName")], separator="\\"
        ).alias("InitiatingProcessFileName"),
        _key("InitiatingProcessName", "InitiatingProcessId", "InitiatingProcessCreationTime").alias(Col.parent_key),
    )
    parents = _missing_parents(frame, _par_child_col_mapping(frame.columns))
    with_parents = pl.concat([frame, parents], how="diagonal_relaxed")
    grandparents = _missing_grandparents(with_parents)
    if debug:
        import structlog

        structlog.get_logger(module=__name__).debug(
            "mde_proc_tree", events=frame.height, parents=parents.height, grandparents=grandparents.height
        )
    return pl.concat([with_parents, grandparents], how="diagonal_relaxed")


def convert_mde_schema_to_internal(data: Any, schema: ProcSchema) -> Any:
    """Convert Sentinel/MDE ``DeviceProcessEvents`` data to the internal MDE schema (a frame of the input's type).

    Args:
        data: events in the public schema, polars or pandas.
        schema: the mapping schema (``MDE_EVENT_SCH``).
    """
    return like(convert_mde_schema_to_internal_polars(data, schema), data)


def convert_mde_schema_to_internal_polars(data: Any, schema: ProcSchema) -> pl.DataFrame:
    """Convert Sentinel/MDE ``DeviceProcessEvents`` data to the internal MDE schema.

    Args:
        data: events in the public schema, polars or pandas.
        schema: the mapping schema (``MDE_EVENT_SCH``).

    Returns:
        A new frame in the internal MDE schema (``CreatedProcess*``/``InitiatingProcess*``).
    """
    frame = to_polars(data)
    for col in (schema.time_stamp, "InitiatingProcessCreationTime", "InitiatingProcessParentCreationTime"):
        frame = ensure_datetime(frame, col)

    def _fill_epoch(col: str) -> pl.Expr:
        dtype = frame.schema[col]
        if isinstance(dtype, pl.Datetime):
            return pl.col(col).fill_null(pl.lit(0).cast(pl.Int64).cast(dtype))
        return pl.col(col)

    parent_name = schema.parent_name or "InitiatingProcessFileName"
    exprs = [
        _fill_epoch(schema.time_stamp).alias("ProcessCreationTime"),
        _fill_epoch("InitiatingProcessCreationTime"),
        _fill_epoch("InitiatingProcessParentCreationTime"),
        pl.col(schema.parent_id).alias("CreatedProcessParentId"),
        pl.col("InitiatingProcessFolderPath").cast(pl.Utf8).str.replace(r"\\[^\\]*$", ""),
    ]
    if parent_name in frame.columns:
        exprs.append(
            pl.when(pl.col(parent_name) == "").then(pl.lit("unknown")).otherwise(pl.col(parent_name)).alias(parent_name)
        )
    if "InitiatingProcessParentFileName" in frame.columns:
        exprs.append(
            pl.when(pl.col("InitiatingProcessParentFileName").fill_null("") == "")
            .then(pl.lit("unknown"))
            .otherwise(pl.col("InitiatingProcessParentFileName"))
            .alias("InitiatingProcessParentFileName")
        )
    frame = frame.drop([c for c in ("ProcessCreationTime", "CreatedProcessParentId") if c in frame.columns])
    frame = frame.with_columns(exprs)
    return frame.rename({old: new for old, new in _SENTINEL_MDE_MAP.items() if old in frame.columns})


convert_sentinel_to_mde = convert_mde_schema_to_internal
