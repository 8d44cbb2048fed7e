"""The stream enrichment stage: GeoIP and threat-intel lookups that never hold the pipeline up.

For each batch of ECS documents the :class:`Enricher` collects the observables (``source.ip``,
``destination.ip`` and the ``secstream.iocs`` lists), deduplicates them across the batch and looks them
up in every selected provider concurrently, served from each provider's cache first. It waits at most
``max_wait_s`` for the whole batch: a lookup still running is ``pending`` and keeps running in the
background so that its answer warms the cache for later events. No event is ever dropped and nothing
logs a credential.

Only matches are written into documents, in ECS's fields: one ``threat.enrichments`` entry per
(provider, observable) hit, with ``indicator.type`` in ECS's values (``ipv4-addr``, ``ipv6-addr``,
``domain-name``, ``url``, ``file``), ``indicator.provider``, ``indicator.confidence``, the indicator's
value in its ECS field, ``first_seen``/``last_seen`` as ISO dates when the provider gives them, and
``matched.atomic``/``field``/``type``. The provider's details (status, severity and its size-capped,
already redacted detail) are under ``secstream.enrichment.matches`` in the same order, and lookups that
could not answer for the event are listed in ``secstream.enrichment.incomplete``. Every outcome, misses
included, is counted in :attr:`Enricher.outcomes`.

Enrichment statuses: ``hit`` (the provider knows the indicator, severity warning or high), ``miss`` (no
record, or a benign record), ``pending`` (still in flight when the batch was emitted), ``failed``
(timeout, 5xx, bad or oversized answer), ``rate_limited`` (rate limit, daily quota, HTTP 429 or a
provider paused by ``Retry-After``; the provider's limiter refuses at once unless ``rate_limit_wait_s``
allows a wait) and ``skipped`` (the observable is not sent to that provider, e.g. a private address to a
public service).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from processors.enrich.providers.base import LookupResult, TILookupStatus, TIProvider, TISeverity

if TYPE_CHECKING:
    from processors.enrich.geoip import GeoLiteReader

__all__ = ["ECS_INDICATOR_TYPES", "ENRICHMENT_STATUSES", "Enricher", "EnricherSettings"]

_log = structlog.get_logger(module=__name__)

ENRICHMENT_STATUSES = ("hit", "miss", "pending", "failed", "rate_limited", "skipped")
_IOC_TYPES = ("ipv4", "ipv6", "dns", "url", "md5_hash", "sha1_hash", "sha256_hash")
#: Our IoC types → ECS ``threat.enrichments.indicator.type`` (STIX 2 cyber observable names).
ECS_INDICATOR_TYPES = {
    "ipv4": "ipv4-addr",
    "ipv6": "ipv6-addr",
    "dns": "domain-name",
    "hostname": "domain-name",
    "url": "url",
    "md5_hash": "file",
    "sha1_hash": "file",
    "sha256_hash": "file",
    "file_hash": "file",
}
_HASH_FIELDS = {"md5_hash": "md5", "sha1_hash": "sha1", "sha256_hash": "sha256"}
#: Severity → ECS ``indicator.confidence`` (one of ECS's allowed values).
_CONFIDENCE = {"high": "High", "warning": "Medium", "information": "Low"}
#: ECS ``matched.type``: the event was enriched because an indicator matched one of its fields.
_MATCH_TYPE = "indicator_match_rule"
_INCOMPLETE = ("pending", "failed", "rate_limited")
_SEEN_KEYS = {"first_seen": ("first_seen", "First Seen"), "last_seen": ("last_seen", "Last Seen")}


@dataclass(frozen=True, slots=True)
class EnricherSettings:
    """Settings of the enrichment stage.

    Args:
        max_wait_s: the longest a batch waits for its lookups; the rest are ``pending``.
        rate_limit_wait_s: the longest a lookup may wait for its provider's rate limiter (0: a lookup that
            finds no token is ``rate_limited`` at once and retried by a later event).
        providers: TI provider names to use (None: all the providers given to the stage).
        ioc_types: the ``secstream.iocs`` types looked up.
        geo_fields: the ECS objects whose ``ip`` gets ``geo``/``as``.
        max_background: lookups allowed to run in the background; beyond it new remote lookups are
            ``rate_limited`` (back-pressure).
        max_observables_per_event: observables taken from one event (the rest are ignored).
        max_detail_bytes: the largest provider detail (as JSON) copied into one match; strings in it are
            cut at ``max_detail_string``, and a detail still larger is replaced by its size.
        max_detail_string: the longest string copied from a provider detail.
    """

    max_wait_s: float = 2.0
    rate_limit_wait_s: float = 0.0
    providers: tuple[str, ...] | None = None
    ioc_types: tuple[str, ...] = _IOC_TYPES
    geo_fields: tuple[str, ...] = ("source", "destination")
    max_background: int = 10_000
    max_observables_per_event: int = 50
    max_detail_bytes: int = 4096
    max_detail_string: int = 512


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


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one provider said about one observable in this batch; for a hit, its ECS enrichment (without
    ``matched.field``, which depends on the document) and its detail, built once and copied per document."""

    status: str
    severity: str
    enrichment: dict[str, Any] | None = None
    match: dict[str, Any] | None = None


class Enricher:
    """Asynchronous GeoIP and threat-intel enrichment of ECS documents.

    Args:
        settings: stage settings.
        providers: the threat-intel providers, in the order their matches are written.
        geoip: a GeoLite2 reader (None: no ``geo``).
    """

    def __init__(
        self,
        settings: EnricherSettings,
        *,
        providers: Sequence[TIProvider] = (),
        geoip: GeoLiteReader | None = None,
    ) -> None:
        self.settings = settings
        self._geoip = geoip
        wanted = settings.providers
        self._providers: dict[str, TIProvider] = {p.name: p for p in providers if wanted is None or p.name in wanted}
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
            "details_truncated": 0,
        }
        self._per_provider: dict[str, dict[str, int]] = {}
        #: Outcomes per event occurrence, keyed ``"<provider>:<status>"`` (misses included).
        self.outcomes: Counter[str] = Counter()

    @property
    def providers(self) -> dict[str, TIProvider]:
        """The providers this stage queries, by name."""
        return dict(self._providers)

    # -- stats -----------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        """Counters: batches, events, lookups, cache hits/misses, per-provider outcomes and each provider
        client's own counters (requests, retries, breaker, lookups deferred by ``Retry-After``, oversized
        answers, refused redirects), as plain data."""
        lookups = self._counters["cache_hits"] + self._counters["cache_misses"]
        return {
            **self._counters,
            "cache_hit_ratio": (self._counters["cache_hits"] / lookups) if lookups else 0.0,
            "background_in_flight": len(self._background),
            "rate_limited": sum(p["rate_limited"] for p in self._per_provider.values()),
            "failures": sum(p["failed"] for p in self._per_provider.values()),
            "providers": {name: dict(counts) for name, counts in self._per_provider.items()},
            "clients": {name: prov.stats() for name, prov in self._providers.items()},
        }

    def _count(self, provider: str, key: str) -> None:
        counts = self._per_provider.get(provider)
        if counts is None:
            counts = dict.fromkeys((*ENRICHMENT_STATUSES, "cache_hits", "cache_misses"), 0)
            self._per_provider[provider] = counts
        counts[key] += 1

    # -- observables -----------------------------------------------------------------------------
    def _observables(self, doc: dict[str, Any]) -> dict[Observable, str]:
        """The document's observables, each with the field it was found in (first field wins)."""
        found: dict[Observable, str] = {}
        for name in self.settings.geo_fields:
            obj = doc.get(name)
            if isinstance(obj, dict) and isinstance(obj.get("ip"), str):
                kind = _ip_type(obj["ip"])
                if kind:
                    found.setdefault((kind, obj["ip"]), f"{name}.ip")
        iocs = (doc.get("secstream") or {}).get("iocs") if isinstance(doc.get("secstream"), dict) else None
        if isinstance(iocs, dict):
            for ioc_type in self.settings.ioc_types:
                values = iocs.get(ioc_type)
                if isinstance(values, list):
                    for value in values:
                        if isinstance(value, str) and value:
                            found.setdefault((ioc_type, value), f"secstream.iocs.{ioc_type}")
        if len(found) > self.settings.max_observables_per_event:
            return dict(list(found.items())[: self.settings.max_observables_per_event])
        return found

    # -- enrichment ------------------------------------------------------------------------------
    async def enrich(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Enrich a batch of documents; returns new documents (the inputs are not modified), same order.

        Args:
            docs: ECS event documents.

        Returns:
            The documents with ``source.geo``/``destination.geo`` (and ``as``), ``threat.enrichments`` for
            matches and ``secstream.enrichment``.
        """
        self._counters["batches"] += 1
        self._counters["events"] += len(docs)
        per_doc = [self._observables(doc) for doc in docs]
        unique: dict[Observable, None] = {}
        for observables in per_doc:
            unique.update(dict.fromkeys(observables))
        self._counters["observables"] += len(unique)
        answers = await self._look_up(unique)
        outcomes = {key: self._outcome(key[0], key[1], answer) for key, answer in answers.items()}
        seen: Counter[tuple[str, str]] = Counter()
        out = [self._apply(doc, observables, outcomes, seen) for doc, observables in zip(docs, per_doc, strict=True)]
        for (provider, status), count in seen.items():
            self.outcomes[f"{provider}:{status}"] += count
        return out

    async def _look_up(
        self, unique: dict[Observable, None]
    ) -> dict[tuple[str, Observable], LookupResult | _Pending | BaseException]:
        answers: dict[tuple[str, Observable], LookupResult | _Pending | BaseException] = {}
        tasks: dict[asyncio.Task[LookupResult], tuple[str, Observable]] = {}
        for name, prov in self._providers.items():
            local = getattr(prov, "is_local", False)
            for obs in unique:
                ioc_type, value = obs
                if not prov.is_supported_type(ioc_type):
                    continue
                self._counters["lookups"] += 1
                cached = prov.cached_result(value, ioc_type)
                if cached is not None:
                    if not local:
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
        return answers

    def _on_background_done(self, task: asyncio.Task[LookupResult]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._counters["background_failed"] += 1
        else:
            self._counters["background_completed"] += 1

    def _outcome(
        self, provider: str, obs: Observable, answer: LookupResult | _Pending | BaseException
    ) -> _Outcome | None:
        if isinstance(answer, _Pending):
            outcome = _Outcome("pending", "unknown")
        elif isinstance(answer, BaseException):
            outcome = _Outcome("failed", "unknown")
        else:
            status, severity = _status_of(answer)
            if status is None:
                return None
            if status == "hit":
                outcome = _Outcome(
                    status,
                    severity,
                    _ecs_enrichment(provider, obs, severity, answer),
                    self._match_detail(provider, obs, status, severity, answer),
                )
            else:
                outcome = _Outcome(status, severity)
        self._count(provider, outcome.status)
        return outcome

    def _apply(
        self,
        doc: dict[str, Any],
        observables: dict[Observable, str],
        outcomes: dict[tuple[str, Observable], _Outcome | None],
        seen: Counter[tuple[str, str]],
    ) -> dict[str, Any]:
        new = dict(doc)
        if self._geoip is not None:
            self._apply_geo(doc, new, self._geoip)
        enrichments: list[dict[str, Any]] = []
        matches: list[dict[str, Any]] = []
        incomplete: dict[tuple[str, str], None] = {}
        for obs, field_name in observables.items():
            for name in self._providers:
                outcome = outcomes.get((name, obs))
                if outcome is None:
                    continue
                seen[(name, outcome.status)] += 1
                if outcome.enrichment is not None and outcome.match is not None:
                    enrichments.append(_for_document(outcome.enrichment, field_name))
                    # The provider detail is shared by the documents of a batch, as before: no stage edits it.
                    matches.append(dict(outcome.match))
                elif outcome.status in _INCOMPLETE:
                    incomplete[(name, outcome.status)] = None
        if enrichments:
            threat = dict(doc.get("threat") or {})
            threat["enrichments"] = [*(threat.get("enrichments") or []), *enrichments]
            new["threat"] = threat
        if matches or incomplete:
            secstream = dict(doc.get("secstream") or {})
            enrichment: dict[str, Any] = {}
            if matches:
                enrichment["matches"] = matches
            if incomplete:
                enrichment["incomplete"] = [{"provider": p, "status": s} for p, s in incomplete]
            secstream["enrichment"] = enrichment
            new["secstream"] = secstream
        return new

    def _apply_geo(self, doc: dict[str, Any], new: dict[str, Any], geoip: GeoLiteReader) -> None:
        for name in self.settings.geo_fields:
            obj = doc.get(name)
            if isinstance(obj, dict) and isinstance(obj.get("ip"), str) and _ip_type(obj["ip"]):
                self._counters["geo_lookups"] += 1
                geo, as_obj = geoip.ecs_geo(obj["ip"])
                if geo is None and as_obj is None:
                    continue
                self._counters["geo_located"] += 1
                updated = dict(obj)
                if geo is not None:
                    updated["geo"] = geo
                if as_obj is not None:
                    updated["as"] = as_obj
                new[name] = updated

    def _match_detail(
        self, provider: str, obs: Observable, status: str, severity: str, result: LookupResult
    ) -> dict[str, Any]:
        match: dict[str, Any] = {"provider": provider, "atomic": obs[1], "status": status, "severity": severity}
        details = result.details
        if details:
            match["details"] = self._bounded_detail(details)
        return match

    def _bounded_detail(self, details: Any) -> Any:
        """A copy of a provider's detail that fits the configured size (strings cut, then the whole)."""
        limit = self.settings.max_detail_string
        copy = _cut_strings(details, limit, depth=0)
        size = len(orjson.dumps(copy, default=str))
        if size > self.settings.max_detail_bytes:
            self._counters["details_truncated"] += 1
            return {"truncated": True, "bytes": size}
        if copy != details:
            self._counters["details_truncated"] += 1
        return copy

    async def close(self) -> None:
        """Cancel the background lookups and close the providers' HTTP sessions."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        for prov in self._providers.values():
            await prov.cache.cancel_in_flight()
            await prov.close()
        if self._geoip is not None:
            self._geoip.close()

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


_MAX_DETAIL_DEPTH = 6
_MAX_DETAIL_ITEMS = 50


def _cut_strings(value: Any, limit: int, *, depth: int) -> Any:
    """Copy a JSON-like value with strings cut at ``limit``, lists and objects at 50 items, depth 6."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if depth >= _MAX_DETAIL_DEPTH:
        return None if isinstance(value, dict | list | tuple) else value
    if isinstance(value, dict):
        items = list(value.items())[:_MAX_DETAIL_ITEMS]
        return {str(k)[:limit]: _cut_strings(v, limit, depth=depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [_cut_strings(v, limit, depth=depth + 1) for v in list(value)[:_MAX_DETAIL_ITEMS]]
    return value


def _for_document(enrichment: dict[str, Any], field_name: str) -> dict[str, Any]:
    """A document's own copy of a batch's ECS enrichment (the objects it has), with its matched field."""
    indicator = dict(enrichment["indicator"])
    for name in ("url", "file"):
        if name in indicator:
            indicator[name] = {k: dict(v) if isinstance(v, dict) else v for k, v in indicator[name].items()}
    return {"indicator": indicator, "matched": {**enrichment["matched"], "field": field_name}}


def _ecs_enrichment(provider: str, obs: Observable, severity: str, result: LookupResult) -> dict[str, Any]:
    """One ECS ``threat.enrichments`` entry for a hit (``matched.field`` is set per document)."""
    ioc_type, value = obs
    indicator: dict[str, Any] = {"type": ECS_INDICATOR_TYPES.get(ioc_type, "artifact"), "provider": provider}
    confidence = _CONFIDENCE.get(severity)
    if confidence:
        indicator["confidence"] = confidence
    if ioc_type in ("ipv4", "ipv6"):
        indicator["ip"] = value
    elif ioc_type in ("dns", "hostname"):
        indicator["url"] = {"domain": value}
    elif ioc_type == "url":
        indicator["url"] = {"original": value}
    elif ioc_type in _HASH_FIELDS:
        indicator["file"] = {"hash": {_HASH_FIELDS[ioc_type]: value}}
    details = result.details if isinstance(result.details, dict) else {}
    if result.reference and result.reference.startswith(("http://", "https://")):
        indicator["reference"] = result.reference
    if isinstance(details.get("description"), str) and details["description"]:
        indicator["description"] = details["description"][:1024]
    for ecs_name, keys in _SEEN_KEYS.items():
        seen = next((_iso_date(details[k]) for k in keys if k in details), None)
        if seen:
            indicator[ecs_name] = seen
    return {"indicator": indicator, "matched": {"atomic": value, "field": "", "type": _MATCH_TYPE}}


def _iso_date(value: Any) -> str | None:
    """An ISO 8601 UTC date from a provider's date text or epoch seconds (None when neither)."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            when = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


def _backlog_full(prov: TIProvider, value: str, ioc_type: str) -> LookupResult:
    return LookupResult(
        ioc=value,
        ioc_type=ioc_type,
        provider=prov.name,
        status=TILookupStatus.query_failed.value,
        details={"error": "rate_limited", "message": "background lookup backlog is full"},
    )
