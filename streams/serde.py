"""Raw Kafka values in, :class:`~streams.graph.RawLine` out; and the framing of the internal by-host topic.

A raw value is either

* raw text: one or more newline-separated lines (``\\r\\n`` tolerated, blank lines skipped), or
* a JSON object whose ``message_field`` holds the line(s) and whose optional ``host_field`` names the host.

The message key, when there is one, is the host of last resort. A value that looks like a JSON object
but is not one, or lacks a usable message field, becomes a dead letter carrying the original bytes and
the source topic, partition and offset; nothing is dropped silently.

The worker repartitions raw lines by host once. :func:`audit_event_key` gives the (host, serial) an
audit line belongs to, its host picked the same way the stage graph does (``node=`` of the line, else
the envelope host or key, else the default); the worker routes by that host and uses the keys to hold
back acks of records whose event is still being coalesced. Lines travel on the internal topic
as their original bytes, packed per (batch, host) with each line's origin (:func:`encode_internal` /
:func:`decode_internal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from secstream_audit_native import pack_audit_records as _pack_audit_records

from processors.audit.header import event_key
from schemas.documents import dead_letter
from streams.graph import RawLine

__all__ = [
    "FRAME_HEADER",
    "SOURCE_HEADER",
    "Decoded",
    "SerdeSettings",
    "audit_event_key",
    "decode_internal",
    "decode_value",
    "encode_internal",
    "pack_audit_records",
]

SOURCE_HEADER: Final = "secstream-source"
"""Header of internal-topic messages: JSON ``{"topic", "partition", "offset"}`` of the raw record."""
HOST_HEADER: Final = "secstream-host"
"""Header of internal-topic messages: the envelope host or message key of the raw record, if any."""


@dataclass(frozen=True, slots=True)
class SerdeSettings:
    """How raw values are read.

    Args:
        message_field: for JSON-object values, the field holding the raw line(s).
        host_field: for JSON-object values, the optional field holding the host name.
    """

    message_field: str = "message"
    host_field: str = "host"


@dataclass(slots=True)
class Decoded:
    """The lines of one raw value, or the dead letter it became."""

    lines: list[RawLine] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _split(data: bytes) -> list[bytes]:
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]


def _lines(chunks: Sequence[bytes], host: str | None, source: dict[str, Any], received: float) -> list[RawLine]:
    """One RawLine per chunk, each with a source of its own (``source`` itself when there is one chunk)."""
    many = len(chunks) > 1
    return [
        RawLine(data=chunk, source={**source, "line": i} if many else source, host=host, received=received)
        for i, chunk in enumerate(chunks)
    ]


def decode_value(
    value: bytes | None,
    *,
    key: bytes | None,
    stream: str,
    topic: str,
    partition: int,
    offset: int,
    received: float,
    settings: SerdeSettings = SerdeSettings(),
) -> Decoded:
    """Decode one raw Kafka value into lines (or a dead letter).

    Args:
        value: the record value (None for a tombstone, which carries no input).
        key: the record key; its text is the host when the value names none.
        stream: ``auditd`` or ``syslog`` (for dead letters).
        topic: source topic.
        partition: source partition.
        offset: source offset.
        received: wall-clock epoch seconds when it was consumed.
        settings: the JSON envelope field names.

    Returns:
        The lines with their source, or one dead letter with the original bytes.
    """
    source = {"topic": topic, "partition": partition, "offset": offset}
    key_host = _text(key) if key else None
    if not value:
        return Decoded()
    if value.lstrip()[:1] != b"{":
        return Decoded(lines=_lines(_split(value), key_host, source, received))

    def bad(reason: str) -> Decoded:
        doc = dead_letter(
            original=value,
            reason=reason,
            error_type="DecodeError",
            stream=stream,
            host=key_host,
            timestamp=received,
            source=source,
        )
        return Decoded(deadletters=[doc])

    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return bad(f"value looks like a JSON object but is not valid JSON: {exc}")
    if not isinstance(envelope, dict):  # pragma: no cover - a '{' value that parses is an object
        return bad("value is JSON but not an object")
    message = envelope.get(settings.message_field)
    if not isinstance(message, str):
        return bad(f"JSON object has no string field {settings.message_field!r}")
    host = envelope.get(settings.host_field)
    if host is not None and not isinstance(host, str):
        return bad(f"JSON field {settings.host_field!r} is not a string")
    chunks = _split(message.encode("utf-8", "surrogatepass"))
    return Decoded(lines=_lines(chunks, host or key_host, source, received))


def audit_event_key(line: RawLine, default_host: str) -> tuple[str, int] | None:
    """The (host, serial) of the audit event a line belongs to, or None when the line has no audit header.

    Args:
        line: the raw audit line.
        default_host: the configured host for lines that name none.
    """
    # The header rule is processors.audit.header's; only the routing fields are read here.
    return event_key(line.data, line.host or default_host)


FRAME_HEADER: Final = "secstream-frame"
"""Header of packed internal-topic messages (:func:`encode_internal`): the framing version."""
_FRAME_V2: Final = b"2"


def _line_bytes(line: RawLine) -> bytes:
    return line.data if isinstance(line.data, bytes) else line.data.encode("utf-8", "surrogateescape")


def encode_internal(
    lines: Sequence[RawLine], keys: Iterable[tuple[str, int]] = ()
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Pack lines of one host (from one or many raw records) into one internal by-host message.

    The value is a JSON line of metadata (``s``: each line's source topic, partition, offset and line
    index; ``h``: its envelope host or key; ``k``: the distinct audit event keys of the lines, host and
    serial, so that the process stage need not read every line's header again), a newline, then the
    lines' original bytes, newline-joined (a decoded line never contains a newline). The received time is
    deliberately not carried: the process stage stamps lines when it consumes them, as before, because
    the coalescer's idle flush compares it with the wall clock, and route-time stamps of a backlog would
    flush events that are still arriving as partial.

    Args:
        lines: lines routed to the same host, in order.
        keys: their audit event keys (:func:`audit_event_key`); readers that find no ``k`` compute them.

    Returns:
        The value and the headers (the framing version).
    """
    meta: dict[str, Any] = {
        "s": [line.source for line in lines],
        "h": [line.host for line in lines],
    }
    distinct = sorted(set(keys))
    if distinct:  # serials have up to 20 digits, more than JSON integers carry safely
        meta["k"] = [[host, str(serial)] for host, serial in distinct]
    value = orjson.dumps(meta) + b"\n" + b"\n".join(_line_bytes(line) for line in lines)
    return value, [(FRAME_HEADER, _FRAME_V2)]


def pack_audit_records(
    records: Sequence[Any], default_host: str, pack_bytes: int
) -> list[tuple[str, bytes, list[tuple[str, bytes]]]] | None:
    """Route raw-text audit records in compiled code: ``(host, value, headers)`` of each internal message.

    The same messages, byte for byte, as :func:`decode_value`, :func:`audit_event_key` and
    :func:`encode_internal` make when one host's lines are packed ``pack_bytes`` of lines at a time (the
    worker's route stage). None when a record is not raw text (a JSON envelope, or a value that is not
    bytes): those records need :func:`decode_value`, and the caller routes the batch in Python.

    Args:
        records: Kafka records of the raw audit topic (``topic``, ``partition``, ``offset``, ``key``, ``value``).
        default_host: the configured host for lines that name none.
        pack_bytes: the line bytes (plus 64 a line) above which a host's lines go into another message.
    """
    packed = _pack_audit_records(list(records), default_host, pack_bytes)
    if packed is None:
        return None
    return [(host, value, [(FRAME_HEADER, _FRAME_V2)]) for host, value in packed]


def decode_internal(
    value: bytes,
    headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None,
    received: float,
    default_host: str,
) -> tuple[list[RawLine], set[tuple[str, int]]]:
    """Recover the lines of an internal-topic message with their original source and host, and the audit
    event keys of the lines (from the frame when it carries them).

    Args:
        value: the message value from :func:`encode_internal` (or the older one-record framing, whose
            source and host ride in headers).
        headers: the message headers.
        received: wall-clock epoch seconds when it was consumed (every line's received time).
        default_host: the configured host, for keys computed here (frames written without ``k``).
    """
    header_map = dict(headers.items() if isinstance(headers, Mapping) else headers or ())
    if header_map.get(FRAME_HEADER) == _FRAME_V2:
        head, _, body = value.partition(b"\n")
        meta = orjson.loads(head)
        datas = body.split(b"\n")
        lines = [
            RawLine(data=data, source=source, host=host, received=received)
            for data, source, host in zip(datas, meta["s"], meta["h"], strict=True)
        ]
        carried = meta.get("k")
        if carried is not None:
            return lines, {(host, int(serial)) for host, serial in carried}
    else:
        raw_source = header_map.get(SOURCE_HEADER)
        source: dict[str, Any] = orjson.loads(raw_source) if raw_source else {}
        raw_host = header_map.get(HOST_HEADER)
        host = raw_host.decode("utf-8", "surrogateescape") if raw_host is not None else None
        lines = _lines(value.split(b"\n"), host, source, received)
    keys = {key for key in (audit_event_key(line, default_host) for line in lines) if key is not None}
    return lines, keys
