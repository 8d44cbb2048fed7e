"""Builders shared by every stage: stable ids, timestamps, detection and dead-letter documents.

Event documents are built by their own stage (audit decoding, syslog interpretation); the envelope
fields they all share (``ecs.version``, ``secstream.schema_version``, ``@timestamp``, ``event.id``) follow
the helpers here. Every field is declared in :mod:`schemas.fields`.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.attack import threat_fields
from schemas.fields import CONTRACT_VERSION, ECS_VERSION

__all__ = [
    "DEAD_LETTER_ORIGINAL_BYTES",
    "ECS_VERSION",
    "SCHEMA_VERSION",
    "dead_letter",
    "detection",
    "iso_timestamp",
    "stable_id",
    "truncated_dead_letter",
]

SCHEMA_VERSION = CONTRACT_VERSION
_blake2b = hashlib.blake2b


def stable_id(*parts: object) -> str:
    """Return a deterministic 32-hex-digit id for the given parts.

    The same parts always give the same id, so duplicates produced by at-least-once delivery can be
    dropped downstream. The id is the 16-byte BLAKE2b of every part's UTF-8 text followed by ``\x1f``.
    """
    # format(part) is exactly what f"{part}" gives; joining once is cheaper than a generator of f-strings.
    text = "\x1f".join(map(format, parts)) + "\x1f" if parts else ""
    return _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_DAY_PREFIX: dict[int, str] = {}
_STAMPS: dict[float, str] = {}
_CACHE_LIMIT = 4096
# Below 2**33 s (year 2242) a float epoch keeps microsecond precision, so the arithmetic below gives
# exactly what datetime.fromtimestamp() gives; other values take the datetime path.
_EXACT_EPOCH_LIMIT = 2.0**33


def _iso_timestamp_datetime(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    # Not strftime("%Y"): glibc writes the year 1 as "1", and ISO 8601 needs four digits.
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_timestamp(epoch_seconds: float) -> str:
    """Format epoch seconds as an ISO 8601 UTC timestamp with milliseconds (``2019-03-01T23:23:44.869Z``).

    Every event gets one, and the same instant is often formatted several times (the event, its process
    start, its session start), so results are memoised by value; otherwise the date is cached per day
    and the time of day is integer arithmetic. The fraction is rounded half-to-even to microseconds and
    then truncated to milliseconds, exactly as ``datetime.fromtimestamp`` would.
    """
    known = _STAMPS.get(epoch_seconds)
    if known is not None:
        return known
    if not 0.0 <= epoch_seconds < _EXACT_EPOCH_LIMIT:
        return _iso_timestamp_datetime(epoch_seconds)
    fraction, whole = math.modf(epoch_seconds)
    micros = round(fraction * 1e6)
    seconds = int(whole)
    if micros >= 1_000_000:
        micros -= 1_000_000
        seconds += 1
    days, rest = divmod(seconds, 86400)
    prefix = _DAY_PREFIX.get(days)
    if prefix is None:
        prefix = _iso_timestamp_datetime(days * 86400)[:-13]  # strip "HH:MM:SS.mmmZ"
        if len(_DAY_PREFIX) >= _CACHE_LIMIT:
            _DAY_PREFIX.clear()
        _DAY_PREFIX[days] = prefix
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    stamp = f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{micros // 1000:03d}Z"
    if len(_STAMPS) >= _CACHE_LIMIT:
        _STAMPS.clear()
    _STAMPS[epoch_seconds] = stamp
    return stamp


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
    description: str = "",
    references: Sequence[str] = (),
    ruleset: str = "secstream",
) -> dict[str, Any]:
    """Build an ECS alert document (the fields Elastic Security reads from an external alert).

    The id is derived from the rule and the evidence, so the same evidence always yields the same
    detection id. Process lineage, user, network and related IoCs are copied from ``source_event`` when
    given. Techniques become ``threat.technique.*`` and sub-techniques ``threat.technique.subtechnique.*``,
    with names, tactics and reference URLs (:func:`schemas.attack.threat_fields`).

    Args:
        rule_id: stable rule identifier.
        rule_name: human-readable rule name.
        rule_version: version of the rule definition.
        severity: 0-100 (ECS ``event.severity``, also ``event.risk_score``); 21 low, 47 medium, 73 high,
            99 critical.
        technique_ids: MITRE ATT&CK technique and sub-technique ids (``T1059.004``).
        host: host name.
        timestamp: epoch seconds of the triggering event.
        evidence_event_ids: ids of the events that triggered the rule.
        message: one-line description of what was seen.
        source_event: the triggering event document, for lineage and IoCs.
        extra: additional fields merged under ``secstream``.
        description: what the rule looks for (``rule.description``).
        references: URLs about the rule or what it detects (``rule.reference``).
        ruleset: the rule set (``rule.ruleset``): ``secstream`` for the built-in rules and detectors.
    """
    evidence = sorted(set(evidence_event_ids))
    rule: dict[str, Any] = {"id": rule_id, "name": rule_name, "version": rule_version}
    rule.update(description=description or rule_name, ruleset=ruleset)
    if references:
        rule["reference"] = list(references)
    doc: dict[str, Any] = {
        "@timestamp": iso_timestamp(timestamp),
        "ecs": {"version": ECS_VERSION},
        "message": message,
        "event": {
            "id": stable_id("detection", rule_id, *evidence),
            "kind": "alert",
            "severity": severity,
            "risk_score": float(severity),
            "module": "secstream",
            "dataset": "secstream.alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
        },
        "rule": rule,
        "threat": threat_fields(technique_ids),
        "host": {"name": host},
        "secstream": {"schema_version": SCHEMA_VERSION, "evidence": {"event_ids": evidence}, **(extra or {})},
    }
    if source_event is not None:
        for key in ("process", "user", "related", "source", "destination"):
            if key in source_event:
                doc[key] = source_event[key]
        copied = source_event.get("secstream", {})
        for key in ("iocs", "process", "user"):
            if copied.get(key):
                doc["secstream"][key] = copied[key]
    return doc


DEAD_LETTER_ORIGINAL_BYTES = 65536
"""The most bytes of an original a dead letter keeps; a longer one keeps its head, its size and its SHA-256."""


def dead_letter(
    *,
    original: str | bytes,
    reason: str,
    error_type: str,
    stream: str,
    host: str | None = None,
    timestamp: float | None = None,
    source: Mapping[str, Any] | None = None,
    keep: int = DEAD_LETTER_ORIGINAL_BYTES,
    whole: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """Build a dead-letter document for input that could not be processed.

    ``event.original`` holds the input as text (undecodable bytes escaped as ``\\xNN``), and
    ``secstream.original_base64`` holds the exact original bytes. An original longer than ``keep`` bytes
    keeps only its first ``keep`` bytes, so one huge input cannot make a huge output record:
    ``secstream.original_size`` and ``secstream.original_sha256`` then identify the whole (``secstream.source``
    says where to find it), ``secstream.original_truncated`` is true, and the id is derived from the digest.

    Args:
        original: the raw input.
        reason: why it could not be processed.
        error_type: the error class name.
        stream: the input stream (``auditd`` or ``syslog``; ``secstream`` for an alert too large to send):
            ``event.module``, and ``event.dataset`` is ``<stream>.deadletter``.
        host: the host, when known (``host.name`` is ``unknown`` otherwise).
        timestamp: when it was seen (epoch seconds); the id does not depend on it.
        source: where it came from (``topic``, ``partition``, ``offset`` or ``file``, ``line``).
        keep: the most bytes of the original kept.
        whole: (size, SHA-256 hex) of the whole original when ``original`` is already only its head (a
            reader that never held the whole line in memory).
    """
    raw = original if isinstance(original, bytes) else original.encode("utf-8", "surrogateescape")
    if whole is None and len(raw) > keep:
        whole = (len(raw), hashlib.sha256(raw).hexdigest())
    if whole is not None:
        raw = raw[:keep]
    text = raw.decode("utf-8", "backslashreplace")
    where = dict(source) if source else {}
    identity = raw.hex() if whole is None else whole[1]
    doc: dict[str, Any] = {
        "@timestamp": iso_timestamp(timestamp if timestamp is not None else 0.0),
        "ecs": {"version": ECS_VERSION},
        "message": f"{stream} input not processed: {reason}",
        "event": {
            "id": stable_id("deadletter", stream, *sorted(where.items()), identity),
            "kind": "pipeline_error",
            "module": stream,
            "dataset": f"{stream}.deadletter",
            "original": text,
            "reason": reason,
        },
        "error": {"message": reason, "type": error_type},
        "host": {"name": host or "unknown"},
        "secstream": {
            "schema_version": SCHEMA_VERSION,
            "original_base64": base64.b64encode(raw).decode("ascii"),
            "source": where,
        },
    }
    if whole is not None:
        doc["secstream"].update(original_size=whole[0], original_sha256=whole[1], original_truncated=True)
    return doc


def truncated_dead_letter(
    original: bytes,
    keep: int,
    *,
    reason: str,
    error_type: str,
    stream: str,
    host: str | None = None,
    timestamp: float | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A :func:`dead_letter` that holds only the first ``keep`` bytes of ``original`` and is marked truncated
    whatever its length, for an original too large for an output record."""
    return dead_letter(
        original=original,
        reason=reason,
        error_type=error_type,
        stream=stream,
        host=host,
        timestamp=timestamp,
        source=source,
        keep=keep,
        whole=(len(original), hashlib.sha256(original).hexdigest()),
    )
