"""secstream's compiled auditd hot paths: the line tokenizer, the coalescer, the event decoder and the route
stage's packing of raw records (see src/)."""

from collections.abc import Callable
from typing import Any, Generic, TypeVar

_R = TypeVar("_R")

class RecordTokenizer(Generic[_R]):
    """Makes record objects of a slotted class straight from raw audit lines."""

    def __init__(self, cls: type[_R], no_quoted: frozenset[str]) -> None:
        """Bind the record class (slots node, rtype, time, serial, epoch, fields, enriched, raw, quoted)."""

    def __call__(self, line: str) -> _R | None:
        """Return the record of one raw audit line, or None when the Python parser must decide."""

class CoalescerBuffer:
    """The coalescer's state: in-flight events, completed-event memory, node times and counters."""

    @property
    def counters(self) -> dict[str, int]: ...
    @property
    def in_flight(self) -> dict[tuple[str | None, str, int], list[Any]]: ...
    @property
    def done(self) -> dict[str | None, list[tuple[str, int]]]: ...
    @property
    def wall_now(self) -> float | None: ...
    def snapshot(self) -> dict[str, Any]:
        """Return a plain, orjson-ready copy of the state (records as raw lines)."""

    def restore(self, data: dict[str, Any], parse: Callable[[str], Any]) -> None:
        """Load a snapshot into this new state, parsing records back with ``parse``."""

class CoalescerCore:
    """The coalescer's rules: push, expire and flush over a :class:`CoalescerBuffer`."""

    def __new__(
        cls: type[_R],
        settings: Any,
        event_class: type,
        late_class: type,
        event_id: Callable[[str | None, str, int], str],
        orphan_error: type[BaseException],
        future_error: type[BaseException],
        is_single: Callable[[str], bool],
    ) -> _R: ...
    def push(self, record: Any, state: CoalescerBuffer, *, wall_time: float | None = None) -> list[Any]:
        """Add one record; return the events it completed or a late record."""

    def expire(
        self, state: CoalescerBuffer, *, event_time: float | None = None, wall_time: float | None = None
    ) -> list[Any]:
        """Complete the in-flight events that timed out or went idle."""

    def flush_all(self, state: CoalescerBuffer) -> list[Any]:
        """Complete every in-flight event."""

class EventDecoder:
    """Makes the ECS document of an audit event (``processors.audit.decode._build`` defines it)."""

    def __init__(
        self,
        *,
        unset: frozenset[str],
        no_name: frozenset[str],
        account_management: frozenset[str],
        acted_on: frozenset[str],
        hex_fields: frozenset[str],
        arch_names: dict[str, str],
        tables: dict[str, dict[int, str]],
        syscall_category: dict[str, tuple[list[str], list[str]]],
        type_category: dict[str, tuple[list[str], list[str]]],
        source_syscalls: frozenset[str],
        outcomes: dict[str | None, str],
        other_skip: list[str],
        syscall_skip: frozenset[str],
        schema_version: str,
        iso_timestamp: Callable[[float], str],
        decode_saddr: Callable[[str | None], dict[str, Any] | None],
        ip: Callable[[str | None], str | None],
        max_arg_gap: int,
        proctitle_limit: int,
    ) -> None: ...
    def build(
        self,
        node: str | None,
        serial: int,
        epoch: float,
        event_id: str,
        records: tuple[Any, ...],
        partial: bool,
        default_host: str,
    ) -> dict[str, Any] | None:
        """Return the document, or None when the Python reference must make it."""

def pack_audit_records(records: list[Any], default_host: str, pack_bytes: int) -> list[tuple[str, bytes]] | None:
    """Split, key and pack raw audit records by host into internal frames; None when one is not raw text."""

def audit_arches() -> list[tuple[str, str]]:
    """``[(arch value as auditd writes it, machine name), ...]`` for every architecture audit defines."""

def syscall_tables() -> dict[str, dict[int, str]]:
    """Machine name → {syscall number: name}, for every machine with a maintained syscall table."""
