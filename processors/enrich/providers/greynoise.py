"""GreyNoise provider (community API v3, and the v2 quick/context endpoints; header ``key``).

``high`` when GreyNoise classifies the address as ``malicious``, else ``information``. Unlike msticpy,
an answer without ``classification`` (the quick endpoint) is not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from processors.enrich.providers.base import LookupResult, TISeverity
from processors.enrich.providers.http_provider import HttpProvider, IoCLookupParams
from processors.enrich.ratelimit import RateLimits

__all__ = ["GreyNoise"]

_H = {"key": "{API_KEY}"}


class GreyNoise(HttpProvider):
    """GreyNoise lookup (the community endpoint works without a key)."""

    _BASE_URL: ClassVar[str] = "https://api.greynoise.io"
    _DEFAULT_LIMITS: ClassVar[RateLimits] = RateLimits(per_minute=10, burst=5, max_concurrency=2)
    _ENV_NAME: ClassVar[str] = "GREYNOISE"
    _IOC_QUERIES: ClassVar[Mapping[str, IoCLookupParams]] = {
        "ipv4": IoCLookupParams(path="/v3/community/{observable}", headers=_H),
        "ipv4-quick": IoCLookupParams(path="/v2/noise/quick/{observable}", headers=_H),
        "ipv4-full": IoCLookupParams(path="/v2/noise/context/{observable}", headers=_H),
    }

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return ``(found, severity, details)`` from a GreyNoise answer.

        Args:
            response: the result holding ``raw_result``.
        """
        raw = self._answer(response)
        if raw is None:
            return False, TISeverity.information, "Not found."
        details: Any = {}
        if "riot" in raw:
            details = {
                "Classification": raw.get("classification"),
                "Name": raw.get("name"),
                "Last Seen": raw.get("last_seen"),
                "Message": raw.get("message"),
                "Noise": raw.get("noise"),
                "RIOT": raw.get("riot"),
            }
        elif "actor" in raw:
            details = {
                "Classification": raw.get("classification"),
                "First Seen": raw.get("first_seen"),
                "Last Seen": raw.get("last_seen"),
                "Actor": raw.get("actor"),
                "Tags": raw.get("tags"),
                "VPN": raw.get("vpn_service", False),
                "Metadata": raw.get("metadata"),
            }
        elif "code" in raw:
            details = dict(raw)
        malicious = raw.get("classification") == "malicious"
        return True, TISeverity.high if malicious else TISeverity.information, details
