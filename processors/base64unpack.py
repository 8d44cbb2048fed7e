"""msticpy's ``base64unpack`` module: ``unpack``, ``unpack_df``, ``unpack_items`` and ``df.mp_b64``.

The decoder, its rules and its limits are :mod:`processors.ioc.unpack` (see its docstring); this module
gives msticpy's string and DataFrame API on top of it. A DataFrame gives a frame of the same type (pandas in,
pandas out; polars in, polars out); a string gives msticpy's documented pandas frame, or polars after
``processors._frames.set_default_output("polars")``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from processors import _frames
from processors.errors import MsticpyException
from processors.ioc.unpack import (
    _RECORD_FIELDS,
    Base64Settings,
    BinaryRecord,
    UnpackResult,
    file_type_of,
    get_hashes,
    get_items_from_gzip,
    get_items_from_tar,
    get_items_from_zip,
    unpack_text,
)

__all__ = [
    "B64ExtractAccessor",
    "Base64Settings",
    "BinaryRecord",
    "UnpackResult",
    "file_type_of",
    "get_hashes",
    "get_items_from_gzip",
    "get_items_from_tar",
    "get_items_from_zip",
    "unpack",
    "unpack_df",
    "unpack_items",
    "unpack_text",
]

_HASH_STRUCT = pl.Struct({"md5": pl.String, "sha1": pl.String, "sha256": pl.String})
_SCHEMA: dict[str, Any] = {
    "reference": pl.String,
    "original_string": pl.String,
    "file_name": pl.String,
    "file_type": pl.String,
    "input_bytes": pl.Binary,
    "decoded_string": pl.String,
    "encoding_type": pl.String,
    "file_hashes": _HASH_STRUCT,
    "md5": pl.String,
    "sha1": pl.String,
    "sha256": pl.String,
    "printable_bytes": pl.String,
}


def _records_frame(records: list[BinaryRecord], extra: dict[str, list[Any]] | None = None) -> pl.DataFrame:
    """Return the records as a polars frame with the 12 record columns (plus ``extra`` columns, if any)."""
    if not extra:
        # Construction from row dicts with the fixed schema is 3-5x cheaper than from column lists for the few
        # records of one text; an empty result is a copy (O(1), copy-on-write) of a prebuilt empty frame.
        if not records:
            return _EMPTY_FRAME.clone()
        return pl.from_dicts([record._asdict() for record in records], schema=_SCHEMA)
    return _records_frame_columns(records, extra)


def _records_frame_columns(records: list[BinaryRecord], extra: dict[str, list[Any]] | None = None) -> pl.DataFrame:
    """Column-wise construction (the general path, used with ``extra`` columns)."""
    columns: dict[str, list[Any]] = {name: [getattr(rec, name) for rec in records] for name in _RECORD_FIELDS}
    schema = dict(_SCHEMA)
    if extra:
        for key, values in extra.items():
            columns[key] = values
    frame = pl.DataFrame({name: columns[name] for name in _RECORD_FIELDS}, schema=schema)
    if extra:
        frame = frame.with_columns([pl.Series(key, values) for key, values in extra.items()])
    return frame


_EMPTY_FRAME = _records_frame_columns([])


def unpack(input_string: str, trace: bool = False, utf16: bool = False) -> tuple[str, Any]:
    """Base64-decode the payloads in a string.

    Args:
        input_string: the text to decode.
        trace: accepted for compatibility (no effect; nothing is printed).
        utf16: also try UTF-16LE for bytes that are not otherwise text (UTF-16 with a BOM or the
            ``X\\0`` pattern is always recognised).

    Returns:
        (the string with decoded runs replaced by markup, a DataFrame of :class:`BinaryRecord` columns;
        empty with those 12 columns when nothing was decoded). The frame is pandas (msticpy's type) unless
        the default output is polars (:mod:`processors._frames`).
    """
    del trace
    result = unpack_text(input_string, utf16=utf16)
    return result.decoded_string, _frames.to_output(_records_frame(result.records))


def unpack_df(data: Any, column: str, trace: bool = False, utf16: bool = False) -> Any:
    """Base64-decode the payloads in one column of a polars or pandas DataFrame.

    Args:
        data: the DataFrame.
        column: the text column.
        trace: accepted for compatibility (no effect).
        utf16: as for :func:`unpack`.

    Returns:
        A frame of the input's type: the 12 :class:`BinaryRecord` columns plus ``src_index`` (the
        pandas index label, or the row number for polars), ``<column>`` (the original text) and
        ``full_decoded_string``; rows only for input rows with decoded items (an empty 12-column frame
        when there are none).

    Raises:
        MsticpyException: ``column`` is not in ``data`` or ``data`` is not a DataFrame.
    """
    del trace
    try:
        frame = _frames.to_polars(data)
    except TypeError as exc:
        raise MsticpyException(f"data must be a polars or pandas DataFrame, not {type(data).__name__}") from exc
    if column not in frame.columns:
        raise MsticpyException(f"Column {column!r} not found in the DataFrame")
    records: list[BinaryRecord] = []
    src_index: list[int] = []
    originals: list[str] = []
    full: list[str] = []
    for row, value in enumerate(frame.get_column(column).to_list()):
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        result = unpack_text(text, utf16=utf16)
        if not result.records:
            continue
        records.extend(result.records)
        src_index.extend([row] * len(result.records))
        originals.extend([text] * len(result.records))
        full.extend([result.decoded_string] * len(result.records))
    if not records:
        return _frames.like(_records_frame([]), data)
    found = _records_frame(records, {"src_index": src_index, column: originals, "full_decoded_string": full})
    if not _frames.is_pandas(data):
        return found
    out = _frames.to_pandas(found)
    labels = _frames.index_labels(data)
    out["src_index"] = [labels[row] for row in src_index]
    return out


def unpack_items(
    input_string: str | None = None,
    data: Any = None,
    column: str | None = None,
    trace: bool = False,
    utf16: bool = False,
) -> Any:
    """Base64-decode a string or a DataFrame column (dispatches to :func:`unpack` or :func:`unpack_df`).

    Unlike msticpy the input string is not padded with ``"A"`` first.

    Args:
        input_string: a single string to decode.
        data: a DataFrame (with ``column``).
        column: the text column of ``data``.
        trace: accepted for compatibility (no effect).
        utf16: as for :func:`unpack`.

    Returns:
        ``(str, DataFrame)`` for a string, a DataFrame for ``data``.

    Raises:
        MsticpyException: neither a string nor ``data`` with ``column`` was given.
    """
    if input_string is not None:
        return unpack(input_string, trace=trace, utf16=utf16)
    if data is not None:
        if column is None:
            raise MsticpyException("column must be supplied with data")
        return unpack_df(data, column, trace=trace, utf16=utf16)
    raise MsticpyException("input_string or data parameter must be supplied")


@pl.api.register_dataframe_namespace("mp_b64")
class B64ExtractAccessor:
    """DataFrame extension ``df.mp_b64``: base64 decoding and unpacking.

    Args:
        pandas_obj: the DataFrame (polars, or pandas via :func:`register_pandas_accessors`); the name is
            msticpy's.
    """

    def __init__(self, pandas_obj: Any) -> None:
        self._df = pandas_obj

    def extract(self, column: str, **kwargs: Any) -> Any:
        """Base64-decode the strings of a column (``base64unpack.unpack_df``; a frame of the input's type).

        Args:
            column: the text column to decode.
            **kwargs: ``trace``, ``utf16`` and other ``unpack_df`` options.

        Returns:
            The decoded items with their metadata and ``src_index``.
        """
        return unpack_df(self._df, column=column, **kwargs)
