"""VirusTotal provider (API v3), parsing both v3 objects and v2 reports.

Requests go to ``/api/v3/ip_addresses/{ip}``, ``/api/v3/domains/{domain}``, ``/api/v3/urls/{url_id}``
(``url_id`` is the unpadded URL-safe base64 of the URL) and ``/api/v3/files/{hash}`` with the
``x-apikey`` header. :func:`parse_vt_report` also understands the v2 report shapes (``positives``,
``detected_urls``, ...), e.g. from cached or exported data.

Severity: more than one positive (v3: ``last_analysis_stats.malicious``; v2 IP/domain reports: the
detections of URLs on the host, as msticpy's VTLookup counts them; detections of samples that merely
contacted or were served by the host are reported apart as ``sample_positives``) is ``high``, one is
``warning``, none is ``information``. Unlike msticpy, v2 detections are not filtered to the last 30 days of the wall
clock (which made every older report count zero and made results depend on when they were parsed).
Default budget: the public API's 4 requests/minute and 500/day.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from processors.enrich.providers.base import HASH_TYPES, LookupResult, TISeverity
from processors.enrich.providers.http_provider import HttpProvider, IoCLookupParams
from processors.enrich.ratelimit import RateLimits

__all__ = ["VirusTotal", "parse_vt_report", "vt_url_id"]

_HEADERS = {"x-apikey": "{API_KEY}", "Accept": "application/json"}
_GUI_PATHS = {"file": "file", "url": "url", "ip_address": "ip-address", "domain": "domain"}


def vt_url_id(url: str) -> str:
    """Return VirusTotal's v3 identifier of a URL (URL-safe base64 without padding)."""
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _severity(positives: int) -> TISeverity:
    if positives > 1:
        return TISeverity.high
    if positives == 1:
        return TISeverity.warning
    return TISeverity.information


def _v3_details(obj: Mapping[str, Any]) -> tuple[bool, TISeverity, dict[str, Any]]:
    attrs = obj.get("attributes") or {}
    stats = attrs.get("last_analysis_stats") or {}
    obj_type = str(obj.get("type", ""))
    malicious = int(stats.get("malicious", 0) or 0)
    details: dict[str, Any] = {
        "id": obj.get("id"),
        "type": obj_type,
        "positives": malicious,
        "suspicious": int(stats.get("suspicious", 0) or 0),
        "harmless": int(stats.get("harmless", 0) or 0),
        "undetected": int(stats.get("undetected", 0) or 0),
        "reputation": attrs.get("reputation"),
        "permalink": f"https://www.virustotal.com/gui/{_GUI_PATHS.get(obj_type, obj_type)}/{obj.get('id')}",
    }
    extra = {
        "file": ("meaningful_name", "type_description", "size", "md5", "sha1", "sha256"),
        "url": ("url", "last_final_url"),
        "ip_address": ("country", "asn", "as_owner"),
        "domain": ("registrar", "creation_date"),
    }.get(obj_type, ())
    for name in extra:
        if name in attrs:
            details[name] = attrs[name]
    if attrs.get("popular_threat_classification"):
        details["threat_label"] = attrs["popular_threat_classification"].get("suggested_threat_label")
    return True, _severity(malicious), details


def _v2_details(report: Mapping[str, Any], ioc_type: str) -> tuple[bool, TISeverity, dict[str, Any]]:
    found = report.get("response_code") == 1
    details: dict[str, Any] = {
        "verbose_msg": report.get("verbose_msg"),
        "response_code": report.get("response_code"),
        "positives": 0,
    }
    if ioc_type == "url" or ioc_type in HASH_TYPES:
        details["resource"] = report.get("resource")
        details["permalink"] = report.get("permalink")
        details["positives"] = int(report.get("positives", 0) or 0)
        return found, _severity(details["positives"]), details
    positives = 0
    sample_positives = 0
    for key, item_field in (
        ("detected_urls", "url"),
        ("detected_downloaded_samples", "sha256"),
        ("detected_communicating_samples", "sha256"),
    ):
        items = [item for item in report.get(key) or [] if isinstance(item, Mapping)]
        details[key] = [item.get(item_field) for item in items]
        count = sum(int(item.get("positives", 0) or 0) for item in items)
        if key == "detected_urls":
            positives += count
        else:
            sample_positives += count
    resolutions = report.get("resolutions") or []
    if resolutions:
        details["resolutions"] = len(resolutions)
    details["positives"] = positives
    details["sample_positives"] = sample_positives
    return found, _severity(positives), details


def parse_vt_report(report: Any, ioc_type: str) -> tuple[bool, TISeverity, dict[str, Any]]:
    """Parse one VirusTotal answer (v3 ``{"data": {...}}``, a bare v3 object, or a v2 report).

    Args:
        report: the decoded JSON.
        ioc_type: the IoC type queried (selects the v2 fields).

    Returns:
        ``(found, severity, details)``; ``details["positives"]`` is the number of engines detecting it.

    Raises:
        TypeError: if the answer is not a JSON object.
    """
    if not isinstance(report, Mapping):
        raise TypeError("a VirusTotal answer is a JSON object")
    data = report.get("data")
    if isinstance(data, Mapping) and "attributes" in data:
        return _v3_details(data)
    if "attributes" in report and "type" in report:
        return _v3_details(report)
    return _v2_details(report, ioc_type)


class VirusTotal(HttpProvider):
    """VirusTotal lookup (API v3; ``AuthKey`` required)."""

    _BASE_URL: ClassVar[str] = "https://www.virustotal.com"
    _REQUIRED_PARAMS: ClassVar[tuple[str, ...]] = ("API_KEY",)
    _DEFAULT_LIMITS: ClassVar[RateLimits] = RateLimits(per_minute=4, burst=4, daily_quota=500, max_concurrency=4)
    _ENV_NAME: ClassVar[str] = "VIRUSTOTAL"
    _IOC_QUERIES: ClassVar[Mapping[str, IoCLookupParams]] = {
        "ipv4": IoCLookupParams(path="/api/v3/ip_addresses/{observable}", headers=_HEADERS),
        "dns": IoCLookupParams(path="/api/v3/domains/{observable}", headers=_HEADERS),
        "url": IoCLookupParams(path="/api/v3/urls/{observable}", headers=_HEADERS),
        "file_hash": IoCLookupParams(path="/api/v3/files/{observable}", headers=_HEADERS),
        "md5_hash": IoCLookupParams(path="/api/v3/files/{observable}", headers=_HEADERS),
        "sha1_hash": IoCLookupParams(path="/api/v3/files/{observable}", headers=_HEADERS),
        "sha256_hash": IoCLookupParams(path="/api/v3/files/{observable}", headers=_HEADERS),
    }

    def _observable_for_url(self, value: str, ioc_type: str) -> str:
        return vt_url_id(value) if ioc_type == "url" else value

    def parse_results(self, response: LookupResult) -> tuple[bool, TISeverity, Any]:
        """Return ``(found, severity, details)`` from a VirusTotal answer.

        Args:
            response: the result holding ``raw_result``.
        """
        raw = self._answer(response)
        if raw is None:
            return False, TISeverity.information, "Not found."
        return parse_vt_report(raw, response.ioc_type)
