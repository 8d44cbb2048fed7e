"""The driver contract, without a broker: the same input through the embedded runner and through the
worker's runtime (route stage, internal topic, process stage, with in-process stand-ins for Kafka) gives
equal documents and equal counters, whatever raw partitions the records land on."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from streams.config import SecstreamConfig, load_config
from streams.graph import Outputs, Pipeline, PipelineStats
from streams.runner import InputSpec, run_pipeline
from streams.worker.publish import OutRecord
from streams.worker.runtime import WorkerRuntime
from streams.worker.tables import HostStateStore
from streams.worker.topics import TopicNames
from streams.worker.watermark import OrderCounters

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "audit.log"
RAW_PARTITIONS = 4
GARBAGE = b"this line is no audit record"


class _Sink:
    """Collects the embedded runner's outputs."""

    def __init__(self) -> None:
        self.outputs = Outputs()

    def write(self, outputs: Outputs) -> None:
        self.outputs.events.extend(outputs.events)
        self.outputs.detections.extend(outputs.detections)
        self.outputs.deadletters.extend(outputs.deadletters)


class _Broker:
    """Stands in for Kafka and for the publishers: keeps every record written, acks at once."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.topics: dict[tuple[str, int], list[OutRecord]] = {}
        self.acked = 0
        self.metrics = ""

    def partition_of(self, record: OutRecord) -> int:
        if record.partition is not None:
            return record.partition
        return 0 if record.key is None else (murmur2(record.key) & 0x7FFFFFFF) % self.partitions

    async def prepare(self, tps: Any) -> dict[Any, int]:
        return {}

    async def publish(self, source: Any, records: Any, acks: Any, commit_offset: int | None) -> None:
        for record in records:
            self.topics.setdefault((record.topic, self.partition_of(record)), []).append(record)
        for event in acks:
            event.ack()
            self.acked += 1

    async def wait_delivered(self) -> None:
        return None

    async def revoke(self, sources: Any) -> None:
        return None

    async def close(self) -> None:
        return None

    def read(self, topic: str) -> list[dict[str, Any]]:
        return [
            orjson.loads(record.value)
            for (name, _), records in sorted(self.topics.items())
            if name == topic
            for record in records
            if record.value is not None
        ]


def _lines() -> list[bytes]:
    """The sample log on two hosts (its own node= and a second one), plus a line that is no audit record."""
    own = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    second = [line.replace(b"node=db-01 ", b"node=db-02 ", 1) for line in own]
    mixed = [line for pair in zip(own, second, strict=True) for line in pair]
    return [*mixed[:40], GARBAGE, *mixed[40:]]


def _embedded(config: SecstreamConfig, lines: list[bytes], tmp_path: Path) -> tuple[Outputs, PipelineStats]:
    source = tmp_path / "input.log"
    source.write_bytes(b"\n".join(lines) + b"\n")
    sink = _Sink()
    pipeline = Pipeline(config)
    result = asyncio.run(run_pipeline(pipeline, [InputSpec(str(source), "auditd")], sink))  # type: ignore[arg-type]
    return sink.outputs, result.stats


async def _worker(
    config: SecstreamConfig, lines: list[bytes], seed: int
) -> tuple[_Broker, PipelineStats, OrderCounters]:
    """Route un-keyed raw records in random batches from random raw partitions, then run the process stage
    over the internal partitions in a random interleaving of their records; end with caught-up marks and
    the shutdown flush."""
    rnd = random.Random(seed)
    names = TopicNames.from_config(config)
    broker = _Broker(config.topics.partitions)

    async def pipeline(cfg: SecstreamConfig) -> Pipeline:
        return Pipeline(cfg)

    internal = {TopicPartition(names.auditd_by_host, n) for n in range(config.topics.partitions)}
    runtime = WorkerRuntime(
        config,
        pipeline,
        names,
        HostStateStore("changelog", lambda partitions: _no_changelog(partitions)),
        publisher=broker,  # type: ignore[arg-type]  # the stand-in answers what the runtime calls
        assigned=lambda: internal,
        clock=lambda: 2_000_000_000.0,  # after every event time of the sample log
    )
    await runtime.start()
    raw: list[list[SimpleNamespace]] = [[] for _ in range(RAW_PARTITIONS)]
    for line in lines:  # no key: a random partition for every record
        partition = rnd.randrange(RAW_PARTITIONS)
        raw[partition].append(
            SimpleNamespace(
                topic=names.raw_auditd, partition=partition, offset=len(raw[partition]), key=None, value=line
            )
        )
    consumed = [0] * RAW_PARTITIONS
    read = {tp: 0 for tp in internal}
    routed_at = 0.0

    async def process(tp: TopicPartition, upto: int | None = None) -> None:
        records = broker.topics.get((tp.topic, tp.partition), [])
        stop = len(records) if upto is None else min(upto, len(records))
        events = [
            SimpleNamespace(
                message=SimpleNamespace(
                    tp=tp,
                    offset=offset,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    timestamp=float(offset),
                ),
                ack=lambda: None,
            )
            for offset, record in enumerate(records[read[tp] : stop], start=read[tp])
        ]
        read[tp] = stop
        if events:
            await runtime.audit_batch(events)

    while any(consumed[p] < len(raw[p]) for p in range(RAW_PARTITIONS)):
        partition = rnd.choice([p for p in range(RAW_PARTITIONS) if consumed[p] < len(raw[p])])
        batch = raw[partition][consumed[partition] : consumed[partition] + rnd.randint(1, 30)]
        consumed[partition] += len(batch)
        routed_at += 1.0
        outputs = runtime.route("auditd", batch)
        outputs += runtime.route_marks(names.raw_auditd, partition, RAW_PARTITIONS, None, None)
        await broker.publish(None, outputs, [], None)
        tp = rnd.choice(sorted(internal))
        await process(tp, read[tp] + rnd.randint(1, 10))
    for partition in range(RAW_PARTITIONS):
        marks = runtime.route_marks(names.raw_auditd, partition, RAW_PARTITIONS, 1e12, None)
        await broker.publish(None, marks, [], None)
    for tp in sorted(internal):
        await process(tp)
    await runtime.shutdown()
    broker.metrics = runtime.metrics.render().decode()
    return broker, runtime.stats(), runtime.order_counters


async def _no_changelog(partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
    return {p: {} for p in partitions}


@pytest.fixture(scope="module")
def config() -> SecstreamConfig:
    return load_config(environ={"SECSTREAM_ENRICHMENT__ENABLED": "false"})


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    copy["event"].pop("ingested", None)
    copy["event"].pop("created", None)
    return copy


def _by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["event"]["id"]: _stable(doc) for doc in docs}


@pytest.mark.parametrize("seed", range(4))
def test_embedded_runner_and_worker_runtime_agree(config: SecstreamConfig, tmp_path: Path, seed: int) -> None:
    lines = _lines()
    expected, expected_stats = _embedded(config, lines, tmp_path)
    broker, stats, order = asyncio.run(_worker(config, lines, seed))
    assert order == OrderCounters()  # nothing forced out of order, nothing re-routed
    names = TopicNames.from_config(config)
    events = broker.read(names.events)
    assert len(events) == len({doc["event"]["id"] for doc in events}), "an event came out twice"
    assert _by_id(events) == _by_id(expected.events)
    detections = broker.read(names.detections)
    assert Counter(d["rule"]["id"] for d in detections) == Counter(d["rule"]["id"] for d in expected.detections)
    assert {d["event"]["id"] for d in detections} == {d["event"]["id"] for d in expected.detections}
    # a dead letter's source and time differ by driver (file line, or topic/partition/offset)
    dead = [(d["event"]["reason"], d["event"]["original"]) for d in broker.read(names.deadletter)]
    assert dead == [(d["event"]["reason"], d["event"]["original"]) for d in expected.deadletters] != []
    for name in ("lines_in", "events_out", "detections", "bad_input", "audit", "proctree"):
        assert getattr(stats, name) == getattr(expected_stats, name), name


def test_metrics_show_the_state_counters_and_the_order(config: SecstreamConfig) -> None:
    """The worker's /metrics: the coalescers' counters and the trackers' evictions (read from the host
    states, as the embedded runner reads them at the end), and the event-time order's families."""
    broker, stats, _ = asyncio.run(_worker(config, _lines(), 0))
    completed = stats.audit["completed"]
    assert completed > 0
    assert f'secstream_audit_records_total{{kind="completed"}} {float(completed)}' in broker.metrics
    assert 'secstream_evictions_total{kind="evicted_exited"}' in broker.metrics
    assert 'secstream_event_order_lines_total{reason="forced_wait"} 0.0' in broker.metrics
    assert 'secstream_watermark_lag_seconds{partition="0",topic="secstream-auditd-by-host"}' in broker.metrics
