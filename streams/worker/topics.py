"""The worker's topics: raw inputs, the internal by-host topics and the outputs (all names configurable).

Values and keys travel as raw bytes: decoding is :mod:`streams.serde`'s job, and outputs are
serialised once with orjson by the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.config import SecstreamConfig

__all__ = ["TopicNames", "WorkerTopics", "build_topics"]


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Every topic name the worker reads or writes."""

    raw_auditd: str
    raw_syslog: str
    auditd_by_host: str
    syslog_by_host: str
    events: str
    detections: str
    deadletter: str

    @classmethod
    def from_config(cls, config: SecstreamConfig) -> TopicNames:
        """Derive the names; the internal topics are prefixed with the app id like Faust's own."""
        app_id = config.worker.app_id
        topics = config.topics
        return cls(
            raw_auditd=topics.raw_auditd,
            raw_syslog=topics.raw_syslog,
            auditd_by_host=f"{app_id}-auditd-by-host",
            syslog_by_host=f"{app_id}-syslog-by-host",
            events=topics.events,
            detections=topics.detections,
            deadletter=topics.deadletter,
        )


@dataclass(frozen=True, slots=True)
class WorkerTopics:
    """The Faust topic objects (declared, i.e. created when missing, at worker start)."""

    names: TopicNames
    raw_auditd: Any
    raw_syslog: Any
    auditd_by_host: Any
    syslog_by_host: Any
    outputs: tuple[Any, ...]


def build_topics(app: Any, config: SecstreamConfig) -> WorkerTopics:
    """Declare the topics on the app.

    Args:
        app: the Faust app.
        config: the configuration (names and partition count for topics secstream creates).
    """
    names = TopicNames.from_config(config)
    partitions = config.topics.partitions

    def topic(name: str, *, internal: bool = False) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            internal=internal,
        )

    return WorkerTopics(
        names=names,
        raw_auditd=topic(names.raw_auditd),
        raw_syslog=topic(names.raw_syslog),
        auditd_by_host=topic(names.auditd_by_host, internal=True),
        syslog_by_host=topic(names.syslog_by_host, internal=True),
        outputs=(topic(names.events), topic(names.detections), topic(names.deadletter)),
    )
