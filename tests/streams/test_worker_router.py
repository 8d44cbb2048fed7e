"""The router's fetch pacing, without a broker: a pause after a fetch that was not full, none after a full one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from streams.graph import PipelineStats
from streams.worker.metrics import WorkerMetrics
from streams.worker.publish import OutRecord
from streams.worker.router import RawRouter

TP = TopicPartition("raw", 0)


class _Publisher:
    failure = None

    async def publish(self, source: Any, records: Any, acks: Any, commit_offset: int | None) -> None:
        for event in acks:
            event.ack()


class _Consumer:
    """Answers each fetch with the next number of records, and notes when each fetch came."""

    def __init__(self, router: RawRouter, sizes: list[int]) -> None:
        self.router, self.sizes, self.times = router, sizes, []
        self.offset = 0

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.times.append(time.monotonic())
        if not self.sizes:
            self.router._stopping = True
            return {}
        count = self.sizes.pop(0)
        records = [SimpleNamespace(offset=self.offset + i, value=b"x", key=None) for i in range(count)]
        self.offset += count
        return {TP: records} if records else {}

    def highwater(self, tp: TopicPartition) -> int:
        return self.offset


async def test_fetches_pause_after_a_partial_fetch_and_not_after_a_full_one() -> None:
    def route(stream: str, records: Sequence[Any]) -> list[OutRecord]:
        return []

    router = RawRouter(
        lambda: None,  # type: ignore[arg-type,return-value]  # _run is given its consumer
        {"raw": "auditd"},
        route,
        _Publisher(),  # type: ignore[arg-type]  # publish and failure only
        WorkerMetrics(PipelineStats),
        commits_in_transactions=True,
        batch_size=10,
        batch_within_s=0.01,
        linger_s=0.5,
    )
    router._owned = {TP}
    consumer = _Consumer(router, [10, 3, 10, 0])
    await router._run(consumer)  # type: ignore[arg-type]  # the fetch API only
    gaps = [later - earlier for earlier, later in zip(consumer.times, consumer.times[1:], strict=False)]
    assert gaps[0] < 0.25, "a full fetch: records are waiting, fetch again at once"
    assert gaps[1] >= 0.49, "a partial fetch: wait for more records to pack together"
    assert gaps[2] < 0.25
    assert gaps[3] >= 0.49
