"""Thin agents: take a batch, hand it to the runtime, which calls the graph, sends and acks.

Each agent reads with ``noack_take`` so that acks are manual: the runtime acks a raw record once its
lines are routed, and an internal audit record only once the event it belongs to has been sent.
"""

from __future__ import annotations

from typing import Any

from streams.config import SecstreamConfig
from streams.worker.runtime import WorkerRuntime
from streams.worker.topics import WorkerTopics

__all__ = ["register_agents"]


def register_agents(app: Any, topics: WorkerTopics, runtime: WorkerRuntime, config: SecstreamConfig) -> None:
    """Register the four agents and the tick timer on the app (outputs are declared by the runtime).

    Args:
        app: the Faust app.
        topics: the declared topics.
        runtime: the driver core.
        config: batch size and wait.
    """
    size, within = config.worker.batch_size, config.worker.batch_within_s

    async def route_auditd(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.route_batch("auditd", events)

    async def route_syslog(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.route_batch("syslog", events)

    async def process_auditd(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.audit_batch(events)

    async def process_syslog(stream: Any) -> None:
        async for events in stream.noack_take(size, within=within):
            await runtime.syslog_batch(events)

    interval = max(0.2, min(1.0, config.coalescer.idle_flush_s / 2))

    async def tick() -> None:
        await runtime.tick()

    app.agent(topics.raw_auditd, name="secstream.route_auditd")(route_auditd)
    app.agent(topics.raw_syslog, name="secstream.route_syslog")(route_syslog)
    app.agent(topics.auditd_by_host, name="secstream.process_auditd")(process_auditd)
    app.agent(topics.syslog_by_host, name="secstream.process_syslog")(process_syslog)
    app.timer(interval=interval)(tick)
