"""VirusTotal provider (API v3) (msticpy's name; the engine is :mod:`processors.enrich.providers.virustotal`)."""

from __future__ import annotations

from processors.enrich.providers import virustotal
from processors.enrich.providers.virustotal import parse_vt_report, vt_url_id
from processors.tiproviders.http_provider import HttpProvider

__all__ = ["VirusTotal", "parse_vt_report", "vt_url_id"]


class VirusTotal(virustotal.VirusTotal, HttpProvider):
    """VirusTotal provider (API v3) with msticpy's batch API."""
