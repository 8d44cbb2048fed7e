"""The enrichment stage: GeoIP and threat-intel lookups, with their rate limits, caches and HTTP client.

``providers`` holds the threat-intel provider engine and ``geoip`` the GeoLite2 reader; the flat
msticpy-named modules (``processors.tiproviders``, ``processors.geoip``, ``processors.tilookup``) wrap
them for notebooks and are imported by nothing here.
"""

from __future__ import annotations

from processors.enrich.cache import Cacheability, CacheSettings, CacheStats, LookupCache, TTLCache
from processors.enrich.enricher import ECS_INDICATOR_TYPES, ENRICHMENT_STATUSES, Enricher, EnricherSettings
from processors.enrich.http import CircuitBreaker, HttpClient, HttpResponse, HttpSettings, parse_retry_after
from processors.enrich.ratelimit import DailyQuota, RateLimiter, RateLimits, TokenBucket

__all__ = [
    "ECS_INDICATOR_TYPES",
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
