"""Asynchronous enrichment: rate limits, caches, the shared HTTP client and the stream stage.

The stage (``Enricher``, ``EnricherSettings``, ``ENRICHMENT_STATUSES``) is imported lazily: it depends
on the TI providers, which themselves use the rate limiter and cache of this package.
"""

from __future__ import annotations

from typing import Any

from processors.enrich.cache import Cacheability, CacheSettings, CacheStats, LookupCache, TTLCache
from processors.enrich.http import CircuitBreaker, HttpClient, HttpResponse, HttpSettings, parse_retry_after
from processors.enrich.ratelimit import DailyQuota, RateLimiter, RateLimits, TokenBucket

__all__ = [
    "ENRICHMENT_STATUSES",
    "CacheSettings",
    "CacheStats",
    "Cacheability",
    "CircuitBreaker",
    "DailyQuota",
    "Enricher",
    "EnricherSettings",
    "HttpClient",
    "HttpResponse",
    "HttpSettings",
    "LookupCache",
    "RateLimiter",
    "RateLimits",
    "TTLCache",
    "TokenBucket",
    "parse_retry_after",
]


def __getattr__(name: str) -> Any:
    if name in ("ENRICHMENT_STATUSES", "Enricher", "EnricherSettings"):
        from processors.enrich import enricher

        return getattr(enricher, name)
    raise AttributeError(name)
