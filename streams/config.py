"""secstream configuration: a TOML file, ``SECSTREAM_...`` environment overrides, validation at start.

Every key has a documented default (see ``config/secstream.toml``). An unknown key or a value of the
wrong type is a :class:`~processors.errors.ConfigError` naming the key. Environment variables override
the file: ``SECSTREAM_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``SECSTREAM_KAFKA__BROKER=kafka://broker:9092`` or
``SECSTREAM_ENRICHMENT__VIRUSTOTAL__API_KEY=...``. Secrets belong in the environment.
"""

from __future__ import annotations

import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from processors.audit import CoalescerSettings
from processors.detect.detectors import CommandSpeedSettings, RiskySudoSettings
from processors.detect.sessions import LogonSessionSettings
from processors.enrich.enricher import EnricherSettings
from processors.errors import ConfigError
from processors.proctree import ProcessTrackerSettings

__all__ = [
    "CoalescerConfig",
    "DetectionConfig",
    "EnrichmentConfig",
    "InputConfig",
    "KafkaConfig",
    "ProcessTreeConfig",
    "ProviderConfig",
    "RiskySudoConfig",
    "SecstreamConfig",
    "SessionsConfig",
    "SigmaConfig",
    "TopicsConfig",
    "WorkerConfig",
    "bundled_config_dir",
    "coalescer_settings",
    "command_speed_settings",
    "enricher_settings",
    "load_config",
    "risky_sudo_settings",
    "sessions_settings",
    "tracker_settings",
    "with_syslog_year",
]

ENV_PREFIX = "SECSTREAM_"

# The stage settings' own defaults: the configuration takes its defaults from them, never a copy.
_COALESCER = CoalescerSettings()
_TRACKER = ProcessTrackerSettings()
_SESSIONS = LogonSessionSettings()
_SPEED = CommandSpeedSettings()
_SUDO = RiskySudoSettings()
_ENRICHER = EnricherSettings()


def bundled_config_dir() -> Path:
    """The ``config/`` directory: the checkout's, or the copy bundled in the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "config", here / "_bundled_config"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("the bundled config/ directory is missing from this installation")


@dataclass(frozen=True, slots=True)
class InputConfig:
    """How raw input is read."""

    default_host: str = "unknown"
    """Host name for records that carry none (no ``node=``, no host field, no key)."""
    max_line_bytes: int = 65536
    """Longer lines go to the dead letters instead of being parsed."""
    syslog_year: int = 0
    """Year for RFC 3164 timestamps, which have none; 0 means the year in which the line is read."""
    max_hosts_in_memory: int = 10_000
    """Most hosts whose state ``secstream run`` keeps in memory; the least recently seen idle ones past it
    are written to a temporary spill file and read back when they speak again (0: no bound)."""


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """Connection to the Kafka cluster (worker, produce and consume)."""

    broker: str = "kafka://127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""


@dataclass(frozen=True, slots=True)
class TopicsConfig:
    """Topic names and the partition count used when secstream creates them."""

    raw_auditd: str = "secstream.raw.auditd"
    raw_syslog: str = "secstream.raw.syslog"
    events: str = "secstream.events"
    detections: str = "secstream.detections"
    deadletter: str = "secstream.deadletter"
    partitions: int = 4
    message_field: str = "message"
    """For JSON-object values: the field holding the raw line(s)."""
    host_field: str = "host"
    """For JSON-object values: the optional field holding the host name."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The Faust worker."""

    app_id: str = "secstream"
    processing_guarantee: str = "at_least_once"
    """``at_least_once`` or ``exactly_once`` (Kafka transactions)."""
    batch_size: int = 500
    batch_within_s: float = 0.02
    """Longest wait for a batch to fill once the previous one is done. Under load a batch holds what
    arrived while the last one ran, so a short wait costs no throughput; a long one adds to every
    record's latency (0.5 s gave a p99 over 3 s at 10k lines/s, 0.02 s under 3 s)."""
    snapshot_interval_s: float = 10.0
    """At-least-once: a partition's host snapshots are written at most this often (and no more often
    than twenty times what the last write took). The input processed since the last write stays
    uncommitted, so a crash re-reads at most about this much. Each write is a host's whole process
    tree: every 2 s, the writes and the broker's work on them put the p99 latency over 3 s at 10k
    lines/s; every 10 s, about 2.5 s. Exactly-once writes them with every transaction."""
    store: str = "memory://"
    web_port: int = 6066
    """Health endpoint and Prometheus metrics (``/healthz``, ``/metrics``)."""
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    data_dir: str = ""
    """Faust's data directory; empty means a per-app directory under the system temp dir."""
    processes: int = 1
    """Worker processes, each a member of the consumer groups (Python runs one stage graph per core);
    0 means one per available CPU. Process ``i`` serves its health and metrics on ``web_port + i``."""


@dataclass(frozen=True, slots=True)
class CoalescerConfig:
    """Audit record coalescing (:class:`~processors.audit.CoalescerSettings`)."""

    event_timeout_s: float = _COALESCER.event_timeout_s
    """An event without EOE completes when its host's event time has moved this far past it."""
    idle_flush_s: float = _COALESCER.idle_flush_s
    """Wall-clock seconds after a host's last record when its in-flight events are flushed."""
    max_in_flight: int = _COALESCER.max_in_flight
    """In-flight events per host; on overflow the oldest is flushed as partial."""
    done_memory: int = _COALESCER.done_memory
    """Completed events remembered per host, to recognise a record that arrives after its event."""


@dataclass(frozen=True, slots=True)
class ProcessTreeConfig:
    """The rolling process tree (:class:`~processors.proctree.ProcessTrackerSettings`)."""

    ancestor_depth: int = _TRACKER.ancestor_depth
    exited_grace_s: float = _TRACKER.exited_grace_s
    idle_ttl_s: float = _TRACKER.idle_ttl_s
    max_per_host: int = _TRACKER.max_per_host
    backfill_window_s: float = _TRACKER.backfill_window_s


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """Logon and sudo session tracking (:class:`~processors.detect.sessions.LogonSessionSettings`)."""

    max_per_host: int = _SESSIONS.max_sessions_per_host
    session_ttl_s: float = _SESSIONS.ttl_s
    pending_ttl_s: float = _SESSIONS.pending_ttl_s
    """A pending session (sshd Accepted, a sudo command) that no PAM open joined is forgotten after this."""
    join_window_s: float = _SESSIONS.join_window_s
    """How far apart a pending session without a pid and its PAM open may be."""


@dataclass(frozen=True, slots=True)
class RiskySudoConfig:
    """The risky-sudo detector (:class:`~processors.detect.detectors.RiskySudoSettings`)."""

    services: tuple[str, ...] = _SUDO.services
    """Session services that count as privilege elevation."""
    command_severity: int = _SUDO.command_severity
    """Severity when a rule matched a command run in such a session."""
    speed_severity: int = _SUDO.speed_severity
    """Severity when a command burst happened in such a session."""
    technique: tuple[str, ...] = _SUDO.technique
    ttl_s: float = _SUDO.ttl_s
    max_sessions: int = _SUDO.max_sessions


@dataclass(frozen=True, slots=True)
class SigmaConfig:
    """Sigma rules (docs/sigma.md): where they are and which of them run."""

    enabled: bool = True
    use_project_rules: bool = True
    """Load the project's own pack (``processors/detect/data/sigma/*.yml``, ruleset ``secstream``)."""
    rule_paths: tuple[str, ...] = ()
    """More Sigma rule files and directories (searched recursively for ``*.yml``); relative paths are
    relative to the config directory."""
    ids: tuple[str, ...] = ()
    """Run only these rule ids (empty: all)."""
    exclude_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    """Run only rules with one of these tags, e.g. ``attack.t1059`` (empty: all)."""
    statuses: tuple[str, ...] = ()
    """Run only rules of these statuses: stable, test, experimental, deprecated, unsupported (empty: all)."""
    min_level: str = ""
    """The lowest level that runs: informational, low, medium, high or critical (empty: all)."""
    suppress_window_s: float = 0.0
    """A rule's alert repeated on a host with the same values in the rule's fields within this many
    seconds is counted, not raised; the next alert carries the count. 0 turns suppression off."""


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Rules and stateful detectors."""

    rule_files: tuple[str, ...] = ()
    """Extra regex rule files (TOML or msticpy's JSON format)."""
    use_default_rules: bool = False
    """Also load the regex rules of earlier versions (processors/detect/data/default.toml). The project's
    Sigma pack (``[detection.sigma]``) covers them without their false positives, so they are off."""
    speed_events: int = _SPEED.events
    """Command-speed detector: this many commands ..."""
    speed_window_s: float = _SPEED.time_s
    """... within this many seconds by one user on one host."""
    speed_severity: int = _SPEED.severity
    speed_technique: tuple[str, ...] = _SPEED.technique
    speed_max_keys: int = _SPEED.max_keys
    """Host and user pairs the command-speed detector follows; the least recently active are dropped."""
    sudo: RiskySudoConfig = field(default_factory=RiskySudoConfig)
    sigma: SigmaConfig = field(default_factory=SigmaConfig)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One threat-intel provider."""

    enabled: bool = False
    api_key: str = field(default="", repr=False)
    api_id: str = field(default="", repr=False)
    base_url: str = ""
    """Override of the provider's API base URL (empty: the provider's documented one)."""
    rate_per_minute: float = 60.0
    daily_quota: int = 0
    """0 means no daily quota."""
    timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576
    """Largest answer read from the provider; a bigger one fails the lookup and counts against its breaker."""
    retry_after_max_s: float = 300.0
    """A 429's Retry-After pauses the whole provider, for at most this long."""


@dataclass(frozen=True, slots=True)
class EnrichmentConfig:
    """GeoIP and threat-intel enrichment."""

    enabled: bool = True
    max_wait_s: float = _ENRICHER.max_wait_s
    """Longest a batch waits for lookups; slower ones are recorded as pending and finish in the background."""
    max_background: int = _ENRICHER.max_background
    """Lookups allowed to run in the background; beyond it new remote lookups are recorded rate limited."""
    max_observables_per_event: int = _ENRICHER.max_observables_per_event
    """Observables of one event that are looked up (the rest are not)."""
    cache_ttl_s: float = 3600.0
    negative_cache_ttl_s: float = 600.0
    geoip_db_folder: str = ""
    """Folder with GeoLite2-City.mmdb (and GeoLite2-ASN.mmdb); empty disables GeoIP."""
    geoip_licence_key: str = field(default="", repr=False)
    """MaxMind licence key: only when set are databases downloaded and refreshed."""
    blocklists: tuple[str, ...] = ("ti/sample_blocklist.csv",)
    """Local blocklist files (relative paths are relative to the config directory)."""
    max_detail_bytes: int = _ENRICHER.max_detail_bytes
    """Largest provider detail (as JSON) copied into one match of an event; a larger one is replaced by its size."""
    virustotal: ProviderConfig = field(default_factory=lambda: ProviderConfig(rate_per_minute=4, daily_quota=500))
    otx: ProviderConfig = field(default_factory=ProviderConfig)
    xforce: ProviderConfig = field(default_factory=ProviderConfig)
    greynoise: ProviderConfig = field(default_factory=ProviderConfig)


@dataclass(frozen=True, slots=True)
class SecstreamConfig:
    """The whole configuration."""

    input: InputConfig = field(default_factory=InputConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    coalescer: CoalescerConfig = field(default_factory=CoalescerConfig)
    proctree: ProcessTreeConfig = field(default_factory=ProcessTreeConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    enrichment: EnrichmentConfig = field(default_factory=EnrichmentConfig)
    config_dir: Path = field(default_factory=bundled_config_dir)
    """Directory of the configuration file; relative paths are resolved against it first."""

    def resolve_path(self, value: str) -> Path:
        """Resolve a configured path: absolute as given, else beside the configuration file, else bundled."""
        path = Path(value)
        if path.is_absolute():
            return path
        local = self.config_dir / path
        return local if local.exists() else bundled_config_dir() / path


_T = TypeVar("_T")


def _coerce(value: Any, hint: Any, key: str, default: Any = None) -> Any:
    """Check (and for env strings, convert) one value against a field's type hint."""
    origin = typing.get_origin(hint)
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {type(value).__name__}", key=key)
        return _build(default, value, key)
    if hint is bool:
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", key=key)
        return value
    if hint is int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"expected an integer, got {value!r}", key=key) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
        if not -(2**63) <= value < 2**63:  # the compiled stages take 64-bit integers
            raise ConfigError(f"{value} is out of range", key=key)
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"expected a number, got {value!r}", key=key) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {value!r}", key=key)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):  # inf and nan pass every range check below and break every stage
            raise ConfigError(f"expected a finite number, got {value!r}", key=key)
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", key=key)
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"expected a path, got {value!r}", key=key)
        return Path(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [item for item in value.split(",") if item]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {value!r}", key=key)
        (item_hint, _ellipsis) = typing.get_args(hint)
        return tuple(_coerce(item, item_hint, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is types.UnionType:  # pragma: no cover - no optional fields today
        raise ConfigError("optional values are not supported", key=key)
    raise ConfigError(f"unsupported setting type {hint!r}", key=key)  # pragma: no cover - a bug in this module


def _build(base: _T, data: Mapping[str, Any], prefix: str) -> _T:
    """Return ``base`` (a settings dataclass instance) with the values in ``data`` applied and checked."""
    hints = typing.get_type_hints(type(base))
    known = {f.name for f in fields(base)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            name = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"unknown key (known: {', '.join(sorted(known))})", key=name)
    kwargs = {
        name: _coerce(value, hints[name], f"{prefix}.{name}" if prefix else name, getattr(base, name))
        for name, value in data.items()
    }
    return replace(base, **kwargs)  # type: ignore[type-var]


def _url_ok(value: str) -> bool:
    if not value:
        return True
    parsed = urlsplit(value)
    return parsed.scheme in {"http", "https"} and bool(parsed.hostname)


def _provider_checks(name: str, provider: ProviderConfig) -> list[tuple[bool, str, str]]:
    key = f"enrichment.{name}"
    return [
        (provider.rate_per_minute >= 0, f"{key}.rate_per_minute", "must not be negative (0: no limit)"),
        (provider.daily_quota >= 0, f"{key}.daily_quota", "must not be negative (0: no quota)"),
        (provider.timeout_s > 0, f"{key}.timeout_s", "must be positive"),
        (_url_ok(provider.base_url), f"{key}.base_url", "must be empty or an http(s)://HOST[/PATH] URL"),
    ]


def _severity_ok(value: int) -> bool:
    return 0 <= value <= 100


def _validate(config: SecstreamConfig) -> None:
    """Range checks (a value of the right type that still makes no sense); the first failure is raised."""
    worker, coalescer, tree, sessions = config.worker, config.coalescer, config.proctree, config.sessions
    detection, sudo, enrichment = config.detection, config.detection.sudo, config.enrichment
    checks: list[tuple[bool, str, str]] = [
        (
            worker.processing_guarantee in {"at_least_once", "exactly_once"},
            "worker.processing_guarantee",
            "must be at_least_once or exactly_once",
        ),
        (worker.batch_size >= 1, "worker.batch_size", "must be at least 1"),
        (worker.batch_within_s >= 0, "worker.batch_within_s", "must not be negative"),
        (worker.snapshot_interval_s >= 0, "worker.snapshot_interval_s", "must not be negative"),
        (worker.processes >= 0, "worker.processes", "must not be negative (0: one per CPU)"),
        (0 <= worker.web_port <= 65535, "worker.web_port", "must be a port number (0-65535)"),
        (worker.session_timeout_s > 0, "worker.session_timeout_s", "must be positive"),
        (worker.heartbeat_interval_s > 0, "worker.heartbeat_interval_s", "must be positive"),
        (config.topics.partitions >= 1, "topics.partitions", "must be at least 1"),
        (coalescer.event_timeout_s > 0, "coalescer.event_timeout_s", "must be positive"),
        (coalescer.idle_flush_s > 0, "coalescer.idle_flush_s", "must be positive"),
        (coalescer.max_in_flight >= 1, "coalescer.max_in_flight", "must be at least 1"),
        (coalescer.done_memory >= 0, "coalescer.done_memory", "must not be negative"),
        (tree.ancestor_depth >= 0, "proctree.ancestor_depth", "must not be negative"),
        (tree.exited_grace_s >= 0, "proctree.exited_grace_s", "must not be negative"),
        (tree.idle_ttl_s > 0, "proctree.idle_ttl_s", "must be positive"),
        (tree.max_per_host >= 1, "proctree.max_per_host", "must be at least 1"),
        (tree.backfill_window_s >= 0, "proctree.backfill_window_s", "must not be negative"),
        (sessions.max_per_host >= 1, "sessions.max_per_host", "must be at least 1"),
        (sessions.session_ttl_s > 0, "sessions.session_ttl_s", "must be positive"),
        (sessions.pending_ttl_s > 0, "sessions.pending_ttl_s", "must be positive"),
        (sessions.join_window_s >= 0, "sessions.join_window_s", "must not be negative"),
        (detection.speed_events >= 2, "detection.speed_events", "must be at least 2"),
        (detection.speed_window_s > 0, "detection.speed_window_s", "must be positive"),
        (_severity_ok(detection.speed_severity), "detection.speed_severity", "must be 0-100"),
        (detection.speed_max_keys >= 1, "detection.speed_max_keys", "must be at least 1"),
        (_severity_ok(sudo.command_severity), "detection.sudo.command_severity", "must be 0-100"),
        (_severity_ok(sudo.speed_severity), "detection.sudo.speed_severity", "must be 0-100"),
        (sudo.ttl_s > 0, "detection.sudo.ttl_s", "must be positive"),
        (sudo.max_sessions >= 1, "detection.sudo.max_sessions", "must be at least 1"),
        (enrichment.max_wait_s >= 0, "enrichment.max_wait_s", "must not be negative"),
        (enrichment.max_background >= 0, "enrichment.max_background", "must not be negative"),
        (enrichment.max_observables_per_event >= 0, "enrichment.max_observables_per_event", "must not be negative"),
        (enrichment.cache_ttl_s >= 0, "enrichment.cache_ttl_s", "must not be negative"),
        (enrichment.negative_cache_ttl_s >= 0, "enrichment.negative_cache_ttl_s", "must not be negative"),
        (
            config.detection.sigma.min_level in {"", "informational", "low", "medium", "high", "critical"},
            "detection.sigma.min_level",
            "must be informational, low, medium, high or critical (or empty)",
        ),
        (config.detection.sigma.suppress_window_s >= 0, "detection.sigma.suppress_window_s", "must not be negative"),
        (config.input.max_line_bytes >= 256, "input.max_line_bytes", "must be at least 256"),
        (0 <= config.input.syslog_year <= 9999, "input.syslog_year", "must be a year (1-9999), or 0"),
        (config.input.max_hosts_in_memory >= 0, "input.max_hosts_in_memory", "must not be negative"),
        (
            config.kafka.broker.startswith(("kafka://", "aiokafka://")),
            "kafka.broker",
            "must look like kafka://HOST:PORT",
        ),
    ]
    for name in ("virustotal", "otx", "xforce", "greynoise"):
        checks += _provider_checks(name, getattr(enrichment, name))
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(message, key=key)
    _validate_paths(config)


def _validate_paths(config: SecstreamConfig) -> None:
    """Configured files and folders exist, so that a typo is one line at start, not a traceback later."""
    for index, rule_file in enumerate(config.detection.rule_files):
        if not config.resolve_path(rule_file).is_file():
            raise ConfigError(f"{rule_file} is not a file", key=f"detection.rule_files[{index}]")
    for index, blocklist in enumerate(config.enrichment.blocklists):
        if not config.resolve_path(blocklist).is_file():
            raise ConfigError(f"{blocklist} is not a file", key=f"enrichment.blocklists[{index}]")
    folder = config.enrichment.geoip_db_folder
    # With a licence key the folder is where databases are downloaded to, so it may not exist yet.
    if folder and not config.enrichment.geoip_licence_key and not config.resolve_path(folder).is_dir():
        raise ConfigError(f"{folder} is not a folder", key="enrichment.geoip_db_folder")


def with_syslog_year(config: SecstreamConfig, year: int) -> SecstreamConfig:
    """The configuration with ``input.syslog_year`` set (the command line's ``--year``)."""
    updated = replace(config, input=replace(config.input, syslog_year=year))
    _validate(updated)
    return updated


# -- stage settings: the one place where configuration keys become the stages' settings ---------------


def coalescer_settings(config: SecstreamConfig) -> CoalescerSettings:
    """The coalescer's settings from ``[coalescer]``."""
    section = config.coalescer
    return CoalescerSettings(
        event_timeout_s=section.event_timeout_s,
        idle_flush_s=section.idle_flush_s,
        max_in_flight=section.max_in_flight,
        done_memory=section.done_memory,
    )


def tracker_settings(config: SecstreamConfig) -> ProcessTrackerSettings:
    """The process tracker's settings from ``[proctree]``."""
    section = config.proctree
    return ProcessTrackerSettings(
        ancestor_depth=section.ancestor_depth,
        exited_grace_s=section.exited_grace_s,
        idle_ttl_s=section.idle_ttl_s,
        max_per_host=section.max_per_host,
        backfill_window_s=section.backfill_window_s,
    )


def sessions_settings(config: SecstreamConfig) -> LogonSessionSettings:
    """The session tracker's settings from ``[sessions]``."""
    section = config.sessions
    return LogonSessionSettings(
        max_sessions_per_host=section.max_per_host,
        ttl_s=section.session_ttl_s,
        pending_ttl_s=section.pending_ttl_s,
        join_window_s=section.join_window_s,
    )


def command_speed_settings(config: SecstreamConfig) -> CommandSpeedSettings:
    """The command-speed detector's settings from ``[detection]``."""
    section = config.detection
    return CommandSpeedSettings(
        events=section.speed_events,
        time_s=section.speed_window_s,
        severity=section.speed_severity,
        technique=section.speed_technique,
        max_keys=section.speed_max_keys,
    )


def risky_sudo_settings(config: SecstreamConfig) -> RiskySudoSettings:
    """The risky-sudo detector's settings from ``[detection.sudo]``."""
    section = config.detection.sudo
    return RiskySudoSettings(
        services=section.services,
        command_severity=section.command_severity,
        speed_severity=section.speed_severity,
        technique=section.technique,
        ttl_s=section.ttl_s,
        max_sessions=section.max_sessions,
    )


def enricher_settings(config: SecstreamConfig) -> EnricherSettings:
    """The enrichment stage's limits from ``[enrichment]``; which lookups run is decided by the graph (all
    configured providers, every IoC type, ``source`` and ``destination`` geo) and is not configurable."""
    section = config.enrichment
    return EnricherSettings(
        max_wait_s=section.max_wait_s,
        max_background=section.max_background,
        max_observables_per_event=section.max_observables_per_event,
        max_detail_bytes=section.max_detail_bytes,
    )


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> SecstreamConfig:
    """Load and validate the configuration.

    Args:
        path: a TOML file; None uses only the defaults (and the environment).
        environ: environment variables (defaults to ``os.environ``).

    Raises:
        ConfigError: a key is unknown, a value has the wrong type or is out of range, or the file is unreadable.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"configuration file {path} is a directory, not a file") from None
        except OSError as exc:
            raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not UTF-8 text (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        data.setdefault("config_dir", str(Path(path).resolve().parent))
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    config = _build(SecstreamConfig(), data, "")
    _validate(config)
    return config
