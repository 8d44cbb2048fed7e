"""Coalesce audit records into events keyed by ``(node, time, serial)``.

Rules:

* An event is complete on its ``EOE`` record (``reason="eoe"``, ``partial=False``).
* Single-record types (:data:`SINGLE_RECORD_PREFIXES`, :data:`SINGLE_RECORD_TYPES`) are the user-space
  messages (``USER_*``, ``CRED_*``, ``SERVICE_*``, ``DAEMON_*``, ``CRYPTO_*``, ``VIRT_*``, user-space
  ``ANOM_*``, ...), ``LOGIN`` and ``CONFIG_CHANGE``. Real logs show them in two forms: alone, and (when
  the process that wrote them was in an audited system call) followed by ``SYSCALL``/``PROCTITLE``/
  ``SOCKADDR``/``EOE`` records of the same serial.
  One that opens an event is *held*: it completes (``reason="single"``, ``partial=False``) as soon as the next
  record of its node belongs to another event, on the next wall-clock :meth:`Coalescer.expire`, on overflow
  or on shutdown; a record of its own serial that arrives first joins it, and the event then completes on its
  ``EOE`` like any other. A busy host's next record follows within milliseconds, so the single-record form is
  not delayed in practice. ``AVC``, ``ANOM_PROMISCUOUS``/``ANOM_LINK``/``ANOM_CREAT`` and ``NETFILTER_CFG``
  are written in a syscall context and are *not* single. A single-record type that arrives while other
  records of the same key are in flight just joins that event.
* Lineage: an exec event (one with ``EXECVE``) that completes while the exec event of its parent process
  (same node, SYSCALL ``pid`` equal to its ``ppid``, not later) is still in flight waits for it, so that the
  process tree sees the parent first: it goes out right after the parent's event, or when ``lineage_wait_s``
  of its node's event time (or ``idle_flush_s`` of wall-clock time) has passed, counted as
  ``lineage_wait_expired``. ``lineage_wait_s=0`` turns the wait off.
* A record dated more than ``max_ahead_s`` after the wall-clock time it was received (``wall_time``, when
  given and positive) raises :class:`FutureEventError` and is counted (``future``); it changes no state.
* Serial gaps are counted per node as lost events (``lost``), as go-libaudit counts them: a missing serial is
  counted once a serial ``gap_window`` past it has arrived (records may arrive out of order until then).
  ``DAEMON_*`` records (numbered by auditd, not the kernel) are left out; a jump of more than a million
  serials (a reboot resets them) starts the count afresh.
* An event without ``EOE`` completes (``partial=True``) when the max event time seen for its node exceeds its
  time by ``event_timeout_s`` (``reason="timeout"``), when no record arrived for it for ``idle_flush_s`` of
  injected wall-clock time (``reason="idle"``), when it is the oldest in flight and ``max_in_flight`` is
  exceeded (``reason="overflow"``), or on :meth:`Coalescer.flush_all` (``reason="shutdown"``).
* A record for an event that already completed is emitted as a :class:`LateRecord` linked to the event id.
  A record identical to one already seen for that event (in flight or completed) is dropped and counted.
  Completed events are remembered per node (the last ``done_memory`` of them, with a CRC-32 of each record).
* An ``EOE`` for an event that is neither in flight nor remembered raises :class:`OrphanEndOfEventError`.

Reassembly window: an event without ``EOE`` waits at most ``event_timeout_s`` of *event time* (its node's
newest record time minus its own), unlike go-libaudit's reassembler, which waits a wall-clock timeout with a
bounded queue. Event time keeps the output independent of how fast and in which batches a file is read; the
price is that a record arriving behind one more than ``event_timeout_s`` newer (shuffled logs) becomes a late
record. ``coalescer.event_timeout_s`` sets the window (raise it for logs merged out of order);
``max_in_flight`` bounds the memory whatever the window.

The state is an object handed in by the caller; :meth:`CoalescerState.snapshot` gives orjson-ready data.
The rules run in compiled code (``processors/audit/native-rs/src/coalesce.rs``); this module defines
them, the outputs and the Python API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from secstream_audit_native import CoalescerBuffer, CoalescerCore

from processors.audit.parse import AuditRecord, parse_line
from processors.errors import FutureEventError, OrphanEndOfEventError

_blake2b = hashlib.blake2b

__all__ = [
    "SINGLE_RECORD_PREFIXES",
    "SINGLE_RECORD_TYPES",
    "AuditEvent",
    "Coalescer",
    "CoalescerOutput",
    "CoalescerSettings",
    "CoalescerState",
    "LateRecord",
    "event_id_for",
    "is_single_record_type",
]

#: Record-type prefixes that form a complete event on their own.
SINGLE_RECORD_PREFIXES: Final[tuple[str, ...]] = (
    *("USER_", "CRED_", "SERVICE_", "DAEMON_", "ANOM_", "SYSTEM_", "CRYPTO_", "VIRT_", "RESP_", "ROLE_"),
    *("ACCT_", "GRP_", "LABEL_"),
)
#: Exact record types that form a complete event on their own.
SINGLE_RECORD_TYPES: Final[frozenset[str]] = frozenset(
    {"LOGIN", "CONFIG_CHANGE", "USYS_CONFIG", "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP", "CHUSER_ID"}
    | {"CHGRP_ID", "TRUSTED_APP", "SOFTWARE_UPDATE", "DEV_ALLOC", "DEV_DEALLOC", "FS_RELABEL", "DAC_CHECK"}
    | {"MAC_CHECK", "TEST"}
)
#: Kernel ANOM_* types written in a syscall context (followed by SYSCALL and EOE).
_SYSCALL_CONTEXT_ANOM: Final[frozenset[str]] = frozenset({"ANOM_PROMISCUOUS", "ANOM_LINK", "ANOM_CREAT"})


def is_single_record_type(rtype: str) -> bool:
    """Return True when a record of this type is a complete event on its own.

    The compiled coalescer calls this once per record type and remembers the answer.

    Args:
        rtype: the record type.

    Returns:
        Whether the type completes an event at once.
    """
    return rtype in SINGLE_RECORD_TYPES or (
        rtype.startswith(SINGLE_RECORD_PREFIXES) and rtype not in _SYSCALL_CONTEXT_ANOM
    )


def event_id_for(node: str | None, time: str, serial: int) -> str:
    """Return the deterministic event id for an event key.

    Args:
        node: the node name (None when the line had no ``node=``).
        time: the event time text.
        serial: the serial number.

    Returns:
        ``stable_id("auditd", node or "", time, serial)``.
    """
    # stable_id's digest in one step: every event needs one, and the generic join costs more than the hash
    text = f"auditd\x1f{node or ''}\x1f{time}\x1f{serial}\x1f"
    return _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A coalesced audit event.

    Attributes:
        node: node name or None.
        time: event time text.
        serial: serial number.
        epoch: event time in seconds.
        records: the records in arrival order (the EOE record is not included).
        partial: True when it completed without an EOE (timeout, idle, overflow, shutdown).
        reason: ``eoe``, ``single``, ``timeout``, ``idle``, ``overflow`` or ``shutdown``.
    """

    node: str | None
    time: str
    serial: int
    epoch: float
    records: tuple[AuditRecord, ...]
    partial: bool
    reason: str

    @property
    def event_id(self) -> str:
        """The deterministic event id (see :func:`event_id_for`)."""
        return event_id_for(self.node, self.time, self.serial)


@dataclass(frozen=True, slots=True)
class LateRecord:
    """A record that arrived after its event was emitted.

    Attributes:
        record: the late record.
        event_id: the id of the event it belongs to.
    """

    record: AuditRecord
    event_id: str


CoalescerOutput = AuditEvent | LateRecord


@dataclass(frozen=True, slots=True)
class CoalescerSettings:
    """Settings of the coalescer.

    Attributes:
        event_timeout_s: event-time timeout for events without EOE (per node).
        idle_flush_s: wall-clock idle time after which an in-flight event is flushed.
        max_in_flight: maximum number of in-flight events (all nodes); the oldest is flushed on overflow.
        done_memory: number of completed event keys remembered per node to recognise late records.
        max_ahead_s: how far a record's time may be after its receive time (clock skew) before it is refused.
        gap_window: serials a missing one may trail the newest before it is counted lost.
        lineage_wait_s: how long (event time) an exec event waits for its parent's exec event still in
            flight; a fraction of ``event_timeout_s``, 0 to go out at once.
    """

    event_timeout_s: float = 2.0
    idle_flush_s: float = 5.0
    max_in_flight: int = 10_000
    done_memory: int = 4096
    max_ahead_s: float = 3600.0
    gap_window: int = 1000
    lineage_wait_s: float = 1.0


class CoalescerState(CoalescerBuffer):
    """Mutable coalescer state, owned by the caller; the in-flight records live in compiled code.

    Attributes:
        counters: completed, partial, late, duplicate, overflow, orphan_eoe, lost, future,
            lineage_wait_expired (a new dict on each read).
        in_flight: the in-flight events, oldest first: ``(node, time, serial)`` → records (a copy).
        done: per node, the remembered completed events ``(time, serial)``, oldest first (a copy).
        wall_now: the last wall-clock time handed in (used for records pushed without one).

    ``snapshot()`` returns a plain, orjson-ready copy (records as raw lines): ``in_flight`` (node, time,
    serial, epoch, last_wall, records), ``done`` (per node, ``[time, serial, sorted CRC-32s]``), ``node_max``,
    ``wall_now`` and ``counters``.
    """

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> CoalescerState:
        """Rebuild a state from :meth:`snapshot` output.

        Args:
            data: the snapshot.

        Returns:
            The state.
        """
        state = cls()
        state.restore(data, parse_line)
        return state


class Coalescer(CoalescerCore):
    """Groups audit records into events (see the module docstring for the rules).

    The rules run in compiled code (``processors/audit/native-rs/src/coalesce.rs``), called without a
    Python frame in between: ``push`` runs for every record. This class hands them the settings, the
    output classes, the single-record rule and the event id.

    * ``push(record, state, *, wall_time=None)`` adds one record and returns the events it completed (EOE,
      the node's held single-record event, overflow) or a :class:`LateRecord`; it raises
      :class:`OrphanEndOfEventError` for an EOE of an event neither in flight nor remembered and
      :class:`FutureEventError` for a record dated more than ``max_ahead_s`` after ``wall_time``.
    * ``expire(state, *, event_time=None, wall_time=None)`` completes the events that timed out in event time
      (each node's max, or the ``event_time`` watermark when later) or whose last record arrived more than
      ``idle_flush_s`` before ``wall_time`` (and, given a ``wall_time``, the held single-record events),
      ordered by event time and serial.
    * ``flush_all(state)`` completes every in-flight event (shutdown), ordered by event time and serial.

    Args:
        settings: the coalescer settings.
    """

    settings: CoalescerSettings

    def __new__(cls, settings: CoalescerSettings | None = None) -> Coalescer:
        settings = settings or CoalescerSettings()
        self = super().__new__(
            cls,
            settings,
            AuditEvent,
            LateRecord,
            event_id_for,
            OrphanEndOfEventError,
            FutureEventError,
            is_single_record_type,
        )
        self.settings = settings
        return self
