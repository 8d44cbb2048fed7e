"""The audit record header: the one definition of an audit line's event key.

A raw audit line starts with ``[ \\t]*[node=HOST ]type=TYPE msg=audit(SECONDS.FRACTION:SERIAL)``. The event
a line belongs to is ``(host, serial)``: the ``node=`` value, or the caller's fallback host for a line that
names none. Every reader of that header follows this module: the parser (:mod:`processors.audit.parse`),
the route stage and the produce command (``streams.serde``, ``streams.cli.kafka``), and the compiled
tokenizer and router (``native-rs/src/tokenizer.rs``, ``native-rs/src/route.rs``), which say so and are
held to it by a differential test.

A header is valid only when its numbers can be represented downstream:

* ``SECONDS`` is ASCII digits and before the year 10000 (:data:`MAX_EPOCH`): ``@timestamp`` is ISO 8601.
* ``SERIAL`` is ASCII digits and fits 64 bits (:data:`MAX_SERIAL`): the kernel's serial is an unsigned
  int, and JSON writers and Kafka consumers read integers as 64-bit.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["HEADER", "MAX_EPOCH", "MAX_SERIAL", "TEXT_HEADER", "event_key", "header_problem"]

# A node or type runs to whitespace or to the ENRICHED separator \x1d (which ends the raw fields).
_PATTERN: Final = (
    r"[ \t]*(?:node=([^\s\x1d]+) )?type=([^\s\x1d]+) msg=audit\(([0-9]{1,12})\.([0-9]{1,9}):([0-9]{1,20})\)"
)
#: ``[ \t]*[node=HOST ]type=TYPE msg=audit(SECONDS.FRACTION:SERIAL)`` on bytes (``[0-9]`` is ASCII only).
HEADER: Final = re.compile(_PATTERN.encode())
#: The same rule on text: ``re.ASCII`` makes ``\s`` the same six spaces as on bytes.
TEXT_HEADER: Final = re.compile(_PATTERN, re.ASCII)
#: 10000-01-01T00:00:00Z: the first second an ISO 8601 ``@timestamp`` cannot hold.
MAX_EPOCH: Final = 253402300800
#: The largest serial a 64-bit unsigned integer holds.
MAX_SERIAL: Final = 2**64 - 1


def _bytes(line: str | bytes) -> bytes:
    return line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")


def header_problem(seconds: int, serial: int) -> str | None:
    """Why a header's numbers cannot be represented, or None when they can.

    Args:
        seconds: the whole seconds of the event time.
        serial: the serial number.

    Returns:
        A one-line reason, or None.
    """
    if seconds >= MAX_EPOCH:
        return f"audit event time {seconds} is after the year 9999"
    if serial > MAX_SERIAL:
        return f"audit serial {serial} does not fit 64 bits"
    return None


def event_key(line: str | bytes, fallback_host: str) -> tuple[str, int] | None:
    """The ``(host, serial)`` of the audit event a line belongs to, or None when it has no valid header.

    Args:
        line: the raw line (text or bytes).
        fallback_host: the host of a line without ``node=``.

    Returns:
        ``(host, serial)``: host is the ``node=`` value (UTF-8, undecodable bytes replaced) or
        ``fallback_host``; None when the header is missing or its numbers are out of range.
    """
    match = HEADER.match(_bytes(line))
    if match is None:
        return None
    node, _, seconds, _, serial_text = match.groups()
    serial = int(serial_text)
    if header_problem(int(seconds), serial) is not None:
        return None
    host = node.decode("utf-8", "replace") if node is not None else fallback_host
    return host, serial
