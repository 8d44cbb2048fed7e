"""IBM X-Force Exchange provider (HTTP Basic auth with ``ApiID`` and ``AuthKey``).

Reputation answers are graded by ``score``: below 2 ``information``, below 5 ``warning``, else ``high``
(a missing score counts as 0; a score nested in ``result`` is read too). Malware answers are ``high``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from processors.enrich.providers.base import HASH_TYPES, LookupResult, TISeverity
from processors.enrich.providers.http_provider import HttpProvider, IoCLookupParams
from processors.enrich.ratelimit import RateLimits

__all__ = ["XForce"]


def _q(path: str) -> IoCLookupParams:
    return IoCLookupParams(path=path, auth_type="HTTPBasic", auth_str=("{API_ID}", "{API_KEY}"))


class XForce(HttpProvider):
    """IBM X-Force lookup (``ApiID`` and ``AuthKey`` required)."""

    _BASE_URL: ClassVar[str] = "https://api.xforce.ibmcloud.com"
    _REQUIRED_PARAMS: ClassVar[tuple[str, ...]] = ("API_ID", "API_KEY")
    _DEFAULT_LIMITS: ClassVar[RateLimits] = RateLimits(per_minute=60, burst=5, max_concurrency=4)
    _ENV_NAME: ClassVar[str] = "XFORCE"
    _IOC_QUERIES: ClassVar[Mapping[str, IoCLookupParams]] = {
        "ipv4": _q("/ipr/{observable}"),
        "ipv6": _q("/ipr/{observable}"),
        "ipv4-rep": _q("/ipr/history/{observable}"),
        "ipv6-rep": _q("/ipr/history/{observable}"),
        "ipv4-malware": _q("/ipr/malware/{observable}"),
        "ipv6-malware": _q("/ipr/malware/{observable}"),
        "ipv4-whois": _q("/whois/{observable}"),
        "ipv6-whois": _q("/whois/{observable}"),
        "ipv4-passivedns": _q("/resolve/{observable}"),
        "ipv6-passivedns": _q("/resolve/{observable}"),
        "dns-passivedns": _q("/resolve/{observable}"),
        "hostname-whois": _q("/whois/{observable}"),
        "dns-whois": _q("/whois/{observable}"),
        "file_hash": _q("/malware/{observable}"),
        "md5_hash": _q("/malware/{observable}"),
        "sha1_hash": _q("/malware/{observable}"),
        "sha256_hash": _q("/malware/{observable}"),
        "url": _q("/url/{observable}"),
        "dns": _q("/url/{observable}"),
        "url-malware": _q("/url/malware/{observable}"),
        "dns-malware": _q("/url/malware/{observable}"),
    }

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return ``(found, severity, details)`` from an X-Force answer.

        Args:
            response: the result holding ``raw_result``.
        """
        raw = self._answer(response)
        if raw is None:
            return False, TISeverity.information, "Not found."
        ioc_type, subtype = response.ioc_type, response.query_subtype
        if ioc_type in ("ipv4", "ipv6", "url", "dns") and not subtype:
            body = raw["result"] if isinstance(raw.get("result"), Mapping) else raw
            score = body.get("score") or 0
            details = {
                "score": score,
                "cats": body.get("cats"),
                "categoryDescriptions": body.get("categoryDescriptions"),
                "reason": body.get("reason"),
                "reasonDescription": body.get("reasonDescription"),
                "tags": body.get("tags"),
            }
            if score < 2:
                severity = TISeverity.information
            elif score < 5:
                severity = TISeverity.warning
            else:
                severity = TISeverity.high
            return True, severity, details
        if (ioc_type in HASH_TYPES or subtype == "malware") and isinstance(raw.get("malware"), Mapping):
            malware = raw["malware"]
            return (
                True,
                TISeverity.high,
                {
                    "risk": malware.get("risk"),
                    "family": malware.get("family"),
                    "reasonDescription": raw.get("reasonDescription"),
                },
            )
        if ioc_type in ("dns", "ipv4", "ipv6", "hostname") and subtype in ("info", "passivedns", "whois"):
            records = raw.get("total_rows") or raw.get("contact")
            return True, TISeverity.information, {"records": records}
        return True, TISeverity.information, {}
