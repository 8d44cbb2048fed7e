"""The worker's Kafka clients, built in one place from ``[kafka]`` and ``[worker]``.

Faust's own clients get the same security settings (:func:`faust_credentials`); the plain aiokafka
clients (the raw router's consumer, the transactional producers, the admin client, the changelog reader)
come from :class:`KafkaClients`. ``secstream produce`` and ``consume`` use the same options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import SecstreamConfig
from streams.worker.tables import read_changelog

__all__ = ["MAX_BATCH_BYTES", "KafkaClients", "bootstrap_servers", "faust_credentials", "kafka_client_options"]

MAX_BATCH_BYTES = 512 * 1024
"""Producer record-batch size: outputs go out as one batch per destination partition
(:func:`streams.worker.publish.send_records`), below Kafka's default 1 MB message limit."""


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


def faust_credentials(config: SecstreamConfig) -> Any:
    """The same security settings in Faust's form (None for PLAINTEXT)."""
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


@dataclass(frozen=True)
class KafkaClients:
    """Factories of the worker's plain aiokafka clients, with the timeouts of its consumer group.

    Args:
        config: the configuration.
    """

    config: SecstreamConfig
    servers: str = field(init=False)
    options: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", bootstrap_servers(self.config.kafka.broker))
        object.__setattr__(self, "options", kafka_client_options(self.config))

    @property
    def _request_timeout_ms(self) -> int:
        return int(max(40.0, self.config.worker.session_timeout_s * 2) * 1000)

    def transactional_producer(self, transactional_id: str) -> AIOKafkaProducer:
        """A producer for one exactly-once publisher."""
        return AIOKafkaProducer(
            bootstrap_servers=self.servers,
            transactional_id=transactional_id,
            linger_ms=5,
            max_batch_size=MAX_BATCH_BYTES,
            request_timeout_ms=self._request_timeout_ms,
            **self.options,
        )

    def admin(self) -> AIOKafkaAdminClient:
        """An admin client (the exactly-once publisher fences and checks offsets with it)."""
        return AIOKafkaAdminClient(bootstrap_servers=self.servers, **self.options)

    def route_consumer(self, group: str, *, read_committed: bool) -> AIOKafkaConsumer:
        """The raw router's consumer: its own group, manual commits, from the earliest record."""
        worker = self.config.worker
        return AIOKafkaConsumer(
            bootstrap_servers=self.servers,
            group_id=group,
            client_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            session_timeout_ms=int(worker.session_timeout_s * 1000),
            heartbeat_interval_ms=int(worker.heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(max(20.0, worker.session_timeout_s * 2) * 1000),
            request_timeout_ms=self._request_timeout_ms,
            **self.options,
        )

    async def read_changelog(self, topic: str, partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        """Read host-state changelog partitions (:func:`streams.worker.tables.read_changelog`)."""
        return await read_changelog(self.servers, topic, partitions, self.options)
