"""TILookup: look observables up in several threat-intel providers (msticpy's API, asynchronous core).

Differences from msticpy 1.5 (deliberate):

* Providers are not read from ``msticpyconfig.yaml``: pass provider instances
  (``primary_providers``/``secondary_providers``), or name built-in providers in ``providers`` and give
  their credentials in the environment (``SECSTREAM_TI_<NAME>_AUTHKEY``/``_APIID``; the local blocklist
  reads ``SECSTREAM_TI_LOCALBLOCKLIST_PATH``). Providers whose credentials are missing are not loaded.
* ``enable_provider`` only enables the named providers (msticpy also tried to disable the others while
  iterating the same dict).
* ``lookup_iocs`` returns an empty DataFrame with the result columns when nothing matched (msticpy
  raised ``ValueError`` from ``pd.concat([])``); results are polars DataFrames.
* Every lookup runs concurrently on the asyncio loop (``*_async`` variants), with each provider's
  cache, rate limits and retries; the plain methods are synchronous wrappers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import polars as pl

from processors.enrich.sync import run_sync
from processors.errors import ConfigError, MsticpyException
from processors.ti_browser import TIResultsBrowser
from processors.tiproviders import PROVIDERS
from processors.tiproviders.local_blocklist import LocalBlocklist
from processors.tiproviders.ti_provider_base import (
    LookupResult,
    TILookupStatus,
    TIProvider,
    generate_items,
    resolve_ioc_type,
    results_frame,
)

__all__ = ["TILookup"]

T = TypeVar("T")


class TILookup:
    """Threat Intel observable lookup from providers.

    Args:
        primary_providers: provider instances used by default.
        secondary_providers: provider instances used only when asked for (``prov_scope`` "secondary"/"all").
        providers: names of built-in providers to load (see :attr:`available_providers`); ignored when
            provider instances are given.
    """

    def __init__(
        self,
        primary_providers: list[TIProvider] | None = None,
        secondary_providers: list[TIProvider] | None = None,
        providers: list[str] | None = None,
    ) -> None:
        self._providers: dict[str, TIProvider] = {}
        self._secondary_providers: dict[str, TIProvider] = {}
        self._explicit = bool(primary_providers or secondary_providers)
        self._builtin_names = providers
        if self._explicit:
            for prov in primary_providers or []:
                self.add_provider(prov, primary=True)
            for prov in secondary_providers or []:
                self.add_provider(prov, primary=False)
        else:
            self._load_builtin(providers)

    def _load_builtin(self, names: list[str] | None) -> None:
        wanted = names if names is not None else list(PROVIDERS)
        for name in wanted:
            if name not in PROVIDERS:
                raise ValueError(f"Unknown provider {name!r}; available: {', '.join(PROVIDERS)}")
            cls = PROVIDERS[name]
            if name == "LocalBlocklist":
                path = os.environ.get("SECSTREAM_TI_LOCALBLOCKLIST_PATH")
                if path:
                    self.add_provider(LocalBlocklist(path), name=name)
                continue
            try:
                self.add_provider(cls(), name=name)
            except ConfigError:
                continue  # credentials not configured

    # -- provider management ---------------------------------------------------------------------
    @property
    def available_providers(self) -> list[str]:
        """The names of the built-in providers."""
        return list(PROVIDERS)

    @classmethod
    def list_available_providers(cls, show_query_types: bool = False, as_list: bool = False) -> list[str] | None:
        """Return the built-in provider names (with their query keys if ``show_query_types``).

        Args:
            show_query_types: include each provider's usage text.
            as_list: kept for msticpy compatibility (the list is always returned).
        """
        if show_query_types:
            return [PROVIDERS[n].usage() for n in PROVIDERS]
        return list(PROVIDERS)

    @property
    def loaded_providers(self) -> dict[str, TIProvider]:
        """All loaded providers (primary and secondary) by name."""
        return {**self._secondary_providers, **self._providers}

    @property
    def primary_providers(self) -> dict[str, TIProvider]:
        """The primary (enabled) providers by name."""
        return dict(self._providers)

    @property
    def configured_providers(self) -> list[str]:
        """Names of the loaded providers."""
        return list(self.loaded_providers)

    @property
    def provider_status(self) -> list[str]:
        """One line per loaded provider: name, scope and class description."""
        lines = []
        for name, prov in self.loaded_providers.items():
            scope = "Primary" if name in self._providers else "Secondary"
            doc = (type(prov).__doc__ or "").strip().splitlines()[0] if type(prov).__doc__ else ""
            lines.append(f"{name} - {doc} ({scope})")
        return lines

    def provider_usage(self) -> list[str]:
        """Return the usage text of each loaded provider."""
        return [prov.usage() for prov in self.loaded_providers.values()]

    def add_provider(self, provider: TIProvider, name: str | None = None, primary: bool = True) -> None:
        """Add a TI provider.

        Args:
            provider: provider instance.
            name: name to use (default: the provider's name).
            primary: add as primary (used by default) or secondary.
        """
        name = name or provider.name
        self._providers.pop(name, None)
        self._secondary_providers.pop(name, None)
        (self._providers if primary else self._secondary_providers)[name] = provider

    def _names(self, providers: str | Iterable[str]) -> list[str]:
        names = [providers] if isinstance(providers, str) else list(providers)
        for name in names:
            if name not in self.loaded_providers:
                raise ValueError(f"Unknown provider {name!r}; loaded: {', '.join(self.loaded_providers)}")
        return names

    def enable_provider(self, providers: str | Iterable[str]) -> None:
        """Set the provider(s) as primary (used by default).

        Raises:
            ValueError: if a provider name is not loaded.
        """
        for name in self._names(providers):
            if name in self._secondary_providers:
                self._providers[name] = self._secondary_providers.pop(name)

    def disable_provider(self, providers: str | Iterable[str]) -> None:
        """Set the provider(s) as secondary (not used by default).

        Raises:
            ValueError: if a provider name is not loaded.
        """
        for name in self._names(providers):
            if name in self._providers:
                self._secondary_providers[name] = self._providers.pop(name)

    def set_provider_state(self, prov_dict: Mapping[str, bool]) -> None:
        """Enable (True) or disable (False) providers by name."""
        for name, enabled in prov_dict.items():
            (self.enable_provider if enabled else self.disable_provider)(name)

    def _select(self, providers: list[str] | None, prov_scope: str) -> dict[str, TIProvider]:
        if providers:
            selected = {n: self.loaded_providers[n] for n in self._names(providers)}
        elif prov_scope == "all":
            selected = self.loaded_providers
        elif prov_scope == "secondary":
            selected = dict(self._secondary_providers)
        else:
            selected = dict(self._providers)
        if not selected:
            raise MsticpyException("No TI providers are loaded or selected (see TILookup.available_providers).")
        return selected

    # -- lookups ---------------------------------------------------------------------------------
    async def lookup_ioc_async(
        self,
        observable: str | None = None,
        ioc_type: str | None = None,
        ioc_query_type: str | None = None,
        providers: list[str] | None = None,
        prov_scope: str = "primary",
        **kwargs: Any,
    ) -> tuple[bool, list[tuple[str, LookupResult]]]:
        """Look one observable up in the selected providers concurrently.

        Args:
            observable: the IoC (``ioc`` is an alias).
            ioc_type: its IoC type (inferred when omitted).
            ioc_query_type: the query subtype.
            providers: explicit provider names.
            prov_scope: ``"primary"``, ``"secondary"`` or ``"all"``.
            kwargs: passed to the providers.

        Returns:
            ``(any provider found it, [(provider name, result), ...])``.

        Raises:
            ValueError: if no observable is given.
            MsticpyException: if no provider is selected.
        """
        observable = observable or kwargs.pop("ioc", None)
        if not observable:
            raise ValueError("observable must be given")
        selected = self._select(providers, prov_scope)
        ioc_type = ioc_type or resolve_ioc_type(observable)
        results = await asyncio.gather(
            *(prov.lookup_ioc_async(observable, ioc_type, ioc_query_type, **kwargs) for prov in selected.values())
        )
        for name, result in zip(selected, results, strict=True):
            result.provider = name
        pairs = list(zip(selected, results, strict=True))
        return any(r.result for r in results), pairs

    def lookup_ioc(
        self,
        observable: str | None = None,
        ioc_type: str | None = None,
        ioc_query_type: str | None = None,
        providers: list[str] | None = None,
        prov_scope: str = "primary",
        **kwargs: Any,
    ) -> tuple[bool, list[tuple[str, LookupResult]]]:
        """Look one observable up (synchronous wrapper of :meth:`lookup_ioc_async`)."""
        coro = self.lookup_ioc_async(observable, ioc_type, ioc_query_type, providers, prov_scope, **kwargs)
        return run_sync(self._run_and_release(coro))

    async def lookup_iocs_async(
        self,
        data: Any,
        obs_col: str | None = None,
        ioc_type_col: str | None = None,
        ioc_query_type: str | None = None,
        providers: list[str] | None = None,
        prov_scope: str = "primary",
        show_not_supported: bool = False,
        show_bad_ioc: bool = False,
        **kwargs: Any,
    ) -> pl.DataFrame:
        """Look a collection of observables up in every selected provider concurrently.

        Args:
            data: DataFrame (with ``obs_col``), mapping observable → type, or iterable of observables.
            obs_col: DataFrame column of observables (aliases ``col``, ``column``).
            ioc_type_col: DataFrame column of IoC types.
            ioc_query_type: the query subtype.
            providers: explicit provider names.
            prov_scope: ``"primary"``, ``"secondary"`` or ``"all"``.
            show_not_supported: keep rows of types a provider does not support.
            show_bad_ioc: keep rows of observables that failed sanitising.
            kwargs: passed to the providers.

        Returns:
            A polars DataFrame with msticpy's result columns (``Provider`` = registered name).
        """
        obs_col = obs_col or kwargs.pop("col", None) or kwargs.pop("column", None)
        selected = self._select(providers, prov_scope)
        items = [(obs, t) for obs, t in generate_items(data, obs_col, ioc_type_col) if obs]
        coros = []
        names = []
        for name, prov in selected.items():
            for obs, ioc_type in items:
                coros.append(prov.lookup_ioc_async(obs, ioc_type, ioc_query_type, **kwargs))
                names.append(name)
        results = await asyncio.gather(*coros)
        kept = []
        for name, result in zip(names, results, strict=True):
            result.provider = name
            if result.status == TILookupStatus.not_supported.value and not show_not_supported:
                continue
            if result.status == TILookupStatus.bad_format.value and not show_bad_ioc:
                continue
            kept.append(result)
        return results_frame(kept)

    def lookup_iocs(
        self,
        data: Any,
        obs_col: str | None = None,
        ioc_type_col: str | None = None,
        ioc_query_type: str | None = None,
        providers: list[str] | None = None,
        prov_scope: str = "primary",
        **kwargs: Any,
    ) -> pl.DataFrame:
        """Look a collection of observables up (synchronous wrapper of :meth:`lookup_iocs_async`)."""
        coro = self.lookup_iocs_async(data, obs_col, ioc_type_col, ioc_query_type, providers, prov_scope, **kwargs)
        return run_sync(self._run_and_release(coro))

    @staticmethod
    def result_to_df(ioc_lookup: tuple[bool, list[tuple[str, LookupResult]]]) -> pl.DataFrame:
        """Return the output of :meth:`lookup_ioc` as a DataFrame, one row per provider (no ``SafeIoc``).

        Args:
            ioc_lookup: ``(found, [(provider name, result), ...])``.
        """
        rows = []
        for name, result in ioc_lookup[1]:
            result.provider = name
            rows.append(result)
        return results_frame(rows).drop("SafeIoc")

    @staticmethod
    def browse(data: Any, severities: list[str] | None = None, **kwargs: Any) -> TIResultsBrowser:
        """Return a browser of TI results (HTML in notebooks, a rich table in terminals).

        Args:
            data: results from :meth:`lookup_iocs` (polars or pandas).
            severities: severities to show, by default ``["warning", "high"]``.
            kwargs: accepted for msticpy compatibility (its widget options).
        """
        del kwargs
        return TIResultsBrowser(data, severities)

    browse_results = browse

    @classmethod
    def reload_provider_settings(cls) -> dict[str, bool]:
        """Re-read provider credentials from the environment.

        secstream keeps no settings cache: providers read ``SECSTREAM_TI_<NAME>_AUTHKEY``/``_APIID`` when they
        are built. This returns, per built-in provider, whether its credentials are present now.
        """
        status = {}
        for name in PROVIDERS:
            env = "LOCALBLOCKLIST_PATH" if name == "LocalBlocklist" else f"{name.upper()}_AUTHKEY"
            status[name] = bool(os.environ.get(f"SECSTREAM_TI_{env}"))
        return status

    def reload_providers(self) -> None:
        """Rebuild the built-in providers from the current environment (providers given as instances stay)."""
        if self._explicit:
            return
        self._providers.clear()
        self._secondary_providers.clear()
        self._load_builtin(self._builtin_names)

    async def close(self) -> None:
        """Release every provider's network resources."""
        await asyncio.gather(*(prov.close() for prov in self.loaded_providers.values()))

    async def _run_and_release(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return await coro
        finally:
            await self.close()
