"""GreyNoise provider (msticpy's name; the engine is :mod:`processors.enrich.providers.greynoise`)."""

from __future__ import annotations

from processors.enrich.providers import greynoise
from processors.tiproviders.http_provider import HttpProvider

__all__ = ["GreyNoise"]


class GreyNoise(greynoise.GreyNoise, HttpProvider):
    """GreyNoise provider with msticpy's batch API."""
