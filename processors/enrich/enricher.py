"""The stream enrichment stage: GeoIP and threat-intel lookups that never hold the pipeline up.

For each batch of ECS documents the :class:`Enricher` collects the observables (``source.ip``,
``destination.ip`` and the ``secstream.iocs`` lists), deduplicates them across the batch and looks them
up in every selected provider concurrently, served from each provider's cache first. It waits at most
``max_wait_s`` for the whole batch: a lookup still running is recorded as ``pending`` and keeps running
in the background so that its answer warms the cache for later events. No event is ever dropped, every
provider's outcome is recorded in ``threat.enrichments`` and nothing logs a credential.

Enrichment statuses: ``hit`` (the provider knows the indicator, severity warning or high), ``miss`` (no
record, or a benign record), ``pending`` (still in flight when the batch was emitted), ``failed``
(timeout, 5xx, bad answer), ``rate_limited`` (rate limit, daily quota or HTTP 429; the provider's
limiter refuses at once unless ``rate_limit_wait_s`` allows a wait) and ``skipped`` (the observable is
not sent to that provider, e.g. a private address to a public service).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from processors.tiproviders.ti_provider_base import LookupResult, TILookupStatus, TIProvider, TISeverity

if TYPE_CHECKING:
    from processors.geoip import GeoLiteLookup
    from processors.tilookup import TILookup

__all__ = ["ENRICHMENT_STATUSES", "Enricher", "EnricherSettings"]

_log = structlog.get_logger(module=__name__)

ENRICHMENT_STATUSES = ("hit", "miss", "pending", "failed", "rate_limited", "skipped")
_IOC_TYPES = ("ipv4", "ipv6", "dns", "url", "md5_hash", "sha1_hash", "sha256_hash")


@dataclass(frozen=True, slots=True)
class EnricherSettings:
    """Settings of the enrichment stage.

    Args:
        max_wait_s: the longest a batch waits for its lookups; the rest are recorded ``pending``.
        rate_limit_wait_s: the longest a lookup may wait for its provider's rate limiter (0: a lookup that
            finds no token is ``rate_limited`` at once and retried by a later event).
        providers: TI provider names to use (None: the TILookup's primary providers).
        ioc_types: the ``secstream.iocs`` types looked up.
        geo_fields: the ECS objects whose ``ip`` gets ``geo``/``as``.
        record_skipped: record ``skipped`` entries for observables a provider rejects (private
            addresses, malformed values).
        max_background: lookups allowed to run in the background; beyond it new remote lookups are
            recorded ``rate_limited`` (back-pressure).
        max_observables_per_event: observables taken from one event (the rest are ignored).
    """

    max_wait_s: float = 2.0
    rate_limit_wait_s: float = 0.0
    providers: tuple[str, ...] | None = None
    ioc_types: tuple[str, ...] = _IOC_TYPES
    geo_fields: tuple[str, ...] = ("source", "destination")
    record_skipped: bool = True
    max_background: int = 10_000
    max_observables_per_event: int = 50


Observable = tuple[str, str]  # (ioc_type, value)


@functools.lru_cache(maxsize=65536)
def _ip_type(value: str) -> str | None:
    try:
        return "ipv4" if ipaddress.ip_address(value).version == 4 else "ipv6"
    except ValueError:
        return None


class _Pending:
    """Marker for a lookup still in flight when the batch was emitted."""


_PENDING = _Pending()


class Enricher:
    """Asynchronous GeoIP and threat-intel enrichment of ECS documents.

    Args:
        settings: stage settings.
        geoip: a GeoLite2 lookup (None: no ``geo``).
        ti: a TILookup with the providers (None: no ``threat.enrichments``).
    """

    def __init__(self, settings: EnricherSettings, *, geoip: GeoLiteLookup | None, ti: TILookup | None) -> None:
        self.settings = settings
        self._geoip = geoip
        self._ti = ti
        self._background: set[asyncio.Task[LookupResult]] = set()
        self._counters: dict[str, int] = {
            "batches": 0,
            "events": 0,
            "observables": 0,
            "lookups": 0,
            "cache_hits": 0,
            "cache_misses": 0,
            "pending": 0,
            "background_completed": 0,
            "background_failed": 0,
            "geo_lookups": 0,
            "geo_located": 0,
        }
        self._per_provider: dict[str, dict[str, int]] = {}

    # -- stats -----------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """Counters: batches, events, lookups, cache hits/misses and per-provider outcomes (plain data)."""
        lookups = self._counters["cache_hits"] + self._counters["cache_misses"]
        return {
            **self._counters,
            "cache_hit_ratio": (self._counters["cache_hits"] / lookups) if lookups else 0.0,
            "background_in_flight": len(self._background),
            "rate_limited": sum(p["rate_limited"] for p in self._per_provider.values()),
            "failures": sum(p["failed"] for p in self._per_provider.values()),
            "providers": {name: dict(counts) for name, counts in self._per_provider.items()},
        }

    def _count(self, provider: str, key: str) -> None:
        counts = self._per_provider.get(provider)
        if counts is None:
            counts = dict.fromkeys((*ENRICHMENT_STATUSES, "cache_hits", "cache_misses"), 0)
            self._per_provider[provider] = counts
        counts[key] += 1

    # -- observables -----------------------------------------------------------------------------
    def _observables(self, doc: dict[str, Any]) -> list[Observable]:
        found: dict[Observable, None] = {}
        for name in self.settings.geo_fields:
            obj = doc.get(name)
            if isinstance(obj, dict) and isinstance(obj.get("ip"), str):
                kind = _ip_type(obj["ip"])
                if kind:
                    found[(kind, obj["ip"])] = None
        iocs = (doc.get("secstream") or {}).get("iocs") if isinstance(doc.get("secstream"), dict) else None
        if isinstance(iocs, dict):
            for ioc_type in self.settings.ioc_types:
                values = iocs.get(ioc_type)
                if isinstance(values, list):
                    for value in values:
                        if isinstance(value, str) and value:
                            found[(ioc_type, value)] = None
        return list(found)[: self.settings.max_observables_per_event]

    # -- enrichment ------------------------------------------------------------------------------
    def _providers(self) -> dict[str, TIProvider]:
        if self._ti is None:
            return {}
        loaded = self._ti.loaded_providers
        if self.settings.providers is not None:
            return {n: loaded[n] for n in self.settings.providers if n in loaded}
        return self._ti.primary_providers

    async def enrich(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Enrich a batch of documents; returns new documents (the inputs are not modified), same order.

        Args:
            docs: ECS event documents.

        Returns:
            The documents with ``source.geo``/``destination.geo`` (and ``as``) and ``threat.enrichments``.
        """
        self._counters["batches"] += 1
        self._counters["events"] += len(docs)
        per_doc = [self._observables(doc) for doc in docs]
        unique: dict[Observable, None] = {}
        for observables in per_doc:
            unique.update(dict.fromkeys(observables))
        self._counters["observables"] += len(unique)
        providers = self._providers()
        answers: dict[tuple[str, Observable], LookupResult | _Pending | BaseException] = {}
        tasks: dict[asyncio.Task[LookupResult], tuple[str, Observable]] = {}
        for name, prov in providers.items():
            local = getattr(prov, "is_local", False)
            for obs in unique:
                ioc_type, value = obs
                if not prov.is_supported_type(ioc_type):
                    continue
                self._counters["lookups"] += 1
                cached = prov.cached_result(value, ioc_type)
                if local and cached is not None:
                    answers[(name, obs)] = cached
                    continue
                if cached is not None:
                    self._counters["cache_hits"] += 1
                    self._count(name, "cache_hits")
                    answers[(name, obs)] = cached
                    continue
                self._counters["cache_misses"] += 1
                self._count(name, "cache_misses")
                if len(self._background) + len(tasks) >= self.settings.max_background:
                    answers[(name, obs)] = _backlog_full(prov, value, ioc_type)
                    continue
                task = asyncio.ensure_future(
                    prov.lookup_ioc_async(
                        value, ioc_type, rate_limit_wait_s=self.settings.rate_limit_wait_s, cache_checked=True
                    )
                )
                tasks[task] = (name, obs)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.settings.max_wait_s)
            for task in done:
                exc = task.exception()
                answers[tasks[task]] = exc if exc is not None else task.result()
                if exc is not None:
                    _log.error("enrichment_lookup_error", provider=tasks[task][0], error=type(exc).__name__)
            for task in pending:
                answers[tasks[task]] = _PENDING
                self._counters["pending"] += 1
                self._background.add(task)
                task.add_done_callback(self._on_background_done)
        entries: dict[tuple[str, Observable], dict[str, Any] | None] = {
            key: self._entry(key[0], key[1], answer) for key, answer in answers.items()
        }
        return [
            self._apply(doc, observables, providers, entries) for doc, observables in zip(docs, per_doc, strict=True)
        ]

    def _on_background_done(self, task: asyncio.Task[LookupResult]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._counters["background_failed"] += 1
        else:
            self._counters["background_completed"] += 1

    def _apply(
        self,
        doc: dict[str, Any],
        observables: list[Observable],
        providers: dict[str, TIProvider],
        batch_entries: dict[tuple[str, Observable], dict[str, Any] | None],
    ) -> dict[str, Any]:
        new = dict(doc)
        if self._geoip is not None:
            for name in self.settings.geo_fields:
                obj = doc.get(name)
                if isinstance(obj, dict) and isinstance(obj.get("ip"), str) and _ip_type(obj["ip"]):
                    self._counters["geo_lookups"] += 1
                    geo, as_obj = self._geoip.ecs_geo(obj["ip"])
                    if geo is None and as_obj is None:
                        continue
                    self._counters["geo_located"] += 1
                    updated = dict(obj)
                    if geo is not None:
                        updated["geo"] = geo
                    if as_obj is not None:
                        updated["as"] = as_obj
                    new[name] = updated
        entries = []
        for obs in observables:
            for name in providers:
                entry = batch_entries.get((name, obs))
                if entry is not None:
                    entries.append(_copy_entry(entry))
        if entries:
            threat = dict(doc.get("threat") or {})
            threat["enrichments"] = [*(threat.get("enrichments") or []), *entries]
            new["threat"] = threat
        return new

    def _entry(
        self, provider: str, obs: Observable, answer: LookupResult | _Pending | BaseException
    ) -> dict[str, Any] | None:
        entry: dict[str, Any] = {"provider": provider, "indicator": {"type": obs[0], "value": obs[1]}}
        if isinstance(answer, _Pending):
            status, severity = "pending", "unknown"
        elif isinstance(answer, BaseException):
            status, severity = "failed", "unknown"
            entry["reason"] = type(answer).__name__
        else:
            found_status, severity = _status_of(answer)
            if found_status is None:
                return None
            status = found_status
            if status == "skipped" and not self.settings.record_skipped:
                return None
            if status == "hit" and isinstance(answer.details, dict):
                entry["matched"] = {**answer.details, **({"reference": answer.reference} if answer.reference else {})}
            elif status in ("failed", "rate_limited", "skipped"):
                entry["reason"] = _reason(answer)
        entry["status"] = status
        entry["severity"] = severity
        self._count(provider, status)
        return entry

    async def close(self) -> None:
        """Cancel the background lookups and close the providers' HTTP sessions."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        if self._ti is not None:
            for prov in self._ti.loaded_providers.values():
                await prov.cache.cancel_in_flight()
            await self._ti.close()

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for the background lookups to finish (tests, shutdown).

        Args:
            timeout_s: the longest to wait.

        Returns:
            The number of lookups still running.
        """
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)
        return len(self._background)


def _copy_entry(entry: dict[str, Any]) -> dict[str, Any]:
    copy = dict(entry)
    copy["indicator"] = dict(entry["indicator"])
    if "matched" in entry:
        copy["matched"] = dict(entry["matched"])
    return copy


def _status_of(result: LookupResult) -> tuple[str | None, str]:
    severity = TISeverity.parse(result.severity)
    if result.status == TILookupStatus.not_supported.value:
        return None, severity.name
    if result.status == TILookupStatus.bad_format.value:
        return "skipped", "unknown"
    if result.status != TILookupStatus.ok.value:
        details = result.details if isinstance(result.details, dict) else {}
        return ("rate_limited" if details.get("error") == "rate_limited" else "failed"), "unknown"
    if result.result and severity.value >= TISeverity.warning.value:
        return "hit", severity.name
    return "miss", severity.name


def _reason(result: LookupResult) -> str:
    if isinstance(result.details, dict):
        return str(result.details.get("message") or result.details.get("error") or "")
    return str(result.details or "")


def _backlog_full(prov: TIProvider, value: str, ioc_type: str) -> LookupResult:
    return LookupResult(
        ioc=value,
        ioc_type=ioc_type,
        provider=prov.name,
        status=TILookupStatus.query_failed.value,
        details={"error": "rate_limited", "message": "background lookup backlog is full"},
    )
