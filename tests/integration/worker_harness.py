"""Helpers for the worker integration tests: hosts per partition, produce, collect, the reference output.

Deployments and worker processes come from :mod:`streams.dev.deployment`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def hosts_spanning(partitions: int, per_partition: int = 1) -> list[str]:
    """Host names that cover every partition ``per_partition`` times."""
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(v) < per_partition for v in chosen.values()):
        name = f"host{i:02d}"
        bucket = chosen[partition_of(name, partitions)]
        if len(bucket) < per_partition:
            bucket.append(name)
        i += 1
    return sorted(h for v in chosen.values() for h in v)


async def leave_open_transaction(
    bootstrap: str, transactional_id: str, records: Iterable[tuple[str, int, bytes, bytes]]
) -> None:
    """Write records in a transaction and vanish without ending it, like a worker killed mid-transaction.

    The transaction times out only after 15 minutes, so only a new owner of the same transactional id
    (which aborts it on initialisation) can unblock ``read_committed`` readers within a test.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=transactional_id, transaction_timeout_ms=900_000
    )
    await producer.start()
    await producer.begin_transaction()
    for topic, partition, key, value in records:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    await producer.stop()  # stop() sends no EndTxn: the transaction stays open


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    count = 0
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
        count = len(futures)
    finally:
        await producer.stop()
    return count


async def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    within: float,
    *,
    read_committed: bool = False,
    alive: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Read a topic from the beginning until ``until(docs)`` holds or ``within`` seconds pass."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    docs: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline and not until(docs):
            alive()
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                docs.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return docs


def with_node(lines: list[bytes], host: str) -> list[bytes]:
    return [b"node=" + host.encode() + b" " + line for line in lines]


def reference_events(config_path: Path, lines: list[bytes]) -> dict[str, dict[str, Any]]:
    """What ``secstream run`` makes of the same lines (event id → document), via the embedded runner."""
    from streams.config import load_config
    from streams.runner import InputSpec, OutputSink, run_pipeline

    config = load_config(config_path)
    src = config_path.parent / f"ref-{uuid.uuid4().hex[:6]}.log"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = config_path.parent / f"ref-out-{uuid.uuid4().hex[:6]}"

    async def go() -> None:
        from streams.build import build_pipeline

        pipeline = await build_pipeline(config)
        sink = OutputSink(out)
        try:
            await run_pipeline(pipeline, [InputSpec(str(src), "auditd")], sink)
        finally:
            sink.close()
            close = getattr(pipeline, "close", None)
            if close is not None:
                await close()

    asyncio.run(go())
    docs = [orjson.loads(line) for line in (out / "events.jsonl").read_bytes().splitlines() if line]
    return {doc["event"]["id"]: doc for doc in docs}


VOLATILE = ("ingested", "created")


def stable(doc: dict[str, Any]) -> dict[str, Any]:
    """A document without processing-time fields."""
    copy = orjson.loads(orjson.dumps(doc))
    for key in VOLATILE:
        copy.get("event", {}).pop(key, None)
    return copy
