"""Event-time order across raw partitions: audit lines reach the coalescer in the order of the host's log.

Un-keyed raw records (what Filebeat, Vector and rsyslog send by default) spread one host's lines, and the
records of one event, over every raw partition. The route stage reads those partitions at different
speeds, so the lines of a host reach its internal partition interleaved in an order that is not the log's:
an ``EOE`` before the ``PATH`` it closes, or a later event that pushes the host's event time past the
2 s coalescing timeout of an event whose other records wait in a slower partition.

:class:`EventTimeOrder` (one per internal by-host partition) holds each host's lines and hands them to the
coalescer sorted by their *order key* (event time, serial, the record type's place in the kernel's write
order, the PATH item or first EXECVE argument, the bytes) once no raw partition can still carry a line of
that host with a smaller key: the host's watermark, the lowest over the raw partitions. A raw partition
``p`` stops holding host ``h`` back at key ``k`` when

* ``p`` has carried a line of ``h`` more than ``slack_s`` of event time after ``k`` (each raw partition
  is read in order, but auditd writes concurrent events' records a few ms out of order);
* the route stage said that ``p`` was read to its end at a moment after the line with key ``k`` was
  routed (*caught-up marks*: :func:`mark_value`, written after every routed batch and every
  ``MARK_INTERVAL_S`` while ``p`` is quiet): anything of ``h`` sent before that line is then here;
* ``p`` never carried ``h`` and the newest event time routed from ``p`` is more than ``lateness_s``
  past ``k`` (a keyed or quiet host in a backlog: other hosts' lines show how far ``p`` has got);
* the line has waited ``max_wait_s`` (a raw partition stopped or unowned: counted as ``forced_wait``),
  or the partition holds more than ``max_lines`` lines (the oldest go: ``forced_memory``); lines that go
  early may make late fragments, which the coalescer counts as always.

Until a mark has said how many partitions the raw topic has, every line waits (a worker that starts, or
takes an internal partition over, may read lines of two raw partitions before it learns there are four).
Lines re-routed after a route-stage crash or rebalance (a raw offset already taken from that partition)
are dropped and counted (``rerouted``): they would come after newer lines of their partition.

Nothing here is persisted: a held line's internal record is never acked, so after a crash or a rebalance
the lines are read again and the order is rebuilt; the marks come again every ``MARK_INTERVAL_S``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from streams.graph import RawLine

__all__ = [
    "MARK_HEADER",
    "MARK_INTERVAL_S",
    "SLACK_S",
    "EventTimeOrder",
    "OrderCounters",
    "last_event_time",
    "mark_value",
    "order_key",
]

MARK_HEADER: Final = "secstream-mark"
"""Header of a caught-up mark on the internal audit topic (no lines: the value is :func:`mark_value`)."""

MARK_INTERVAL_S: Final = 0.25
"""How often the route stage marks a raw partition that routed nothing in between (a heartbeat)."""

OrderKey = tuple[int, int, int, int, int, bytes]
"""(seconds, nanoseconds, serial, type rank, item or argument index, bytes) of an audit line."""

_TOP: Final = 1 << 64
_BOTTOM: Final[OrderKey] = (-1, 0, 0, 0, 0, b"")

# Only what the order needs: the type, the event time and the serial of ``[node=X ]type=T msg=audit(S.F:N):``.
_HEAD: Final = re.compile(
    rb"[ \t]*(?:node=\S+ )?type=(\S+) msg=audit\(([0-9]{1,12})(?:\.([0-9]{1,9}))?:([0-9]{1,20})\)"
)
_NANOS: Final = [10 ** (9 - digits) for digits in range(10)]
_ITEM: Final = re.compile(rb" item=([0-9]{1,9})")
_ARG: Final = re.compile(rb" a([0-9]{1,9})[=\[_]")

# The kernel writes a syscall's records in this order (kernel/auditsc.c, audit_log_exit): records
# written during the call (AVC, NETFILTER_CFG, ...) come first, then SYSCALL, the aux records, the
# special record of the call (EXECVE, SOCKETCALL, ...), FD_PAIR, SOCKADDR, OBJ_PID, CWD, the PATH items
# in order, PROCTITLE and EOE. Records of one event that travelled on different raw partitions are put
# back in this order; lines of one partition keep their own order.
_RANK: Final[dict[bytes, int]] = {
    b"SYSCALL": 1,
    b"BPRM_FCAPS": 2,
    b"CAPSET": 2,
    **dict.fromkeys(
        (
            b"SOCKETCALL",
            b"IPC",
            b"IPC_SET_PERM",
            b"MQ_OPEN",
            b"MQ_SENDRECV",
            b"MQ_NOTIFY",
            b"MQ_GETSETATTR",
            b"MMAP",
            b"OPENAT2",
            b"EXECVE",
            b"KERN_MODULE",
            b"TIME_INJOFFSET",
            b"TIME_ADJNTPVAL",
        ),
        3,
    ),
    b"FD_PAIR": 4,
    b"SOCKADDR": 5,
    b"OBJ_PID": 6,
    b"CWD": 7,
    b"PATH": 8,
    b"PROCTITLE": 9,
    b"EOE": 10,
}


def order_key(data: bytes) -> OrderKey | None:
    """The order key of an audit line, or None when it has no audit header."""
    match = _HEAD.match(data)
    if match is None:
        return None
    rtype, seconds, fraction, serial = match.groups()
    rank = _RANK.get(rtype, 0)
    index = 0
    if rank == 8:
        item = _ITEM.search(data, match.end())
        index = int(item.group(1)) if item else 0
    elif rank == 3 and rtype == b"EXECVE":
        arg = _ARG.search(data, match.end())
        index = int(arg.group(1)) if arg else 0
    nanos = int(fraction) * _NANOS[len(fraction)] if fraction else 0
    return int(seconds), nanos, int(serial), rank, index, data


def _time_key(epoch: float) -> OrderKey:
    """The largest key of any line at or before ``epoch``."""
    seconds = int(epoch // 1)
    return seconds, round((epoch - seconds) * 1e9), _TOP, _TOP, _TOP, b""


def _key_time(key: OrderKey) -> float:
    return key[0] + key[1] / 1e9


def last_event_time(values: Iterable[bytes | None]) -> float | None:
    """The newest event time among the last lines of raw values (route-stage progress, for marks)."""
    newest: float | None = None
    for value in values:
        if not value:
            continue
        start = value.rfind(b"\n", 0, len(value.rstrip()))
        key = order_key(value[start + 1 :].lstrip()) if start >= 0 else order_key(value.lstrip())
        if key is None and value.lstrip()[:1] == b"{":  # a JSON envelope: its message field
            try:
                message = orjson.loads(value).get("message")
            except (orjson.JSONDecodeError, AttributeError):
                message = None
            if isinstance(message, str):
                key = order_key(message.strip().rsplit("\n", 1)[-1].encode("utf-8", "surrogateescape"))
        if key is not None and (newest is None or _key_time(key) > newest):
            newest = _key_time(key)
    return newest


def mark_value(
    topic: str, partition: int, partitions: int, caught_up_at: float | None, event_time: float | None
) -> bytes:
    """A route-stage mark: raw partition ``topic:partition`` (of ``partitions``) was read to its end at wall
    time ``caught_up_at`` (None while it has a backlog), and the newest event time routed from it."""
    return orjson.dumps({"t": topic, "p": partition, "n": partitions, "c": caught_up_at, "e": event_time})


SLACK_S: Final = 1.0
"""auditd writes the records of concurrent events interleaved, a few milliseconds out of event-time order
(a SYSCALL, then another event's records, then the first one's EXECVE). A raw partition's own newest line
therefore clears its host's earlier lines only up to this much event time before it; caught-up marks clear
everything routed before them. Costs only holding time in a backlog: live input is cleared by marks."""

RawPartition = tuple[str, int]


def _entry_key(entry: tuple[OrderKey, int, RawLine, list[int]]) -> OrderKey:
    return entry[0]


@dataclass(slots=True)
class _Source:
    """One raw partition as seen by one host."""

    high: OrderKey = _BOTTOM
    """The largest key of the host carried by this partition."""
    position: tuple[int, int] = (-1, -1)
    """(raw offset, line) of the last line taken: lines at or before it are re-routed copies."""


@dataclass(slots=True)
class _Host:
    held: list[tuple[OrderKey, int, RawLine, list[int]]] = field(default_factory=list)
    """The held lines, (key, arrival number, line, its record's entry), sorted by key unless ``unsorted``
    (lines are appended as they come and sorted when released: nearly sorted, so a sort is about linear,
    and it runs in C, where a heap costs two Python calls a line)."""
    unsorted: bool = False
    sources: dict[RawPartition, _Source] = field(default_factory=dict)
    seen: OrderKey = _BOTTOM
    """The largest key taken for this host."""
    arrivals: deque[tuple[float, float, OrderKey]] = field(default_factory=deque)
    """(routed at, taken at, ``seen`` then) per taken record, oldest first, until released."""
    cleared: dict[RawPartition, OrderKey] = field(default_factory=dict)
    """Raw partition → key up to which a caught-up mark has cleared it."""
    forced: OrderKey = _BOTTOM
    released: OrderKey = _BOTTOM
    queued: int = 0


@dataclass(slots=True)
class _Progress:
    caught_up_at: float | None = None
    event_time: float | None = None


@dataclass(slots=True)
class OrderCounters:
    """What :class:`EventTimeOrder` did that a reader of the metrics must see."""

    rerouted: int = 0
    """Lines dropped as copies of lines already taken (re-routed after a route-stage restart)."""
    forced_wait: int = 0
    """Lines released after ``max_wait_s`` although a raw partition might still carry earlier ones."""
    forced_memory: int = 0
    """Lines released because the partition held more than ``max_lines``."""


class EventTimeOrder:
    """Holds one internal partition's audit lines until every raw partition has passed them (module docstring).

    Args:
        lateness_s: how far the newest event time of a raw partition that never carried a host must be
            past a line of that host before the partition stops holding it back.
        max_wait_s: longest a line is held (wall clock) before it is released anyway, counted.
        max_lines: most lines held in this partition; above it the oldest are released, counted.
        slack_s: how far out of event-time order one raw partition's lines of a host may be (``SLACK_S``).
        counters: shared counters (one object for every partition of a worker).
    """

    def __init__(
        self,
        *,
        lateness_s: float,
        max_wait_s: float,
        max_lines: int,
        slack_s: float = SLACK_S,
        counters: OrderCounters | None = None,
    ) -> None:
        self.lateness_s = lateness_s
        self.slack_s = slack_s
        self.max_wait_s = max_wait_s
        self.max_lines = max_lines
        self.counters = counters if counters is not None else OrderCounters()
        self._hosts: dict[str, _Host] = {}
        self._progress: dict[RawPartition, _Progress] = {}
        self._queued = 0
        self._taken = 0
        self._counted: set[str] = {""}
        """Raw topics whose partitions a mark has listed (lines with no raw topic need no order)."""
        self._records: deque[list[int]] = deque()
        """[internal offset, lines of it still held] per taken record, in offset order."""
        self._holding: dict[int, list[int]] = {}
        """Internal offset → its entry of ``_records``, while it has lines held."""

    # -- input ------------------------------------------------------------------------------------

    def add(self, host: str, lines: Sequence[RawLine], routed_at: float, now: float, offset: int) -> None:
        """Take one internal record's lines of ``host`` (each line's ``source`` names its raw partition).

        Args:
            host: the record's host (its key).
            lines: the lines, in their raw partitions' order.
            routed_at: when the route stage wrote the record (its timestamp), compared with caught-up marks.
            now: wall-clock time, for ``max_wait_s``.
            offset: the record's offset in the internal partition (:meth:`lowest_offset`).
        """
        record = [offset, 0]
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
        sources, seen, number = state.sources, state.seen, self._taken
        append = state.held.append
        source_state = _Source()  # replaced at the first line: ``raw`` starts as no partition
        raw: RawPartition | None = None
        for line in lines:
            source = line.source
            where = (source.get("topic", ""), source.get("partition", -1))
            if where != raw:  # a record's lines come from one raw partition (one route batch) as a rule
                raw = where
                known = sources.get(raw)
                if known is None:
                    known = sources[raw] = _Source()
                    self._progress.setdefault(raw, _Progress())
                source_state = known
            raw_offset = source.get("offset")
            if raw_offset is not None:
                position = (raw_offset, source.get("line", 0))
                if position <= source_state.position:
                    self.counters.rerouted += 1
                    continue
                source_state.position = position
            data = line.data
            key = order_key(data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape"))
            if key is None:  # not an audit line (a dead letter to be): it keeps its place in its partition
                key = source_state.high
            elif key > source_state.high:
                source_state.high = key
                if key > seen:
                    seen = key
            number += 1
            append((key, number, line, record))
        taken = number - self._taken
        self._taken = number
        state.seen = seen
        if taken:
            state.unsorted = True
            record[1] = taken
            self._records.append(record)
            self._holding[offset] = record
            state.queued += taken
            self._queued += taken
            state.arrivals.append((routed_at, now, state.seen))

    def mark(self, value: bytes) -> None:
        """Take a route-stage mark (:func:`mark_value`)."""
        data = orjson.loads(value)
        topic, partition, count = str(data["t"]), int(data["p"]), int(data["n"])
        for number in range(count):
            self._progress.setdefault((topic, number), _Progress())
        self._counted.add(topic)
        progress = self._progress[(topic, partition)]
        event_time = data.get("e")
        if event_time is not None and (progress.event_time is None or event_time > progress.event_time):
            progress.event_time = float(event_time)
        caught_up_at = data.get("c")
        if caught_up_at is None:
            return
        caught_up_at = float(caught_up_at)
        if progress.caught_up_at is None or caught_up_at > progress.caught_up_at:
            progress.caught_up_at = caught_up_at
        raw = (topic, partition)
        for state in self._hosts.values():
            cleared = None
            for routed_at, _taken_at, seen in state.arrivals:  # every line routed before the mark is here
                if routed_at > caught_up_at:
                    break
                cleared = seen
            if cleared is not None and cleared > state.cleared.get(raw, _BOTTOM):
                state.cleared[raw] = cleared

    # -- output -----------------------------------------------------------------------------------

    def release(self, now: float, hosts: Iterable[str] | None = None) -> list[RawLine]:
        """The lines no raw partition holds back any more, per host in order key order.

        Args:
            now: wall-clock time (``max_wait_s``).
            hosts: only these hosts (those that just took lines), or None for every host (the timer).
        """
        out: list[RawLine] = []
        names = list(self._hosts) if hosts is None else [h for h in dict.fromkeys(hosts) if h in self._hosts]
        for host in names:
            self._release_host(self._hosts[host], now, out)
        while self._queued > self.max_lines:
            self._shed(out)
        return out

    def drain(self) -> list[RawLine]:
        """Every held line, per host in order key order (shutdown: the coalescer flushes after it)."""
        out: list[RawLine] = []
        for state in self._hosts.values():
            state.forced = (_TOP, 0, 0, 0, 0, b"")
            self._emit(state, state.forced, out, counted=None)
        return out

    def waiting(self, host: str) -> bool:
        """Whether ``host`` has lines held back (its in-flight events may still get records)."""
        state = self._hosts.get(host)
        return state is not None and state.queued > 0

    def lowest_offset(self) -> int | None:
        """The lowest internal offset with a line still held: committing past it would lose the line."""
        records = self._records
        while records and not records[0][1]:
            records.popleft()
        return records[0][0] if records else None

    def holding(self, offset: int) -> bool:
        """Whether the internal record at ``offset`` still has lines held (it must not be acked yet)."""
        return offset in self._holding

    def queued(self) -> int:
        """Lines held in this partition."""
        return self._queued

    def lag_s(self) -> float:
        """Event-time seconds between the newest line taken and the watermark, over this partition's hosts."""
        worst = 0.0
        for state in self._hosts.values():
            if state.queued and state.seen > state.released:
                released = state.released if state.released > _BOTTOM else state.seen
                worst = max(worst, _key_time(state.seen) - _key_time(released))
        return worst

    def _bound(self, state: _Host) -> OrderKey:
        """The host's watermark: the smallest key some raw partition may still carry."""
        bound: OrderKey | None = None
        for raw, progress in self._progress.items():
            if raw[0] not in self._counted:  # which partitions the raw topic has is not known yet
                return _BOTTOM
            source = state.sources.get(raw)
            if source is not None:  # lines of one raw partition may be out of order by up to slack_s
                high = source.high
                limit = _time_key(_key_time(high) - self.slack_s) if self.slack_s and high != _BOTTOM else high
            elif progress.event_time is not None:
                limit = _time_key(progress.event_time - self.lateness_s)
            else:
                limit = _BOTTOM
            cleared = state.cleared.get(raw)
            if cleared is not None and cleared > limit:
                limit = cleared
            if bound is None or limit < bound:
                bound = limit
        return bound if bound is not None else _BOTTOM

    def _release_host(self, state: _Host, now: float, out: list[RawLine]) -> None:
        if not state.queued:
            return
        arrivals = state.arrivals
        while arrivals and now - arrivals[0][1] >= self.max_wait_s:
            forced = arrivals.popleft()[2]
            if forced > state.forced:
                state.forced = forced
        bound = self._bound(state)
        if state.forced > bound:
            self._emit(state, bound, out, counted=None)
            self._emit(state, state.forced, out, counted="wait")
        else:
            self._emit(state, bound, out, counted=None)

    def _shed(self, out: list[RawLine]) -> None:
        """Release the oldest record's worth of lines of the host that has waited longest (memory bound)."""
        oldest = min((s for s in self._hosts.values() if s.arrivals), key=lambda s: s.arrivals[0][1], default=None)
        if oldest is None:  # lines without arrivals cannot be: release everything rather than loop
            for state in self._hosts.values():
                self._emit(state, (_TOP, 0, 0, 0, 0, b""), out, counted="memory")
            return
        forced = oldest.arrivals.popleft()[2]
        if forced > oldest.forced:
            oldest.forced = forced
        bound = self._bound(oldest)
        self._emit(oldest, bound, out, counted=None)
        self._emit(oldest, oldest.forced, out, counted="memory")

    def _emit(self, state: _Host, bound: OrderKey, out: list[RawLine], counted: str | None) -> None:
        """Move every held line with a key at or below ``bound`` to ``out``, in order key order."""
        held = state.held
        if state.unsorted:
            held.sort()
            state.unsorted = False
        count = bisect_right(held, bound, key=_entry_key)
        if not count:
            return
        released = held[:count]
        del held[:count]
        holding = self._holding
        for _, _, line, record in released:
            out.append(line)
            record[1] -= 1
            if not record[1]:
                del holding[record[0]]
        if released[-1][0] > state.released:
            state.released = released[-1][0]
        state.queued -= count
        self._queued -= count
        if counted == "wait":
            self.counters.forced_wait += count
        elif counted == "memory":
            self.counters.forced_memory += count
        # arrivals whose lines are all released are of no more use to marks
        while state.arrivals and state.arrivals[0][2] <= state.released:
            state.arrivals.popleft()
        if not state.queued:
            state.arrivals.clear()
