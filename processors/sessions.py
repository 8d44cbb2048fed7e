"""Logon-session tracking over syslog and auditd documents, keyed by host and session.

Pairing (unlike msticpy's ``cluster_syslog_logons_df``, which pairs opens and closes by order):

* syslog: a session is identified by (host, PAM service, session user, process id). sshd ``Accepted``
  and sudo command lines open a *pending* session that the PAM ``session opened`` of the same key joins
  (keeping the source ip, the invoking user and the first time); ``session closed`` closes the oldest open
  session of the same key. Without a pid (Log Analytics rows often lack it) the key is (host, service,
  session user), and a close pairs with the oldest such open session that started before it, so overlapping
  sessions of different users or services never steal each other's close.
* auditd: ``login`` (LOGIN, the new ``auditd.session``), ``user_login``, ``user_start`` open or join the
  session (host, ``auditd.session``); ``user_end`` closes it. Every other auditd document with an open
  session id (exec events included) is annotated with it.

Every document that belongs to a session gets ``secstream.session`` = {id, start, user, service,
source_ip}. When a session closes, :meth:`LogonSessionTracker.process` returns one *session summary*
event document (``event.action: "session_summary"``, ``event.dataset: "secstream.session"``,
``secstream.session`` with ``end``, ``duration_s`` and ``event_count``); it detects nothing by itself.

State is bounded: at most ``max_sessions_per_host`` open sessions per host (the least recently active is
dropped first), sessions idle longer than ``ttl_s`` and pending sessions never opened after
``pending_ttl_s`` expire on event time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.documents import SCHEMA_VERSION, iso_timestamp, stable_id

__all__ = ["LogonSessionSettings", "LogonSessionState", "LogonSessionTracker", "event_epoch"]

_AUDIT_OPEN = frozenset({"login", "user_login", "user_start"})
_AUDIT_CLOSE = frozenset({"user_end"})


def event_epoch(doc: Mapping[str, Any]) -> float:
    """Return the ``@timestamp`` of a document as epoch seconds (0.0 when missing or malformed).

    Args:
        doc: an event document.

    Returns:
        Epoch seconds.
    """
    stamp = doc.get("@timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return 0.0
    return 0.0


@dataclass(frozen=True, slots=True)
class LogonSessionSettings:
    """Settings of :class:`LogonSessionTracker`.

    Args:
        max_sessions_per_host: open or pending sessions kept per host.
        ttl_s: a session without activity for this long is forgotten.
        pending_ttl_s: a pending session (sshd Accepted, sudo command) that no PAM open joined is forgotten.
        join_window_s: how far apart a pid-less pending session and its PAM open may be.
    """

    max_sessions_per_host: int = 1024
    ttl_s: float = 86400.0
    pending_ttl_s: float = 120.0
    join_window_s: float = 5.0


@dataclass(slots=True)
class LogonSessionState:
    """Open and pending sessions per host: ``hosts[host][session_id] = record`` (plain dicts)."""

    hosts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """Return an orjson-ready copy of the state."""
        return {"hosts": {h: {k: dict(v) for k, v in s.items()} for h, s in self.hosts.items()}}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> LogonSessionState:
        """Rebuild the state from :meth:`snapshot` output.

        Args:
            data: a snapshot.

        Returns:
            The state.
        """
        hosts = data.get("hosts", {})
        return cls(hosts={h: {k: dict(v) for k, v in s.items()} for h, s in hosts.items()})


def _norm(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class LogonSessionTracker:
    """Pair session opens and closes and annotate documents with their session.

    Args:
        settings: limits and time windows.
    """

    def __init__(self, settings: LogonSessionSettings | None = None) -> None:
        self.settings = settings or LogonSessionSettings()

    def process(self, doc: dict[str, Any], state: LogonSessionState) -> list[dict[str, Any]]:
        """Update the sessions with one document and annotate it with ``secstream.session``.

        Args:
            doc: a syslog or auditd event document (mutated: ``secstream.session`` is added).
            state: the tracker state of the document's host partition.

        Returns:
            A session summary document when the document closes a session, else an empty list.
        """
        event = doc.get("event") or {}
        host = str((doc.get("host") or {}).get("name", "unknown"))
        now = event_epoch(doc)
        sessions = state.hosts.setdefault(host, {})
        self._expire(sessions, now)
        if event.get("module") == "auditd":
            record, closed = self._auditd(doc, event, sessions, host, now)
        else:
            record, closed = self._syslog(doc, event, sessions, host, now)
        if record is None:
            if not sessions:
                state.hosts.pop(host, None)
            return []
        record["last_ts"] = max(record["last_ts"], now)
        record["event_count"] += 1
        doc.setdefault("secstream", {})["session"] = {
            "id": record["id"],
            "start": iso_timestamp(record["start_ts"]),
            "user": record["user"],
            "service": record["service"],
            "source_ip": record["source_ip"],
        }
        self._bound(sessions)
        if not closed:
            return []
        sessions.pop(record["key"], None)
        if not sessions:
            state.hosts.pop(host, None)
        return [self._summary(record, doc, host, now)]

    # ------------------------------------------------------------------------------------------- syslog
    def _syslog(
        self, doc: dict[str, Any], event: Mapping[str, Any], sessions: dict[str, dict[str, Any]], host: str, now: float
    ) -> tuple[dict[str, Any] | None, bool]:
        action = event.get("action")
        extra = doc.get("syslog") or {}
        user = doc.get("user") or {}
        pid = _norm((doc.get("process") or {}).get("pid"))
        if action == "ssh_login" and event.get("outcome") == "success":
            name = _norm(user.get("name"))
            ip = _norm((doc.get("source") or {}).get("ip"))
            return self._new(sessions, host, "sshd", name, pid, now, invoker=name, source_ip=ip, opened=False), False
        if action == "sudo_command" and event.get("outcome") == "success":
            target = _norm((user.get("target") or {}).get("name")) or "root"
            invoker = _norm(user.get("name"))
            found = self._find(sessions, "sudo", target, pid, now, invoker=invoker)
            if found is not None:
                return found, False
            return self._new(sessions, host, "sudo", target, pid, now, invoker=invoker, opened=False), False
        if action in ("session_opened", "session_closed"):
            service = _norm(extra.get("service")) or "unknown"
            session_user = _norm(extra.get("session_user"))
            if action == "session_opened":
                pending = self._find(sessions, service, session_user, pid, now, pending=True)
                invoker = _norm(user.get("name")) or session_user
                if pending is not None:
                    pending["opened"] = True
                    pending["user"] = pending["user"] or invoker
                    return pending, False
                return self._new(sessions, host, service, session_user, pid, now, invoker=invoker, opened=True), False
            found = self._find(sessions, service, session_user, pid, now, opened_only=True)
            return found, found is not None
        if pid is not None:
            app = _norm((doc.get("process") or {}).get("name"))
            for record in sessions.values():
                if record["pid"] == pid and record["service"] == app:
                    return record, False
        return None, False

    # ------------------------------------------------------------------------------------------- auditd
    def _auditd(
        self, doc: dict[str, Any], event: Mapping[str, Any], sessions: dict[str, dict[str, Any]], host: str, now: float
    ) -> tuple[dict[str, Any] | None, bool]:
        ses = _norm((doc.get("auditd") or {}).get("session"))
        if ses is None or ses == "4294967295":
            return None, False
        action = event.get("action")
        record = sessions.get(f"auditd:{ses}")
        user = doc.get("user") or {}
        audit_user = user.get("audit") or {}
        name = _norm(audit_user.get("name")) or _norm(user.get("name")) or _norm(audit_user.get("id"))
        if action in _AUDIT_OPEN:
            ip = _norm((doc.get("source") or {}).get("ip"))
            service = _norm((doc.get("process") or {}).get("name")) or "auditd"
            if record is None:
                record = self._new(
                    sessions,
                    host,
                    service,
                    name,
                    ses,
                    now,
                    invoker=name,
                    source_ip=ip,
                    opened=True,
                    key=f"auditd:{ses}",
                )
            else:
                record["source_ip"] = record["source_ip"] or ip
                record["user"] = record["user"] or name
                if record["service"] == "auditd" and service != "auditd":
                    record["service"] = service
            return record, False
        if record is None:
            return None, False
        return record, action in _AUDIT_CLOSE

    # ------------------------------------------------------------------------------------------- helpers
    def _new(
        self,
        sessions: dict[str, dict[str, Any]],
        host: str,
        service: str,
        session_user: str | None,
        pid: str | None,
        now: float,
        *,
        invoker: str | None,
        opened: bool,
        source_ip: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        session_id = stable_id("session", host, service, session_user, pid, now)
        record: dict[str, Any] = {
            "id": session_id,
            "key": key or session_id,
            "service": service,
            "session_user": session_user,
            "pid": pid,
            "user": invoker or session_user,
            "source_ip": source_ip,
            "start_ts": now,
            "last_ts": now,
            "opened": opened,
            "event_count": 0,
        }
        sessions[record["key"]] = record
        return record

    def _find(
        self,
        sessions: Mapping[str, dict[str, Any]],
        service: str,
        session_user: str | None,
        pid: str | None,
        now: float,
        *,
        pending: bool = False,
        opened_only: bool = False,
        invoker: str | None = None,
    ) -> dict[str, Any] | None:
        best: dict[str, Any] | None = None
        for record in sessions.values():
            if record["service"] != service or record["session_user"] != session_user or record["pid"] != pid:
                continue
            if pending and (
                record["opened"] or (pid is None and now - record["start_ts"] > self.settings.join_window_s)
            ):
                continue
            if opened_only and not record["opened"]:
                continue
            if invoker is not None and record["user"] not in (invoker, None):
                continue
            if record["start_ts"] > now:
                continue
            if pending or invoker is not None:  # newest candidate
                if best is None or record["start_ts"] >= best["start_ts"]:
                    best = record
            elif best is None or record["start_ts"] < best["start_ts"]:  # oldest open session
                best = record
        return best

    def _expire(self, sessions: dict[str, dict[str, Any]], now: float) -> None:
        ttl, pending_ttl = self.settings.ttl_s, self.settings.pending_ttl_s
        stale = [
            key
            for key, record in sessions.items()
            if now - record["last_ts"] > ttl or (not record["opened"] and now - record["last_ts"] > pending_ttl)
        ]
        for key in stale:
            del sessions[key]

    def _bound(self, sessions: dict[str, dict[str, Any]]) -> None:
        excess = len(sessions) - self.settings.max_sessions_per_host
        if excess > 0:
            for key in sorted(sessions, key=lambda k: sessions[k]["last_ts"])[:excess]:
                del sessions[key]

    def _summary(self, record: Mapping[str, Any], doc: Mapping[str, Any], host: str, now: float) -> dict[str, Any]:
        event = doc.get("event") or {}
        duration = max(0.0, now - record["start_ts"])
        session = {
            "id": record["id"],
            "start": iso_timestamp(record["start_ts"]),
            "end": iso_timestamp(now),
            "duration_s": round(duration, 3),
            "user": record["user"],
            "session_user": record["session_user"],
            "service": record["service"],
            "source_ip": record["source_ip"],
            "pid": record["pid"],
            "event_count": record["event_count"],
        }
        summary: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "@timestamp": iso_timestamp(now),
            "message": f"{record['service']} session of {record['user']} closed after {duration:.0f}s",
            "event": {
                "id": stable_id("session_summary", record["id"], event.get("id")),
                "kind": "event",
                "module": event.get("module", "syslog"),
                "dataset": "secstream.session",
                "action": "session_summary",
                "category": ["session"],
                "type": ["end"],
                "outcome": "success",
                "duration": int(duration * 1e9),
            },
            "host": {"name": host},
            "secstream": {"session": session},
        }
        if record["user"]:
            summary["user"] = {"name": record["user"]}
            summary["related"] = {"user": [record["user"]]}
        if record["source_ip"]:
            summary["source"] = {"ip": record["source_ip"]}
            summary.setdefault("related", {})["ip"] = [record["source_ip"]]
        return summary
