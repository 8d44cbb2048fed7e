"""Build the stage graph and its enrichment clients from the configuration, in one place."""

from __future__ import annotations

from typing import Any

from processors.enrich.cache import CacheSettings
from processors.enrich.enricher import Enricher
from processors.enrich.geoip import GeoIPDatabaseException, GeoLiteReader
from processors.enrich.http import HttpSettings
from processors.enrich.providers import OTX, GreyNoise, LocalBlocklist, TIProvider, VirusTotal, XForce
from processors.enrich.ratelimit import RateLimits
from processors.errors import ConfigError
from streams.config import ProviderConfig, SecstreamConfig, enricher_settings
from streams.graph import Pipeline
from streams.logging import get_logger

__all__ = ["build_enricher", "build_pipeline", "build_ti_providers"]

log = get_logger(__name__)

_ONLINE_PROVIDERS: dict[str, type[Any]] = {
    "virustotal": VirusTotal,
    "otx": OTX,
    "xforce": XForce,
    "greynoise": GreyNoise,
}


def _online_provider(name: str, settings: ProviderConfig, cache: CacheSettings) -> TIProvider | None:
    if not settings.enabled:
        return None
    if not settings.api_key:
        log.warning("enrichment.provider_without_key", provider=name)
        return None
    provider: TIProvider = _ONLINE_PROVIDERS[name](
        AuthKey=settings.api_key,
        ApiID=settings.api_id or None,
        base_url=settings.base_url or None,
        limits=RateLimits(
            per_minute=settings.rate_per_minute or None,
            daily_quota=settings.daily_quota or None,
        ),
        http_settings=HttpSettings(
            timeout_s=settings.timeout_s,
            max_body_bytes=settings.max_body_bytes,
            max_retry_after_s=settings.retry_after_max_s,
        ),
        # In the stream a lookup never waits for its rate limiter: it is recorded as rate limited and
        # retried by a later event with the same observable.
        rate_limit_wait_s=0.0,
        cache_settings=cache,
        name=name,
    )
    return provider


def build_ti_providers(config: SecstreamConfig) -> list[TIProvider]:
    """The threat-intel providers the configuration enables: local blocklists first, then online ones."""
    enrichment = config.enrichment
    cache = CacheSettings(ttl_s=enrichment.cache_ttl_s, negative_ttl_s=enrichment.negative_cache_ttl_s)
    providers: list[TIProvider] = []
    if enrichment.blocklists:
        paths = [config.resolve_path(path) for path in enrichment.blocklists]
        providers.append(LocalBlocklist(paths=paths, cache_settings=cache))
    for name in _ONLINE_PROVIDERS:
        provider = _online_provider(name, getattr(enrichment, name), cache)
        if provider is not None:
            providers.append(provider)
    return providers


def build_enricher(config: SecstreamConfig) -> Enricher | None:
    """The enrichment stage, or None when enrichment is disabled."""
    enrichment = config.enrichment
    if not enrichment.enabled:
        return None
    geoip = None
    if enrichment.geoip_db_folder:
        try:
            geoip = GeoLiteReader(
                api_key=enrichment.geoip_licence_key or None,
                db_folder=str(config.resolve_path(enrichment.geoip_db_folder)),
                auto_update=bool(enrichment.geoip_licence_key),
            )
        except GeoIPDatabaseException as err:
            raise ConfigError(str(err), key="enrichment.geoip_db_folder") from err
    providers = build_ti_providers(config)
    log.info("enrichment.configured", providers=[p.name for p in providers], geoip=geoip is not None)
    return Enricher(enricher_settings(config), providers=providers, geoip=geoip)


async def build_pipeline(config: SecstreamConfig) -> Pipeline:
    """The stage graph with its enrichment stage, ready to run inside an event loop."""
    return Pipeline(config, build_enricher(config))
