"""How every stage reads the inter-stage document: one home for its time, its host and dotted paths.

The document is the ECS-shaped ``dict`` that decoding (auditd) or parsing (syslog) creates and the later
stages annotate. Each of these readers used to exist once per stage, with a cache each; a stage that
needs one of them calls it here, so that all stages read a field the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["EXEC_SYSCALLS", "audit_user", "event_epoch", "get_parts", "get_path", "host_of", "syslog_details"]

EXEC_SYSCALLS = frozenset({"execve", "execveat"})
"""The ``event.action`` of an audit event that starts a new program image."""

_EPOCHS: dict[str, float] = {}  # several stages read the same @timestamp of each event: parse it once
_PATHS: dict[str, tuple[str, ...]] = {}


def event_epoch(doc: Mapping[str, Any]) -> float:
    """Return the ``@timestamp`` of a document as epoch seconds (0.0 when missing or malformed).

    Args:
        doc: an event document.

    Returns:
        Epoch seconds.
    """
    stamp = doc.get("@timestamp")
    if type(stamp) is str:
        cached = _EPOCHS.get(stamp)
        if cached is not None:
            return cached
    if isinstance(stamp, str):
        try:
            value = datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            value = 0.0
        if len(_EPOCHS) >= 4096:
            _EPOCHS.clear()
        _EPOCHS[stamp] = value
        return value
    return 0.0


def get_parts(doc: Mapping[str, Any], parts: Sequence[str]) -> Any:
    """Return the value at a path given as its parts, or None where any part is missing.

    Args:
        doc: an event document (or any nested mapping).
        parts: the keys from the top, e.g. ``("process", "parent", "pid")``.

    Returns:
        The value, or None.
    """
    value: Any = doc
    for part in parts:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def get_path(doc: Mapping[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path (``"process.parent.pid"``), or None where any part is missing.

    Args:
        doc: an event document.
        dotted: the field name in ECS's dotted notation.

    Returns:
        The value, or None.
    """
    parts = _PATHS.get(dotted)
    if parts is None:
        parts = tuple(dotted.split("."))
        if len(_PATHS) < 1024:
            _PATHS[dotted] = parts
    return get_parts(doc, parts)


def host_of(doc: Mapping[str, Any]) -> str | None:
    """Return the document's ``host.name``: the key of all per-host state."""
    host = doc.get("host")
    if isinstance(host, Mapping):
        name = host.get("name")
        return name if isinstance(name, str) else None
    return None


def audit_user(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the audit (login) user of an auditd document: ``secstream.user.audit``, or ``user.audit`` where
    the decoder still writes it there (output contract 1.0); empty when neither."""
    moved = ((doc.get("secstream") or {}).get("user") or {}).get("audit")
    if isinstance(moved, Mapping):
        return moved
    legacy = (doc.get("user") or {}).get("audit")
    return legacy if isinstance(legacy, Mapping) else {}


def syslog_details(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return what syslog interpretation found beyond ECS (service, command, tty...): ``secstream.syslog``
    (top-level ``syslog`` before output contract 2.0); empty when there is none."""
    details = (doc.get("secstream") or {}).get("syslog")
    return details if isinstance(details, Mapping) else {}
