"""The stage graph, declared once and executed by every driver (embedded runner, Faust worker, batch).

::

    auditd:  parse → (partition by host) → coalesce → decode → process tree → IoCs + base64
             → enrichment (async) → sessions, command speed, risky sudo, rules → outputs
    syslog:  parse → (partition by host) → IoCs → enrichment (async) → sessions, sudo, rules → outputs

A driver feeds raw lines with :meth:`Pipeline.audit_lines` / :meth:`Pipeline.syslog_lines`, calls
:meth:`Pipeline.tick` now and then (event-time expiry and the wall-clock idle flush), hands every
:class:`Pending` batch to :meth:`Pipeline.complete` (enrichment and detection) and writes the
:class:`Outputs`. All per-host state lives in :class:`HostState` objects that the driver owns and hands
in through a :class:`HostStates` mapping; no rule lives in a driver.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from processors.audit import (
    AuditEvent,
    Coalescer,
    CoalescerState,
    LateRecord,
    decode_event,
    decode_late,
    parse_line,
)
from processors.detect.detectors import (
    CommandSpeedDetector,
    RiskySudoDetector,
)
from processors.detect.rules import RuleEngine, default_rules_path, load_rules
from processors.detect.sessions import LogonSessionTracker
from processors.detect.sigma import RuleSelection, SigmaEngine
from processors.detect.stage import DetectionStage
from processors.enrich.enricher import Enricher
from processors.errors import ConfigError, ParseError, SecstreamError
from processors.ioc.extract import IocExtractor
from processors.ioc.observables import annotate_event
from processors.proctree import ProcessTracker, ProcessTrackerState
from processors.syslog import parse_syslog_line
from schemas.codecs import dumps, dumps_line, loads
from schemas.documents import dead_letter
from streams.config import (
    SecstreamConfig,
    coalescer_settings,
    command_speed_settings,
    risky_sudo_settings,
    sessions_settings,
    tracker_settings,
)
from streams.logging import get_logger

log = get_logger(__name__)

__all__ = [
    "HostState",
    "HostStates",
    "Outputs",
    "Pending",
    "Pipeline",
    "PipelineStats",
    "RawLine",
]


@dataclass(slots=True)
class RawLine:
    """One raw input line and where it came from.

    Args:
        data: the line (text, or bytes as read from Kafka).
        source: where it came from: ``{"file": ..., "line": n}`` or ``{"topic", "partition", "offset"}``.
        host: a host name from the envelope or the message key, used when the line names none.
        received: wall-clock epoch seconds when it was read (for dead letters).
        whole: (size, SHA-256 hex) of the whole line when ``data`` is only its head: a reader that stops
            reading a line at ``input.max_line_bytes`` keeps no more; such a line is always too long.
    """

    data: str | bytes
    source: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    received: float = 0.0
    whole: tuple[int, str] | None = None


@dataclass(slots=True)
class HostState:
    """Everything the stateful stages remember about one host.

    ``detect`` holds the state of each detection stage (:mod:`processors.detect.stage`) by the stage's
    name; :meth:`Pipeline.stage_state` creates it on first use, or restores it from ``restored``, the
    snapshot parts read back from a changelog that no stage has asked for yet.
    """

    coalescer: CoalescerState = field(default_factory=CoalescerState)
    tracker: ProcessTrackerState = field(default_factory=ProcessTrackerState)
    detect: dict[str, Any] = field(default_factory=dict)
    restored: dict[str, Any] = field(default_factory=dict)

    def durable_snapshot(self) -> dict[str, Any]:
        """The long-lived part (process tree, detection stages) as plain data for a changelog table.

        Coalescer buffers are short-lived and protected by delayed acks instead (see ``streams.worker``).
        """
        snapshot = {"tracker": self.tracker.snapshot(), **self.restored}
        snapshot.update((name, state.snapshot()) for name, state in self.detect.items())
        return snapshot

    @classmethod
    def from_durable_snapshot(cls, data: dict[str, Any]) -> HostState:
        """Rebuild a host's state from :meth:`durable_snapshot` (with an empty coalescer)."""
        restored = {name: part for name, part in data.items() if name not in ("tracker", "coalescer")}
        return cls(tracker=ProcessTrackerState.from_snapshot(data["tracker"]), restored=restored)

    def counters(self) -> tuple[Counter[str], Counter[str]]:
        """The host's coalescer counters and process-tracker counters, for :class:`PipelineStats`."""
        tracker = self.tracker
        return Counter(self.coalescer.counters), Counter(
            {
                "evicted_exited": tracker.evicted_exited,
                "evicted_idle": tracker.evicted_idle,
                "evicted_overflow": tracker.evicted_overflow,
                "backfilled": tracker.backfilled,
                "live": tracker.live,
            }
        )


class HostSpill(Protocol):
    """Where :class:`HostStates` writes the hosts it drops from memory: snapshot bytes by host name."""

    def put(self, host: str, data: bytes) -> None: ...

    def pop(self, host: str) -> bytes | None: ...


class _NoSpill:
    """The spill store of unbounded host states, which never spill."""

    def put(self, host: str, data: bytes) -> None:
        raise RuntimeError(f"host {host!r} spilled without a spill store")

    def pop(self, host: str) -> bytes | None:
        del host
        return None


_NO_SPILL = _NoSpill()


class HostStates(MutableMapping[str, HostState]):
    """Host name → :class:`HostState`, creating a host's state on first use, with a bound on memory.

    Host names come from the input, and syslog's are trivially spoofed: without a bound, every made-up
    name would keep its state in memory for good. With ``max_in_memory``, once more hosts than that are
    in memory the least recently used ones are written to ``spill`` (their whole state, in-flight audit
    events and the coalescer's memory included, so nothing about them changes) and dropped from memory;
    a spilled host is read back when it is looked up again. Iteration yields the hosts in memory and the
    spilled hosts that have an audit event in flight (a tick or the shutdown flush reads those back to
    complete it); a spilled host with nothing in flight has nothing to tick.

    Args:
        max_in_memory: most hosts held in memory; 0 means no bound.
        spill: the store for spilled hosts (needed with a bound).
    """

    def __init__(self, max_in_memory: int = 0, spill: HostSpill | None = None) -> None:
        if max_in_memory and spill is None:
            raise ValueError("a bound on hosts in memory needs a spill store")
        self._states: dict[str, HostState] = {}  # in use order when bounded: least recent first
        self._max = max_in_memory
        self._spill: HostSpill = _NO_SPILL if spill is None else spill
        self._spilled: dict[str, bool] = {}  # spilled host → whether it has an audit event in flight
        self.spilled_counters: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
        """The coalescer and tracker counters of the hosts now spilled (they come back with the host)."""
        self.spills = 0
        self.restores = 0

    def __getitem__(self, host: str) -> HostState:
        states = self._states
        state = states.get(host)
        if state is not None:
            if self._max:
                del states[host]  # move to the most recent end
                states[host] = state
            return state
        state = states[host] = self._restore(host) if host in self._spilled else HostState()
        if self._max and len(states) > self._max:
            self._shrink()
        return state

    def _restore(self, host: str) -> HostState:
        del self._spilled[host]
        data = self._spill.pop(host)
        if data is None:  # the store lost it: start afresh rather than fail
            return HostState()
        snapshot = loads(data)
        state = HostState.from_durable_snapshot(snapshot)
        state.coalescer = CoalescerState.from_snapshot(snapshot["coalescer"])
        audit, proctree = state.counters()
        self.spilled_counters[0].subtract(audit)
        self.spilled_counters[1].subtract(proctree)
        self.restores += 1
        return state

    def _shrink(self) -> None:
        """Spill the least recently used hosts until a tenth of the bound is free again (the last one,
        just looked up, stays)."""
        for host in list(self._states)[: len(self._states) - self._max + max(1, self._max // 10)]:
            state = self._states.pop(host)
            snapshot = state.durable_snapshot()
            snapshot["coalescer"] = state.coalescer.snapshot()
            self._spill.put(host, dumps(snapshot))
            self._spilled[host] = bool(snapshot["coalescer"]["in_flight"])
            audit, proctree = state.counters()
            self.spilled_counters[0].update(audit)
            self.spilled_counters[1].update(proctree)
            self.spills += 1

    def in_memory(self) -> list[HostState]:
        """The states held in memory (reading them does not change what is spilled)."""
        return list(self._states.values())

    def __setitem__(self, host: str, state: HostState) -> None:
        if host in self._spilled:
            self._restore(host)  # replaced: only its counters leave the spilled sums
        self._states[host] = state

    def __delitem__(self, host: str) -> None:
        if host in self._spilled:
            self._restore(host)
        else:
            del self._states[host]

    def __iter__(self) -> Iterator[str]:
        waiting = [host for host, in_flight in self._spilled.items() if in_flight]
        return iter([*self._states, *waiting])

    def __len__(self) -> int:
        return len(self._states) + sum(self._spilled.values())


@dataclass(slots=True)
class Pending:
    """Documents that have passed the synchronous stages and await enrichment and detection."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Pending) -> None:
        self.events.extend(other.events)
        self.deadletters.extend(other.deadletters)


@dataclass(slots=True)
class Outputs:
    """What one batch produced, per output stream."""

    events: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class PipelineStats:
    """Counters for the run summary and the metrics endpoint."""

    lines_in: Counter[str] = field(default_factory=Counter)
    events_out: Counter[str] = field(default_factory=Counter)
    detections: Counter[str] = field(default_factory=Counter)
    bad_input: Counter[str] = field(default_factory=Counter)
    audit: Counter[str] = field(default_factory=Counter)
    """The coalescers' counters summed over hosts: completed, partial, late, duplicate, overflow, orphan_eoe."""
    proctree: Counter[str] = field(default_factory=Counter)
    """The process trackers' counters summed over hosts: evictions, back-fills, live processes."""
    enrichment: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    """Hosts in memory, and how often a host's state was spilled out of memory and restored."""


def _audit_text(data: str | bytes) -> str:
    """Raw audit lines are ASCII (auditd hex-encodes anything else), so bytes that are not UTF-8 are bad input."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParseError(f"not valid UTF-8 at byte {error.start}", raw=data) from None


def _syslog_text(data: str | bytes) -> str:
    """Syslog from old devices is often Latin-1: undecodable bytes are kept as ``\\xNN`` escapes."""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "backslashreplace")


def _document_bytes(doc: dict[str, Any]) -> bytes:
    """A document as JSON for a dead letter; its repr where even that fails (a value JSON cannot hold)."""
    try:
        return dumps_line(doc).rstrip(b"\n")
    except Exception:  # a document the detectors could not take may not serialise either
        return repr(doc).encode("utf-8", "backslashreplace")


class Pipeline:
    """The stage graph with its stateless stages built from one configuration.

    Args:
        config: the validated configuration.
        enricher: the asynchronous enrichment stage, or None to skip enrichment.
    """

    def __init__(self, config: SecstreamConfig, enricher: Enricher | None = None) -> None:
        self.config = config
        self.enricher = enricher
        self.stats = PipelineStats()
        self._enrichment_failures: Counter[str] = Counter()
        self.audit_clock: float | None = None
        """The latest audit event time seen that is not ahead of its line's receive time (None: none yet)."""
        self.coalescer = Coalescer(coalescer_settings(config))
        self.tracker = ProcessTracker(tracker_settings(config))
        rules = []
        if config.detection.use_default_rules:
            rules.extend(load_rules(default_rules_path()))
        for index, rule_file in enumerate(config.detection.rule_files):
            path = config.resolve_path(rule_file)
            try:
                rules.extend(load_rules(path))
            except ConfigError as error:  # name the file: the rule loader's reason may not
                reason = error.reason if str(path) in error.reason else f"{path}: {error.reason}"
                raise ConfigError(reason, key=f"detection.rule_files[{index}]") from None
        # The stages after enrichment, in the order they run on each event (one contract:
        # processors.detect.stage). Sessions annotate an event before the detectors read it, and risky sudo
        # reads the alerts of the stages before it.
        self.detection_stages: tuple[DetectionStage, ...] = (
            LogonSessionTracker(sessions_settings(config)),
            RuleEngine(rules),
            self._sigma_stage(config),
            CommandSpeedDetector(command_speed_settings(config)),
            RiskySudoDetector(risky_sudo_settings(config)),
        )
        self.ioc_extractor = IocExtractor()

    @staticmethod
    def _sigma_stage(config: SecstreamConfig) -> SigmaEngine:
        """The Sigma rules of ``[detection.sigma]`` (bad rules are logged and left out)."""
        sigma = config.detection.sigma
        if not sigma.enabled:
            return SigmaEngine(())
        selection = RuleSelection(sigma.ids, sigma.exclude_ids, sigma.tags, sigma.statuses, sigma.min_level)
        paths = [config.resolve_path(path) for path in sigma.rule_paths]
        return SigmaEngine.load(
            paths, selection, with_project_rules=sigma.use_project_rules, suppress_window_s=sigma.suppress_window_s
        )

    # -- synchronous stages -------------------------------------------------------------------

    def too_long(self, line: RawLine, stream: str, limit: int | None = None) -> dict[str, Any]:
        """The dead letter of a line longer than ``input.max_line_bytes``, or than a driver's own ``limit``
        (the worker's record size) where that is lower; the caller checks the length."""
        self.stats.bad_input[f"{stream}:too_long"] += 1
        if limit is None:
            reason = f"line longer than input.max_line_bytes ({self.config.input.max_line_bytes})"
        else:
            reason = f"line longer than the {limit}-byte record limit"
        return dead_letter(
            original=line.data,
            reason=reason,
            error_type="LineTooLong",
            stream=stream,
            host=line.host,
            timestamp=line.received,
            source=line.source,
            whole=line.whole,
        )

    def _bad(self, line: RawLine, error: Exception, stream: str) -> dict[str, Any]:
        return self._failed(line.data, error, stream, line.host, line.received, line.source)

    def _failed(
        self,
        original: str | bytes,
        error: Exception,
        stream: str,
        host: str | None,
        received: float,
        source: dict[str, Any],
    ) -> dict[str, Any]:
        """The dead letter (and its count) of input that a stage could not process.

        A :class:`SecstreamError` is input the stage rejects by design; any other exception is a value the
        stage cannot represent (a year past 9999, an integer past 64 bits, ...): it is logged, and the input
        becomes a dead letter like any other, so that one line never stops the pipeline.
        """
        name = type(error).__name__
        self.stats.bad_input[f"{stream}:{name}"] += 1
        if isinstance(error, SecstreamError):
            reason, host = error.reason, error.host or host
        else:
            reason = f"{name}: {error}"
            log.warning("pipeline.stage_failed", stream=stream, error_type=name, reason=str(error)[:200])
        return dead_letter(
            original=original,
            reason=reason,
            error_type=name,
            stream=stream,
            host=host,
            timestamp=received,
            source=source,
        )

    def audit_lines(self, lines: Iterable[RawLine], states: MutableMapping[str, HostState]) -> Pending:
        """Parse and coalesce raw audit lines; decode, track and annotate every event they complete."""
        pending = Pending()
        count = 0
        default_host = self.config.input.default_host
        state_host, state = None, None  # the last host's state: lines of one host come in runs
        max_bytes = self.config.input.max_line_bytes
        for line in lines:
            count += 1
            if line.whole is not None or len(line.data) > max_bytes:
                pending.deadletters.append(self.too_long(line, "auditd"))
                continue
            if not line.data:
                self.stats.bad_input["auditd:empty_line"] += 1  # counted, not a dead letter: nothing to keep
                continue
            try:
                record = parse_line(_audit_text(line.data).rstrip("\r\n"))
                if record.node is None and line.host is not None:
                    # The envelope's host stands in for node=, so that event ids differ between hosts.
                    record = replace(record, node=line.host)
                host = record.node or default_host
                if host != state_host or state is None:
                    state_host, state = host, states[host]
                completed = self.coalescer.push(record, state.coalescer, wall_time=line.received)
                if record.epoch > (self.audit_clock or 0.0) and (not line.received or record.epoch <= line.received):
                    self.audit_clock = record.epoch
                # Expiry and eviction run after every record (both return at once when nothing is due), so
                # the output does not depend on where a driver cuts its batches.
                completed += self.coalescer.expire(state.coalescer)
                if completed:
                    self._emit_audit(completed, host, state, pending, line)
                self.tracker.evict(state.tracker, record.epoch)
            except Exception as error:  # any failure on one line makes that line a dead letter
                pending.deadletters.append(self._bad(line, error, "auditd"))
                continue
        self.stats.lines_in["auditd"] += count
        return pending

    def _emit_audit(
        self,
        outputs: Iterable[AuditEvent | LateRecord],
        host: str,
        state: HostState,
        pending: Pending,
        line: RawLine | None = None,
    ) -> None:
        """Decode, track and annotate completed events; an event that fails there becomes a dead letter
        holding its records' lines (``line`` is the input line that completed it, when there is one)."""
        for output in outputs:
            try:
                if isinstance(output, LateRecord):
                    doc = decode_late(output, default_host=host)
                else:
                    doc = self.tracker.process(decode_event(output, default_host=host), state.tracker)
                annotate_event(doc, extractor=self.ioc_extractor)
            except Exception as error:  # one event that cannot be represented never stops the rest
                records = (output.record,) if isinstance(output, LateRecord) else output.records
                pending.deadletters.append(
                    self._failed(
                        "\n".join(record.raw for record in records),
                        error,
                        "auditd",
                        host,
                        line.received if line is not None else 0.0,
                        line.source if line is not None else {},
                    )
                )
                continue
            pending.events.append(doc)

    def syslog_lines(
        self, lines: Iterable[RawLine], states: MutableMapping[str, HostState], *, replay: bool = False
    ) -> Pending:
        """Parse and interpret raw syslog lines, and annotate them with IoCs.

        Each event's id includes where its line was read (``RawLine.source``), so identical lines get
        distinct ids. ``replay``: the lines come from a file read now but written earlier, so their year
        is taken from the audit stream's clock where there is one (see :attr:`audit_clock`).
        """
        del states  # syslog has no synchronous state; sessions are tracked in complete()
        pending = Pending()
        year = self.config.input.syslog_year or None
        for line in lines:
            self.stats.lines_in["syslog"] += 1
            if line.whole is not None or len(line.data) > self.config.input.max_line_bytes:
                pending.deadletters.append(self.too_long(line, "syslog"))
                continue
            if not line.data:
                self.stats.bad_input["syslog:empty_line"] += 1  # counted, not a dead letter: nothing to keep
                continue
            # RFC 3164 has no year: without input.syslog_year it is the year closest to when the line was read,
            # or, replaying files, closest to the audit stream's clock (a 2024 file's lines stay in 2024).
            reference = line.received or None
            if replay and self.audit_clock is not None:
                reference = self.audit_clock
            try:
                doc = parse_syslog_line(
                    _syslog_text(line.data).rstrip("\r\n"),
                    default_host=line.host or self.config.input.default_host,
                    year=year,
                    received=reference,
                    origin=tuple(sorted(line.source.items())) if line.source else None,
                )
                annotate_event(doc, extractor=self.ioc_extractor)
            except Exception as error:  # any failure on one line makes that line a dead letter
                pending.deadletters.append(self._bad(line, error, "syslog"))
                continue
            pending.events.append(doc)
        return pending

    def tick(self, states: MutableMapping[str, HostState], wall_time: float) -> Pending:
        """Flush in-flight audit events of hosts that have been quiet (wall clock), and evict old processes."""
        pending = Pending()
        for host in list(states):
            state = states[host]
            self._emit_audit(self.coalescer.expire(state.coalescer, wall_time=wall_time), host, state, pending)
        return pending

    def shutdown(self, states: MutableMapping[str, HostState]) -> Pending:
        """Flush every in-flight audit event (as partial where it never completed)."""
        pending = Pending()
        for host in list(states):
            state = states[host]
            self._emit_audit(self.coalescer.flush_all(state.coalescer), host, state, pending)
        return pending

    # -- asynchronous completion ---------------------------------------------------------------

    async def close(self) -> None:
        """Release the enrichment clients (HTTP sessions, database readers)."""
        if self.enricher is not None:
            await self.enricher.close()

    async def complete(self, pending: Pending, states: MutableMapping[str, HostState]) -> Outputs:
        """Enrich the pending events and run the detectors on them."""
        events = pending.events
        if self.enricher is not None and events:
            try:
                events = await self.enricher.enrich(events)
            except Exception as error:  # a failed enrichment never costs the batch its events: they go on bare
                self._enrichment_failures[f"failed:{type(error).__name__}"] += 1
                log.warning("pipeline.enrichment_failed", error_type=type(error).__name__, reason=str(error)[:200])
            # Misses are not written into documents: the enricher counts every outcome.
            self.stats.enrichment = Counter(self.enricher.outcomes) + self._enrichment_failures
        outputs = Outputs(deadletters=pending.deadletters)
        for doc in events:
            try:
                state = states[doc["host"]["name"]]
                doc_events: list[dict[str, Any]] = [doc]
                alerts: list[dict[str, Any]] = []
                for stage in self.detection_stages:
                    stage.run(doc, self.stage_state(state, stage), doc_events, alerts)
            except Exception as error:  # one event the detection stages cannot take never stops the rest
                stream = str(doc.get("event", {}).get("module", "unknown"))
                outputs.deadletters.append(self._failed(_document_bytes(doc), error, stream, None, 0.0, {}))
                continue
            outputs.events.extend(doc_events)
            outputs.detections.extend(alerts)
        self._count(outputs)
        return outputs

    @staticmethod
    def stage_state(state: HostState, stage: DetectionStage) -> Any:
        """The host's state of one detection stage: created on first use, or restored from its snapshot."""
        if stage.state_type is None:
            return None
        current = state.detect.get(stage.name)
        if current is None:
            part = state.restored.pop(stage.name, None)
            current = stage.state_type() if part is None else stage.state_type.from_snapshot(part)
            state.detect[stage.name] = current
        return current

    def collect_state_counters(self, states: MutableMapping[str, HostState]) -> None:
        """Refresh the state-held counters in :attr:`stats` (coalescer and process tracker, all hosts)."""
        audit: Counter[str] = Counter()
        proctree: Counter[str] = Counter()
        if isinstance(states, HostStates):
            audit.update(states.spilled_counters[0])
            proctree.update(states.spilled_counters[1])
            self.stats.hosts = Counter(
                in_memory=len(states.in_memory()), spilled=states.spills, restored=states.restores
            )
        for state in states.in_memory() if isinstance(states, HostStates) else states.values():
            host_audit, host_tree = state.counters()
            audit.update(host_audit)
            proctree.update(host_tree)
        self.stats.audit = audit
        self.stats.proctree = proctree

    def _count(self, outputs: Outputs) -> None:
        for doc in outputs.events:
            event = doc["event"]
            self.stats.events_out[f"{event['module']}:{event.get('action', 'unknown')}"] += 1
        for doc in outputs.detections:
            self.stats.detections[doc["rule"]["id"]] += 1
