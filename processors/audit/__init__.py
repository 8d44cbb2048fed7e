"""Linux audit (auditd) input: parse raw lines, coalesce records into events, decode events to ECS documents."""

from processors.audit.coalesce import (
    AuditEvent,
    Coalescer,
    CoalescerOutput,
    CoalescerSettings,
    CoalescerState,
    LateRecord,
    event_id_for,
    is_single_record_type,
)
from processors.audit.decode import decode_event, decode_late, interpret_event
from processors.audit.parse import AuditRecord, parse_line
from processors.audit.syscalls import arch_name, syscall_name

__all__ = [
    "AuditEvent",
    "AuditRecord",
    "Coalescer",
    "CoalescerOutput",
    "CoalescerSettings",
    "CoalescerState",
    "LateRecord",
    "arch_name",
    "decode_event",
    "decode_late",
    "event_id_for",
    "interpret_event",
    "is_single_record_type",
    "parse_line",
    "syscall_name",
]
