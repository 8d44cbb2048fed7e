"""A local threat-intel provider over blocklist files (msticpy-style name; the engine is
:mod:`processors.enrich.providers.blocklist`)."""

from __future__ import annotations

from processors.enrich.providers import blocklist
from processors.enrich.providers.blocklist import BlocklistEntry
from processors.tiproviders.ti_provider_base import TIProvider

__all__ = ["BlocklistEntry", "LocalBlocklist"]


class LocalBlocklist(blocklist.LocalBlocklist, TIProvider):
    """Threat-intel lookups against local blocklist files, with the batch API."""
