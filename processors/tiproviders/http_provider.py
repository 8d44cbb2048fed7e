"""msticpy's ``HttpProvider`` name: the engine's HTTP provider with the batch API (see
:mod:`processors.enrich.providers.http_provider`)."""

from __future__ import annotations

from processors.enrich.providers import http_provider
from processors.enrich.providers.http_provider import IoCLookupParams, ProviderCredentials
from processors.tiproviders.ti_provider_base import TIProvider

__all__ = ["HttpProvider", "IoCLookupParams", "ProviderCredentials"]


class HttpProvider(http_provider.HttpProvider, TIProvider):
    """Base class of HTTP TI providers (msticpy's ``HttpProvider``), asynchronous, with the batch API."""
