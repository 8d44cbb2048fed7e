"""The raw router on a real broker: it commits only what is delivered, resumes there, and stops on a failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from streams.graph import PipelineStats
from streams.worker.metrics import WorkerMetrics
from streams.worker.publish import AtLeastOncePublisher, OutRecord
from streams.worker.router import RawRouter
from tests.integration.worker_harness import collect, produce

pytestmark = pytest.mark.integration


async def _create(bootstrap: str, *topics: tuple[str, int, dict[str, str]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=n, replication_factor=1, topic_configs=conf) for name, n, conf in topics]
        )
    finally:
        await admin.close()


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in found.items()}


def _router(bootstrap: str, group: str, raw: str, route: Any, publisher: AtLeastOncePublisher) -> RawRouter:
    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )

    return RawRouter(
        consumer,
        {raw: "auditd"},
        route,
        publisher,
        WorkerMetrics(PipelineStats),
        commits_in_transactions=False,
        batch_size=50,
        batch_within_s=0.2,
    )


def _echo(out: str) -> Any:
    def route(stream: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[OutRecord]:
        assert stream == "auditd"
        return [OutRecord(out, record.value, key=record.key) for record in records]

    return route


class TestRawRouter:
    async def test_stop_commits_and_a_new_member_resumes_there(
        self, kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
    ) -> None:
        """Every record is routed once across a clean stop and a restart of the group."""
        tag = uuid.uuid4().hex[:8]
        raw, out, group = f"router-raw-{tag}", f"router-out-{tag}", f"router-{tag}"
        await _create(kafka_bootstrap, (raw, 2, {}), (out, 2, {}))
        await produce(kafka_bootstrap, raw, [(b"k%d" % (i % 7), b'"first-%d"' % i) for i in range(300)])
        first = _router(kafka_bootstrap, group, raw, _echo(out), new_publisher())
        await first.start()
        await collect(kafka_bootstrap, out, lambda docs: len(docs) >= 300, 60)
        await first.stop()
        assert first.failure is None
        committed = await _committed(kafka_bootstrap, group)
        assert sum(committed.values()) == 300, committed

        await produce(kafka_bootstrap, raw, [(b"k%d" % (i % 7), b'"second-%d"' % i) for i in range(100)])
        second = _router(kafka_bootstrap, group, raw, _echo(out), new_publisher())
        await second.start()
        values = await collect(kafka_bootstrap, out, lambda docs: len(docs) >= 400, 60)
        await second.stop()
        assert sorted(values) == sorted([f"first-{i}" for i in range(300)] + [f"second-{i}" for i in range(100)])
        assert sum((await _committed(kafka_bootstrap, group)).values()) == 400

    async def test_failed_delivery_stops_routing_and_commits_nothing_past_it(
        self, kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
    ) -> None:
        """A routed record the broker rejects stops the router; its offset is never committed."""
        tag = uuid.uuid4().hex[:8]
        raw, out, group = f"router-raw-{tag}", f"router-small-{tag}", f"router-{tag}"
        await _create(kafka_bootstrap, (raw, 1, {}), (out, 1, {"max.message.bytes": "256"}))
        values = [b'"fine"'] * 40 + [b'"' + b"x" * 4096 + b'"'] + [b'"fine again"'] * 40
        await produce(kafka_bootstrap, raw, [(None, value) for value in values])
        router = _router(kafka_bootstrap, group, raw, _echo(out), new_publisher())
        await router.start()
        for _ in range(300):
            if router.failure is not None:
                break
            await asyncio.sleep(0.1)
        await router.stop()
        assert router.failure is not None
        committed = await _committed(kafka_bootstrap, group)
        assert committed.get(TopicPartition(raw, 0), 0) <= 40, committed
