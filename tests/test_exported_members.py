"""The public surface of ``processors`` is deliberate: every exported name resolves, and none is missing."""

from __future__ import annotations

import importlib

import processors

EXPECTED = {
    "AuditEvent", "AuditRecord", "CoalesceError", "Coalescer", "CoalescerSettings", "CoalescerState",
    "CommandSpeedDetector", "CommandSpeedSettings", "CommandSpeedState", "ConfigError", "DecodeError",
    "DuplicateRecordError", "Enricher", "EnricherSettings", "EnrichmentError", "GeoLiteLookup", "GeoLocation",
    "Host", "IoCExtract", "IoCType", "IpAddress", "LateRecord", "LogonSessionSettings", "LogonSessionState",
    "LogonSessionTracker", "MsticpyException", "OrphanEndOfEventError", "ParseError", "ProcessTracker",
    "ProcessTrackerSettings", "ProcessTrackerState", "ProviderTimeoutError", "ProviderUnavailableError",
    "RateLimitedError", "RiskySudoDetector", "RiskySudoSettings", "RiskySudoState", "Rule", "RuleEngine",
    "SecstreamError", "TILookup", "analyze_text", "annotate_event", "decode_event", "decode_late", "load_rules",
    "parse_line", "parse_syslog_line", "syslog_row_to_event",
}  # fmt: skip


def test_exported_members_are_pinned() -> None:
    """processors.__all__ is exactly the pinned set of public names."""
    assert set(processors.__all__) == EXPECTED


def test_every_export_resolves_to_its_definition() -> None:
    """Each exported name is importable from processors and is the object its module defines."""
    for name in processors.__all__:
        value = getattr(processors, name)
        module = importlib.import_module(value.__module__) if hasattr(value, "__module__") else None
        assert module is not None, name
        assert getattr(module, name, value) is value, name


def test_modules_define_all() -> None:
    """Every processors and streams module declares __all__, and each listed name exists."""
    import pkgutil

    import schemas
    import streams

    for package in (processors, streams, schemas):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.startswith("streams.worker") or info.name == "streams.cli.__main__":
                continue
            module = importlib.import_module(info.name)
            assert hasattr(module, "__all__"), info.name
            for name in module.__all__:
                assert hasattr(module, name), f"{info.name}.{name}"
