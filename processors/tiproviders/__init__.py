"""Threat-intel providers: VirusTotal, AlienVault OTX, IBM X-Force, GreyNoise and local blocklists."""

from __future__ import annotations

from processors.tiproviders.alienvault_otx import OTX
from processors.tiproviders.greynoise import GreyNoise
from processors.tiproviders.http_provider import HttpProvider, IoCLookupParams, ProviderCredentials
from processors.tiproviders.ibm_xforce import XForce
from processors.tiproviders.local_blocklist import BlocklistEntry, LocalBlocklist
from processors.tiproviders.ti_provider_base import (
    LookupResult,
    SanitizedObservable,
    TILookupStatus,
    TIProvider,
    TISeverity,
    entropy,
    generate_items,
    get_schema_and_host,
    preprocess_observable,
)
from processors.tiproviders.virustotal import VirusTotal

__all__ = [
    "OTX",
    "PROVIDERS",
    "BlocklistEntry",
    "GreyNoise",
    "HttpProvider",
    "IoCLookupParams",
    "LocalBlocklist",
    "LookupResult",
    "ProviderCredentials",
    "SanitizedObservable",
    "TILookupStatus",
    "TIProvider",
    "TISeverity",
    "VirusTotal",
    "XForce",
    "entropy",
    "generate_items",
    "get_schema_and_host",
    "preprocess_observable",
]

#: Built-in providers by name.
PROVIDERS: dict[str, type[TIProvider]] = {
    "XForce": XForce,
    "OTX": OTX,
    "VirusTotal": VirusTotal,
    "GreyNoise": GreyNoise,
    "LocalBlocklist": LocalBlocklist,
}
