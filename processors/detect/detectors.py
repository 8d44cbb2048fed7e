"""Stateful stream detectors: command speed (msticpy's ``cmd_speed``) and risky sudo sessions.

* :class:`CommandSpeedDetector` keeps a sliding window per (host, user) over command executions (auditd
  ``execve``/``execveat`` documents and successful sudo command lines) and raises a detection when a
  command arrives less than ``time_s`` seconds after the command ``events`` positions earlier, i.e. when
  ``events + 1`` commands fall within less than ``time_s`` seconds. This is exactly the batch
  :func:`processors.cmd_line.cmd_speed` rule applied to time-sorted input; the defaults are msticpy's
  (``events=10``, ``time=5``). After a detection the window restarts, so a long burst raises one detection
  per ``events + 1`` commands, and a replayed event (same ``event.id``) is ignored.
* :class:`RiskySudoDetector` joins sudo sessions (``secstream.session`` with service ``sudo``/``su``, set by
  :class:`processors.detect.sessions.LogonSessionTracker`; a sudo command line without it is its own session)
  with the detections raised on the session's events: the first rule hit and the first speed hit of a
  session each raise one "risky sudo session" detection (msticpy's ``risky_sudo_sessions``).

Detection ids are derived from the rule id and the evidence event ids, so they are deterministic.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from processors.document import EXEC_SYSCALLS, audit_user, event_epoch, syslog_details
from schemas.documents import detection

__all__ = [
    "CMD_SPEED_RULE_ID",
    "RISKY_SUDO_COMMAND_RULE_ID",
    "RISKY_SUDO_SPEED_RULE_ID",
    "CommandSpeedDetector",
    "CommandSpeedSettings",
    "CommandSpeedState",
    "RiskySudoDetector",
    "RiskySudoSettings",
    "RiskySudoState",
    "command_of",
]

CMD_SPEED_RULE_ID = "secstream.cmd_speed"
RISKY_SUDO_COMMAND_RULE_ID = "secstream.risky_sudo.command"
RISKY_SUDO_SPEED_RULE_ID = "secstream.risky_sudo.speed"


def _techniques(alert: Mapping[str, Any]) -> list[str]:
    """The technique and sub-technique ids of an alert."""
    technique = (alert.get("threat") or {}).get("technique") or {}
    return [*technique.get("id", []), *(technique.get("subtechnique") or {}).get("id", [])]


def command_of(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return ``(user, command line)`` when the document is a command execution, else None.

    Args:
        doc: an event document.

    Returns:
        For auditd exec events the user (``user.name``, else audit user, else uid) and
        ``process.command_line``; for successful sudo command lines the invoking user and the command.
    """
    event = doc.get("event") or {}
    action = event.get("action")
    if event.get("module") == "auditd" and action in EXEC_SYSCALLS:
        user = doc.get("user") or {}
        audit = audit_user(doc)
        name = user.get("name") or audit.get("name") or user.get("id") or audit.get("id") or "unknown"
        command = (doc.get("process") or {}).get("command_line") or ""
        return str(name), str(command)
    if action == "sudo_command" and event.get("outcome") == "success":
        user = doc.get("user") or {}
        return str(user.get("name") or "unknown"), str(syslog_details(doc).get("command") or "")
    return None


@dataclass(frozen=True, slots=True)
class CommandSpeedSettings:
    """Settings of :class:`CommandSpeedDetector`.

    Args:
        events: msticpy's ``events``: a burst is ``events + 1`` commands.
        time_s: msticpy's ``time``: the burst spans less than this many seconds.
        severity: ECS severity of the detection.
        technique: ATT&CK techniques of the detection.
        max_keys: (host, user) windows kept; the least recently active are dropped beyond it.
    """

    events: int = 10
    time_s: float = 5.0
    severity: int = 47
    technique: tuple[str, ...] = ("T1059.004",)
    max_keys: int = 100_000


@dataclass(slots=True)
class CommandSpeedState:
    """Windows per ``"host\\x1fuser"``: time-sorted ``[epoch, event_id, command]`` entries, plus the time
    of the last detection per key (events at or before it are not counted again)."""

    windows: dict[str, list[list[Any]]] = field(default_factory=dict)
    fired_until: dict[str, float] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """Return an orjson-ready copy of the state."""
        return {
            "windows": {k: [list(e) for e in v] for k, v in self.windows.items()},
            "fired_until": dict(self.fired_until),
            "last_seen": dict(self.last_seen),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> CommandSpeedState:
        """Rebuild the state from :meth:`snapshot` output.

        Args:
            data: a snapshot.

        Returns:
            The state.
        """
        return cls(
            windows={k: [list(e) for e in v] for k, v in data.get("windows", {}).items()},
            fired_until=dict(data.get("fired_until", {})),
            last_seen=dict(data.get("last_seen", {})),
        )


class CommandSpeedDetector:
    """Detect bursts of commands per (host, user).

    Args:
        settings: burst size, window and detection fields.
    """

    name: ClassVar[str] = "speed"
    state_type: ClassVar[type[CommandSpeedState]] = CommandSpeedState

    def __init__(self, settings: CommandSpeedSettings | None = None) -> None:
        self.settings = settings or CommandSpeedSettings()

    def run(
        self, doc: dict[str, Any], state: CommandSpeedState, events: list[dict[str, Any]], alerts: list[dict[str, Any]]
    ) -> None:
        """The stage contract (:mod:`processors.detect.stage`): a burst's alert."""
        del events
        alerts.extend(self.process(doc, state))

    def process(self, doc: Mapping[str, Any], state: CommandSpeedState) -> list[dict[str, Any]]:
        """Add one document to its window and return a detection when it completes a burst.

        Args:
            doc: an event document; documents that are not command executions are ignored.
            state: the detector state.

        Returns:
            Zero or one detection document.
        """
        found = command_of(doc)
        if found is None:
            return []
        user, command = found
        host = str((doc.get("host") or {}).get("name", "unknown"))
        key = f"{host}\x1f{user}"
        now = event_epoch(doc)
        event_id = str((doc.get("event") or {}).get("id", ""))
        if now <= state.fired_until.get(key, float("-inf")):
            return []
        window = state.windows.setdefault(key, [])
        if any(entry[1] == event_id for entry in window):
            return []
        bisect.insort(window, [now, event_id, command])
        state.last_seen[key] = max(now, state.last_seen.get(key, now))
        size, span = self.settings.events + 1, self.settings.time_s
        newest = window[-1][0]
        while window and newest - window[0][0] >= span and len(window) > 1:
            window.pop(0)
        hit = None
        for start in range(len(window) - size + 1):
            if window[start + size - 1][0] - window[start][0] < span:
                hit = window[start : start + size]
                break
        self._bound(state)
        if hit is None:
            return []
        state.windows.pop(key, None)
        state.fired_until[key] = hit[-1][0]
        delta = hit[-1][0] - hit[0][0]
        return [
            detection(
                rule_id=CMD_SPEED_RULE_ID,
                rule_name="Rapid command execution",
                rule_version="1",
                severity=self.settings.severity,
                technique_ids=self.settings.technique,
                host=host,
                timestamp=hit[-1][0],
                evidence_event_ids=[entry[1] for entry in hit],
                message=f"{len(hit)} commands by {user} within {delta:.3f}s",
                description=(
                    f"More than {self.settings.events} commands by one user on one host within less than "
                    f"{self.settings.time_s:g} seconds (msticpy's cmd_speed)."
                ),
                source_event=doc,
                extra={
                    "cmd_speed": {
                        "user": user,
                        "events": len(hit),
                        "delta_s": round(delta, 3),
                        "commands": [entry[2] for entry in hit],
                    }
                },
            )
        ]

    def _bound(self, state: CommandSpeedState) -> None:
        excess = len(state.last_seen) - self.settings.max_keys
        if excess <= 0:
            return
        for key in sorted(state.last_seen, key=state.last_seen.__getitem__)[:excess]:
            state.last_seen.pop(key, None)
            state.windows.pop(key, None)
            state.fired_until.pop(key, None)


@dataclass(frozen=True, slots=True)
class RiskySudoSettings:
    """Settings of :class:`RiskySudoDetector`.

    Args:
        services: session services that count as privilege elevation.
        command_severity: severity when a rule matched a command of the session.
        speed_severity: severity when a command burst happened in the session.
        technique: ATT&CK techniques of the detections.
        ttl_s: a session without events for this long is forgotten.
        max_sessions: sessions kept; the least recently active are dropped beyond it.
    """

    services: tuple[str, ...] = ("sudo", "su")
    command_severity: int = 73
    speed_severity: int = 47
    technique: tuple[str, ...] = ("T1548.003",)
    ttl_s: float = 86400.0
    max_sessions: int = 100_000


@dataclass(slots=True)
class RiskySudoState:
    """Per session id: ``{"last_ts": float, "fired": [kind, ...]}``."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    swept_at: float = float("-inf")

    def snapshot(self) -> dict[str, Any]:
        """Return an orjson-ready copy of the state."""
        return {"sessions": {k: {"last_ts": v["last_ts"], "fired": list(v["fired"])} for k, v in self.sessions.items()}}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> RiskySudoState:
        """Rebuild the state from :meth:`snapshot` output.

        Args:
            data: a snapshot.

        Returns:
            The state.
        """
        sessions = data.get("sessions", {})
        return cls(sessions={k: {"last_ts": v["last_ts"], "fired": list(v["fired"])} for k, v in sessions.items()})


class RiskySudoDetector:
    """Flag sudo/su sessions in which a risky command or a command burst happened.

    Args:
        settings: services, severities and limits.
    """

    name: ClassVar[str] = "sudo"
    state_type: ClassVar[type[RiskySudoState]] = RiskySudoState

    def __init__(self, settings: RiskySudoSettings | None = None) -> None:
        self.settings = settings or RiskySudoSettings()

    def _session(self, doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool] | None:
        """The sudo/su session of ``doc``, and whether later events can belong to it: a sudo command the
        session tracker placed in no session is a session of its own, which nothing else will name."""
        session = (doc.get("secstream") or {}).get("session")
        if isinstance(session, Mapping) and session.get("service") in self.settings.services:
            return session, True
        event = doc.get("event") or {}
        if event.get("action") == "sudo_command":
            user = (doc.get("user") or {}).get("name")
            alone = {"id": str(event.get("id", "")), "service": "sudo", "user": user, "start": doc.get("@timestamp")}
            return alone, False
        return None

    def run(
        self, doc: dict[str, Any], state: RiskySudoState, events: list[dict[str, Any]], alerts: list[dict[str, Any]]
    ) -> None:
        """The stage contract (:mod:`processors.detect.stage`): reads the alerts earlier stages raised."""
        del events
        alerts.extend(self.process(doc, state, alerts))

    def process(
        self, doc: Mapping[str, Any], state: RiskySudoState, detections: Sequence[Mapping[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """Join the detections raised on one document with its sudo session.

        Args:
            doc: the event document (after the session tracker annotated it).
            state: the detector state.
            detections: the detections the rule engine and the speed detector raised on ``doc``.

        Returns:
            Up to two detections: the session's first risky command and its first command burst.
        """
        now = event_epoch(doc)
        self._expire(state, now)
        found = self._session(doc)
        if found is None:
            return []
        session, shared = found
        entry = state.sessions.get(session["id"]) if shared else None
        if entry is None:
            # Kept only once something fired in the session (below), and only for a session later events
            # can name: an entry with nothing fired means what no entry means, and one per session for a
            # day grew every host's state by the session count.
            entry = {"last_ts": now, "fired": []}
        elif now > entry["last_ts"]:
            entry["last_ts"] = now
        if not detections:
            if len(state.sessions) > self.settings.max_sessions:
                self._bound(state)
            return []
        out: list[dict[str, Any]] = []
        for hit in detections:
            rule = hit.get("rule") or {}
            speed = rule.get("id") == CMD_SPEED_RULE_ID
            kind = "speed" if speed else "command"
            if kind in entry["fired"] or str(rule.get("id", "")).startswith("secstream.risky_sudo"):
                continue
            entry["fired"].append(kind)
            if shared:
                state.sessions[session["id"]] = entry
            evidence = list((hit.get("secstream") or {}).get("evidence", {}).get("event_ids", []))
            event_id = str((doc.get("event") or {}).get("id", ""))
            what = "a command burst" if speed else f"rule {rule.get('name', rule.get('id'))}"
            out.append(
                detection(
                    rule_id=RISKY_SUDO_SPEED_RULE_ID if speed else RISKY_SUDO_COMMAND_RULE_ID,
                    rule_name="Suspicious event pattern in sudo session" if speed else "Risky command in sudo session",
                    rule_version="1",
                    severity=self.settings.speed_severity if speed else self.settings.command_severity,
                    technique_ids=sorted({*self.settings.technique, *_techniques(hit)}),
                    host=str((doc.get("host") or {}).get("name", "unknown")),
                    timestamp=now,
                    evidence_event_ids=[*evidence, event_id],
                    message=f"{session.get('service')} session of {session.get('user')}: {what}",
                    description=(
                        "A command burst in a sudo or su session (msticpy's risky_sudo_sessions)."
                        if speed
                        else "A detection rule matched a command of a sudo or su session (msticpy's "
                        "risky_sudo_sessions)."
                    ),
                    source_event=doc,
                    extra={
                        "session": dict(session),
                        "triggered_by": {"rule_id": rule.get("id"), "event_id": hit.get("event", {}).get("id")},
                    },
                )
            )
        self._bound(state)
        return out

    def _expire(self, state: RiskySudoState, now: float) -> None:
        ttl = self.settings.ttl_s
        if now - state.swept_at < ttl / 16:
            return
        state.swept_at = now
        for key in [k for k, v in state.sessions.items() if now - v["last_ts"] > ttl]:
            del state.sessions[key]

    def _bound(self, state: RiskySudoState) -> None:
        excess = len(state.sessions) - self.settings.max_sessions
        if excess > 0:
            for key in sorted(state.sessions, key=lambda k: state.sessions[k]["last_ts"])[:excess]:
                del state.sessions[key]
