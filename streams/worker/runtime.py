"""The worker's driver core: the stage graph over Kafka partitions, with delayed acks and host state.

Two stages over batches:

1. **route** (raw topics → internal by-host topics), driven by :mod:`streams.worker.router` on its own
   consumer; :meth:`WorkerRuntime.route` is the stage itself. Raw values are decoded (:mod:`streams.serde`);
   audit lines are keyed by their host (``node=``, else envelope host or key, else the default) and
   written to ``<app>-auditd-by-host`` as their original bytes, packed into one record per (batch, host)
   that carries each line's own source and envelope host; syslog lines are parsed by the graph
   (stateless) and their documents keyed by ``host.name`` to ``<app>-syslog-by-host``. Undecodable values
   and unparseable syslog lines go to the dead-letter topic.
2. **process** (internal topics → outputs), a Faust agent each (:mod:`streams.worker.agents`). Per source
   partition: look up the hosts' state, call the graph, send events, detections and dead letters, write
   changed host snapshots to the host-state changelog, and ack. An audit record is acked only when the
   event it belongs to has been emitted (:class:`AckHolds`), so the committed offset never passes a
   record whose event is still being coalesced in memory: after a crash those records are simply read
   again.

Before the first batch of a newly assigned internal partition (and, eagerly, on the rebalance signal) the
partition is *prepared*: its publisher is started (in exactly-once mode this aborts a dead owner's open
transaction) and its host state is read from the changelog.

The process stage runs under one lock, so a rebalance, the timer and a batch never interleave. The route
stage touches no host state and needs none of it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.codecs import dumps, loads
from schemas.documents import truncated_dead_letter
from streams.config import SecstreamConfig
from streams.graph import HostState, Outputs, Pending, Pipeline, PipelineStats, RawLine
from streams.logging import get_logger
from streams.serde import (
    SerdeSettings,
    audit_event_key,
    decode_internal,
    decode_value,
    encode_internal,
    pack_audit_records,
)
from streams.worker.metrics import WorkerMetrics
from streams.worker.publish import OutRecord, Publisher
from streams.worker.tables import HostStateStore
from streams.worker.topics import TopicNames
from streams.worker.watermark import MARK_HEADER, EventTimeOrder, OrderCounters, mark_value

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "SNAPSHOT_COST_FACTOR",
    "AckHolds",
    "PartitionView",
    "WorkerRuntime",
]

log = get_logger(__name__)


@dataclass(eq=False, slots=True)
class _Held:
    event: Any
    keys: set[tuple[str, int]]
    since: float
    done: bool = False


@dataclass(slots=True)
class AckHolds:
    """Source events whose audit records belong to events still in flight in the coalescer.

    An event is keyed by the (host, serial) of every audit line it carries; it is released (ready to
    ack) when every one of those events has been emitted. A hold older than ``timeout_s`` is released
    anyway and counted, so one record the graph never answers for cannot stall commits forever.

    Each partition's holds are kept in offset order, and released ones leave only from the front, so
    the lowest held offset is read in constant time: a batch's cost must not grow with the number of
    holds, which grows with the hosts a partition carries.
    """

    timeout_s: float
    _waiting: dict[tuple[str, int], list[_Held]] = field(default_factory=lambda: defaultdict(list))
    _by_tp: dict[Any, deque[_Held]] = field(default_factory=dict)
    _count: int = 0

    def hold(self, event: Any, keys: set[tuple[str, int]], now: float) -> None:
        """Hold ``event`` until every key in ``keys`` has been released."""
        held = _Held(event, set(keys), now)
        for key in keys:
            self._waiting[key].append(held)
        queue = self._by_tp.setdefault(event.message.tp, deque())
        if queue and queue[-1].event.message.offset > event.message.offset:  # out of order: keep the order
            self._by_tp[event.message.tp] = deque(sorted([*queue, held], key=lambda h: h.event.message.offset))
        else:
            queue.append(held)
        self._count += 1

    def release(self, keys: Iterable[tuple[str, int]]) -> list[Any]:
        """Mark the events with these keys as emitted; return the source events now free to ack."""
        free: list[_Held] = []
        for key in keys:
            for held in self._waiting.pop(key, ()):
                held.keys.discard(key)
                if not held.keys and not held.done:
                    held.done = True
                    free.append(held)
        self._forget(free)
        return [held.event for held in free]

    def expired(self, now: float) -> list[Any]:
        """Force-release holds older than the timeout; return their events."""
        stale = [h for q in self._by_tp.values() for h in q if not h.done and now - h.since > self.timeout_s]
        return self.release({key for held in stale for key in held.keys})

    def release_all(self, tp: Any) -> list[Any]:
        """Release every hold of a partition (after a shutdown flush emitted everything)."""
        return self.release({key for held in self._by_tp.get(tp, ()) if not held.done for key in held.keys})

    def drop(self, tps: Iterable[Any]) -> None:
        """Forget the holds of revoked partitions without acking (their new owner reads them again)."""
        for tp in tps:
            for held in self._by_tp.pop(tp, ()):
                if held.done:
                    continue
                self._count -= 1
                for key in held.keys:
                    waiting = self._waiting.get(key)
                    if waiting is not None:
                        waiting[:] = [h for h in waiting if h is not held]
                        if not waiting:
                            del self._waiting[key]

    def lowest_offset(self, tp: Any) -> int | None:
        """The lowest source offset still held in ``tp``."""
        queue = self._by_tp.get(tp)
        return queue[0].event.message.offset if queue else None

    def count(self) -> int:
        """How many source events are held."""
        return self._count

    def _forget(self, released: list[_Held]) -> None:
        self._count -= len(released)
        for tp in {held.event.message.tp for held in released}:
            queue = self._by_tp[tp]
            while queue and queue[0].done:
                queue.popleft()
            if not queue:
                del self._by_tp[tp]


class PartitionView(MutableMapping[str, HostState]):
    """The host states of one partition: lookups reach every host, iteration only this partition's."""

    def __init__(self, store: HostStateStore, hosts: set[str], partition: int) -> None:
        self._store = store
        self._hosts = hosts
        self._partition = partition

    def __getitem__(self, host: str) -> HostState:
        self._hosts.add(host)
        return self._store.get(host, self._partition)

    def __setitem__(self, host: str, state: HostState) -> None:
        self._hosts.add(host)
        self._store.put(host, self._partition, state)

    def __delitem__(self, host: str) -> None:
        self._hosts.discard(host)
        self._store.forget([host])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._hosts))

    def __len__(self) -> int:
        return len(self._hosts)


def _by_partition(events: Sequence[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for event in events:
        grouped[event.message.tp].append(event)
    return grouped


def _parsed(docs: list[dict[str, Any]], view: PartitionView) -> Pending:
    del view  # syslog documents were parsed by the route stage; state is used in complete()
    return Pending(events=docs)


ORDER_MAX_WAIT_S = 30.0
"""Longest an audit line waits for a raw partition that may still carry earlier lines of its host (a
stopped or unowned raw partition) before it goes to the coalescer anyway, counted. Below the ack-hold
timeout (60 s at least), so that a held line is never acked before it is processed."""

ORDER_MAX_LINES = 100_000
"""Most audit lines one internal partition holds back for event-time order (under 1 KB each with their
source and key, so under 100 MB); above it the oldest go to the coalescer anyway, counted."""


def _has_header(headers: Any, name: str) -> bool:
    if not headers:
        return False
    items = headers.items() if isinstance(headers, Mapping) else headers
    return any(key == name for key, _ in items)


_PACK_BYTES = 256 * 1024
"""Upper bound (line bytes) of one packed internal record, well below Kafka's default 1 MB message limit."""


def _packs(lines: list[RawLine]) -> Iterator[tuple[int, int]]:
    """Split one host's lines of a routed batch into internal records of at most ``_PACK_BYTES``: the
    (start, stop) index ranges."""
    start, size = 0, 0
    for i, line in enumerate(lines):
        size += len(line.data) + 64
        if size > _PACK_BYTES and i > start:
            yield start, i
            start, size = i, len(line.data) + 64
    yield start, len(lines)


SNAPSHOT_COST_FACTOR = 20.0
"""At-least-once: a partition's host snapshots are written at most every ``worker.snapshot_interval_s``
and no more often than this many times what writing them took the last time. A host snapshot holds
the host's whole process tree, so its cost grows with the state: written with every batch, it was most
of the worker's time at steady load; with a floor in seconds alone, a few very large trees could still
take most of it. Until the next write the partition's finished source records stay unacked, hence
uncommitted: a snapshot is on the broker before the offsets of the records whose effects it holds can
be committed, and a crash re-reads at most the records since it. Exactly-once writes them with every
transaction."""


MAX_DOCUMENT_BYTES = 900 * 1024
"""Largest output document written as it is. The broker refuses a record over its message limit (1 MB
by default), and a refused record stops the worker's acks for good: one exec with megabytes of
arguments, or an undecodable input near 1 MB (a dead letter holds its bytes twice, as text and base64),
would stall the worker. A larger document is replaced by a dead letter holding its first
``_KEPT_BYTES``, with its size, digest and where it came from."""
_KEPT_BYTES = 64 * 1024


def _nothing(view: PartitionView) -> Pending:
    del view  # only the deferred snapshot write is due
    return Pending()


def _host_key(host: str | None) -> bytes | None:
    return host.encode("utf-8", "surrogateescape") if host else None


class WorkerRuntime:
    """Drives the stage graph for the agents, the timer, rebalances and shutdown.

    Args:
        config: the configuration.
        pipeline_factory: builds the stage graph when the worker starts (:meth:`start`).
        topics: topic names.
        store: host state backed by the compacted host-state topic.
        publisher: output delivery (at-least-once or transactional).
        assigned: returns the set of currently assigned topic partitions.
        highwater: returns a partition's high-water mark, or None when unknown (for the lag gauge).
        clock: wall-clock time (injected for tests).
        declare: creates the output topics when missing; awaited before the first partition is prepared,
            so that no send auto-creates a topic with the broker's default partition count.
    """

    def __init__(
        self,
        config: SecstreamConfig,
        pipeline_factory: Callable[[SecstreamConfig], Awaitable[Pipeline]],
        topics: TopicNames,
        store: HostStateStore,
        publisher: Publisher,
        assigned: Callable[[], set[Any]],
        highwater: Callable[[Any], int | None] = lambda tp: None,
        clock: Callable[[], float] = time.time,
        declare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self._pipeline_factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self.topics = topics
        self.store = store
        self.publisher = publisher
        self.metrics = WorkerMetrics(self.stats)
        store.on_unreadable = self.metrics.bad_input.labels(reason="hoststate:unreadable").inc
        self.assigned = assigned
        self.highwater = highwater
        self.clock = clock
        self.serde = SerdeSettings(message_field=config.topics.message_field, host_field=config.topics.host_field)
        timeout = max(60.0, 4 * (config.coalescer.idle_flush_s + config.coalescer.event_timeout_s))
        self.holds = AckHolds(timeout_s=timeout)
        self.hold_acks = not store.with_coalescer
        """Delayed acks protect coalescer buffers, unless the table stores them (exactly-once mode)."""
        self.lock = asyncio.Lock()
        self._hosts: dict[Any, set[str]] = defaultdict(set)
        """Internal auditd/syslog partition → hosts seen on it (tick and shutdown work per partition)."""
        self._last_offset: dict[Any, int] = {}
        self._ready: set[Any] = set()
        """Partitions whose publisher is prepared (and, for internal ones, whose host state is read)."""
        self._floor: dict[Any, int] = {}
        """Partition → committed offset read after preparing; records below it are already done."""
        self._assigning: asyncio.Task[None] | None = None
        self._declare = declare
        self.stopping = False
        self._deferred: dict[Any, list[Any]] = {}
        """At-least-once: partition → finished source events waiting for the next snapshot write."""
        self._unsaved: dict[Any, float] = {}
        """At-least-once: partition → time of its first batch since its last snapshot write."""
        self._snapshot_gap: dict[Any, float] = {}
        """At-least-once: partition → seconds its next snapshot write waits (from the cost of the last one)."""
        self.order_counters = OrderCounters()
        self._orders: dict[Any, EventTimeOrder] = {}
        """Internal audit partition → its lines held for event-time order (:mod:`streams.worker.watermark`)."""
        self._order_kept: dict[Any, list[Any]] = {}
        """Internal audit partition → finished source events kept unacked while lines of them are held."""
        self.metrics.watch_order(self.order_counters, self._order_gauges)

    @property
    def pipeline(self) -> Pipeline:
        """The stage graph (built by :meth:`start`)."""
        if self._pipeline is None:
            raise RuntimeError("the worker runtime has not been started")
        return self._pipeline

    def stats(self) -> PipelineStats:
        """The stage graph's counters, with the state-held ones (coalescers, process trackers) read from the
        host states in memory now (a scrape: the embedded runner reads them at the end of its input)."""
        if self._pipeline is None:
            return PipelineStats()
        self._pipeline.collect_state_counters(self.store.cached())
        return self._pipeline.stats

    async def start(self) -> None:
        """Build the stage graph (its enrichment clients need the running event loop)."""
        if self._pipeline is None:
            self._pipeline = await self._pipeline_factory(self.config)

    # -- assignment -------------------------------------------------------------------------------

    def assign_soon(self, assigned: Iterable[Any]) -> None:
        """Prepare newly assigned partitions in the background (called from the rebalance signal).

        Batches prepare their partitions themselves too; doing it at once also unblocks ``read_committed``
        readers of partitions that receive no new input (a dead owner's open transaction is aborted).
        """
        tps = set(assigned)

        async def run() -> None:
            try:
                async with self.lock:
                    if not self.stopping:
                        await self._prepare(tps)
            except Exception as exc:  # the next batch of each partition prepares it again
                log.warning("worker.prepare_failed", error=repr(exc))

        self._assigning = asyncio.ensure_future(run())

    async def _prepare(self, tps: Iterable[Any]) -> None:
        """Make partitions ready (lock held): start their publishers, then read their host state.

        Every internal partition with the same number shares one changelog partition, so they are
        prepared together: in exactly-once mode each of their transactional producers may have left an
        open transaction in that changelog partition.
        """
        assigned = self.assigned()
        internal = {self.topics.auditd_by_host, self.topics.syslog_by_host}

        def needs(tp: Any) -> bool:
            if tp not in assigned:
                return False
            return tp not in self._ready or (tp.topic in internal and not self.store.recovered(tp.partition))

        todo = {tp for tp in tps if needs(tp) and tp.topic in internal}
        if not todo:
            return
        if self._declare is not None:
            await self._declare()
            self._declare = None
        numbers = {tp.partition for tp in todo if tp.topic in internal}
        todo |= {tp for tp in assigned if tp.topic in internal and tp.partition in numbers and needs(tp)}
        self._floor.update(await self.publisher.prepare(todo))
        resumed = await self.store.recover(numbers)
        for tp in assigned:
            if tp.topic == self.topics.auditd_by_host and resumed.get(tp.partition):
                self._hosts[tp].update(resumed[tp.partition])
        self._ready |= todo

    def _fresh(self, tp: Any, events: Sequence[Any]) -> list[Any]:
        """The events at or above the partition's committed offset; older ones are acked and skipped."""
        floor = self._floor.get(tp)
        if floor is None or events[0].message.offset >= floor:
            return list(events)
        for event in events:
            if event.message.offset < floor:
                event.ack()
        return [event for event in events if event.message.offset >= floor]

    async def _batches(self, events: Sequence[Any]) -> list[tuple[Any, list[Any]]]:
        """Split a taken batch by partition (lock held): prepare new partitions, then keep each assigned
        partition's events at or above its committed offset. Events of partitions revoked while buffered
        are left unacked: the new owner reads them again. So is a batch taken before a shutdown but run
        after its flush: processing it would emit events and hold acks that nothing flushes any more, and
        the commit, stopped at the lowest held record, would make the next owner emit them again."""
        if self.stopping:
            return []
        grouped = _by_partition(events)
        await self._prepare(grouped)
        assigned = self.assigned()
        batches = []
        for tp, all_events in grouped.items():
            tp_events = self._fresh(tp, all_events)
            if tp in assigned and tp_events:
                batches.append((tp, tp_events))
        return batches

    # -- stage 1: raw → by-host (driven by streams.worker.router) -------------------------------------

    def route(self, stream: str, messages: Sequence[Any]) -> list[OutRecord]:
        """Decode one raw partition's records and repartition their lines by host (audit) or parse and
        key them (syslog); undecodable values and unparseable lines become dead letters.

        Args:
            stream: ``"auditd"`` or ``"syslog"``.
            messages: Kafka records with ``topic``, ``partition``, ``offset``, ``key`` and ``value``.
        """
        default_host = self.config.input.default_host
        if stream == "auditd" and all(len(message.value or b"") <= MAX_DOCUMENT_BYTES for message in messages):
            packed = pack_audit_records(messages, default_host, _PACK_BYTES)
            if packed is not None:  # raw text: split, keyed and framed in compiled code
                topic = self.topics.auditd_by_host
                return [OutRecord(topic, value, _host_key(host), None, headers) for host, value, headers in packed]
        return self._route_decoded(stream, messages)

    def _route_decoded(self, stream: str, messages: Sequence[Any]) -> list[OutRecord]:
        """``route`` through :func:`decode_value`: any value, JSON envelopes and dead letters included."""
        now = self.clock()
        default_host = self.config.input.default_host
        records: list[OutRecord] = []
        syslog_lines: list[RawLine] = []
        by_host: dict[str, list[RawLine]] = defaultdict(list)
        keys_by_host: dict[str, list[tuple[str, int] | None]] = defaultdict(list)
        for message in messages:
            decoded = decode_value(
                message.value,
                key=message.key,
                stream=stream,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                received=now,
                settings=self.serde,
            )
            for doc in decoded.deadletters:
                self.metrics.bad_input.labels(reason=f"{stream}:DecodeError").inc()
                records.append(self._doc_record(self.topics.deadletter, doc))
            if stream == "syslog":
                syslog_lines.extend(decoded.lines)
                continue
            for line in decoded.lines:
                if len(line.data) > MAX_DOCUMENT_BYTES:  # its internal record would be refused
                    doc = self.pipeline.too_long(line, stream, MAX_DOCUMENT_BYTES)
                    records.append(self._doc_record(self.topics.deadletter, doc))
                    continue
                key = audit_event_key(line, default_host)
                host = key[0] if key is not None else line.host or default_host
                by_host[host].append(line)
                keys_by_host[host].append(key)
        for host, lines in by_host.items():
            keys = keys_by_host[host]
            for start, stop in _packs(lines):
                chunk_keys = [key for key in keys[start:stop] if key is not None]
                value, headers = encode_internal(lines[start:stop], chunk_keys)
                records.append(OutRecord(self.topics.auditd_by_host, value, _host_key(host), None, headers))
        if syslog_lines:
            pending = self.pipeline.syslog_lines(syslog_lines, {})
            for doc in pending.events:
                records.append(OutRecord(self.topics.syslog_by_host, dumps(doc), _host_key(doc["host"]["name"])))
            records.extend(self._doc_record(self.topics.deadletter, doc) for doc in pending.deadletters)
        return records

    # -- stage 2: by-host → outputs -------------------------------------------------------------

    async def audit_batch(self, events: Sequence[Any]) -> None:
        """Coalesce, decode, track, enrich and detect; ack each record once its event is out.

        Lines go to the coalescer in event-time order across raw partitions (:meth:`_order`); route-stage
        marks (no lines) only move that order on.
        """
        async with self.lock:
            batches = await self._batches(events)
            now = self.clock()
            default_host = self.config.input.default_host
            for tp, tp_events in batches:
                order = self._order(tp)
                hosts: list[str] = []
                free: list[Any] = []
                for event in tp_events:
                    message = event.message
                    if _has_header(message.headers, MARK_HEADER):
                        order.mark(message.value or b"")
                        free.append(event)
                        continue
                    raw, keys = decode_internal(message.value or b"", message.headers, now, default_host)
                    if keys and self.hold_acks:
                        self.holds.hold(event, keys, now)
                    else:
                        free.append(event)
                    key = message.key
                    host = key.decode("utf-8", "surrogateescape") if key else default_host
                    routed_at = getattr(message, "timestamp", None) or now
                    order.add(host, raw, routed_at, now, message.offset)
                    hosts.append(host)
                lines = self._release(tp, order, now, hosts)
                self._last_offset[tp] = tp_events[-1].message.offset
                await self._run(tp, functools.partial(self._audit_lines, lines), free)
                self.metrics.observe_lag(tp, self._last_offset[tp], self.highwater(tp))

    def _order(self, tp: Any) -> EventTimeOrder:
        order = self._orders.get(tp)
        if order is None:
            order = self._orders[tp] = EventTimeOrder(
                lateness_s=self.config.coalescer.event_timeout_s,
                max_wait_s=ORDER_MAX_WAIT_S,
                max_lines=ORDER_MAX_LINES,
                counters=self.order_counters,
            )
        return order

    def _release(self, tp: Any, order: EventTimeOrder, now: float, hosts: list[str] | None) -> list[RawLine]:
        """The lines ``order`` hands over now, stamped with the time they reach the coalescer (its idle
        flush counts from then); a bound that forced lines out is logged."""
        counters = self.order_counters
        before = counters.forced_wait, counters.forced_memory
        lines = order.release(now, hosts)
        for line in lines:
            line.received = now
        if (counters.forced_wait, counters.forced_memory) != before:
            log.warning(
                "order.forced",
                partition=tp.partition,
                waited=counters.forced_wait - before[0],
                over_memory=counters.forced_memory - before[1],
                held=order.queued(),
                hint="a raw partition is stopped or far behind: these lines may make late fragments",
            )
        return lines

    def _order_gauges(self) -> Iterator[tuple[Any, int, float]]:
        """(internal partition, lines held, watermark lag in event-time seconds) per audit partition."""
        for tp, order in self._orders.items():
            yield tp, order.queued(), order.lag_s()

    def route_marks(
        self, topic: str, partition: int, partitions: int, caught_up_at: float | None, event_time: float | None
    ) -> list[OutRecord]:
        """A mark of raw partition ``topic:partition`` for every internal audit partition (see
        :mod:`streams.worker.watermark`): written after the partition's routed lines, so it reaches each
        internal partition after them."""
        value = mark_value(topic, partition, partitions, caught_up_at, event_time)
        headers = [(MARK_HEADER, b"1")]
        return [
            OutRecord(self.topics.auditd_by_host, value, None, number, headers)
            for number in range(self.config.topics.partitions)
        ]

    def _audit_lines(self, lines: list[RawLine], view: PartitionView) -> Pending:
        return self.pipeline.audit_lines(lines, view)

    async def syslog_batch(self, events: Sequence[Any]) -> None:
        """Run sessions, detectors and rules over parsed syslog documents."""
        async with self.lock:
            for tp, tp_events in await self._batches(events):
                docs = [loads(event.message.value) for event in tp_events]
                self._last_offset[tp] = tp_events[-1].message.offset
                await self._run(tp, functools.partial(_parsed, docs), list(tp_events))
                self.metrics.observe_lag(tp, self._last_offset[tp], self.highwater(tp))

    async def tick(self) -> None:
        """Wall-clock flush of quiet hosts and eviction, then release of holds that timed out."""
        if self.stopping:
            return
        async with self.lock:
            now = self.clock()
            assigned = self.assigned()
            expired = self.holds.expired(now)
            if expired:
                self.metrics.hold_expired.inc(len(expired))
            expired_by_tp = _by_partition(expired)
            for tp in set(self._hosts) | set(expired_by_tp) | set(self._orders):
                if tp.topic != self.topics.auditd_by_host or tp not in assigned:
                    continue
                await self._run(tp, functools.partial(self._tick_partition, tp, now), expired_by_tp.get(tp, []))
            for tp in list(self._unsaved):  # the syslog partitions have no tick of their own
                if tp.topic != self.topics.auditd_by_host and tp in assigned and self._snapshot_due(tp, now):
                    await self._run(tp, _nothing, [])
            self.metrics.held.set(self.holds.count())

    def _tick_partition(self, tp: Any, now: float, view: PartitionView) -> Pending:
        """Lines whose wait for event-time order is over, then the wall-clock idle flush of the hosts that
        have nothing held back (a held line may still belong to one of their in-flight events)."""
        order = self._orders.get(tp)
        if order is None:
            return self.pipeline.tick(view, now)
        lines = self._release(tp, order, now, None)
        pending = self.pipeline.audit_lines(lines, view) if lines else Pending()
        quiet = PartitionView(self.store, {h for h in self._hosts[tp] if not order.waiting(h)}, tp.partition)
        pending.extend(self.pipeline.tick(quiet, now))
        return pending

    def _flush_partition(self, tp: Any, view: PartitionView) -> Pending:
        """Every held line, then every in-flight event (shutdown)."""
        order = self._orders.get(tp)
        lines = order.drain() if order is not None else []
        pending = self.pipeline.audit_lines(lines, view) if lines else Pending()
        pending.extend(self.pipeline.shutdown(view))
        return pending

    async def shutdown(self) -> None:
        """Flush every in-flight event (partial where incomplete), send it, ack everything and stop.

        In exactly-once mode in-flight events are part of the committed host state already, so nothing
        is flushed: the next owner resumes them (a flush would emit partial events whose remaining
        records, still to come, would then make second, late events).
        """
        async with self.lock:
            self.stopping = True
            for tp in list(set(self._hosts) | set(self._orders)):
                if tp.topic != self.topics.auditd_by_host or self.store.with_coalescer:
                    continue
                await self._run(tp, functools.partial(self._flush_partition, tp), [], flush=True)
            for tp in list(self._unsaved):  # partitions whose snapshot and acks are still deferred
                await self._run(tp, _nothing, [], flush=True)
            await self.publisher.close()
            close = getattr(self._pipeline, "close", None)
            if close is not None:
                await close()
            log.info("worker.flushed", held=self.holds.count())

    async def revoke(self, revoked: Iterable[Any]) -> None:
        """Forget the state of revoked partitions without acking; their new owner reads them again."""
        revoked = set(revoked)
        async with self.lock:
            # Acks follow delivery, and a record is acked only once a snapshot holding its effects is
            # delivered. Waiting here makes every ack of these partitions, hence every offset this worker
            # may still commit for them, cover a snapshot that is on the broker before the new owner is
            # assigned and reads the changelog; an ack arriving later could let the new owner start past
            # records whose snapshot it never saw.
            await self.publisher.wait_delivered()
            self.holds.drop(revoked)
            for tp in revoked:
                self.store.forget(self._hosts.pop(tp, set()))
                self._last_offset.pop(tp, None)
                self._floor.pop(tp, None)
                self._deferred.pop(tp, None)  # never acked: the new owner reads them again
                self._unsaved.pop(tp, None)
                self._snapshot_gap.pop(tp, None)
                self._orders.pop(tp, None)  # its held lines are unacked: the new owner reads them again
                self._order_kept.pop(tp, None)
            self._ready -= revoked
            internal = {self.topics.auditd_by_host, self.topics.syslog_by_host}
            self.store.drop({tp.partition for tp in revoked if tp.topic in internal})
            await self.publisher.revoke(revoked)

    async def _run(
        self, tp: Any, produce: Callable[[PartitionView], Pending], free: list[Any], *, flush: bool = False
    ) -> None:
        started = time.perf_counter()
        view = PartitionView(self.store, self._hosts[tp], tp.partition)
        pending = produce(view)
        parsed = time.perf_counter()
        outputs = await self.pipeline.complete(pending, view)
        completed = time.perf_counter()
        free.extend(self.holds.release_all(tp) if flush else self.holds.release(self._emitted(outputs)))
        free = self._unordered(tp, free)
        records = self._output_records(outputs)
        if self.store.with_coalescer or flush or self._snapshot_due(tp, self.clock()):
            snapshot_started = time.perf_counter()
            records.extend(self.store.changed_records(self._hosts[tp], tp.partition))
            self._snapshot_gap[tp] = SNAPSHOT_COST_FACTOR * (time.perf_counter() - snapshot_started)
            free = self._deferred.pop(tp, []) + free
            self._unsaved.pop(tp, None)
        else:  # at-least-once: write the snapshot later, ack these once it is written
            self._deferred.setdefault(tp, []).extend(free)
            free = []
            self._unsaved.setdefault(tp, self.clock())
        last = self._last_offset.get(tp)
        lowest = [o for o in (self.holds.lowest_offset(tp), self._lowest_ordered(tp)) if o is not None]
        commit = min(lowest) if lowest else (last + 1 if last is not None else None)
        await self.publisher.publish(tp, records, free, commit)
        done = time.perf_counter()
        self.metrics.count_outputs(outputs)
        stage = tp.topic.rsplit("-", 1)[-1]
        self.metrics.stage_seconds.labels(stage=f"graph_{stage}").observe(parsed - started)
        self.metrics.stage_seconds.labels(stage="complete").observe(completed - parsed)
        self.metrics.stage_seconds.labels(stage="publish").observe(done - completed)
        self.metrics.held.set(self.holds.count())

    def _unordered(self, tp: Any, free: list[Any]) -> list[Any]:
        """The events of ``free`` (and of those kept back before) with no line held for event-time order:
        one that has (a line without an audit header, or the rest of an event already out) stays unacked."""
        order = self._orders.get(tp)
        kept = self._order_kept.pop(tp, [])
        if order is None:
            return kept + free
        ready: list[Any] = []
        still: list[Any] = []
        for event in kept + free:
            (still if order.holding(event.message.offset) else ready).append(event)
        if still:
            self._order_kept[tp] = still
        return ready

    def _lowest_ordered(self, tp: Any) -> int | None:
        """Exactly-once: the committed offset must not pass a line still held for event-time order (it is
        in no host state yet); re-read after a crash, the lines released before it are duplicates the
        coalescer drops."""
        order = self._orders.get(tp)
        return order.lowest_offset() if order is not None else None

    def _snapshot_due(self, tp: Any, now: float) -> bool:
        """Whether ``tp``'s host snapshots must be written with this batch (at-least-once)."""
        since = self._unsaved.get(tp)
        if since is None:  # written with the last batch: this one starts the next period
            return False
        return now - since >= max(self.config.worker.snapshot_interval_s, self._snapshot_gap.get(tp, 0.0))

    @staticmethod
    def _emitted(outputs: Outputs) -> set[tuple[str, int]]:
        keys: set[tuple[str, int]] = set()
        for doc in outputs.events:
            event = doc.get("event", {})
            if event.get("module") != "auditd":
                continue
            sequence = event.get("sequence", doc.get("auditd", {}).get("sequence"))
            if sequence is not None:
                keys.add((doc["host"]["name"], int(sequence)))
        return keys

    def _doc_record(self, topic: str, doc: dict[str, Any]) -> OutRecord:
        value = dumps(doc)
        if len(value) > MAX_DOCUMENT_BYTES:
            topic, value = self.topics.deadletter, dumps(self._too_large(topic, doc, value))
        return OutRecord(topic, value, _host_key(doc.get("host", {}).get("name")))

    def _too_large(self, topic: str, doc: dict[str, Any], value: bytes) -> dict[str, Any]:
        """The dead letter that stands for a document over ``MAX_DOCUMENT_BYTES``."""
        self.metrics.bad_input.labels(reason="output:too_large").inc()
        event, host = doc.get("event", {}), doc.get("host", {}).get("name")
        log.warning("worker.document_too_large", topic=topic, bytes=len(value), host=host, id=event.get("id"))
        stream = str(event.get("module") or "")
        if topic == self.topics.deadletter:  # keep the input's reason and coordinates, cut its bytes
            original = base64.b64decode(doc["secstream"]["original_base64"])
            source = doc["secstream"]["source"]
            reason = f"{event.get('reason', '')} (too large for a record: only its first {_KEPT_BYTES} bytes are kept)"
            error_type = str(doc.get("error", {}).get("type", ""))
        else:
            original, source = value, {"topic": topic, "event_id": event.get("id")}
            reason = f"a {len(value)}-byte document for {topic} is over the {MAX_DOCUMENT_BYTES}-byte record limit"
            error_type = "DocumentTooLarge"
        return truncated_dead_letter(
            original,
            _KEPT_BYTES,
            reason=reason,
            error_type=error_type,
            stream=stream,
            host=host,
            timestamp=self.clock(),
            source=source,
        )

    def _output_records(self, outputs: Outputs) -> list[OutRecord]:
        records = [self._doc_record(self.topics.events, doc) for doc in outputs.events]
        records.extend(self._doc_record(self.topics.detections, doc) for doc in outputs.detections)
        records.extend(self._doc_record(self.topics.deadletter, doc) for doc in outputs.deadletters)
        return records
