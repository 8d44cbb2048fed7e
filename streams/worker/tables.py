"""The worker's one Faust table: host name → :meth:`HostState.durable_snapshot` (JSON bytes).

The table is co-partitioned with the internal by-host topics (same key, same partition count), so
Faust restores a partition's host states from the compacted changelog before the worker consumes that
partition, on start and after a rebalance. Coalescer buffers are not in the table: they are short-lived
and protected by delayed acks instead.

The agents process batches that span several events, so the table is written explicitly for the
partition the host belongs to (:meth:`HostStateStore.changed_records` returns changelog records that
the publisher sends, inside the same transaction as the outputs in exactly-once mode) rather than
through ``table[key] = value``, which would take the partition from whichever event happens to be current.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from processors.audit import CoalescerState
from schemas.codecs import dumps, loads
from streams.config import SecstreamConfig
from streams.graph import HostState
from streams.worker.publish import OutRecord

__all__ = ["HOST_TABLE", "HostStateStore", "build_host_table"]

HOST_TABLE = "hoststate"


def build_host_table(app: Any, config: SecstreamConfig) -> Any:
    """Declare the host-state table (raw bytes keys and values, one partition per internal partition).

    Args:
        app: the Faust app.
        config: the configuration (partition count).
    """
    return app.Table(
        HOST_TABLE,
        default=None,
        partitions=config.topics.partitions,
        key_type=bytes,  # Faust picks the "raw" codec for bytes, for the table and its changelog
        value_type=bytes,
        help="host name -> durable HostState snapshot (process tree, sessions, detectors)",
    )


class HostStateStore:
    """In-memory :class:`HostState` objects, loaded from the table on first use.

    In exactly-once mode (``with_coalescer``) the coalescer's in-flight events are stored too, so that
    the committed offset can move past every processed record: a restart then resumes the in-flight
    events from the changelog instead of re-reading (and re-emitting) records.

    Args:
        table: the Faust table (or any mapping of bytes to bytes, in tests).
        changelog_topic: the table's changelog topic name.
        with_coalescer: also store the coalescer buffers.
    """

    def __init__(self, table: Any, changelog_topic: str, *, with_coalescer: bool = False) -> None:
        self.table = table
        self.changelog_topic = changelog_topic
        self.with_coalescer = with_coalescer
        self._states: dict[str, HostState] = {}
        self._persisted: dict[str, bytes] = {}

    def _data(self) -> Any:
        data = getattr(self.table, "data", self.table)
        return data

    def get(self, host: str, partition: int) -> HostState:
        """The host's state: cached, else restored from the table, else new."""
        del partition
        state = self._states.get(host)
        if state is None:
            raw = self._data().get(host.encode("utf-8", "surrogateescape"))
            if raw is not None:
                data = loads(raw)
                state = HostState.from_durable_snapshot(data)
                if "coalescer" in data:
                    state.coalescer = CoalescerState.from_snapshot(data["coalescer"])
                self._persisted[host] = bytes(raw)
            else:
                state = HostState()
            self._states[host] = state
        return state

    def put(self, host: str, partition: int, state: HostState) -> None:
        """Replace a host's state (persisted with the next :meth:`changed_records`)."""
        del partition
        self._states[host] = state

    def forget(self, hosts: Iterable[str]) -> None:
        """Drop cached states (revoked partitions); the table keeps the durable part."""
        for host in hosts:
            self._states.pop(host, None)
            self._persisted.pop(host, None)

    def hosts(self) -> list[str]:
        """Hosts with a cached state."""
        return list(self._states)

    def changed_records(self, hosts: Iterable[str], partition: int) -> list[OutRecord]:
        """Changelog records for the hosts whose durable snapshot changed since it was last written.

        The local table is updated at once; the records must be sent with the batch's outputs.
        """
        records: list[OutRecord] = []
        data = self._data()
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
            key = host.encode("utf-8", "surrogateescape")
            data[key] = value
            self._persisted[host] = value
            records.append(OutRecord(self.changelog_topic, value, key, partition))
        return records
