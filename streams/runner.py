"""The embedded runner: the stage graph in one process, on files or stdin, with no broker.

A reader per input feeds a bounded queue with batches of lines; one processing task takes the batches
in a fixed order (audit batch, then syslog batch, and so on), so the same input always gives the same
output. Files are read in batches of ``batch_lines``; live input (stdin) in batches of what arrived
within ``live_batch_s``, each processed at once, and wall-clock idle flushes run for it; for files,
in-flight events are flushed at the end of input.

No line is held in memory beyond ``input.max_line_bytes``: a longer line keeps its head (a dead letter
with its size and SHA-256) and the rest is skipped up to the next newline. An input that ends badly (a
truncated or corrupt gzip file) is processed up to the damage and reported in :attr:`RunResult.input_errors`.
Output is written in whole lines: a failed write (disk full, a closed pipe) is cut back to the last
complete line and raised as :class:`OutputError`. SIGTERM and SIGINT stop reading, flush what is in
flight and end the run normally (:attr:`RunResult.stopped_by`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import os
import queue
import signal
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from schemas.codecs import dumps_line
from streams.graph import HostStates, Outputs, Pending, Pipeline, PipelineStats, RawLine
from streams.spill import SpillFile

__all__ = ["InputSpec", "OutputError", "OutputSink", "RunResult", "run_pipeline"]

_STDIN = "-"
_SENTINEL: Any = object()
_WAKE: Any = object()  # put into a queue by a signal handler so that a waiting consumer sees the stop
_SKIP_CHUNK = 1 << 16


class OutputError(Exception):
    """Output cannot be written (disk full, a closed pipe, no permission): one line naming the file."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input: a path (plain or gzip, a file or a named pipe) or ``-`` for stdin, and which stream it feeds."""

    path: str
    stream: str  # "auditd" or "syslog"

    @property
    def live(self) -> bool:
        """Stdin and named pipes deliver lines as they are written: they are batched by time."""
        if self.path == _STDIN:
            return True
        try:
            return Path(self.path).is_fifo()
        except OSError:
            return False


def _open_binary(path: str) -> BinaryIO:
    if path == _STDIN:
        # A reader of its own on a copy of the descriptor: the daemon thread that may still be blocked in it
        # at exit holds only this object's lock, never sys.stdin's, which the interpreter takes at shutdown.
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    if not Path(path).is_fifo():  # a pipe cannot be probed and reopened; live input is never gzip
        with Path(path).open("rb") as probe:
            if probe.read(2) == b"\x1f\x8b":
                return gzip.open(path, "rb")  # type: ignore[return-value]
    return Path(path).open("rb")


def _read_capped(handle: BinaryIO, cap: int) -> tuple[bytes, tuple[int, str] | None] | None:
    """One line of at most ``cap`` bytes (None at the end of input). A longer line gives its first ``cap``
    bytes and the (size, SHA-256) of the whole line, read through to its newline in bounded chunks."""
    line = handle.readline(cap + 1)
    if not line:
        return None
    if len(line) <= cap or line.endswith(b"\n"):
        return line, None
    digest = hashlib.sha256()
    size = 0
    chunk = line
    while chunk:
        ended = chunk.endswith(b"\n")
        body = chunk.rstrip(b"\r\n") if ended else chunk
        digest.update(body)
        size += len(body)
        if ended:
            break
        chunk = handle.readline(_SKIP_CHUNK)
    return line[:cap], (size, digest.hexdigest())


class OutputSink:
    """Where documents go: three JSON-lines files in a directory, or one stream (stdout).

    Args:
        out_dir: the directory for ``events.jsonl``, ``detections.jsonl`` and ``deadletter.jsonl``;
            None writes every document to ``stream``.
        stream: the binary stream used when ``out_dir`` is None.

    Raises:
        OutputError: ``out_dir`` is not a directory or cannot be created or written.
    """

    def __init__(self, out_dir: Path | None, stream: IO[bytes] | None = None) -> None:
        self._files: list[IO[bytes]] = []
        self._names: dict[int, str] = {}
        if out_dir is None:
            target = stream if stream is not None else sys.stdout.buffer
            self.events = self.detections = self.deadletters = target
            self._names[id(target)] = "standard output"
            return
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"--out {out_dir} is a file, not a directory")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.events = self._open(out_dir / "events.jsonl")
            self.detections = self._open(out_dir / "detections.jsonl")
            self.deadletters = self._open(out_dir / "deadletter.jsonl")
        except OSError as exc:
            self.close()
            raise OutputError(f"cannot write to {exc.filename or out_dir}: {exc.strerror or exc}") from None

    def _open(self, path: Path) -> IO[bytes]:
        # Unbuffered: every write is one batch of whole lines, so a failed one can be cut back cleanly.
        handle = path.open("wb", buffering=0)
        self._files.append(handle)
        self._names[id(handle)] = str(path)
        return handle

    def write(self, outputs: Outputs) -> None:
        """Write one batch of documents; a file never ends in a torn line.

        Raises:
            OutputError: a write failed (the file is cut back to its last complete line).
        """
        for target, docs in (
            (self.events, outputs.events),
            (self.detections, outputs.detections),
            (self.deadletters, outputs.deadletters),
        ):
            if docs:
                self._write(target, b"".join(dumps_line(doc) for doc in docs))

    def _write(self, target: IO[bytes], data: bytes) -> None:
        name = self._names.get(id(target), "output")
        if not self._files:  # a stream: whole lines cannot be promised for a pipe, only reported
            try:
                target.write(data)
                target.flush()
            except OSError as exc:
                raise OutputError(f"cannot write to {name}: {_describe(exc)}") from None
            return
        start = target.tell()
        try:
            view = memoryview(data)
            while view:
                written = target.write(view)
                view = view[written or 0 :]
        except OSError as exc:
            try:
                target.truncate(start)
                target.seek(start)
            except OSError:  # the cut itself failed: the error below still names the file
                pass
            raise OutputError(f"cannot write to {name}: {_describe(exc)}") from None

    def close(self) -> None:
        """Close the files (or flush the stream)."""
        for handle in self._files:
            handle.close()
        if not self._files and hasattr(self, "events"):
            # The reader may have gone away; OutputError was already raised for the lost writes.
            with contextlib.suppress(OSError):
                self.events.flush()


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EPIPE:
        return "the reader closed the pipe"
    return exc.strerror or str(exc)


@dataclass(slots=True)
class RunResult:
    """What a run did: the pipeline's counters, how long it took, and how it ended."""

    stats: PipelineStats
    seconds: float
    inputs: list[InputSpec] = field(default_factory=list)
    input_errors: list[str] = field(default_factory=list)
    """Inputs that ended badly (a truncated or corrupt gzip file): processed up to the damage."""
    stopped_by: str = ""
    """The signal that stopped the run early (``SIGTERM``, ``SIGINT``), or empty."""


@dataclass(slots=True)
class _Reader:
    """One input being read: its lines so far and how its end went."""

    spec: InputSpec
    cap: int
    progress: Callable[[int], None]
    line_no: int = 0
    error: str = ""
    live: bool = False

    @property
    def source_name(self) -> str:
        return "stdin" if self.spec.path == _STDIN else self.spec.path

    def raw_line(self, read: tuple[bytes, tuple[int, str] | None], now: float) -> RawLine:
        raw, whole = read
        self.line_no += 1
        self.progress(len(raw) if whole is None else whole[0])
        return RawLine(raw.rstrip(b"\r\n"), {"file": self.source_name, "line": self.line_no}, None, now, whole)

    def read_batch(self, handle: BinaryIO, count: int) -> list[tuple[bytes, tuple[int, str] | None]]:
        """Up to ``count`` lines; at damaged input, the lines before it and :attr:`error` set."""
        lines = []
        try:
            for _ in range(count):
                read = _read_capped(handle, self.cap)
                if read is None:
                    break
                lines.append(read)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            self.error = f"{self.source_name}: input ends badly after line {self.line_no + len(lines)}: {exc}"
        return lines


async def _file_batches(reader: _Reader, batch_lines: int) -> AsyncIterator[list[RawLine]]:
    loop = asyncio.get_running_loop()
    handle = _open_binary(reader.spec.path)
    try:
        while True:
            # Reading is blocking I/O: do it off the event loop so enrichment keeps running.
            chunk = await loop.run_in_executor(None, reader.read_batch, handle, batch_lines)
            if chunk:
                now = time.time()
                yield [reader.raw_line(read, now) for read in chunk]
            if not chunk or reader.error:
                return
    finally:
        handle.close()


def _take_live_batch(
    lines: queue.Queue[Any], batch_lines: int, live_batch_s: float, closing: threading.Event
) -> tuple[list[Any], bool]:
    """The lines that arrive within ``live_batch_s`` of the first one (waiting for that one until
    ``closing``), and whether the input has ended."""
    batch: list[Any] = []
    while not batch:
        if closing.is_set():
            return batch, True
        try:
            item = lines.get(timeout=0.25)
        except queue.Empty:
            continue
        if item is _SENTINEL:
            return batch, True
        batch.append(item)
    deadline = time.monotonic() + live_batch_s
    while len(batch) < batch_lines:
        try:
            item = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item is _SENTINEL:
            return batch, True
        batch.append(item)
    return batch, False


async def _live_batches(
    reader: _Reader, batch_lines: int, live_batch_s: float, closing: threading.Event
) -> AsyncIterator[list[RawLine]]:
    """Batches of whatever arrived within ``live_batch_s`` of a batch's first line.

    A daemon thread reads, because a read from a terminal or a pipe cannot be interrupted: at a signal
    the run ends without waiting for the writer's next line.
    """
    lines: queue.Queue[Any] = queue.Queue(maxsize=batch_lines)  # one batch ahead: bounded memory
    handle = _open_binary(reader.spec.path)

    def pump() -> None:
        try:
            while not closing.is_set():
                chunk = reader.read_batch(handle, 1)
                if not chunk:
                    break
                lines.put(chunk[0])
        finally:
            lines.put(_SENTINEL)

    threading.Thread(target=pump, name=f"secstream-read-{reader.source_name}", daemon=True).start()
    loop = asyncio.get_running_loop()
    ended = False
    while not ended:
        chunk, ended = await loop.run_in_executor(None, _take_live_batch, lines, batch_lines, live_batch_s, closing)
        if chunk:
            now = time.time()
            yield [reader.raw_line(read, now) for read in chunk]


async def _feed(
    reader: _Reader, batches: asyncio.Queue[Any], batch_lines: int, live_batch_s: float, closing: threading.Event
) -> None:
    """Read one input into its queue; an input that cannot be read is reported, never raised."""
    try:
        source = (
            _live_batches(reader, batch_lines, live_batch_s, closing)
            if reader.live
            else _file_batches(reader, batch_lines)
        )
        async for batch in source:
            await batches.put(batch)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an input that cannot be opened or read ends only itself, and is reported
        reader.error = f"{reader.source_name}: cannot be read: {exc}"
    await batches.put(_SENTINEL)


async def run_pipeline(
    pipeline: Pipeline,
    inputs: list[InputSpec],
    sink: OutputSink,
    *,
    batch_lines: int = 2000,
    queue_batches: int = 4,
    tick_every_s: float = 1.0,
    live_batch_s: float = 0.2,
    progress: Callable[[int], None] = lambda _n: None,
    handle_signals: bool = False,
) -> RunResult:
    """Run the stage graph over the inputs and write every output document to the sink.

    Args:
        pipeline: the stage graph.
        inputs: the inputs; batches are taken from them in turn, in this order.
        sink: where documents go.
        batch_lines: most lines per batch.
        queue_batches: bound of each input's queue (backpressure on the readers).
        tick_every_s: how often live inputs get the wall-clock idle flush.
        live_batch_s: longest a live input's line waits for others to share its batch.
        progress: called with the byte count of every line read (for a progress bar).
        handle_signals: SIGTERM and SIGINT stop reading, flush and end the run (the command line sets it).

    Raises:
        OutputError: output could not be written.
    """
    started = time.monotonic()
    spill = SpillFile()
    states = HostStates(pipeline.config.input.max_hosts_in_memory, spill)
    cap = pipeline.config.input.max_line_bytes
    queues: list[tuple[_Reader, asyncio.Queue[Any]]] = []
    tasks = []
    closing = threading.Event()
    for spec in inputs:
        batches: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_batches)
        reader = _Reader(spec, cap, progress, live=spec.live)
        queues.append((reader, batches))
        tasks.append(asyncio.create_task(_feed(reader, batches, batch_lines, live_batch_s, closing)))
    live = any(reader.live for reader, _q in queues)
    stopped: list[str] = []
    installed = _install_signal_handlers(stopped, [q for _r, q in queues]) if handle_signals else []
    last_tick = time.monotonic()
    try:
        active = list(queues)
        while active and not stopped:
            for entry in list(active):
                reader, batches = entry
                batch = await _next_batch(batches, tick_every_s if live else None)
                if stopped:
                    break
                if batch is _SENTINEL:
                    active.remove(entry)
                    continue
                if batch is _WAKE:
                    continue
                pending = _run_batch(pipeline, reader, batch, states)
                if live and time.monotonic() - last_tick >= tick_every_s:
                    pending.extend(pipeline.tick(states, time.time()))
                    last_tick = time.monotonic()
                await _complete(pipeline, pending, states, sink)
        await _complete(pipeline, pipeline.shutdown(states), states, sink)
        pipeline.collect_state_counters(states)
    finally:
        closing.set()
        loop = asyncio.get_running_loop()
        for signum in installed:
            loop.remove_signal_handler(signum)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        spill.close()
    return RunResult(
        stats=pipeline.stats,
        seconds=time.monotonic() - started,
        inputs=inputs,
        input_errors=[reader.error for reader, _q in queues if reader.error],
        stopped_by=stopped[0] if stopped else "",
    )


async def _next_batch(batches: asyncio.Queue[Any], wait_s: float | None) -> Any:
    """The next batch; with ``wait_s`` (live input), an empty one when none came in that time, so that the
    wall-clock idle flush still runs."""
    if wait_s is None:
        return await batches.get()
    try:
        return await asyncio.wait_for(batches.get(), timeout=wait_s)
    except TimeoutError:
        return []


def _run_batch(pipeline: Pipeline, reader: _Reader, batch: list[RawLine], states: HostStates) -> Pending:
    if reader.spec.stream == "auditd":
        return pipeline.audit_lines(batch, states)
    return pipeline.syslog_lines(batch, states, replay=not reader.live)


def _install_signal_handlers(stopped: list[str], batch_queues: list[asyncio.Queue[Any]]) -> list[int]:
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        if not stopped:
            stopped.append(signum.name)
        for batches in batch_queues:  # wake a consumer waiting on an empty queue
            if not batches.full():
                batches.put_nowait(_WAKE)

    installed: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal here
            continue
        installed.append(signum)
    return installed


async def _complete(pipeline: Pipeline, pending: Pending, states: HostStates, sink: OutputSink) -> None:
    if pending.events or pending.deadletters:
        sink.write(await pipeline.complete(pending, states))


def stdout_gone() -> None:
    """After a closed pipe: point standard output at /dev/null so the interpreter's last flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
