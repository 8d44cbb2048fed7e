"""Frame type in = frame type out, for the msticpy-named facades (never imported by a stage).

The engines work on polars. A facade converts its input with :func:`to_polars` and its result back with
:func:`like`: a polars frame for polars input; for pandas input a pandas frame with msticpy's conventions
(missing values are ``NaN``/``NaT``, integer columns with gaps are ``float64``, a filter keeps the input's
index labels, a process tree is indexed by ``proc_key``).

Functions that take no frame (``read_from_file``, ``unpack(str)``, ``unpack_items(input_string=...)``)
return msticpy's documented type, pandas, unless the default output is switched to polars::

    from processors import _frames
    _frames.set_default_output("polars")          # for the whole process
    with _frames.output_as("polars"):             # or for a block
        events = read_from_file("audit.log")

``SECSTREAM_FRAME_OUTPUT=polars`` in the environment sets the process default; without pandas installed
the default is polars.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

import polars as pl

__all__ = [
    "FrameKind",
    "default_output",
    "index_labels",
    "is_pandas",
    "like",
    "output_as",
    "row_like",
    "set_default_output",
    "to_output",
    "to_pandas",
    "to_polars",
]

FrameKind = Literal["pandas", "polars"]
_KINDS: Final = ("pandas", "polars")


def _initial_output() -> FrameKind:
    env = os.environ.get("SECSTREAM_FRAME_OUTPUT", "").strip().lower()
    if env == "polars" or importlib.util.find_spec("pandas") is None:
        return "polars"
    return "pandas"


_default: list[FrameKind] = []  # set on first use, so the environment is read when it is needed


def default_output() -> FrameKind:
    """The frame type returned by the functions that take no frame (``"pandas"`` unless switched)."""
    if not _default:
        _default.append(_initial_output())
    return _default[0]


def set_default_output(kind: FrameKind) -> None:
    """Set the frame type returned by the functions that take no frame, for the whole process.

    Args:
        kind: ``"pandas"`` (msticpy's documented type) or ``"polars"``.

    Raises:
        ValueError: ``kind`` is neither.
    """
    if kind not in _KINDS:
        raise ValueError(f"frame output must be 'pandas' or 'polars', not {kind!r}")
    _default[:] = [kind]


@contextlib.contextmanager
def output_as(kind: FrameKind) -> Iterator[None]:
    """Within the block, the functions that take no frame return ``kind`` frames."""
    previous = default_output()
    set_default_output(kind)
    try:
        yield
    finally:
        set_default_output(previous)


def is_pandas(obj: Any) -> bool:
    """Whether ``obj`` is a pandas DataFrame or Series (without importing pandas)."""
    kind = type(obj)
    return kind.__module__.startswith("pandas") and kind.__name__ in {"DataFrame", "Series"}


def index_labels(data: Any) -> list[Any]:
    """The row labels of ``data``: a pandas frame's index values (as Python scalars), else row numbers."""
    if is_pandas(data):
        return [label.item() if hasattr(label, "item") else label for label in data.index]
    return list(range(len(data)))


def to_polars(data: Any, *, index_column: str | None = None) -> pl.DataFrame:
    """Return ``data`` (polars or pandas) as a polars frame.

    Args:
        data: the DataFrame.
        index_column: for pandas input whose index is named ``index_column`` (a process tree's
            ``proc_key``), keep the index as that column.

    Raises:
        TypeError: ``data`` is not a DataFrame.
    """
    if isinstance(data, pl.DataFrame):
        return data
    if is_pandas(data) and type(data).__name__ == "DataFrame":
        keep = index_column is not None and data.index.name == index_column and index_column not in data.columns
        return _from_pandas(data.reset_index(drop=not keep))
    raise TypeError(f"expected a polars or pandas DataFrame, got {type(data).__name__}")


def _from_pandas(data: Any) -> pl.DataFrame:
    """pandas → polars; missing values (``None``/``NaN``/``NaT``) become nulls."""
    import pandas as pd

    if not data.columns.is_unique:
        return pl.from_pandas(data)
    # Object columns holding only str convert much faster straight to polars than through pyarrow
    # (``pl.from_pandas``), with the same result; anything else (None, NaN, mixed types) goes through it.
    text: dict[str, pl.Series] = {}
    for name, dtype in data.dtypes.items():
        if pd.api.types.is_object_dtype(dtype) and isinstance(name, str):
            values = data[name].to_numpy()
            if pd.api.types.infer_dtype(values, skipna=False) == "string":
                text[name] = pl.Series(name, values)
    if not text:
        return pl.from_pandas(data)
    rest = [name for name in data.columns if name not in text]
    converted = pl.from_pandas(data[rest]) if rest else pl.DataFrame()
    return pl.DataFrame([text[name] if name in text else converted.get_column(name) for name in data.columns])


def to_pandas(frame: pl.DataFrame, *, index: Sequence[Any] | None = None, index_column: str | None = None) -> Any:
    """Return ``frame`` as pandas with msticpy's missing values (``NaN``/``NaT``, never ``None``).

    Args:
        frame: the polars frame.
        index: row labels to use (e.g. the input's labels for a filter).
        index_column: a column to move into the index (msticpy's ``proc_key``).
    """
    import numpy as np

    out = frame.to_pandas()
    for name in out.columns[out.dtypes == object]:  # noqa: E721 - pandas dtype comparison
        column = out[name]
        if column.isna().any():
            out[name] = column.where(column.notna(), np.nan)
    for name, dtype in frame.schema.items():
        # pandas' (and msticpy's) default unit is ns; times outside its range (1677-2262) keep polars' unit
        if isinstance(dtype, pl.Datetime) and dtype.time_unit != "ns" and _fits_ns(frame.get_column(name)):
            tz = f", {dtype.time_zone}" if dtype.time_zone else ""
            out[name] = out[name].astype(f"datetime64[ns{tz}]")
    if index is not None:
        out.index = list(index)
    if index_column is not None and index_column in out.columns:
        out = out.set_index(index_column)
    return out


_NS_LIMIT_MS: Final = 9_223_372_036_854  # datetime64[ns] spans ±2**63 ns around the epoch


def _fits_ns(times: pl.Series) -> bool:
    millis = times.dt.epoch("ms")
    low, high = millis.min(), millis.max()
    if not isinstance(low, int) or not isinstance(high, int):
        return True  # no times at all
    return low > -_NS_LIMIT_MS and high < _NS_LIMIT_MS


def like(
    result: pl.DataFrame, data: Any, *, index: Sequence[Any] | None = None, index_column: str | None = None
) -> Any:
    """Return ``result`` in the frame type of ``data``: polars for polars, pandas (see :func:`to_pandas`)."""
    if is_pandas(data):
        return to_pandas(result, index=index, index_column=index_column)
    return result


def to_output(result: pl.DataFrame, *, index_column: str | None = None) -> Any:
    """Return ``result`` as the default output type (for functions that take no frame)."""
    if default_output() == "pandas":
        return to_pandas(result, index_column=index_column)
    return result


def row_like(row: dict[str, Any], data: Any, *, name: Any = None) -> Any:
    """Return one row as a ``dict`` (polars input) or as a pandas ``Series`` named ``name`` (pandas input)."""
    if not is_pandas(data):
        return row
    import numpy as np
    import pandas as pd

    return pd.Series({key: (np.nan if value is None else value) for key, value in row.items()}, name=name)
