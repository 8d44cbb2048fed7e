"""The Faust worker: the distributed driver of the stage graph (``secstream worker``).

Topology (topic names configurable)::

    secstream.raw.auditd ─┐ route: decode, key by host      ┌─ <app>-auditd-by-host ─┐ process: coalesce, decode,
    secstream.raw.syslog ─┘ (syslog: parse, key by host)    └─ <app>-syslog-by-host ─┘ track, enrich, detect
                                                                                         │
            secstream.events (keyed by host), secstream.detections, secstream.deadletter ◀┘
            <app>-hoststate-changelog (process trees, sessions, detectors per host)

See ``docs/worker.md`` for state, delivery guarantees and scaling out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streams.config import SecstreamConfig
from streams.worker.app import SecstreamApp, create_app

__all__ = ["SecstreamApp", "create_app", "run_worker"]


def run_worker(config: SecstreamConfig, *, log_level: str = "INFO", app: Any = None) -> int:
    """Run a worker until SIGTERM or SIGINT, then flush in-flight events, commit and return the exit code.

    Args:
        config: the configuration.
        log_level: log level of Faust's own logging.
        app: an app from :func:`create_app` (built from ``config`` when None).
    """
    import faust

    asyncio.set_event_loop(asyncio.new_event_loop())
    worker_app = app if app is not None else create_app(config)
    worker = faust.Worker(
        worker_app,
        loglevel=logging.getLevelNamesMapping().get(log_level.upper(), logging.INFO),
        quiet=True,
        redirect_stdouts=False,
    )
    # Faust's terminal spinner turns the root logger down to DEBUG so that it can spin on every record:
    # each debug call of aiokafka (one per message sent) then builds a LogRecord, ~5% of a busy worker.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
