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

A host's snapshot is one record keyed by the host's name, unless it is larger than ``CHUNK_BYTES``: a
busy host's process tree outgrows Kafka's default 1 MB message limit within a minute, and the broker
refuses such a record. A large snapshot is written as chunks, each under a key of its own, followed by
a small manifest under the host's key (chunk count, slot, digest). Chunks alternate between two slots,
so a crash while one generation is being written leaves the previous one, which the manifest still
names, whole. Chunk keys no longer used are deleted (tombstones) after the record that stops naming
them. Key layout: a host's name in UTF-8, with one NUL in front when the name starts with NUL; a chunk
is NUL, ``c``, the slot (1 byte), the index (4 bytes, big-endian), then the host's name. No host key
starts with NUL followed by ``c``.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from processors.audit import CoalescerState
from schemas.codecs import dumps, loads
from streams.graph import HostState
from streams.logging import get_logger
from streams.worker.publish import OutRecord

__all__ = ["CHUNK_BYTES", "HOST_TABLE", "ChangelogReader", "HostStateStore", "changelog_topic_name", "read_changelog"]

log = get_logger(__name__)

HOST_TABLE = "hoststate"

ChangelogReader = Callable[[list[int]], Awaitable[dict[int, dict[bytes, bytes]]]]
"""Reads changelog partitions to their end: partition → key → latest value (tombstones removed)."""


CHUNK_BYTES = 256 * 1024
"""Largest host snapshot written as one record; larger ones are chunks of this size plus a manifest."""

_NUL = b"\x00"
_CHUNK = b"\x00c"
_CHUNK_HEADER = struct.Struct(">BI")  # slot, index
_MANIFEST = b'{"chunks":'  # a manifest's first bytes (keys sorted); a snapshot starts with another key


def _host_key(host: str) -> bytes:
    raw = host.encode("utf-8", "surrogateescape")
    return _NUL + raw if raw.startswith(_NUL) else raw


def _chunk_key(host: str, slot: int, index: int) -> bytes:
    return _CHUNK + _CHUNK_HEADER.pack(slot, index) + host.encode("utf-8", "surrogateescape")


def _parse_key(key: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(host, None) for a host key, (host, (slot, index)) for a chunk key, None for neither."""
    if not key.startswith(_NUL):
        return key.decode("utf-8", "surrogateescape"), None
    if key.startswith(_NUL + _NUL):
        return key[1:].decode("utf-8", "surrogateescape"), None
    end = len(_CHUNK) + _CHUNK_HEADER.size
    if key.startswith(_CHUNK) and len(key) >= end:
        slot, index = _CHUNK_HEADER.unpack(key[len(_CHUNK) : end])
        return key[end:].decode("utf-8", "surrogateescape"), (slot, index)
    return None


def _digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16).hexdigest()


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


DONE_KEPT = 1024
"""At-least-once: the newest completed events per node kept in a host's snapshot (with their records'
CRC-32s, about 90 bytes each)."""


def _done_memory(coalescer: dict[str, Any]) -> dict[str, Any]:
    """At-least-once: the coalescer's memory of completed events (and its counters), without what is in flight.

    After a crash or a rebalance the process stage reads again from the lowest record not yet acked, and
    with un-keyed input the records of one event are spread over many internal records: a record read
    again can belong to an event that was emitted before the snapshot, whose other records come before
    that offset. With the event remembered, its records read again are dropped as duplicates; without it,
    the new owner would emit a second, partial copy of the event under the same id. In-flight events are
    not kept: their records are unacked, so they are all read again. ``node_max`` is not kept either:
    the records read again rebuild it, and an old one would time out events being rebuilt."""
    return {
        "in_flight": [],
        "done": [{**node, "events": node["events"][-DONE_KEPT:]} for node in coalescer["done"]],
        "node_max": [],
        "wall_now": coalescer["wall_now"],
        "counters": coalescer["counters"],
    }


class HostStateStore:
    """In-memory :class:`HostState` objects over the recovered snapshots of the assigned partitions.

    In exactly-once mode (``with_coalescer``) the coalescer's in-flight events are stored too, so that
    the committed offset can move past every processed record: a restart then resumes the in-flight
    events from the changelog instead of re-reading (and re-emitting) records.

    A snapshot that cannot be restored (incomplete chunks, bytes that are not a snapshot) is logged
    and counted (``unreadable``, and ``on_unreadable`` is called), and the host starts afresh: its
    events still come out, with the lineage that can be rebuilt from what is read after it.

    Args:
        changelog_topic: the changelog topic name.
        reader: reads changelog partitions (:func:`read_changelog` bound to the cluster).
        with_coalescer: also store the coalescer buffers.
        chunk_bytes: the largest snapshot written as one record (``CHUNK_BYTES``).
    """

    def __init__(
        self,
        changelog_topic: str,
        reader: ChangelogReader,
        *,
        with_coalescer: bool = False,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.changelog_topic = changelog_topic
        self.with_coalescer = with_coalescer
        self.chunk_bytes = chunk_bytes
        self.unreadable = 0
        self.on_unreadable: Callable[[], None] = lambda: None
        self._reader = reader
        self._durable: dict[int, dict[str, bytes]] = {}
        """Recovered partition → host → last snapshot written or read (whole, chunks joined)."""
        self._states: dict[str, HostState] = {}
        self._persisted: dict[str, bytes] = {}
        self._chunks: dict[str, list[int]] = {}
        """Host → how many chunk keys of slot 0 and of slot 1 may exist in the changelog."""
        self._slot: dict[str, int] = {}
        """Host → the slot its manifest names (hosts whose last snapshot is chunked)."""
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
                hosts = self._read_partition(partition, data.get(partition, {}))
                self._durable[partition] = hosts
                for host in hosts:
                    self._states.pop(host, None)
                    self._persisted.pop(host, None)
                if self.with_coalescer:
                    resumed[partition] = [h for h, raw in hosts.items() if b'"in_flight":[{' in raw]
            return resumed

    def _read_partition(self, partition: int, records: dict[bytes, bytes]) -> dict[str, bytes]:
        """Host → snapshot of one partition's changelog contents, chunked snapshots joined."""
        hosts: dict[str, bytes] = {}
        chunks: dict[str, dict[tuple[int, int], bytes]] = defaultdict(dict)
        for key, value in records.items():
            parsed = _parse_key(key)
            if parsed is None:
                log.warning("hoststate.unknown_key", partition=partition, key=repr(key[:64]))
                continue
            host, chunk = parsed
            if chunk is None:
                hosts[host] = value
            else:
                chunks[host][chunk] = value
        for host, parts in chunks.items():
            counts = [0, 0]
            for slot, index in parts:
                if slot < 2:
                    counts[slot] = max(counts[slot], index + 1)
            self._chunks[host] = counts
        for host, value in list(hosts.items()):
            if not value.startswith(_MANIFEST):
                continue
            joined = self._join(value, chunks.get(host, {}))
            if joined is None:
                del hosts[host]
                self._unreadable(host, partition, "incomplete chunked snapshot")
            else:
                hosts[host], self._slot[host] = joined
        return hosts

    @staticmethod
    def _join(manifest: bytes, parts: dict[tuple[int, int], bytes]) -> tuple[bytes, int] | None:
        """The snapshot a manifest names and its slot, or None when a chunk is missing or differs."""
        try:
            info = loads(manifest)
            slot, count, digest = int(info["slot"]), int(info["chunks"]), str(info["digest"])
        except (ValueError, KeyError, TypeError):
            return None
        pieces = [parts.get((slot, index)) for index in range(count)]
        value = b"".join(piece for piece in pieces if piece is not None)
        return (value, slot) if None not in pieces and _digest(value) == digest else None

    def _unreadable(self, host: str, partition: int, reason: str) -> None:
        self.unreadable += 1
        self.on_unreadable()
        log.error("hoststate.unreadable", host=host, partition=partition, reason=reason)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions entirely (their next owner reads them from the changelog)."""
        for partition in partitions:
            for host in self._durable.pop(partition, {}):
                self._states.pop(host, None)
                self._persisted.pop(host, None)
                self._chunks.pop(host, None)
                self._slot.pop(host, None)

    def get(self, host: str, partition: int) -> HostState:
        """The host's state: cached, else restored from its snapshot, else new."""
        state = self._states.get(host)
        if state is None:
            raw = self._durable.get(partition, {}).get(host)
            restored = self._restore(host, partition, raw) if raw is not None else None
            if restored is not None and raw is not None:
                self._persisted[host] = raw
            state = self._states[host] = HostState() if restored is None else restored
        return state

    def _restore(self, host: str, partition: int, raw: bytes) -> HostState | None:
        try:
            data = loads(raw)
            done = data.pop("coalescer_done", None)  # ours, not a stage's part
            state = HostState.from_durable_snapshot(data)
            if "coalescer" in data:
                state.coalescer = CoalescerState.from_snapshot(data["coalescer"])
            elif done is not None:
                state.coalescer = CoalescerState.from_snapshot(done)
        except Exception as exc:  # bytes from another process or version: never a reason to stop the worker
            self._unreadable(host, partition, repr(exc)[:200])
            return None
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

    def cached(self) -> dict[str, HostState]:
        """The host states in memory (those of the assigned partitions that were used), by host."""
        return self._states

    def hosts(self) -> list[str]:
        """Hosts with a cached state."""
        return list(self._states)

    def changed_records(self, hosts: Iterable[str], partition: int) -> list[OutRecord]:
        """Changelog records for the hosts whose durable snapshot changed since it was last written.

        The in-memory snapshot is updated at once; the records must be sent with the batch's outputs,
        in order.
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
            else:
                snapshot["coalescer_done"] = _done_memory(state.coalescer.snapshot())
            value = dumps(snapshot)
            if self._persisted.get(host) == value:
                continue
            if durable is not None:
                durable[host] = value
            self._persisted[host] = value
            records.extend(self._snapshot_records(host, value, partition))
        return records

    def _snapshot_records(self, host: str, value: bytes, partition: int) -> list[OutRecord]:
        """The records that write ``value`` as ``host``'s snapshot: one record, or chunks then a manifest;
        then tombstones for the chunk keys that nothing names any more."""
        topic, size = self.changelog_topic, self.chunk_bytes
        counts = self._chunks.get(host, [0, 0])
        if len(value) <= size:
            records = [OutRecord(topic, value, _host_key(host), partition)]
            stale = [(slot, index) for slot in (0, 1) for index in range(counts[slot])]
            counts = [0, 0]
            self._slot.pop(host, None)
        else:
            slot = 1 - self._slot.get(host, 1)  # the slot the current manifest does not name
            pieces = [value[i : i + size] for i in range(0, len(value), size)]
            records = [OutRecord(topic, piece, _chunk_key(host, slot, i), partition) for i, piece in enumerate(pieces)]
            manifest = dumps({"chunks": len(pieces), "digest": _digest(value), "slot": slot})
            records.append(OutRecord(topic, manifest, _host_key(host), partition))
            stale = [(slot, index) for index in range(len(pieces), counts[slot])]
            counts[slot] = len(pieces)
            self._slot[host] = slot
        records.extend(OutRecord(topic, None, _chunk_key(host, slot, index), partition) for slot, index in stale)
        if any(counts):
            self._chunks[host] = counts
        else:
            self._chunks.pop(host, None)
        return records
