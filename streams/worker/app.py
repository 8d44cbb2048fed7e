"""The worker's only Faust app, built from the configuration by :func:`create_app`.

Faust itself always runs at-least-once; ``worker.processing_guarantee = "exactly_once"`` switches the
output path to our own per-partition Kafka transactions (see :mod:`streams.worker.publish`), the
consumer to ``read_committed``, and turns Faust's own offset commits off: the offsets are committed
inside the transactions only, so a late Faust commit can never move a partition back or ahead of its
state. Host state is not a Faust table but our own compacted topic (:mod:`streams.worker.tables`).
The raw topics are not Faust's either: :mod:`streams.worker.router` reads them with its own consumer
group (``<app id>-route``), because Faust's per-record cost is too high for one line per record.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import SecstreamConfig
from streams.gcpolicy import apply_streaming_gc_policy
from streams.graph import Pipeline
from streams.logging import get_logger
from streams.worker.agents import register_agents
from streams.worker.consumer import deliver_inline
from streams.worker.metrics import register_web
from streams.worker.publish import AtLeastOncePublisher, Publisher, TransactionalPublisher
from streams.worker.router import RawRouter, route_group
from streams.worker.runtime import WorkerRuntime
from streams.worker.tables import HostStateStore, changelog_topic_name, read_changelog
from streams.worker.topics import build_topics

__all__ = ["SecstreamApp", "bootstrap_servers", "create_app", "kafka_client_options"]

log = get_logger(__name__)


_MAX_BATCH_BYTES = 512 * 1024
"""Producer record-batch size: outputs go out as one batch per destination partition
(:func:`streams.worker.publish.send_records`), below Kafka's default 1 MB message limit."""


class SecstreamApp(faust.App):
    """A Faust app that runs the raw router next to its agents, and flushes in-flight events before Faust
    stops its consumer and commits."""

    runtime: WorkerRuntime | None = None
    raw_router: RawRouter | None = None
    raw_topics: tuple[Any, ...] = ()
    """Faust topic objects of the raw inputs: declared (created when missing) before the router starts."""
    commits_in_transactions: bool = False
    """Exactly-once: offsets are committed inside our transactions only, never by Faust's consumer."""

    async def on_start(self) -> None:
        """Build the stage graph (enrichment clients need the running loop) before agents start."""
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

            async def _no_commit(offsets: Any) -> bool:
                del offsets
                return False

            setattr(consumer, "_commit", _no_commit)  # noqa: B010 - Faust's commit hook, see the module doc
        return consumer

    async def on_stop(self) -> None:
        """Stop routing (its deliveries committed), flush every in-flight event, send it and ack, then let
        Faust commit and stop."""
        if self.raw_router is not None:
            await self.raw_router.stop()
        if self.runtime is not None:
            await self.runtime.shutdown()
        await super().on_stop()


def bootstrap_servers(broker: str) -> str:
    """``kafka://h1:9092;h2:9092`` → ``h1:9092,h2:9092`` for the plain Kafka clients."""
    hosts = broker.split("://", 1)[-1]
    return ",".join(part for part in hosts.replace(";", ",").split(",") if part)


def kafka_client_options(config: SecstreamConfig) -> dict[str, Any]:
    """Security settings for aiokafka clients (producer, consumer, admin) from ``[kafka]``."""
    kafka = config.kafka
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in {"SSL", "SASL_SSL"}:
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=kafka.ssl_cafile or None, certfile=kafka.ssl_certfile or None, keyfile=kafka.ssl_keyfile or None
        )
    if kafka.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=kafka.sasl_mechanism or "PLAIN",
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
    return options


def _faust_credentials(config: SecstreamConfig) -> Any:
    kafka = config.kafka
    ssl_context = kafka_client_options(config).get("ssl_context")
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def _read_committed_consumers() -> None:
    """Make Faust's worker consumer read committed data only (our transactions write its inputs).

    Faust chooses ``read_committed`` only under its own exactly-once mode, which we cannot use (see
    :mod:`streams.worker.publish`). aiokafka reads the isolation level when the consumer starts, so
    setting it on the freshly built consumer is enough.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_secstream_read_committed", False):
        return
    original = thread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._isolation_level = "read_committed"
        return consumer

    setattr(thread, "_create_worker_consumer", create)  # noqa: B010 - a deliberate, documented patch
    setattr(thread, "_secstream_read_committed", True)  # noqa: B010


async def rewind_uncommitted(consumer: Any, tps: list[Any]) -> None:
    """Seek the given assigned partitions that have no committed offset to their first record.

    Runs when a rebalance completes. Faust then seeks to the committed offsets, but aiokafka skips a
    partition whose committed offset is missing or 0 and leaves it where its fetches had got to,
    while Faust drops the records it had fetched and not yet handed to the agent. A worker that keeps
    such a partition across the rebalance would then never see those records. This happened at
    start-up, when the second member joined before the first had committed anything: a capacity
    bench run lost 4,400 events and left the commit stuck below them.

    Args:
        consumer: the Faust consumer.
        tps: assigned partitions (Faust ``TP``).
    """
    if not tps:
        return
    committed = await consumer.seek_to_committed()
    fresh = [tp for tp in tps if not committed.get(tp)]
    if not fresh:
        return
    earliest = await consumer.earliest_offsets(*fresh)
    for tp in fresh:
        await consumer.seek(tp, earliest.get(tp, 0))
    log.info("worker.rewound", partitions=[f"{tp.topic}:{tp.partition}" for tp in fresh])


async def _default_pipeline(config: SecstreamConfig) -> Pipeline:
    try:  # streams.build is the one place that wires enrichment from the configuration
        build = importlib.import_module("streams.build")
    except ImportError:  # pragma: no cover - only while streams.build is being written
        return Pipeline(config)
    pipeline: Pipeline = await build.build_pipeline(config)
    return pipeline


def create_app(
    config: SecstreamConfig, *, pipeline_factory: Callable[[SecstreamConfig], Awaitable[Pipeline]] | None = None
) -> SecstreamApp:
    """Build the worker app: topics, the host-state table, the agents, the timer and the web pages.

    Args:
        config: the validated configuration (``[kafka]``, ``[topics]``, ``[worker]`` and the stages).
        pipeline_factory: builds the stage graph at worker start (default: ``streams.build.build_pipeline``).

    Returns:
        The app; run it with :func:`streams.worker.run_worker` (or ``faust.Worker``).
    """
    worker = config.worker
    exactly_once = worker.processing_guarantee == "exactly_once"
    data_dir = Path(worker.data_dir) if worker.data_dir else Path(tempfile.gettempdir()) / f"secstream-{worker.app_id}"
    session = worker.session_timeout_s
    app = SecstreamApp(
        worker.app_id,
        broker=config.kafka.broker,
        broker_credentials=_faust_credentials(config),
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
        producer_max_batch_size=_MAX_BATCH_BYTES,
    )
    if exactly_once:
        _read_committed_consumers()
        app.commits_in_transactions = True
    topics = build_topics(app, config)
    servers = bootstrap_servers(config.kafka.broker)
    options = kafka_client_options(config)
    changelog = app.topic(
        changelog_topic_name(worker.app_id),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=config.topics.partitions,
        internal=True,
        compacting=True,
        deleting=False,
    )

    async def read_host_state(partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        return await read_changelog(servers, changelog.get_topic_name(), partitions, options)

    store = HostStateStore(changelog.get_topic_name(), read_host_state, with_coalescer=exactly_once)

    def factory(transactional_id: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=servers,
            transactional_id=transactional_id,
            linger_ms=5,
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=int(max(40.0, session * 2) * 1000),
            **options,
        )

    def admin_factory() -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(bootstrap_servers=servers, **options)

    def publisher_for(group_id: str) -> Publisher:
        if exactly_once:
            return TransactionalPublisher(group_id, factory, admin_factory)
        return AtLeastOncePublisher(app)

    def route_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=route_group(worker.app_id),
            client_id=route_group(worker.app_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if exactly_once else "read_uncommitted",
            session_timeout_ms=int(session * 1000),
            heartbeat_interval_ms=int(worker.heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(max(20.0, session * 2) * 1000),
            request_timeout_ms=int(max(40.0, session * 2) * 1000),
            **options,
        )

    def assigned() -> set[Any]:
        return set(app.consumer.assignment())

    def highwater(tp: Any) -> int | None:
        try:
            return int(app.consumer.highwater(tp))
        except Exception:
            return None

    async def declare_outputs() -> None:
        for topic in (*topics.outputs, changelog):
            await topic.maybe_declare()

    runtime = WorkerRuntime(
        config,
        pipeline_factory or _default_pipeline,
        topics.names,
        store,
        publisher_for(worker.app_id),
        assigned,
        highwater,
        declare=declare_outputs,
    )
    app.runtime = runtime
    register_agents(app, topics, runtime, config)
    names = topics.names
    router = RawRouter(
        route_consumer,
        {names.raw_auditd: "auditd", names.raw_syslog: "syslog"},
        runtime.route,
        publisher_for(route_group(worker.app_id)),
        runtime.metrics,
        commits_in_transactions=exactly_once,
        batch_size=worker.batch_size,
        batch_within_s=worker.batch_within_s,
        marks=runtime.route_marks,
    )
    app.raw_router = router
    app.raw_topics = (topics.raw_auditd, topics.raw_syslog)
    started = time.time()

    def healthy() -> tuple[bool, dict[str, Any]]:
        try:
            partitions = len(app.consumer.assignment())
        except Exception:
            return False, {"uptime_s": round(time.time() - started, 1)}
        details: dict[str, Any] = {
            "partitions": partitions,
            "raw_partitions": len(router.assignment()),
            "held_acks": runtime.holds.count(),
            "uptime_s": round(time.time() - started, 1),
        }
        failure = runtime.publisher.failure or router.failure
        if failure is not None:  # outputs are no longer acked: restart the worker to read them again
            return False, {"status": "failing", "delivery_failed": repr(failure), **details}
        return not runtime.stopping and not app.rebalancing, details

    register_web(app, runtime.metrics, healthy)

    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        del sender, kwargs
        await runtime.revoke(revoked)

    app.on_partitions_revoked.connect(_revoked)  # type: ignore[arg-type]

    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        del sender, kwargs
        runtime.assign_soon(assigned)

    app.on_partitions_assigned.connect(_assigned)  # type: ignore[arg-type]

    async def _rebalanced(sender: Any, **kwargs: Any) -> None:
        # Sent just before Faust seeks to the committed offsets and resumes fetching: the one moment
        # a seek cannot race a fetch in progress (seeking from on_partitions_assigned crashed
        # aiokafka's fetcher with a KeyError).
        del sender, kwargs
        internal = {names.auditd_by_host, names.syslog_by_host}
        await rewind_uncommitted(app.consumer, [tp for tp in app.consumer.assignment() if tp.topic in internal])

    app.on_rebalance_complete.connect(_rebalanced)  # type: ignore[arg-type]

    log.info(
        "worker.app", app_id=worker.app_id, guarantee=worker.processing_guarantee, partitions=config.topics.partitions
    )
    return app
