"""The Sigma stage in the pipeline: configuration, alert documents, bad rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from processors.detect.sigma import SigmaEngine
from processors.errors import ConfigError
from streams.config import load_config
from streams.graph import HostStates, Pipeline, RawLine

from .attack_corpus import AuditWriter

REPO = Path(__file__).resolve().parents[4]
FIXTURES = Path(__file__).parent / "rules"
SCHEMA = json.loads((REPO / "schemas/detections.schema.json").read_text())


def _run(pipeline: Pipeline, audit: list[str]) -> list[dict[str, Any]]:
    states = HostStates()
    pending = pipeline.audit_lines((RawLine(line) for line in audit), states)
    pending.extend(pipeline.shutdown(states))
    return asyncio.run(pipeline.complete(pending, states)).detections


def _pipeline(tmp_path: Path, **sigma: Any) -> Pipeline:
    lines = ["[detection]", "use_default_rules = false", "[detection.sigma]", "use_project_rules = false"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in sigma.items()]
    (tmp_path / "secstream.toml").write_text("\n".join(lines) + "\n")
    return Pipeline(load_config(tmp_path / "secstream.toml", environ={}))


def _sigma(pipeline: Pipeline) -> SigmaEngine:
    return next(stage for stage in pipeline.detection_stages if isinstance(stage, SigmaEngine))


def _authorized_keys_write() -> list[str]:
    writer = AuditWriter("h1")
    writer.open_write("/root/.ssh/authorized_keys", pid=10, ppid=9, exe="/usr/bin/bash")
    return writer.lines


def test_alerts_carry_the_rule_attack_and_evidence(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, rule_paths=[str(FIXTURES)])
    detections = _run(pipeline, _authorized_keys_write())
    assert [d["rule"]["name"] for d in detections] == ["Fixture auditd records"]
    alert = detections[0]
    jsonschema.validate(alert, SCHEMA)
    assert alert["rule"]["uuid"] == alert["rule"]["id"] == "5f0c1d2e-0001-4a00-8000-000000000004"
    assert alert["rule"]["author"] == ["secstream tests"] and "by secstream tests" in alert["message"]
    assert alert["rule"]["ruleset"] == "rules" and alert["rule"]["version"] == "2026-12-07"
    assert alert["event"]["severity"] == 47
    assert alert["threat"]["technique"]["id"] == ["T1098"]
    assert alert["threat"]["technique"]["subtechnique"] == {
        "id": ["T1098.004"],
        "name": ["SSH Authorized Keys"],
        "reference": ["https://attack.mitre.org/techniques/T1098/004/"],
    }
    assert alert["threat"]["tactic"] == {
        "id": ["TA0003"],
        "name": ["Persistence"],
        "reference": ["https://attack.mitre.org/tactics/TA0003/"],
    }
    assert alert["secstream"]["sigma"] == {"source": "auditd", "level": "medium", "row_type": "PATH"}
    assert len(alert["secstream"]["evidence"]["event_ids"]) == 1
    assert alert["process"]["executable"] == "/usr/bin/bash"
    # deterministic: the same evidence gives the same alert id
    assert _run(pipeline, _authorized_keys_write())[0]["event"]["id"] == alert["event"]["id"]


def test_selection_from_the_config(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, rule_paths=[str(FIXTURES)], min_level="high")
    assert _run(pipeline, _authorized_keys_write()) == []
    assert {rule.level for rule in _sigma(pipeline).rules} == {"high", "critical"}


def test_disabled(tmp_path: Path) -> None:
    assert _sigma(_pipeline(tmp_path, enabled=False, rule_paths=[str(FIXTURES)])).rules == ()


def test_bad_level_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"detection\.sigma\.min_level"):
        _pipeline(tmp_path, min_level="severe")


def test_a_bad_rule_file_does_not_stop_the_others(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yml").write_text("title: broken\ndetection: {sel: {a|nosuch: 1}, condition: sel}\n")
    (rules / "good.yml").write_text((FIXTURES / "modifiers.yml").read_text())
    engine = SigmaEngine.load([rules])
    assert len(engine.rules) == 5
    assert [error.path.name for error in engine.loaded.errors] == ["bad.yml"]
    pipeline = _pipeline(tmp_path, rule_paths=[str(rules)])
    assert _run(pipeline, _authorized_keys_write()) != []


def test_repeats_are_suppressed_within_the_window_and_counted(tmp_path: Path) -> None:
    writer = AuditWriter("h1")
    for pid in range(10, 14):  # the same file written four times, a second apart
        writer.open_write("/root/.ssh/authorized_keys", pid=pid, ppid=9, exe="/usr/bin/bash")
    writer.clock += 60
    writer.open_write("/root/.ssh/authorized_keys", pid=20, ppid=9, exe="/usr/bin/bash")
    writer.open_write("/home/bob/.ssh/authorized_keys", pid=21, ppid=9, exe="/usr/bin/bash")
    pipeline = _pipeline(tmp_path, rule_paths=[str(FIXTURES)], suppress_window_s=30.0)
    alerts = _run(pipeline, writer.lines)
    assert [a["secstream"]["sigma"].get("suppressed_before", 0) for a in alerts] == [0, 3, 0]
    assert len(_run(_pipeline(tmp_path, rule_paths=[str(FIXTURES)]), writer.lines)) == 6


def test_auditd_keywords_search_the_record_text(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "kw.yml").write_text(
        "title: kw\nlogsource: {product: linux, service: auditd}\ndetection:\n"
        "  sel: {type: EXECVE}\n  keywords: ['a2=password']\n  condition: sel and keywords\n"
    )
    writer = AuditWriter("h1")
    writer.execve(["grep", "-r", "password", "/etc"], pid=5, ppid=4)
    writer.execve(["grep", "-r", "secret", "/etc"], pid=6, ppid=4)
    alerts = _run(_pipeline(tmp_path, rule_paths=[str(rules)]), writer.lines)
    assert [alert["process"]["pid"] for alert in alerts] == [5]
