"""Host state stays bounded in memory however many host names the input makes up, and nothing changes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import load_config
from streams.graph import HostStates, Outputs, Pipeline, RawLine
from streams.spill import SpillFile

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


def _lines(count_hosts: int) -> list[RawLine]:
    """The sample audit log's events spread over many hosts, interleaved: every host comes back later."""
    sample = [line for line in (SAMPLES / "audit.log").read_text().splitlines() if line.strip()]
    rng = random.Random(7)
    lines: list[RawLine] = []
    for round_no in range(3):
        hosts = list(range(count_hosts))
        rng.shuffle(hosts)
        for host in hosts:
            for text in sample[round_no * 20 : round_no * 20 + 20]:
                # node= names the host; each round keeps one host's lines in event order
                lines.append(RawLine(f"node=h{host} {text.split(' ', 1)[1]}", {}, None, 1.0))
    return lines


def _run(lines: list[RawLine], states: HostStates) -> Outputs:
    pipeline = Pipeline(load_config(environ={}))
    outputs = Outputs()

    async def go() -> None:
        for start in range(0, len(lines), 500):
            done = await pipeline.complete(pipeline.audit_lines(lines[start : start + 500], states), states)
            outputs.events.extend(done.events)
            outputs.detections.extend(done.detections)
        done = await pipeline.complete(pipeline.shutdown(states), states)
        outputs.events.extend(done.events)
        outputs.detections.extend(done.detections)

    asyncio.run(go())
    pipeline.collect_state_counters(states)
    # The end-of-input flush visits hosts in memory order, which spilling changes: compare as sets.
    outputs.events.sort(key=lambda doc: doc["event"]["id"])
    outputs.detections.sort(key=lambda doc: doc["event"]["id"])
    outputs.deadletters.append({"audit": dict(pipeline.stats.audit), "proctree": dict(pipeline.stats.proctree)})
    return outputs


@pytest.fixture
def spill() -> Iterator[SpillFile]:
    store = SpillFile()
    yield store
    store.close()


class TestHostBound:
    """HostStates with max_in_memory spills idle hosts to disk and reads them back."""

    def test_same_output_and_counters_as_unbounded(self, spill: SpillFile) -> None:
        """Events, alerts and the summed counters equal an unbounded run, while memory holds few hosts."""
        lines = _lines(60)
        bounded = HostStates(max_in_memory=10, spill=spill)
        assert _run(lines, bounded) == _run(lines, HostStates())
        assert bounded.spills > 60 and bounded.restores > 60
        assert len(bounded.in_memory()) <= 10

    def test_spilled_hosts_live_on_disk(self, spill: SpillFile) -> None:
        """A spilled host is a row in the spill file, and comes back with its process tree."""
        states = HostStates(max_in_memory=10, spill=spill)
        _run(_lines(30), states)
        assert len(spill) + len(states.in_memory()) == 30
        restored = []
        for host in (f"h{n}" for n in range(30)):
            before = len(spill)
            state = states[host]
            if len(spill) < before:  # it was spilled: reading it took its row out (and may spill others)
                restored.append(state.tracker.live)
        assert restored and all(live > 0 for live in restored)

    def test_a_bound_needs_a_store(self) -> None:
        """A bound without a spill store is a programming error, said at once."""
        with pytest.raises(ValueError, match="spill store"):
            HostStates(max_in_memory=5)

    def test_spoofed_syslog_hosts_stay_bounded(self, spill: SpillFile) -> None:
        """Thousands of made-up syslog host names keep at most the bound in memory; every event comes out."""
        states = HostStates(max_in_memory=100, spill=spill)
        lines = [
            RawLine(
                f"<38>Nov 27 08:00:01 fake{n} sshd[{n}]: Accepted password for root from 192.0.2.1 port 22 ssh2",
                received=1.8e9,
            )
            for n in range(5000)
        ]
        pipeline = Pipeline(load_config(environ={}))
        outputs = asyncio.run(pipeline.complete(pipeline.syslog_lines(lines, states), states))
        assert len({doc["host"]["name"] for doc in outputs.events}) == 5000
        assert len(states.in_memory()) <= 100
        assert len(spill) == 5000 - len(states.in_memory())
        pipeline.collect_state_counters(states)
        assert pipeline.stats.hosts["spilled"] >= 4900
