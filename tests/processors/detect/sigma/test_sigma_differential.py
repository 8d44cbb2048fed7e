"""The Sigma matcher against pySigma's SQLite backend, row by row: zero disagreements.

Rows come from the bundled samples and test logs (through the real pipeline and views), from the rules
themselves (rows satisfying their leaves and near-miss mutants of them), and from Hypothesis (leaf
samples, ``re`` leaves drawn from their own pattern, mutants and noise). Rule sets: our fixture rules, and
every SigmaHQ Linux rule when ``../shared/sigma/sigmahq`` is there (never copied into this repository).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.types import SigmaRegularExpression

from processors.detect.sigma import CompiledRule, document_views, load_sigma_rules
from streams.config import SecstreamConfig
from streams.graph import HostStates, Pipeline, RawLine

from .attack_corpus import cases
from .sigma_reference import Row, by_source, disagreements, leaves, mutate, rule_rows, sample

REPO = Path(__file__).resolve().parents[4]
FIXTURES = Path(__file__).parent / "rules"


def _sigmahq_dir() -> Path | None:
    override = os.environ.get("SECSTREAM_SHARED")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared", REPO.parent.parent / "shared"]
    for candidate in candidates:
        if (candidate / "sigma" / "sigmahq" / "rules" / "linux").is_dir():
            return candidate / "sigma" / "sigmahq"
    return None


def _load(name: str) -> list[CompiledRule]:
    if name == "fixtures":
        paths = [FIXTURES]
    else:
        root = _sigmahq_dir()
        if root is None:
            pytest.skip("SigmaHQ rules not found in ../shared/sigma/sigmahq (set SECSTREAM_SHARED)")
        paths = [root / "rules", root / "rules-threat-hunting", root / "rules-emerging-threats"]
    loaded = load_sigma_rules(paths)
    assert loaded.errors == []
    return loaded.rules


_RULES: dict[str, list[CompiledRule]] = {}


@pytest.fixture(params=["fixtures", "sigmahq"])
def rules(request: pytest.FixtureRequest) -> list[CompiledRule]:
    name = str(request.param)
    if name not in _RULES:
        _RULES[name] = _load(name)
    return _RULES[name]


@pytest.fixture(scope="module")
def rules_by_set() -> dict[str, list[CompiledRule]]:
    """Both rule sets for the Hypothesis test (SigmaHQ's only where ../shared has them)."""
    found = {"fixtures": _load("fixtures")}
    if _sigmahq_dir() is not None:
        found["sigmahq"] = _load("sigmahq")
    return found


def _corpus_rows() -> dict[str, list[Row]]:
    """Views of every document the pipeline makes of the bundled samples, the test logs and our labelled corpus."""
    pipeline = Pipeline(SecstreamConfig())
    states = HostStates()
    audit = [REPO / "config/samples/audit.log", REPO / "tests/data/audit/edge_cases.log"]
    syslog = [REPO / "config/samples/syslog.log", REPO / "tests/data/syslog/auth_sample.log"]
    audit_lines = [line for path in audit for line in path.read_text(errors="replace").splitlines()]
    syslog_lines = [line for path in syslog for line in path.read_text(errors="replace").splitlines()]
    for case in cases():
        audit_lines.extend(case.audit)
        syslog_lines.extend(case.syslog)
    pending = pipeline.audit_lines((RawLine(line) for line in audit_lines), states)
    pending.extend(pipeline.shutdown(states))
    pending.extend(pipeline.syslog_lines((RawLine(line) for line in syslog_lines), states))
    outputs = asyncio.run(pipeline.complete(pending, states))
    rows: dict[str, list[Row]] = {}
    for doc in outputs.events:
        for source, row in document_views(doc):
            rows.setdefault(source, []).append(row)
    return rows


_CORPUS: dict[str, list[Row]] = {}


def _corpus() -> dict[str, list[Row]]:
    if not _CORPUS:
        _CORPUS.update(_corpus_rows())
    return _CORPUS


def _assert_agree(rules: list[CompiledRule], rows: list[Row], source: str) -> None:
    found = disagreements(rules, rows, source)
    assert not found, [(rule_id, mine, row) for rule_id, _, mine, row in found[:5]]


def test_corpus_covers_every_view() -> None:
    corpus = _corpus()
    for source in ("process_creation", "network_connection", "file_event", "auditd", "syslog", "keyword"):
        assert corpus.get(source), source


def test_samples_agree(rules: list[CompiledRule]) -> None:
    corpus = _corpus()
    for source, group in by_source(rules).items():
        rows = corpus.get(source, [])
        if rows:
            _assert_agree(group, rows, source)


def test_rows_from_the_rules_agree(rules: list[CompiledRule]) -> None:
    rng = random.Random(24)
    fired: set[str] = set()
    total = 0
    for source, group in by_source(rules).items():
        rows: list[Row] = []
        for rule in group:
            rows.extend(rule_rows(rule, rng, 12))
        rows.extend(_corpus().get(source, []))
        _assert_agree(group, rows, source)
        total += len(group)
        fired.update(rule.id for rule in group if any(rule.predicate(row) for row in rows))
    # the rows are not vacuous: nearly every rule fires on some of them and misses on others
    assert len(fired) >= 0.9 * total, (len(fired), total)


def _regex_texts(data: st.DataObject, rules: list[CompiledRule]) -> dict[str, list[str]]:
    """Texts drawn from every ``re`` leaf's own pattern (drawn up front, so the draws do not depend on rng)."""
    texts: dict[str, list[str]] = {}
    for rule in rules:
        for _field, value in leaves(rule):
            if isinstance(value, SigmaRegularExpression):
                pattern = value.escape([], "", False, True)
                texts.setdefault(pattern, []).append(data.draw(st.from_regex(pattern, fullmatch=False)))
    return texts


@settings(max_examples=40)
@given(data=st.data())
def test_generated_rows_agree(rules_by_set: dict[str, list[CompiledRule]], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(rules_by_set)))
    groups = by_source(rules_by_set[name])
    source = data.draw(st.sampled_from(sorted(groups)))
    chosen = data.draw(st.lists(st.sampled_from(groups[source]), min_size=1, max_size=8))
    regex_texts = _regex_texts(data, chosen)
    rng = random.Random(data.draw(st.integers(0, 2**32)))

    def regex_example(value: SigmaRegularExpression) -> str:
        return rng.choice(regex_texts[value.escape([], "", False, True)])

    rows: list[Row] = []
    for rule in chosen:
        rows.extend(rule_rows(rule, rng, 4, regex_example))
    for texts in regex_texts.values():
        for text in texts:
            for key in ("commandline", "image", "_text", "a0", "name", "targetfilename"):
                rows.append({key: text})
                rows.append({key: mutate(text, rng)})
    noise = data.draw(st.text(max_size=40))
    rows.append({"commandline": noise, "image": noise, "_text": noise, "type": noise, "a0": noise})
    _assert_agree(groups[source], rows, source)


def test_sample_helper_is_sound() -> None:
    # the generator's own check: a sampled leaf text satisfies the leaf (else the corpus would be vacuous)
    rule = _load("fixtures")[0]
    rng = random.Random(1)
    field, value = leaves(rule)[0]
    assert field == "image"
    assert rule.predicate({"image": sample(value, rng), "commandline": "http -o"})
