"""Benchmark: CPU a line on the two Python hot paths, without Kafka: the worker's stages, or the whole graph.

* ``--path worker``: the bench_worker template (``--hosts`` hosts, one line per record) through
  ``WorkerRuntime.route`` and ``WorkerRuntime.audit_batch`` in batches of 1000, as the router and the
  processing agent run them, with a publisher that only counts (no broker, no Faust).
* ``--path graph``: the first ``--lines`` lines of bench_pipeline's corpus (msticpy's auditd log
  replayed 40 times over 8 hosts) through ``secstream run``'s engine (``run_pipeline``) to files.

Enrichment from the local blocklist in both. Prints CPU µs a line. With ``--callgrind`` it runs itself
under ``valgrind --tool=callgrind`` for ``--lines`` and for a tenth of them and prints the instructions a
line of the difference, which, unlike time, does not move with this VM's speed.

Run: /work/venv/bin/python bench/bench_hot_path.py --path worker|graph [--lines 100000] [--callgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from streams.build import build_pipeline
from streams.config import load_config
from streams.gcpolicy import apply_streaming_gc_policy
from streams.runner import InputSpec, OutputSink, run_pipeline
from streams.worker.runtime import WorkerRuntime
from streams.worker.tables import HostStateStore
from streams.worker.topics import TopicNames

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import bench_pipeline  # noqa: E402 - the sibling benchmarks are scripts, not a package
import bench_worker  # noqa: E402

BATCH = 1000
PARTITIONS = 4


class CountingPublisher:
    """Stands in for the Kafka publishers: counts the records and acks at once."""

    failure = None

    def __init__(self) -> None:
        self.records = 0

    async def publish(self, source: Any, records: list[Any], acks: Any, commit_offset: int | None) -> None:
        self.records += len(records)
        for ack in acks:
            ack.ack()

    async def prepare(self, sources: Any) -> dict[Any, int]:
        return {}

    async def revoke(self, sources: Any) -> None:
        return None

    async def wait_delivered(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Partition(tuple[str, int]):
    """A topic partition as Faust's consumer hands it over (``.topic``, ``.partition``)."""

    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


async def _no_changelog(partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
    return {p: {} for p in partitions}


async def worker_path(lines: int, hosts: int) -> float:
    config = load_config()
    names = TopicNames.from_config(config)
    internal = {p: Partition((names.auditd_by_host, p)) for p in range(PARTITIONS)}
    publisher = CountingPublisher()
    store = HostStateStore("changelog", _no_changelog)
    runtime = WorkerRuntime(config, build_pipeline, names, store, publisher, lambda: set(internal.values()))
    await runtime.start()
    apply_streaming_gc_policy()
    template = bench_worker.Template.load(bench_worker.DEFAULT_LOG)
    raw = [
        SimpleNamespace(topic=names.raw_auditd, partition=i % PARTITIONS, offset=i // PARTITIONS, key=host, value=line)
        for i, (host, line) in enumerate(itertools.islice(template.lines(hosts), lines))
    ]
    partitioner = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    offsets = dict.fromkeys(all_partitions, 0)
    started = time.process_time()
    for start in range(0, lines, BATCH):
        batch = raw[start : start + BATCH]
        routed = []
        for p in all_partitions:
            routed += runtime.route("auditd", [r for r in batch if r.partition == p])
        events = []
        for record in routed:
            if record.topic != names.auditd_by_host:
                continue
            p = partitioner(record.key, all_partitions, all_partitions)
            tp = internal[p]
            message = SimpleNamespace(value=record.value, headers=list(record.headers), tp=tp, offset=offsets[p])
            offsets[p] += 1
            events.append(SimpleNamespace(message=message, ack=lambda: None))
        await runtime.audit_batch(events)
    return time.process_time() - started


async def graph_path(lines: int) -> float:
    corpus = BENCH / "out" / "pipeline_audit.log"
    if not corpus.exists():  # as bench_pipeline.py writes it by default
        corpus.parent.mkdir(exist_ok=True)
        bench_pipeline.make_corpus(bench_worker.DEFAULT_LOG, corpus, 40, 8)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hot-path-"))
    source = tmp / "in.log"
    with corpus.open() as handle:
        source.write_text("".join(itertools.islice(handle, lines)))
    pipeline = await build_pipeline(load_config())
    apply_streaming_gc_policy()
    sink = OutputSink(tmp / "out")
    started = time.process_time()
    try:
        await run_pipeline(pipeline, [InputSpec(str(source), "auditd")], sink)
    finally:
        sink.close()
        await pipeline.close()
    return time.process_time() - started


def instructions(args: argparse.Namespace, lines: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--path",
        args.path,
        "--lines",
        str(lines),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : ([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("worker", "graph"), required=True)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=32, help="worker path: hosts of the template")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead of timing")
    args = parser.parse_args()
    if args.callgrind:
        small = args.lines // 10
        per_line = (instructions(args, args.lines) - instructions(args, small)) / (args.lines - small)
        print(f"{args.path} path: {per_line / 1000:.1f}k instructions a line ({args.lines} minus {small} lines)")
    else:
        if args.path == "worker":
            cpu = asyncio.run(worker_path(args.lines, args.hosts))
        else:
            cpu = asyncio.run(graph_path(args.lines))
        print(f"{args.path} path: {args.lines} lines, {1e6 * cpu / args.lines:.1f} µs of CPU a line")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
