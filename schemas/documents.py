"""Builders shared by every stage: stable ids, timestamps, detection and dead-letter documents.

Event documents are built by their own stage (audit decoding, syslog interpretation); the envelope
fields they all share (``schema_version``, ``@timestamp``, ``event.id``) follow the helpers here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "dead_letter",
    "detection",
    "iso_timestamp",
    "stable_id",
]

SCHEMA_VERSION = "1.0"


def stable_id(*parts: object) -> str:
    """Return a deterministic 32-hex-digit id for the given parts.

    The same parts always give the same id, so duplicates produced by at-least-once delivery can be
    dropped downstream.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def iso_timestamp(epoch_seconds: float) -> str:
    """Format epoch seconds as an ISO 8601 UTC timestamp with milliseconds (``2019-03-01T23:23:44.869Z``)."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def detection(
    *,
    rule_id: str,
    rule_name: str,
    rule_version: str,
    severity: int,
    technique_ids: Sequence[str],
    host: str,
    timestamp: float,
    evidence_event_ids: Iterable[str],
    message: str,
    source_event: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an ECS alert document.

    The id is derived from the rule and the evidence, so the same evidence always yields the same
    detection id. Process lineage, user and related IoCs are copied from ``source_event`` when given.

    Args:
        rule_id: stable rule identifier.
        rule_name: human-readable rule name.
        rule_version: version of the rule definition.
        severity: 0-100 (ECS ``event.severity``); 21 low, 47 medium, 73 high, 99 critical.
        technique_ids: MITRE ATT&CK technique ids (``T1059.004``).
        host: host name.
        timestamp: epoch seconds of the triggering event.
        evidence_event_ids: ids of the events that triggered the rule.
        message: one-line description of what was seen.
        source_event: the triggering event document, for lineage and IoCs.
        extra: additional fields merged under ``secstream``.
    """
    evidence = sorted(set(evidence_event_ids))
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "@timestamp": iso_timestamp(timestamp),
        "message": message,
        "event": {
            "id": stable_id("detection", rule_id, *evidence),
            "kind": "alert",
            "severity": severity,
            "module": "secstream",
        },
        "rule": {"id": rule_id, "name": rule_name, "version": rule_version},
        "threat": {
            "framework": "MITRE ATT&CK",
            "technique": {"id": list(technique_ids)},
        },
        "host": {"name": host},
        "secstream": {"evidence": {"event_ids": evidence}, **(dict(extra) if extra else {})},
    }
    if source_event is not None:
        for key in ("process", "user", "related", "source", "destination"):
            if key in source_event:
                doc[key] = source_event[key]
        iocs = source_event.get("secstream", {}).get("iocs")
        if iocs:
            doc["secstream"]["iocs"] = iocs
    return doc


def dead_letter(
    *,
    original: str | bytes,
    reason: str,
    error_type: str,
    stream: str,
    host: str | None = None,
    timestamp: float | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a dead-letter document for input that could not be processed.

    ``event.original`` holds the input as text (undecodable bytes escaped as ``\\xNN``), and
    ``secstream.original_base64`` holds the exact original bytes, so nothing is ever lost.

    Args:
        original: the raw input.
        reason: why it could not be processed.
        error_type: the error class name.
        stream: the input stream (``auditd`` or ``syslog``).
        host: the host, when known.
        timestamp: when it was seen (epoch seconds); the id does not depend on it.
        source: where it came from (``topic``, ``partition``, ``offset`` or ``file``, ``line``).
    """
    raw = original if isinstance(original, bytes) else original.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "backslashreplace")
    where = dict(source) if source else {}
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "@timestamp": iso_timestamp(timestamp if timestamp is not None else 0.0),
        "event": {
            "id": stable_id("deadletter", stream, *sorted(where.items()), raw.hex()),
            "kind": "pipeline_error",
            "original": text,
            "reason": reason,
            "dataset": stream,
        },
        "error": {"message": reason, "type": error_type},
        "secstream": {"original_base64": base64.b64encode(raw).decode("ascii"), "source": where},
    }
    if host:
        doc["host"] = {"name": host}
    return doc
