"""Fixtures of the broker tests: a real producer, and at-least-once publishers over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer

from streams.worker.publish import AtLeastOncePublisher


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A real producer, as Faust's producer wrapper holds one."""
    started = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def new_publisher(producer: AIOKafkaProducer) -> Callable[[], AtLeastOncePublisher]:
    """Makes at-least-once publishers that send through ``producer`` (the app is a stand-in for Faust's,
    with only the producer wrapper's two members the publisher uses)."""

    def make() -> AtLeastOncePublisher:
        app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer, flush=producer.flush))
        return AtLeastOncePublisher(app)

    return make
