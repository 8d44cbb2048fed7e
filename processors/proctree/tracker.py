"""Rolling process tracker: keeps the live process tree of one host and adds lineage to process events.

Model
-----
* A process node is keyed by ``(host, pid, start)``; its ``entity_id`` is
  ``stable_id("process", host, pid, "<start epoch, 3 decimals>")``. ``start`` is the event time of the
  exec (``execve``/``execveat``) that created the image, or of the fork (``clone``/``fork``/``vfork``,
  the child pid is the SYSCALL ``exit`` field) that created the process. Every exec is a new node (as in
  msticpy's Linux builder); the node it replaces (the fork node or the previous image of the same pid)
  is marked exited at the exec time. Threads (``clone`` with ``CLONE_THREAD`` in ``a0``) are not nodes.
* Parent rule (the same in the batch builder): the parent of a process started at ``t`` whose ppid is
  ``P`` is the **latest node with pid P on the same host that started at or before t**. PID reuse can
  therefore never mix up parents. A candidate that is known to have exited *before* ``t`` is not a
  parent (the kernel would have re-parented the child); the child then has an unknown parent.
* Unknown parents: the child is kept as a root (``process.parent.pid`` only) and remembered for
  ``backfill_window_s`` seconds of event time. When a node that is a better parent for it arrives within
  that window (late or out-of-order exec/fork of the parent, or a PID-reuse parent that started later
  than the one first linked), the child is re-linked and ``backfilled`` is counted. This changes the
  state for **later** events only: a document already emitted is never re-emitted.
* Exits (``exit``/``exit_group``) mark the latest node with that pid that started at or before the exit.
  An exit that arrives before its exec is kept for ``backfill_window_s`` and applied when the exec
  arrives, so out-of-order exec/exit gives the same tree as in-order delivery.
* Sessions: from ``auditd.session`` (ses) the tracker remembers, per audit session, the
  ``session_leader`` (the earliest process of the session whose parent is outside the session and that
  is not itself a login service) and the ``entry_leader`` (the sshd/login/cron process that started the
  session: the nearest such process among the leader's ancestors, else the earliest such process seen in
  the session, else the leader itself). Leader summaries are copied into the session record, so leaders
  survive the eviction of their nodes.

Idempotency: all ids are derived from event content, so replaying an event (at-least-once delivery)
finds the existing node and returns the same document; nothing is duplicated.

Bounds: :meth:`ProcessTracker.evict` (called by the driver with the latest event time) drops exited
processes after ``exited_grace_s`` (unless a live process still has them among its ``ancestor_depth``
nearest ancestors), live processes idle for ``idle_ttl_s`` and, oldest first, anything beyond
``max_per_host`` (exited first, then the earliest created). ``process`` itself enforces ``max_per_host``
when a host overflows, evicting down to 99% of the limit so that the cost is amortised. All evictions are
counted in the state. The state keeps a heap of timers, so an ``evict`` costs what is due, not the size of
the tree: a host with thousands of processes that exit every few events is evicted after every record.

State is **per host**: the Faust worker keeps one :class:`ProcessTrackerState` snapshot per host key in a
table. A state that receives a document of another host raises :class:`LineageError`.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import orjson

from processors.document import audit_user
from processors.errors import ParseError
from schemas.documents import iso_timestamp

__all__ = [
    "ENTRY_PROCESS_NAMES",
    "EXEC_SYSCALLS",
    "EXIT_SYSCALLS",
    "FORK_SYSCALLS",
    "LineageError",
    "ProcessNode",
    "ProcessTracker",
    "ProcessTrackerSettings",
    "ProcessTrackerState",
    "build_lineage",
]

EXEC_SYSCALLS = frozenset({"execve", "execveat"})
FORK_SYSCALLS = frozenset({"clone", "clone3", "fork", "vfork"})
EXIT_SYSCALLS = frozenset({"exit", "exit_group"})
#: Names of processes that start an audit session (the ECS "entry" into the system).
ENTRY_PROCESS_NAMES = frozenset(
    {"sshd", "login", "in.telnetd", "telnetd", "gdm-session-worker", "lightdm", "sddm-helper", "cron", "crond", "atd"}
)
_CLONE_THREAD = 0x00010000
_SNAPSHOT_VERSION = 1
_MAX_ENTRY_WALK = 16
#: ``evict`` pops timers due up to this much after the event time and then applies the exact test, so that
#: float rounding of ``start + window`` against ``now - window`` cannot make it miss something due.
_DUE_MARGIN_S = 0.001
#: kinds of ``ProcessTrackerState.timers`` entries, and their keys
_NODE, _LINK, _EXIT, _SESSION = 0, 1, 2, 3  # entity id, (ppid, entity id), (pid, exit time), session id
_blake2b = hashlib.blake2b


class LineageError(ParseError):
    """A document cannot be tracked: no usable event time, a non-integer pid, or the wrong host."""


@dataclass(frozen=True, slots=True)
class ProcessTrackerSettings:
    """Settings of the process tracker.

    Args:
        ancestor_depth: how many ancestors (nearest first, the parent included) go into ``secstream.process.ancestors``.
        exited_grace_s: seconds of event time an exited process is kept (late children can still find it).
        idle_ttl_s: seconds of event time after which a live process not seen is evicted.
        max_per_host: maximum number of process nodes kept per host.
        backfill_window_s: seconds of event time a child with an unknown (or possibly wrong) parent, or an
            exit without its exec, waits for the missing event.
    """

    ancestor_depth: int = 4
    exited_grace_s: float = 60.0
    idle_ttl_s: float = 86_400.0
    max_per_host: int = 50_000
    backfill_window_s: float = 300.0


@dataclass(slots=True)
class ProcessNode:
    """One process image of a host.

    Args:
        entity_id: ``stable_id("process", host, pid, start)``.
        pid: process id.
        ppid: parent process id as reported by the event.
        start: event time (epoch seconds) of the exec or fork that created it.
        executable: path of the image.
        name: base name of the image.
        command_line: full command line.
        parent_entity_id: entity id of the resolved parent, None while unknown.
        exited_at: event time of its exit (or of the exec that replaced it), None while live.
        last_seen: latest event time of an event of this process.
        session: audit session id (``ses``), None when unset.
        auid: audit user id.
    """

    entity_id: str
    pid: int
    ppid: int | None
    start: float
    executable: str | None = None
    name: str | None = None
    command_line: str | None = None
    parent_entity_id: str | None = None
    exited_at: float | None = None
    last_seen: float = 0.0
    session: str | None = None
    auid: str | None = None
    _summary: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: the due time of the node's current timer in its state (derived; ``inf`` when it has none)
    due: float = field(default=math.inf, init=False, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """Return the ECS lineage shape (``pid, entity_id, executable, name, command_line, start``), a new dict."""
        return dict(self._lineage())

    def _lineage(self) -> dict[str, Any]:
        """The lineage shape, built once and shared: callers must copy it before handing it out."""
        cached = self._summary
        if cached is None:
            cached = {"pid": self.pid, "entity_id": self.entity_id}
            if self.executable is not None:
                cached["executable"] = self.executable
            if self.name is not None:
                cached["name"] = self.name
            if self.command_line is not None:
                cached["command_line"] = self.command_line
            cached["start"] = iso_timestamp(self.start)
            self._summary = cached
        return cached

    def to_row(self) -> list[Any]:
        """Return the compact snapshot row of this node."""
        return [
            self.entity_id,
            self.pid,
            self.ppid,
            self.start,
            self.executable,
            self.name,
            self.command_line,
            self.parent_entity_id,
            self.exited_at,
            self.last_seen,
            self.session,
            self.auid,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> ProcessNode:
        """Rebuild a node from :meth:`to_row` output."""
        return cls(*row[:12])


@dataclass(slots=True)
class _Session:
    start: float = 0.0
    last_seen: float = 0.0
    leader: dict[str, Any] | None = None
    leader_start: float | None = None
    entry: dict[str, Any] | None = None
    entry_start: float | None = None
    entry_from_ancestry: bool = False
    due: float = field(default=math.inf, init=False, repr=False, compare=False)


@dataclass
class ProcessTrackerState:
    """The process tree of one host (the driver keeps one per host).

    Args:
        host: the host this state belongs to (set by the first document when None).
        nodes: entity id → node.
        links: ppid → {child entity id: child start} for children created within the back-fill window.
        exits: pid → exit times not yet matched to a process.
        sessions: audit session id → leaders.
        evicted_exited: exited processes evicted after the grace period.
        evicted_idle: live processes evicted after the idle TTL.
        evicted_overflow: processes evicted because the host exceeded ``max_per_host``.
        backfilled: children whose parent was (re-)linked after they were first seen.
    """

    host: str | None = None
    nodes: dict[str, ProcessNode] = field(default_factory=dict)
    links: dict[int, dict[str, float]] = field(default_factory=dict)
    exits: dict[int, list[float]] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    evicted_exited: int = 0
    evicted_idle: int = 0
    evicted_overflow: int = 0
    backfilled: int = 0
    by_pid: dict[int, list[tuple[float, str]]] = field(default_factory=dict, repr=False, compare=False)
    # Derived, not part of the snapshot. ``children``: parent entity id → entity ids of the nodes that name it.
    # ``timers``: a heap of (due, kind, key) telling ``evict`` when each node, link, pending exit and session
    # can next be due, computed with the windows in ``timer_windows``; entries may be early or stale, never
    # late. ``pinned``: due exited processes kept because a live process still names them as ancestor; they
    # get a timer again when that reference goes (``_release``).
    children: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    timers: list[tuple[float, int, Any]] = field(default_factory=list, init=False, repr=False, compare=False)
    timer_windows: tuple[float, float, float] | None = field(default=None, init=False, repr=False, compare=False)
    timers_bound: int = field(default=0, init=False, repr=False, compare=False)
    pinned: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def _schedule(self, node: ProcessNode, due: float) -> None:
        """Make sure ``node`` has a timer at or before ``due`` (one timer a node is current: ``node.due``)."""
        if due < node.due:
            node.due = due
            heapq.heappush(self.timers, (due, _NODE, node.entity_id))

    def _release(self, node: ProcessNode, depth: int, grace: float) -> None:
        """``node`` stops naming its ancestors (it exits, is re-linked or dropped): pinned ones may become due."""
        if not self.pinned:
            return
        parent_id = node.parent_entity_id
        for _ in range(depth):
            if parent_id is None:
                return
            parent = self.nodes.get(parent_id)
            if parent is None:
                return
            if parent_id in self.pinned:
                self.pinned.discard(parent_id)
                self._schedule(parent, _due_of(parent, grace, math.inf))
            parent_id = parent.parent_entity_id

    def __post_init__(self) -> None:
        if self.nodes:  # the indexes are derived from the nodes, never taken as given
            self._reindex()

    def _reindex(self) -> None:
        self.by_pid = {}
        self.children = {}
        for node in self.nodes.values():
            self.by_pid.setdefault(node.pid, []).append((node.start, node.entity_id))
            if node.parent_entity_id is not None:
                self.children.setdefault(node.parent_entity_id, set()).add(node.entity_id)
        for entries in self.by_pid.values():
            entries.sort()
        self.timer_windows = None  # the timers are rebuilt by the next evict

    @property
    def live(self) -> int:
        """Number of nodes that have not exited."""
        return sum(1 for node in self.nodes.values() if node.exited_at is None)

    def snapshot(self) -> dict[str, Any]:
        """Return a plain, orjson-ready copy of the state."""
        return {
            "v": _SNAPSHOT_VERSION,
            "host": self.host,
            "nodes": [node.to_row() for node in self.nodes.values()],
            "links": {str(ppid): [[eid, start] for eid, start in kids.items()] for ppid, kids in self.links.items()},
            "exits": {str(pid): list(times) for pid, times in self.exits.items()},
            "sessions": {
                ses: [
                    rec.start,
                    rec.last_seen,
                    rec.leader,
                    rec.leader_start,
                    rec.entry,
                    rec.entry_start,
                    rec.entry_from_ancestry,
                ]
                for ses, rec in self.sessions.items()
            },
            "counters": {
                "evicted_exited": self.evicted_exited,
                "evicted_idle": self.evicted_idle,
                "evicted_overflow": self.evicted_overflow,
                "backfilled": self.backfilled,
            },
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ProcessTrackerState:
        """Rebuild a state from :meth:`snapshot` output (also after an orjson round trip).

        Raises:
            LineageError: if the snapshot has an unknown version.
        """
        if data.get("v") != _SNAPSHOT_VERSION:
            raise LineageError(f"unknown process tracker snapshot version {data.get('v')!r}")
        counters = data.get("counters", {})
        state = cls(
            host=data.get("host"),
            nodes={row[0]: ProcessNode.from_row(list(row)) for row in data.get("nodes", [])},
            links={int(ppid): {eid: start for eid, start in kids} for ppid, kids in data.get("links", {}).items()},
            exits={int(pid): list(times) for pid, times in data.get("exits", {}).items()},
            sessions={ses: _Session(*row) for ses, row in data.get("sessions", {}).items()},
            evicted_exited=counters.get("evicted_exited", 0),
            evicted_idle=counters.get("evicted_idle", 0),
            evicted_overflow=counters.get("evicted_overflow", 0),
            backfilled=counters.get("backfilled", 0),
        )
        return state


_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: ``YYYY-MM-DDTHH:MM:SS`` → epoch seconds, for the ``@timestamp`` shape that ``iso_timestamp`` writes.
_SECOND_CACHE: dict[str, int] = {}
#: whole ``@timestamp`` text → epoch seconds, for the stamps that took the fast path of ``_event_time``.
_STAMP_TIMES: dict[str, float] = {}


def _section(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (plain dicts are checked without the ABC)."""
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return _EMPTY


def _unlink(state: ProcessTrackerState, node: ProcessNode) -> None:
    """Remove ``node`` from its parent's entry in ``state.children``."""
    parent_id = node.parent_entity_id
    kids = state.children.get(parent_id) if parent_id is not None else None
    if kids is not None:
        kids.discard(node.entity_id)
        if not kids:
            del state.children[parent_id]  # type: ignore[arg-type]  # kids is None when parent_id is


def _due_of(node: ProcessNode, grace: float, idle: float) -> float:
    """When ``node`` can next be evicted: ``grace`` after its exit, or ``idle`` after its last event."""
    if node.exited_at is not None:
        return max(node.exited_at, node.last_seen) + grace
    return max(node.last_seen, node.start) + idle


def _parse_time(stamp: str, doc: Mapping[str, Any]) -> float:
    try:
        return round(datetime.fromisoformat(stamp).timestamp(), 6)
    except ValueError as exc:
        raise LineageError(f"bad @timestamp {stamp!r}", raw=_raw(doc)) from exc


def _event_time(doc: Mapping[str, Any]) -> float:
    stamp = doc.get("@timestamp")
    if type(stamp) is str:
        known = _STAMP_TIMES.get(stamp)
        if known is not None:
            return known  # events of the same millisecond are common (one login writes several records)
    else:
        if not isinstance(stamp, str):
            raise LineageError("document has no @timestamp", raw=_raw(doc))
        return _parse_time(stamp, doc)
    # Fast path for ``2019-03-01T23:23:44.869Z``: the seconds are cached, the milliseconds added exactly as
    # ``datetime.timestamp`` does (integer microseconds divided by 10**6), so the result is the same float.
    millis = stamp[20:23]
    if len(stamp) != 24 or stamp[19] != "." or stamp[23] != "Z" or not (millis.isascii() and millis.isdigit()):
        return _parse_time(stamp, doc)
    prefix = stamp[:19]
    second = _SECOND_CACHE.get(prefix)
    if second is None:
        try:
            second = int(datetime.fromisoformat(f"{prefix}.000Z").timestamp())
        except ValueError:
            return _parse_time(stamp, doc)  # raises with the original text
        if len(_SECOND_CACHE) >= 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[prefix] = second
    value = round((second * 1_000_000 + int(millis) * 1000) / 1_000_000, 6)
    if len(_STAMP_TIMES) >= 4096:
        _STAMP_TIMES.clear()
    _STAMP_TIMES[stamp] = value
    return value


def _raw(doc: Mapping[str, Any]) -> str:
    return orjson.dumps(doc, default=str).decode()


def _as_int(value: Any, what: str, doc: Mapping[str, Any]) -> int | None:
    if value is None or type(value) is int:
        return value
    if isinstance(value, bool):
        raise LineageError(f"{what} is not an integer: {value!r}", raw=_raw(doc))
    if isinstance(value, int):
        return value
    number = _ascii_int(value)
    if number is None:
        raise LineageError(f"{what} is not an integer: {value!r}", raw=_raw(doc))
    return number


def _ascii_int(value: Any) -> int | None:
    """A decimal of ASCII digits (optionally signed) as an int, else None: ``int()`` would also read ``٣``."""
    text = str(value)
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    return int(text)


def _is_thread_clone(syscall: str, data: Mapping[str, Any]) -> bool:
    if syscall != "clone":
        return False
    flags = data.get("a0")
    if not isinstance(flags, str):
        return False
    try:
        return bool(int(flags, 16) & _CLONE_THREAD)
    except ValueError:
        return False


def _name_of(proc: Mapping[str, Any]) -> str | None:
    name = proc.get("name")
    if isinstance(name, str):
        return name
    exe = proc.get("executable")
    if isinstance(exe, str) and exe:
        return exe.rsplit("/", 1)[-1]
    return None


class ProcessTracker:
    """Keeps per-host process trees and adds ECS lineage to process documents.

    Args:
        settings: tracker settings.
    """

    def __init__(self, settings: ProcessTrackerSettings | None = None) -> None:
        self.settings = settings or ProcessTrackerSettings()
        self._windows = (self.settings.exited_grace_s, self.settings.idle_ttl_s, self.settings.backfill_window_s)

    # ------------------------------------------------------------------ public API

    def process(self, doc: Mapping[str, Any], state: ProcessTrackerState) -> dict[str, Any]:
        """Update the tree from one decoded auditd document and return it with lineage added.

        Documents without ``process.pid`` come back as a shallow copy. Successful exec, fork and exit update the
        tree; a process document gets ``process.entity_id``, ``start``, ``parent``, the leaders and
        ``secstream.process`` (nearest ``ancestors``; the decoder's ``process.ppid``). The input is not modified.

        Args:
            doc: an auditd ECS document (see the ECS contract).
            state: the state of the document's host.

        Returns:
            A new document with the lineage fields.

        Raises:
            LineageError: the document has no usable ``@timestamp``, a non-integer pid, or belongs to
                another host than ``state``.
        """
        timer_windows = state.timer_windows
        if timer_windows is not None and timer_windows is not self._windows and timer_windows != self._windows:
            state.timer_windows = None  # another tracker's timers: the next evict rebuilds them
        out = dict(doc)
        proc_in = doc.get("process")
        if proc_in is None or not (type(proc_in) is dict or isinstance(proc_in, Mapping)):
            return out
        pid_value = proc_in.get("pid")
        if pid_value is None:
            return out
        host_doc = doc.get("host")
        host = host_doc.get("name") if type(host_doc) is dict else None
        if type(host) is not str or host != state.host:  # else: the state's own host, nothing to check
            host = self._host_of(doc, state)
        now = _event_time(doc)
        pid = _as_int(pid_value, "process.pid", doc)
        ppid = _as_int(proc_in.get("ppid"), "process.ppid", doc)
        assert pid is not None  # noqa: S101 - checked above
        auditd = _section(doc.get("auditd"))
        data = _section(auditd.get("data"))
        event = _section(doc.get("event"))
        syscall = str(data.get("syscall") or event.get("action") or "")
        session = auditd.get("session")
        session = str(session) if session is not None else None
        node = self._update_tree(state, host, doc, (pid, ppid, now), (syscall, data, event), session)
        if node is not None and now > node.last_seen:
            node.last_seen = now
        if session is not None and session in state.sessions:
            rec = state.sessions[session]
            rec.last_seen = max(rec.last_seen, now)
        out["process"], ancestors = self._annotate(dict(proc_in), node, ppid, now, session, state)
        out["secstream"] = _with_lineage(doc.get("secstream"), ancestors, ppid)
        return out

    def _update_tree(
        self,
        state: ProcessTrackerState,
        host: str,
        doc: Mapping[str, Any],
        process: tuple[int, int | None, float],
        call: tuple[str, Mapping[str, Any], Mapping[str, Any]],
        session: str | None,
    ) -> ProcessNode | None:
        """Apply a successful exec, fork or exit to the tree; return the node of the pid (None if unknown).

        ``process`` is (pid, ppid, event time); ``call`` is (syscall, ``auditd.data``, ``event``).
        """
        pid, ppid, now = process
        syscall, data, event = call
        proc_in = doc["process"]
        # only exec and fork events add nodes: most events need neither the outcome nor the audit user
        adds_node = syscall in EXEC_SYSCALLS or syscall in FORK_SYSCALLS
        failed = adds_node and (event.get("outcome") == "failure" or data.get("success") == "no")
        auid = audit_user(doc).get("id") if adds_node else None
        auid = str(auid) if auid is not None else None

        node: ProcessNode | None
        if syscall in EXEC_SYSCALLS and not failed:
            node = self._add_node(
                state,
                host,
                pid=pid,
                ppid=ppid,
                start=now,
                executable=proc_in.get("executable"),
                name=_name_of(proc_in),
                command_line=proc_in.get("command_line"),
                session=session,
                auid=auid,
            )
        else:
            node = self._find(state, pid, now, allow_exited=True)
            if syscall in FORK_SYSCALLS and not failed and not _is_thread_clone(syscall, data):
                child_pid = _as_int(data.get("exit"), "auditd.data.exit", doc)
                if child_pid is not None and child_pid > 0:
                    self._add_node(
                        state,
                        host,
                        pid=child_pid,
                        ppid=pid,
                        start=now,
                        executable=proc_in.get("executable"),
                        name=_name_of(proc_in),
                        command_line=proc_in.get("command_line"),
                        session=session,
                        auid=auid,
                    )
            elif syscall in EXIT_SYSCALLS:
                self._on_exit(state, pid, now)
                node = self._find(state, pid, now, allow_exited=True)
        return node

    def _pop_due(
        self, state: ProcessTrackerState, now: float, until: float
    ) -> tuple[list[ProcessNode], list[ProcessNode], list[tuple[float, int, Any]]]:
        """Take the timers due by ``until`` off the heap and drop the links, exits and sessions that are due.

        Returns:
            The exited and the idle processes that are due (the caller decides which go), and the timers
            that fail the exact test, to be pushed back.
        """
        grace, idle, window = self._windows
        exited_due, idle_due, window_due = now - grace, now - idle, now - window
        timers, nodes = state.timers, state.nodes
        exited: list[ProcessNode] = []
        idle_nodes: list[ProcessNode] = []
        not_yet: list[tuple[float, int, Any]] = []
        while timers and timers[0][0] <= until:
            due, kind, key = heapq.heappop(timers)
            if kind != _NODE:
                later = _expire_entry(state, kind, key, due, (window_due, window, idle_due, idle))
                if later is not None:
                    not_yet.append((later, kind, key))
                continue
            node = nodes.get(key)
            if node is None or due != node.due:
                continue  # dropped, or a later timer replaced this one
            node.due = math.inf
            if node.exited_at is not None:
                if node.exited_at <= exited_due and node.last_seen <= exited_due:
                    exited.append(node)
                    continue
            elif max(node.last_seen, node.start) <= idle_due:
                idle_nodes.append(node)
                continue
            not_yet.append((_due_of(node, grace, idle), _NODE, key))
        return exited, idle_nodes, not_yet

    def evict(self, state: ProcessTrackerState, now_event_time: float) -> int:
        """Drop what is due at ``now_event_time`` and return the number of processes evicted.

        Exited processes go after ``exited_grace_s`` unless a live process still names them among its
        ``ancestor_depth`` nearest ancestors; live processes go after ``idle_ttl_s`` without events; then,
        oldest first, whatever exceeds ``max_per_host``. Back-fill candidates, unmatched exits and idle
        sessions older than their windows are dropped too (not counted as processes).

        The cost is that of what is due, not of the state: the driver calls this after every record.

        Args:
            state: the host state.
            now_event_time: the current event time (epoch seconds), e.g. the latest event's.

        Returns:
            The number of process nodes evicted.
        """
        windows = self._windows
        if state.timer_windows != windows or len(state.timers) > state.timers_bound:
            self._rebuild_timers(state)  # also drops the stale timers of dropped or rescheduled entries
        timers = state.timers
        until = now_event_time + _DUE_MARGIN_S
        if (not timers or timers[0][0] > until) and len(state.nodes) <= self.settings.max_per_host:
            return 0
        grace = windows[0]
        nodes, sessions = state.nodes, state.sessions
        exited, idle_nodes, not_yet = self._pop_due(state, now_event_time, until)
        # Whether an exited process is still an ancestor is decided on the tree as it was before this call:
        # dropping an unreferenced process never breaks a live one's chain, so the order here is free.
        depth = self.settings.ancestor_depth
        evicted = 0
        for node in exited:
            if self._referenced(state, node, depth):
                state.pinned.add(node.entity_id)
            else:
                self._drop(state, node)
                state.evicted_exited += 1
                evicted += 1
        for node in idle_nodes:
            self._drop(state, node)
            state.evicted_idle += 1
            evicted += 1
        evicted += self._evict_overflow(state, self.settings.max_per_host)
        for due, kind, key in not_yet:
            if kind == _NODE:
                pending = nodes.get(key)
                if pending is not None:  # else dropped for overflow just now
                    state._schedule(pending, due)
            elif kind == _SESSION:
                sessions[key].due = due
                heapq.heappush(timers, (due, kind, key))
            else:
                heapq.heappush(timers, (due, kind, key))
        # Idle processes dropped here may have been what kept an exited ancestor: it is due at the next call.
        for node in idle_nodes:
            state._release(node, depth, grace)
        return evicted

    @staticmethod
    def _referenced(state: ProcessTrackerState, node: ProcessNode, depth: int) -> bool:
        """Whether a live process has ``node`` among its ``depth`` nearest ancestors."""
        frontier = [node.entity_id]
        nodes, children = state.nodes, state.children
        for _ in range(depth):
            below: list[str] = []
            for eid in frontier:
                for kid in children.get(eid, ()):
                    if nodes[kid].exited_at is None:
                        return True
                    below.append(kid)
            if not below:
                return False
            frontier = below
        return False

    def _rebuild_timers(self, state: ProcessTrackerState) -> None:
        """Give everything in ``state`` a timer for this tracker's windows (after a restore or other windows)."""
        grace, idle, window = self._windows
        timers: list[tuple[float, int, Any]] = []
        for eid, node in state.nodes.items():
            node.due = _due_of(node, grace, idle)
            timers.append((node.due, _NODE, eid))
        for ppid, kids in state.links.items():
            timers.extend((start + window, _LINK, (ppid, eid)) for eid, start in kids.items())
        for pid, times in state.exits.items():
            timers.extend((at + window, _EXIT, (pid, at)) for at in times)
        for ses, rec in state.sessions.items():
            rec.due = rec.last_seen + idle
            timers.append((rec.due, _SESSION, ses))
        heapq.heapify(timers)
        state.timers = timers
        state.timers_bound = 2 * len(timers) + 1024  # rebuilt when it doubles: amortised O(1) a timer
        state.timer_windows = self._windows
        state.pinned = set()

    # ------------------------------------------------------------------ tree maintenance

    def _host_of(self, doc: Mapping[str, Any], state: ProcessTrackerState) -> str:
        host = _section(doc.get("host")).get("name")
        host = (host if type(host) is str else str(host)) if host is not None else (state.host or "")
        if state.host is None:
            state.host = host
        elif state.host != host:
            raise LineageError(f"document of host {host!r} given to the state of {state.host!r}", raw=_raw(doc))
        return host

    @staticmethod
    def _find(state: ProcessTrackerState, pid: int, at: float, *, allow_exited: bool) -> ProcessNode | None:
        """Latest node with ``pid`` that started at or before ``at`` (not exited before ``at`` unless allowed)."""
        entries = state.by_pid.get(pid)
        if not entries:
            return None
        idx = bisect.bisect_right(entries, (at, "~"))
        if idx == 0:
            return None
        node = state.nodes[entries[idx - 1][1]]
        if not allow_exited and node.exited_at is not None and node.exited_at < at:
            return None
        return node

    def _add_node(
        self,
        state: ProcessTrackerState,
        host: str,
        *,
        pid: int,
        ppid: int | None,
        start: float,
        executable: Any,
        name: str | None,
        command_line: Any,
        session: str | None,
        auid: str | None,
    ) -> ProcessNode:
        # stable_id("process", host, pid, f"{start:.3f}") in one hashing call (the same digest)
        eid = _blake2b(
            f"process\x1f{host}\x1f{pid}\x1f{start:.3f}\x1f".encode("utf-8", "surrogatepass"), digest_size=16
        ).hexdigest()
        existing = state.nodes.get(eid)
        if existing is not None:
            return existing  # replay: same event, same node
        node = ProcessNode(
            entity_id=eid,
            pid=pid,
            ppid=ppid,
            start=start,
            executable=executable if isinstance(executable, str) else None,
            name=name,
            command_line=command_line if isinstance(command_line, str) else None,
            last_seen=start,
            session=session,
            auid=auid,
        )
        entries = state.by_pid.setdefault(pid, [])
        idx = bisect.bisect_right(entries, (start, eid))
        entries.insert(idx, (start, eid))
        state.nodes[eid] = node
        prev = state.nodes[entries[idx - 1][1]] if idx > 0 else None
        nxt = state.nodes[entries[idx + 1][1]] if idx + 1 < len(entries) else None
        settings = self.settings
        grace, idle, window = self._windows
        if prev is not None:
            if prev.exited_at is None:
                state._release(prev, settings.ancestor_depth, grace)
                prev.exited_at = start  # replaced by this exec (or its exit was never seen)
                state._schedule(prev, _due_of(prev, grace, idle))
            elif prev.exited_at > start:
                node.exited_at = prev.exited_at  # the exit seen earlier was this image's
                prev.exited_at = start
                state._schedule(prev, _due_of(prev, grace, idle))
        if nxt is not None and (node.exited_at is None or node.exited_at > nxt.start):
            node.exited_at = nxt.start
        self._apply_pending_exit(state, node, nxt)
        state._schedule(node, _due_of(node, grace, idle))
        if ppid is not None:
            parent = self._find(state, ppid, start, allow_exited=False)
            if parent is not None and parent is not node:
                node.parent_entity_id = parent.entity_id
                state.children.setdefault(parent.entity_id, set()).add(eid)
            state.links.setdefault(ppid, {})[eid] = start
            heapq.heappush(state.timers, (start + window, _LINK, (ppid, eid)))
        self._relink_children(state, node)
        self._update_session(state, node)
        if len(state.nodes) > self.settings.max_per_host:
            self._evict_overflow(state, self.settings.max_per_host)
        return node

    @staticmethod
    def _apply_pending_exit(state: ProcessTrackerState, node: ProcessNode, nxt: ProcessNode | None) -> None:
        times = state.exits.get(node.pid)
        if not times:
            return
        for exit_time in sorted(times):
            if exit_time < node.start or (nxt is not None and exit_time > nxt.start):
                continue
            if node.exited_at is None or exit_time < node.exited_at:
                node.exited_at = exit_time
            times.remove(exit_time)
            if not times:
                del state.exits[node.pid]
            return

    def _relink_children(self, state: ProcessTrackerState, node: ProcessNode) -> None:
        """Give recent children of ``node.pid`` that started after it the parent the rule now selects."""
        kids = state.links.get(node.pid)
        if not kids:
            return
        for child_eid, child_start in kids.items():
            if child_start < node.start:
                continue
            child = state.nodes.get(child_eid)
            if child is None or child is node:
                continue
            parent = self._find(state, node.pid, child_start, allow_exited=False)
            new_parent = parent.entity_id if parent is not None and parent is not child else None
            if new_parent is not None and new_parent != child.parent_entity_id:
                state._release(child, self.settings.ancestor_depth, self.settings.exited_grace_s)
                _unlink(state, child)
                child.parent_entity_id = new_parent
                state.children.setdefault(new_parent, set()).add(child_eid)
                state.backfilled += 1

    def _on_exit(self, state: ProcessTrackerState, pid: int, at: float) -> None:
        node = ProcessTracker._find(state, pid, at, allow_exited=True)
        grace, idle, window = self._windows
        if node is not None and (node.exited_at is None or node.exited_at >= at):
            if node.exited_at is None:
                state._release(node, self.settings.ancestor_depth, grace)
            node.exited_at = at
            state._schedule(node, _due_of(node, grace, idle))
            return
        times = state.exits.setdefault(pid, [])
        if at not in times:
            times.append(at)
            heapq.heappush(state.timers, (at + window, _EXIT, (pid, at)))

    def _drop(self, state: ProcessTrackerState, node: ProcessNode) -> None:
        eid = node.entity_id
        del state.nodes[eid]
        entries = state.by_pid.get(node.pid)
        if entries is not None:
            with contextlib.suppress(ValueError):
                entries.remove((node.start, eid))
            if not entries:
                del state.by_pid[node.pid]
        _unlink(state, node)
        kids = state.links.get(node.ppid) if node.ppid is not None else None
        if kids is not None and kids.pop(eid, None) is not None and not kids:
            del state.links[node.ppid]  # type: ignore[arg-type]  # kids is None when ppid is
        state.pinned.discard(eid)

    def _evict_overflow(self, state: ProcessTrackerState, limit: int) -> int:
        if len(state.nodes) <= limit:
            return 0
        target = max(0, limit - max(1, limit // 100))
        count = len(state.nodes) - target
        # exited processes first, then live ones; each group oldest (first created) first
        victims = list(itertools.islice((node for node in state.nodes.values() if node.exited_at is not None), count))
        if len(victims) < count:
            chosen = {node.entity_id for node in victims}
            for node in state.nodes.values():
                if len(victims) >= count:
                    break
                if node.entity_id not in chosen:
                    victims.append(node)
        for node in victims:
            self._drop(state, node)
        state.evicted_overflow += count
        for node in victims:  # a dropped process may have been what kept an exited ancestor
            state._release(node, self.settings.ancestor_depth, self.settings.exited_grace_s)
        return count

    # ------------------------------------------------------------------ sessions

    def _update_session(self, state: ProcessTrackerState, node: ProcessNode) -> None:
        ses = node.session
        if ses is None:
            return
        parent = state.nodes.get(node.parent_entity_id) if node.parent_entity_id else None
        if parent is not None and parent.session == ses:
            return  # not the first process of the session
        rec = state.sessions.get(ses)
        if rec is None:
            rec = _Session(start=node.start, last_seen=node.start)
            state.sessions[ses] = rec
            rec.due = node.start + self.settings.idle_ttl_s
            heapq.heappush(state.timers, (rec.due, _SESSION, ses))
        rec.start = min(rec.start, node.start)
        rec.last_seen = max(rec.last_seen, node.start)
        if node.name in ENTRY_PROCESS_NAMES:
            if not rec.entry_from_ancestry and (rec.entry_start is None or node.start < rec.entry_start):
                rec.entry, rec.entry_start = node.summary(), node.start
            return
        if rec.leader_start is not None and rec.leader_start <= node.start:
            return
        rec.leader, rec.leader_start = node.summary(), node.start
        entry = self._entry_ancestor(state, node)
        if entry is not None:
            rec.entry, rec.entry_start, rec.entry_from_ancestry = entry.summary(), entry.start, True

    @staticmethod
    def _entry_ancestor(state: ProcessTrackerState, node: ProcessNode) -> ProcessNode | None:
        current = node
        for _ in range(_MAX_ENTRY_WALK):
            if current.parent_entity_id is None:
                return None
            parent = state.nodes.get(current.parent_entity_id)
            if parent is None:
                return None
            if parent.name in ENTRY_PROCESS_NAMES:
                return parent
            current = parent
        return None

    # ------------------------------------------------------------------ documents

    def _annotate(
        self,
        proc: dict[str, Any],
        node: ProcessNode | None,
        ppid: int | None,
        now: float,
        session: str | None,
        state: ProcessTrackerState,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``proc`` with entity id, start, parent and leaders (without the reported ppid), and the nearest
        ancestors."""
        proc.pop("ppid", None)  # not ECS: secstream.process.ppid
        ancestors: list[dict[str, Any]] = []
        parent: ProcessNode | None = None
        if node is not None:
            proc["entity_id"] = node.entity_id
            proc["start"] = node._lineage()["start"]
            if node.parent_entity_id is not None:
                parent = state.nodes.get(node.parent_entity_id)
            if ppid is None:
                ppid = node.ppid
        elif ppid is not None:
            parent = self._find(state, ppid, now, allow_exited=False)
        if parent is not None:
            proc["parent"] = parent.summary()
            ancestors = [parent.summary()]
            current = parent
            while len(ancestors) < self.settings.ancestor_depth and current.parent_entity_id is not None:
                nxt = state.nodes.get(current.parent_entity_id)
                if nxt is None or nxt is current:
                    break
                ancestors.append(nxt.summary())
                current = nxt
            del ancestors[self.settings.ancestor_depth :]
        elif ppid is not None:
            proc["parent"] = {"pid": ppid}
        ses = node.session if node is not None and node.session is not None else session
        rec = state.sessions.get(ses) if ses is not None else None
        if rec is not None:
            if rec.leader is not None:
                proc["session_leader"] = dict(rec.leader)
            if rec.entry is not None:
                proc["entry_leader"] = dict(rec.entry)
        return proc, ancestors


def _with_lineage(secstream: Any, ancestors: list[dict[str, Any]], ppid: int | None) -> dict[str, Any]:
    """A copy of the document's ``secstream`` with ``secstream.process``: the nearest ancestors (ECS has no
    field for them) and the parent pid the event reported (``process.parent`` is the tracked parent)."""
    out = dict(secstream) if isinstance(secstream, Mapping) else {}
    lineage: dict[str, Any] = {"ancestors": ancestors}
    if ppid is not None:
        lineage["ppid"] = ppid
    out["process"] = lineage
    return out


def _sort_key(doc: Mapping[str, Any]) -> tuple[float, int]:
    event = doc.get("event")
    seq = event.get("sequence") if isinstance(event, Mapping) else None
    return _event_time(doc), seq if isinstance(seq, int) else 0


def build_lineage(
    docs: Iterable[Mapping[str, Any]], settings: ProcessTrackerSettings | None = None
) -> list[dict[str, Any]]:
    """Run a fresh tracker over a batch of documents in event-time order and return them with lineage.

    This is the stream engine applied to a batch, for comparing with the batch builder ("one truth, two
    engines"). Documents are sorted by ``(@timestamp, event.sequence)`` (stable) and processed with one
    state per host; no eviction runs.

    Args:
        docs: auditd ECS documents of any hosts.
        settings: tracker settings (defaults when None).

    Returns:
        The annotated documents, sorted by event time.

    Raises:
        LineageError: a document has no usable ``@timestamp`` or pid.
    """
    tracker = ProcessTracker(settings)
    states: dict[str, ProcessTrackerState] = {}
    out: list[dict[str, Any]] = []
    for doc in sorted(docs, key=_sort_key):
        host_doc = doc.get("host")
        host = str(host_doc.get("name", "")) if isinstance(host_doc, Mapping) else ""
        state = states.setdefault(host, ProcessTrackerState(host=host))
        out.append(tracker.process(doc, state))
    return out


def _expire_entry(
    state: ProcessTrackerState, kind: int, key: Any, due: float, limits: tuple[float, float, float, float]
) -> float | None:
    """Drop a due fork link, unmatched exit or idle session; return when to look again if it is not due yet.

    ``limits`` is (window due, window, idle due, idle) as :meth:`ProcessTracker._pop_due` computes them.
    """
    window_due, window, idle_due, idle = limits
    if kind == _LINK:
        ppid, eid = key
        kids = state.links.get(ppid)
        start = kids.get(eid) if kids is not None else None
        if kids is None or start is None:
            return None
        if start > window_due:
            return start + window
        del kids[eid]
        if not kids:
            del state.links[ppid]
        return None
    if kind == _EXIT:
        pid, at = key
        times = state.exits.get(pid)
        if times is None or at not in times:
            return None
        if at > window_due:
            return float(at) + window
        times.remove(at)
        if not times:
            del state.exits[pid]
        return None
    rec = state.sessions.get(key)
    if rec is None or due != rec.due:
        return None
    rec.due = math.inf
    if rec.last_seen > idle_due:
        later: float = rec.last_seen + idle
        return later
    del state.sessions[key]
    return None
