"""AlienVault OTX provider (msticpy's name; the engine is :mod:`processors.enrich.providers.otx`)."""

from __future__ import annotations

from processors.enrich.providers import otx
from processors.tiproviders.http_provider import HttpProvider

__all__ = ["OTX"]


class OTX(otx.OTX, HttpProvider):
    """AlienVault OTX provider with msticpy's batch API."""
