"""Thin agents over the internal by-host topics: take a batch, hand it to the runtime, which calls the
graph, sends and acks. (The raw topics are read by :mod:`streams.worker.router`, below Faust.)

Each agent reads with ``noack_take`` so that acks are manual: the runtime acks an internal audit record
only once the event it belongs to has been sent.
"""

from __future__ import annotations

from typing import Any

from streams.config import SecstreamConfig
from streams.worker.runtime import WorkerRuntime
from streams.worker.topics import WorkerTopics

__all__ = ["register_agents"]


def register_agents(app: Any, topics: WorkerTopics, runtime: WorkerRuntime, config: SecstreamConfig) -> None:
    """Register the two processing agents and the tick timer on the app (outputs are declared by the runtime).

    Args:
        app: the Faust app.
        topics: the declared topics.
        runtime: the driver core.
        config: batch size and wait.
    """
    size, within = config.worker.batch_size, config.worker.batch_within_s

    async def process_auditd(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.audit_batch(events)

    async def process_syslog(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.syslog_batch(events)

    interval = max(0.2, min(1.0, config.coalescer.idle_flush_s / 2))

    async def tick() -> None:
        await runtime.tick()

    app.agent(topics.auditd_by_host, name="secstream.process_auditd")(process_auditd)
    app.agent(topics.syslog_by_host, name="secstream.process_syslog")(process_syslog)
    app.timer(interval=interval)(tick)
