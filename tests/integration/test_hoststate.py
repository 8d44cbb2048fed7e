"""Host snapshots on a real broker: one larger than the topic's message limit goes out as chunks and
reads back whole; its chunks are deleted once a small snapshot replaces it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processors.proctree import ProcessNode, ProcessTrackerState
from schemas.codecs import dumps
from streams.graph import HostState
from streams.worker.publish import AtLeastOncePublisher
from streams.worker.tables import HostStateStore, read_changelog

pytestmark = pytest.mark.integration

LIMIT = 40_000
"""The topic's ``max.message.bytes`` (the largest record batch; the producer's batches are 16 KB)."""


async def _changelog(bootstrap: str) -> str:
    topic = f"hoststate-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", "max.message.bytes": str(LIMIT)}
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=configs)])
    finally:
        await admin.close()
    return topic


def _state(nodes: int) -> HostState:
    state = HostState()
    rows = {f"e{i}": ProcessNode(entity_id=f"e{i}", pid=i, ppid=1, start=1.7e9 + i) for i in range(nodes)}
    state.tracker = ProcessTrackerState(host="db-1", nodes=rows)
    return state


async def test_a_snapshot_over_the_message_limit_round_trips(
    kafka_bootstrap: str, new_publisher: Callable[[], AtLeastOncePublisher]
) -> None:
    topic = await _changelog(kafka_bootstrap)

    async def reader(partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        return await read_changelog(kafka_bootstrap, topic, partitions, {})

    async def written(state: HostState) -> HostStateStore:
        """Write ``state`` with a store recovered from the topic; return a store recovered after it."""
        store = HostStateStore(topic, reader, chunk_bytes=8_000)
        await store.recover([0])
        store.put("db-1", 0, state)
        publisher = new_publisher()
        await publisher.publish(None, store.changed_records(["db-1"], 0), [], None)
        await publisher.close()
        assert publisher.failure is None
        fresh = HostStateStore(topic, reader)
        await fresh.recover([0])
        return fresh

    large = _state(2000)
    assert len(dumps(large.durable_snapshot())) > 2 * LIMIT  # one record this large would be refused
    store = await written(large)
    assert store.get("db-1", 0).durable_snapshot() == large.durable_snapshot()
    assert store.unreadable == 0

    small = _state(3)
    store = await written(small)
    assert store.get("db-1", 0).durable_snapshot() == small.durable_snapshot()
    assert list((await reader([0]))[0]) == [b"db-1"]  # every chunk key was deleted
