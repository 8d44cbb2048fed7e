"""polars DataFrame namespaces ``df.mp_ioc`` and ``df.mp_b64`` (msticpy's pandas accessors).

Importing this module registers the namespaces on :class:`polars.DataFrame`::

    import processors.accessors  # noqa: F401
    iocs = df.mp_ioc.extract(columns=["CommandLine"])
    decoded = df.mp_b64.extract(column="CommandLine")

The target modules (:mod:`processors.iocextract`, :mod:`processors.base64unpack`) are imported when a
method is called, so this module can be imported (and re-exported by them) without a cycle.

Differences from msticpy: the namespaces live on polars DataFrames (msticpy registered pandas
accessors). A pandas user can call :func:`register_pandas_accessors` to get ``df.mp_ioc`` /
``df.mp_b64`` on pandas DataFrames too; both return polars DataFrames.
"""

from __future__ import annotations

import importlib
from typing import Any

import polars as pl

__all__ = ["B64ExtractAccessor", "IoCExtractAccessor", "register_pandas_accessors"]


def _as_polars(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        return pl.from_pandas(data)
    raise TypeError(f"expected a polars or pandas DataFrame, got {type(data).__name__}")


@pl.api.register_dataframe_namespace("mp_ioc")
class IoCExtractAccessor:
    """DataFrame extension ``df.mp_ioc``: IoC extraction.

    Args:
        pandas_obj: the DataFrame (polars, or pandas via :func:`register_pandas_accessors`); the name is
            msticpy's.
    """

    def __init__(self, pandas_obj: Any) -> None:
        self._df = pandas_obj

    def extract(self, columns: Any, **kwargs: Any) -> pl.DataFrame:
        """Extract IoCs from the given columns (``IoCExtract().extract_df``).

        Args:
            columns: a column name or a list of column names to search.
            **kwargs: ``ioc_types``, ``include_paths``, ``ignore_tlds`` and other ``extract_df`` options.

        Returns:
            One row per observable: ``IoCType``, ``Observable``, ``SourceIndex``.
        """
        module = importlib.import_module("processors.iocextract")
        result: pl.DataFrame = module.IoCExtract().extract_df(_as_polars(self._df), columns=columns, **kwargs)
        return result


@pl.api.register_dataframe_namespace("mp_b64")
class B64ExtractAccessor:
    """DataFrame extension ``df.mp_b64``: base64 decoding and unpacking.

    Args:
        pandas_obj: the DataFrame (polars, or pandas via :func:`register_pandas_accessors`); the name is
            msticpy's.
    """

    def __init__(self, pandas_obj: Any) -> None:
        self._df = pandas_obj

    def extract(self, column: str, **kwargs: Any) -> pl.DataFrame:
        """Base64-decode the strings of a column (``base64unpack.unpack_df``).

        Args:
            column: the text column to decode.
            **kwargs: ``trace``, ``utf16`` and other ``unpack_df`` options.

        Returns:
            The decoded items with their metadata and ``src_index``.
        """
        module = importlib.import_module("processors.base64unpack")
        result: pl.DataFrame = module.unpack_df(_as_polars(self._df), column=column, **kwargs)
        return result


def register_pandas_accessors() -> bool:
    """Register ``mp_ioc`` and ``mp_b64`` on pandas DataFrames too (if pandas is installed).

    Do not call this in a process that also imports msticpy, which registers accessors of the same
    names.

    Returns:
        True if pandas is available and the accessors are registered.
    """
    try:
        pandas_ext = importlib.import_module("pandas.api.extensions")
    except ImportError:
        return False
    pandas_ext.register_dataframe_accessor("mp_ioc")(IoCExtractAccessor)
    pandas_ext.register_dataframe_accessor("mp_b64")(B64ExtractAccessor)
    return True
