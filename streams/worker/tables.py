"""Host state of the worker: host name → :meth:`HostState.durable_snapshot`, kept in a compacted topic.

The topic ``<app>-hoststate-changelog`` has one partition per internal by-host partition (same key, same
partition count), so the owner of internal partition ``p`` owns changelog partition ``p``. It is ours,
not a Faust table: on assignment the runtime reads a partition from the beginning to its end with a
``read_committed`` consumer (:func:`read_changelog`) before it processes anything of that partition.

Why not a Faust table: in exactly-once mode the changelog is written in our Kafka transactions, and
Faust's table recovery waits for an offset equal to the high-water mark minus one, which on a
transactional topic is a commit marker it never receives ("No event received for active tp"); nor does
it read committed data only. Reading to the log-stable offset with a plain consumer has neither problem,
and one mechanism serves both guarantees.

The agents process batches that span several hosts, so the store writes the changelog explicitly for
the partition the host belongs to (:meth:`HostStateStore.changed_records` returns changelog records
that the publisher sends with the batch's outputs, inside the same transaction in exactly-once mode).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from processors.audit import CoalescerState
from schemas.codecs import dumps, loads
from streams.graph import HostState
from streams.logging import get_logger
from streams.worker.publish import OutRecord

__all__ = ["HOST_TABLE", "ChangelogReader", "HostStateStore", "changelog_topic_name", "read_changelog"]

log = get_logger(__name__)

HOST_TABLE = "hoststate"

ChangelogReader = Callable[[list[int]], Awaitable[dict[int, dict[bytes, bytes]]]]
"""Reads changelog partitions to their end: partition → key → latest value (tombstones removed)."""


def changelog_topic_name(app_id: str) -> str:
    """The host-state topic of an app (the name Faust would give a table ``hoststate``)."""
    return f"{app_id}-{HOST_TABLE}-changelog"


async def read_changelog(
    servers: str, topic: str, partitions: list[int], options: dict[str, Any], timeout_s: float = 120.0
) -> dict[int, dict[bytes, bytes]]:
    """Read changelog partitions from the beginning to their log-stable offset, committed data only.

    The end is taken after the caller has initialised the partition's transactional producers, which
    aborts a dead owner's open transaction; so the log-stable offset is final and reachable. The loop
    compares positions (which move past commit markers and aborted batches), never record offsets.

    Args:
        servers: bootstrap servers.
        topic: the changelog topic.
        partitions: the partitions to read.
        options: extra client options (security).
        timeout_s: give up after this long (raises TimeoutError).

    Returns:
        partition → key → latest value.
    """
    result: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
    if not partitions:
        return result
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **options,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout_s
        count = 0
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"host state {topic} not read to its end within {timeout_s}s: {sorted(pending)}")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                data = result[tp.partition]
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        data.pop(record.key, None)
                    else:
                        data[record.key] = record.value
                count += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        log.info("hoststate.recovered", partitions=partitions, records=count, hosts=sum(map(len, result.values())))
    finally:
        await consumer.stop()
    return result


class HostStateStore:
    """In-memory :class:`HostState` objects over the recovered snapshots of the assigned partitions.

    In exactly-once mode (``with_coalescer``) the coalescer's in-flight events are stored too, so that
    the committed offset can move past every processed record: a restart then resumes the in-flight
    events from the changelog instead of re-reading (and re-emitting) records.

    Args:
        changelog_topic: the changelog topic name.
        reader: reads changelog partitions (:func:`read_changelog` bound to the cluster).
        with_coalescer: also store the coalescer buffers.
    """

    def __init__(self, changelog_topic: str, reader: ChangelogReader, *, with_coalescer: bool = False) -> None:
        self.changelog_topic = changelog_topic
        self.with_coalescer = with_coalescer
        self._reader = reader
        self._durable: dict[int, dict[str, bytes]] = {}
        """Recovered partition → host → last snapshot written or read."""
        self._states: dict[str, HostState] = {}
        self._persisted: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    def recovered(self, partition: int) -> bool:
        """Whether a partition's host states have been read."""
        return partition in self._durable

    async def recover(self, partitions: Iterable[int]) -> dict[int, list[str]]:
        """Read the given partitions (those not read yet) from the changelog.

        Returns:
            partition → hosts whose snapshot carries coalescer buffers (in-flight events to resume).
        """
        async with self._lock:
            wanted = sorted({p for p in partitions if p not in self._durable})
            if not wanted:
                return {}
            data = await self._reader(wanted)
            resumed: dict[int, list[str]] = {}
            for partition in wanted:
                hosts = {
                    key.decode("utf-8", "surrogateescape"): value for key, value in data.get(partition, {}).items()
                }
                self._durable[partition] = hosts
                for host in hosts:
                    self._states.pop(host, None)
                    self._persisted.pop(host, None)
                if self.with_coalescer:
                    resumed[partition] = [h for h, raw in hosts.items() if b'"in_flight":[{' in raw]
            return resumed

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions entirely (their next owner reads them from the changelog)."""
        for partition in partitions:
            for host in self._durable.pop(partition, {}):
                self._states.pop(host, None)
                self._persisted.pop(host, None)

    def get(self, host: str, partition: int) -> HostState:
        """The host's state: cached, else restored from its snapshot, else new."""
        state = self._states.get(host)
        if state is None:
            raw = self._durable.get(partition, {}).get(host)
            if raw is not None:
                data = loads(raw)
                state = HostState.from_durable_snapshot(data)
                if "coalescer" in data:
                    state.coalescer = CoalescerState.from_snapshot(data["coalescer"])
                self._persisted[host] = raw
            else:
                state = HostState()
            self._states[host] = state
        return state

    def put(self, host: str, partition: int, state: HostState) -> None:
        """Replace a host's state (persisted with the next :meth:`changed_records`)."""
        del partition
        self._states[host] = state

    def forget(self, hosts: Iterable[str]) -> None:
        """Drop cached states; the last written snapshot stays."""
        for host in hosts:
            self._states.pop(host, None)
            self._persisted.pop(host, None)

    def hosts(self) -> list[str]:
        """Hosts with a cached state."""
        return list(self._states)

    def changed_records(self, hosts: Iterable[str], partition: int) -> list[OutRecord]:
        """Changelog records for the hosts whose durable snapshot changed since it was last written.

        The in-memory snapshot is updated at once; the records must be sent with the batch's outputs.
        """
        records: list[OutRecord] = []
        durable = self._durable.get(partition)
        for host in hosts:
            state = self._states.get(host)
            if state is None:
                continue
            snapshot = state.durable_snapshot()
            if self.with_coalescer:
                snapshot["coalescer"] = state.coalescer.snapshot()
            value = dumps(snapshot)
            if self._persisted.get(host) == value:
                continue
            if durable is not None:
                durable[host] = value
            self._persisted[host] = value
            records.append(OutRecord(self.changelog_topic, value, host.encode("utf-8", "surrogateescape"), partition))
        return records
