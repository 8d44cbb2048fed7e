"""msticpy's ``tiproviders.ti_provider_base``: the provider engine plus the batch API (polars, pivots).

The engine (result types, sanitising, the async provider ABC) is :mod:`processors.enrich.providers.base`;
this module adds what notebooks use: ``lookup_iocs`` returning polars frames (``Details`` and
``RawResult`` are JSON text there, since a polars column cannot usefully hold a mix of dicts and
strings), ``generate_items`` and the pivot functions.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import polars as pl

from processors.enrich.providers import base
from processors.enrich.providers.base import (
    HASH_TYPES,
    KNOWN_IOC_TYPES,
    LookupResult,
    QueryKey,
    SanitizedObservable,
    TILookupStatus,
    TISeverity,
    entropy,
    get_schema_and_host,
    preprocess_observable,
    resolve_ioc_type,
)
from processors.enrich.sync import run_sync
from processors.errors import ConfigError

__all__ = [
    "HASH_TYPES",
    "KNOWN_IOC_TYPES",
    "LookupResult",
    "QueryKey",
    "SanitizedObservable",
    "TILookupStatus",
    "TIPivotProvider",
    "TIProvider",
    "TISeverity",
    "entropy",
    "generate_items",
    "get_schema_and_host",
    "preprocess_observable",
    "resolve_ioc_type",
    "results_frame",
]

RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "Ioc": pl.String,
    "IocType": pl.String,
    "SafeIoc": pl.String,
    "QuerySubtype": pl.String,
    "Provider": pl.String,
    "Result": pl.Boolean,
    "Severity": pl.String,
    "Details": pl.String,
    "RawResult": pl.String,
    "Reference": pl.String,
    "Status": pl.Int64,
}


def results_frame(results: Iterable[LookupResult]) -> pl.DataFrame:
    """Build the results DataFrame (msticpy's columns) from lookup results."""
    return pl.DataFrame([r.to_row() for r in results], schema=RESULT_SCHEMA)


def generate_items(
    data: Any, obs_col: str | None = None, ioc_type_col: str | None = None
) -> Iterator[tuple[str | None, str | None]]:
    """Generate ``(observable, ioc_type)`` pairs from a DataFrame, a mapping or an iterable.

    Args:
        data: a polars or pandas DataFrame (``obs_col`` required), a mapping of observable → IoC type
            (an empty type is resolved), or an iterable of observables (types resolved).
        obs_col: DataFrame column holding the observables.
        ioc_type_col: DataFrame column holding the IoC types (resolved when omitted).

    Yields:
        ``(observable, ioc_type)``.

    Raises:
        ConfigError: if a DataFrame is passed without ``obs_col``, or a column is missing.
    """
    frame = _as_polars(data)
    if frame is not None:
        if obs_col is None:
            raise ConfigError("obs_col must be given for a DataFrame", key="obs_col")
        for column in (obs_col, ioc_type_col):
            if column is not None and column not in frame.columns:
                raise ConfigError(f"column {column!r} not in the data", key="obs_col")
        types = frame[ioc_type_col].to_list() if ioc_type_col else None
        for index, obs in enumerate(frame[obs_col].to_list()):
            ioc_type = types[index] if types is not None else None
            obs_str = None if obs is None else str(obs)
            yield obs_str, ioc_type or (resolve_ioc_type(obs_str) if obs_str else None)
        return
    if isinstance(data, Mapping):
        for obs, ioc_type in data.items():
            yield obs, ioc_type or resolve_ioc_type(obs)
        return
    if isinstance(data, str):
        data = [data]
    for obs in data:
        yield obs, (resolve_ioc_type(obs) if obs else None)


def _as_polars(data: Any) -> pl.DataFrame | None:
    if isinstance(data, pl.DataFrame):
        return data
    module = type(data).__module__
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        return pl.from_pandas(data)
    return None


class TIPivotProvider(abc.ABC):
    """A provider that can attach its lookups to entity classes (msticpy's pivot functions).

    secstream has no pivot registry: ``register_pivots`` attaches methods directly to
    :mod:`processors.entities` classes, so that ``IpAddress(Address="1.2.3.4").ti_<provider>()`` looks the
    address up. ``pivot_reg`` and ``pivot`` are accepted for msticpy compatibility.
    """

    @abc.abstractmethod
    def register_pivots(self, pivot_reg: Any = None, pivot: Any = None) -> None:
        """Register this provider's lookups as pivot functions on the entity classes.

        Args:
            pivot_reg: msticpy's PivotRegistration (unused by secstream).
            pivot: msticpy's Pivot object (unused by secstream).
        """


# Entity classes and the attribute holding their observable, by IoC type.
_PIVOT_ENTITIES: dict[str, tuple[str, str]] = {
    "ipv4": ("IpAddress", "Address"),
    "ipv6": ("IpAddress", "Address"),
}


class TIProvider(TIPivotProvider, base.TIProvider):
    """Abstract base class of threat-intel providers with msticpy's batch API (see the engine's
    :class:`processors.enrich.providers.base.TIProvider` for the lookups, cache and sync wrapper)."""

    def register_pivots(self, pivot_reg: Any = None, pivot: Any = None) -> None:
        """Attach ``ti_<name>()`` to the entity classes whose observable this provider can look up.

        For example, after ``VirusTotal(...).register_pivots()``, ``IpAddress(Address=ip).ti_virustotal()``
        returns the provider's :class:`LookupResult` for that address.

        Args:
            pivot_reg: msticpy's PivotRegistration (unused by secstream).
            pivot: msticpy's Pivot object (unused by secstream).
        """
        from processors import entities

        provider = self
        for ioc_type, (class_name, attribute) in _PIVOT_ENTITIES.items():
            if ioc_type not in self._supported:
                continue
            entity_class = getattr(entities, class_name)

            def lookup(entity: Any, _attribute: str = attribute) -> LookupResult:
                return provider.lookup_ioc(getattr(entity, _attribute))

            lookup.__doc__ = f"Look this {class_name}'s {attribute} up in {self.name}."
            setattr(entity_class, f"ti_{self.name.lower()}", lookup)

    async def lookup_iocs_async(
        self,
        data: Any,
        obs_col: str | None = None,
        ioc_type_col: str | None = None,
        query_type: str | None = None,
        **kwargs: Any,
    ) -> pl.DataFrame:
        """Look up a collection of observables concurrently.

        Args:
            data: DataFrame, mapping of observable → type, or iterable of observables.
            obs_col: DataFrame column of observables.
            ioc_type_col: DataFrame column of IoC types.
            query_type: the query subtype.
            kwargs: passed to :meth:`lookup_ioc_async`.

        Returns:
            A polars DataFrame with msticpy's result columns, one row per observable.
        """
        items = [(obs, t) for obs, t in generate_items(data, obs_col, ioc_type_col) if obs]
        results = await asyncio.gather(*(self.lookup_ioc_async(obs, t, query_type, **kwargs) for obs, t in items))
        return results_frame(results)

    def lookup_iocs(
        self,
        data: Any,
        obs_col: str | None = None,
        ioc_type_col: str | None = None,
        query_type: str | None = None,
        **kwargs: Any,
    ) -> pl.DataFrame:
        """Look up a collection of observables synchronously (see :meth:`lookup_iocs_async`)."""
        return run_sync(
            self._run_and_release(self.lookup_iocs_async(data, obs_col, ioc_type_col, query_type, **kwargs))
        )
