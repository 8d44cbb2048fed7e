"""The host-state store's changelog records: one record a host, or chunks and a manifest for a large
snapshot, read back as a compacted topic would give them after any crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.proctree import ProcessNode, ProcessTrackerState
from streams.graph import HostState
from streams.worker.publish import OutRecord
from streams.worker.tables import HostStateStore

PARTITION = 0


class CompactedTopic:
    """A changelog partition as a reader sees it: the latest value of each key, tombstoned keys gone."""

    def __init__(self) -> None:
        self.latest: dict[bytes, bytes] = {}

    def append(self, records: list[OutRecord]) -> None:
        for record in records:
            assert record.key is not None and record.partition == PARTITION
            if record.value is None:
                self.latest.pop(record.key, None)
            else:
                self.latest[record.key] = record.value

    async def read(self, partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        return {p: dict(self.latest) if p == PARTITION else {} for p in partitions}


def _state(nodes: int, generation: int = 0, host: str = "web-1") -> HostState:
    state = HostState()
    state.tracker = ProcessTrackerState(
        host=host,
        nodes={
            f"e{generation}-{i}": ProcessNode(
                entity_id=f"e{generation}-{i}", pid=100 + i, ppid=1, start=1.7e9 + i, command_line="sh -c " + "x" * 40
            )
            for i in range(nodes)
        },
    )
    return state


async def _store(topic: CompactedTopic, chunk_bytes: int = 1000) -> HostStateStore:
    store = HostStateStore("changelog", topic.read, chunk_bytes=chunk_bytes)
    await store.recover([PARTITION])
    return store


def _write(store: HostStateStore, host: str, state: HostState) -> list[OutRecord]:
    store.put(host, PARTITION, state)
    return store.changed_records([host], PARTITION)


class TestChangelogRecords:
    async def test_a_small_snapshot_is_one_record_under_the_host_key(self) -> None:
        store = await _store(CompactedTopic())
        records = _write(store, "web-1", _state(2))
        assert [(r.key, len(r.value or b"") <= 1000) for r in records] == [(b"web-1", True)]

    async def test_a_large_snapshot_is_written_in_chunks_and_read_back_whole(self) -> None:
        topic = CompactedTopic()
        state = _state(60)
        records = _write(await _store(topic), "web-1", state)
        assert len(records) > 3
        assert all(r.value is not None and len(r.value) <= 1000 for r in records)
        assert records[-1].key == b"web-1"  # the manifest comes after its chunks
        topic.append(records)
        restored = (await _store(topic)).get("web-1", PARTITION)
        assert restored.durable_snapshot() == state.durable_snapshot()

    async def test_chunk_keys_nothing_names_are_deleted(self) -> None:
        topic = CompactedTopic()
        store = await _store(topic)
        for generation, nodes in enumerate([60, 40, 60, 20, 2]):
            topic.append(_write(store, "web-1", _state(nodes, generation)))
        assert list(topic.latest) == [b"web-1"]

    async def test_hosts_named_like_chunk_keys_do_not_collide(self) -> None:
        topic = CompactedTopic()
        store = await _store(topic)
        hosts = ["web-1", "\x00cweb-1", "\x00\x00web-1", "\x00", ""]
        states = {host: _state(10 + 20 * i, i, host) for i, host in enumerate(hosts)}
        for host, state in states.items():
            topic.append(_write(store, host, state))
        fresh = await _store(topic)
        for host, state in states.items():
            assert fresh.get(host, PARTITION).durable_snapshot() == state.durable_snapshot(), repr(host)
        assert fresh.unreadable == 0

    @pytest.mark.parametrize("damage", ["not a snapshot", "missing chunk"])
    async def test_an_unreadable_snapshot_is_counted_and_the_host_starts_afresh(self, damage: str) -> None:
        topic = CompactedTopic()
        topic.append(_write(await _store(topic), "web-1", _state(60)))
        if damage == "not a snapshot":
            topic.latest[b"web-1"] = b"not a snapshot"
        else:
            del topic.latest[next(key for key in topic.latest if key != b"web-1")]
        store = await _store(topic)
        seen: list[int] = []
        store.on_unreadable = lambda: seen.append(1)
        state = store.get("web-1", PARTITION)
        assert state.tracker.nodes == {}
        assert store.unreadable == 1 and (seen or damage == "missing chunk")

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=80), st.booleans(), st.none() | st.integers(0, 30)),
            min_size=1,
            max_size=8,
        )
    )
    async def test_any_crash_leaves_the_last_named_snapshot_readable(
        self, steps: list[tuple[int, bool, int | None]]
    ) -> None:
        """Writes of growing and shrinking snapshots, restarts between them, and crashes that deliver only
        a prefix of a write's records: the host always reads back as its last snapshot whose naming record
        (the host key's) was delivered, and the topic never keeps more chunk keys than two generations use."""
        topic = CompactedTopic()
        store = await _store(topic)
        expected: dict[str, Any] | None = None
        for generation, (nodes, restart, cut) in enumerate(steps):
            state = _state(nodes, generation)
            records = _write(store, "web-1", state)
            delivered = records if cut is None else records[:cut]
            topic.append(delivered)
            if any(r.key == b"web-1" for r in delivered):
                expected = state.durable_snapshot()
            if cut is not None or restart:  # a crash loses the store; a restart rebuilds it from the topic
                store = await _store(topic)
                restored = store.get("web-1", PARTITION)
                assert store.unreadable == 0
                if expected is not None:
                    assert restored.durable_snapshot() == expected
            chunk_keys = [key for key in topic.latest if key != b"web-1"]
            assert len(chunk_keys) <= 2 * (80 * 150 // 1000 + 2)


class TestCompletedEventsSurvive:
    async def test_a_record_read_again_of_an_event_emitted_before_the_snapshot_is_a_duplicate(self) -> None:
        """At-least-once: an event's records are spread over internal records (un-keyed input), so after a
        crash some of them are read again although the event is out. The restored coalescer remembers the
        event and drops them (counted), instead of emitting a second, partial copy under the same id."""
        from processors.audit import Coalescer, parse_line

        coalescer = Coalescer()
        lines = [
            "node=h type=SYSCALL msg=audit(1.000:7): syscall=59 success=yes",
            "node=h type=CWD msg=audit(1.000:7): cwd=/",
            "node=h type=EOE msg=audit(1.000:7):",
        ]
        state = HostState()
        emitted = [out for line in lines for out in coalescer.push(parse_line(line), state.coalescer, wall_time=1.0)]
        assert len(emitted) == 1
        topic = CompactedTopic()
        topic.append(_write(await _store(topic), "h", state))
        restored = (await _store(topic)).get("h", PARTITION)
        assert restored.coalescer.in_flight == {} and restored.coalescer.counters["completed"] == 1
        again = coalescer.push(parse_line(lines[1]), restored.coalescer, wall_time=2.0)
        assert again == [] and restored.coalescer.counters["duplicate"] == 1
