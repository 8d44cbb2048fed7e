"""The Faust worker on a real Kafka broker: same output as ``secstream run``, crashes, rebalances, poison, EOS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.dev.deployment import DevDeployment, create_topics

sys.path.insert(0, str(Path(__file__).parent))
from worker_harness import (
    collect,
    hosts_spanning,
    leave_open_transaction,
    partition_of,
    produce,
    reference_events,
    stable,
    with_node,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def audit_lines(msticpy_testdata: Path) -> list[bytes]:
    """msticpy's auditd log, one line per record."""
    return [line for line in (msticpy_testdata / "auditd_log.txt").read_bytes().splitlines() if line.strip()]


def _env(kafka_bootstrap: str, tmp_path: Path, guarantee: str = "at_least_once") -> Iterator[DevDeployment]:
    settings: dict[str, dict[str, Any]] = {
        "worker": {"processing_guarantee": guarantee, "batch_size": 200, "batch_within_s": 0.2},
        "coalescer": {"idle_flush_s": 2.0},
        "enrichment": {"enabled": False},
    }
    env = DevDeployment(kafka_bootstrap, tmp_path, prefix="it", settings=settings)
    asyncio.run(create_topics(kafka_bootstrap, env.topics, env.partitions))
    try:
        yield env
    finally:
        env.stop_all(graceful=False)


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[DevDeployment]:
    """An isolated at-least-once deployment (own app id and topics); its workers are killed at the end."""
    yield from _env(kafka_bootstrap, tmp_path)


def _corpus(lines: list[bytes], hosts: list[str]) -> dict[str, list[bytes]]:
    return {host: with_node(lines, host) for host in hosts}


def _records(corpus: dict[str, list[bytes]], start: float = 0.0, stop: float = 1.0) -> list[tuple[bytes, bytes]]:
    out = []
    for host, lines in corpus.items():
        lo, hi = int(len(lines) * start), int(len(lines) * stop)
        out.extend((host.encode(), line) for line in lines[lo:hi])
    return out


def _reference(env: DevDeployment, corpus: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    expected: dict[str, dict[str, Any]] = {}
    for lines in corpus.values():
        expected.update(reference_events(env.config_path(), lines))
    return expected


def _events(env: DevDeployment, want: set[str], timeout: float, **kwargs: Any) -> list[dict[str, Any]]:
    def alive() -> None:
        for proc in env.procs:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{env.logs()}")

    return asyncio.run(
        collect(
            env.bootstrap,
            env.events,
            lambda docs: want <= {d["event"]["id"] for d in docs},
            timeout,
            alive=alive,
            **kwargs,
        )
    )


def _missing(docs: list[dict[str, Any]], want: set[str]) -> set[str]:
    return want - {d["event"]["id"] for d in docs}


class TestWorkerOutputs:
    @pytest.fixture
    def run_and_worker(
        self, env: DevDeployment, audit_lines: list[bytes]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The embedded runner's events and the worker's events for the same multi-host corpus."""
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus)))
        env.start_worker()
        docs = _events(env, set(expected), timeout=90)
        return expected, {d["event"]["id"]: d for d in docs}

    def test_same_event_ids_as_run(
        self, env: DevDeployment, run_and_worker: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        """The worker emits exactly the event ids the embedded runner emits on the same lines."""
        expected, got = run_and_worker
        assert set(got) == set(expected), env.logs()

    def test_same_documents_as_run(
        self, env: DevDeployment, run_and_worker: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        """Every worker document equals the runner's, apart from processing timestamps."""
        expected, got = run_and_worker
        differing = [i for i in expected if i in got and stable(got[i]) != stable(expected[i])]
        assert not differing, orjson.dumps([stable(got[differing[0]]), stable(expected[differing[0]])]).decode()

    def test_poison_goes_to_dead_letters(self, env: DevDeployment, audit_lines: list[bytes]) -> None:
        """Undecodable values become dead letters with original bytes and source; later input still flows.
        Two are near the 1 MB record limit, so their dead letters would be twice that: they keep the start
        of their input and its digest (one is refused by the route stage, one by the audit parser)."""
        poison = [b'{"message": 5}', b'{"broken json', b"type=NOPE garbage without header"]
        large = [b'{"broken json' + b"j" * 900_000, b"type=NOPE " + b"x" * 900_000]
        good = with_node(audit_lines[:60], "hostp")
        records: list[tuple[bytes | None, bytes]] = [(None, value) for value in poison + large]
        records += [(b"hostp", line) for line in good]
        asyncio.run(produce(env.bootstrap, env.raw_auditd, records))
        env.start_worker()
        expected = reference_events(env.config_path(), good)
        dead = asyncio.run(collect(env.bootstrap, env.deadletter, lambda d: len(d) >= len(poison + large), 60))
        originals = {
            d["secstream"]["original_sha256"]
            if d["secstream"].get("original_truncated")
            else base64.b64decode(d["secstream"]["original_base64"])
            for d in dead
        }
        assert set(poison) | {hashlib.sha256(value).hexdigest() for value in large} <= originals, env.logs()
        for doc in dead:
            assert {"topic", "partition", "offset"} <= set(doc["secstream"]["source"])
            assert doc["secstream"]["source"]["topic"] == env.raw_auditd
        docs = _events(env, set(expected), timeout=60)
        assert not _missing(docs, set(expected)), env.logs()


class TestWorkerFailures:
    def test_kill_9_loses_nothing(self, env: DevDeployment, audit_lines: list[bytes]) -> None:
        """kill -9 mid-stream then restart: every event is emitted, with the lineage of a clean run."""
        env.settings["coalescer"]["idle_flush_s"] = 30.0  # in-flight events stay held (unacked) at the time of the kill
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.0, 0.5)))
        first, _ = env.start_worker()
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= 50, 60))
        env.kill(first)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.5, 1.0)))
        env.settings["coalescer"]["idle_flush_s"] = 2.0
        env.start_worker()
        docs = _events(env, set(expected), timeout=120)
        assert not _missing(docs, set(expected)), env.logs()
        last = {d["event"]["id"]: d for d in docs}
        wrong = [
            i
            for i, ref in expected.items()
            if last[i].get("process", {}).get("parent") != ref.get("process", {}).get("parent")
        ]
        assert not wrong, (last[wrong[0]], expected[wrong[0]])

    def test_sigterm_flushes_and_commits(self, env: DevDeployment, audit_lines: list[bytes]) -> None:
        """SIGTERM flushes in-flight events, commits and exits 0; a restart does not start over."""
        env.settings["coalescer"]["idle_flush_s"] = 30.0
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus)))
        first, _ = env.start_worker()
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= len(expected) * 0.5, 60))
        assert env.terminate(first) == 0, env.logs()
        env.settings["coalescer"]["idle_flush_s"] = 2.0
        env.start_worker()
        docs = _events(env, set(expected), timeout=90)
        assert not _missing(docs, set(expected)), env.logs()
        assert len(docs) < 1.1 * len(expected), "the restarted worker re-read input committed before SIGTERM"

    def test_rebalance_two_workers(self, env: DevDeployment, audit_lines: list[bytes]) -> None:
        """A second worker joins mid-stream; after the rebalance every event is still emitted."""
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions, per_partition=2))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.0, 0.4)))
        env.start_worker()
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= 50, 60))
        env.start_worker()
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.4, 0.7)))
        asyncio.run(collect(env.bootstrap, env.events, lambda d: False, 8))
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.7, 1.0)))
        docs = _events(env, set(expected), timeout=120)
        assert not _missing(docs, set(expected)), env.logs()
        assert all(p.poll() is None for p in env.procs), env.logs()


def _no_duplicates(docs: list[dict[str, Any]], what: str) -> None:
    counts = Counter(d["event"]["id"] for d in docs)
    dupes = [i for i, n in counts.items() if n > 1]
    assert not dupes, f"{len(dupes)} duplicated {what} ids, e.g. {dupes[:3]}"


class TestExactlyOnce:
    @pytest.fixture
    def eos_env(self, kafka_bootstrap: str, tmp_path: Path) -> Iterator[DevDeployment]:
        """An exactly-once deployment."""
        yield from _env(kafka_bootstrap, tmp_path, guarantee="exactly_once")

    def _check(self, env: DevDeployment, expected: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        docs = _events(env, set(expected), timeout=120, read_committed=True)
        assert not _missing(docs, set(expected)), env.logs()
        _no_duplicates(docs, "event")
        # everything committed is in: read the topics to their end once more, committed data only
        docs = asyncio.run(collect(env.bootstrap, env.events, lambda d: False, 3, read_committed=True))
        _no_duplicates(docs, "event")
        detections = asyncio.run(collect(env.bootstrap, env.detections, lambda d: False, 2, read_committed=True))
        _no_duplicates(detections, "detection")
        return docs

    def test_no_duplicates_after_kill_9(self, eos_env: DevDeployment, audit_lines: list[bytes]) -> None:
        """kill -9 mid-stream and restart: every event is out once; the dead owner's open transaction is aborted."""
        env = eos_env
        env.settings["coalescer"]["idle_flush_s"] = (
            30.0  # in-flight events sit in the committed host state at the time of the kill
        )
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.0, 0.5)))
        first, _ = env.start_worker()
        # mid-stream: half of the produced events are committed, the worker is still processing
        half = len(expected) // 4
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= half, 60, read_committed=True))
        env.kill(first)
        # as if the kill had hit a transaction of partition 0: an output and a host snapshot left open
        host = next(h for h in corpus if partition_of(h, env.partitions) == 0)
        zombie = [
            (env.events, 0, host.encode(), orjson.dumps({"event": {"id": "zombie"}})),
            (f"{env.app_id}-hoststate-changelog", 0, host.encode(), b"not a snapshot"),
        ]
        asyncio.run(leave_open_transaction(env.bootstrap, f"{env.app_id}-{env.app_id}-auditd-by-host-0", zombie))
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.5, 1.0)))
        env.settings["coalescer"]["idle_flush_s"] = 2.0
        env.start_worker()
        docs = self._check(env, expected)
        assert "zombie" not in {d["event"]["id"] for d in docs}
        last = {d["event"]["id"]: d for d in docs}
        wrong = [
            i
            for i, ref in expected.items()
            if last[i].get("process", {}).get("parent") != ref.get("process", {}).get("parent")
        ]
        assert not wrong, (last[wrong[0]], expected[wrong[0]])

    def test_rebalance_two_workers_no_duplicates(self, eos_env: DevDeployment, audit_lines: list[bytes]) -> None:
        """A second worker joins mid-stream: partitions change owner, every event is out exactly once."""
        env = eos_env
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions, per_partition=2))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.0, 0.4)))
        env.start_worker()
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= 50, 60, read_committed=True))
        env.start_worker()
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.4, 0.7)))
        asyncio.run(collect(env.bootstrap, env.events, lambda d: False, 8, read_committed=True))
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.7, 1.0)))
        self._check(env, expected)
        assert all(p.poll() is None for p in env.procs), env.logs()
        assert "auditd-by-host" in env.worker_log(2).read_text(), "the second worker took no partition"

    def test_sigterm_then_restart_no_duplicates(self, eos_env: DevDeployment, audit_lines: list[bytes]) -> None:
        """SIGTERM mid-stream exits 0 without flushing partials; the restarted worker completes every event once."""
        env = eos_env
        env.settings["coalescer"]["idle_flush_s"] = 30.0
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.0, 0.5)))
        first, _ = env.start_worker()
        half = len(expected) // 4
        asyncio.run(collect(env.bootstrap, env.events, lambda d: len(d) >= half, 60, read_committed=True))
        assert env.terminate(first) == 0, env.logs()
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus, 0.5, 1.0)))
        env.settings["coalescer"]["idle_flush_s"] = 2.0
        env.start_worker()
        docs = self._check(env, expected)
        partial = {d["event"]["id"] for d in docs if d.get("auditd", {}).get("partial")}
        partial -= {i for i, d in expected.items() if d.get("auditd", {}).get("partial")}
        assert not partial, f"{len(partial)} events flushed as partial, e.g. {sorted(partial)[:3]}"


def _log_records(env: DevDeployment, number: int) -> list[dict[str, Any]]:
    """The JSON log lines of the ``number``-th worker the deployment started."""
    records = []
    for line in env.worker_log(number).read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # Faust's own plain-text lines
        if isinstance(record, dict):
            records.append(record)
    return records


def _member_pids(env: DevDeployment) -> list[int]:
    """The member pids the first worker's parent logs once it has started them (empty after 30 s)."""
    for _ in range(300):
        started = [r for r in _log_records(env, 1) if r.get("event") == "worker.processes"]
        if started:
            return list(started[0]["pids"])
        time.sleep(0.1)
    return []


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}  # exited, waiting to be reaped by whoever adopted it


class TestWorkerProcesses:
    def test_two_processes_share_the_partitions_and_stop_on_sigterm(
        self, env: DevDeployment, audit_lines: list[bytes]
    ) -> None:
        """One worker with ``processes = 2``: both members get partitions, every event is out, SIGTERM exits 0."""
        env.settings["worker"]["processes"] = 2
        corpus = _corpus(audit_lines, hosts_spanning(env.partitions))
        expected = _reference(env, corpus)
        asyncio.run(produce(env.bootstrap, env.raw_auditd, _records(corpus)))
        worker, _ = env.start_worker()
        docs = _events(env, set(expected), timeout=120)
        assert not _missing(docs, set(expected)), env.logs()
        assert env.terminate(worker, timeout=60) == 0, env.logs()
        routed = {r["member"] for r in _log_records(env, 1) if r.get("event") == "route.assigned" and r["partitions"]}
        assert routed == {0, 1}, env.logs()

    def test_sigterm_while_members_start_exits_0(self, env: DevDeployment) -> None:
        """SIGTERM as soon as the parent has started its members (before their own handlers are set up):
        every member stops, and the parent exits 0."""
        env.settings["worker"]["processes"] = 2
        worker, _ = env.start_worker()
        assert len(_member_pids(env)) == 2, env.logs()
        assert env.terminate(worker, timeout=45) == 0, env.logs()

    def test_kill_9_of_the_parent_takes_the_members_down(self, env: DevDeployment) -> None:
        """No member is left consuming in the group when the supervising process is killed."""
        env.settings["worker"]["processes"] = 2
        worker, _ = env.start_worker()
        pids = _member_pids(env)
        assert len(pids) == 2, env.logs()
        time.sleep(3)  # the members are up and in their groups
        assert not any(_gone(pid) for pid in pids), env.logs()
        env.kill(worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_gone(pid) for pid in pids):
            time.sleep(0.2)
        assert all(_gone(pid) for pid in pids), env.logs()
