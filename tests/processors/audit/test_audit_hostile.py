"""Hostile values through parse → coalesce → decode → process tree (#20): a line the pipeline cannot
represent becomes a dead letter with its reason, never an exception, and every document is writable JSON."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.graph import Pipeline, RawLine
from streams.runner import HostStates
from tests.strategies import extreme_int_text, hostile_audit_lines, non_ascii_numbers

_CONFIG = load_config(environ={"SECSTREAM_ENRICHMENT__ENABLED": "false"})
_NOW = 1_700_000_000.0
_PIPELINES: list[Pipeline] = []


def _pipeline() -> Pipeline:
    """One stage graph for the module (its rules are costly to load); the host state is new for each run."""
    if not _PIPELINES:
        _PIPELINES.append(Pipeline(_CONFIG))
    return _PIPELINES[0]


def run(lines: list[str]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Documents and dead letters of ``lines`` read at ``_NOW``, after shutdown."""
    pipeline, states = _pipeline(), HostStates()
    pending = pipeline.audit_lines([RawLine(line, {"line": n}, None, _NOW) for n, line in enumerate(lines)], states)
    pending.extend(pipeline.shutdown(states))
    for doc in [*pending.events, *pending.deadletters]:
        orjson.dumps(doc)  # raises on an integer past 64 bits
    return pending.events, pending.deadletters


class TestHostileAuditValues:
    def test_the_reported_lines_are_dead_letters(self) -> None:
        """The year 10000 and a serial past 64 bits are dead letters with a reason; the next line goes on."""
        events, dead = run(
            [
                "node=h1 type=USER_LOGIN msg=audit(253402300800.000:1): pid=1 uid=0 msg='op=login res=failed'",
                "type=SYSCALL msg=audit(1795766402.000:18446744073709551616): pid=1",
                "node=h1 type=USER_LOGIN msg=audit(1699999999.000:2): pid=1 uid=0 msg='op=login res=failed'",
            ]
        )
        assert [d["error"]["type"] for d in dead] == ["ParseError", "ParseError"]  # type: ignore[index]
        assert "year 9999" in str(dead[0]) and "64 bits" in str(dead[1])
        assert [e["event"]["sequence"] for e in events] == [2]  # type: ignore[index]

    def test_pid_past_64_bits_and_non_ascii_pid_are_absent(self) -> None:
        """pid=-9999999999999999999 and pid=٣ are not numbers a document holds: process.pid is absent."""
        events, dead = run(
            [
                "node=h1 type=USER_CMD msg=audit(1699999999.000:3): pid=-9999999999999999999 uid=0 msg='res=success'",
                "node=h1 type=USER_CMD msg=audit(1699999999.000:4): pid=٣ uid=0 msg='res=success'",
            ]
        )
        assert not dead
        assert all("pid" not in e.get("process", {}) for e in events)  # type: ignore[operator]

    def test_future_record_is_a_dead_letter_and_does_not_split_later_events(self) -> None:
        """A record dated in the year 5138 is a dead letter and the host's later events stay whole."""
        later = [
            "node=h1 type=SYSCALL msg=audit(1699999999.500:11): arch=c000003e syscall=59 success=yes pid=7 ppid=1",
            'node=h1 type=EXECVE msg=audit(1699999999.500:11): argc=1 a0="ls"',
            "node=h1 type=EOE msg=audit(1699999999.500:11):",
        ]
        events, dead = run(["node=h1 type=SYSCALL msg=audit(99999999999.000:10): pid=1", *later])
        assert [d["error"]["type"] for d in dead] == ["FutureEventError"]  # type: ignore[index]
        (event,) = events
        assert event["auditd"]["message_types"] == ["SYSCALL", "EXECVE"]  # type: ignore[index]
        assert not event["auditd"]["partial"]  # type: ignore[index]

    def test_clone_with_exit_not_a_number(self) -> None:
        """A clone whose exit= is not a number is a dead letter with the reason (was an exception out of run)."""
        events, dead = run(
            [
                "node=h1 type=SYSCALL msg=audit(1699999999.0:20): arch=c000003e syscall=56 success=yes exit=abc pid=5",
                "node=h1 type=EOE msg=audit(1699999999.0:20):",
            ]
        )
        assert not events and "exit" in str(dead[0]["event"]["reason"])  # type: ignore[index]

    @settings(max_examples=300, deadline=None)
    @given(st.lists(hostile_audit_lines(), min_size=1, max_size=6))
    def test_no_exception_and_every_document_is_json(self, lines: list[str]) -> None:
        """Whatever the header and numbers, each line is a document or a dead letter, and all is JSON."""
        events, dead = run(lines)
        assert len(dead) <= len(lines)
        for doc in events:
            process = doc.get("process") or {}
            assert all(type(process.get(k)) is int for k in ("pid", "ppid") if k in process)  # type: ignore[union-attr]

    @given(st.one_of(extreme_int_text, non_ascii_numbers))
    def test_numbers_in_every_id_field(self, value: str) -> None:
        """Extreme or non-ASCII numbers in every id field never stop the pipeline."""
        fields = " ".join(f"{key}={value}" for key in ("pid", "ppid", "uid", "auid", "euid", "gid", "ses", "exit"))
        run(
            [
                f"node=h1 type=SYSCALL msg=audit(1699999999.000:30): arch=c000003e syscall=56 success=yes {fields}",
                "node=h1 type=EOE msg=audit(1699999999.000:30):",
            ]
        )
