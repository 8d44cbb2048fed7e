"""AlienVault OTX provider (header ``X-OTX-API-KEY``; observables URL-encoded).

Severity by the number of OTX pulses that mention the observable: none is ``information``, one is
``warning``, more is ``high``. Unlike msticpy, an answer without ``sections`` is not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from processors.enrich.providers.base import LookupResult, TISeverity
from processors.enrich.providers.http_provider import HttpProvider, IoCLookupParams
from processors.enrich.ratelimit import RateLimits

__all__ = ["OTX"]

_H = {"X-OTX-API-KEY": "{API_KEY}"}


def _q(path: str) -> IoCLookupParams:
    return IoCLookupParams(path=path, headers=_H)


class OTX(HttpProvider):
    """AlienVault OTX lookup (``AuthKey`` required)."""

    _BASE_URL: ClassVar[str] = "https://otx.alienvault.com"
    _REQUIRED_PARAMS: ClassVar[tuple[str, ...]] = ("API_KEY",)
    _DEFAULT_LIMITS: ClassVar[RateLimits] = RateLimits(per_minute=100, burst=10, max_concurrency=8)
    _ENV_NAME: ClassVar[str] = "OTX"
    _REQUIRE_URL_ENCODING: ClassVar[bool] = True
    _IOC_QUERIES: ClassVar[Mapping[str, IoCLookupParams]] = {
        "ipv4": _q("/api/v1/indicators/IPv4/{observable}/general"),
        "ipv6": _q("/api/v1/indicators/IPv6/{observable}/general"),
        "ipv4-passivedns": _q("/api/v1/indicators/IPv4/{observable}/passive_dns"),
        "ipv6-passivedns": _q("/api/v1/indicators/IPv6/{observable}/passive_dns"),
        "ipv4-geo": _q("/api/v1/indicators/IPv4/{observable}/geo"),
        "ipv6-geo": _q("/api/v1/indicators/IPv6/{observable}/geo"),
        "dns": _q("/api/v1/indicators/domain/{observable}/general"),
        "dns-passivedns": _q("/api/v1/indicators/domain/{observable}/passive_dns"),
        "dns-geo": _q("/api/v1/indicators/domain/{observable}/geo"),
        "hostname": _q("/api/v1/indicators/hostname/{observable}/general"),
        "file_hash": _q("/api/v1/indicators/file/{observable}/general"),
        "md5_hash": _q("/api/v1/indicators/file/{observable}/general"),
        "sha1_hash": _q("/api/v1/indicators/file/{observable}/general"),
        "sha256_hash": _q("/api/v1/indicators/file/{observable}/general"),
        "url": _q("/api/v1/indicators/url/{observable}/general"),
    }

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return ``(found, severity, details)`` from an OTX answer.

        Args:
            response: the result holding ``raw_result``.
        """
        raw = self._answer(response)
        if raw is None:
            return False, TISeverity.information, "Not found."
        pulse_info = raw.get("pulse_info")
        if not isinstance(pulse_info, Mapping):
            return True, TISeverity.information, {}
        pulses = pulse_info.get("pulses") or []
        if not pulses:
            return True, TISeverity.information, {"pulse_count": 0, "sections_available": raw.get("sections", [])}
        details = {
            "pulse_count": len(pulses),
            "names": [p.get("name") for p in pulses],
            "tags": [p.get("tags") for p in pulses],
            "references": [p.get("references") for p in pulses],
        }
        return True, TISeverity.warning if len(pulses) == 1 else TISeverity.high, details
