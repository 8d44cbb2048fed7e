"""secstream's domain logic: parsers, the coalescer, decoders, extractors, trackers, detectors, enrichment.

Everything here is engine-agnostic (no Kafka, no Faust). The stream stages are re-exported below and
imported lazily, so ``import processors.errors`` stays cheap; the msticpy-compatible batch API keeps
msticpy's module names (``processors.auditdextract``, ``processors.iocextract``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name → the module that defines it.
_EXPORTS: dict[str, str] = {
    # errors
    "SecstreamError": "processors.errors",
    "ParseError": "processors.errors",
    "CoalesceError": "processors.errors",
    "DuplicateRecordError": "processors.errors",
    "OrphanEndOfEventError": "processors.errors",
    "DecodeError": "processors.errors",
    "EnrichmentError": "processors.errors",
    "ProviderTimeoutError": "processors.errors",
    "RateLimitedError": "processors.errors",
    "ProviderUnavailableError": "processors.errors",
    "ConfigError": "processors.errors",
    "MsticpyException": "processors.errors",
    # auditd
    "AuditRecord": "processors.audit",
    "AuditEvent": "processors.audit",
    "LateRecord": "processors.audit",
    "Coalescer": "processors.audit",
    "CoalescerSettings": "processors.audit",
    "CoalescerState": "processors.audit",
    "parse_line": "processors.audit",
    "decode_event": "processors.audit",
    "decode_late": "processors.audit",
    # syslog
    "parse_syslog_line": "processors.syslog",
    "syslog_row_to_event": "processors.syslog",
    # process trees
    "ProcessTracker": "processors.proctree",
    "ProcessTrackerSettings": "processors.proctree",
    "ProcessTrackerState": "processors.proctree",
    # IoCs and payloads
    "IoCExtract": "processors.iocextract",
    "IoCType": "processors.iocextract",
    "analyze_text": "processors.ioc.observables",
    "annotate_event": "processors.ioc.observables",
    # sessions, rules, detectors
    "LogonSessionTracker": "processors.detect.sessions",
    "LogonSessionSettings": "processors.detect.sessions",
    "LogonSessionState": "processors.detect.sessions",
    "Rule": "processors.detect.rules",
    "RuleEngine": "processors.detect.rules",
    "load_rules": "processors.detect.rules",
    "CommandSpeedDetector": "processors.detect.detectors",
    "CommandSpeedSettings": "processors.detect.detectors",
    "CommandSpeedState": "processors.detect.detectors",
    "RiskySudoDetector": "processors.detect.detectors",
    "RiskySudoSettings": "processors.detect.detectors",
    "RiskySudoState": "processors.detect.detectors",
    # enrichment
    "Enricher": "processors.enrich.enricher",
    "EnricherSettings": "processors.enrich.enricher",
    "GeoLiteLookup": "processors.geoip",
    "TILookup": "processors.tilookup",
    # entities
    "GeoLocation": "processors.entities",
    "Host": "processors.entities",
    "IpAddress": "processors.entities",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'processors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
