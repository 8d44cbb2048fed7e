"""Several worker processes under one ``secstream worker`` (``worker.processes``).

Python runs one stage graph per core: a single worker process kept one core busy while the other core of a
2-core machine sat nearly idle (``bench/bench_worker.py``). Like Kafka Streams' ``num.stream.threads``, one
worker can therefore run several members of its consumer groups, here as processes: each is a complete
worker (:func:`streams.worker.run_worker`) that gets its share of the partitions, so state, delivery and
rebalances work exactly as between separate workers. Process ``i`` serves ``/healthz`` and ``/metrics``
on ``web_port + i`` and keeps Faust's data under ``<data_dir>/<i>``.

The parent only supervises: it forwards SIGTERM and SIGINT to every member (each flushes and commits;
one still running :data:`STOP_GRACE_S` later is killed), and if a member dies on its own it stops the
others and exits with the member's failure, so that the service manager restarts the whole worker.
Members are killed with the parent (``PR_SET_PDEATHSIG`` on Linux): a ``kill -9`` of the parent is a crash
of the whole worker, after which its records are read again, and leaves no orphan consuming in the group.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from streams.config import SecstreamConfig
from streams.logging import configure_logging, get_logger

__all__ = ["member_config", "process_count", "run_worker_processes"]

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 60.0
"""How long members may take to flush and commit after SIGTERM before they are killed."""


def process_count(config: SecstreamConfig) -> int:
    """``worker.processes``, where 0 means one per CPU this process may run on."""
    wanted = config.worker.processes
    if wanted > 0:
        return wanted
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def member_config(config: SecstreamConfig, index: int) -> SecstreamConfig:
    """The configuration of member ``index``: one process, its own web port and Faust data directory."""
    worker = config.worker
    base = Path(worker.data_dir) if worker.data_dir else Path(tempfile.gettempdir()) / f"secstream-{worker.app_id}"
    return replace(
        config,
        worker=replace(worker, processes=1, web_port=worker.web_port + index, data_dir=str(base / str(index))),
    )


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return


def _member(config: SecstreamConfig, index: int, log_level: str) -> None:
    _die_with_parent()
    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which forwards one SIGTERM
    configure_logging(log_level)
    structlog.contextvars.bind_contextvars(member=index)
    Path(config.worker.data_dir).mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    from streams.worker import run_worker

    sys.exit(run_worker(config, log_level=log_level))


def run_worker_processes(config: SecstreamConfig, count: int, *, log_level: str = "INFO") -> int:
    """Run ``count`` worker processes until SIGTERM or SIGINT, or until one of them fails.

    Returns:
        0 when every member stopped cleanly after a signal; else the first failed member's exit code
        (1 when it was killed by a signal).
    """
    members: list[BaseProcess] = []
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        del frame
        stopping = True
        for process in members:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        log.info("worker.stopping", signal=signal.Signals(signum).name)

    previous: dict[int, Any] = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    context = multiprocessing.get_context("spawn")
    for index in range(count):
        if stopping:  # signalled while starting them: the ones started are stopping already
            break
        member = member_config(config, index)
        started = context.Process(target=_member, args=(member, index, log_level), name=f"secstream-worker-{index}")
        started.start()
        members.append(started)
    log.info("worker.processes", count=count, pids=[p.pid for p in members], first_web_port=config.worker.web_port)
    failure = 0
    deadline: float | None = None
    try:
        running = list(members)
        while running:
            if stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                for process in running:
                    log.error("worker.member_killed", member=members.index(process), grace_s=STOP_GRACE_S)
                    process.kill()
                deadline = math.inf
            for sentinel in wait([p.sentinel for p in running], timeout=1.0):
                done = next(p for p in running if p.sentinel == sentinel)
                done.join()
                running.remove(done)
                code = done.exitcode or 0
                if stopping and code == -signal.SIGTERM:  # signalled before its worker had set up handlers
                    code = 0
                if code != 0 and failure == 0:
                    failure = code if code > 0 else 1
                if not stopping:  # a member died on its own: stop the rest, let the service manager restart us
                    log.error("worker.member_exited", member=members.index(done), exit_code=code)
                    forward(signal.SIGTERM, None)
                    failure = failure or 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return failure
