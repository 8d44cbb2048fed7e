"""Output delivery for the worker: at-least-once through Faust's producer, or Kafka transactions.

Both publishers take the outputs of one source partition's batch together with the Faust events to
ack, and the offset that is safe to commit for that partition.

* :class:`AtLeastOncePublisher` sends the records through Faust's (aiokafka) producer and acks the
  events once they are delivered, without holding up the next batch. Faust commits a partition only
  up to its lowest unacked offset, so every acked record's outputs are on the broker before the
  offset moves.
* :class:`TransactionalPublisher` keeps one transactional producer per source partition
  (``transactional_id = <app id>-<topic>-<partition>``, which fences a zombie owner after a rebalance
  and aborts a crashed owner's open transaction) and writes the outputs, the table changelog records
  and the consumed offset in one transaction. Faust's own offset commits are switched off in this
  mode (see :mod:`streams.worker.app`): a late Faust commit could otherwise move an offset back behind
  a committed transaction, and a restart would emit its outputs again.

Both send with aiokafka's batch API (:func:`send_records`): one record batch per destination
partition, all futures gathered, instead of one awaited ``send`` per record.

Faust's built-in ``processing_guarantee="exactly_once"`` is not used: its transaction manager routes a
send by the destination topic's partition group, which does not exist for sink topics the app never
consumes (``secstream.events`` and friends), and its open transaction at shutdown loses table updates
(see docs/worker.md).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from streams.logging import get_logger

__all__ = ["AtLeastOncePublisher", "OutRecord", "Publisher", "TransactionalPublisher", "send_records"]

log = get_logger(__name__)

_PARTITIONER = DefaultPartitioner()


@dataclass(slots=True)
class OutRecord:
    """One record to write.

    Args:
        topic: destination topic.
        value: the serialised value, or None for a tombstone (a compacted topic then drops the key).
        key: the key (host name bytes), or None.
        partition: an explicit partition (table changelogs), or None for the key's partition.
        headers: record headers.
    """

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    headers: Sequence[tuple[str, bytes]] = ()


async def send_records(producer: AIOKafkaProducer, records: Sequence[OutRecord]) -> list[asyncio.Future[Any]]:
    """Enqueue ``records`` with aiokafka's batch API: one record batch per destination partition.

    A record without an explicit partition goes where aiokafka's default partitioner would put it
    (murmur2 of the key), so keyed outputs land exactly where :meth:`AIOKafkaProducer.send` would put them.
    Nothing is awaited for delivery here, but aiokafka keeps one batch per partition in flight: a new
    batch for a partition waits until the one before it has left for the broker.

    Args:
        producer: a started producer (inside a transaction when it is transactional).
        records: the records, in order (order is kept per destination partition).

    Returns:
        For each record, the delivery future of the batch that carries it (records of one batch share
        it); await them before acking or committing.
    """
    partitions: dict[str, list[int]] = {}
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        partition = record.partition
        if partition is None:
            all_partitions = partitions.get(record.topic)
            if all_partitions is None:
                all_partitions = partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
            partition = _PARTITIONER(record.key, all_partitions, all_partitions)
        groups[(record.topic, partition)].append(index)
    futures: list[asyncio.Future[Any]] = [None] * len(records)  # type: ignore[list-item]  # all set below
    for (topic, partition), indexes in groups.items():
        batch, members = producer.create_batch(), []
        for index in indexes:
            record = records[index]
            headers = list(record.headers)
            if batch.append(key=record.key, value=record.value, timestamp=None, headers=headers) is not None:
                members.append(index)
                continue
            if members:
                _settle(futures, members, await producer.send_batch(batch, topic, partition=partition))
                batch, members = producer.create_batch(), []
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=headers) is not None:
                    members.append(index)
                    continue
            # larger than a whole batch: let the producer size it
            futures[index] = await producer.send(
                topic, record.value, key=record.key, partition=partition, headers=headers or None
            )
        if members:
            _settle(futures, members, await producer.send_batch(batch, topic, partition=partition))
    return futures


def _settle(futures: list[asyncio.Future[Any]], members: list[int], batch: asyncio.Future[Any]) -> None:
    for index in members:
        futures[index] = batch


class Publisher(Protocol):
    """Delivers one source partition's outputs and acks its finished source events."""

    async def publish(
        self, source: Any, records: Sequence[OutRecord], acks: Iterable[Any], commit_offset: int | None
    ) -> None:
        """Write ``records``, then ack ``acks``; ``commit_offset`` is the next offset safe to commit."""

    @property
    def failure(self) -> BaseException | None:
        """An output delivery failure that stopped acks (reported by the health check), or None."""

    async def prepare(self, sources: Iterable[Any]) -> dict[Any, int]:
        """Get ready to publish for newly assigned source partitions.

        Returns:
            source partition → the committed offset, for partitions whose records below it must be
            skipped (exactly-once); empty when Faust's own position is authoritative.
        """

    async def revoke(self, sources: Iterable[Any]) -> None:
        """Forget the given source partitions (rebalance)."""

    async def wait_delivered(self) -> None:
        """Wait until everything published so far is delivered and its events are acked."""

    async def close(self) -> None:
        """Release producers."""


_MAX_QUEUED = 64
"""At-least-once: publishes waiting for the sender before :meth:`AtLeastOncePublisher.publish` waits
(backpressure on the agents when the broker falls behind)."""


@dataclass(slots=True)
class _Queued:
    records: list[OutRecord]
    acks: list[Any]


class AtLeastOncePublisher:
    """Sends through Faust's (aiokafka) producer and acks each publish's events once it is delivered.

    A publish only queues its records: one background task sends them, oldest first, so the caller
    goes on with its next batch at once. aiokafka keeps one batch per partition in flight and makes the
    next one wait until it has left, so sending every publish as batches of its own could make each
    publish wait a broker round trip per destination partition, on the agent's path. The sender takes
    everything queued while its last send waited and writes it as one batch per partition.

    Acks follow delivery in publish order (each publish's delivery includes the one before it), so an
    event is acked only when its outputs and every earlier output are on the broker; Faust commits a
    partition only up to its lowest unacked offset. A failed delivery stops all later acks (the offsets
    stay uncommitted, so the records are read again) and fails the next publish.

    Args:
        app: the Faust app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._queue: list[_Queued] = []
        self._queued = asyncio.Event()
        """Set when the queue has something for the sender."""
        self._taken = asyncio.Event()
        """Set when the sender empties the queue (wakes publishes held back by backpressure)."""
        self._idle = asyncio.Event()
        """Set while everything published has been handed to the producer."""
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        self._delivered: asyncio.Task[bool] | None = None
        """The last publish's delivery: done once every record handed to the producer so far has
        settled; True if all of it was delivered."""
        self._failure: BaseException | None = None

    async def publish(
        self, source: Any, records: Sequence[OutRecord], acks: Iterable[Any], commit_offset: int | None
    ) -> None:
        """Queue the records for the sender; the events are acked once they (and all before) are delivered."""
        del source, commit_offset
        if self._failure is not None:
            raise RuntimeError("an earlier output batch was not delivered") from self._failure
        acks = list(acks)
        if not records and self._idle.is_set() and self._all_delivered():
            for event in acks:  # nothing of it or before it is still on its way
                event.ack()
            return
        while len(self._queue) >= _MAX_QUEUED and self._failure is None:
            self._taken.clear()
            await self._taken.wait()
        self._queue.append(_Queued(list(records), acks))
        self._idle.clear()
        self._queued.set()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_forever(), name="secstream.publish")

    async def _send_forever(self) -> None:
        producer = self.app.producer._ensure_producer()
        while True:
            await self._queued.wait()
            self._queued.clear()
            taken, self._queue = self._queue, []
            self._taken.set()
            if taken and self._failure is None:
                try:
                    await self._send(producer, taken)
                except Exception as exc:  # refused before it was sent: nothing after it may be acked
                    self._fail(exc)
            if not self._queue:
                self._idle.set()

    async def _send(self, producer: AIOKafkaProducer, taken: list[_Queued]) -> None:
        futures = await send_records(producer, [record for queued in taken for record in queued.records])
        start = 0
        for queued in taken:
            batches = set(futures[start : start + len(queued.records)])
            start += len(queued.records)
            if not batches and self._all_delivered():
                for event in queued.acks:
                    event.ack()
                continue
            self._delivered = asyncio.create_task(self._deliver(batches, self._delivered, queued.acks))

    def _all_delivered(self) -> bool:
        """Whether everything handed to the producer so far is delivered."""
        return self._delivered is None or (self._delivered.done() and self._delivered.result())

    async def _deliver(
        self, batches: set[asyncio.Future[Any]], previous: asyncio.Task[bool] | None, acks: list[Any]
    ) -> bool:
        """Ack once this publish's batches and every earlier publish are delivered; True if they were.

        It waits for all of its batches even after one fails, so that once the last publish's
        delivery is done, nothing handed to the producer is still on its way.
        """
        results = await asyncio.gather(*batches, return_exceptions=True)
        earlier_delivered = previous is None or await previous
        failure = next((result for result in results if isinstance(result, BaseException)), None)
        if failure is not None:
            self._fail(failure)
            return False
        if not earlier_delivered:
            return False
        for event in acks:
            event.ack()
        return True

    @property
    def failure(self) -> BaseException | None:
        """The first delivery failure: from then on nothing is acked and every publish fails."""
        return self._failure

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            log.error("worker.delivery_failed", error=repr(failure))
        self._failure = failure
        self._taken.set()

    async def prepare(self, sources: Iterable[Any]) -> dict[Any, int]:
        """Nothing to prepare: Faust's consumer position is the committed offset."""
        del sources
        return {}

    async def revoke(self, sources: Iterable[Any]) -> None:
        """Nothing to do: unacked events of revoked partitions are read again by their new owner."""
        del sources

    async def wait_delivered(self) -> None:
        """Wait for the delivery of everything published (acks run before this returns, or never on failure)."""
        await self._idle.wait()
        if self._delivered is not None:
            await self._delivered

    async def close(self) -> None:
        """Wait until everything published is delivered (and acked), stop the sender, flush the producer."""
        await self.wait_delivered()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender])
            self._sender = None
        await self.app.producer.flush()


class TransactionalPublisher:
    """One Kafka transaction per source-partition batch: outputs, changelog records and the offset.

    :meth:`prepare` starts the producers of newly assigned partitions before anything of them is read
    or written: initialising a transactional id aborts the previous owner's open transaction (or waits
    for its commit to complete), which unblocks ``read_committed`` readers of the outputs, the internal
    topics and the host-state changelog; then the group's committed offsets are final, and returned so
    that records below them are skipped even if Faust fetched an older position.

    Args:
        group_id: the consumer group whose offsets are committed (the app id).
        producer_factory: builds an unstarted :class:`AIOKafkaProducer` for a transactional id.
        admin_factory: builds an unstarted admin client (to read the group's committed offsets).
    """

    def __init__(
        self,
        group_id: str,
        producer_factory: Callable[[str], AIOKafkaProducer],
        admin_factory: Callable[[], AIOKafkaAdminClient],
    ) -> None:
        self.group_id = group_id
        self._factory = producer_factory
        self._admin_factory = admin_factory
        self._admin: AIOKafkaAdminClient | None = None
        self._producers: dict[tuple[str, int], AIOKafkaProducer] = {}

    async def _committed(self, sources: list[Any]) -> dict[Any, int | None]:
        if self._admin is None:
            admin = self._admin_factory()
            await admin.start()
            self._admin = admin
        wanted = {(tp.topic, tp.partition): tp for tp in sources}
        found = await self._admin.list_consumer_group_offsets(
            self.group_id, partitions=[TopicPartition(topic, partition) for topic, partition in wanted]
        )
        return {wanted[(tp.topic, tp.partition)]: meta.offset for tp, meta in found.items()}

    @property
    def failure(self) -> BaseException | None:
        """Always None: a failed transaction raises out of :meth:`publish` and ends the agent."""
        return None

    async def prepare(self, sources: Iterable[Any]) -> dict[Any, int]:
        """Start (initialise) the producers of ``sources``, then read their committed offsets."""
        new = [tp for tp in sources if (tp.topic, tp.partition) not in self._producers]
        if not new:
            return {}
        await asyncio.gather(*(self._producer_for(tp.topic, tp.partition) for tp in new))
        committed = await self._committed(new)
        log.info("eos.prepared", partitions=[f"{tp.topic}:{tp.partition}" for tp in new])
        return {tp: offset for tp, offset in committed.items() if offset is not None and offset >= 0}

    async def _producer_for(self, topic: str, partition: int) -> AIOKafkaProducer:
        key = (topic, partition)
        producer = self._producers.get(key)
        if producer is None:
            producer = self._factory(f"{self.group_id}-{topic}-{partition}")
            await producer.start()
            self._producers[key] = producer
        return producer

    async def publish(
        self, source: Any, records: Sequence[OutRecord], acks: Iterable[Any], commit_offset: int | None
    ) -> None:
        """Run one transaction with the records and ``commit_offset`` of ``source``, then ack."""
        acks = list(acks)
        if not records and commit_offset is None:
            for event in acks:
                event.ack()
            return
        producer = await self._producer_for(source.topic, source.partition)
        async with producer.transaction():
            futures = set(await send_records(producer, records))
            if futures:
                await asyncio.gather(*futures)
            if commit_offset is not None:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(source.topic, source.partition): commit_offset}, self.group_id
                )
        for event in acks:
            event.ack()

    async def wait_delivered(self) -> None:
        """Nothing to wait for: :meth:`publish` returns once its transaction is committed."""

    async def revoke(self, sources: Iterable[Any]) -> None:
        """Stop the producers of revoked partitions (their next owner fences the transactional id)."""
        for source in sources:
            producer = self._producers.pop((source.topic, source.partition), None)
            if producer is not None:
                await producer.stop()

    async def close(self) -> None:
        """Stop every producer and the admin client."""
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            await producer.stop()
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()
