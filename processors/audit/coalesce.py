"""Coalesce audit records into events keyed by ``(node, time, serial)``.

Rules:

* An event is complete on its ``EOE`` record (``reason="eoe"``, ``partial=False``).
* Single-record types (:data:`SINGLE_RECORD_PREFIXES`, :data:`SINGLE_RECORD_TYPES`) are complete at once
  (``reason="single"``) when they open an event. These are the user-space messages (``USER_*``, ``CRED_*``,
  ``SERVICE_*``, ``DAEMON_*``, user-space ``ANOM_*``), ``LOGIN`` and ``CONFIG_CHANGE``, which the kernel or the
  daemon write without an ``EOE``. ``AVC``, ``ANOM_PROMISCUOUS``/``ANOM_LINK``/``ANOM_CREAT`` and ``NETFILTER_CFG``
  are written in a syscall context (followed by ``SYSCALL``/``EOE``) and are therefore *not* single. A
  single-record type that arrives while other records of the same key are in flight just joins that event.
* An event without ``EOE`` completes (``partial=True``) when the max event time seen for its node exceeds its
  time by ``event_timeout_s`` (``reason="timeout"``), when no record arrived for it for ``idle_flush_s`` of
  injected wall-clock time (``reason="idle"``), when it is the oldest in flight and ``max_in_flight`` is
  exceeded (``reason="overflow"``), or on :meth:`Coalescer.flush_all` (``reason="shutdown"``).
* A record for an event that already completed is emitted as a :class:`LateRecord` linked to the event id.
  A record identical to one already seen for that event (in flight or completed) is dropped and counted.
  Completed events are remembered per node (the last ``done_memory`` of them, with a CRC-32 of each record).
* An ``EOE`` for an event that is neither in flight nor remembered raises :class:`OrphanEndOfEventError`.

The state is a plain object handed in by the caller; :meth:`CoalescerState.snapshot` gives orjson-ready data.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from processors.audit.parse import AuditRecord, parse_line
from processors.errors import OrphanEndOfEventError
from schemas.documents import stable_id

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
SINGLE_RECORD_PREFIXES: Final[tuple[str, ...]] = ("USER_", "CRED_", "SERVICE_", "DAEMON_", "ANOM_", "SYSTEM_")
#: Exact record types that form a complete event on their own.
SINGLE_RECORD_TYPES: Final[frozenset[str]] = frozenset(
    {"LOGIN", "CONFIG_CHANGE", "USYS_CONFIG", "GRP_AUTH", "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP"}
)
#: Kernel ANOM_* types written in a syscall context (followed by SYSCALL and EOE).
_SYSCALL_CONTEXT_ANOM: Final[frozenset[str]] = frozenset({"ANOM_PROMISCUOUS", "ANOM_LINK", "ANOM_CREAT"})

EventKey = tuple[str | None, str, int]


_SINGLE_CACHE: dict[str, bool] = {}


def is_single_record_type(rtype: str) -> bool:
    """Return True when a record of this type is a complete event on its own.

    Args:
        rtype: the record type.

    Returns:
        Whether the type completes an event at once.
    """
    known = _SINGLE_CACHE.get(rtype)
    if known is not None:
        return known
    single = rtype in SINGLE_RECORD_TYPES or (
        rtype.startswith(SINGLE_RECORD_PREFIXES) and rtype not in _SYSCALL_CONTEXT_ANOM
    )
    if len(_SINGLE_CACHE) < 4096:
        _SINGLE_CACHE[rtype] = single
    return single


def event_id_for(node: str | None, time: str, serial: int) -> str:
    """Return the deterministic event id for an event key.

    Args:
        node: the node name (None when the line had no ``node=``).
        time: the event time text.
        serial: the serial number.

    Returns:
        ``stable_id("auditd", node or "", time, serial)``.
    """
    return stable_id("auditd", node or "", time, serial)


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

_new_object = object.__new__
# Slot setters: building the frozen dataclass this way skips its slow ``__init__`` on the hot path.
(_set_node, _set_time, _set_serial, _set_epoch, _set_records, _set_partial, _set_reason) = (
    getattr(AuditEvent, name).__set__ for name in ("node", "time", "serial", "epoch", "records", "partial", "reason")
)


@dataclass(frozen=True, slots=True)
class CoalescerSettings:
    """Settings of the coalescer.

    Attributes:
        event_timeout_s: event-time timeout for events without EOE (per node).
        idle_flush_s: wall-clock idle time after which an in-flight event is flushed.
        max_in_flight: maximum number of in-flight events (all nodes); the oldest is flushed on overflow.
        done_memory: number of completed event keys remembered per node to recognise late records.
    """

    event_timeout_s: float = 2.0
    idle_flush_s: float = 5.0
    max_in_flight: int = 10_000
    done_memory: int = 4096


@dataclass(slots=True)
class _Pending:
    """An in-flight event."""

    epoch: float
    records: list[AuditRecord]
    last_wall: float | None


def _crc(record: AuditRecord) -> int:
    return zlib.crc32(record.raw.encode("utf-8", "surrogatepass"))


_COUNTERS: Final[tuple[str, ...]] = ("completed", "partial", "late", "duplicate", "overflow", "orphan_eoe")


@dataclass(slots=True)
class CoalescerState:
    """Mutable coalescer state, owned by the caller.

    Attributes:
        in_flight: in-flight events keyed by ``(node, time, serial)``, oldest first.
        done: per node, the completed event keys ``(time, serial)`` with the CRC-32 of their records.
        node_max: per node, the max event time seen.
        wall_now: the last wall-clock time handed in (used for records pushed without one).
        counters: completed, partial, late, duplicate, overflow, orphan_eoe.
        earliest_epoch: a lower bound of the in-flight events' times (None: unknown), so that
            :meth:`Coalescer.expire` can return at once when nothing can be due; not part of the snapshot.
        latest_epoch: the max event time seen on any node (kept with ``node_max``).
    """

    in_flight: dict[EventKey, _Pending] = field(default_factory=dict)
    # CRCs are kept in tuples: a tuple of ints is invisible to the garbage collector, a set is not.
    done: dict[str | None, OrderedDict[tuple[str, int], tuple[int, ...]]] = field(default_factory=dict)
    node_max: dict[str | None, float] = field(default_factory=dict)
    wall_now: float | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    earliest_epoch: float | None = field(default=None, compare=False)
    latest_epoch: float = field(default=0.0, compare=False)

    def snapshot(self) -> dict[str, Any]:
        """Return a plain, orjson-ready copy of the state (records are kept as raw lines).

        Returns:
            The snapshot.
        """
        return {
            "in_flight": [
                {
                    "node": node,
                    "time": time,
                    "serial": serial,
                    "epoch": pending.epoch,
                    "last_wall": pending.last_wall,
                    "records": [record.raw for record in pending.records],
                }
                for (node, time, serial), pending in self.in_flight.items()
            ],
            "done": [
                {"node": node, "events": [[time, serial, sorted(crcs)] for (time, serial), crcs in keys.items()]}
                for node, keys in self.done.items()
            ],
            "node_max": [[node, value] for node, value in self.node_max.items()],
            "wall_now": self.wall_now,
            "counters": dict(self.counters),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> CoalescerState:
        """Rebuild a state from :meth:`snapshot` output.

        Args:
            data: the snapshot.

        Returns:
            The state.
        """
        state = cls()
        for item in data.get("in_flight", []):
            key: EventKey = (item["node"], item["time"], int(item["serial"]))
            records = [parse_line(raw) for raw in item["records"]]
            state.in_flight[key] = _Pending(float(item["epoch"]), records, item.get("last_wall"))
        for item in data.get("done", []):
            memory: OrderedDict[tuple[str, int], tuple[int, ...]] = OrderedDict()
            for time, serial, crcs in item["events"]:
                memory[(time, int(serial))] = tuple(crcs)
            state.done[item["node"]] = memory
        state.node_max = {node: float(value) for node, value in data.get("node_max", [])}
        state.latest_epoch = max(state.node_max.values(), default=0.0)
        state.wall_now = data.get("wall_now")
        state.counters.update({k: int(v) for k, v in data.get("counters", {}).items()})
        return state


class Coalescer:
    """Groups audit records into events (see the module docstring for the rules).

    Args:
        settings: the coalescer settings.
    """

    def __init__(self, settings: CoalescerSettings | None = None) -> None:
        self.settings = settings or CoalescerSettings()

    def push(
        self, record: AuditRecord, state: CoalescerState, *, wall_time: float | None = None
    ) -> list[CoalescerOutput]:
        """Add one record.

        Args:
            record: the parsed record.
            state: the coalescer state (mutated).
            wall_time: the wall-clock time of arrival (defaults to the last one handed in).

        Returns:
            The events completed by this record (EOE, single-record type, overflow) or a late record.

        Raises:
            OrphanEndOfEventError: an EOE arrived for an event that is neither in flight nor remembered.
        """
        if wall_time is not None:
            state.wall_now = wall_time
        node = record.node
        epoch = record.epoch
        node_max = state.node_max
        if epoch > node_max.get(node, 0.0):
            node_max[node] = epoch
            if epoch > state.latest_epoch:
                state.latest_epoch = epoch
        key: EventKey = (node, record.time, record.serial)
        pending = state.in_flight.get(key)
        if pending is not None:
            if record.rtype == "EOE":
                del state.in_flight[key]
                return [self._complete(state, key, pending.epoch, pending.records, False, "eoe", record)]
            raw = record.raw
            for seen in pending.records:
                if seen.raw == raw:
                    state.counters["duplicate"] += 1
                    return []
            pending.records.append(record)
            pending.last_wall = state.wall_now
            return []
        memory = state.done.get(node)
        if memory is not None:
            done_key = (record.time, record.serial)
            crcs = memory.get(done_key)
            if crcs is not None:
                crc = _crc(record)
                if crc in crcs:
                    state.counters["duplicate"] += 1
                    return []
                memory[done_key] = (*crcs, crc)
                state.counters["late"] += 1
                return [LateRecord(record, event_id_for(node, record.time, record.serial))]
        if record.rtype == "EOE":
            state.counters["orphan_eoe"] += 1
            raise OrphanEndOfEventError(
                f"EOE for event {record.time}:{record.serial} that is not in flight", raw=record.raw, host=node
            )
        single = _SINGLE_CACHE.get(record.rtype)
        if single is None:
            single = is_single_record_type(record.rtype)
        if single:
            return [self._complete(state, key, epoch, [record], False, "single")]
        state.in_flight[key] = _Pending(epoch, [record], state.wall_now)
        if state.earliest_epoch is not None and epoch < state.earliest_epoch:
            state.earliest_epoch = epoch
        if len(state.in_flight) > self.settings.max_in_flight:
            oldest = next(iter(state.in_flight))
            state.counters["overflow"] += 1
            pending = state.in_flight.pop(oldest)
            return [self._complete(state, oldest, pending.epoch, pending.records, True, "overflow")]
        return []

    def expire(
        self, state: CoalescerState, *, event_time: float | None = None, wall_time: float | None = None
    ) -> list[CoalescerOutput]:
        """Complete the in-flight events that timed out.

        Args:
            state: the coalescer state (mutated).
            event_time: a watermark in event time applied to every node (in addition to each node's max
                seen event time).
            wall_time: the current wall-clock time; events whose last record arrived more than
                ``idle_flush_s`` before it are flushed.

        Returns:
            The completed events, ordered by event time and serial.
        """
        timeout = self.settings.event_timeout_s
        if wall_time is not None:
            state.wall_now = wall_time
        elif state.earliest_epoch is not None:
            # Called after every record: return at once unless some in-flight event can be due.
            latest = state.latest_epoch if event_time is None else max(state.latest_epoch, event_time)
            if latest - state.earliest_epoch <= timeout:
                return []
        idle = self.settings.idle_flush_s
        due: list[tuple[EventKey, str]] = []
        node_max = state.node_max
        for key, pending in state.in_flight.items():
            now = node_max.get(key[0], 0.0)
            if event_time is not None and event_time > now:
                now = event_time
            if now - pending.epoch > timeout:
                due.append((key, "timeout"))
            elif wall_time is not None and pending.last_wall is not None and wall_time - pending.last_wall > idle:
                due.append((key, "idle"))
        completed: list[CoalescerOutput] = []
        if due:
            due.sort(key=lambda item: (state.in_flight[item[0]].epoch, item[0][2]))
            for key, reason in due:
                pending = state.in_flight.pop(key)
                completed.append(self._complete(state, key, pending.epoch, pending.records, True, reason))
        state.earliest_epoch = min((pending.epoch for pending in state.in_flight.values()), default=float("inf"))
        return completed

    def flush_all(self, state: CoalescerState) -> list[CoalescerOutput]:
        """Complete every in-flight event (shutdown).

        Args:
            state: the coalescer state (mutated).

        Returns:
            The completed events, ordered by event time and serial.
        """
        keys = sorted(state.in_flight, key=lambda key: (state.in_flight[key].epoch, key[2]))
        completed: list[CoalescerOutput] = []
        for key in keys:
            pending = state.in_flight.pop(key)
            completed.append(self._complete(state, key, pending.epoch, pending.records, True, "shutdown"))
        return completed

    def _complete(
        self,
        state: CoalescerState,
        key: EventKey,
        epoch: float,
        records: list[AuditRecord],
        partial: bool,
        reason: str,
        eoe: AuditRecord | None = None,
    ) -> AuditEvent:
        # Positional arguments and no per-event helper objects: this runs once per event on the hot path.
        node, time, serial = key
        memory = state.done.get(node)
        if memory is None:
            memory = state.done[node] = OrderedDict()
        crcs = (_crc(records[0]),) if len(records) == 1 else tuple({_crc(record) for record in records})
        if eoe is not None:
            crcs = (*crcs, _crc(eoe))
        memory[(time, serial)] = crcs
        if len(memory) > self.settings.done_memory:
            memory.popitem(last=False)
        counters = state.counters
        counters["completed"] += 1
        if partial:
            counters["partial"] += 1
        event: AuditEvent = _new_object(AuditEvent)
        _set_node(event, node)
        _set_time(event, time)
        _set_serial(event, serial)
        _set_epoch(event, epoch)
        _set_records(event, tuple(records))
        _set_partial(event, partial)
        _set_reason(event, reason)
        return event
