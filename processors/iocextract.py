"""msticpy's ``iocextract`` module: :class:`IoCExtract` and the ``df.mp_ioc`` DataFrame accessor.

The extraction engine, its rules and its limits are :mod:`processors.ioc.extract` (see its docstring);
this module adds msticpy's string-or-DataFrame API on top of it: a string gives msticpy's
``defaultdict(set)``; a DataFrame gives a frame of the same type (pandas in, pandas out; polars in, polars out).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar

import polars as pl
import structlog

from processors import _frames
from processors.errors import MsticpyException
from processors.ioc.extract import (
    DEFAULT_AMBIGUOUS_TLDS,
    DNS_REGEX,
    EMAIL_REGEX,
    IPV4_REGEX,
    IPV6_REGEX,
    LXPATH_REGEX,
    URL_REGEX,
    WINPATH_REGEX,
    IocExtractor,
    IoCExtractSettings,
    IoCPattern,
    IoCResult,
    IoCType,
    refang,
)

__all__ = [
    "DEFAULT_AMBIGUOUS_TLDS",
    "IoCExtract",
    "IoCExtractAccessor",
    "IoCExtractSettings",
    "IoCPattern",
    "IoCResult",
    "IoCType",
    "refang",
]

_LOG = structlog.get_logger(module=__name__)
_ALLOWED_KWARGS = frozenset({"ioc_types", "include_paths", "ignore_tlds"})


class IoCExtract(IocExtractor):
    """IoC extractor: looks for IoC patterns in a string or in DataFrame columns (msticpy names).

    Args:
        defanged: recognise defanged indicators (``hxxp``, ``[.]``, ``[at]``...). Default True.
        refang: return defanged indicators refanged (default) or exactly as written (False).
        settings: limits and heuristics; see :class:`IoCExtractSettings`.
    """

    # msticpy's pattern constants. These are the patterns secstream scans with (RE2 syntax, matched
    # case-insensitively on UTF-8 bytes by the compiled scanner, then validated in Python: octet ranges,
    # TLDs, hash lengths), so they differ from msticpy's Python patterns, which need look-arounds that
    # linear-time engines do not offer.
    IPV4_REGEX: ClassVar[str] = IPV4_REGEX.decode()
    IPV6_REGEX: ClassVar[str] = IPV6_REGEX.decode()
    DNS_REGEX: ClassVar[str] = DNS_REGEX.decode()
    URL_REGEX: ClassVar[str] = URL_REGEX.decode()
    EMAIL_REGEX: ClassVar[str] = EMAIL_REGEX.decode()
    MD5_REGEX: ClassVar[str] = r"\b[0-9a-f]{32}\b"
    SHA1_REGEX: ClassVar[str] = r"\b[0-9a-f]{40}\b"
    SHA256_REGEX: ClassVar[str] = r"\b[0-9a-f]{64}\b"
    WINPATH_REGEX: ClassVar[str] = WINPATH_REGEX.decode()
    LXPATH_REGEX: ClassVar[str] = LXPATH_REGEX.decode()

    def extract(
        self,
        src: str | None = None,
        data: Any = None,
        columns: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> defaultdict[str, set[str]] | Any:
        """Extract IoCs from a string or from columns of a polars/pandas DataFrame.

        Args:
            src: the text to scan (string mode).
            data: a DataFrame whose ``columns`` are scanned (DataFrame mode).
            columns: the column names to scan in ``data``.
            **kwargs: ``ioc_types`` (list of type names; default all but the path types),
                ``include_paths`` (add windows_path and linux_path; honoured in string mode too,
                unlike msticpy), ``ignore_tlds`` (skip the TLD check; applies to this call only).

        Returns:
            ``defaultdict(set)`` ``{ioc_type: set(observables)}`` for a string (as msticpy: a type that
            was not found indexes to an empty set); for a DataFrame, a frame of the same type (pandas or
            polars) with columns ``IoCType, Observable, SourceIndex, Input``.

        Raises:
            MsticpyException: unknown keyword arguments, or neither ``src`` nor ``data`` and ``columns``.
        """
        unknown = set(kwargs) - _ALLOWED_KWARGS
        if unknown:
            raise MsticpyException(
                f"Unknown keyword argument(s): {sorted(unknown)}; allowed: {sorted(_ALLOWED_KWARGS)}"
            )
        if src is not None and src.strip():
            result = self.extract_text(src, **kwargs)
            if result.truncated:
                _LOG.warning("ioc_input_truncated", input_chars=result.input_chars, scanned=result.scanned_chars)
            found: defaultdict[str, set[str]] = defaultdict(set)
            found.update(result.iocs)
            return found
        if data is None:
            raise MsticpyException("No source data was supplied to extract")
        if columns is None:
            raise MsticpyException("No values were supplied for the columns parameter")
        return self.extract_df(data, columns, **kwargs)

    def extract_df(self, data: Any, columns: str | Sequence[str], **kwargs: Any) -> Any:
        """Extract IoCs from columns of a polars or pandas DataFrame.

        Args:
            data: polars or pandas DataFrame.
            columns: a column name or a list of names to scan.
            **kwargs: ``ioc_types``, ``include_paths``, ``ignore_tlds`` as for :meth:`extract`.

        Returns:
            A frame of the input's type with columns ``IoCType, Observable, SourceIndex, Input``: one
            row per (input row, column, type, observable), in input-row order, then column order, then
            type order, then sorted observables. ``SourceIndex`` is the pandas index label (the row
            number for polars input); a pandas result has a fresh ``RangeIndex``, as msticpy's.

        Raises:
            MsticpyException: unknown keyword arguments or a column that is not in ``data``.
        """
        unknown = set(kwargs) - _ALLOWED_KWARGS
        if unknown:
            raise MsticpyException(
                f"Unknown keyword argument(s): {sorted(unknown)}; allowed: {sorted(_ALLOWED_KWARGS)}"
            )
        cols = [columns] if isinstance(columns, str) else list(columns)
        try:
            frame = _frames.to_polars(data)
        except TypeError as exc:
            raise MsticpyException(f"data must be a polars or pandas DataFrame, not {type(data).__name__}") from exc
        index = _frames.index_labels(data)
        missing = [col for col in cols if col not in frame.columns]
        if missing:
            raise MsticpyException(f"Source column(s) {missing} not found in the supplied DataFrame")
        types = self._select_types(kwargs.get("ioc_types"), bool(kwargs.get("include_paths", False)))
        ignore_tlds = bool(kwargs.get("ignore_tlds", False))
        out_type: list[str] = []
        out_obs: list[str] = []
        out_idx: list[Any] = []
        out_input: list[str] = []
        order = {name: pos for pos, name in enumerate(self._patterns)}
        col_values = [frame.get_column(col).to_list() for col in cols]
        for row in range(frame.height):
            for values in col_values:
                value = values[row]
                if value is None:
                    continue
                text = value if isinstance(value, str) else str(value)
                if not text.strip():
                    continue
                iocs = self._extract_types(text, types, ignore_tlds).iocs
                for ioc_type in sorted(iocs, key=lambda name: order.get(name, len(order))):
                    for observable in sorted(iocs[ioc_type]):
                        out_type.append(ioc_type)
                        out_obs.append(observable)
                        out_idx.append(index[row])
                        out_input.append(text)
        labels = list(out_idx)
        idx_dtype: Any = pl.Int64 if all(isinstance(val, int) for val in index) else pl.String
        if idx_dtype is pl.String:
            out_idx = [str(val) for val in out_idx]
        found = pl.DataFrame(
            {"IoCType": out_type, "Observable": out_obs, "SourceIndex": out_idx, "Input": out_input},
            schema={"IoCType": pl.String, "Observable": pl.String, "SourceIndex": idx_dtype, "Input": pl.String},
        )
        if not _frames.is_pandas(data):
            return found
        out = _frames.to_pandas(found)
        out["SourceIndex"] = labels  # the input's own labels, whatever their type
        return out


@pl.api.register_dataframe_namespace("mp_ioc")
class IoCExtractAccessor:
    """DataFrame extension ``df.mp_ioc``: IoC extraction.

    Args:
        pandas_obj: the DataFrame (polars, or pandas via :func:`register_pandas_accessors`); the name is
            msticpy's.
    """

    def __init__(self, pandas_obj: Any) -> None:
        self._df = pandas_obj

    def extract(self, columns: Any, **kwargs: Any) -> Any:
        """Extract IoCs from the given columns (``IoCExtract().extract_df``; a frame of the input's type).

        Args:
            columns: a column name or a list of column names to search.
            **kwargs: ``ioc_types``, ``include_paths``, ``ignore_tlds`` and other ``extract_df`` options.

        Returns:
            One row per observable: ``IoCType``, ``Observable``, ``SourceIndex``.
        """
        return IoCExtract().extract_df(self._df, columns=columns, **kwargs)
