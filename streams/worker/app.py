"""The worker's only Faust app, built from the configuration by :func:`create_app`.

Faust itself always runs at-least-once; ``worker.processing_guarantee = "exactly_once"`` switches the
output path to our own per-partition Kafka transactions (see :mod:`streams.worker.publish`), the
consumer to ``read_committed``, and turns Faust's own offset commits off: the offsets are committed
inside the transactions only, so a late Faust commit can never move a partition back or ahead of its
state. Host state is not a Faust table but our own compacted topic (:mod:`streams.worker.tables`).
Every change to Faust's behaviour is in :mod:`streams.worker.patches`, the Kafka clients in
:mod:`streams.worker.kafka`.
The raw topics are not Faust's either: :mod:`streams.worker.router` reads them with its own consumer
group (``<app id>-route``), because Faust's per-record cost is too high for one line per record.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import faust

from streams.build import build_pipeline
from streams.config import SecstreamConfig
from streams.gcpolicy import apply_streaming_gc_policy
from streams.graph import Pipeline
from streams.logging import get_logger
from streams.worker.agents import register_agents
from streams.worker.kafka import MAX_BATCH_BYTES, KafkaClients, faust_credentials
from streams.worker.metrics import register_web
from streams.worker.patches import deliver_inline, no_commits, read_committed_consumers, rewind_uncommitted
from streams.worker.publish import AtLeastOncePublisher, Publisher, TransactionalPublisher
from streams.worker.router import RawRouter, route_group
from streams.worker.runtime import WorkerRuntime
from streams.worker.tables import HostStateStore, changelog_topic_name
from streams.worker.topics import build_topics

__all__ = ["SecstreamApp", "create_app"]

log = get_logger(__name__)


class SecstreamApp(faust.App):
    """A Faust app that runs the raw router next to its agents, flushes in-flight events before Faust
    stops its consumer and commits, and answers the health check."""

    runtime: WorkerRuntime | None = None
    raw_router: RawRouter | None = None
    raw_topics: tuple[Any, ...] = ()
    """Faust topic objects of the raw inputs: declared (created when missing) before the router starts."""
    commits_in_transactions: bool = False
    """Exactly-once: offsets are committed inside our transactions only, never by Faust's consumer."""
    internal_topics: frozenset[str] = frozenset()
    """The by-host topics the agents read: rewound after a rebalance where nothing was committed."""
    started_at: float = 0.0

    async def on_start(self) -> None:
        """Build the stage graph (enrichment clients need the running loop) before agents start."""
        self.started_at = time.time()
        if self.runtime is not None:
            await self.runtime.start()
            apply_streaming_gc_policy()
        await super().on_start()

    async def on_started(self) -> None:
        """Start the raw router once the producer it sends through is running."""
        await super().on_started()
        if self.raw_router is not None:
            for topic in self.raw_topics:
                await topic.maybe_declare()
            await self.raw_router.start()

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        deliver_inline(consumer)
        if self.commits_in_transactions:
            no_commits(consumer)
        return consumer

    async def on_stop(self) -> None:
        """Stop routing (its deliveries committed), flush every in-flight event, send it and ack, then let
        Faust commit and stop."""
        if self.raw_router is not None:
            await self.raw_router.stop()
        if self.runtime is not None:
            await self.runtime.shutdown()
        await super().on_stop()

    def assigned_partitions(self) -> set[Any]:
        """The partitions Faust's consumer holds now."""
        return set(self.consumer.assignment())

    def highwater_of(self, tp: Any) -> int | None:
        """A partition's high-water mark as Faust's consumer last saw it (None before the first fetch)."""
        try:
            return int(self.consumer.highwater(tp))
        except Exception:
            return None

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: failing once outputs can no longer be acked (a restart reads them again)."""
        uptime = round(time.time() - self.started_at, 1)
        try:
            partitions = len(self.consumer.assignment())
        except Exception:
            return False, {"uptime_s": uptime}
        runtime, router = self.runtime, self.raw_router
        if runtime is None or router is None:
            return False, {"uptime_s": uptime}
        details: dict[str, Any] = {
            "partitions": partitions,
            "raw_partitions": len(router.assignment()),
            "held_acks": runtime.holds.count(),
            "uptime_s": uptime,
        }
        failure = runtime.publisher.failure or router.failure
        if failure is not None:
            return False, {"status": "failing", "delivery_failed": repr(failure), **details}
        return not runtime.stopping and not self.rebalancing, details

    def connect_rebalance_hooks(self) -> None:
        """Hand revoked and assigned partitions to the runtime, and rewind uncommitted ones."""
        self.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]
        self.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
        self.on_rebalance_complete.connect(self._rebalanced)  # type: ignore[arg-type]

    async def _revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        del sender, kwargs
        if self.runtime is not None:
            await self.runtime.revoke(revoked)

    async def _assigned(self, sender: Any, assigned: Any, **kwargs: Any) -> None:
        del sender, kwargs
        if self.runtime is not None:
            self.runtime.assign_soon(assigned)

    async def _rebalanced(self, sender: Any, **kwargs: Any) -> None:
        # Sent just before Faust seeks to the committed offsets and resumes fetching: the one moment
        # a seek cannot race a fetch in progress (seeking from on_partitions_assigned crashed
        # aiokafka's fetcher with a KeyError).
        del sender, kwargs
        tps = [tp for tp in self.consumer.assignment() if tp.topic in self.internal_topics]
        await rewind_uncommitted(self.consumer, tps)


def _faust_app(config: SecstreamConfig) -> SecstreamApp:
    """The Faust app with the worker's settings: at-least-once in Faust, short group timeouts, no web thread."""
    worker = config.worker
    data_dir = Path(worker.data_dir) if worker.data_dir else Path(tempfile.gettempdir()) / f"secstream-{worker.app_id}"
    session = worker.session_timeout_s
    return SecstreamApp(
        worker.app_id,
        broker=config.kafka.broker,
        broker_credentials=faust_credentials(config),
        store=worker.store,
        processing_guarantee="at_least_once",
        topic_partitions=config.topics.partitions,
        topic_replication_factor=1,
        broker_session_timeout=session,
        broker_heartbeat_interval=worker.heartbeat_interval_s,
        broker_request_timeout=max(40.0, session * 2),
        broker_rebalance_timeout=max(20.0, session * 2),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        web_port=worker.web_port,
        web_bind="0.0.0.0",  # noqa: S104 - health checks and Prometheus scrape from outside the container
        web_in_thread=False,
        datadir=str(data_dir),
        autodiscover=False,
        producer_acks=-1,
        producer_max_batch_size=MAX_BATCH_BYTES,
    )


def _changelog_topic(app: SecstreamApp, config: SecstreamConfig) -> Any:
    return app.topic(
        changelog_topic_name(config.worker.app_id),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=config.topics.partitions,
        internal=True,
        compacting=True,
        deleting=False,
    )


async def _declare(topics: Iterable[Any]) -> None:
    for topic in topics:
        await topic.maybe_declare()


def create_app(
    config: SecstreamConfig, *, pipeline_factory: Callable[[SecstreamConfig], Awaitable[Pipeline]] | None = None
) -> SecstreamApp:
    """Build the worker app: topics, the host-state table, the agents, the raw router and the web pages.

    Args:
        config: the validated configuration (``[kafka]``, ``[topics]``, ``[worker]`` and the stages).
        pipeline_factory: builds the stage graph at worker start (default: ``streams.build.build_pipeline``).

    Returns:
        The app; run it with :func:`streams.worker.run_worker` (or ``faust.Worker``).
    """
    worker = config.worker
    exactly_once = worker.processing_guarantee == "exactly_once"
    app = _faust_app(config)
    if exactly_once:
        read_committed_consumers()
        app.commits_in_transactions = True
    topics = build_topics(app, config)
    clients = KafkaClients(config)
    changelog = _changelog_topic(app, config)
    changelog_name = changelog.get_topic_name()
    store = HostStateStore(changelog_name, partial(clients.read_changelog, changelog_name), with_coalescer=exactly_once)

    def publisher_for(group_id: str) -> Publisher:
        if exactly_once:
            return TransactionalPublisher(group_id, clients.transactional_producer, clients.admin)
        return AtLeastOncePublisher(app)

    runtime = app.runtime = WorkerRuntime(
        config,
        pipeline_factory or build_pipeline,
        topics.names,
        store,
        publisher_for(worker.app_id),
        app.assigned_partitions,
        app.highwater_of,
        declare=partial(_declare, (*topics.outputs, changelog)),
    )
    register_agents(app, topics, runtime, config)
    names, group = topics.names, route_group(worker.app_id)
    app.raw_router = RawRouter(
        partial(clients.route_consumer, group, read_committed=exactly_once),
        {names.raw_auditd: "auditd", names.raw_syslog: "syslog"},
        runtime.route,
        publisher_for(group),
        runtime.metrics,
        commits_in_transactions=exactly_once,
        batch_size=worker.batch_size,
        batch_within_s=worker.batch_within_s,
        marks=runtime.route_marks,
    )
    app.raw_topics = (topics.raw_auditd, topics.raw_syslog)
    app.internal_topics = frozenset({names.auditd_by_host, names.syslog_by_host})
    register_web(app, runtime.metrics, app.healthy)
    app.connect_rebalance_hooks()
    log.info(
        "worker.app", app_id=worker.app_id, guarantee=worker.processing_guarantee, partitions=config.topics.partitions
    )
    return app
