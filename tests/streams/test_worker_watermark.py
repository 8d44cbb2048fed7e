"""Event-time order across raw partitions (streams/worker/watermark.py), without a broker.

The property: a host's lines split over N raw partitions in any way, and consumed in any interleaving that
keeps each partition's order, reach the coalescer so that the stage graph makes the embedded runner's
events (ids and contents).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import SecstreamConfig, load_config
from streams.graph import HostStates, Pipeline, RawLine
from streams.worker.watermark import EventTimeOrder, OrderCounters, last_event_time, mark_value, order_key

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "audit.log"
RAW = "raw.auditd"


@pytest.fixture(scope="module")
def config() -> SecstreamConfig:
    return load_config(environ={"SECSTREAM_ENRICHMENT__ENABLED": "false"})


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    copy["event"].pop("ingested", None)
    copy["event"].pop("created", None)
    return copy


RECEIVED = 2_000_000_000.0
"""When every line was read: a fixed wall clock after every event time (a record dated far ahead of its
receive time is refused as from the future)."""


def _host(line: bytes) -> str:
    return line.split(b" ", 1)[0].removeprefix(b"node=").decode()


def embedded(config: SecstreamConfig, lines: list[bytes]) -> list[dict[str, Any]]:
    """The embedded runner's way: every line in file order, then the end-of-input flush."""
    pipeline, states = Pipeline(config), HostStates()
    pending = pipeline.audit_lines([RawLine(line, received=RECEIVED) for line in lines], states)
    pending.extend(pipeline.shutdown(states))
    return [_stable(doc) for doc in asyncio.run(pipeline.complete(pending, states)).events]


def through_order(
    config: SecstreamConfig, lines: list[bytes], partition_of: list[int], partitions: int, rnd: random.Random
) -> tuple[list[dict[str, Any]], EventTimeOrder]:
    """The worker's way: lines spread over raw partitions, routed in batches of random size taken from random
    partitions (each partition in its own order), held by the order, then a caught-up mark of every
    partition at the end of the input, then the flush."""
    queues: list[list[tuple[int, bytes]]] = [[] for _ in range(partitions)]
    for line, number in zip(lines, partition_of, strict=True):
        queues[number].append((len(queues[number]), line))
    order = EventTimeOrder(lateness_s=2.0, max_wait_s=1e9, max_lines=1 << 30)
    for number in range(partitions):
        order.mark(mark_value(RAW, number, partitions, None, None))
    pipeline, states = Pipeline(config), HostStates()
    pending = pipeline.audit_lines([], states)
    clock, internal_offset = 0.0, 0
    positions = [0] * partitions
    while True:
        open_partitions = [n for n in range(partitions) if positions[n] < len(queues[n])]
        if not open_partitions:
            break
        number = rnd.choice(open_partitions)
        take = rnd.randint(1, 40)
        batch = queues[number][positions[number] : positions[number] + take]
        positions[number] += take
        clock += 1.0
        by_host: dict[str, list[RawLine]] = {}
        for offset, line in batch:
            source = {"topic": RAW, "partition": number, "offset": offset}
            by_host.setdefault(_host(line), []).append(RawLine(line, source=source, received=RECEIVED))
        for host, host_lines in by_host.items():
            internal_offset += 1
            order.add(host, host_lines, clock, clock, internal_offset)
        pending.extend(pipeline.audit_lines(order.release(clock, by_host), states))
    for number in range(partitions):
        order.mark(mark_value(RAW, number, partitions, clock + 1.0, None))
    pending.extend(pipeline.audit_lines(order.release(clock + 1.0), states))
    pending.extend(pipeline.shutdown(states))
    return [_stable(doc) for doc in asyncio.run(pipeline.complete(pending, states)).events], order


def _by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["event"]["id"]: doc for doc in docs}


# -- generated audit logs ---------------------------------------------------------------------------

_SYSCALL_PARTS = [
    "type=SYSCALL msg=audit({t}:{s}): arch=c000003e syscall=59 success=yes exit=0 items={n} ppid={pp} pid={p} "
    'auid=1000 uid=0 gid=0 euid=0 ses=7 tty=pts0 comm="{c}" exe="/usr/bin/{c}" key="exec"',
    'type=EXECVE msg=audit({t}:{s}): argc=2 a0="{c}" a1="-x{p}"',
    'type=CWD msg=audit({t}:{s}): cwd="/home/u{p}"',
]


def _event_lines(host: str, time: str, serial: int, kind: int, pid: int) -> list[bytes]:
    prefix = f"node={host} "
    if kind == 0:
        body = [f"type=USER_LOGIN msg=audit({time}:{serial}): pid={pid} uid=0 auid=1000 ses=7 res=success"]
    else:
        paths = kind % 3 + 1
        body = [part.format(t=time, s=serial, n=paths, pp=pid - 1, p=pid, c=f"cmd{kind}") for part in _SYSCALL_PARTS]
        body += [
            f'type=PATH msg=audit({time}:{serial}): item={i} name="/usr/lib/f{i}" inode={i + 10} nametype=NORMAL'
            for i in range(paths)
        ]
        body.append(f"type=PROCTITLE msg=audit({time}:{serial}): proctitle=636D64")
        if kind % 2:
            body.append(f"type=EOE msg=audit({time}:{serial}):")
    return [(prefix + line).encode() for line in body]


@st.composite
def audit_logs(draw: st.DrawFn) -> list[bytes]:
    """A log of 2-3 hosts' events in time order, each event's records in the kernel's order, events of a
    host sometimes sharing a timestamp (several serials per millisecond), hosts interleaved."""
    hosts = [f"h{i}" for i in range(draw(st.integers(2, 3)))]
    events: list[tuple[int, str, list[bytes]]] = []
    for host in hosts:
        millis = 1_700_000_000_000 + draw(st.integers(0, 50))
        serial = draw(st.integers(1, 1000))
        for _ in range(draw(st.integers(1, 25))):
            millis += draw(st.sampled_from([0, 0, 1, 4, 250, 900, 2500]))
            serial += 1
            kind = draw(st.integers(0, 6))
            time = f"{millis // 1000}.{millis % 1000:03d}"
            events.append((millis, host, _event_lines(host, time, serial, kind, 100 + serial)))
    events.sort(key=lambda event: event[0])  # stable: a host's events keep their serial order
    return [line for _, _, lines in events for line in lines]


class TestAnySplitAnyInterleaving:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        lines=audit_logs(),
        partitions=st.sampled_from([1, 2, 4, 12]),
        split=st.sampled_from(["random", "round_robin", "sticky", "keyed"]),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_gives_the_embedded_runners_events(
        self, config: SecstreamConfig, lines: list[bytes], partitions: int, split: str, seed: int
    ) -> None:
        rnd = random.Random(seed)
        if split == "random":
            partition_of = [rnd.randrange(partitions) for _ in lines]
        elif split == "round_robin":
            partition_of = [i % partitions for i in range(len(lines))]
        elif split == "sticky":  # librdkafka's sticky partitioner: runs of records to one partition
            partition_of, current = [], 0
            for _ in lines:
                if rnd.random() < 0.1:
                    current = rnd.randrange(partitions)
                partition_of.append(current)
        else:
            hosts = sorted({_host(line) for line in lines})
            partition_of = [hosts.index(_host(line)) % partitions for line in lines]
        ordered, order = through_order(config, lines, partition_of, partitions, rnd)
        assert _by_id(ordered) == _by_id(embedded(config, lines))
        assert order.queued() == 0 and order.counters == OrderCounters()


class TestSampleLog:
    @pytest.mark.parametrize("partitions", [1, 4, 12])
    def test_the_sample_log_split_at_random(self, config: SecstreamConfig, partitions: int) -> None:
        lines = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
        for seed in range(5):
            rnd = random.Random(seed)
            ordered, _ = through_order(config, lines, [rnd.randrange(partitions) for _ in lines], partitions, rnd)
            assert _by_id(ordered) == _by_id(embedded(config, lines))

    def test_without_the_order_events_fall_apart(self, config: SecstreamConfig) -> None:
        """What the order is for: the same split handed over as it arrives splits events (the test above
        would pass for nothing if arrival order were harmless)."""
        lines = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
        rnd = random.Random(1)
        queues: list[list[bytes]] = [[], [], [], []]
        for line in lines:
            queues[rnd.randrange(4)].append(line)
        arrival = [line for queue in queues for line in queue]  # partition after partition
        assert _by_id(embedded(config, arrival)).keys() != _by_id(embedded(config, lines)).keys()


# -- the rules one by one ---------------------------------------------------------------------------


def _line(host: str, millis: int, serial: int, rtype: str = "SYSCALL", extra: str = "") -> bytes:
    return f"node={host} type={rtype} msg=audit({millis // 1000}.{millis % 1000:03d}:{serial}): {extra}".encode()


def _raw(data: bytes, partition: int, offset: int) -> RawLine:
    return RawLine(data, source={"topic": RAW, "partition": partition, "offset": offset})


def _order(**kwargs: Any) -> EventTimeOrder:
    settings = {"lateness_s": 2.0, "max_wait_s": 30.0, "max_lines": 1000, **kwargs}
    return EventTimeOrder(**settings)


class TestRules:
    def test_a_line_waits_for_every_partition_that_carries_its_host(self) -> None:
        order = _order(slack_s=0.0)
        order.mark(mark_value(RAW, 0, 2, None, None))
        order.add("h", [_raw(_line("h", 1000, 1), 0, 0)], routed_at=1.0, now=1.0, offset=0)
        assert order.release(1.0) == []  # partition 1 has said nothing yet
        order.add("h", [_raw(_line("h", 1000, 1, "EOE"), 1, 0)], routed_at=1.0, now=1.0, offset=1)
        # partition 0's newest line is the SYSCALL: the EOE (later in the kernel's order) still waits
        assert [line.data for line in order.release(1.0)] == [_line("h", 1000, 1)]
        assert order.waiting("h") and order.holding(1) and not order.holding(0)
        assert order.lowest_offset() == 1

    def test_a_caught_up_mark_clears_what_was_routed_before_it(self) -> None:
        order = _order()
        order.add("h", [_raw(_line("h", 1000, 1), 0, 0)], routed_at=5.0, now=5.0, offset=0)
        order.mark(mark_value(RAW, 1, 2, 4.0, None))  # read to its end before the line was routed
        assert order.release(5.0) == []
        order.mark(mark_value(RAW, 1, 2, 6.0, None))
        assert order.release(5.0) == []  # partition 0 is still within the slack of its own line
        order.mark(mark_value(RAW, 0, 2, 6.0, None))
        assert len(order.release(6.0)) == 1 and not order.waiting("h")

    def test_a_partition_that_never_carried_the_host_clears_by_its_event_time(self) -> None:
        order = _order(slack_s=0.0)
        order.add("h", [_raw(_line("h", 10_000, 1), 0, 0)], routed_at=1.0, now=1.0, offset=0)
        order.mark(mark_value(RAW, 1, 2, None, 11.5))  # other hosts' lines at 11.5 s: within lateness
        assert order.release(1.0) == []
        order.mark(mark_value(RAW, 1, 2, None, 12.5))
        assert len(order.release(1.0)) == 1

    def test_a_stopped_partition_holds_lines_only_max_wait_s_and_that_is_counted(self) -> None:
        order = _order(max_wait_s=30.0)
        order.mark(mark_value(RAW, 1, 2, None, None))
        order.add("h", [_raw(_line("h", 1000, 1), 0, 0)], routed_at=1.0, now=1.0, offset=0)
        assert order.release(30.0) == [] and order.lag_s() == 0.0
        assert len(order.release(31.0)) == 1
        assert order.counters.forced_wait == 1 and order.queued() == 0

    def test_the_memory_bound_releases_the_oldest_and_counts_them(self) -> None:
        order = _order(max_lines=3)
        order.mark(mark_value(RAW, 1, 2, None, None))
        for offset in range(5):
            order.add("h", [_raw(_line("h", 1000 + offset * 10, offset), 0, offset)], 1.0, 1.0 + offset, offset)
        released = order.release(6.0)
        assert [order_key(line.data)[2] for line in released if isinstance(line.data, bytes)] == [0, 1]  # type: ignore[index]
        assert order.counters.forced_memory == 2 and order.queued() == 3

    def test_lines_wait_until_a_mark_lists_the_raw_topics_partitions(self) -> None:
        """A worker that starts (or takes a partition over) may read lines of two raw partitions before it
        knows there are four: nothing goes out before a mark says how many there are."""
        order = _order(slack_s=0.0)
        order.add("h", [_raw(_line("h", 1000, 1), 0, 0)], 1.0, 1.0, 0)
        order.add("h", [_raw(_line("h", 9000, 2), 1, 0)], 1.0, 1.0, 1)
        assert order.release(1.0) == []
        order.mark(mark_value(RAW, 1, 2, None, None))
        assert len(order.release(1.0)) == 1

    def test_re_routed_copies_are_dropped_and_counted(self) -> None:
        order = _order(slack_s=0.0)
        order.mark(mark_value(RAW, 0, 1, None, None))
        lines = [_raw(_line("h", 1000, n), 0, n) for n in range(3)]
        order.add("h", lines, 1.0, 1.0, 0)
        order.add("h", [_raw(_line("h", 1000, n), 0, n) for n in range(1, 4)], 2.0, 2.0, 1)
        assert order.counters.rerouted == 2
        assert [order_key(line.data)[2] for line in order.release(2.0) if isinstance(line.data, bytes)] == [  # type: ignore[index]
            0,
            1,
            2,
            3,
        ]

    def test_records_of_one_event_come_back_in_the_kernels_order(self) -> None:
        order = _order(slack_s=0.0)
        kinds = ["EOE", "PROCTITLE", "PATH", "CWD", "EXECVE", "SYSCALL", "AVC"]
        for n, kind in enumerate(kinds):
            extra = "item=1" if kind == "PATH" else ""
            order.add("h", [_raw(_line("h", 1000, 7, kind, extra), n, 0)], 1.0, 1.0, n)
        order.add("h", [_raw(_line("h", 1000, 7, "PATH", "item=0"), 0, 1)], 1.0, 1.0, 9)
        for n in range(len(kinds)):
            order.mark(mark_value(RAW, n, len(kinds), 2.0, None))
        types = [
            line.data.split(b"type=")[1].split(b" ")[0] for line in order.release(2.0) if isinstance(line.data, bytes)
        ]
        assert types == [b"AVC", b"SYSCALL", b"EXECVE", b"CWD", b"PATH", b"PATH", b"PROCTITLE", b"EOE"]

    def test_drain_hands_over_everything(self) -> None:
        order = _order()
        order.mark(mark_value(RAW, 1, 2, None, None))
        order.add("h", [_raw(_line("h", 1000, 1), 0, 0), RawLine(b"garbage", source={})], 1.0, 1.0, 0)
        assert len(order.drain()) == 2 and order.queued() == 0 and order.lowest_offset() is None


def test_last_event_time_reads_the_last_line_of_raw_text_and_envelopes() -> None:
    values = [
        _line("h", 1500, 1) + b"\n" + _line("h", 2500, 2) + b"\n",
        orjson.dumps({"message": _line("h", 3250, 3).decode()}),
        None,
        b"not audit",
    ]
    assert last_event_time(values) == 3.25
