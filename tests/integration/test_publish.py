"""The at-least-once publisher on a real broker: acks follow delivery, a failed delivery stops them."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from streams.worker.publish import AtLeastOncePublisher, OutRecord

pytestmark = pytest.mark.integration


class _Event:
    """Stands in for a Faust event: only its ack is observed (and, with ``order``, when)."""

    def __init__(self, order: list[_Event] | None = None) -> None:
        self.acked = False
        self.order = order

    def ack(self) -> None:
        self.acked = True
        if self.order is not None:
            self.order.append(self)


async def _values(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                values.extend(record.value or b"" for record in records)
        return values
    finally:
        await consumer.stop()


async def _topics(bootstrap: str) -> tuple[str, str]:
    """A normal topic and one whose broker-side limit rejects any record over 256 bytes."""
    tag = uuid.uuid4().hex[:8]
    normal, small = f"pub-ok-{tag}", f"pub-small-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(normal, num_partitions=2, replication_factor=1),
                NewTopic(small, num_partitions=1, replication_factor=1, topic_configs={"max.message.bytes": "256"}),
            ]
        )
    finally:
        await admin.close()
    return normal, small


class TestAtLeastOncePublisher:
    async def test_acks_after_delivery(
        self, kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
    ) -> None:
        """Events are acked once their records are on the broker, and the publisher stays healthy."""
        normal, _ = await _topics(kafka_bootstrap)
        publisher = new_publisher()
        events = [_Event(), _Event()]
        records = [OutRecord(normal, b"doc-%d" % i, key=b"host-%d" % (i % 3)) for i in range(50)]
        await publisher.publish(None, records, events, None)
        await publisher.close()
        assert all(event.acked for event in events)
        assert publisher.failure is None

    async def test_publishes_queued_together_keep_their_order_and_acks(
        self, kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
    ) -> None:
        """Publishes made while the sender waits go out merged: records stay in publish order, and
        every publish is acked in order, an empty one only after everything before it."""
        normal, _ = await _topics(kafka_bootstrap)
        publisher = new_publisher()
        order: list[_Event] = []
        events = [_Event(order) for _ in range(300)]
        for i, event in enumerate(events):
            records = [] if i % 7 == 3 else [OutRecord(normal, b"%d" % i, key=b"h", partition=1)]
            await publisher.publish(None, records, [event], None)
        await publisher.wait_delivered()
        assert order == events
        assert await _values(kafka_bootstrap, normal, 1) == [b"%d" % i for i in range(300) if i % 7 != 3]
        await publisher.close()

    async def test_failed_delivery_stops_later_acks(
        self, kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
    ) -> None:
        """A rejected batch is never acked, nor is any batch published after it, and the next publish fails."""
        normal, small = await _topics(kafka_bootstrap)
        publisher = new_publisher()
        before, rejected, after = _Event(), _Event(), _Event()
        await publisher.publish(None, [OutRecord(normal, b"fine", key=b"h")], [before], None)
        await publisher.publish(None, [OutRecord(small, b"x" * 4096, key=b"h")], [rejected], None)
        await publisher.publish(None, [OutRecord(normal, b"fine again", key=b"h")], [after], None)
        await publisher.close()
        assert before.acked
        assert not rejected.acked
        assert not after.acked, "acks must not pass a batch that was not delivered"
        assert publisher.failure is not None
        with pytest.raises(RuntimeError, match="not delivered"):
            await publisher.publish(None, [OutRecord(normal, b"more", key=b"h")], [_Event()], None)
