"""After a rebalance, a partition without a committed offset is read again from its first record."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.worker.patches import rewind_uncommitted

pytestmark = pytest.mark.integration


class _FaustConsumerView:
    """The three calls of Faust's consumer that the rewind makes, on a real aiokafka consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def seek_to_committed(self) -> Mapping[TopicPartition, int | None]:
        return await self.consumer.seek_to_committed()

    async def earliest_offsets(self, *tps: TopicPartition) -> Mapping[TopicPartition, int]:
        return await self.consumer.beginning_offsets(list(tps))

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self.consumer.seek(tp, offset)


async def test_partitions_without_a_commit_go_back_to_their_start(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, group = f"rewind-{tag}", f"rewind-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for partition in range(3):
            for i in range(10):
                await producer.send_and_wait(topic, b"%d" % i, partition=partition)
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, partition) for partition in range(3)]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        # partition 0 has a commit at 6, partition 1 one at 0, partition 2 none; all were fetched ahead
        await consumer.commit({tps[0]: OffsetAndMetadata(6, ""), tps[1]: OffsetAndMetadata(0, "")})
        await consumer.seek_to_end(*tps)
        assert [await consumer.position(tp) for tp in tps] == [10, 10, 10]

        await rewind_uncommitted(_FaustConsumerView(consumer), tps)

        assert [await consumer.position(tp) for tp in tps] == [6, 0, 0]
    finally:
        await consumer.stop()
