"""Un-keyed raw input on a real broker: the worker's events equal ``secstream run``'s, document by document.

Log shippers send records without a key by default, so one host's lines, and one event's records, land on
every raw partition (aiokafka picks a random partition for each record without a key). Three hosts'
lines go to four raw partitions; the worker must coalesce them exactly as the embedded runner does on the
same lines, also across a ``kill -9`` mid-stream and a rebalance between two workers.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.dev.deployment import DevDeployment, create_topics

sys.path.insert(0, str(Path(__file__).parent))
from worker_harness import collect, produce, reference_events, stable, with_node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = ("alpha", "bravo", "charlie")


@pytest.fixture
def lines(msticpy_testdata: Path) -> list[bytes]:
    """msticpy's auditd log on three hosts, interleaved line by line as one relay would forward them."""
    own = [line for line in (msticpy_testdata / "auditd_log.txt").read_bytes().splitlines() if line.strip()]
    per_host = [with_node(own, host) for host in HOSTS]
    return [line for group in zip(*per_host, strict=True) for line in group]


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[DevDeployment]:
    """An at-least-once deployment with four raw (and internal) partitions."""
    settings: dict[str, dict[str, Any]] = {
        "worker": {"batch_size": 200, "batch_within_s": 0.2},
        "coalescer": {"idle_flush_s": 2.0},
        "enrichment": {"enabled": False},
    }
    deployment = DevDeployment(kafka_bootstrap, tmp_path, prefix="uk", partitions=4, settings=settings)
    asyncio.run(create_topics(kafka_bootstrap, deployment.topics, deployment.partitions))
    try:
        yield deployment
    finally:
        deployment.stop_all(graceful=False)


def _event_of(line: bytes) -> bytes:
    return line.split(b"msg=audit(", 1)[-1].split(b")", 1)[0]


def _cut(lines: list[bytes], fraction: float) -> int:
    """The first index at or after ``fraction`` of the corpus where every host starts a new event: input
    that stops in the middle of an event for longer than the idle flush is flushed as partial by any
    driver, and the embedded runner reads the file without such a pause."""
    index = int(len(lines) * fraction)
    step = len(HOSTS)
    while index < len(lines) and index >= step and _event_of(lines[index]) == _event_of(lines[index - step]):
        index += 1
    return index - index % step if index < len(lines) else len(lines)


def _unkeyed(lines: list[bytes], start: float = 0.0, stop: float = 1.0) -> list[tuple[bytes | None, bytes]]:
    return [(None, line) for line in lines[_cut(lines, start) : _cut(lines, stop)]]


def _worker_events(env: DevDeployment, want: set[str], timeout: float) -> list[dict[str, Any]]:
    def alive() -> None:
        for proc in env.procs:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{env.logs()}")

    def done(docs: list[dict[str, Any]]) -> bool:
        return want <= {doc["event"]["id"] for doc in docs}

    docs = asyncio.run(collect(env.bootstrap, env.events, done, timeout, alive=alive))
    # what else comes: late fragments or partial copies would follow the last expected event
    return docs + asyncio.run(collect(env.bootstrap, env.events, lambda d: False, 3))[len(docs) :]


def _assert_same_documents(env: DevDeployment, expected: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """Every event id of the run and no other; every copy (at-least-once may repeat one) equal to the run's."""
    ids = {doc["event"]["id"] for doc in docs}
    missing, extra = set(expected) - ids, ids - set(expected)
    unexpected = [stable(doc) for doc in docs if doc["event"]["id"] in extra][:3]
    assert not missing and not extra, (len(missing), len(extra), unexpected, env.logs()[-3000:])
    differing = [doc for doc in docs if stable(doc) != stable(expected[doc["event"]["id"]])]
    assert not differing, orjson.dumps([stable(differing[0]), stable(expected[differing[0]["event"]["id"]])]).decode()


def test_unkeyed_backlog_gives_the_runs_documents(env: DevDeployment, lines: list[bytes]) -> None:
    expected = reference_events(env.config_path(), lines)
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines)))
    env.start_worker()
    _assert_same_documents(env, expected, _worker_events(env, set(expected), timeout=120))


def test_unkeyed_kill_9_mid_stream(env: DevDeployment, lines: list[bytes]) -> None:
    env.settings["coalescer"]["idle_flush_s"] = 30.0  # in-flight events are held (unacked) at the kill
    expected = reference_events(env.config_path(), lines)
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines, 0.0, 0.5)))
    first, _ = env.start_worker()
    asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= 300, 60))
    env.kill(first)
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines, 0.5, 1.0)))
    env.settings["coalescer"]["idle_flush_s"] = 2.0
    env.start_worker()
    docs = _worker_events(env, set(expected), timeout=150)
    ids = {doc["event"]["id"] for doc in docs}
    unexpected = [stable(doc) for doc in docs if doc["event"]["id"] not in expected][:3]
    assert set(expected) <= ids and ids <= set(expected), (unexpected, env.logs()[-3000:])
    last = {doc["event"]["id"]: doc for doc in docs}  # a re-read event's last copy is the restarted worker's
    differing = [i for i, doc in last.items() if stable(doc) != stable(expected[i])]
    assert not differing, orjson.dumps([stable(last[differing[0]]), stable(expected[differing[0]])]).decode()


def test_unkeyed_two_worker_rebalance(env: DevDeployment, lines: list[bytes]) -> None:
    expected = reference_events(env.config_path(), lines)
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines, 0.0, 0.4)))
    env.start_worker()
    asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= 300, 60))
    env.start_worker()
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines, 0.4, 0.7)))
    asyncio.run(collect(env.bootstrap, env.events, lambda d: False, 8))
    asyncio.run(produce(env.bootstrap, env.raw_auditd, _unkeyed(lines, 0.7, 1.0)))
    docs = _worker_events(env, set(expected), timeout=150)
    assert all(proc.poll() is None for proc in env.procs), env.logs()
    _assert_same_documents(env, expected, docs)
