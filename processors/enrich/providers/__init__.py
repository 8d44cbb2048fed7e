"""The threat-intel provider engine used by the enrichment stage (no polars, no msticpy batch API).

:mod:`processors.tiproviders` wraps these classes under msticpy's names for notebooks.
"""

from __future__ import annotations

from processors.enrich.providers.base import LookupResult, TILookupStatus, TIProvider, TISeverity
from processors.enrich.providers.blocklist import BlocklistEntry, LocalBlocklist
from processors.enrich.providers.greynoise import GreyNoise
from processors.enrich.providers.http_provider import HttpProvider, IoCLookupParams, ProviderCredentials
from processors.enrich.providers.otx import OTX
from processors.enrich.providers.virustotal import VirusTotal
from processors.enrich.providers.xforce import XForce

__all__ = [
    "OTX",
    "BlocklistEntry",
    "GreyNoise",
    "HttpProvider",
    "IoCLookupParams",
    "LocalBlocklist",
    "LookupResult",
    "ProviderCredentials",
    "TILookupStatus",
    "TIProvider",
    "TISeverity",
    "VirusTotal",
    "XForce",
]
