"""The route stage on its own Kafka consumer: raw topics → the internal by-host topics.

Why not a Faust agent: Faust spends about 100 µs of CPU on every record it hands to an agent, before
the agent runs (``bench/bench_consumer.py``). Raw topics carry one line per record when rsyslog's
omkafka or Fluent Bit send them, so that cost alone held a worker under 6k lines/s. aiokafka's own
consumer loop costs about 4 µs a record. Routing keeps no state, so it needs nothing else from Faust:
:class:`RawRouter` consumes the raw topics in its own consumer group (``<app id>-route``), hands each
partition's records to :meth:`streams.worker.runtime.WorkerRuntime.route`, and writes the result with
the same publishers as the processing stage:

* at-least-once: a partition's offset is committed (every ``commit_interval_s``, on a rebalance and
  on stop) only up to the last record whose outputs, and every output before them, are delivered;
* exactly-once: each partition batch is one transaction that also carries the consumed offset
  (``transactional.id = <app id>-route-<topic>-<partition>``). On assignment the producers are started
  first, which aborts a dead owner's open transaction and fences a zombie, and the consumer then seeks
  to the group's committed offsets, which are final by then.

The processing stage stays in Faust: the router packs lines per host, so it sees few, large records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from streams.logging import get_logger
from streams.worker.metrics import WorkerMetrics
from streams.worker.publish import OutRecord, Publisher
from streams.worker.watermark import MARK_INTERVAL_S, last_event_time

__all__ = ["RawRouter", "route_group"]

log = get_logger(__name__)

Route = Callable[[str, Sequence[ConsumerRecord[bytes, bytes]]], list[OutRecord]]
"""(stream name, one partition's records) → the records to write (see ``WorkerRuntime.route``)."""

Marks = Callable[[str, int, int, float | None, float | None], list[OutRecord]]
"""(raw topic, partition, partition count, caught up at, newest event time) → the marks to write after a raw
audit partition's routed lines (see ``WorkerRuntime.route_marks`` and :mod:`streams.worker.watermark`)."""


def route_group(app_id: str) -> str:
    """The consumer group of the route stage (Faust's own group is the app id)."""
    return f"{app_id}-route"


class _Delivered:
    """Acked by the at-least-once publisher once a batch's outputs are delivered: the offset may be committed."""

    __slots__ = ("offset", "router", "tp")

    def __init__(self, router: RawRouter, tp: TopicPartition, offset: int) -> None:
        self.router, self.tp, self.offset = router, tp, offset

    def ack(self) -> None:
        self.router.delivered_up_to(self.tp, self.offset)


class RawRouter(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's listener base is untyped
    """Consumes the raw topics and routes every partition batch through ``route`` and ``publisher``.

    Args:
        consumer_factory: builds the unstarted consumer (group :func:`route_group`, no auto-commit).
        streams: raw topic name → stream name (``"auditd"`` or ``"syslog"``).
        route: turns one partition's records into output records.
        publisher: delivers them (at-least-once or transactional).
        metrics: the worker's metrics (route latency, consumer lag).
        commits_in_transactions: exactly-once: offsets travel in the publisher's transactions.
        batch_size: most records taken per fetch.
        batch_within_s: longest wait for a fetch.
        linger_s: shortest time between two fetches, unless the last one was full. The route stage
            packs each fetch's lines into one internal record per host, and every internal record costs
            the processing stage a Faust message; fetching as often as records arrive made one record
            per line on a fleet of many hosts (capacity fell under 10k lines/s with 256 hosts).
        commit_interval_s: at-least-once: how often delivered offsets are committed.
        marks: writes a raw audit partition's progress after each of its batches, and every
            ``MARK_INTERVAL_S`` while it routes nothing, for the process stage's event-time order.
    """

    def __init__(
        self,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        streams: dict[str, str],
        route: Route,
        publisher: Publisher,
        metrics: WorkerMetrics,
        *,
        commits_in_transactions: bool,
        batch_size: int,
        batch_within_s: float,
        linger_s: float = 0.1,
        commit_interval_s: float = 1.0,
        marks: Marks | None = None,
    ) -> None:
        self._consumer_factory = consumer_factory
        self._consumer: AIOKafkaConsumer | None = None
        self.streams = streams
        self._route = route
        self.publisher = publisher
        self.metrics = metrics
        self.commits_in_transactions = commits_in_transactions
        self.batch_size = batch_size
        self.batch_within_s = batch_within_s
        self.linger_s = linger_s
        self.commit_interval_s = commit_interval_s
        self._lock = asyncio.Lock()
        """Held by a batch and by the rebalance callbacks, so that they never interleave."""
        self._owned: set[TopicPartition] = set()
        """Partitions assigned and not revoked since: only their records are routed."""
        self._prepared: set[TopicPartition] = set()
        """Partitions whose publisher is started (kept across a rebalance that assigns them again)."""
        self._delivered: dict[TopicPartition, int] = {}
        """At-least-once: partition → next offset whose every earlier record's outputs are delivered."""
        self._committed: dict[TopicPartition, int] = {}
        self._marks = marks
        self._next: dict[TopicPartition, int] = {}
        """Raw audit partition → the offset after its last routed record."""
        self._event_time: dict[TopicPartition, float] = {}
        """Raw audit partition → the newest event time routed from it."""
        self._marked: dict[TopicPartition, float] = {}
        """Raw audit partition → when (monotonic) its last mark was written."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failure: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the route group and start routing in the background."""
        consumer = self._consumer = self._consumer_factory()  # before start: the listener may run at once
        consumer.subscribe(sorted(self.streams), listener=self)
        await consumer.start()
        self._task = asyncio.create_task(self._run(consumer), name="secstream.route")

    async def stop(self) -> None:
        """Finish the batch in hand, wait for its delivery, commit, and leave the group."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait([self._task])
        if self._consumer is None:
            return
        async with self._lock:
            if self.failure is None:
                await self.publisher.wait_delivered()
                await self._commit(self._owned)
        # Not under the lock: stopping waits for the group coordinator, which may be inside a rebalance
        # callback that needs the lock.
        await self._consumer.stop()
        await self.publisher.close()
        log.info("route.stopped", committed={f"{tp.topic}:{tp.partition}": o for tp, o in self._committed.items()})

    @property
    def failure(self) -> BaseException | None:
        """Why routing stopped (a failed delivery or transaction), or None while it runs."""
        return self._failure or self.publisher.failure

    def assignment(self) -> set[TopicPartition]:
        """The raw partitions this worker routes now."""
        return set(self._owned)

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        last_commit = last_fetch = time.monotonic()
        full = False
        try:
            while not self._stopping and self.failure is None:
                wait = last_fetch + self.linger_s - time.monotonic()
                if wait > 0 and not full:  # a full fetch means records are waiting: no pause then
                    await asyncio.sleep(wait)
                last_fetch = time.monotonic()
                fetched = await consumer.getmany(
                    timeout_ms=int(self.batch_within_s * 1000), max_records=self.batch_size
                )
                full = sum(map(len, fetched.values())) >= self.batch_size
                async with self._lock:
                    for tp, records in fetched.items():
                        if tp in self._owned and not self._stopping:
                            await self._route_partition(consumer, tp, records)
                if self._marks is not None:
                    async with self._lock:
                        await self._heartbeat(consumer)
                if not self.commits_in_transactions and time.monotonic() - last_commit >= self.commit_interval_s:
                    last_commit = time.monotonic()
                    async with self._lock:
                        await self._commit(self._owned)
        except Exception as exc:  # nothing is committed past the failure: a restarted worker reads it again
            self._failure = exc
            log.error("route.failed", error=repr(exc))

    async def _route_partition(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        started = time.perf_counter()
        stream = self.streams[tp.topic]
        outputs = self._route(stream, records)
        following = records[-1].offset + 1
        if self._marks is not None and stream == "auditd":
            newest = last_event_time(record.value for record in records[-8:])
            if newest is not None and newest > self._event_time.get(tp, float("-inf")):
                self._event_time[tp] = newest
            self._next[tp] = following
            outputs = outputs + self._mark(consumer, tp, following)
        await self.publisher.publish(tp, outputs, [_Delivered(self, tp, following)], following)
        self.metrics.stage_seconds.labels(stage=f"route_{stream}").observe(time.perf_counter() - started)
        self.metrics.observe_lag(tp, records[-1].offset, consumer.highwater(tp))

    def _mark(self, consumer: AIOKafkaConsumer, tp: TopicPartition, following: int) -> list[OutRecord]:
        """The marks of a raw audit partition read up to ``following``: caught up (with the time of the fetch
        that showed its end) when nothing after it was on the broker then."""
        if self._marks is None:
            return []
        # read_committed (exactly-once) stops at the last stable offset, not at the high-water mark
        end = consumer.last_stable_offset(tp) if self.commits_in_transactions else consumer.highwater(tp)
        polled = consumer.last_poll_timestamp(tp)
        caught_up_at = polled / 1000 if end is not None and polled and following >= end else None
        count = len(consumer.partitions_for_topic(tp.topic) or ()) or tp.partition + 1
        self._marked[tp] = time.monotonic()
        return self._marks(tp.topic, tp.partition, count, caught_up_at, self._event_time.get(tp))

    async def _heartbeat(self, consumer: AIOKafkaConsumer) -> None:
        """Mark the raw audit partitions that routed nothing for ``MARK_INTERVAL_S`` (lock held): a quiet
        partition must not hold the event-time order of the hosts it carries no lines of."""
        now = time.monotonic()
        for tp in sorted(self._owned):
            if self.streams[tp.topic] != "auditd" or now - self._marked.get(tp, 0.0) < MARK_INTERVAL_S:
                continue
            following = self._next.get(tp)
            if following is None:
                try:
                    following = await asyncio.wait_for(consumer.position(tp), 1.0)
                except (KafkaError, TimeoutError, AssertionError):  # not fetched yet, or just revoked
                    continue
                if following is None:
                    continue
                self._next[tp] = following
            await self.publisher.publish(tp, self._mark(consumer, tp, following), [], following)

    def delivered_up_to(self, tp: TopicPartition, offset: int) -> None:
        """Record that every record of ``tp`` below ``offset`` has its outputs on the broker."""
        if tp in self._owned:
            self._delivered[tp] = max(offset, self._delivered.get(tp, 0))

    async def _commit(self, tps: Iterable[TopicPartition]) -> None:
        """At-least-once: commit the delivered offsets of ``tps`` that moved since the last commit."""
        if self.commits_in_transactions or self._consumer is None:
            return
        offsets = {
            tp: offset
            for tp in tps
            if (offset := self._delivered.get(tp)) is not None and offset > self._committed.get(tp, -1)
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress: its revoke callback commits again
            log.warning("route.commit_failed", error=repr(exc))
            return
        self._committed.update(offsets)

    # -- rebalances (aiokafka awaits these before it fetches again) -----------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Wait for the batch in hand and its delivery, and commit what is delivered."""
        async with self._lock:
            if self.failure is None:
                await self.publisher.wait_delivered()
                await self._commit(revoked)
            gone = set(revoked)
            self._owned -= gone
            for tp in gone:
                self._delivered.pop(tp, None)
                self._committed.pop(tp, None)
                self._next.pop(tp, None)
                self._marked.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Start the partitions' publishers, then start each one at its committed offset where it is known.

        aiokafka revokes every partition before a rebalance and assigns the new set after it; the
        transactional producers of partitions this worker keeps are kept, the others are stopped.
        """
        async with self._lock:
            kept = set(assigned)
            await self.publisher.revoke(self._prepared - kept)
            floors = await self.publisher.prepare(kept)
            self._prepared = kept
            self._owned = kept
            consumer = self._consumer
            for tp, offset in floors.items():
                if consumer is not None:
                    consumer.seek(tp, offset)
            log.info("route.assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in kept))
