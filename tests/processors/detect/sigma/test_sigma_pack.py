"""The project's own Sigma rules (processors/detect/data/sigma) on the labelled corpus: attacks fire, admin work
does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from processors.detect.sigma import SigmaEngine, project_rules_path
from streams.config import load_config
from streams.graph import HostStates, Pipeline, RawLine

from .attack_corpus import Case, cases

REPO = Path(__file__).resolve().parents[4]
PACK = project_rules_path()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    config = tmp_path_factory.mktemp("config") / "secstream.toml"
    config.write_text("[detection]\nuse_default_rules = false\n[detection.sigma]\nuse_project_rules = true\n")
    return Pipeline(load_config(config, environ={}))


def _fired(pipeline: Pipeline, case: Case) -> set[str]:
    states = HostStates()
    pending = pipeline.audit_lines((RawLine(line) for line in case.audit), states)
    pending.extend(pipeline.shutdown(states))
    pending.extend(pipeline.syslog_lines((RawLine(line) for line in case.syslog), states))
    outputs = asyncio.run(pipeline.complete(pending, states))
    assert outputs.deadletters == []
    return {alert["rule"]["id"] for alert in outputs.detections if alert["rule"].get("ruleset") == "secstream"}


@pytest.mark.parametrize("case", [c for c in cases() if c.expect], ids=lambda c: c.name)
def test_attack_raises_its_alerts(pipeline: Pipeline, case: Case) -> None:
    assert set(case.expect) <= _fired(pipeline, case)


@pytest.mark.parametrize("case", [c for c in cases() if not c.expect], ids=lambda c: c.name)
def test_admin_work_raises_nothing(pipeline: Pipeline, case: Case) -> None:
    assert _fired(pipeline, case) == set()


def test_every_pack_rule_has_an_attack_case() -> None:
    engine = SigmaEngine.load([PACK])
    assert engine.loaded.errors == []
    expected = {rule_id for case in cases() for rule_id in case.expect}
    assert {rule.id for rule in engine.rules} == expected


def test_the_default_config_loads_the_project_pack() -> None:
    pipeline = Pipeline(load_config(REPO / "config/secstream.toml", environ={}))
    sigma = next(stage for stage in pipeline.detection_stages if isinstance(stage, SigmaEngine))
    assert sigma.loaded.errors == []
    assert sigma.rules and {rule.ruleset for rule in sigma.rules} == {"secstream"}
    assert {rule.license for rule in sigma.rules} == {"MIT"}
