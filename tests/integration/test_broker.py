"""The broker the tests use is a real Kafka: topics, produce, consume, commits and group resume."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=5000, max_records=count - len(values))
            if not batch:
                break
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
        return values
    finally:
        await consumer.stop()


class TestRealBroker:
    async def test_consumer_group_resumes_after_commit(self, kafka_bootstrap: str) -> None:
        """A consumer restarted in the same group continues after its committed offset."""
        topic = f"t-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"m{i}".encode(), key=str(i % 2).encode())
        finally:
            await producer.stop()

        group = f"g-{uuid.uuid4().hex[:8]}"
        first = await _consume(kafka_bootstrap, topic, group, 10)
        assert sorted(first) == sorted(f"m{i}".encode() for i in range(10))

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(10, 13):
                await producer.send_and_wait(topic, f"m{i}".encode())
        finally:
            await producer.stop()

        resumed = await _consume(kafka_bootstrap, topic, group, 3)
        assert sorted(resumed) == [b"m10", b"m11", b"m12"]
