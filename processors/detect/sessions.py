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
event document (``event.action: "session_summary"``, ``event.dataset: "<module>.session"``, the session's
times in ``event.start``, ``event.end`` and ``event.duration``, ``secstream.session`` with ``event_count``);
it detects nothing by itself.

State is bounded: at most ``max_sessions_per_host`` open sessions per host (the least recently active is
dropped first), sessions idle longer than ``ttl_s`` and pending sessions never opened after
``pending_ttl_s`` expire on event time.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from processors.document import audit_user, event_epoch, syslog_details
from schemas.documents import ECS_VERSION, SCHEMA_VERSION, iso_timestamp, stable_id

__all__ = ["LogonSessionSettings", "LogonSessionState", "LogonSessionTracker"]

_AUDIT_OPEN = frozenset({"login", "user_login", "user_start"})
_AUDIT_CLOSE = frozenset({"user_end"})
_SYSLOG_ACTIONS = frozenset({"ssh_login", "sudo_command", "session_opened", "session_closed"})
_LAST_TS = operator.itemgetter("last_ts")
# expiry checks are queued this much early, so float rounding of "last + ttl" never skips one that is due
_EXPIRY_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class LogonSessionSettings:
    """Settings of :class:`LogonSessionTracker`.

    Args:
        max_sessions_per_host: open or pending sessions kept per host.
        ttl_s: a session without activity for this long is forgotten.
        pending_ttl_s: a pending session (sshd Accepted, sudo command) that no PAM open joined is forgotten.
        join_window_s: how far apart a pid-less pending session and its PAM open may be.
    """

    max_sessions_per_host: int = 10_000
    ttl_s: float = 86400.0
    pending_ttl_s: float = 120.0
    join_window_s: float = 5.0


_Key = tuple[str | None, str | None, str | None]


class _HostIndex:
    """Lookups over one host's records (derived from ``hosts[host]``, never snapshotted).

    ``by_key[(service, session_user, pid)]`` and ``by_pid[(pid, service)]`` list the records in insertion
    order (the order of ``hosts[host]``), so scanning them gives the same first/oldest/newest record as
    scanning every session. ``expiries`` is a heap of ``(earliest expiry, seq, key, record)``: records only
    ever become fresher, so an entry is a lower bound of its record's expiry, re-checked when it comes due.
    """

    __slots__ = ("by_key", "by_pid", "expiries", "seq")

    def __init__(self) -> None:
        self.by_key: dict[_Key, list[dict[str, Any]]] = {}
        self.by_pid: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
        self.expiries: list[tuple[float, int, str, dict[str, Any]]] = []
        self.seq = 0

    def schedule(self, record: dict[str, Any], limits: tuple[float, float]) -> None:
        """Queue the record's expiry check (``limits``: ttl and pending ttl)."""
        ttl, pending_ttl = limits
        limit = ttl if record["opened"] else min(ttl, pending_ttl)
        self.seq += 1
        heapq.heappush(self.expiries, (record["last_ts"] + limit - _EXPIRY_MARGIN_S, self.seq, record["key"], record))

    def add(self, record: dict[str, Any]) -> None:
        self.by_key.setdefault((record["service"], record["session_user"], record["pid"]), []).append(record)
        if record["pid"] is not None:
            self.by_pid.setdefault((record["pid"], record["service"]), []).append(record)

    def rebuild(self, sessions: Mapping[str, dict[str, Any]]) -> None:
        self.by_key.clear()
        self.by_pid.clear()
        for record in sessions.values():
            self.add(record)

    def remove(self, record: Mapping[str, Any]) -> None:
        _discard(self.by_key, (record["service"], record["session_user"], record["pid"]), record)
        if record["pid"] is not None:
            _discard(self.by_pid, (record["pid"], record["service"]), record)


def _discard(index: dict[Any, list[dict[str, Any]]], key: Any, record: Mapping[str, Any]) -> None:
    bucket = index.get(key)
    if bucket is None:
        return
    for position, candidate in enumerate(bucket):
        if candidate is record:
            del bucket[position]
            break
    if not bucket:
        del index[key]


@dataclass(slots=True)
class LogonSessionState:
    """Open and pending sessions per host: ``hosts[host][session_id] = record`` (plain dicts).

    ``hosts`` is owned by the tracker (it keeps lookup indexes next to it); a sweep of expired records
    happens only when one can have expired, so a snapshot may still hold records that expired since.
    """

    hosts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _index: dict[str, _HostIndex] = field(default_factory=dict, repr=False, compare=False)

    def index(self, host: str, sessions: Mapping[str, dict[str, Any]], limits: tuple[float, float]) -> _HostIndex:
        """Return the lookup index of ``host`` (built from ``sessions`` when missing)."""
        found = self._index.get(host)
        if found is None:
            found = self._index[host] = _HostIndex()
            for record in sessions.values():
                found.add(record)
                found.schedule(record, limits)
        return found

    def register_index(self, host: str, index: _HostIndex) -> None:
        """Keep ``index`` as the lookup index of ``host`` (built alongside its first sessions)."""
        self._index[host] = index

    def drop_host(self, host: str) -> None:
        """Forget a host whose sessions are all gone."""
        self.hosts.pop(host, None)
        self._index.pop(host, None)

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

    name: ClassVar[str] = "sessions"
    state_type: ClassVar[type[LogonSessionState]] = LogonSessionState

    def __init__(self, settings: LogonSessionSettings | None = None) -> None:
        self.settings = settings or LogonSessionSettings()
        self._limits = (self.settings.ttl_s, self.settings.pending_ttl_s)

    def run(
        self, doc: dict[str, Any], state: LogonSessionState, events: list[dict[str, Any]], alerts: list[dict[str, Any]]
    ) -> None:
        """The stage contract (:mod:`processors.detect.stage`): annotate, and add a closing session's summary."""
        del alerts
        events.extend(self.process(doc, state))

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
        sessions = state.hosts.get(host)
        if sessions is None:
            # Most documents of a host without sessions open none: its state is registered only when one opens.
            sessions, index = {}, _HostIndex()
        else:
            index = state.index(host, sessions, self._limits)
            expiries = index.expiries
            if expiries and now > expiries[0][0]:
                self._expire(sessions, index, now)
        if event.get("module") == "auditd":
            record, closed = self._auditd(doc, event, sessions, index, host, now)
        else:
            record, closed = self._syslog(doc, event, sessions, index, host, now)
        if sessions and state.hosts.get(host) is not sessions:
            state.hosts[host] = sessions
            state.register_index(host, index)
        if record is None:
            if not sessions:
                state.drop_host(host)
            return []
        if now > record["last_ts"]:
            record["last_ts"] = now
        record["event_count"] += 1
        doc.setdefault("secstream", {})["session"] = {
            "id": record["id"],
            "start": iso_timestamp(record["start_ts"]),
            "user": record["user"],
            "service": record["service"],
            "source_ip": record["source_ip"],
        }
        if len(sessions) > self.settings.max_sessions_per_host:
            self._bound(sessions, index)
        if not closed:
            return []
        if sessions.get(record["key"]) is record:
            del sessions[record["key"]]
            index.remove(record)
        if not sessions:
            state.drop_host(host)
        return [self._summary(record, doc, host, now)]

    # ------------------------------------------------------------------------------------------- syslog
    def _syslog(
        self,
        doc: dict[str, Any],
        event: Mapping[str, Any],
        sessions: dict[str, dict[str, Any]],
        index: _HostIndex,
        host: str,
        now: float,
    ) -> tuple[dict[str, Any] | None, bool]:
        action = event.get("action")
        process = doc.get("process") or {}
        pid = _norm(process.get("pid"))
        if action == "log" or action not in _SYSLOG_ACTIONS:
            return self._by_pid(index, pid, process)
        extra = syslog_details(doc)
        user = doc.get("user") or {}
        if action == "ssh_login":
            if event.get("outcome") != "success":
                return self._by_pid(index, pid, process)
            name = _norm(user.get("name"))
            ip = _norm((doc.get("source") or {}).get("ip"))
            record = self._new(sessions, index, host, "sshd", name, pid, now, invoker=name, source_ip=ip, opened=False)
            return record, False
        if action == "sudo_command":
            if event.get("outcome") != "success":
                return self._by_pid(index, pid, process)
            target = _norm((user.get("target") or {}).get("name")) or "root"
            invoker = _norm(user.get("name"))
            found = self._find(index, "sudo", target, pid, now, invoker=invoker)
            if found is not None:
                return found, False
            return self._new(sessions, index, host, "sudo", target, pid, now, invoker=invoker, opened=False), False
        service = _norm(extra.get("service")) or "unknown"
        session_user = _norm(extra.get("session_user"))
        if action == "session_opened":
            pending = self._find(index, service, session_user, pid, now, pending=True)
            invoker = _norm(user.get("name")) or session_user
            if pending is not None:
                pending["opened"] = True
                pending["user"] = pending["user"] or invoker
                return pending, False
            record = self._new(sessions, index, host, service, session_user, pid, now, invoker=invoker, opened=True)
            return record, False
        found = self._find(index, service, session_user, pid, now, opened_only=True)
        return found, found is not None

    @staticmethod
    def _by_pid(index: _HostIndex, pid: str | None, process: Mapping[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        if pid is not None:
            candidates = index.by_pid.get((pid, _norm(process.get("name"))))
            if candidates:
                return candidates[0], False
        return None, False

    # ------------------------------------------------------------------------------------------- auditd
    def _auditd(
        self,
        doc: dict[str, Any],
        event: Mapping[str, Any],
        sessions: dict[str, dict[str, Any]],
        index: _HostIndex,
        host: str,
        now: float,
    ) -> tuple[dict[str, Any] | None, bool]:
        ses = _norm((doc.get("auditd") or {}).get("session"))
        if ses is None or ses == "4294967295":
            return None, False
        action = event.get("action")
        record = sessions.get(f"auditd:{ses}")
        if action not in _AUDIT_OPEN:
            if record is None:
                return None, False
            return record, action in _AUDIT_CLOSE
        user = doc.get("user") or {}
        login = audit_user(doc)
        # PAM's account (acct=) is user.effective on user-space audit records
        name = (
            _norm(login.get("name"))
            or _norm((user.get("effective") or {}).get("name"))
            or _norm(user.get("name"))
            or _norm(login.get("id"))
        )
        ip = _norm((doc.get("source") or {}).get("ip"))
        service = _norm((doc.get("process") or {}).get("name")) or "auditd"
        if record is None:
            record = self._new(
                sessions, index, host, service, name, ses, now, invoker=name, source_ip=ip, opened=True,
                key=f"auditd:{ses}",
            )  # fmt: skip
        else:
            record["source_ip"] = record["source_ip"] or ip
            record["user"] = record["user"] or name
            if record["service"] == "auditd" and service != "auditd":
                record["service"] = service
                index.rebuild(sessions)  # rare; keeps the index in the order of ``sessions``
        return record, False

    # ------------------------------------------------------------------------------------------- helpers
    def _new(
        self,
        sessions: dict[str, dict[str, Any]],
        index: _HostIndex,
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
        replaced = sessions.get(record["key"])
        sessions[record["key"]] = record  # the same key again: the new record takes the old one's place
        if replaced is None:
            index.add(record)
        else:
            index.rebuild(sessions)
        index.schedule(record, self._limits)
        if len(index.expiries) > 4 * len(sessions) + 64:  # drop the entries of closed and replaced records
            index.expiries = [entry for entry in index.expiries if sessions.get(entry[2]) is entry[3]]
            heapq.heapify(index.expiries)
        return record

    def _find(
        self,
        index: _HostIndex,
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
        for record in index.by_key.get((service, session_user, pid), ()):
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

    def _expire(self, sessions: dict[str, dict[str, Any]], index: _HostIndex, now: float) -> None:
        """Drop the records that expired by ``now`` (those whose queued expiry check came due)."""
        ttl, pending_ttl = self._limits
        expiries = index.expiries
        alive: list[dict[str, Any]] = []
        while expiries and now > expiries[0][0]:
            _, _, key, record = heapq.heappop(expiries)
            if sessions.get(key) is not record:
                continue  # closed, dropped or replaced already
            idle = now - record["last_ts"]
            if idle > ttl or (not record["opened"] and idle > pending_ttl):
                del sessions[key]
                index.remove(record)
            else:
                alive.append(record)  # refreshed since, or within the margin: check again later
        for record in alive:
            index.schedule(record, self._limits)

    def _bound(self, sessions: dict[str, dict[str, Any]], index: _HostIndex) -> None:
        """Drop the least recently active records beyond the limit."""
        excess = len(sessions) - self.settings.max_sessions_per_host
        if excess == 1:
            oldest = min(sessions.values(), key=_LAST_TS)  # the first of equals, as a stable sort
            index.remove(sessions.pop(oldest["key"]))
        elif excess > 0:
            for key in sorted(sessions, key=lambda k: sessions[k]["last_ts"])[:excess]:
                index.remove(sessions.pop(key))

    def _summary(self, record: Mapping[str, Any], doc: Mapping[str, Any], host: str, now: float) -> dict[str, Any]:
        event = doc.get("event") or {}
        duration = max(0.0, now - record["start_ts"])
        session = {
            "id": record["id"],
            "user": record["user"],
            "session_user": record["session_user"],
            "service": record["service"],
            "source_ip": record["source_ip"],
            "pid": record["pid"],
            "event_count": record["event_count"],
        }
        module = event.get("module", "syslog")
        summary: dict[str, Any] = {
            "@timestamp": iso_timestamp(now),
            "ecs": {"version": ECS_VERSION},
            "message": f"{record['service']} session of {record['user']} closed after {duration:.0f}s",
            "event": {
                "id": stable_id("session_summary", record["id"], event.get("id")),
                "kind": "event",
                "module": module,
                "dataset": f"{module}.session",
                "action": "session_summary",
                "category": ["session"],
                "type": ["end"],
                "outcome": "success",
                "start": iso_timestamp(record["start_ts"]),
                "end": iso_timestamp(now),
                "duration": int(duration * 1e9),
            },
            "host": {"name": host},
            "secstream": {"schema_version": SCHEMA_VERSION, "session": session},
        }
        if record["user"]:
            summary["user"] = {"name": record["user"]}
            summary["related"] = {"user": [record["user"]]}
        if record["source_ip"]:
            summary["source"] = {"ip": record["source_ip"]}
            summary.setdefault("related", {})["ip"] = [record["source_ip"]]
        return summary
