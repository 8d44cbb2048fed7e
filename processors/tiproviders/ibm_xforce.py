"""IBM X-Force Exchange provider (msticpy's name; the engine is :mod:`processors.enrich.providers.xforce`)."""

from __future__ import annotations

from processors.enrich.providers import xforce
from processors.tiproviders.http_provider import HttpProvider

__all__ = ["XForce"]


class XForce(xforce.XForce, HttpProvider):
    """IBM X-Force Exchange provider with msticpy's batch API."""
