"""The worker runtime's parts that need no broker: held acks, and the route stage over Kafka-shaped records."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import jsonschema
import orjson
import pytest
from aiokafka.structs import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from schemas import schema_for
from streams.config import SecstreamConfig, load_config
from streams.graph import Outputs, Pipeline, RawLine
from streams.serde import FRAME_HEADER, decode_internal, encode_internal, pack_audit_records
from streams.worker import runtime as runtime_module
from streams.worker.runtime import _PACK_BYTES, MAX_DOCUMENT_BYTES, AckHolds, WorkerRuntime
from streams.worker.tables import HostStateStore
from streams.worker.topics import TopicNames


def _event(topic: str, partition: int, offset: int) -> Any:
    """A Faust event as the runtime reads it: ``message.tp`` and ``message.offset``."""
    return SimpleNamespace(message=SimpleNamespace(tp=(topic, partition), offset=offset))


class TestAckHolds:
    def test_released_only_when_every_event_is_out(self) -> None:
        holds = AckHolds(timeout_s=60)
        event = _event("t", 0, 7)
        holds.hold(event, {("h", 1), ("h", 2)}, now=0)
        assert holds.release([("h", 1)]) == []
        assert holds.lowest_offset(("t", 0)) == 7
        assert holds.release([("h", 2)]) == [event]
        assert holds.count() == 0
        assert holds.lowest_offset(("t", 0)) is None

    def test_one_event_releases_every_record_that_carries_it(self) -> None:
        holds = AckHolds(timeout_s=60)
        first, second = _event("t", 0, 1), _event("t", 0, 2)
        holds.hold(first, {("h", 5)}, now=0)
        holds.hold(second, {("h", 5), ("h", 6)}, now=0)
        assert holds.release([("h", 5)]) == [first]
        assert holds.lowest_offset(("t", 0)) == 2
        assert holds.release([("h", 6)]) == [second]

    def test_expired_holds_are_forced_out(self) -> None:
        holds = AckHolds(timeout_s=10)
        old, young = _event("t", 0, 1), _event("t", 0, 2)
        holds.hold(old, {("h", 1)}, now=0)
        holds.hold(young, {("h", 2)}, now=5)
        assert holds.expired(now=11) == [old]
        assert holds.count() == 1

    def test_drop_forgets_a_partition_without_releasing(self) -> None:
        holds = AckHolds(timeout_s=60)
        gone, kept = _event("t", 0, 1), _event("t", 1, 1)
        holds.hold(gone, {("h", 1)}, now=0)
        holds.hold(kept, {("h", 1)}, now=0)
        holds.drop([("t", 0)])
        assert holds.release([("h", 1)]) == [kept]
        assert holds.count() == 0

    def test_release_all_of_a_partition(self) -> None:
        holds = AckHolds(timeout_s=60)
        mine, other = _event("t", 0, 1), _event("t", 1, 1)
        holds.hold(mine, {("a", 1)}, now=0)
        holds.hold(other, {("b", 1)}, now=0)
        assert holds.release_all(("t", 0)) == [mine]
        assert holds.count() == 1


class _PlainHolds:
    """The documented rule of AckHolds, written plainly: every call scans every hold."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.holds: list[tuple[Any, set[tuple[str, int]], float]] = []

    def hold(self, event: Any, keys: set[tuple[str, int]], now: float) -> None:
        self.holds.append((event, set(keys), now))

    def release(self, keys: Any) -> list[Any]:
        gone = set(keys)
        for _, waiting, _ in self.holds:
            waiting -= gone
        free = [event for event, waiting, _ in self.holds if not waiting]
        self.holds = [h for h in self.holds if h[1]]
        return free

    def expired(self, now: float) -> list[Any]:
        return self.release({k for _, keys, since in self.holds if now - since > self.timeout_s for k in keys})

    def release_all(self, tp: Any) -> list[Any]:
        return self.release({k for event, keys, _ in self.holds if event.message.tp == tp for k in keys})

    def drop(self, tps: Any) -> None:
        self.holds = [h for h in self.holds if h[0].message.tp not in set(tps)]

    def lowest_offset(self, tp: Any) -> int | None:
        offsets = [event.message.offset for event, _, _ in self.holds if event.message.tp == tp]
        return min(offsets) if offsets else None


_KEYS = st.sets(st.tuples(st.sampled_from("ab"), st.integers(0, 5)), min_size=1, max_size=3)
_OPS = st.one_of(
    st.tuples(st.just("hold"), st.integers(0, 1), st.integers(0, 3), _KEYS),
    st.tuples(st.just("release"), _KEYS),
    st.tuples(st.just("expired")),
    st.tuples(st.just("release_all"), st.integers(0, 1)),
    st.tuples(st.just("drop"), st.integers(0, 1)),
)


class TestAckHoldsModel:
    @given(st.lists(_OPS, max_size=40))
    def test_same_as_scanning_every_hold(self, ops: list[tuple[Any, ...]]) -> None:
        """Any sequence of holds (offsets mostly rising, sometimes not), releases, expiries and drops: the
        same events come free, and the lowest held offset and the count agree with a plain scan."""
        holds, plain = AckHolds(timeout_s=3), _PlainHolds(timeout_s=3)
        offsets = {0: 0, 1: 0}
        for now, op in enumerate(ops):
            if op[0] == "hold":
                _, partition, step, keys = op
                offsets[partition] += step - 1  # a step of 0 goes back: a record read again
                event = _event("t", partition, offsets[partition])
                holds.hold(event, keys, now=now)
                plain.hold(event, keys, now=now)
                continue
            if op[0] == "release":
                got, want = holds.release(op[1]), plain.release(op[1])
            elif op[0] == "expired":
                got, want = holds.expired(now), plain.expired(now)
            elif op[0] == "release_all":
                got, want = holds.release_all(("t", op[1])), plain.release_all(("t", op[1]))
            else:
                holds.drop([("t", op[1])])
                plain.drop([("t", op[1])])
                got, want = [], []
            assert sorted(map(id, got)) == sorted(map(id, want))
            for partition in (0, 1):
                assert holds.lowest_offset(("t", partition)) == plain.lowest_offset(("t", partition))
            assert holds.count() == len(plain.holds)


async def _no_changelog(partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
    return {p: {} for p in partitions}


@pytest.fixture
def config() -> SecstreamConfig:
    return load_config(environ={"SECSTREAM_ENRICHMENT__ENABLED": "false"})


@pytest.fixture
async def runtime(config: SecstreamConfig) -> WorkerRuntime:
    async def pipeline(cfg: SecstreamConfig) -> Pipeline:
        return Pipeline(cfg)

    names = TopicNames.from_config(config)
    worker = WorkerRuntime(
        config,
        pipeline,
        names,
        HostStateStore("changelog", _no_changelog),
        publisher=SimpleNamespace(),  # type: ignore[arg-type]  # route() publishes nothing
        assigned=set,
        clock=lambda: 1_700_000_000.0,
    )
    await worker.start()
    return worker


class _RecordingPublisher:
    """Stands in for a publisher on a revoke: notes what the runtime still held when deliveries were awaited."""

    def __init__(self, runtime: WorkerRuntime, tp: Any) -> None:
        self.runtime, self.tp = runtime, tp
        self.held_while_waiting: int | None = None
        self.revoked: set[Any] = set()

    async def wait_delivered(self) -> None:
        self.held_while_waiting = self.runtime.holds.lowest_offset(self.tp)

    async def revoke(self, sources: Any) -> None:
        self.revoked = set(sources)


class TestRevoke:
    async def test_waits_for_deliveries_before_letting_go(self, runtime: WorkerRuntime) -> None:
        """Deliveries still in flight are awaited while the partition is still held, then its holds go
        unacked: every ack of a revoked partition comes before its new owner reads the changelog."""
        tp = TopicPartition("secstream.auditd-by-host", 0)
        runtime.holds.hold(_event(tp.topic, tp.partition, 7), {("h", 1)}, now=0)
        publisher = _RecordingPublisher(runtime, tp)
        runtime.publisher = publisher  # type: ignore[assignment]  # only revoke's calls are needed
        await runtime.revoke([tp])
        assert publisher.held_while_waiting == 7
        assert runtime.holds.lowest_offset(tp) is None and publisher.revoked == {tp}


class _CountingPublisher:
    """Stands in for a publisher of one batch after another: acks everything at once."""

    async def prepare(self, tps: Any) -> dict[Any, int]:
        return {}

    async def publish(self, source: Any, records: Any, acks: Any, commit_offset: int | None) -> None:
        for event in acks:
            event.ack()


class TestSnapshotCadence:
    async def test_snapshots_wait_the_interval_and_twenty_times_their_last_cost(
        self, runtime: WorkerRuntime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runtime.config = replace(runtime.config, worker=replace(runtime.config.worker, snapshot_interval_s=2.0))
        tp = TopicPartition(runtime.topics.auditd_by_host, 0)
        now = [1_700_000_000.0]
        runtime.clock = lambda: now[0]
        runtime.assigned = lambda: {tp}
        runtime.publisher = _CountingPublisher()  # type: ignore[assignment]  # prepare and publish only
        writes: list[float] = []
        cost = [0.0]
        original = runtime.store.changed_records
        # the runtime times a write with perf_counter: only the cost set here may count, not the machine's
        spent = [0.0]
        monkeypatch.setattr(runtime_module.time, "perf_counter", lambda: spent[0])

        def changed_records(hosts: Any, partition: int) -> Any:
            writes.append(round(now[0] - 1_700_000_000.0, 3))
            spent[0] += cost[0]
            return original(hosts, partition)

        monkeypatch.setattr(runtime.store, "changed_records", changed_records)
        offset = iter(range(1000))

        async def batch_at(t: float) -> None:
            now[0] = 1_700_000_000.0 + t
            value, headers = encode_internal([RawLine(AUDIT % (next(offset), 7))])
            message = SimpleNamespace(tp=tp, offset=next(offset), key=b"h", value=value, headers=headers)
            await runtime.audit_batch([SimpleNamespace(message=message, ack=lambda: None)])

        for t in (0.0, 1.0, 1.9):
            await batch_at(t)
        assert writes == []  # the first batch opens the period; 2 s have not passed
        cost[0] = 0.2  # this write takes 0.2 s: the next one waits 20 times that
        await batch_at(2.1)
        assert writes == [2.1]
        for t in (2.5, 4.6, 6.4):  # 4 s after 2.5 is 6.5
            await batch_at(t)
        assert writes == [2.1]
        cost[0] = 0.0
        await batch_at(6.6)
        await batch_at(7.0)  # the cheap write at 6.6 brings the interval of 2 s back
        await batch_at(9.1)
        assert writes == [2.1, 6.6, 9.1]


def _record(value: bytes, offset: int, key: bytes | None = None, topic: str = "secstream.raw.auditd") -> Any:
    """A Kafka record as aiokafka's consumer returns it (only the fields the route stage reads)."""
    return SimpleNamespace(topic=topic, partition=3, offset=offset, key=key, value=value)


AUDIT = b'type=SYSCALL msg=audit(1551487424.869:%d): arch=c000003e syscall=59 success=yes exit=0 pid=%d comm="ls"'


class TestRoute:
    def test_audit_lines_are_packed_per_host_with_their_origin(self, runtime: WorkerRuntime) -> None:
        records = [
            _record(b"node=alpha " + AUDIT % (1, 10) + b"\nnode=beta " + AUDIT % (2, 11), 40),
            _record(AUDIT % (3, 12), 41, key=b"gamma"),
            _record(orjson.dumps({"message": (AUDIT % (4, 13)).decode(), "host": "alpha"}), 42),
        ]
        out = runtime.route("auditd", records)
        by_key = {record.key: record for record in out}
        assert set(by_key) == {b"alpha", b"beta", b"gamma"}
        assert {record.topic for record in out} == {runtime.topics.auditd_by_host}
        alpha = decode_internal(by_key[b"alpha"].value, by_key[b"alpha"].headers, 0.0, "unused")[0]
        assert [line.source["offset"] for line in alpha] == [40, 42]
        assert [line.host for line in alpha] == [None, "alpha"]
        assert dict(by_key[b"alpha"].headers)[FRAME_HEADER] == b"2"
        keys = decode_internal(by_key[b"alpha"].value, by_key[b"alpha"].headers, 0.0, "unused")[1]
        assert keys == {("alpha", 1), ("alpha", 4)}, "the route stage writes the event keys of its lines"

    def test_undecodable_value_becomes_a_dead_letter_with_its_bytes(self, runtime: WorkerRuntime) -> None:
        broken = b'{"message": '
        out = runtime.route("auditd", [_record(broken, 9)])
        assert [record.topic for record in out] == [runtime.topics.deadletter]
        doc = orjson.loads(out[0].value)
        assert doc["event"]["original"] == broken.decode()
        assert doc["secstream"]["source"] == {"topic": "secstream.raw.auditd", "partition": 3, "offset": 9}
        assert runtime.metrics.bad_input.labels(reason="auditd:DecodeError")._value.get() == 1

    def test_a_dead_letter_too_large_for_a_record_keeps_the_start_of_its_input(self, runtime: WorkerRuntime) -> None:
        """A near-1 MB undecodable value would make a dead letter twice its size, which the broker refuses
        (and a refused record stops the worker's acks): its dead letter keeps 64 KiB, the size and digest."""
        broken = b'{"message": ' + bytes(range(256)) * 3000
        out = runtime.route("auditd", [_record(broken, 9)])
        assert [record.topic for record in out] == [runtime.topics.deadletter]
        assert out[0].value is not None and len(out[0].value) <= MAX_DOCUMENT_BYTES
        doc = orjson.loads(out[0].value)
        jsonschema.validate(doc, schema_for("deadletter"))
        kept = base64.b64decode(doc["secstream"]["original_base64"])
        assert kept == broken[: len(kept)] and 0 < len(kept) < len(broken)
        assert doc["secstream"]["original_truncated"] is True
        assert doc["secstream"]["original_size"] == len(broken)
        assert doc["secstream"]["original_sha256"] == hashlib.sha256(broken).hexdigest()
        assert doc["secstream"]["source"] == {"topic": "secstream.raw.auditd", "partition": 3, "offset": 9}
        assert doc["error"]["type"] == "DecodeError"
        # schemas.documents.dead_letter caps the original itself, so the record-size fallback is not needed
        assert runtime.metrics.bad_input.labels(reason="output:too_large")._value.get() == 0

    def test_an_audit_line_too_long_to_repartition_becomes_a_dead_letter(self, runtime: WorkerRuntime) -> None:
        """A line near 1 MB would make an internal record the producer refuses: it is a dead letter, and
        the other records of the batch are routed as usual."""
        huge = AUDIT % (5, 14) + b" " + b"a" * 950_000
        out = runtime.route("auditd", [_record(huge, 7, key=b"alpha"), _record(AUDIT % (6, 15), 8, key=b"alpha")])
        assert [record.topic for record in out] == [runtime.topics.deadletter, runtime.topics.auditd_by_host]
        assert all(record.value is not None and len(record.value) <= MAX_DOCUMENT_BYTES for record in out)
        doc = orjson.loads(out[0].value or b"")
        assert doc["error"]["type"] == "LineTooLong" and doc["secstream"]["original_size"] == len(huge)
        assert doc["secstream"]["source"]["offset"] == 7 and doc["host"] == {"name": "alpha"}
        assert runtime.pipeline.stats.bad_input["auditd:too_long"] == 1  # counted as the graph counts them
        assert decode_internal(out[1].value or b"", out[1].headers, 0.0, "unused")[1] == {("alpha", 6)}

    def test_an_event_too_large_for_a_record_becomes_a_dead_letter(self, runtime: WorkerRuntime) -> None:
        """An exec with megabytes of arguments: its event goes to the dead letters, cut, with its id."""
        event = {
            "event": {"id": "e" * 32, "module": "auditd", "dataset": "auditd"},
            "host": {"name": "build-7"},
            "process": {"command_line": "x" * 2_000_000},
        }
        record = runtime._output_records(Outputs(events=[event]))[0]
        assert (record.topic, record.key) == (runtime.topics.deadletter, b"build-7")
        assert record.value is not None and len(record.value) <= MAX_DOCUMENT_BYTES
        doc = orjson.loads(record.value)
        jsonschema.validate(doc, schema_for("deadletter"))
        assert doc["secstream"]["source"] == {"topic": runtime.topics.events, "event_id": "e" * 32}
        assert doc["error"]["type"] == "DocumentTooLarge" and doc["host"] == {"name": "build-7"}
        assert doc["secstream"]["original_size"] > 2_000_000
        assert doc["event"]["original"].startswith('{"event":{"dataset":"auditd"')

    def test_syslog_lines_are_parsed_and_keyed_by_host(self, runtime: WorkerRuntime) -> None:
        line = b"<86>Mar  1 23:23:44 web01 sshd[2025]: Accepted password for alice from 10.0.0.5 port 50022 ssh2"
        out = runtime.route("syslog", [_record(line, 0, topic="secstream.raw.syslog")])
        assert [(record.topic, record.key) for record in out] == [(runtime.topics.syslog_by_host, b"web01")]
        assert orjson.loads(out[0].value)["host"]["name"] == "web01"

    def test_a_large_batch_of_one_host_is_split_under_the_pack_limit(self, runtime: WorkerRuntime) -> None:
        line = b"node=alpha " + AUDIT % (1, 10) + b" key=" + b"x" * 900
        count = 2 * _PACK_BYTES // len(line) + 10
        out = runtime.route("auditd", [_record(line, i) for i in range(count)])
        assert len(out) >= 2
        assert all(len(record.value) < _PACK_BYTES + 64 * 1024 for record in out)
        lines = [line for record in out for line in decode_internal(record.value, record.headers, 0.0, "unused")[0]]
        assert [line.source["offset"] for line in lines] == list(range(count))


_HOSTS = st.sampled_from([b"alpha", b"beta", b"h\xc3\xa9", b"bad\xff\xfe", b'q"uo\\te\x01', b""])
_DIGITS = st.builds(lambda zeros, sevens: b"0" * zeros + b"7" * sevens, st.integers(0, 2), st.integers(0, 21))


@st.composite
def _audit_line(draw: st.DrawFn) -> bytes:
    """An audit line near the header's edges: node= or not, digit runs around their limits, any tail."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))
    head = draw(st.sampled_from([b"", b" ", b"\t ", b"\x0b"]))
    if draw(st.booleans()):
        head += b"node=" + draw(_HOSTS) + draw(st.sampled_from([b" ", b"\t", b"  "]))
    stamp = draw(_DIGITS) + draw(st.sampled_from([b".", b":"])) + draw(_DIGITS)
    head += b"type=" + draw(st.sampled_from([b"SYSCALL", b"", b"EXECVE"])) + b" msg=audit(" + stamp + b":"
    return head + draw(_DIGITS) + draw(st.sampled_from([b"): pid=1", b")", b"", b"x)"])) + draw(st.binary(max_size=8))


@st.composite
def _raw_value(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_audit_line(), min_size=0, max_size=5))
    value = b"".join(line + draw(st.sampled_from([b"\n", b"\r\n", b"\n \n", b"\r\r\n"])) for line in lines)
    return draw(st.sampled_from([b"", b"  ", b"\n"])) + value


class TestCompiledRoute:
    @given(
        st.lists(st.tuples(_raw_value(), st.one_of(st.none(), _HOSTS)), min_size=1, max_size=12),
        st.sampled_from(["localhost", "", 'dé"fault']),
        st.sampled_from([_PACK_BYTES, 150, 1]),
        st.booleans(),
    )
    def test_same_messages_as_decode_value(
        self,
        values: list[tuple[bytes, bytes | None]],
        default_host: str,
        pack_bytes: int,
        envelope: bool,
    ) -> None:
        """The compiled route writes exactly the messages that decode_value, audit_event_key, the packing
        and encode_internal write; a batch with a JSON envelope is routed in Python."""
        records = [_record(value, offset, key=key) for offset, (value, key) in enumerate(values)]
        if envelope:
            records.append(_record(orjson.dumps({"message": "type=X msg=audit(1.2:3): a=b"}), len(records)))
        config = load_config(
            environ={"SECSTREAM_ENRICHMENT__ENABLED": "false", "SECSTREAM_INPUT__DEFAULT_HOST": default_host}
        )
        assert config.input.default_host == default_host
        runtime = WorkerRuntime(
            config,
            None,  # type: ignore[arg-type]  # the route of audit lines runs no stage graph
            TopicNames.from_config(config),
            HostStateStore("changelog", _no_changelog),
            publisher=SimpleNamespace(),  # type: ignore[arg-type]
            assigned=set,
            clock=lambda: 1_700_000_000.0,
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runtime_module, "_PACK_BYTES", pack_bytes)
            compiled = runtime.route("auditd", records)
            reference = runtime._route_decoded("auditd", records)
        assert compiled == reference
        if not envelope:
            assert pack_audit_records(records, default_host, pack_bytes) is not None
