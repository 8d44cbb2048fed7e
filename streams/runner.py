"""The embedded runner: the stage graph in one process, on files or stdin, with no broker.

A reader task per input feeds bounded queues with batches of lines; one processing task takes the
batches in a fixed order (audit batch, then syslog batch, and so on), so the same input always gives
the same output. Wall-clock idle flushes happen only for live input (stdin); for files, in-flight
events are flushed at the end of input.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from schemas.codecs import dumps_line
from streams.graph import HostStates, Outputs, Pending, Pipeline, PipelineStats, RawLine
from streams.spill import SpillFile

__all__ = ["InputSpec", "OutputSink", "RunResult", "run_pipeline"]

_STDIN = "-"
_SENTINEL: Any = object()


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input: a path (plain or gzip) or ``-`` for stdin, and which stream it feeds."""

    path: str
    stream: str  # "auditd" or "syslog"

    @property
    def live(self) -> bool:
        return self.path == _STDIN


def _open_binary(path: str) -> BinaryIO:
    if path == _STDIN:
        return sys.stdin.buffer
    with Path(path).open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return Path(path).open("rb")


class OutputSink:
    """Where documents go: three JSON-lines files in a directory, or one stream (stdout).

    Args:
        out_dir: the directory for ``events.jsonl``, ``detections.jsonl`` and ``deadletter.jsonl``;
            None writes every document to ``stream``.
        stream: the binary stream used when ``out_dir`` is None.
    """

    def __init__(self, out_dir: Path | None, stream: IO[bytes] | None = None) -> None:
        self._files: list[IO[bytes]] = []
        if out_dir is None:
            target = stream if stream is not None else sys.stdout.buffer
            self.events = self.detections = self.deadletters = target
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.events = self._open(out_dir / "events.jsonl")
            self.detections = self._open(out_dir / "detections.jsonl")
            self.deadletters = self._open(out_dir / "deadletter.jsonl")

    def _open(self, path: Path) -> IO[bytes]:
        handle = path.open("wb")
        self._files.append(handle)
        return handle

    def write(self, outputs: Outputs) -> None:
        for target, docs in (
            (self.events, outputs.events),
            (self.detections, outputs.detections),
            (self.deadletters, outputs.deadletters),
        ):
            if docs:
                target.write(b"".join(dumps_line(doc) for doc in docs))

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        if not self._files:
            self.events.flush()


@dataclass(slots=True)
class RunResult:
    """What a run did: the pipeline's counters and how long it took."""

    stats: PipelineStats
    seconds: float
    inputs: list[InputSpec] = field(default_factory=list)


async def _read_batches(
    spec: InputSpec, batch_lines: int, progress: Callable[[int], None]
) -> AsyncIterator[list[RawLine]]:
    handle = _open_binary(spec.path)
    loop = asyncio.get_running_loop()
    source_name = "stdin" if spec.live else spec.path
    line_no = 0
    try:
        while True:
            # Reading is blocking I/O: do it off the event loop so enrichment keeps running.
            chunk: list[bytes] = await loop.run_in_executor(None, _read_lines, handle, batch_lines)
            if not chunk:
                return
            batch = []
            now = time.time()
            for raw in chunk:
                line_no += 1
                progress(len(raw))
                line = raw.rstrip(b"\r\n")
                if line.strip():
                    batch.append(RawLine(line, {"file": source_name, "line": line_no}, None, now))
            yield batch
    finally:
        if not spec.live:
            handle.close()


def _read_lines(handle: BinaryIO, count: int) -> list[bytes]:
    lines = []
    for _ in range(count):
        line = handle.readline()
        if not line:
            break
        lines.append(line)
    return lines


async def _feed(spec: InputSpec, queue: asyncio.Queue[Any], batch_lines: int, progress: Callable[[int], None]) -> None:
    try:
        async for batch in _read_batches(spec, batch_lines, progress):
            await queue.put(batch)
    finally:
        await queue.put(_SENTINEL)


async def run_pipeline(
    pipeline: Pipeline,
    inputs: list[InputSpec],
    sink: OutputSink,
    *,
    batch_lines: int = 2000,
    queue_batches: int = 4,
    tick_every_s: float = 1.0,
    progress: Callable[[int], None] = lambda _n: None,
) -> RunResult:
    """Run the stage graph over the inputs and write every output document to the sink.

    Args:
        pipeline: the stage graph.
        inputs: the inputs; batches are taken from them in turn, in this order.
        sink: where documents go.
        batch_lines: lines per batch.
        queue_batches: bound of each input's queue (backpressure on the readers).
        tick_every_s: how often live inputs get the wall-clock idle flush.
        progress: called with the byte count of every line read (for a progress bar).
    """
    started = time.monotonic()
    spill = SpillFile()
    states = HostStates(pipeline.config.input.max_hosts_in_memory, spill)
    queues: list[tuple[InputSpec, asyncio.Queue[Any]]] = []
    readers = []
    for spec in inputs:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_batches)
        queues.append((spec, queue))
        readers.append(asyncio.create_task(_feed(spec, queue, batch_lines, progress)))
    live = any(spec.live for spec in inputs)
    last_tick = time.monotonic()
    try:
        active = list(queues)
        while active:
            for entry in list(active):
                spec, queue = entry
                if live:
                    try:
                        batch = await asyncio.wait_for(queue.get(), timeout=tick_every_s)
                    except TimeoutError:
                        batch = []
                else:
                    batch = await queue.get()
                if batch is _SENTINEL:
                    active.remove(entry)
                    continue
                if spec.stream == "auditd":
                    pending = pipeline.audit_lines(batch, states)
                else:
                    pending = pipeline.syslog_lines(batch, states)
                if live and time.monotonic() - last_tick >= tick_every_s:
                    pending.extend(pipeline.tick(states, time.time()))
                    last_tick = time.monotonic()
                await _complete(pipeline, pending, states, sink)
        await _complete(pipeline, pipeline.shutdown(states), states, sink)
        pipeline.collect_state_counters(states)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        spill.close()
    return RunResult(stats=pipeline.stats, seconds=time.monotonic() - started, inputs=inputs)


async def _complete(pipeline: Pipeline, pending: Pending, states: HostStates, sink: OutputSink) -> None:
    if pending.events or pending.deadletters:
        sink.write(await pipeline.complete(pending, states))
