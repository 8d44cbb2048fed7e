"""Syslog input: RFC 3164 / RFC 5424 lines and Log Analytics rows into interpreted ECS documents."""

from processors.syslog.parse import (
    FACILITY_NAMES,
    SEVERITY_NAMES,
    interpret,
    parse_syslog_line,
    parse_time,
    syslog_row_to_event,
)

__all__ = [
    "FACILITY_NAMES",
    "SEVERITY_NAMES",
    "interpret",
    "parse_syslog_line",
    "parse_time",
    "syslog_row_to_event",
]
